//! The networks an operator opens in the firewall's default deny: destinations guests may
//! reach ([`EgressAllow`]) and the networks edges on other hosts connect from
//! ([`EdgeNetwork`]). Both are written `ADDR[/LEN]` and checked by one rule
//! ([`check_network`]).

use std::net::{IpAddr, Ipv6Addr};

use crate::NetError;

/// A destination the operator lets guests reach despite [`GUEST_DENIED`](crate::GUEST_DENIED), e.g. a managed
/// database at `10.1.2.3:5432`: a network (one address, or a CIDR) and optionally a port,
/// which then means that TCP and UDP port only (without one, every protocol and port).
///
/// Written `ADDR[/LEN][:PORT]`, an IPv6 network in brackets when it has a port:
/// `10.1.2.3:5432`, `10.20.0.0/16`, `10.20.0.0/16:443`, `fd00:1::/48`, `[fd00:1::5]:5432`.
/// Parsing is strict: no spaces, no host bits set in a CIDR, no port 0, no `/0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressAllow {
    addr: IpAddr,
    len: u8,
    port: Option<u16>,
}

impl EgressAllow {
    /// The network `addr/len`, and `port` (TCP and UDP) or every port.
    pub fn new(addr: IpAddr, len: u8, port: Option<u16>) -> Result<EgressAllow, NetError> {
        let entry = EgressAllow { addr, len, port };
        let bad = |reason| NetError::BadEgressAllow {
            entry: entry.to_string(),
            reason,
        };
        check_network(addr, len).map_err(bad)?;
        if port == Some(0) {
            return Err(bad("port 0 is no port"));
        }
        Ok(entry)
    }

    /// The network's address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The network's prefix length (32 or 128 for one address).
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The TCP and UDP port, or `None` for every protocol and port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The `forward` rule that lets guests through to it.
    pub(crate) fn rule(&self, wild: &str) -> String {
        let family = if self.addr.is_ipv4() { "ip" } else { "ip6" };
        let port = match self.port {
            Some(p) => format!(" meta l4proto {{ tcp, udp }} th dport {p}"),
            None => String::new(),
        };
        format!(
            "iifname {wild} {family} daddr {}/{}{port} accept",
            self.addr, self.len
        )
    }
}

impl std::fmt::Display for EgressAllow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let net = network_text(self.addr, self.len);
        match (self.port, self.addr) {
            (None, _) => f.write_str(&net),
            (Some(p), IpAddr::V4(_)) => write!(f, "{net}:{p}"),
            (Some(p), IpAddr::V6(_)) => write!(f, "[{net}]:{p}"),
        }
    }
}

impl std::str::FromStr for EgressAllow {
    type Err = NetError;

    fn from_str(s: &str) -> Result<EgressAllow, NetError> {
        let bad = |reason| NetError::BadEgressAllow {
            entry: s.to_owned(),
            reason,
        };
        let (net, port, bracketed) = if let Some(rest) = s.strip_prefix('[') {
            let (net, port) = rest
                .split_once("]:")
                .ok_or_else(|| bad("brackets are for an IPv6 network with a port: [ADDR]:PORT"))?;
            (net, Some(port), true)
        } else if s.matches(':').count() == 1 {
            let (net, port) = s.split_once(':').unwrap_or((s, ""));
            (net, Some(port), false)
        } else {
            (s, None, false)
        };
        let port = match port {
            None => None,
            Some(p) if digits(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number from 1 to 65535"))?,
            ),
            Some(_) => return Err(bad("the port is not a number from 1 to 65535")),
        };
        let (addr, len) = parse_network(net).map_err(bad)?;
        match (addr, port, bracketed) {
            (IpAddr::V6(_), Some(_), false) => {
                return Err(bad(
                    "an IPv6 network with a port goes in brackets: [ADDR]:PORT",
                ));
            }
            (IpAddr::V4(_), _, true) => return Err(bad("brackets are for IPv6 only")),
            _ => {}
        }
        EgressAllow::new(addr, len, port).map_err(|e| match e {
            NetError::BadEgressAllow { reason, .. } => bad(reason),
            other => other,
        })
    }
}

/// An IPv6 network the platform's edges on other hosts connect from (their addresses, or
/// the overlay's): they may reach this node's instances, on their app ports only, exactly
/// as the node itself may. Instances are reached at their IPv6 addresses, unique across
/// the platform (each node has its own /64); their IPv4 addresses are the node's own
/// business, so an IPv4 network is refused.
///
/// Written `ADDR[/LEN]`: `fd00:e0::/64`, `2001:db8::10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeNetwork {
    addr: Ipv6Addr,
    len: u8,
}

impl EdgeNetwork {
    /// The network's `nft` form, `addr/len`.
    pub(crate) fn cidr(&self) -> String {
        format!("{}/{}", self.addr, self.len)
    }
}

impl std::fmt::Display for EdgeNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&network_text(IpAddr::V6(self.addr), self.len))
    }
}

impl std::str::FromStr for EdgeNetwork {
    type Err = NetError;

    fn from_str(s: &str) -> Result<EdgeNetwork, NetError> {
        let bad = |reason| NetError::BadEdgeNetwork {
            entry: s.to_owned(),
            reason,
        };
        match parse_network(s).map_err(bad)? {
            (IpAddr::V6(addr), len) => Ok(EdgeNetwork { addr, len }),
            (IpAddr::V4(_), _) => Err(bad(
                "edges reach instances at their IPv6 addresses: give the IPv6 network they connect from",
            )),
        }
    }
}

