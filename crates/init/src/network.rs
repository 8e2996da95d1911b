//! Networking: `lo` up, and each configured interface up with its addresses and routes.
//! Links are point-to-point to the host: the gateway is first made reachable with an
//! on-link host route, then the default route goes via it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use zeitwork_core::guest::Interface;

use crate::console;
use crate::error::{Context, Error, Result};
use crate::netlink::Netlink;

/// How long init waits for a configured interface to appear (its driver is a module).
const LINK_TIMEOUT: Duration = Duration::from_secs(5);

/// One interface's configuration, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    pub name: String,
    pub ipv4: Option<(Ipv4Addr, u8)>,
    pub gateway4: Option<Ipv4Addr>,
    pub ipv6: Option<(Ipv6Addr, u8)>,
    pub gateway6: Option<Ipv6Addr>,
}

/// `addr/prefix` with the prefix at most `max` (32 or 128).
fn parse_cidr<A: std::str::FromStr>(s: &str, max: u8) -> Option<(A, u8)> {
    let (addr, prefix) = s.trim().split_once('/')?;
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= max).then_some(())?;
    Some((addr.parse().ok()?, prefix))
}

/// Parses and checks the config's interfaces.
pub fn plan(interfaces: &[Interface]) -> Result<Vec<LinkPlan>> {
    interfaces.iter().map(plan_one).collect()
}

fn plan_one(i: &Interface) -> Result<LinkPlan> {
    let what = || format!("configuring interface {:?}", i.name);
    if i.name.is_empty() || i.name.len() > 15 || i.name.contains(['/', ' ', '\0']) {
        return Err(Error::invalid(what(), "not a valid interface name"));
    }
    let bad =
        |field: &str, value: &str| Error::invalid(what(), format!("{field} {value:?} is invalid"));
    let ipv4 = match &i.ipv4 {
        Some(s) => Some(parse_cidr::<Ipv4Addr>(s, 32).ok_or_else(|| bad("ipv4", s))?),
        None => None,
    };
    let ipv6 = match &i.ipv6 {
        Some(s) => Some(parse_cidr::<Ipv6Addr>(s, 128).ok_or_else(|| bad("ipv6", s))?),
        None => None,
    };
    let gateway4 = match &i.gateway4 {
        Some(s) => Some(s.trim().parse().map_err(|_| bad("gateway4", s))?),
        None => None,
    };
    let gateway6 = match &i.gateway6 {
        Some(s) => Some(s.trim().parse().map_err(|_| bad("gateway6", s))?),
        None => None,
    };
    Ok(LinkPlan {
        name: i.name.clone(),
        ipv4,
        gateway4,
        ipv6,
        gateway6,
    })
}

/// The interface's index, waiting (bounded) for its driver to create it.
fn wait_for_link(name: &str, timeout: Duration) -> Result<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        match nix::net::if_::if_nametoindex(name) {
            Ok(index) => return Ok(index),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| {
                    format!("waiting {}s for interface {name}", timeout.as_secs())
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Brings `lo` and every planned link up, with addresses and routes.
pub fn configure(links: &[LinkPlan]) -> Result<()> {
    let mut nl = Netlink::open().context("opening a netlink socket")?;
    let lo = wait_for_link("lo", LINK_TIMEOUT)?;
    nl.link_up(lo).context("bringing lo up")?;
    for link in links {
        configure_link(&mut nl, link)?;
    }
    Ok(())
}

fn configure_link(nl: &mut Netlink, link: &LinkPlan) -> Result<()> {
    let name = &link.name;
    console::debug(|| format!("configuring {link:?}"));
    let index = wait_for_link(name, LINK_TIMEOUT)?;
    nl.link_up(index)
        .with_context(|| format!("bringing {name} up"))?;

    let families = [
        (
            link.ipv4.map(|(a, p)| (IpAddr::V4(a), p)),
            link.gateway4.map(IpAddr::V4),
            32,
        ),
        (
            link.ipv6.map(|(a, p)| (IpAddr::V6(a), p)),
            link.gateway6.map(IpAddr::V6),
            128,
        ),
    ];
    for (address, gateway, host_prefix) in families {
        if let Some((ip, prefix)) = address {
            nl.add_address(index, ip, prefix)
                .with_context(|| format!("adding {ip}/{prefix} to {name}"))?;
        }
        if let Some(gw) = gateway {
            nl.add_route(index, gw, host_prefix, None)
                .with_context(|| format!("adding the on-link route to {gw} on {name}"))?;
            let any = match gw {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            nl.add_route(index, any, 0, Some(gw))
                .with_context(|| format!("adding the default route via {gw} on {name}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(
        ipv4: Option<&str>,
        gw4: Option<&str>,
        ipv6: Option<&str>,
        gw6: Option<&str>,
    ) -> Interface {
        Interface {
            name: "eth0".into(),
            ipv4: ipv4.map(Into::into),
            gateway4: gw4.map(Into::into),
            ipv6: ipv6.map(Into::into),
            gateway6: gw6.map(Into::into),
        }
    }

    #[test]
    fn addresses_prefixes_and_gateways_parse() {
        let p = plan(&[iface(
            Some("172.31.0.1/31"),
            Some("172.31.0.0"),
            Some("fd00:1::3/127"),
            Some("fd00:1::2"),
        )])
        .unwrap();
        assert_eq!(
            p,
            [LinkPlan {
                name: "eth0".into(),
                ipv4: Some((Ipv4Addr::new(172, 31, 0, 1), 31)),
                gateway4: Some(Ipv4Addr::new(172, 31, 0, 0)),
                ipv6: Some(("fd00:1::3".parse().unwrap(), 127)),
                gateway6: Some("fd00:1::2".parse().unwrap()),
            }]
        );
        let p = plan(&[iface(None, None, Some("fd00::1/64"), None)]).unwrap();
        assert_eq!((p[0].ipv4, p[0].gateway6), (None, None));
        assert!(plan(&[]).unwrap().is_empty());
    }

    #[test]
    fn bad_values_name_the_field() {
        for (i, field) in [
            (iface(Some("172.31.0.1"), None, None, None), "ipv4"),
            (iface(Some("172.31.0.1/33"), None, None, None), "ipv4"),
            (iface(Some("fd00::1/31"), None, None, None), "ipv4"),
            (iface(None, Some("300.1.1.1"), None, None), "gateway4"),
            (iface(None, None, Some("fd00::1/129"), None), "ipv6"),
            (iface(None, None, Some("10.0.0.1/8"), None), "ipv6"),
            (iface(None, None, None, Some("10.0.0.1")), "gateway6"),
        ] {
            let e = plan(&[i]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{field} ")) && e.contains("eth0"),
                "{e}"
            );
        }
        let mut i = iface(None, None, None, None);
        i.name = "a-very-long-interface-name".into();
        assert!(plan(&[i]).is_err());
    }
}
