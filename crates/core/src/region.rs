//! A region's public face: the addresses clients reach it at and the client networks it
//! serves. One parser for each, used by the API (which refuses what they refuse) and by
//! `zeitwork server dns` (which reads them back from the regions table).

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

/// The most public addresses a region lists.
pub const MAX_ADDRESSES: usize = 16;
/// The most client networks a region lists.
pub const MAX_CLIENT_NETWORKS: usize = 1024;

/// Why a list was refused: the index of the offending entry (`None`: the list itself) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub index: Option<usize>,
    pub message: String,
}

/// Public addresses: IP literals, each once, at most [`MAX_ADDRESSES`]. Unspecified and
/// multicast addresses name no host and are refused (loopback is allowed: a one-machine
/// platform's region is reached at 127.0.0.1).
pub fn parse_addresses(list: &[String]) -> Result<Vec<IpAddr>, Refused> {
    parse_list(list, MAX_ADDRESSES, "addresses", |text| {
        let ip: IpAddr = text
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address"))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(format!("{ip} names no host (unspecified or multicast)"));
        }
        Ok(ip)
    })
}

/// Client networks: CIDRs with no host bits set, each once, at most
/// [`MAX_CLIENT_NETWORKS`].
pub fn parse_client_networks(list: &[String]) -> Result<Vec<IpNet>, Refused> {
    parse_list(list, MAX_CLIENT_NETWORKS, "client networks", |text| {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("{text:?} is not a CIDR like 10.1.0.0/16"))?;
        if net.trunc() != net {
            return Err(format!(
                "{text} has host bits set; the network is {}",
                net.trunc()
            ));
        }
        Ok(net)
    })
}

/// Parses each entry of `list` (at most `max` of them) with `one`, refusing an entry
/// listed twice; a refusal names the entry's index.
fn parse_list<T: std::hash::Hash + Eq + Copy + std::fmt::Display>(
    list: &[String],
    max: usize,
    what: &str,
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Refused> {
    if list.len() > max {
        return Err(Refused {
            index: None,
            message: format!("at most {max} {what} per region"),
        });
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let refuse = |message: String| Refused {
            index: Some(i),
            message,
        };
        let value = one(text).map_err(refuse)?;
        if !seen.insert(value) {
            return Err(refuse(format!("{value} is listed twice")));
        }
        out.push(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn addresses_are_reachable_ip_literals_each_once() {
        let ok = parse_addresses(&strings(&["203.0.113.7", "2001:db8::7"])).unwrap();
        assert_eq!(ok.len(), 2);
        for (bad, index) in [
            (vec!["203.0.113.7", "edge.example"], 1),
            (vec!["::"], 0),
            (vec!["224.0.0.1"], 0),
            (vec!["203.0.113.7", "203.0.113.7"], 1),
        ] {
            let err = parse_addresses(&strings(&bad)).unwrap_err();
            assert_eq!(err.index, Some(index), "{bad:?}: {err:?}");
        }
        let many: Vec<String> = (0..17).map(|i| format!("203.0.113.{i}")).collect();
        assert_eq!(parse_addresses(&many).unwrap_err().index, None);
    }

    #[test]
    fn client_networks_are_canonical_cidrs_each_once() {
        let ok = parse_client_networks(&strings(&["10.1.0.0/16", "2001:db8::/32"])).unwrap();
        assert_eq!(ok[0].prefix_len(), 16);
        for (bad, index) in [
            (vec!["10.1.0.0"], 0),
            (vec!["10.1.0.0/16", "10.1.2.0/16"], 1),
            (vec!["10.1.0.0/33"], 0),
            (vec!["10.1.0.0/16", "10.1.0.0/16"], 1),
        ] {
            let err = parse_client_networks(&strings(&bad)).unwrap_err();
            assert_eq!(err.index, Some(index), "{bad:?}: {err:?}");
        }
    }
}
