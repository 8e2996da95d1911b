//! Properties `place` must hold on any cluster, checked on random small ones.

use std::collections::HashMap;

use proptest::prelude::*;
use uuid::Uuid;
use zeitwork_scheduler::{Allocation, Demand, Node, Placement, Policy, RegionDemand, place};

/// Demands may name a region without nodes ("r4"), to exercise the unknown-region path.
const REGIONS: [&str; 4] = ["r1", "r2", "r3", "r4"];

/// A random cluster and demands. Each demand has its own deployment, so a node's instances of a
/// deployment all come from one demand; existing allocations reuse those deployments.
#[derive(Debug, Clone)]
struct Case {
    nodes: Vec<Node>,
    existing: Vec<Allocation>,
    demands: Vec<Demand>,
    policy: Policy,
}

fn arb_nodes() -> impl Strategy<Value = Vec<Node>> {
    let node = (
        0..3_usize,
        proptest::option::of(0..2_u8),
        0..=8_u32,
        0..=16_u64,
        proptest::bool::weighted(0.8),
    );
    proptest::collection::vec(node, 0..10).prop_map(|nodes| {
        nodes
            .into_iter()
            .enumerate()
            .map(|(i, (region, zone, cpus, memory, schedulable))| Node {
                // Ids in reverse of input order, so sorting matters.
                id: Uuid::from_u128(1000 - i as u128),
                region: REGIONS[region].to_owned(),
                zone: zone.map(|z| format!("z{z}")),
                millicpus: cpus * 500,
                memory_mb: memory * 256,
                schedulable,
            })
            .collect()
    })
}

fn arb_case() -> impl Strategy<Value = Case> {
    let existing = proptest::collection::vec((0..12_u128, 1..=6_u128, 0..=4_u32, 0..=4_u64), 0..16)
        .prop_map(|allocations| {
            allocations
                .into_iter()
                .map(|(node, deployment, cpus, memory)| Allocation {
                    // Indices past the node count name nodes that do not exist.
                    node: Uuid::from_u128(1000 - node),
                    deployment: Uuid::from_u128(deployment),
                    millicpus: cpus * 250,
                    memory_mb: memory * 256,
                })
                .collect::<Vec<_>>()
        });
    let demand = (
        0..=8_u32,
        0..=8_u64,
        proptest::sample::subsequence(REGIONS.to_vec(), 0..=REGIONS.len()),
        proptest::collection::vec(0..6_u32, REGIONS.len()),
    );
    let demands = proptest::collection::vec(demand, 0..5).prop_map(|demands| {
        demands
            .into_iter()
            .enumerate()
            .map(|(i, (cpus, memory, regions, counts))| Demand {
                deployment: Uuid::from_u128(i as u128 + 1),
                process: "web".to_owned(),
                millicpus: cpus * 250,
                memory_mb: memory * 128,
                regions: regions
                    .into_iter()
                    .zip(counts)
                    .map(|(region, count)| RegionDemand {
                        region: region.to_owned(),
                        count,
                    })
                    .collect(),
            })
            .collect::<Vec<_>>()
    });
    let ratio = prop_oneof![Just(0.5), Just(1.0), Just(1.5), Just(4.0)];
    (arb_nodes(), existing, demands, ratio).prop_map(|(nodes, existing, demands, ratio)| Case {
        nodes,
        existing,
        demands,
        policy: Policy {
            cpu_oversubscription: ratio,
        },
    })
}

/// A node's state once the placement is applied, recomputed independently of the scheduler.
#[derive(Default)]
struct Usage {
    memory_mb: u64,
    millicpus: u64,
    new_instances: u32,
    per_deployment: HashMap<Uuid, u32>,
}

fn usage_after(case: &Case, placement: &Placement) -> HashMap<Uuid, Usage> {
    let mut usage: HashMap<Uuid, Usage> = case
        .nodes
        .iter()
        .filter(|node| node.schedulable)
        .map(|node| (node.id, Usage::default()))
        .collect();
    for allocation in &case.existing {
        if let Some(u) = usage.get_mut(&allocation.node) {
            u.memory_mb += allocation.memory_mb;
            u.millicpus += u64::from(allocation.millicpus);
            *u.per_deployment.entry(allocation.deployment).or_default() += 1;
        }
    }
    for assignment in &placement.assignments {
        let demand = demand_of(case, assignment.deployment);
        let u = usage
            .get_mut(&assignment.node)
            .expect("assigned to a schedulable node");
        u.memory_mb += demand.memory_mb;
        u.millicpus += u64::from(demand.millicpus);
        u.new_instances += 1;
        *u.per_deployment.entry(assignment.deployment).or_default() += 1;
    }
    usage
}

fn demand_of(case: &Case, deployment: Uuid) -> &Demand {
    case.demands
        .iter()
        .find(|d| d.deployment == deployment)
        .expect("known deployment")
}

