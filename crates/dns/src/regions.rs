//! Which addresses a client is sent to: the regions' public addresses and client networks
//! (state in Postgres, `zeitwork regions set`), narrowed to those passing health checks.
//!
//! The rule, per address family (A or AAAA):
//! 1. the client's region is the one whose client network holds it most specifically
//!    (longest prefix); else the one a MaxMind-format database places it in ([`Geo`]);
//!    else the DNS server's `--default-region`;
//! 2. its healthy addresses of that family are the answer;
//! 3. when it has none, the other regions' healthy addresses are, in the order the
//!    server was told regions are near each other (`--fallback-order`), else by name;
//! 4. when no address of that family is healthy anywhere, every address is the answer:
//!    a DNS server that cannot see the edges (its own network failing) must not take the
//!    whole platform off the internet. This is how Route 53's failover behaves too.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::geo::Geo;

/// The most addresses one answer carries (a UDP answer stays well under 512 bytes).
pub const MAX_ANSWER: usize = 8;

/// One region as the DNS server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub client_networks: Vec<IpNet>,
}

/// Every region, read whole from Postgres; swapped in as one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    regions: Vec<Region>,
    default_region: Option<String>,
    /// Region names, nearest first after the client's own.
    fallback_order: Vec<String>,
}

/// The answer for one client and family: its addresses and which region they are from
/// (`None`: several, as a fallback or failing open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub addresses: Vec<IpAddr>,
    pub region: Option<String>,
}

/// An address family, from the query type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Whether `ip` is of this family.
    pub fn holds(self, ip: &IpAddr) -> bool {
        matches!(
            (self, ip),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }
}

impl Table {
    /// `regions` in any order; `default_region` for clients no network holds;
    /// `fallback_order` lists region names nearest first.
    pub fn new(
        mut regions: Vec<Region>,
        default_region: Option<String>,
        fallback_order: Vec<String>,
    ) -> Table {
        regions.sort_by(|a, b| a.name.cmp(&b.name));
        Table {
            regions,
            default_region,
            fallback_order,
        }
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Every address any region lists (what the health checker probes).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.regions
            .iter()
            .flat_map(|r| r.addresses.iter().copied())
    }

    /// The client's region and the prefix length it matched by (0: by the database or
    /// the default).
    pub fn region_of(&self, client: IpAddr, geo: Option<&Geo>) -> Option<(&Region, u8)> {
        let mut best: Option<(&Region, u8)> = None;
        for region in &self.regions {
            for net in &region.client_networks {
                if net.contains(&client) && best.is_none_or(|(_, len)| net.prefix_len() > len) {
                    best = Some((region, net.prefix_len()));
                }
            }
        }
        let named = |name: &str| self.regions.iter().find(|r| r.name == name).map(|r| (r, 0));
        best.or_else(|| {
            geo.and_then(|g| g.region_of(client))
                .and_then(|name| named(&name))
        })
        .or_else(|| named(self.default_region.as_deref()?))
    }

    /// What a client at `client` is told for `family`, given which addresses are up.
    pub fn pick(
        &self,
        client: IpAddr,
        family: Family,
        up: &HashSet<IpAddr>,
        geo: Option<&Geo>,
    ) -> Pick {
        let own = self.region_of(client, geo).map(|(region, _)| region);
        let healthy = |r: &Region| -> Vec<IpAddr> {
            r.addresses
                .iter()
                .filter(|ip| family.holds(ip) && up.contains(ip))
                .copied()
                .collect()
        };
        if let Some(region) = own {
            let addresses = healthy(region);
            if !addresses.is_empty() {
                return Pick {
                    addresses: capped(addresses),
                    region: Some(region.name.clone()),
                };
            }
        }
        let others = self.by_nearness(own.map(|r| r.name.as_str()));
        let mut addresses: Vec<IpAddr> = Vec::new();
        let mut from = Vec::new();
        for region in &others {
            let found = healthy(region);
            if !found.is_empty() {
                from.push(region.name.clone());
                addresses.extend(found);
            }
            if addresses.len() >= MAX_ANSWER {
                break;
            }
        }
        if addresses.is_empty() {
            // Nothing of this family is up anywhere: fail open (see the module's rule 4).
            let everything = own.into_iter().chain(others.iter().copied());
            addresses = everything
                .flat_map(|r| r.addresses.iter().filter(|ip| family.holds(ip)).copied())
                .collect();
            from.clear();
        }
        Pick {
            addresses: capped(addresses),
            region: (from.len() == 1).then(|| from.remove(0)),
        }
    }

