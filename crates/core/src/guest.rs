//! What the host tells a microVM at boot, on its read-only config disk, and what the
//! guest's init tells the host back on the console. Both sides (agent and
//! `zeitwork-init`) use these types, so the format cannot drift.
//!
//! Config disk layout (a raw block device, no filesystem): the 8-byte magic
//! [`CONFIG_MAGIC`], a little-endian u32 length, then that many bytes of JSON
//! ([`GuestConfig`]); the rest of the disk is zero padding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const CONFIG_MAGIC: &[u8; 8] = b"ZWCFG001";

/// Where init writes the secrets file inside the guest (mode 0400, owned by the app's user).
pub const SECRETS_PATH: &str = "/run/secrets/zeitwork.json";

/// The prefix of the one console line init prints when the app has exited.
pub const EXIT_LINE: &str = "zeitwork-init: exit ";

/// The prefix of the one console line init prints when it cannot start the app.
pub const FAILURE_LINE: &str = "zeitwork-init: failed: ";

/// While this file exists inside the guest (the app's user may create it), the app says
/// it works in the background: a process scaled to zero is not stopped for idleness.
pub const BUSY_PATH: &str = "/run/zeitwork/busy";

/// What init prints on the console when [`BUSY_PATH`] appears, and when it goes.
pub const BUSY_LINE: &str = "zeitwork-init: busy";
/// See [`BUSY_LINE`].
pub const IDLE_LINE: &str = "zeitwork-init: idle";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestConfig {
    /// Program and arguments; `argv[0]` is resolved against `PATH` in `env` when it has no `/`.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: String,
    /// `uid[:gid]`, or a user name found in the image's /etc/passwd.
    pub user: String,
    pub hostname: String,
    pub interfaces: Vec<Interface>,
    pub dns: Vec<String>,
    /// Secret name → value, written to [`SECRETS_PATH`].
    pub secrets: BTreeMap<String, String>,
    /// Where the VM's fourth disk (`/dev/vdd`, ext4, writable: a builder's layer cache,
    /// kept between builds of one app) is mounted in its root, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
}

crate::redacted_debug!(GuestConfig {
    argv, env, workdir, user, hostname, interfaces, dns, cache
} hides { secrets });

/// One point-to-point interface: the guest's address and the host end as gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: String,
    /// `a.b.c.d/31`
    pub ipv4: Option<String>,
    pub gateway4: Option<String>,
    /// `fdxx:…/127` or similar
    pub ipv6: Option<String>,
    pub gateway6: Option<String>,
}

/// Why a config disk could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config disk does not start with the zeitwork magic")]
    BadMagic,
    #[error("config disk is truncated: header says {want} bytes, disk has {have}")]
    Truncated { want: usize, have: usize },
    #[error("config disk JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
}

impl GuestConfig {
    /// The disk image, padded to a multiple of 512 bytes (a whole number of sectors).
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("guest config serializes");
        let mut out = Vec::with_capacity(json.len() + 12 + 512);
        out.extend_from_slice(CONFIG_MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    pub fn decode(disk: &[u8]) -> Result<GuestConfig, ConfigError> {
        if disk.len() < 12 || &disk[..8] != CONFIG_MAGIC {
            return Err(ConfigError::BadMagic);
        }
        let len = u32::from_le_bytes(disk[8..12].try_into().expect("4 bytes")) as usize;
        let body = disk.get(12..12 + len).ok_or(ConfigError::Truncated {
            want: len,
            have: disk.len() - 12,
        })?;
        Ok(serde_json::from_slice(body)?)
    }
}

/// How the app ended, as init reports it on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The process exited with this code.
    Code(i32),
    /// The process was killed by this signal.
    Signal(i32),
}

impl Exit {
    /// The console line (without newline).
    pub fn line(self) -> String {
        match self {
            Exit::Code(c) => format!("{EXIT_LINE}code={c}"),
            Exit::Signal(s) => format!("{EXIT_LINE}signal={s}"),
        }
    }

    /// Finds init's exit report in one console line.
    pub fn parse(line: &str) -> Option<Exit> {
        let rest = line.trim_end().split_once(EXIT_LINE)?.1;
        if let Some(c) = rest.strip_prefix("code=") {
            return c.parse().ok().map(Exit::Code);
        }
        rest.strip_prefix("signal=")?.parse().ok().map(Exit::Signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GuestConfig {
        GuestConfig {
            argv: vec!["/hello".into(), "--port".into(), "8080".into()],
            env: BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
            workdir: "/".into(),
            user: "1000:1000".into(),
            hostname: "web-1".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                ipv4: Some("172.31.0.1/31".into()),
                gateway4: Some("172.31.0.0".into()),
                ipv6: None,
                gateway6: None,
            }],
            dns: vec!["1.1.1.1".into()],
            secrets: BTreeMap::from([("DB".into(), "s3cret".into())]),
            cache: None,
        }
    }

    #[test]
    fn config_disk_round_trips_and_is_sector_aligned() {
        let disk = sample().encode();
        assert_eq!(disk.len() % 512, 0);
        assert_eq!(GuestConfig::decode(&disk).unwrap(), sample());
    }

    #[test]
    fn bad_disks_are_refused() {
        assert!(matches!(
            GuestConfig::decode(b"nope"),
            Err(ConfigError::BadMagic)
        ));
        let mut disk = sample().encode();
        disk[8..12].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(matches!(
            GuestConfig::decode(&disk),
            Err(ConfigError::Truncated { .. })
        ));
    }

    #[test]
    fn exit_lines_round_trip() {
        for e in [Exit::Code(0), Exit::Code(137), Exit::Signal(9)] {
            assert_eq!(Exit::parse(&format!("[  1.2] {}\r", e.line())), Some(e));
        }
        assert_eq!(Exit::parse("zeitwork-init: exit code=x"), None);
        assert_eq!(Exit::parse("hello"), None);
    }
}
