//! Reads the config disk (`/dev/vdc`): the layout and the types are
//! [`zeitwork_core::guest`]'s, so the agent and init cannot drift apart.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeitwork_core::guest::GuestConfig;

use crate::error::{Context, Error, Result};

/// Header: 8 bytes of magic + a little-endian u32 length.
const HEADER: usize = 12;

/// More than any sane config (argv, env and secrets); a bigger length is a corrupt disk.
const MAX_JSON: usize = 64 << 20;

/// Reads only the header and the JSON it announces, not the whole (padded) disk.
pub fn read(path: &Path) -> Result<GuestConfig> {
    let what = || format!("reading the config disk {}", path.display());
    let mut disk = File::open(path).with_context(what)?;
    let mut buf = Vec::with_capacity(4096);
    (&mut disk)
        .take(HEADER as u64)
        .read_to_end(&mut buf)
        .with_context(what)?;
    if buf.len() == HEADER {
        let len = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
        if len > MAX_JSON {
            return Err(Error::invalid(
                what(),
                format!("header announces {len} bytes of JSON (at most {MAX_JSON})"),
            ));
        }
        disk.take(len as u64)
            .read_to_end(&mut buf)
            .with_context(what)?;
    }
    GuestConfig::decode(&buf).with_context(what)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use zeitwork_core::guest::Interface;

    use super::*;

    fn sample() -> GuestConfig {
        GuestConfig {
            argv: vec!["/bin/app".into()],
            env: BTreeMap::from([("PATH".into(), "/bin".into())]),
            workdir: "/srv".into(),
            user: "app".into(),
            hostname: "web-1".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                ipv4: Some("172.31.0.1/31".into()),
                gateway4: Some("172.31.0.0".into()),
                ipv6: None,
                gateway6: None,
            }],
            dns: vec!["172.31.0.0".into()],
            secrets: BTreeMap::from([("DB".into(), "x".into())]),
            cache: None,
        }
    }

    #[test]
    fn reads_a_padded_disk_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.img");
        let mut disk = sample().encode();
        disk.resize(1 << 20, 0);
        std::fs::write(&path, &disk).unwrap();
        assert_eq!(read(&path).unwrap(), sample());
    }

    #[test]
    fn bad_disks_are_reported_with_the_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.img");
        std::fs::write(&path, [0u8; 512]).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("config.img") && e.contains("magic"), "{e}");

        let mut disk = sample().encode();
        disk[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &disk).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("at most"));

        let disk = sample().encode();
        std::fs::write(&path, &disk[..40]).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("truncated"));

        assert!(read(&dir.path().join("missing")).is_err());
    }
}
