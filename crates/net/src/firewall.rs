//! One nftables table of our own (`inet zeitwork`), replaced atomically. Nothing outside
//! the table is touched. What it enforces, for every guest link `zw<n>`:
//!
//! - **Source addresses** (chain `prerouting`, before conntrack, so for packets to the host
//!   and through it alike): a packet that arrives on `zw<n>` must come from an address the
//!   host routes back through `zw<n>` (`fib saddr . iif oif missing drop`). On a guest link
//!   that is exactly the guest's own IPv4 and IPv6 (the link carries only the instance's /31
//!   and /127, whose other ends are the host's own addresses, which fail the check) and its
//!   IPv6 link-local, which neighbour discovery needs and which is never forwarded (below).
//!   The check needs no per-instance state, so it holds for every instance, with or without
//!   an app port, adopted ones included. Forwarded packets must moreover come from the
//!   instance pools, so every one of them is masqueraded.
//! - **Egress** (chain `forward`): a guest reaches the public internet, masqueraded behind the
//!   host. It does not reach other instances (dropped, as below), nor [`GUEST_DENIED`]
//!   (private, shared, link-local and cloud metadata, loopback, multicast and reserved
//!   ranges: the host's LAN with its databases, message bus and operator API), which is
//!   rejected (administratively prohibited), so a guest's connection fails at once instead
//!   of hanging. Exceptions come before the deny: the operator's [`EgressAllow`] list, and
//!   DNS (port 53) to the host's resolvers, the ones the agent gives its guests (a cloud's
//!   resolver is usually at a private or link-local address). Infrastructure at public
//!   addresses (another server's public IP) looks like the internet here: it must refuse
//!   the nodes' addresses itself.
//! - **Ingress** (chains `forward` and `output`): nothing reaches a guest through the node
//!   but the answers to its own connections, and the edges on other hosts the operator
//!   names ([`EdgeNetwork`], set `edges6`), at its IPv6 address on its app ports; the host
//!   itself reaches it only on its app ports ([`Firewall::allow`]). A guest answers those
//!   connections (conntrack), and nothing else gets through that way.
//! - **The host** (chain `input`): a guest reaches none of the host's addresses, only
//!   neighbour discovery and the answers to the host's own connections get in.
//! - **Gone instances** (chain `output`): a connection from the host to a pool address
//!   with no link (a VM that died, or never was) is refused at once (TCP reset, else host
//!   unreachable) instead of leaving through the default route into silence, so a proxy
//!   tries another instance without waiting for a connect timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addressing::{POOL4, POOL4_PREFIX};
use crate::allow::{EdgeNetwork, EgressAllow};
use crate::command::run;
use crate::{InstanceAddrs, LINK_PREFIX, NetError, NodePrefix};

/// The name of our table, `inet zeitwork`.
pub const TABLE: &str = "zeitwork";

/// A guest resolves its IPv6 gateway (the host end) with neighbour discovery, which
/// conntrack does not count as part of a connection: without this the host's answers,
/// and so every IPv6 reply of the guest, would be dropped. The guest's own entry on the
/// host is pinned (`nud permanent`), so no advertisement can move it. Its solicitations
/// come from its own address or its link-local one (anything else fails the source check),
/// and reach the host only: a link-local source is never forwarded.
const NEIGHBOUR_DISCOVERY: &str = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }";

/// The host's resolvers are told to every guest (see `/etc/resolv.conf`, read the way the
/// agent reads it); DNS to them passes the deny.
const RESOLV_CONF: &str = "/etc/resolv.conf";
const DNS_PORT: u16 = 53;

/// A network a guest's packet may not be addressed to (unless an [`EgressAllow`] entry or
/// a host resolver says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeniedRange {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// Its prefix length.
    pub len: u8,
    /// What lives there, for the reader.
    pub what: &'static str,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8, what: &'static str) -> DeniedRange {
    DeniedRange {
        addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        len,
        what,
    }
}

const fn v6(segments: [u16; 8], len: u8, what: &'static str) -> DeniedRange {
    let [a, b, c, d, e, f, g, h] = segments;
    DeniedRange {
        addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        len,
        what,
    }
}

