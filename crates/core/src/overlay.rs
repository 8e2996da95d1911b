//! The WireGuard overlay between nodes (`docs/architecture.md`, "Overlay"): each node makes
//! its own key pair when it enrolls (the private key never leaves it) and tells the
//! control plane its public key and UDP port; the control plane gives every node the
//! others as peers, each allowed exactly its own instance /64, whose first address is the
//! peer's own overlay address ([`crate::ipam::overlay_address`]). Nodes report how recently
//! each peer answered, so a lost peer shows, never silently.

use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// 32 bytes in canonical base64: 42 free characters, one whose low bits are zero, `=`.
pub const KEY_PATTERN: &str = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$";

/// A node's WireGuard identity, sent when it enrolls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverlayKey {
    /// Its Curve25519 public key, base64 (44 characters, as `wg pubkey` prints it).
    #[schemars(length(min = 44, max = 44), regex(pattern = KEY_PATTERN))]
    pub public_key: String,
    /// The UDP port it listens on, at each of its addresses.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

impl OverlayKey {
    /// Checks the key is 32 bytes of base64 and the port is not 0.
    pub fn check(&self) -> Result<(), OverlayError> {
        public_key_bytes(&self.public_key)?;
        if self.port == 0 {
            return Err(OverlayError::Port);
        }
        Ok(())
    }
}

/// The 32 bytes of a base64 public key.
pub fn public_key_bytes(key: &str) -> Result<[u8; 32], OverlayError> {
    if key.len() != 44 {
        return Err(OverlayError::Key);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| OverlayError::Key)?;
    bytes.try_into().map_err(|_| OverlayError::Key)
}

/// What is wrong with an [`OverlayKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    /// Not 44 characters of base64 for 32 bytes.
    #[error("public_key must be a WireGuard public key: 32 bytes in base64 (44 characters)")]
    Key,
    /// Port 0.
    #[error("port must be between 1 and 65535")]
    Port,
}

/// One other node a node peers with (part of its desired state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OverlayPeer {
    pub node_id: Uuid,
    pub name: String,
    pub public_key: String,
    /// `ip:port` (`[ip6]:port`) where it listens: each of its addresses, IPv6 first.
    pub endpoints: Vec<String>,
    /// Its instance /64 (its overlay address included): all it may send from.
    pub allowed_ips: Vec<String>,
}

/// How recently a peer answered, as the node that peers with it saw (heartbeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerSeen {
    #[schemars(length(min = 44, max = 44), regex(pattern = KEY_PATTERN))]
    pub public_key: String,
    /// Seconds since the last completed handshake; `null`: never.
    #[serde(default)]
    #[schemars(range(max = 4_294_967_295_u64))]
    pub handshake_age_seconds: Option<u64>,
}

/// A peer counts as reachable while its last handshake is younger than this: WireGuard
/// renews one every 2 minutes on a live path, and gives a session up after 3 (its
/// `REJECT_AFTER_TIME`).
pub const REACHABLE_WITHIN_SECONDS: u64 = 180;

impl PeerSeen {
    /// Whether the path to this peer worked within [`REACHABLE_WITHIN_SECONDS`].
    pub fn reachable(&self) -> bool {
        self.handshake_age_seconds
            .is_some_and(|age| age < REACHABLE_WITHIN_SECONDS)
    }
}

/// The most peers one heartbeat may report.
pub const MAX_PEERS: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_bytes_of_base64() {
        let good = OverlayKey {
            public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=".into(),
            port: 51820,
        };
        assert_eq!(good.check(), Ok(()));
        for bad in [
            "",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8D=",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg",
            "!TIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg==",
        ] {
            let key = OverlayKey {
                public_key: bad.into(),
                port: 51820,
            };
            assert_eq!(key.check(), Err(OverlayError::Key), "{bad:?}");
        }
        let no_port = OverlayKey { port: 0, ..good };
        assert_eq!(no_port.check(), Err(OverlayError::Port));
    }

    #[test]
    fn the_documented_pattern_admits_exactly_the_keys_the_check_takes() {
        let pattern = |k: &str| {
            k.len() == 44
                && k.ends_with('=')
                && k[..42]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
                && "AEIMQUYcgkosw048".contains(&k[42..43])
        };
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for last in alphabet.chars() {
            let key = format!("{}{last}=", "A".repeat(42));
            assert_eq!(
                pattern(&key),
                public_key_bytes(&key).is_ok(),
                "{key}: the pattern and the check disagree"
            );
        }
        assert!(KEY_PATTERN.contains("[AEIMQUYcgkosw048]"));
    }

    #[test]
    fn a_peer_is_reachable_only_after_a_recent_handshake() {
        let seen = |age| PeerSeen {
            public_key: String::new(),
            handshake_age_seconds: age,
        };
        assert!(seen(Some(0)).reachable());
        assert!(seen(Some(179)).reachable());
        assert!(!seen(Some(180)).reachable());
        assert!(!seen(None).reachable());
    }
}
