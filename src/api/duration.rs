//! Durations as Kubernetes writes them (Go's `time.ParseDuration` form: `90s`, `1h30m`, `1.5h`).
//!
//! kube-core has a `Duration` of the same form, but its parser multiplies with `f64` and adds
//! without checking, so `99999999999999999999h` panics while an object is decoded — before any
//! code of ours can report it, in the one process that serves every Model. This type parses the
//! same strings with checked integer arithmetic and refuses anything beyond Go's own limit
//! (`2562047h47m16.854775807s`), so decoding can fail but never panic.

use std::fmt;

use jiff::SignedDuration;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative length of time, at most Go's `time.Duration` maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

/// Go's largest duration in nanoseconds (`math.MaxInt64`).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Empty or without any number.
    #[error("{0:?} is not a duration such as 30s, 5m or 1h30m")]
    Malformed(String),
    /// A unit other than ns, us, ms, s, m, h.
    #[error("{text:?} has the unit {unit:?}; use ns, us, ms, s, m or h")]
    UnknownUnit {
        /// The whole string.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// Starts with a minus sign.
    #[error("{0:?} is negative; a duration here must be 0s or more")]
    Negative(String),
    /// Longer than Go's `time.Duration` can hold.
    #[error("{0:?} is longer than the longest duration Kubernetes can hold (2562047h)")]
    TooLong(String),
}

impl Duration {
    /// Zero.
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// The same length as a standard library duration.
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// The same length as a signed duration (always fits: at most Go's maximum).
    pub fn as_signed(self) -> SignedDuration {
        SignedDuration::try_from(self.0).unwrap_or(SignedDuration::MAX)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d.min(std::time::Duration::from_nanos(i64::MAX as u64)))
    }
}

impl std::str::FromStr for Duration {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let malformed = || ParseError::Malformed(text.to_string());
        let too_long = || ParseError::TooLong(text.to_string());
        let mut rest = text.strip_prefix('+').unwrap_or(text);
        if rest.starts_with('-') {
            return Err(ParseError::Negative(text.to_string()));
        }
        if rest == "0" {
            return Ok(Duration::ZERO);
        }
        if rest.is_empty() {
            return Err(malformed());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let whole_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            let (whole, after) = rest.split_at(whole_end);
            let (fraction, after) = match after.strip_prefix('.') {
                Some(f) => {
                    let end = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                    f.split_at(end)
                }
                None => ("", after),
            };
            if whole.is_empty() && fraction.is_empty() {
                return Err(malformed());
            }
            let unit_end = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_end);
            let scale: u128 = match unit {
                "ns" => 1,
                "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "" => return Err(malformed()),
                other => return Err(ParseError::UnknownUnit { text: text.to_string(), unit: other.to_string() }),
            };
            let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_long())? };
            let mut nanos = whole.checked_mul(scale).ok_or_else(too_long)?;
            // Go keeps the fraction's digits as long as they change the result; so do we, exactly.
            let mut place = scale;
            for digit in fraction.bytes().map(|b| u128::from(b - b'0')) {
                if place < 10 {
                    break;
                }
                place /= 10;
                nanos = nanos.checked_add(digit * place).ok_or_else(too_long)?;
            }
            total = total.checked_add(nanos).filter(|t| *t <= MAX_NANOS).ok_or_else(too_long)?;
            rest = after;
        }
        let nanos = u64::try_from(total).map_err(|_| too_long())?;
        Ok(Duration(std::time::Duration::from_nanos(nanos)))
    }
}

impl fmt::Display for Duration {
    /// The shortest Go form without fractions: `1h30m`, `45s`, `1s500ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("h", 3_600_000_000_000u128),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ] {
            if nanos >= size {
                write!(f, "{}{unit}", nanos / size)?;
                nanos %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s, 5m or 1h30m")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
                value.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Duration, ParseError> {
        text.parse()
    }

    #[test]
    fn reads_the_go_forms() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("30m1h"), Ok(Duration::from_secs(5400)), "Go accepts units in any order");
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h30m"), Ok(Duration::from_secs(7200)), "a fraction on any unit, as Go");
        assert_eq!(parse(".5s"), Ok(Duration(std::time::Duration::from_millis(500))));
        assert_eq!(parse("1500ms"), Ok(Duration(std::time::Duration::from_millis(1500))));
        assert_eq!(parse("2us"), Ok(Duration(std::time::Duration::from_micros(2))));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("2562047h"), Ok(Duration::from_secs(2_562_047 * 3600)));
    }

    #[test]
    fn refuses_without_panicking() {
        assert!(matches!(parse("99999999999999999999h"), Err(ParseError::TooLong(_))));
        assert!(matches!(parse("100000000h"), Err(ParseError::TooLong(_))), "past Go's 2562047h");
        assert!(matches!(parse("2562048h"), Err(ParseError::TooLong(_))));
        assert!(matches!(parse("1999999h1999999h"), Err(ParseError::TooLong(_))), "the sum counts");
        assert!(matches!(parse("-5m"), Err(ParseError::Negative(_))));
        assert!(matches!(parse("5d"), Err(ParseError::UnknownUnit { unit, .. }) if unit == "d"));
        for bad in ["", "h", "5", "1.h.", ".s", "1..5s", "+"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("1.{}s", "9".repeat(10_000));
        assert_eq!(parse(&long), Ok(Duration(std::time::Duration::from_nanos(1_999_999_999))));
    }

    #[test]
    fn messages_say_what_is_wrong() {
        assert_eq!(
            parse("100000000h").unwrap_err().to_string(),
            "\"100000000h\" is longer than the longest duration Kubernetes can hold (2562047h)"
        );
        assert_eq!(parse("5d").unwrap_err().to_string(), "\"5d\" has the unit \"d\"; use ns, us, ms, s, m or h");
    }

    #[test]
    fn decoding_an_object_reports_the_error_instead_of_panicking() {
        #[derive(Deserialize, Debug)]
        struct Holder {
            #[allow(dead_code)]
            guard: Duration,
        }
        let err = serde_json::from_str::<Holder>(r#"{"guard": "99999999999999999999h"}"#).unwrap_err();
        assert!(err.to_string().contains("longest duration"), "{err}");
    }

    proptest! {
        #[test]
        fn any_text_parses_or_fails_without_panicking(text in "\\PC{0,40}") {
            let _ = parse(&text);
        }

        #[test]
        fn any_go_shaped_text_parses_or_fails_without_panicking(text in "([0-9]{0,25}(\\.[0-9]{0,25})?(ns|us|ms|s|m|h)){1,4}") {
            let _ = parse(&text);
        }

        #[test]
        fn display_reads_back_the_same_length(nanos in 0u64..=i64::MAX as u64) {
            let d = Duration(std::time::Duration::from_nanos(nanos));
            prop_assert_eq!(parse(&d.to_string()), Ok(d));
        }
    }
}