/// `ADDR[/LEN]`, checked by [`check_network`]; one address without a length.
fn parse_network(net: &str) -> Result<(IpAddr, u8), &'static str> {
    let (addr, len) = match net.split_once('/') {
        Some((addr, len)) if digits(len) => (
            addr,
            Some(len.parse::<u8>().map_err(|_| "bad prefix length")?),
        ),
        Some(_) => return Err("the prefix length is not a number"),
        None => (net, None),
    };
    let addr: IpAddr = addr.parse().map_err(
        |_| "not an IP address (an IPv6 network with a port goes in brackets: [ADDR]:PORT)",
    )?;
    let len = len.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
    check_network(addr, len)?;
    Ok((addr, len))
}

/// The one rule for an operator's network: a prefix no longer than the address, never
/// `/0` (which would undo the default deny), no host bits set.
fn check_network(addr: IpAddr, len: u8) -> Result<(), &'static str> {
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    if u32::from(len) > bits {
        return Err("the prefix length is longer than the address");
    }
    if len == 0 {
        return Err("a /0 would undo the default deny; list the networks needed");
    }
    let value = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let host_bits = u128::MAX
        .checked_shr(128 - bits + u32::from(len))
        .unwrap_or(0);
    if value & host_bits != 0 {
        return Err("host bits are set: give the network address, or the address alone");
    }
    Ok(())
}

/// `addr`, or `addr/len` when the network is more than one address.
fn network_text(addr: IpAddr, len: u8) -> String {
    let full = if addr.is_ipv4() { 32 } else { 128 };
    if len == full {
        addr.to_string()
    } else {
        format!("{addr}/{len}")
    }
}

/// 1 to 5 ASCII digits without a leading zero (a port or a prefix length).
fn digits(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 5
        && t.bytes().all(|b| b.is_ascii_digit())
        && (t == "0" || !t.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GUEST_DENIED;

    #[test]
    fn egress_allow_entries_parse_strictly() {
        for (text, addr, len, port) in [
            ("10.1.2.3:5432", "10.1.2.3", 32, Some(5432)),
            ("10.1.2.3", "10.1.2.3", 32, None),
            ("10.20.0.0/16", "10.20.0.0", 16, None),
            ("10.20.0.0/16:443", "10.20.0.0", 16, Some(443)),
            ("fd00:1::/48", "fd00:1::", 48, None),
            ("fd00:1::5", "fd00:1::5", 128, None),
            ("[fd00:1::5]:5432", "fd00:1::5", 128, Some(5432)),
            ("[fd00:1::/48]:65535", "fd00:1::", 48, Some(65535)),
        ] {
            let e: EgressAllow = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (e.addr(), e.prefix_len(), e.port()),
                (addr.parse().unwrap(), len, port),
                "{text}"
            );
            assert_eq!(e.to_string(), text, "prints back the same");
        }
        for (text, why) in [
            ("", "not an IP address"),
            (" 10.1.2.3", "not an IP address"),
            ("10.1.2.3 ", "not an IP address"),
            ("10.1.2", "not an IP address"),
            ("example.com:5432", "not an IP address"),
            ("10.1.2.3:0", "port 0"),
            ("10.1.2.3:65536", "not a number from 1 to 65535"),
            ("10.1.2.3:+80", "not a number from 1 to 65535"),
            ("10.1.2.3:080", "not a number from 1 to 65535"),
            ("10.1.2.3:", "not a number from 1 to 65535"),
            ("10.1.2.3/24", "host bits"),
            ("10.1.2.0/33", "longer than the address"),
            ("10.1.2.0/+24", "not a number"),
            ("0.0.0.0/0", "/0"),
            ("::/0", "/0"),
            ("fd00::1/64", "host bits"),
            ("fd00::/129", "longer than the address"),
            ("[fd00::1]", "brackets"),
            ("[fd00::1]5432", "brackets"),
            ("[10.1.2.3]:5432", "IPv6 only"),
            ("fe80::1%eth0", "not an IP address"),
        ] {
            let err = text.parse::<EgressAllow>().unwrap_err();
            match &err {
                NetError::BadEgressAllow { entry, reason } => {
                    assert_eq!(entry, text);
                    assert!(reason.contains(why), "{text:?}: {reason}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
            assert!(err.to_string().contains("10.1.2.3:5432"), "says how: {err}");
        }
    }

    #[test]
    fn edge_networks_are_ipv6_and_parse_strictly() {
        for text in ["fd00:e0::/64", "2001:db8::10", "fd7a:7a77::/48"] {
            let n: EdgeNetwork = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(n.to_string(), text, "prints back the same");
        }
        assert_eq!(
            "2001:db8::10".parse::<EdgeNetwork>().unwrap().cidr(),
            "2001:db8::10/128"
        );
        for (text, why) in [
            ("10.0.0.0/8", "IPv6"),
            ("192.0.2.7", "IPv6"),
            ("::/0", "/0"),
            ("fd00::1/64", "host bits"),
            ("[fd00::1]:80", "not an IP address"),
            ("fd00::/129", "longer than the address"),
            ("", "not an IP address"),
        ] {
            match text.parse::<EdgeNetwork>().unwrap_err() {
                NetError::BadEdgeNetwork { entry, reason } => {
                    assert_eq!(entry, text);
                    assert!(reason.contains(why), "{text:?}: {reason}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_denied_range_is_a_network_address() {
        for d in GUEST_DENIED {
            assert!(
                EgressAllow::new(d.addr, d.len, None).is_ok(),
                "{d:?} is a network address"
            );
        }
    }
}
