//! Addresses are a pure function of the instance's index on its node (the index comes
//! from IPAM in Postgres), so the agent can recompute them after a restart.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::NetError;

/// Every node uses this private IPv4 range for its instances; it never leaves the node
/// (egress is masqueraded), so nodes may reuse it.
pub const POOL4: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 0);
pub const POOL4_PREFIX: u8 = 16;

/// The node's IPv6 ULA /64, from which each instance gets a /127.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePrefix(u64);

impl NodePrefix {
    /// Parses `fdxx:xxxx:xxxx:xxxx::/64`.
    pub fn parse(s: &str) -> Result<NodePrefix, NetError> {
        let bad = || NetError::BadPrefix(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
        if len != "64" || addr.segments()[0] & 0xfe00 != 0xfc00 || u128::from(addr) as u64 != 0 {
            return Err(bad());
        }
        Ok(NodePrefix((u128::from(addr) >> 64) as u64))
    }

    pub fn to_cidr(self) -> String {
        format!("{}/64", Ipv6Addr::from(u128::from(self.0) << 64))
    }
}

/// Every /31 of the IPv4 pool, and so every index a VM's link may have.
const CAPACITY: u32 = 1 << (32 - POOL4_PREFIX - 1);
/// Builder VMs' links take the pool's last indexes, one per concurrent build of the node;
/// instances take the ones below ([`INSTANCE_LINKS`]), so neither can take the other's.
pub const BUILDER_LINKS: u32 = 256;
/// How many instances one node can address.
pub const INSTANCE_LINKS: u32 = CAPACITY - BUILDER_LINKS;

/// The two ends of one VM's point-to-point links (an instance's or a builder's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceAddrs {
    pub host4: Ipv4Addr,
    pub guest4: Ipv4Addr,
    pub host6: Ipv6Addr,
    pub guest6: Ipv6Addr,
}

impl InstanceAddrs {
    /// Instance `index` (0-based, below [`INSTANCE_LINKS`]) takes the index-th /31 of the
    /// IPv4 pool and the index-th /127 of the node prefix; the host end is the even address.
    pub fn for_index(prefix: NodePrefix, index: u32) -> Result<InstanceAddrs, NetError> {
        if index >= INSTANCE_LINKS {
            return Err(NetError::PoolExhausted(index));
        }
        Ok(InstanceAddrs::at(prefix, index))
    }

    /// The link index and addresses of the node's builder VM `n` (below
    /// [`BUILDER_LINKS`]): the pool's last ones, which no instance takes.
    pub fn for_builder(prefix: NodePrefix, n: u32) -> Result<(u32, InstanceAddrs), NetError> {
        if n >= BUILDER_LINKS {
            return Err(NetError::BuildersExhausted(n));
        }
        let index = INSTANCE_LINKS + n;
        Ok((index, InstanceAddrs::at(prefix, index)))
    }

    fn at(prefix: NodePrefix, index: u32) -> InstanceAddrs {
        let base4 = u32::from(POOL4) + 2 * index;
        let base6 = (u128::from(prefix.0) << 64) + 2 * u128::from(index) + 2;
        InstanceAddrs {
            host4: Ipv4Addr::from(base4),
            guest4: Ipv4Addr::from(base4 + 1),
            host6: Ipv6Addr::from(base6),
            guest6: Ipv6Addr::from(base6 + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_get_disjoint_point_to_point_pairs() {
        let p = NodePrefix::parse("fd00:7a:1:2::/64").unwrap();
        let a = InstanceAddrs::for_index(p, 0).unwrap();
        let b = InstanceAddrs::for_index(p, 1).unwrap();
        assert_eq!(
            (a.host4, a.guest4),
            (Ipv4Addr::new(172, 31, 0, 0), Ipv4Addr::new(172, 31, 0, 1))
        );
        assert_eq!(
            (b.host4, b.guest4),
            (Ipv4Addr::new(172, 31, 0, 2), Ipv4Addr::new(172, 31, 0, 3))
        );
        assert_eq!(a.host6, "fd00:7a:1:2::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(b.guest6, "fd00:7a:1:2::5".parse::<Ipv6Addr>().unwrap());
        let last = InstanceAddrs::for_index(p, 32511).unwrap();
        assert_eq!(last.guest4, Ipv4Addr::new(172, 31, 253, 255));
        assert!(matches!(
            InstanceAddrs::for_index(p, 32512),
            Err(NetError::PoolExhausted(_))
        ));
        // Builders take the rest, and only they.
        let (index, first) = InstanceAddrs::for_builder(p, 0).unwrap();
        assert_eq!(
            (index, first.guest4),
            (32512, Ipv4Addr::new(172, 31, 254, 1))
        );
        let (index, last) = InstanceAddrs::for_builder(p, 255).unwrap();
        assert_eq!(
            (index, last.guest4),
            (32767, Ipv4Addr::new(172, 31, 255, 255))
        );
        assert!(matches!(
            InstanceAddrs::for_builder(p, 256),
            Err(NetError::BuildersExhausted(256))
        ));
        assert_eq!(p.to_cidr(), "fd00:7a:1:2::/64");
    }

    #[test]
    fn only_ula_slash_64_prefixes() {
        assert!(NodePrefix::parse("2001:db8::/64").is_err());
        assert!(NodePrefix::parse("fd00::/48").is_err());
        assert!(NodePrefix::parse("fd00::1/64").is_err());
        assert!(NodePrefix::parse("nonsense").is_err());
    }
}
