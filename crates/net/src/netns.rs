//! A network namespace of an instance's own, for a VMM that runs in one (Firecracker: its
//! jailer joins it). The VMM then sees no host interface and can reach no host socket;
//! only the guest's tap is there.
//!
//! Inside, the tap and one end of a veth pair are the two ports of a bridge; the veth's
//! other end is the instance's `zw<n>` on the host. A bridge rather than routing: the
//! guest's Ethernet neighbour is the host's `zw<n>` itself, exactly as with a tap on the
//! host, so the host's addresses, routes, pinned neighbour entries and firewall rules stay
//! the same, and the namespace needs no forwarding, proxy ARP/NDP or sysctl of its own.
//! The namespace has no address at all (IPv6 address generation is off on its devices):
//! it is a wire; nothing in it can be reached from the guest or send anything itself.
//!
//! Namespaces are named after the instance id, not its address slot: named namespaces are
//! host-wide (`/var/run/netns`), and two agents on one host (each in a network namespace of
//! its own) use the same slots.

use std::path::PathBuf;

use crate::NetError;
use crate::command::run;

/// Where `ip netns` keeps named namespaces (bind mounts the jailer's `--netns` takes).
pub const NETNS_DIR: &str = "/var/run/netns";
/// `zwvm-<instance id>`.
const PREFIX: &str = "zwvm-";
/// The guest's tap, the same name in every instance's namespace.
pub const NETNS_TAP: &str = "tap0";
const BRIDGE: &str = "br0";
/// The namespace's end of the veth pair.
const UPLINK: &str = "uplink0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// The namespace of instance `id` (1-64 ASCII letters, digits, `-`, `_`: it names a
    /// file in [`NETNS_DIR`]).
    pub fn for_instance(id: &str) -> Result<Netns, NetError> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(NetError::BadInstanceId(id.to_owned()));
        }
        Ok(Netns {
            name: format!("{PREFIX}{id}"),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What a process joins (`setns`, the jailer's `--netns`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// The `ip` commands that make the namespace with its tap and bridge, and the veth pair
    /// whose end `host_end` stays in the caller's namespace (configured by the caller).
    pub(crate) fn commands(&self, host_end: &str) -> Vec<Vec<String>> {
        let ns = |args: &[&str]| {
            ["-n", self.name.as_str()]
                .iter()
                .chain(args)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        let mut c = vec![
            vec!["netns".into(), "add".into(), self.name.clone()],
            ns(&["link", "add", BRIDGE, "type", "bridge"]),
            ns(&["tuntap", "add", "dev", NETNS_TAP, "mode", "tap"]),
            [
                "link", "add", host_end, "type", "veth", "peer", "name", UPLINK, "netns",
                &self.name,
            ]
            .map(String::from)
            .to_vec(),
        ];
        // Address generation is off before the devices come up, or they get a link-local.
        for dev in [BRIDGE, NETNS_TAP, UPLINK] {
            c.push(ns(&["link", "set", dev, "addrgenmode", "none"]));
        }
        for port in [NETNS_TAP, UPLINK] {
            c.push(ns(&["link", "set", port, "master", BRIDGE, "up"]));
        }
        c.push(ns(&["link", "set", BRIDGE, "up"]));
        c
    }

    /// Deletes the namespace, and with it the tap and the bridge once no process (a VMM)
    /// is left in it. `false` when there was none.
    pub async fn remove(&self) -> Result<bool, NetError> {
        if !self.exists() {
            return Ok(false);
        }
        run("ip", &["netns", "delete", &self.name], None).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
