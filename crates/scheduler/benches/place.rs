//! How long `place` takes for 10,000 new instances over 500 nodes (target: well under a second).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;
use zeitwork_scheduler::{Allocation, Demand, Node, Policy, RegionDemand, place};

/// 500 nodes of 16 CPUs / 64 GiB in `regions` regions of three zones each.
fn nodes(regions: usize) -> Vec<Node> {
    (0..500_u128)
        .map(|i| Node {
            id: Uuid::from_u128(i + 1),
            region: format!("region-{}", i as usize % regions),
            zone: Some(format!("zone-{}", i % 3)),
            millicpus: 16_000,
            memory_mb: 65_536,
            schedulable: i % 50 != 0,
        })
        .collect()
}

/// 1,000 deployments of 10 instances each (256–1024 MiB), spread over the regions.
fn demands(regions: usize) -> Vec<Demand> {
    (0..1000_u128)
        .map(|i| Demand {
            deployment: Uuid::from_u128(1_000_000 + i),
            process: "web".to_owned(),
            millicpus: 250,
            memory_mb: 256 << (i % 3),
            regions: vec![RegionDemand {
                region: format!("region-{}", i as usize % regions),
                count: 10,
            }],
        })
        .collect()
}

/// One instance of every tenth deployment already runs somewhere.
fn existing() -> Vec<Allocation> {
    (0..100_u128)
        .map(|i| Allocation {
            node: Uuid::from_u128(i * 5 + 2),
            deployment: Uuid::from_u128(1_000_000 + i * 10),
            millicpus: 250,
            memory_mb: 512,
        })
        .collect()
}

fn bench_place(c: &mut Criterion) {
    let policy = Policy {
        cpu_oversubscription: 4.0,
    };
    let existing = existing();
    for regions in [1, 5] {
        let (nodes, demands) = (nodes(regions), demands(regions));
        let placement = place(&nodes, &existing, &demands, &policy);
        assert_eq!(
            placement.assignments.len(),
            10_000,
            "the cluster fits every instance"
        );
        c.bench_function(
            &format!("place 10k instances on 500 nodes in {regions} region(s)"),
            |b| {
                b.iter(|| {
                    place(
                        black_box(&nodes),
                        black_box(&existing),
                        black_box(&demands),
                        &policy,
                    )
                });
            },
        );
    }
}

criterion_group!(benches, bench_place);
criterion_main!(benches);
