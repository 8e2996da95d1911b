//! A range of TCP ports, as operators write it (`20000-29999`): where `tcp` routes get
//! their allocated ports.

use std::fmt;
use std::str::FromStr;

/// Inclusive on both ends; never empty, never port 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a port range: write FIRST-LAST with 1 <= FIRST <= LAST <= 65535 (e.g. 20000-29999)"
)]
pub struct PortRangeError(String);

impl PortRange {
    pub fn new(first: u16, last: u16) -> Option<PortRange> {
        (first >= 1 && first <= last).then_some(PortRange { first, last })
    }

    pub fn first(self) -> u16 {
        self.first
    }

    pub fn last(self) -> u16 {
        self.last
    }

    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// The lowest port of the range that `taken` does not hold.
    pub fn first_free(self, taken: impl Fn(u16) -> bool) -> Option<u16> {
        (self.first..=self.last).find(|p| !taken(*p))
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    /// `FIRST-LAST`, or one port alone.
    fn from_str(s: &str) -> Result<PortRange, PortRangeError> {
        let bad = || PortRangeError(s.to_owned());
        let (first, last) = s.trim().split_once('-').unwrap_or((s.trim(), s.trim()));
        let port = |p: &str| p.trim().parse::<u16>().map_err(|_| bad());
        PortRange::new(port(first)?, port(last)?).ok_or_else(bad)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_print_alike() {
        let r: PortRange = "20000-29999".parse().unwrap();
        assert_eq!((r.first(), r.last()), (20000, 29999));
        assert_eq!(r.to_string(), "20000-29999");
        let one: PortRange = "7000".parse().unwrap();
        assert_eq!((one.first(), one.last()), (7000, 7000));
        for bad in ["", "0-10", "10-9", "a-b", "1-70000", "-5", "5-"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_first_free_port_skips_taken_ones_and_may_be_none() {
        let r = PortRange::new(100, 102).unwrap();
        assert_eq!(r.first_free(|p| p == 100), Some(101));
        assert_eq!(r.first_free(|_| true), None);
        assert!(r.contains(102) && !r.contains(103));
    }
}
