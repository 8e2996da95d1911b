//! Decides which node runs each new instance.
//!
//! [`place`] is a pure function: it reads a snapshot of the cluster (nodes and the instances already
//! running on them) and what should run ([`Demand`]s), and returns where every new instance goes,
//! plus what could not be placed and why. It does no I/O and keeps no state, so the operator can call
//! it inside a transaction, replay it in tests, and log its input and output (every type is
//! `serde`-serializable) to explain a decision afterwards.
//!
//! The rules, in the order they apply:
//!
//! 1. **Region.** A [`RegionDemand`] is placed only on nodes of its region. Per-region minimums are
//!    the caller's business: it passes the count it wants in each region, already raised to the
//!    minimum, so this crate does not need to know the manifest's scaling rules.
//! 2. **Schedulable.** Nodes with `schedulable == false` (draining, dead) get nothing, and the
//!    instances still on them count for nothing: they are on their way out.
//! 3. **Memory is a hard cap.** A node's existing and new instances never add up to more than its
//!    `memory_mb`, because a microVM's memory cannot be taken back once the guest uses it.
//! 4. **CPU is soft.** A node accepts instances while their `millicpus` add up to at most its
//!    physical `millicpus` × [`Policy::cpu_oversubscription`]: idle vCPUs cost nothing.
//! 5. **Spread.** Each instance goes to the node, among those with room, holding the fewest instances
//!    of the same deployment; ties go to the node whose zone holds the fewest, then to the node
//!    with the lowest memory utilisation, then to the lowest node id. So a deployment never doubles
//!    up on a node while another node with room has fewer of its instances, and losing one node or
//!    zone loses as few of its instances as the capacity allows.
//!
//! Demands are served in the order given, and within a demand its regions in the order given: when
//! the cluster is short, earlier demands win. The output is the same for the same input, whatever
//! the order of `nodes` and `existing`.
//!
//! The work is one scan of the region's nodes per instance with integer arithmetic only, so
//! 10,000 instances over 500 nodes take milliseconds (see `BENCHMARKS.md`).

mod model;
mod place;
mod reason;

pub use model::{Allocation, Assignment, Demand, Node, Placement, Policy, RegionDemand, Unplaced};
pub use place::place;
pub use reason::Reason;
