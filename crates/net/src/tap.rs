//! One tap per instance, addressed as the host end of the instance's point-to-point
//! links. Taps are named `zw<index>` so a restarted agent can find its own.

use crate::command::run;
use crate::{InstanceAddrs, NetError};

pub const TAP_PREFIX: &str = "zw";

pub fn tap_name(index: u32) -> String {
    format!("{TAP_PREFIX}{index}")
}

/// The guest's MAC: locally administered, derived from the address slot, so the host
/// can pin it as the only neighbour on the tap.
pub fn guest_mac(index: u32) -> String {
    let b = index.to_be_bytes();
    format!("02:7a:77:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    pub name: String,
    pub addrs: InstanceAddrs,
    pub mac: String,
}

impl Tap {
    /// Creates (or re-creates, after a crash) the tap for instance `index`.
    pub async fn create(index: u32, addrs: InstanceAddrs) -> Result<Tap, NetError> {
        let tap = Tap::for_index(index, addrs);
        if Tap::list().await?.contains(&tap.name) {
            Tap::remove_named(&tap.name).await?;
        }
        let add = ["tuntap", "add", "dev", &tap.name, "mode", "tap"];
        run("ip", &add, None).await?;
        if let Err(e) = tap.configure().await {
            let _ = Tap::remove_named(&tap.name).await;
            return Err(e);
        }
        Ok(tap)
    }

    /// The tap a previous agent created for instance `index`, if it is still there: taken
    /// over as it is, since a running VM is attached to it.
    pub async fn existing(index: u32, addrs: InstanceAddrs) -> Result<Option<Tap>, NetError> {
        let tap = Tap::for_index(index, addrs);
        Ok(Tap::list().await?.contains(&tap.name).then_some(tap))
    }

    fn for_index(index: u32, addrs: InstanceAddrs) -> Tap {
        Tap {
            name: tap_name(index),
            addrs,
            mac: guest_mac(index),
        }
    }

    async fn configure(&self) -> Result<(), NetError> {
        let n = self.name.as_str();
        run(
            "ip",
            &["addr", "add", &format!("{}/31", self.addrs.host4), "dev", n],
            None,
        )
        .await?;
        run(
            "ip",
            &[
                "-6",
                "addr",
                "add",
                &format!("{}/127", self.addrs.host6),
                "dev",
                n,
                "nodad",
            ],
            None,
        )
        .await?;
        run("ip", &["link", "set", n, "up"], None).await?;
        // The guest's addresses answer only at its MAC: no ARP/ND round trip before the
        // first packet, and a guest cannot make the host send its traffic elsewhere.
        let (g4, g6) = (self.addrs.guest4.to_string(), self.addrs.guest6.to_string());
        for (family, addr) in [("-4", g4.as_str()), ("-6", g6.as_str())] {
            let args = [
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
            ];
            run("ip", &args, None).await?;
        }
        Ok(())
    }

    pub async fn remove(self) -> Result<(), NetError> {
        Tap::remove_named(&self.name).await
    }

    pub async fn remove_named(name: &str) -> Result<(), NetError> {
        run("ip", &["link", "delete", name], None).await.map(drop)
    }

    /// Names of our taps present on the host.
    pub async fn list() -> Result<Vec<String>, NetError> {
        let out = run("ip", &["-o", "link", "show"], None).await?;
        Ok(parse_link_names(&out)
            .into_iter()
            .filter(|n| is_ours(n))
            .collect())
    }

    /// Removes every tap of ours not in `keep` (left behind by a crashed agent).
    pub async fn remove_orphans(keep: &[String]) -> Result<Vec<String>, NetError> {
        let mut removed = Vec::new();
        for name in Tap::list().await? {
            if !keep.contains(&name) {
                Tap::remove_named(&name).await?;
                removed.push(name);
            }
        }
        Ok(removed)
    }
}

fn is_ours(name: &str) -> bool {
    name.strip_prefix(TAP_PREFIX)
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

    #[test]
    fn finds_only_our_taps() {
        let out = "1: lo: <LOOPBACK,UP> mtu 65536\n7: zw3: <BROADCAST> mtu 1500\n8: zwx: <BROADCAST>\n9: zw12@if3: <UP>\n";
        let names: Vec<_> = parse_link_names(out)
            .into_iter()
            .filter(|n| is_ours(n))
            .collect();
        assert_eq!(names, ["zw3", "zw12"]);
        assert_eq!(tap_name(5), "zw5");
        assert_eq!(guest_mac(3), "02:7a:77:00:00:03");
        assert_eq!(guest_mac(70_000), "02:7a:77:01:11:70");
    }
}
