//! One link per instance between the host and its guest: `zw<index>` on the host,
//! addressed as the host end of the instance's point-to-point links. Whatever is behind it
//! ([`Topology`]), the host sees the same interface, so routes and the firewall
//! (`iifname "zw*"`) do not depend on the VMM. The names let a restarted agent find its own.

use crate::command::run;
use crate::{InstanceAddrs, NETNS_TAP, NetError, Netns};

pub const LINK_PREFIX: &str = "zw";

pub fn link_name(index: u32) -> String {
    format!("{LINK_PREFIX}{index}")
}

/// The guest's MAC: locally administered, derived from the address slot, so the host
/// can pin it as the only neighbour on the link.
pub fn guest_mac(index: u32) -> String {
    let b = index.to_be_bytes();
    format!("02:7a:77:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
}

/// Where the guest's tap is: the VMM has to open it from its own network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// `zw<n>` is the tap itself, on the host: for a VMM started in the host's namespace
    /// (the VM benchmark's bare QEMU; no confined VMM uses it).
    HostTap,
    /// The tap is in a namespace of the instance's own, where its VMM runs (every
    /// confined VMM: Firecracker under its jailer, QEMU under its jail), bridged to a veth
    /// pair whose host end is `zw<n>` (see [`Netns`]).
    OwnNetns,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// `zw<index>` on the host.
    pub name: String,
    pub addrs: InstanceAddrs,
    /// The guest's MAC.
    pub mac: String,
    /// The instance's namespace holding the tap ([`Topology::OwnNetns`]).
    pub netns: Option<Netns>,
}

impl Link {
    /// Instance `index`'s link (`id` names its namespace), not created yet.
    pub fn new(
        index: u32,
        addrs: InstanceAddrs,
        topology: Topology,
        id: &str,
    ) -> Result<Link, NetError> {
        let netns = match topology {
            Topology::HostTap => None,
            Topology::OwnNetns => Some(Netns::for_instance(id)?),
        };
        Ok(Link {
            name: link_name(index),
            addrs,
            mac: guest_mac(index),
            netns,
        })
    }

    /// Creates (or re-creates, after a crash) the link for instance `index`.
    pub async fn create(
        index: u32,
        addrs: InstanceAddrs,
        topology: Topology,
        id: &str,
    ) -> Result<Link, NetError> {
        let link = Link::new(index, addrs, topology, id)?;
        link.clone().remove().await?;
        for command in link.commands() {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            if let Err(e) = run("ip", &args, None).await {
                let _ = link.remove().await;
                return Err(e);
            }
        }
        Ok(link)
    }

    /// The link a previous agent created for instance `index`, if it is still there: taken
    /// over as it is (with the namespace `id`'s VMM runs in, if it has one), since a
    /// running VM is attached to it.
    pub async fn existing(
        index: u32,
        addrs: InstanceAddrs,
        id: &str,
    ) -> Result<Option<Link>, NetError> {
        let name = link_name(index);
        if !Link::list().await?.contains(&name) {
            return Ok(None);
        }
        Ok(Some(Link {
            name,
            addrs,
            mac: guest_mac(index),
            netns: Netns::for_instance(id).ok().filter(Netns::exists),
        }))
    }

    /// The tap the VMM attaches the guest's NIC to, as named in the VMM's namespace.
    pub fn tap(&self) -> &str {
        match self.netns {
            Some(_) => NETNS_TAP,
            None => &self.name,
        }
    }

    /// The `ip` commands that create the link, in order.
    pub(crate) fn commands(&self) -> Vec<Vec<String>> {
        let n = self.name.as_str();
        let strings = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut c = match &self.netns {
            None => vec![strings(&["tuntap", "add", "dev", n, "mode", "tap"])],
            Some(netns) => netns.commands(n),
        };
        let (host4, host6) = (
            format!("{}/31", self.addrs.host4),
            format!("{}/127", self.addrs.host6),
        );
        c.push(strings(&["addr", "add", &host4, "dev", n]));
        c.push(strings(&["-6", "addr", "add", &host6, "dev", n, "nodad"]));
        c.push(strings(&["link", "set", n, "up"]));
        // The guest's addresses answer only at its MAC: no ARP/ND round trip before the
        // first packet, and a guest cannot make the host send its traffic elsewhere.
        let (g4, g6) = (self.addrs.guest4.to_string(), self.addrs.guest6.to_string());
        for (family, addr) in [("-4", g4.as_str()), ("-6", g6.as_str())] {
            c.push(strings(&[
                family,
                "neigh",
                "replace",
                addr,
                "lladdr",
                &self.mac,
                "dev",
                n,
                "nud",
                "permanent",
            ]));
        }
        c
    }

    /// Deletes the link (a veth takes its peer along) and the namespace; what is already
    /// gone is fine. Then the host's connections to the guest are aborted: a VM that died
    /// answers nothing, and without this a proxy waiting on it would wait for a timeout;
    /// aborted, it learns at once and can send the request elsewhere (new connections are
    /// refused by the firewall once the link is gone).
    pub async fn remove(self) -> Result<(), NetError> {
        let deleted = if Link::list().await?.contains(&self.name) {
            Link::remove_named(&self.name).await
        } else {
            Ok(())
        };
        if let Some(netns) = &self.netns {
            netns.remove().await?;
        }
        abort_connections(&self.addrs).await;
        deleted
    }

