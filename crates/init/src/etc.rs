//! Files init writes into the app's `/etc` (after the switch, so every path resolves
//! inside the new root): `resolv.conf` from the config's `dns`, and `hosts` so the
//! hostname resolves (what container runtimes do too).

use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::Path;

use crate::error::{Context, Error, Result};
use crate::network::LinkPlan;

/// `nameserver` lines; each entry must be an IP address (no injection into the file).
pub fn render_resolv_conf(dns: &[String]) -> Result<String> {
    let mut out = String::new();
    for server in dns {
        let ip: IpAddr = server.trim().parse().map_err(|_| {
            Error::invalid(
                "writing /etc/resolv.conf",
                format!("dns entry {server:?} is not an IP address"),
            )
        })?;
        out.push_str(&format!("nameserver {ip}\n"));
    }
    Ok(out)
}

/// localhost, plus the hostname on each of the guest's addresses (or on loopback).
pub fn render_hosts(hostname: &str, links: &[LinkPlan]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if hostname.is_empty() {
        return out;
    }
    let addrs: Vec<IpAddr> = links
        .iter()
        .flat_map(|l| {
            let v6 = l.ipv6.map(|(a, _)| IpAddr::V6(a));
            let v4 = l.ipv4.map(|(a, _)| IpAddr::V4(a));
            v6.into_iter().chain(v4)
        })
        .collect();
    if addrs.is_empty() {
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    for ip in addrs {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

/// Replaces `path` with a regular file (a symlink there is removed, not followed).
pub fn replace_file(path: &Path, content: &str) -> Result<()> {
    let what = || format!("writing {}", path.display());
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(what)?;
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e).with_context(what),
        _ => {}
    }
    fs::write(path, content).with_context(what)
}

/// Writes `/etc/resolv.conf` (when the config names DNS servers) and `/etc/hosts`.
pub fn write(dns: &[String], hostname: &str, links: &[LinkPlan]) -> Result<()> {
    if !dns.is_empty() {
        replace_file(Path::new("/etc/resolv.conf"), &render_resolv_conf(dns)?)?;
    }
    replace_file(Path::new("/etc/hosts"), &render_hosts(hostname, links))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_has_one_nameserver_line_per_address() {
        let text = render_resolv_conf(&["172.31.0.0".into(), " fd00::1 ".into()]).unwrap();
        assert_eq!(text, "nameserver 172.31.0.0\nnameserver fd00::1\n");
        assert_eq!(render_resolv_conf(&[]).unwrap(), "");
        let e = render_resolv_conf(&["1.1.1.1\noptions evil".into()]).unwrap_err();
        assert!(e.to_string().contains("not an IP address"), "{e}");
    }

    #[test]
    fn hosts_maps_the_hostname_to_the_guest_addresses() {
        let links = [LinkPlan {
            name: "eth0".into(),
            ipv4: Some(("172.31.0.1".parse().unwrap(), 31)),
            gateway4: None,
            ipv6: Some(("fd00::2".parse().unwrap(), 127)),
            gateway6: None,
        }];
        let text = render_hosts("web-1", &links);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(
            text.ends_with("fd00::2\tweb-1\n172.31.0.1\tweb-1\n"),
            "{text}"
        );
        assert!(render_hosts("web-1", &[]).ends_with("127.0.1.1\tweb-1\n"));
        assert!(!render_hosts("", &links).contains("172.31"));
    }

    #[test]
    fn replacing_a_symlink_does_not_follow_it() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        fs::write(&target, "keep").unwrap();
        let link = tmp.path().join("etc/resolv.conf");
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace_file(&link, "nameserver 10.0.0.1\n").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(fs::read_to_string(&link).unwrap(), "nameserver 10.0.0.1\n");
    }
}
