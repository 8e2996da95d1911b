//! Durations in the manifest and route policies are written like `"10s"`, `"500ms"` or
//! `"1m"`, or as a bare number of seconds.
//!
//! A duration is a whole number of milliseconds between 0 and [`Seconds::MAX`], parsed
//! from its decimal text exactly (no floating point), and serialized as decimal seconds
//! (`"0.5s"`, `"10s"`): every value that parses serializes to text that parses back to
//! the same value, so it can always be written into the event log and read back.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration of whole milliseconds, at most [`Seconds::MAX`]; serialized back in its
/// normal `"<n>s"` form so the manifest hash does not depend on how the user spelt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds {
    millis: u64,
}

const MILLIS_PER_SECOND: u64 = 1000;
const MILLIS_PER_MINUTE: u64 = 60 * MILLIS_PER_SECOND;
const HOUR: u64 = 60 * MILLIS_PER_MINUTE;
const FORMS: &str = "write it like \"10s\", \"500ms\" or \"1m\"";

impl Seconds {
    /// The longest duration any field takes: 24 hours (fields may allow less).
    pub const MAX: Seconds = Seconds { millis: 24 * HOUR };
    /// One hour, the bound of timeouts and health-check intervals.
    pub const HOUR: Seconds = Seconds { millis: HOUR };

    /// Whole seconds; `None` above [`Seconds::MAX`].
    pub const fn from_secs(secs: u64) -> Option<Seconds> {
        match secs.checked_mul(MILLIS_PER_SECOND) {
            Some(millis) => Seconds::from_millis(millis),
            None => None,
        }
    }

    /// Milliseconds; `None` above [`Seconds::MAX`].
    pub const fn from_millis(millis: u64) -> Option<Seconds> {
        if millis > Seconds::MAX.millis {
            None
        } else {
            Some(Seconds { millis })
        }
    }

    /// The duration in whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// The duration for timers.
    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.millis)
    }

    /// Parses `"<decimal>ms"`, `"<decimal>s"`, `"<decimal>m"` or a bare decimal number of
    /// seconds. Refuses signs, exponents, `inf`/`NaN`, fractions of a millisecond and
    /// anything above [`Seconds::MAX`], with a message saying which.
    pub fn parse(text: &str) -> Result<Seconds, String> {
        let s = text.trim();
        let (number, unit) = if let Some(n) = s.strip_suffix("ms") {
            (n, 1u64)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, MILLIS_PER_SECOND)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, MILLIS_PER_MINUTE)
        } else {
            (s, MILLIS_PER_SECOND)
        };
        let number = number.trim();
        if number.starts_with('-') {
            return Err(format!("invalid duration {s:?}: must not be negative"));
        }
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) {
            return Err(format!("invalid duration {s:?}: {FORMS}"));
        }
        let too_long = || {
            format!(
                "invalid duration {s:?}: at most {} (24 hours)",
                Seconds::MAX
            )
        };
        let whole = whole.trim_start_matches('0');
        // A fraction digit past the fifth (the minute's 60000 ms has at most five factors
        // of 2 or of 5) can never make a whole millisecond; twelve whole digits are more
        // than a day in any unit and keep the arithmetic below within u128.
        let fraction = fraction.trim_end_matches('0');
        if whole.len() > 12 {
            return Err(too_long());
        }
        if fraction.len() > 5 {
            return Err(format!(
                "invalid duration {s:?}: durations are whole milliseconds"
            ));
        }
        let value = |t: &str| t.parse::<u128>().unwrap_or(0); // digits only; "" is 0
        let scale = 10u128.pow(fraction.len() as u32);
        let scaled = (value(whole) * scale + value(fraction)) * u128::from(unit);
        if !scaled.is_multiple_of(scale) {
            return Err(format!(
                "invalid duration {s:?}: durations are whole milliseconds"
            ));
        }
        u64::try_from(scaled / scale)
            .ok()
            .and_then(Seconds::from_millis)
            .ok_or_else(too_long)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, millis) = (
            self.millis / MILLIS_PER_SECOND,
            self.millis % MILLIS_PER_SECOND,
        );
        if millis == 0 {
            return write!(f, "{secs}s");
        }
        let fraction = format!("{millis:03}");
        write!(f, "{secs}.{}s", fraction.trim_end_matches('0'))
    }
}

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Described as what it accepts: `"<decimal>ms|s|m"` text or a number of seconds, and
/// always written back as `"<n>s"`.
impl schemars::JsonSchema for Seconds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: \"<decimal>ms\", \"<decimal>s\", \"<decimal>m\" or a number of seconds; at most 24 hours.",
            "anyOf": [
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m)$" },
                { "type": "number", "minimum": 0, "maximum": 86400 }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Visitor)
    }
}

