//! The placement algorithm: one scan of a region's nodes per instance.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use uuid::Uuid;

use crate::{
    Allocation, Assignment, Demand, Node, Placement, Policy, Reason, RegionDemand, Unplaced,
};

/// Places every instance the `demands` ask for on `nodes`, counting the `existing` allocations.
///
/// See the crate documentation for the rules. The same input always yields the same output,
/// whatever the order of `nodes` and `existing`; `demands` are served in order.
#[must_use]
pub fn place(
    nodes: &[Node],
    existing: &[Allocation],
    demands: &[Demand],
    policy: &Policy,
) -> Placement {
    let mut cluster = Cluster::new(nodes, existing, policy);
    let mut placement = Placement::default();
    for demand in demands {
        for want in &demand.regions {
            cluster.place_in_region(demand, want, &mut placement);
        }
    }
    placement
}

/// A schedulable node's capacity and what is already reserved on it.
struct Slot {
    id: Uuid,
    /// Index of the node's zone within its region.
    zone: usize,
    memory_mb: u64,
    memory_used: u64,
    /// Physical millicpus × the oversubscription ratio.
    cpu_limit: u64,
    cpu_used: u64,
}

impl Slot {
    fn fits(&self, demand: &Demand) -> bool {
        self.memory_used.saturating_add(demand.memory_mb) <= self.memory_mb
            && self.cpu_used.saturating_add(u64::from(demand.millicpus)) <= self.cpu_limit
    }

    /// Compares memory utilisation (used / capacity) exactly, by cross-multiplying.
    fn utilisation_cmp(&self, other: &Slot) -> Ordering {
        // A node without memory counts as full; it can only take instances of zero MiB anyway.
        let fraction = |slot: &Slot| match slot.memory_mb {
            0 => (1, 1),
            capacity => (u128::from(slot.memory_used), u128::from(capacity)),
        };
        let (used, capacity) = fraction(self);
        let (other_used, other_capacity) = fraction(other);
        (used * other_capacity).cmp(&(other_used * capacity))
    }
}

/// The nodes of one region, as listed in the input.
#[derive(Default)]
struct Region {
    /// Where its schedulable nodes sit in [`Cluster::slots`].
    slots: Range<usize>,
    zones: usize,
    /// Nodes listed, schedulable or not; only used to explain an empty `slots`.
    listed: usize,
}

/// The mutable view of the cluster while placing.
struct Cluster<'a> {
    /// Schedulable nodes sorted by (region, id), so that a region is a contiguous range.
    slots: Vec<Slot>,
    regions: HashMap<&'a str, Region>,
    /// Instances of each deployment per slot index; sparse, as most deployments use few nodes.
    spread: HashMap<Uuid, HashMap<usize, u32>>,
}

impl<'a> Cluster<'a> {
    fn new(nodes: &'a [Node], existing: &[Allocation], policy: &Policy) -> Self {
        let mut seen = HashSet::with_capacity(nodes.len());
        let mut regions: HashMap<&str, Region> = HashMap::new();
        let mut schedulable = Vec::with_capacity(nodes.len());
        for node in nodes.iter().filter(|node| seen.insert(node.id)) {
            regions.entry(&node.region).or_default().listed += 1;
            if node.schedulable {
                schedulable.push(node);
            }
        }
        schedulable.sort_unstable_by(|a, b| (&a.region, a.id).cmp(&(&b.region, b.id)));

        let mut slots = Vec::with_capacity(schedulable.len());
        let mut index = HashMap::with_capacity(schedulable.len());
        for same_region in schedulable.chunk_by(|a, b| a.region == b.region) {
            let start = slots.len();
            let mut zones: HashMap<Option<&str>, usize> = HashMap::new();
            for node in same_region {
                let next_zone = zones.len();
                let zone = *zones.entry(node.zone.as_deref()).or_insert(next_zone);
                index.insert(node.id, slots.len());
                slots.push(Slot {
                    id: node.id,
                    zone,
                    memory_mb: node.memory_mb,
                    memory_used: 0,
                    // `as` saturates: NaN or negative gives 0, infinity gives u64::MAX.
                    cpu_limit: (f64::from(node.millicpus) * policy.cpu_oversubscription) as u64,
                    cpu_used: 0,
                });
            }
            let region = regions.entry(&same_region[0].region).or_default();
            region.slots = start..slots.len();
            region.zones = zones.len();
        }

        let mut spread: HashMap<Uuid, HashMap<usize, u32>> = HashMap::new();
        for allocation in existing {
            let Some(&i) = index.get(&allocation.node) else {
                continue;
            };
            let slot = &mut slots[i];
            slot.memory_used = slot.memory_used.saturating_add(allocation.memory_mb);
            slot.cpu_used = slot
                .cpu_used
                .saturating_add(u64::from(allocation.millicpus));
            *spread
                .entry(allocation.deployment)
                .or_default()
                .entry(i)
                .or_default() += 1;
        }

        Cluster {
            slots,
            regions,
            spread,
        }
    }

