//! Why instances could not be placed, worded so the user knows what to change.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a region could not take (all of) a demand.
///
/// A typed value rather than a string, so the operator can react to the kind (e.g. suggest
/// enrolling a node for [`Reason::UnknownRegion`]) and still show [`Display`](fmt::Display) as
/// the message. Figures describe the region's schedulable nodes when placement stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No node at all is listed in the region: a typo, or no node enrolled there yet.
    UnknownRegion,
    /// The region has nodes, but every one is draining or down.
    NoSchedulableNodes { nodes: usize },
    /// One instance needs more memory than the largest node has in total: no amount of
    /// freeing helps, only a smaller instance size or a bigger node.
    MemoryTooLarge { needed_mb: u64, largest_mb: u64 },
    /// One instance needs more CPU than the largest node admits (its CPUs × the oversubscription
    /// ratio), even when empty.
    CpuTooLarge {
        needed_millicpus: u32,
        largest_millicpus: u64,
    },
    /// Nodes could hold the instance when empty, but none has enough free right now.
    Full {
        needed_mb: u64,
        needed_millicpus: u32,
        /// The most free memory on any one node.
        largest_free_mb: u64,
        /// The most free CPU (under the oversubscription ratio) on any one node.
        largest_free_millicpus: u64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::UnknownRegion => write!(f, "no node is enrolled in this region"),
            Reason::NoSchedulableNodes { nodes } => {
                write!(f, "all {nodes} node(s) in this region are draining or down")
            }
            Reason::MemoryTooLarge {
                needed_mb,
                largest_mb,
            } => write!(
                f,
                "an instance needs {needed_mb} MiB but the largest node has {largest_mb} MiB"
            ),
            Reason::CpuTooLarge {
                needed_millicpus,
                largest_millicpus,
            } => write!(
                f,
                "an instance needs {needed_millicpus} millicpus but the largest node admits \
                 {largest_millicpus} millicpus (its CPUs times the oversubscription ratio)"
            ),
            Reason::Full {
                needed_mb,
                needed_millicpus,
                largest_free_mb,
                largest_free_millicpus,
            } => {
                let memory_short = largest_free_mb < needed_mb;
                let cpu_short = largest_free_millicpus < u64::from(needed_millicpus);
                match (memory_short, cpu_short) {
                    (true, false) => write!(
                        f,
                        "no node has {needed_mb} MiB free (largest free: {largest_free_mb} MiB)"
                    ),
                    (false, true) => write!(
                        f,
                        "no node has {needed_millicpus} millicpus free \
                         (largest free: {largest_free_millicpus} millicpus)"
                    ),
                    (true, true) => write!(
                        f,
                        "no node has {needed_mb} MiB or {needed_millicpus} millicpus free \
                         (largest free: {largest_free_mb} MiB, {largest_free_millicpus} millicpus)"
                    ),
                    // Enough of each exists, but not on the same node.
                    (false, false) => write!(
                        f,
                        "no node has both {needed_mb} MiB and {needed_millicpus} millicpus free \
                         (the most free memory, {largest_free_mb} MiB, and the most free CPU, \
                         {largest_free_millicpus} millicpus, are on different nodes)"
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(largest_free_mb: u64, largest_free_millicpus: u64) -> String {
        Reason::Full {
            needed_mb: 512,
            needed_millicpus: 500,
            largest_free_mb,
            largest_free_millicpus,
        }
        .to_string()
    }

    #[test]
    fn full_names_only_the_resource_that_is_short() {
        assert_eq!(
            full(256, 4000),
            "no node has 512 MiB free (largest free: 256 MiB)"
        );
        assert_eq!(
            full(1024, 200),
            "no node has 500 millicpus free (largest free: 200 millicpus)"
        );
        assert_eq!(
            full(256, 200),
            "no node has 512 MiB or 500 millicpus free (largest free: 256 MiB, 200 millicpus)"
        );
    }

    #[test]
    fn full_without_a_short_resource_says_it_is_split_across_nodes() {
        let message = full(1024, 4000);
        assert!(
            message.starts_with("no node has both 512 MiB and 500 millicpus free"),
            "{message}"
        );
        assert!(
            message.contains("1024 MiB") && message.contains("4000 millicpus"),
            "{message}"
        );
    }

    #[test]
    fn exact_fit_is_not_reported_as_short() {
        // Free == needed fits, so the message must not claim that resource is short.
        assert!(full(512, 200).starts_with("no node has 500 millicpus free"));
        assert!(full(256, 500).starts_with("no node has 512 MiB free"));
    }

    #[test]
    fn size_and_region_reasons_carry_their_figures() {
        let too_big = Reason::MemoryTooLarge {
            needed_mb: 4096,
            largest_mb: 2048,
        };
        assert_eq!(
            too_big.to_string(),
            "an instance needs 4096 MiB but the largest node has 2048 MiB"
        );
        let too_hungry = Reason::CpuTooLarge {
            needed_millicpus: 8000,
            largest_millicpus: 4000,
        };
        assert!(too_hungry.to_string().starts_with(
            "an instance needs 8000 millicpus but the largest node admits 4000 millicpus"
        ));
        assert_eq!(
            Reason::NoSchedulableNodes { nodes: 3 }.to_string(),
            "all 3 node(s) in this region are draining or down"
        );
    }
}