    /// Every region but `own`: those in the fallback order first, in it, then the rest
    /// by name.
    fn by_nearness(&self, own: Option<&str>) -> Vec<&Region> {
        let mut out: Vec<&Region> = self
            .fallback_order
            .iter()
            .filter_map(|name| self.regions.iter().find(|r| &r.name == name))
            .collect();
        for region in &self.regions {
            if !out.iter().any(|r| r.name == region.name) {
                out.push(region);
            }
        }
        out.retain(|r| Some(r.name.as_str()) != own);
        out
    }
}

fn capped(mut addresses: Vec<IpAddr>) -> Vec<IpAddr> {
    addresses.truncate(MAX_ANSWER);
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str, addresses: &[&str], networks: &[&str]) -> Region {
        Region {
            name: name.into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            client_networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    fn table() -> Table {
        Table::new(
            vec![
                region(
                    "us-1",
                    &["198.51.100.1", "198.51.100.2", "2001:db8:1::1"],
                    &["10.2.0.0/16"],
                ),
                region(
                    "eu-1",
                    &["203.0.113.1", "203.0.113.2"],
                    &["10.1.0.0/16", "10.2.9.0/24"],
                ),
                region("ap-1", &["192.0.2.1"], &[]),
            ],
            Some("us-1".into()),
            vec!["ap-1".into()],
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn all_up(t: &Table) -> HashSet<IpAddr> {
        t.addresses().collect()
    }

    #[test]
    fn the_most_specific_client_network_wins_and_the_default_takes_the_rest() {
        let t = table();
        let up = all_up(&t);
        let eu = t.pick(ip("10.1.4.4"), Family::V4, &up, None);
        assert_eq!(eu.region.as_deref(), Some("eu-1"));
        assert_eq!(eu.addresses, [ip("203.0.113.1"), ip("203.0.113.2")]);
        assert_eq!(t.region_of(ip("10.1.4.4"), None).unwrap().1, 16);
        // 10.2.9.0/24 (eu-1) is inside 10.2.0.0/16 (us-1): the /24 wins.
        let nested = t.pick(ip("10.2.9.9"), Family::V4, &up, None);
        assert_eq!(nested.region.as_deref(), Some("eu-1"));
        assert_eq!(t.region_of(ip("10.2.9.9"), None).unwrap().1, 24);
        let elsewhere = t.pick(ip("172.16.0.1"), Family::V4, &up, None);
        assert_eq!(elsewhere.region.as_deref(), Some("us-1"));
        assert_eq!(
            t.region_of(ip("172.16.0.1"), None).unwrap().1,
            0,
            "by default"
        );
        let v6 = t.pick(ip("10.2.0.1"), Family::V6, &up, None);
        assert_eq!(v6.addresses, [ip("2001:db8:1::1")]);
    }

    #[test]
    fn a_region_with_no_healthy_address_is_withdrawn_for_the_nearest_other() {
        let t = table();
        let mut up = all_up(&t);
        up.remove(&ip("203.0.113.1"));
        let one_left = t.pick(ip("10.1.0.1"), Family::V4, &up, None);
        assert_eq!(
            one_left.addresses,
            [ip("203.0.113.2")],
            "only the healthy one"
        );
        up.remove(&ip("203.0.113.2"));
        let moved = t.pick(ip("10.1.0.1"), Family::V4, &up, None);
        assert_eq!(
            moved.addresses,
            [ip("192.0.2.1"), ip("198.51.100.1"), ip("198.51.100.2")]
        );
        assert_eq!(
            moved.region, None,
            "from two regions: ap-1 nearest, then by name"
        );
        up.remove(&ip("192.0.2.1"));
        let moved = t.pick(ip("10.1.0.1"), Family::V4, &up, None);
        assert_eq!(moved.region.as_deref(), Some("us-1"));
    }

    #[test]
    fn nothing_healthy_anywhere_fails_open() {
        let t = table();
        let none = HashSet::new();
        let pick = t.pick(ip("10.1.0.1"), Family::V4, &none, None);
        assert_eq!(
            pick.addresses[..2],
            [ip("203.0.113.1"), ip("203.0.113.2")],
            "own first"
        );
        assert_eq!(pick.addresses.len(), 5);
        assert_eq!(pick.region, None);
    }

    #[test]
    fn no_region_and_no_default_gives_every_healthy_region() {
        let t = Table::new(table().regions, None, Vec::new());
        let up = all_up(&t);
        let pick = t.pick(ip("172.16.0.1"), Family::V4, &up, None);
        assert_eq!(pick.addresses.len(), 5);
        assert!(t.region_of(ip("172.16.0.1"), None).is_none());
    }
}
