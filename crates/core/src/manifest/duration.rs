//! Durations in the manifest are written like `"10s"`, `"500ms"` or `"1m"`, or as a
//! bare number of seconds.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration kept in seconds; serialized back in its normal `"<n>s"` form so the
/// manifest hash does not depend on how the user spelt it.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Seconds(pub f64);

impl Seconds {
    pub fn as_duration(self) -> Duration {
        Duration::from_secs_f64(self.0)
    }

    fn parse(s: &str) -> Result<Seconds, String> {
        let s = s.trim();
        let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
            (n, 0.001)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1.0)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60.0)
        } else {
            (s, 1.0)
        };
        let value: f64 = number.trim().parse().map_err(|_| {
            format!("invalid duration {s:?}: write it like \"10s\", \"500ms\" or \"1m\"")
        })?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("invalid duration {s:?}: must be a positive number"));
        }
        Ok(Seconds(value * scale))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Seconds::parse(&n.to_string()),
            Raw::Text(t) => Seconds::parse(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(Seconds::parse("10s").unwrap(), Seconds(10.0));
        assert_eq!(Seconds::parse("500ms").unwrap(), Seconds(0.5));
        assert_eq!(Seconds::parse("2m").unwrap(), Seconds(120.0));
        assert_eq!(Seconds::parse("3").unwrap(), Seconds(3.0));
        assert!(Seconds::parse("ten").unwrap_err().contains("\"ten\""));
        assert!(Seconds::parse("-1s").is_err());
    }

    #[test]
    fn serializes_normalized() {
        assert_eq!(serde_json::to_string(&Seconds(0.5)).unwrap(), "\"0.5s\"");
    }
}