fn cpu_limit(node: &Node, policy: &Policy) -> u64 {
    (f64::from(node.millicpus) * policy.cpu_oversubscription) as u64
}

fn has_room(node: &Node, usage: &Usage, demand: &Demand, policy: &Policy) -> bool {
    usage.memory_mb + demand.memory_mb <= node.memory_mb
        && usage.millicpus + u64::from(demand.millicpus) <= cpu_limit(node, policy)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_overcommits_memory(case in arb_case()) {
        let placement = place(&case.nodes, &case.existing, &case.demands, &case.policy);
        let usage = usage_after(&case, &placement);
        for node in &case.nodes {
            if let Some(u) = usage.get(&node.id).filter(|u| u.new_instances > 0) {
                prop_assert!(u.memory_mb <= node.memory_mb, "node {} holds {} MiB of {}", node.id, u.memory_mb, node.memory_mb);
            }
        }
    }

    #[test]
    fn never_exceeds_cpu_times_ratio(case in arb_case()) {
        let placement = place(&case.nodes, &case.existing, &case.demands, &case.policy);
        let usage = usage_after(&case, &placement);
        for node in &case.nodes {
            if let Some(u) = usage.get(&node.id).filter(|u| u.new_instances > 0) {
                prop_assert!(u.millicpus <= cpu_limit(node, &case.policy));
            }
        }
    }

    /// A node that received an instance of a deployment never ends with two more of it than
    /// another node of the region that still has room; in particular it never holds two while
    /// such a node holds none.
    #[test]
    fn never_doubles_up_while_another_node_has_room(case in arb_case()) {
        let placement = place(&case.nodes, &case.existing, &case.demands, &case.policy);
        let usage = usage_after(&case, &placement);
        for assignment in &placement.assignments {
            let demand = demand_of(&case, assignment.deployment);
            let count = |id: &Uuid| usage[id].per_deployment.get(&demand.deployment).copied().unwrap_or(0);
            let here = count(&assignment.node);
            for other in case.nodes.iter().filter(|n| n.schedulable && n.region == assignment.region) {
                if has_room(other, &usage[&other.id], demand, &case.policy) {
                    prop_assert!(
                        count(&other.id) + 1 >= here,
                        "node {} holds {here} of {} while node {} has room and holds {}",
                        assignment.node, demand.deployment, other.id, count(&other.id)
                    );
                }
            }
        }
    }

    #[test]
    fn lands_only_in_the_demanded_region_on_schedulable_nodes(case in arb_case()) {
        let placement = place(&case.nodes, &case.existing, &case.demands, &case.policy);
        for assignment in &placement.assignments {
            let node = case.nodes.iter().find(|n| n.id == assignment.node).expect("a listed node");
            let demand = demand_of(&case, assignment.deployment);
            prop_assert!(node.schedulable);
            prop_assert_eq!(&node.region, &assignment.region);
            prop_assert!(demand.regions.iter().any(|r| r.region == assignment.region && r.count > 0));
        }
    }

    #[test]
    fn placed_plus_unplaced_is_what_was_demanded(case in arb_case()) {
        let placement = place(&case.nodes, &case.existing, &case.demands, &case.policy);
        for demand in &case.demands {
            for want in &demand.regions {
                let placed = placement.assignments.iter()
                    .filter(|a| a.deployment == demand.deployment && a.region == want.region)
                    .count();
                let missing: u32 = placement.unplaced.iter()
                    .filter(|u| u.deployment == demand.deployment && u.region == want.region)
                    .map(|u| u.missing)
                    .sum();
                prop_assert_eq!(placed as u32 + missing, want.count);
            }
        }
        prop_assert!(placement.unplaced.iter().all(|u| u.missing > 0));
    }

    /// The scheduler does not give up while a node could still take the instance.
    #[test]
    fn reports_unplaced_only_when_no_node_has_room(case in arb_case()) {
        let placement = place(&case.nodes, &case.existing, &case.demands, &case.policy);
        let usage = usage_after(&case, &placement);
        for unplaced in &placement.unplaced {
            let demand = demand_of(&case, unplaced.deployment);
            for node in case.nodes.iter().filter(|n| n.schedulable && n.region == unplaced.region) {
                prop_assert!(
                    !has_room(node, &usage[&node.id], demand, &case.policy),
                    "{unplaced} although node {} has room", node.id
                );
            }
        }
    }

    #[test]
    fn same_input_in_any_order_gives_the_same_placement(
        (case, nodes, existing) in arb_case().prop_flat_map(|case| {
            let nodes = Just(case.nodes.clone()).prop_shuffle();
            let existing = Just(case.existing.clone()).prop_shuffle();
            (Just(case), nodes, existing)
        })
    ) {
        let placement = place(&case.nodes, &case.existing, &case.demands, &case.policy);
        prop_assert_eq!(&placement, &place(&case.nodes, &case.existing, &case.demands, &case.policy));
        prop_assert_eq!(&placement, &place(&nodes, &existing, &case.demands, &case.policy));
    }
}