    fn place_in_region(&mut self, demand: &Demand, want: &RegionDemand, out: &mut Placement) {
        if want.count == 0 {
            return;
        }
        let unplaced = |missing, reason| Unplaced {
            deployment: demand.deployment,
            process: demand.process.clone(),
            region: want.region.clone(),
            missing,
            reason,
        };
        let Some(region) = self.regions.get(want.region.as_str()) else {
            out.unplaced
                .push(unplaced(want.count, Reason::UnknownRegion));
            return;
        };
        if region.slots.is_empty() {
            let reason = Reason::NoSchedulableNodes {
                nodes: region.listed,
            };
            out.unplaced.push(unplaced(want.count, reason));
            return;
        }

        // Dense counters for this deployment in this region, so the scan below is plain indexing.
        let range = region.slots.clone();
        let slots = &mut self.slots[range.clone()];
        let counts = self.spread.entry(demand.deployment).or_default();
        let mut per_node = vec![0_u32; range.len()];
        let mut per_zone = vec![0_u32; region.zones];
        for (&i, &count) in counts.iter() {
            if range.contains(&i) {
                per_node[i - range.start] += count;
                per_zone[slots[i - range.start].zone] += count;
            }
        }

        for placed in 0..want.count {
            let Some(best) = best_slot(slots, &per_node, &per_zone, demand) else {
                let reason = shortfall(slots, demand);
                out.unplaced.push(unplaced(want.count - placed, reason));
                return;
            };
            let slot = &mut slots[best];
            slot.memory_used += demand.memory_mb;
            slot.cpu_used += u64::from(demand.millicpus);
            per_node[best] += 1;
            per_zone[slot.zone] += 1;
            *counts.entry(range.start + best).or_default() += 1;
            out.assignments.push(Assignment {
                deployment: demand.deployment,
                process: demand.process.clone(),
                node: slot.id,
                region: want.region.clone(),
            });
        }
    }
}

/// The slot with room that spreads the deployment best, if any (see the crate docs for the order).
fn best_slot(slots: &[Slot], per_node: &[u32], per_zone: &[u32], demand: &Demand) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, slot) in slots.iter().enumerate() {
        if !slot.fits(demand) {
            continue;
        }
        let better = best.is_none_or(|b| {
            let other = &slots[b];
            per_node[i]
                .cmp(&per_node[b])
                .then(per_zone[slot.zone].cmp(&per_zone[other.zone]))
                .then_with(|| slot.utilisation_cmp(other))
                .then(slot.id.cmp(&other.id))
                .is_lt()
        });
        if better {
            best = Some(i);
        }
    }
    best
}

