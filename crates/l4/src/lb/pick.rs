//! The order in which backends are tried for one new connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Algorithm;
use super::backend::Backend;

/// Indices into `backends`, best first: the healthy ones in the algorithm's order. When
/// none is healthy all are tried: the checks are then likelier wrong than every edge
/// dead, and a refused connect costs little.
pub(super) fn order(
    algorithm: Algorithm,
    backends: &[Backend],
    client: IpAddr,
    next: &AtomicUsize,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..backends.len())
        .filter(|&i| backends[i].is_up())
        .collect();
    if order.is_empty() {
        order = (0..backends.len()).collect();
    }
    match algorithm {
        Algorithm::RoundRobin => rotate(&mut order, next),
        Algorithm::LeastConnections => {
            // Rotating first spreads ties instead of piling them on the first backend.
            rotate(&mut order, next);
            order.sort_by_key(|&i| backends[i].active.load(Ordering::Relaxed));
        }
        Algorithm::IpHash => {
            order.sort_by_key(|&i| std::cmp::Reverse(score(client, backends[i].addr)));
        }
    }
    order
}

fn rotate(order: &mut [usize], next: &AtomicUsize) {
    if !order.is_empty() {
        let start = next.fetch_add(1, Ordering::Relaxed) % order.len();
        order.rotate_left(start);
    }
}

/// Rendezvous (highest random weight) score of a client for a backend. FNV-1a with a
/// final mix is fixed across builds, so every balancer replica agrees on the mapping.
fn score(client: IpAddr, backend: SocketAddr) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    match client {
        IpAddr::V4(ip) => eat(&ip.octets()),
        IpAddr::V6(ip) => eat(&ip.octets()),
    }
    match backend.ip() {
        IpAddr::V4(ip) => eat(&ip.octets()),
        IpAddr::V6(ip) => eat(&ip.octets()),
    }
    eat(&backend.port().to_be_bytes());
    // splitmix64's finaliser: FNV alone clusters on inputs differing in one byte.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::HealthConfig;
    use crate::lb::backend::Source;

    fn backends(n: u16) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::new(SocketAddr::from(([10, 0, 0, 1], 8000 + i))))
            .collect()
    }

    fn down(b: &Backend) {
        let health = HealthConfig {
            fall: 1,
            ..HealthConfig::default()
        };
        b.record(false, Source::Check, &health);
    }

    fn client(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i * 7919))
    }

    #[test]
    fn round_robin_takes_turns_and_skips_down_backends() {
        let b = backends(3);
        let next = AtomicUsize::new(0);
        let firsts: Vec<usize> = (0..6)
            .map(|_| order(Algorithm::RoundRobin, &b, client(0), &next)[0])
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        down(&b[1]);
        let o = order(Algorithm::RoundRobin, &b, client(0), &next);
        assert_eq!(o.len(), 2);
        assert!(!o.contains(&1));
        down(&b[0]);
        down(&b[2]);
        assert_eq!(
            order(Algorithm::RoundRobin, &b, client(0), &next).len(),
            3,
            "all down: try all"
        );
    }

    #[test]
    fn least_connections_prefers_the_idlest() {
        let b = backends(3);
        b[0].active.store(5, Ordering::Relaxed);
        b[1].active.store(1, Ordering::Relaxed);
        b[2].active.store(3, Ordering::Relaxed);
        let next = AtomicUsize::new(0);
        assert_eq!(
            order(Algorithm::LeastConnections, &b, client(0), &next),
            [1, 2, 0]
        );
    }

    #[test]
    fn ip_hash_is_stable_spreads_clients_and_moves_only_a_dead_backends_clients() {
        let b = backends(4);
        let next = AtomicUsize::new(0);
        let pick = |c| order(Algorithm::IpHash, &b, client(c), &next)[0];
        let before: Vec<usize> = (0..400).map(pick).collect();
        assert_eq!(before, (0..400).map(pick).collect::<Vec<_>>());
        for i in 0..4 {
            let n = before.iter().filter(|&&p| p == i).count();
            assert!((50..150).contains(&n), "backend {i} got {n} of 400 clients");
        }
        down(&b[2]);
        let after: Vec<usize> = (0..400).map(pick).collect();
        for (was, is) in before.iter().zip(&after) {
            assert_ne!(*is, 2);
            if *was != 2 {
                assert_eq!(was, is, "a client of a live backend stays");
            }
        }
    }
}
