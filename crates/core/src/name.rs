//! Names of orgs, apps, envs, processes and hostnames appear in URLs and DNS
//! (`<app>-<nanoid>-<org>.<base-domain>`), so they follow DNS label rules everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name was refused; the message tells the user the rule they broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters (got {len})")]
    TooLong { max: usize, len: usize },
    #[error("may only contain lowercase letters a-z, digits 0-9 and '-' (found {0:?})")]
    BadChar(char),
    #[error("must start and end with a letter or digit")]
    BadEdge,
    #[error("must have at least two labels, like app.example.com")]
    NotQualified,
}

/// A DNS label: 1–63 of `[a-z0-9-]`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// What a [`Name`] matches (as a JSON Schema pattern, for the API's document).
pub const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";

/// Longest name we accept for orgs and apps: both appear together in one 63-byte
/// deployment label, so they must leave room for each other and the nanoid.
pub const MAX_NAME: usize = 27;

impl Name {
    pub fn parse(s: &str) -> Result<Name, NameError> {
        check_label(s, MAX_NAME)?;
        Ok(Name(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_label(s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > max {
        return Err(NameError::TooLong { max, len: s.len() });
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::BadChar(c));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(NameError::BadEdge);
    }
    Ok(())
}

/// A fully qualified hostname (routes, custom domains), lowercase, at most 253 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Hostname, NameError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.len() > 253 {
            return Err(NameError::TooLong {
                max: 253,
                len: s.len(),
            });
        }
        let labels: Vec<&str> = s.split('.').collect();
        if labels.len() < 2 {
            return Err(if s.is_empty() {
                NameError::Empty
            } else {
                NameError::NotQualified
            });
        }
        for label in labels {
            check_label(label, 63)?;
        }
        Ok(Hostname(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Hostname {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hostname::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "hello", "my-app-2", "0"] {
            assert_eq!(Name::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_bad_labels_with_reason() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse("Hello"), Err(NameError::BadChar('H')));
        assert_eq!(Name::parse("a_b"), Err(NameError::BadChar('_')));
        assert_eq!(Name::parse("-a"), Err(NameError::BadEdge));
        assert_eq!(Name::parse("a-"), Err(NameError::BadEdge));
        assert!(matches!(
            Name::parse(&"a".repeat(28)),
            Err(NameError::TooLong { max: 27, len: 28 })
        ));
    }

    #[test]
    fn hostnames_need_two_valid_labels() {
        assert_eq!(
            Hostname::parse("app.example.com.").unwrap().as_str(),
            "app.example.com"
        );
        assert_eq!(Hostname::parse("localhost"), Err(NameError::NotQualified));
        assert_eq!(Hostname::parse("a..b"), Err(NameError::Empty));
        assert_eq!(Hostname::parse("A.com"), Err(NameError::BadChar('A')));
    }

    #[test]
    fn deserialize_validates() {
        let err = serde_json::from_str::<Name>("\"Bad\"").unwrap_err();
        assert!(err.to_string().contains("lowercase"), "{err}");
    }
}