/// Where guests may not go: every destination that is not the public internet. Anything
/// here may be the node's own network (the host's LAN: Postgres, NATS, the operator API;
/// a cloud's metadata service with the node's credentials) or another instance. The
/// host's own addresses, public ones included, are closed to guests separately (chain
/// `input`).
///
/// Each IPv4 range also stands for its NAT64 form (`64:ff9b::<IPv4>`, RFC 6052), which a
/// NAT64 gateway on the node's network would translate back to it.
pub const GUEST_DENIED: &[DeniedRange] = &[
    v4(0, 0, 0, 0, 8, "\"this network\" (RFC 791)"),
    v4(10, 0, 0, 0, 8, "private (RFC 1918)"),
    v4(
        100,
        64,
        0,
        0,
        10,
        "shared address space, carrier-grade NAT (RFC 6598)",
    ),
    v4(127, 0, 0, 0, 8, "loopback"),
    v4(
        169,
        254,
        0,
        0,
        16,
        "link-local, with cloud metadata at 169.254.169.254 (RFC 3927)",
    ),
    v4(
        172,
        16,
        0,
        0,
        12,
        "private (RFC 1918), the instance pool 172.31.0.0/16 included",
    ),
    v4(192, 0, 0, 0, 24, "IETF protocol assignments (RFC 6890)"),
    v4(192, 168, 0, 0, 16, "private (RFC 1918)"),
    v4(198, 18, 0, 0, 15, "benchmarking (RFC 2544)"),
    v4(224, 0, 0, 0, 4, "multicast"),
    v4(240, 0, 0, 0, 4, "reserved (RFC 1112)"),
    v4(
        255,
        255,
        255,
        255,
        32,
        "limited broadcast (also inside 240.0.0.0/4)",
    ),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"),
    v6([0; 8], 128, "unspecified"),
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped"),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use NAT64 (RFC 8215)",
    ),
    v6(
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        "unique local (RFC 4193), the node's instance prefix included",
    ),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
];

/// The well-known NAT64 prefix, `64:ff9b::/96` (RFC 6052).
const NAT64: u128 = 0x0064_ff9b << 96;

/// An instance's app port the host may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppPort {
    /// The instance's addresses (the port opens on its IPv4 and IPv6 alike).
    pub addrs: InstanceAddrs,
    /// The TCP port.
    pub port: u16,
}

/// The node's table (see the module docs): what it holds besides the app ports, which
/// come and go with instances.
#[derive(Debug, Clone)]
pub struct Firewall {
    prefix: NodePrefix,
    egress_allow: Vec<EgressAllow>,
    edge_networks: Vec<EdgeNetwork>,
    /// `None`: the host's, read from `/etc/resolv.conf` at each [`Firewall::install`].
    resolvers: Option<Vec<IpAddr>>,
}

impl Firewall {
    /// The firewall for a node whose instances' IPv6 addresses come from `prefix`, with no
    /// [`EgressAllow`] entries and the host's resolvers.
    pub fn new(prefix: NodePrefix) -> Firewall {
        Firewall {
            prefix,
            egress_allow: Vec::new(),
            edge_networks: Vec::new(),
            resolvers: None,
        }
    }

    /// Lets guests reach these destinations too (takes effect at [`Firewall::install`]).
    pub fn with_egress_allow(mut self, allow: Vec<EgressAllow>) -> Firewall {
        self.egress_allow = allow;
        self
    }

    /// Lets edges on other hosts, connecting from these networks, reach the instances'
    /// app ports through the node as the node itself may (takes effect at
    /// [`Firewall::install`]).
    pub fn with_edge_networks(mut self, networks: Vec<EdgeNetwork>) -> Firewall {
        self.edge_networks = networks;
        self
    }

    /// Allows DNS to these resolvers instead of the host's (`/etc/resolv.conf`): for a
    /// node whose guests are told other resolvers, and for tests.
    pub fn with_resolvers(mut self, resolvers: Vec<IpAddr>) -> Firewall {
        self.resolvers = Some(resolvers);
        self
    }

    /// The operator's allowed destinations.
    pub fn egress_allow(&self) -> &[EgressAllow] {
        &self.egress_allow
    }

