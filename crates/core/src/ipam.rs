//! Instance addresses, unique platform-wide: the control plane gives every node its own
//! IPv6 /64 out of the platform's ULA /48 (in the same transaction as the event that
//! registers or enrolls the node, so two nodes never share one), and edges reach an
//! instance only at its IPv6 address inside its node's /64. A node's report of an address
//! outside its own /64 is refused. Instances' IPv4 addresses (the same `172.31.0.0/16` on
//! every node) serve only the guests' own IPv4 egress and are never dialled by an edge.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

/// `fd7a:7a77:0::/48`: node `n` gets `fd7a:7a77:0:n::/64` (n from 1 to 65535).
const PLATFORM: u128 = 0xfd7a_7a77_0000 << 80;

/// The /64 of the node with this index.
pub fn node_prefix(index: u16) -> String {
    format!(
        "{}/64",
        Ipv6Addr::from(PLATFORM | (u128::from(index) << 64))
    )
}

/// The index of a node prefix [`node_prefix`] made; `None` for anything else.
pub fn prefix_index(prefix: &str) -> Option<u16> {
    let addr: Ipv6Addr = prefix.strip_suffix("/64")?.parse().ok()?;
    let bits = u128::from(addr);
    let index = (bits >> 64) as u16;
    (bits >> 80 == PLATFORM >> 80 && bits as u64 == 0 && index != 0).then_some(index)
}

/// The first node prefix none of `taken` is; `None` when all 65,535 are taken.
pub fn free_prefix<'a>(taken: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let taken: BTreeSet<u16> = taken.into_iter().filter_map(prefix_index).collect();
    (1..=u16::MAX).find(|i| !taken.contains(i)).map(node_prefix)
}

/// The node's own address on the overlay: the first of its /64 (instances' links start
/// at the third, `::2`), so it needs no allocation of its own.
pub fn overlay_address(prefix: &str) -> Option<Ipv6Addr> {
    let index = prefix_index(prefix)?;
    Some(Ipv6Addr::from(PLATFORM | (u128::from(index) << 64) | 1))
}

/// Whether `addr` lies inside the node prefix `prefix`.
pub fn contains(prefix: &str, addr: IpAddr) -> bool {
    match (prefix_index(prefix), addr) {
        (Some(index), IpAddr::V6(a)) => u128::from(a) >> 64 == (PLATFORM >> 64) | u128::from(index),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_distinct_and_hold_only_their_own_addresses() {
        assert_eq!(node_prefix(1), "fd7a:7a77:0:1::/64");
        assert_eq!(prefix_index("fd7a:7a77:0:1::/64"), Some(1));
        assert_eq!(prefix_index("fd7a:7a77:0:ffff::/64"), Some(u16::MAX));
        for bad in [
            "fd7a:7a77:0:0::/64",
            "fd7a:7a77:1:1::/64",
            "fd7a:7a77:0:1::1/64",
            "fd7a:7a77:0:1::/48",
            "x",
        ] {
            assert_eq!(prefix_index(bad), None, "{bad}");
        }
        let taken = [node_prefix(1), node_prefix(3)];
        assert_eq!(
            free_prefix(taken.iter().map(String::as_str)),
            Some(node_prefix(2))
        );
        let mine = node_prefix(2);
        assert!(contains(&mine, "fd7a:7a77:0:2::3".parse().unwrap()));
        assert!(
            !contains(&mine, "fd7a:7a77:0:1::3".parse().unwrap()),
            "another node's"
        );
        assert!(
            !contains(&mine, "172.31.0.3".parse().unwrap()),
            "IPv4 is node-local"
        );
        let overlay = overlay_address(&mine).unwrap();
        assert_eq!(overlay, "fd7a:7a77:0:2::1".parse::<Ipv6Addr>().unwrap());
        assert!(contains(&mine, IpAddr::V6(overlay)));
        assert_eq!(overlay_address("fd00::/64"), None);
    }
}
