//! One nftables table of our own (`inet zeitwork`), replaced atomically: instances
//! cannot reach each other or the host's ports, the host reaches each instance only on
//! its app port, and egress is masqueraded. Nothing outside the table is touched.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::addressing::{POOL4, POOL4_PREFIX};
use crate::command::run;
use crate::{InstanceAddrs, LINK_PREFIX, NetError, NodePrefix};

pub const TABLE: &str = "zeitwork";

/// A guest resolves its IPv6 gateway (the host end) with neighbour discovery, which
/// conntrack does not count as part of a connection: without this the host's answers,
/// and so every IPv6 reply of the guest, would be dropped. The guest's own entry on the
/// host is pinned (`nud permanent`), so no advertisement can move it.
const NEIGHBOUR_DISCOVERY: &str = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }";

/// An instance's app port the host may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppPort {
    pub addrs: InstanceAddrs,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct Firewall {
    prefix: NodePrefix,
}

impl Firewall {
    pub fn new(prefix: NodePrefix) -> Firewall {
        Firewall { prefix }
    }

    /// The whole table, as one `nft -f` transaction (add+delete makes it idempotent).
    pub fn script(&self, ports: &[(Ipv4Addr, Ipv6Addr, u16)]) -> String {
        let wild = format!("\"{LINK_PREFIX}*\"");
        let v4: Vec<String> = ports.iter().map(|(a, _, p)| format!("{a} . {p}")).collect();
        let v6: Vec<String> = ports.iter().map(|(_, a, p)| format!("{a} . {p}")).collect();
        let elements = |e: &[String]| {
            if e.is_empty() {
                String::new()
            } else {
                format!("elements = {{ {} }}", e.join(", "))
            }
        };
        format!(
            "add table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
  set app4 {{ type ipv4_addr . inet_service; {e4} }}
  set app6 {{ type ipv6_addr . inet_service; {e6} }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    iifname {wild} oifname {wild} drop
    iifname {wild} ip daddr {pool4} drop
    iifname {wild} ip6 daddr {pool6} drop
  }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname {wild} ct state established,related accept
    iifname {wild} {nd} accept
    iifname {wild} drop
  }}
  chain output {{
    type filter hook output priority 0; policy accept;
    oifname {wild} ct state established,related accept
    oifname {wild} {nd} accept
    oifname {wild} ip daddr . tcp dport @app4 accept
    oifname {wild} ip6 daddr . tcp dport @app6 accept
    oifname {wild} drop
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    ip saddr {pool4} oifname != {wild} masquerade
    ip6 saddr {pool6} oifname != {wild} masquerade
  }}
}}
",
            e4 = elements(&v4),
            e6 = elements(&v6),
            pool4 = format_args!("{POOL4}/{POOL4_PREFIX}"),
            pool6 = self.prefix.to_cidr(),
            nd = NEIGHBOUR_DISCOVERY,
        )
    }

    /// Installs (or replaces) the table with these app ports open, and turns on
    /// forwarding, which the routed links need.
    pub async fn install(&self, ports: &[AppPort]) -> Result<(), NetError> {
        let ports: Vec<_> = ports
            .iter()
            .map(|p| (p.addrs.guest4, p.addrs.guest6, p.port))
            .collect();
        run("nft", &["-f", "-"], Some(&self.script(&ports))).await?;
        for knob in [
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/net/ipv6/conf/all/forwarding",
        ] {
            std::fs::write(knob, "1").map_err(|e| NetError::Command {
                command: format!("write 1 > {knob}"),
                stderr: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Lets the host connect to an instance's app port.
    pub async fn allow(&self, port: AppPort) -> Result<(), NetError> {
        self.element("add", port).await
    }

    /// Closes an instance's app port again (on stop).
    pub async fn revoke(&self, port: AppPort) -> Result<(), NetError> {
        self.element("delete", port).await
    }

    async fn element(&self, verb: &str, p: AppPort) -> Result<(), NetError> {
        let script = format!(
            "{verb} element inet {TABLE} app4 {{ {} . {} }}\n{verb} element inet {TABLE} app6 {{ {} . {} }}\n",
            p.addrs.guest4, p.port, p.addrs.guest6, p.port
        );
        run("nft", &["-f", "-"], Some(&script)).await.map(drop)
    }

    /// Removes the table (when the node stops hosting instances).
    pub async fn uninstall(&self) -> Result<(), NetError> {
        let script = format!("add table inet {TABLE}\ndelete table inet {TABLE}\n");
        run("nft", &["-f", "-"], Some(&script)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_isolates_taps_and_lists_app_ports() {
        let fw = Firewall::new(NodePrefix::parse("fd00:7a::/64").unwrap());
        let s = fw.script(&[(
            Ipv4Addr::new(172, 31, 0, 1),
            "fd00:7a::3".parse().unwrap(),
            8080,
        )]);
        assert!(s.starts_with("add table inet zeitwork\ndelete table inet zeitwork\n"));
        assert!(s.contains("iifname \"zw*\" oifname \"zw*\" drop"));
        for dir in ["iifname", "oifname"] {
            let nd = format!(
                "{dir} \"zw*\" icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept"
            );
            assert!(s.contains(&nd), "{s}");
        }
        assert!(s.contains("elements = { 172.31.0.1 . 8080 }"));
        assert!(s.contains("elements = { fd00:7a::3 . 8080 }"));
        assert!(s.contains("ip saddr 172.31.0.0/16 oifname != \"zw*\" masquerade"));
        assert!(!fw.script(&[]).contains("elements"));
    }
}