    /// The whole table, as one `nft -f` transaction (add+delete makes it idempotent), with
    /// these app ports open and DNS allowed to these resolvers.
    pub fn script(&self, ports: &[AppPort], resolvers: &[IpAddr]) -> String {
        let wild = format!("\"{LINK_PREFIX}*\"");
        let v4: Vec<String> = ports
            .iter()
            .map(|p| format!("{} . {}", p.addrs.guest4, p.port))
            .collect();
        let v6: Vec<String> = ports
            .iter()
            .map(|p| format!("{} . {}", p.addrs.guest6, p.port))
            .collect();
        let elements = |e: &[String]| {
            if e.is_empty() {
                String::new()
            } else {
                format!("elements = {{ {} }}", e.join(", "))
            }
        };
        let (denied4, denied6) = denied_elements();
        let allowed: String = resolvers
            .iter()
            .filter_map(|&r| {
                let len = if r.is_ipv4() { 32 } else { 128 };
                EgressAllow::new(r, len, Some(DNS_PORT)).ok()
            })
            .chain(self.egress_allow.iter().copied())
            .map(|a| format!("\n    {}", a.rule(&wild)))
            .collect();
        let edges = if self.edge_networks.is_empty() {
            String::new()
        } else {
            let cidrs: Vec<String> = self.edge_networks.iter().map(EdgeNetwork::cidr).collect();
            format!("elements = {{ {} }}", cidrs.join(", "))
        };
        format!(
            "add table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
  set app4 {{ type ipv4_addr . inet_service; {e4} }}
  set app6 {{ type ipv6_addr . inet_service; {e6} }}
  set denied4 {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {denied4} }} }}
  set denied6 {{ type ipv6_addr; flags interval; auto-merge; elements = {{ {denied6} }} }}
  set edges6 {{ type ipv6_addr; flags interval; auto-merge; {edges} }}
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    iifname {wild} fib saddr . iif oif missing drop
  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    oifname {wild} ct state established,related accept
    oifname {wild} ip6 saddr @edges6 ip6 daddr . tcp dport @app6 accept
    oifname {wild} drop
    iifname {wild} ip saddr != {pool4} drop
    iifname {wild} ip6 saddr != {pool6} drop
    iifname {wild} ct state established,related accept{allowed}
    iifname {wild} ip daddr @denied4 reject with icmpx type admin-prohibited
    iifname {wild} ip6 daddr @denied6 reject with icmpx type admin-prohibited
  }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname {wild} ct state established,related accept
    iifname {wild} {nd} accept
    iifname {wild} drop
  }}
  chain output {{
    type filter hook output priority 0; policy accept;
    ip daddr {pool4} oifname != {wild} meta l4proto tcp reject with tcp reset
    ip daddr {pool4} oifname != {wild} reject with icmpx type host-unreachable
    ip6 daddr {pool6} oifname != {wild} meta l4proto tcp reject with tcp reset
    ip6 daddr {pool6} oifname != {wild} reject with icmpx type host-unreachable
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
    /// forwarding, which the routed links need. The host's resolvers are read now.
    pub async fn install(&self, ports: &[AppPort]) -> Result<(), NetError> {
        let resolvers = match &self.resolvers {
            Some(r) => r.clone(),
            None => parse_resolv_conf(&std::fs::read_to_string(RESOLV_CONF).unwrap_or_default()),
        };
        run("nft", &["-f", "-"], Some(&self.script(ports, &resolvers))).await?;
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

    /// Lets the other nodes' overlay addresses reach the instances' app ports, as the
    /// named edge networks do: an edge on another node connects from its own overlay
    /// address (the route to this node's /64 is over the overlay). Replaces the set's
    /// elements in one transaction; the named networks stay.
    pub async fn set_overlay_edges(&self, nodes: &[Ipv6Addr]) -> Result<(), NetError> {
        run("nft", &["-f", "-"], Some(&self.edges_script(nodes)))
            .await
            .map(drop)
    }

    fn edges_script(&self, nodes: &[Ipv6Addr]) -> String {
        let mut elements: Vec<String> = self.edge_networks.iter().map(EdgeNetwork::cidr).collect();
        elements.extend(nodes.iter().map(|a| format!("{a}/128")));
        let mut script = format!("flush set inet {TABLE} edges6\n");
        if !elements.is_empty() {
            script.push_str(&format!(
                "add element inet {TABLE} edges6 {{ {} }}\n",
                elements.join(", ")
            ));
        }
        script
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

/// [`GUEST_DENIED`] as the elements of the `denied4` and `denied6` sets, the IPv4 ranges'
/// NAT64 forms among the IPv6 ones.
fn denied_elements() -> (String, String) {
    let (mut e4, mut e6) = (Vec::new(), Vec::new());
    for d in GUEST_DENIED {
        match d.addr {
            IpAddr::V4(a) => {
                e4.push(format!("{a}/{}", d.len));
                let nat64 = Ipv6Addr::from(NAT64 | u128::from(u32::from(a)));
                e6.push(format!("{nat64}/{}", 96 + d.len));
            }
            IpAddr::V6(a) => e6.push(format!("{a}/{}", d.len)),
        }
    }
    (e4.join(", "), e6.join(", "))
}

/// The resolvers the agent tells guests (`nameserver` lines; a loopback one, a local stub,
/// is unreachable from a guest anyway).
fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw() -> Firewall {
        Firewall::new(NodePrefix::parse("fd00:7a::/64").unwrap())
    }

    #[test]
    fn script_isolates_guests_and_lists_app_ports() {
        let addrs =
            InstanceAddrs::for_index(NodePrefix::parse("fd00:7a::/64").unwrap(), 0).unwrap();
        let fw = fw();
        let s = fw.script(&[AppPort { addrs, port: 8080 }], &[]);
        assert!(s.starts_with("add table inet zeitwork\ndelete table inet zeitwork\n"));
        // Anti-spoofing before conntrack, for input and forward alike.
        assert!(
            s.contains("hook prerouting priority raw; policy accept;\n    iifname \"zw*\" fib saddr . iif oif missing drop\n"),
            "{s}"
        );
        // Nothing new reaches a guest through the node; then source, allow, deny.
        let forward = [
            "oifname \"zw*\" ct state established,related accept",
            "oifname \"zw*\" drop",
            "iifname \"zw*\" ip saddr != 172.31.0.0/16 drop",
            "iifname \"zw*\" ip6 saddr != fd00:7a::/64 drop",
            "iifname \"zw*\" ip daddr @denied4 reject with icmpx type admin-prohibited",
            "iifname \"zw*\" ip6 daddr @denied6 reject with icmpx type admin-prohibited",
        ];
        let at: Vec<usize> = forward
            .iter()
            .map(|r| s.find(r).unwrap_or_else(|| panic!("{r} missing:\n{s}")))
            .collect();
        assert!(at.is_sorted(), "{s}");
        for dir in ["iifname", "oifname"] {
            let nd = format!(
                "{dir} \"zw*\" icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept"
            );
            assert!(s.contains(&nd), "{s}");
        }
        assert!(s.contains("iifname \"zw*\" drop"));
        assert!(s.contains("elements = { 172.31.0.1 . 8080 }"));
        assert!(s.contains("elements = { fd00:7a::3 . 8080 }"));
        assert!(s.contains("ip saddr 172.31.0.0/16 oifname != \"zw*\" masquerade"));
        assert!(s.contains("ip6 saddr fd00:7a::/64 oifname != \"zw*\" masquerade"));
        assert!(!fw.script(&[], &[]).contains(". 8080"));
    }

    #[test]
    fn the_deny_list_covers_private_metadata_and_reserved_ranges() {
        let (d4, d6) = denied_elements();
        for net in [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.0.0/24",
            "192.168.0.0/16",
            "198.18.0.0/15",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "255.255.255.255/32",
        ] {
            assert!(d4.split(", ").any(|e| e == net), "{net} in {d4}");
        }
        for net in [
            "::1/128",
            "::/128",
            "::ffff:0.0.0.0/96",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
            "64:ff9b:1::/48",
            // NAT64 forms of the IPv4 ranges: 10.0.0.0/8 and 169.254.0.0/16.
            "64:ff9b::a00:0/104",
            "64:ff9b::a9fe:0/112",
        ] {
            assert!(d6.split(", ").any(|e| e == net), "{net} in {d6}");
        }
        let s = fw().script(&[], &[]);
        assert!(s.contains(&format!(
            "set denied4 {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {d4} }} }}"
        )));
        assert!(s.contains(&format!(
            "set denied6 {{ type ipv6_addr; flags interval; auto-merge; elements = {{ {d6} }} }}"
        )));
    }

    #[test]
    fn other_nodes_overlay_addresses_join_the_named_edges() {
        let named = vec!["fd00:e0::/64".parse::<EdgeNetwork>().unwrap()];
        let peer: Ipv6Addr = "fd7a:7a77:0:2::1".parse().unwrap();
        assert_eq!(
            fw().with_edge_networks(named).edges_script(&[peer]),
            "flush set inet zeitwork edges6\nadd element inet zeitwork edges6 { fd00:e0::/64, fd7a:7a77:0:2::1/128 }\n"
        );
        // No peers and no named networks: the set is emptied.
        assert_eq!(fw().edges_script(&[]), "flush set inet zeitwork edges6\n");
    }

    #[test]
    fn edges_on_other_hosts_reach_app_ports_only() {
        let edges = ["fd00:e0::/64", "2001:db8::10"]
            .map(|e| e.parse::<EdgeNetwork>().unwrap())
            .to_vec();
        let s = fw().with_edge_networks(edges).script(&[], &[]);
        assert!(
            s.contains("set edges6 { type ipv6_addr; flags interval; auto-merge; elements = { fd00:e0::/64, 2001:db8::10/128 } }"),
            "{s}"
        );
        let forward = [
            "oifname \"zw*\" ct state established,related accept",
            "oifname \"zw*\" ip6 saddr @edges6 ip6 daddr . tcp dport @app6 accept",
            "oifname \"zw*\" drop",
            "iifname \"zw*\" ip6 saddr != fd00:7a::/64 drop",
            "iifname \"zw*\" ct state established,related accept",
            "iifname \"zw*\" ip6 daddr @denied6 reject",
        ];
        let at: Vec<usize> = forward
            .iter()
            .map(|r| s.find(r).unwrap_or_else(|| panic!("{r} missing:\n{s}")))
            .collect();
        assert!(at.is_sorted(), "{s}");
        // Without edge networks the set is empty: nothing from outside gets in.
        assert!(
            fw().script(&[], &[])
                .contains("set edges6 { type ipv6_addr; flags interval; auto-merge;  }")
        );
    }

    #[test]
    fn allowed_destinations_and_resolvers_come_before_the_deny() {
        let allow = ["10.1.2.3:5432", "10.20.0.0/16", "[fd00:1::5]:5432"]
            .map(|e| e.parse::<EgressAllow>().unwrap())
            .to_vec();
        let fw = fw().with_egress_allow(allow);
        let s = fw.script(&[], &["10.255.255.53".parse().unwrap()]);
        let rules = [
            "iifname \"zw*\" ip saddr != 172.31.0.0/16 drop",
            "iifname \"zw*\" ip daddr 10.255.255.53/32 meta l4proto { tcp, udp } th dport 53 accept",
            "iifname \"zw*\" ip daddr 10.1.2.3/32 meta l4proto { tcp, udp } th dport 5432 accept",
            "iifname \"zw*\" ip daddr 10.20.0.0/16 accept",
            "iifname \"zw*\" ip6 daddr fd00:1::5/128 meta l4proto { tcp, udp } th dport 5432 accept",
            "iifname \"zw*\" ip daddr @denied4 reject",
        ];
        let at: Vec<usize> = rules
            .iter()
            .map(|r| s.find(r).unwrap_or_else(|| panic!("{r} missing:\n{s}")))
            .collect();
        assert!(at.is_sorted(), "{s}");
    }

    #[test]
    fn resolvers_as_the_agent_reads_them() {
        let conf = "# generated\nnameserver 10.255.255.53\nnameserver\t169.254.169.253\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver 2001:4860:4860::8888\nsearch example.com\n";
        assert_eq!(
            parse_resolv_conf(conf),
            ["10.255.255.53", "169.254.169.253", "2001:4860:4860::8888"]
                .map(|a| a.parse::<IpAddr>().unwrap())
        );
    }
}