/// Explains why no slot of a (non-empty) region fits the demand.
fn shortfall(slots: &[Slot], demand: &Demand) -> Reason {
    let largest = |f: fn(&Slot) -> u64| slots.iter().map(f).max().unwrap_or(0);
    let largest_mb = largest(|slot| slot.memory_mb);
    if demand.memory_mb > largest_mb {
        return Reason::MemoryTooLarge {
            needed_mb: demand.memory_mb,
            largest_mb,
        };
    }
    let largest_millicpus = largest(|slot| slot.cpu_limit);
    if u64::from(demand.millicpus) > largest_millicpus {
        return Reason::CpuTooLarge {
            needed_millicpus: demand.millicpus,
            largest_millicpus,
        };
    }
    Reason::Full {
        needed_mb: demand.memory_mb,
        needed_millicpus: demand.millicpus,
        largest_free_mb: largest(|slot| slot.memory_mb.saturating_sub(slot.memory_used)),
        largest_free_millicpus: largest(|slot| slot.cpu_limit.saturating_sub(slot.cpu_used)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATIO_1: Policy = Policy {
        cpu_oversubscription: 1.0,
    };

    fn node(id: u128, region: &str, zone: Option<&str>, millicpus: u32, memory_mb: u64) -> Node {
        Node {
            id: Uuid::from_u128(id),
            region: region.to_owned(),
            zone: zone.map(str::to_owned),
            millicpus,
            memory_mb,
            schedulable: true,
        }
    }

    fn demand(deployment: u128, millicpus: u32, memory_mb: u64, regions: &[(&str, u32)]) -> Demand {
        Demand {
            deployment: Uuid::from_u128(deployment),
            process: "web".to_owned(),
            millicpus,
            memory_mb,
            regions: regions
                .iter()
                .map(|&(region, count)| RegionDemand {
                    region: region.to_owned(),
                    count,
                })
                .collect(),
        }
    }

    fn allocation(node: u128, deployment: u128, millicpus: u32, memory_mb: u64) -> Allocation {
        Allocation {
            node: Uuid::from_u128(node),
            deployment: Uuid::from_u128(deployment),
            millicpus,
            memory_mb,
        }
    }

    fn nodes_of(placement: &Placement) -> Vec<u128> {
        placement
            .assignments
            .iter()
            .map(|a| a.node.as_u128())
            .collect()
    }

    #[test]
    fn memory_is_a_hard_cap_counting_existing_allocations() {
        let nodes = [node(1, "eu", None, 64_000, 1024)];
        let existing = [allocation(1, 99, 0, 512)];
        let placement = place(
            &nodes,
            &existing,
            &[demand(7, 0, 256, &[("eu", 3)])],
            &RATIO_1,
        );
        assert_eq!(nodes_of(&placement), [1, 1]);
        assert_eq!(placement.unplaced.len(), 1);
        assert_eq!(placement.unplaced[0].missing, 1);
        assert_eq!(
            placement.unplaced[0].reason.to_string(),
            "no node has 256 MiB free (largest free: 0 MiB)"
        );
    }

    #[test]
    fn cpu_may_be_oversubscribed_up_to_the_ratio() {
        let nodes = [node(1, "eu", None, 1000, 1 << 20)];
        let demands = [demand(7, 500, 1, &[("eu", 5)])];
        let twice = Policy {
            cpu_oversubscription: 2.0,
        };
        let placement = place(&nodes, &[], &demands, &twice);
        assert_eq!(placement.assignments.len(), 4);
        assert_eq!(
            placement.unplaced[0].reason.to_string(),
            "no node has 500 millicpus free (largest free: 0 millicpus)"
        );
        assert_eq!(place(&nodes, &[], &demands, &RATIO_1).assignments.len(), 2);
    }

    #[test]
    fn spreads_one_deployment_over_nodes_before_doubling_up() {
        let nodes = [1, 2, 3].map(|id| node(id, "eu", None, 4000, 4096));
        let placement = place(&nodes, &[], &[demand(7, 100, 128, &[("eu", 4)])], &RATIO_1);
        assert_eq!(nodes_of(&placement), [1, 2, 3, 1]);
    }

    #[test]
    fn existing_instances_of_the_deployment_count_towards_spread() {
        let nodes = [1, 2].map(|id| node(id, "eu", None, 4000, 4096));
        // Node 1 already runs the deployment; another deployment's instance on node 2 does not count.
        let existing = [allocation(1, 7, 100, 128), allocation(2, 8, 100, 128)];
        let placement = place(
            &nodes,
            &existing,
            &[demand(7, 100, 128, &[("eu", 1)])],
            &RATIO_1,
        );
        assert_eq!(nodes_of(&placement), [2]);
    }

    #[test]
    fn spreads_over_zones_before_nodes_of_the_same_zone() {
        let nodes = [
            node(1, "eu", Some("a"), 4000, 4096),
            node(2, "eu", Some("a"), 4000, 4096),
            node(3, "eu", Some("b"), 4000, 4096),
        ];
        let placement = place(&nodes, &[], &[demand(7, 100, 128, &[("eu", 2)])], &RATIO_1);
        // Without zones the second instance would go to node 2 (lower id).
        assert_eq!(nodes_of(&placement), [1, 3]);
    }

    #[test]
    fn nodes_without_a_zone_share_one() {
        let nodes = [
            node(1, "eu", None, 4000, 4096),
            node(2, "eu", None, 4000, 4096),
            node(3, "eu", Some("b"), 4000, 4096),
        ];
        let placement = place(&nodes, &[], &[demand(7, 100, 128, &[("eu", 2)])], &RATIO_1);
        assert_eq!(nodes_of(&placement), [1, 3]);
    }

    #[test]
    fn ties_go_to_the_least_utilised_node() {
        let nodes = [1, 2].map(|id| node(id, "eu", None, 4000, 4096));
        let existing = [allocation(1, 99, 0, 1024)];
        let placement = place(
            &nodes,
            &existing,
            &[demand(7, 100, 128, &[("eu", 1)])],
            &RATIO_1,
        );
        assert_eq!(nodes_of(&placement), [2]);
    }

    #[test]
    fn utilisation_is_a_fraction_of_each_node() {
        // Node 1 uses 1 GiB of 8 (12.5 %), node 2 uses 1 GiB of 2 (50 %).
        let nodes = [
            node(1, "eu", None, 4000, 8192),
            node(2, "eu", None, 4000, 2048),
        ];
        let existing = [allocation(1, 98, 0, 1024), allocation(2, 99, 0, 1024)];
        let placement = place(
            &nodes,
            &existing,
            &[demand(7, 100, 128, &[("eu", 1)])],
            &RATIO_1,
        );
        assert_eq!(nodes_of(&placement), [1]);
    }

    #[test]
    fn places_only_in_the_demanded_region_and_on_schedulable_nodes() {
        let mut draining = node(1, "eu", None, 4000, 4096);
        draining.schedulable = false;
        let nodes = [
            draining,
            node(2, "us", None, 4000, 4096),
            node(3, "eu", None, 4000, 4096),
        ];
        let placement = place(&nodes, &[], &[demand(7, 100, 128, &[("eu", 2)])], &RATIO_1);
        assert_eq!(nodes_of(&placement), [3, 3]);
        assert!(placement.assignments.iter().all(|a| a.region == "eu"));
        assert!(placement.unplaced.is_empty());
    }

    #[test]
    fn output_does_not_depend_on_input_order() {
        let nodes = [
            node(5, "eu", Some("a"), 2000, 2048),
            node(3, "eu", Some("b"), 1000, 4096),
            node(9, "us", None, 4000, 1024),
            node(1, "eu", Some("a"), 3000, 1024),
        ];
        let existing = [allocation(5, 7, 500, 512), allocation(3, 8, 100, 1024)];
        let demands = [
            demand(7, 300, 256, &[("eu", 6), ("us", 2)]),
            demand(8, 700, 512, &[("eu", 3)]),
        ];
        let forward = place(&nodes, &existing, &demands, &RATIO_1);
        let mut reversed_nodes = nodes.clone();
        reversed_nodes.reverse();
        let mut reversed_existing = existing.clone();
        reversed_existing.reverse();
        let backward = place(&reversed_nodes, &reversed_existing, &demands, &RATIO_1);
        assert_eq!(forward, backward);
        assert!(!forward.assignments.is_empty());
    }

    #[test]
    fn earlier_demands_win_when_capacity_is_short() {
        let nodes = [node(1, "eu", None, 4000, 1024)];
        let demands = [
            demand(7, 0, 512, &[("eu", 2)]),
            demand(8, 0, 512, &[("eu", 1)]),
        ];
        let placement = place(&nodes, &[], &demands, &RATIO_1);
        assert!(
            placement
                .assignments
                .iter()
                .all(|a| a.deployment.as_u128() == 7)
        );
        assert_eq!(placement.unplaced[0].deployment.as_u128(), 8);
    }

    #[test]
    fn allocations_on_unknown_or_draining_nodes_are_ignored() {
        let mut draining = node(2, "eu", None, 4000, 4096);
        draining.schedulable = false;
        let nodes = [node(1, "eu", None, 4000, 512), draining];
        // Deployment 7 already on the draining node must not push anything; unknown node 3 neither.
        let existing = [allocation(2, 7, 100, 128), allocation(3, 7, 100, 512)];
        let placement = place(
            &nodes,
            &existing,
            &[demand(7, 0, 512, &[("eu", 1)])],
            &RATIO_1,
        );
        assert_eq!(nodes_of(&placement), [1]);
    }

    #[test]
    fn a_repeated_node_id_keeps_its_first_description() {
        let mut repeated = node(1, "eu", None, 4000, 4096);
        repeated.schedulable = false;
        let nodes = [node(1, "eu", None, 4000, 512), repeated];
        let placement = place(&nodes, &[], &[demand(7, 0, 512, &[("eu", 2)])], &RATIO_1);
        assert_eq!(nodes_of(&placement), [1]);
        assert_eq!(placement.unplaced[0].missing, 1);
    }

    #[test]
    fn a_zero_count_reports_nothing() {
        let placement = place(
            &[],
            &[],
            &[demand(7, 100, 128, &[("nowhere", 0)])],
            &RATIO_1,
        );
        assert_eq!(placement, Placement::default());
    }

    #[test]
    fn reasons_tell_what_blocks_each_region() {
        let mut draining = node(1, "down", None, 4000, 4096);
        draining.schedulable = false;
        let nodes = [
            draining,
            node(2, "small", None, 4000, 1024),
            node(3, "slow", None, 500, 8192),
            node(4, "split", None, 4000, 512),
            node(5, "split", None, 200, 4096),
        ];
        let regions = ["mars", "down", "small", "slow", "split"].map(|r| (r, 2));
        let placement = place(&nodes, &[], &[demand(7, 1000, 2048, &regions)], &RATIO_1);
        assert!(placement.assignments.is_empty());
        let reasons: Vec<_> = placement
            .unplaced
            .iter()
            .map(|u| (u.missing, u.reason.clone()))
            .collect();
        assert_eq!(
            reasons,
            [
                (2, Reason::UnknownRegion),
                (2, Reason::NoSchedulableNodes { nodes: 1 }),
                (
                    2,
                    Reason::MemoryTooLarge {
                        needed_mb: 2048,
                        largest_mb: 1024
                    }
                ),
                (
                    2,
                    Reason::CpuTooLarge {
                        needed_millicpus: 1000,
                        largest_millicpus: 500
                    }
                ),
                (
                    2,
                    Reason::Full {
                        needed_mb: 2048,
                        needed_millicpus: 1000,
                        largest_free_mb: 4096,
                        largest_free_millicpus: 4000
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_partial_shortfall_reports_the_missing_count_and_free_figures() {
        let nodes = [node(1, "eu-1", None, 4000, 768)];
        let placement = place(
            &nodes,
            &[],
            &[demand(7, 100, 512, &[("eu-1", 3)])],
            &RATIO_1,
        );
        assert_eq!(placement.assignments.len(), 1);
        let unplaced = &placement.unplaced[0];
        assert_eq!(unplaced.missing, 2);
        assert!(
            unplaced
                .to_string()
                .starts_with("region eu-1: 2 web instance(s) of deployment "),
            "{unplaced}"
        );
        assert!(
            unplaced
                .to_string()
                .ends_with("not placed: no node has 512 MiB free (largest free: 256 MiB)"),
            "{unplaced}"
        );
    }

    #[test]
    fn odd_ratios_admit_no_cpu_or_any_cpu() {
        let nodes = [node(1, "eu", None, 1000, 4096)];
        let demands = [demand(7, 1, 1, &[("eu", 1)])];
        let nan = Policy {
            cpu_oversubscription: f64::NAN,
        };
        assert!(place(&nodes, &[], &demands, &nan).assignments.is_empty());
        let infinite = Policy {
            cpu_oversubscription: f64::INFINITY,
        };
        let big = [demand(7, u32::MAX, 1, &[("eu", 1)])];
        assert_eq!(place(&nodes, &[], &big, &infinite).assignments.len(), 1);
    }
}