/// Reads a duration from text, or from a number of seconds.
struct Visitor;

impl serde::de::Visitor<'_> for Visitor {
    type Value = Seconds;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a duration: {FORMS}")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Seconds, E> {
        Seconds::parse(text).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Seconds, E> {
        Seconds::from_secs(n).ok_or_else(|| {
            E::custom(format!(
                "invalid duration {n}: at most {} (24 hours)",
                Seconds::MAX
            ))
        })
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Seconds, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::custom(format!(
                "invalid duration {n}: must not be negative"
            ))),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Seconds, E> {
        if !n.is_finite() {
            return Err(E::custom(format!(
                "invalid duration {n}: not a finite number"
            )));
        }
        // Display writes a finite f64 in plain decimal, which `parse` reads exactly.
        Seconds::parse(&n.to_string()).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Seconds {
        Seconds::from_millis(millis).unwrap()
    }

    #[test]
    fn parses_units() {
        assert_eq!(Seconds::parse("10s").unwrap(), ms(10_000));
        assert_eq!(Seconds::parse("500ms").unwrap(), ms(500));
        assert_eq!(Seconds::parse("0.5").unwrap(), ms(500));
        assert_eq!(Seconds::parse("2m").unwrap(), ms(120_000));
        assert_eq!(Seconds::parse("1.5m").unwrap(), ms(90_000));
        assert_eq!(Seconds::parse("3").unwrap(), ms(3000));
        assert_eq!(Seconds::parse("0.0010s").unwrap(), ms(1));
        assert_eq!(Seconds::parse("1440m").unwrap(), Seconds::MAX);
        assert!(Seconds::parse("ten").unwrap_err().contains("\"ten\""));
    }

    #[test]
    fn refuses_what_cannot_be_a_bounded_whole_millisecond() {
        for (text, says) in [
            ("-1s", "negative"),
            ("1e308m", "write it like"),
            ("1e400", "write it like"),
            ("infs", "write it like"),
            ("NaN", "write it like"),
            ("+1s", "write it like"),
            (".5s", "write it like"),
            ("1441m", "at most 86400s"),
            ("86400.001s", "at most 86400s"),
            ("99999999999999999999999999999999999999999s", "at most"),
            ("0.0001s", "whole milliseconds"),
            ("1.5ms", "whole milliseconds"),
            (&format!("0.{}1s", "0".repeat(60)), "whole milliseconds"),
            ("0.000001m", "whole milliseconds"),
        ] {
            let error = Seconds::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn numbers_are_seconds_and_bounded() {
        let read = |json: &str| serde_json::from_str::<Seconds>(json).map_err(|e| e.to_string());
        assert_eq!(read("5").unwrap(), ms(5000));
        assert_eq!(read("0.25").unwrap(), ms(250));
        assert!(read("1e308").unwrap_err().contains("at most"));
        assert!(read("1e-7").unwrap_err().contains("whole milliseconds"));
        assert!(read("-3").unwrap_err().contains("negative"));
        assert!(
            read("18446744073709551615")
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn serializes_normalized() {
        let text = |s: Seconds| serde_json::to_string(&s).unwrap();
        assert_eq!(text(ms(500)), "\"0.5s\"");
        assert_eq!(text(ms(10_000)), "\"10s\"");
        assert_eq!(text(ms(1)), "\"0.001s\"");
        assert_eq!(text(ms(61_020)), "\"61.02s\"");
        assert_eq!(text(Seconds::MAX), "\"86400s\"");
    }
}