    pub async fn remove_named(name: &str) -> Result<(), NetError> {
        run("ip", &["link", "delete", name], None).await.map(drop)
    }

    /// Names of our links present on the host.
    pub async fn list() -> Result<Vec<String>, NetError> {
        let out = run("ip", &["-o", "link", "show"], None).await?;
        Ok(parse_link_names(&out)
            .into_iter()
            .filter(|n| is_ours(n))
            .collect())
    }

    /// Removes every link of ours not in `keep` (left behind by a crashed agent). Their
    /// namespaces are named after instances: see [`Netns::remove`].
    pub async fn remove_orphans(keep: &[String]) -> Result<Vec<String>, NetError> {
        let mut removed = Vec::new();
        for name in Link::list().await? {
            if !keep.contains(&name) {
                Link::remove_named(&name).await?;
                removed.push(name);
            }
        }
        Ok(removed)
    }
}

/// Destroys the host's TCP sockets to the guest's addresses (`ss -K`, the kernel's
/// `SOCK_DESTROY`): their owners see `ECONNABORTED` at once. Best effort: a kernel
/// without `CONFIG_INET_DIAG_DESTROY` leaves them to their timeouts.
async fn abort_connections(addrs: &InstanceAddrs) {
    for dst in [addrs.guest4.to_string(), format!("[{}]", addrs.guest6)] {
        if let Err(e) = run("ss", &["-K", "-t", "-n", "dst", &dst], None).await {
            tracing::warn!(%dst, error = %e, "could not abort connections to a gone guest");
        }
    }
}

fn is_ours(name: &str) -> bool {
    name.strip_prefix(LINK_PREFIX)
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// `ip -o link show` lines look like `7: zw3: <BROADCAST,…> mtu 1500 …` (or `zw3@if2:`).
fn parse_link_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodePrefix;

    #[test]
    fn finds_only_our_links() {
        let out = "1: lo: <LOOPBACK,UP> mtu 65536\n7: zw3: <BROADCAST> mtu 1500\n8: zwx: <BROADCAST>\n9: zw12@if3: <UP>\n";
        let names: Vec<_> = parse_link_names(out)
            .into_iter()
            .filter(|n| is_ours(n))
            .collect();
        assert_eq!(names, ["zw3", "zw12"]);
        assert_eq!(link_name(5), "zw5");
        assert_eq!(guest_mac(3), "02:7a:77:00:00:03");
        assert_eq!(guest_mac(70_000), "02:7a:77:01:11:70");
    }

    fn script(link: &Link) -> Vec<String> {
        link.commands().iter().map(|c| c.join(" ")).collect()
    }

    /// Both topologies end in the same host side; only what makes `zw<n>` differs.
    #[test]
    fn commands_for_a_host_tap_and_for_a_namespace_of_its_own() {
        let addrs =
            InstanceAddrs::for_index(NodePrefix::parse("fd00:7a::/64").unwrap(), 3).unwrap();
        let host_side = [
            "addr add 172.31.0.6/31 dev zw3",
            "-6 addr add fd00:7a::8/127 dev zw3 nodad",
            "link set zw3 up",
            "-4 neigh replace 172.31.0.7 lladdr 02:7a:77:00:00:03 dev zw3 nud permanent",
            "-6 neigh replace fd00:7a::9 lladdr 02:7a:77:00:00:03 dev zw3 nud permanent",
        ];
        let tap = Link::new(3, addrs, Topology::HostTap, "i-1").unwrap();
        assert_eq!((tap.tap(), tap.netns.as_ref()), ("zw3", None));
        let mut expected = vec!["tuntap add dev zw3 mode tap"];
        expected.extend(host_side);
        assert_eq!(script(&tap), expected);

        let own = Link::new(3, addrs, Topology::OwnNetns, "i-1").unwrap();
        let netns = own.netns.clone().unwrap();
        assert_eq!(netns.name(), "zwvm-i-1");
        assert_eq!(
            netns.path(),
            std::path::Path::new("/var/run/netns/zwvm-i-1")
        );
        assert_eq!(own.tap(), "tap0");
        let mut expected = vec![
            "netns add zwvm-i-1",
            "-n zwvm-i-1 link add br0 type bridge",
            "-n zwvm-i-1 tuntap add dev tap0 mode tap",
            "link add zw3 type veth peer name uplink0 netns zwvm-i-1",
            "-n zwvm-i-1 link set br0 addrgenmode none",
            "-n zwvm-i-1 link set tap0 addrgenmode none",
            "-n zwvm-i-1 link set uplink0 addrgenmode none",
            "-n zwvm-i-1 link set tap0 master br0 up",
            "-n zwvm-i-1 link set uplink0 master br0 up",
            "-n zwvm-i-1 link set br0 up",
        ];
        expected.extend(host_side);
        assert_eq!(script(&own), expected);

        for bad in ["", "a/b", "..", "é", &"a".repeat(65)] {
            assert!(
                matches!(
                    Link::new(3, addrs, Topology::OwnNetns, bad),
                    Err(NetError::BadInstanceId(_))
                ),
                "{bad:?}"
            );
        }
        // The host tap needs no namespace, so no name for one.
        assert!(Link::new(3, addrs, Topology::HostTap, "a/b").is_ok());
    }
}
