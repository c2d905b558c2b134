//! `IntOrString`: ports given by number or name, and counts given as `3` or `25%`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that is either an integer or a string (Kubernetes `intstr.IntOrString`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntOrString {
    /// A number, e.g. a port `8080` or a count `1`.
    Int(i32),
    /// A string, e.g. a port name `http` or a percentage `25%`.
    String(String),
}

impl IntOrString {
    /// The percentage if this is a string of the form `N%`.
    pub fn percent(&self) -> Option<i32> {
        match self {
            Self::String(s) => s.strip_suffix('%')?.parse().ok(),
            Self::Int(_) => None,
        }
    }

    /// Resolves an absolute count or a percentage of `total`, rounding percentages
    /// up or down (Kubernetes rounds maxSurge up and maxUnavailable down).
    /// `None` when the value is a string but not a percentage.
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Option<i32> {
        match self {
            Self::Int(v) => Some(*v),
            Self::String(_) => {
                let p = i64::from(self.percent()?);
                let raw = p * i64::from(total);
                let v = if round_up {
                    (raw + 99).div_euclid(100)
                } else {
                    raw.div_euclid(100)
                };
                i32::try_from(v).ok()
            }
        }
    }
}

impl Default for IntOrString {
    fn default() -> Self {
        Self::Int(0)
    }
}

impl From<i32> for IntOrString {
    fn from(v: i32) -> Self {
        Self::Int(v)
    }
}

impl From<&str> for IntOrString {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::String(s) => f.write_str(s),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(v) => s.serialize_i32(*v),
            Self::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v).map(IntOrString::Int).map_err(|_| {
                    E::invalid_value(serde::de::Unexpected::Signed(v), &"a 32-bit integer")
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v).map(IntOrString::Int).map_err(|_| {
                    E::invalid_value(serde::de::Unexpected::Unsigned(v), &"a 32-bit integer")
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_scales() {
        let v: IntOrString = serde_json::from_str("\"25%\"").unwrap();
        assert_eq!(v.percent(), Some(25));
        assert_eq!(v.scaled_value(10, true), Some(3));
        assert_eq!(v.scaled_value(10, false), Some(2));
        let v: IntOrString = serde_json::from_str("8080").unwrap();
        assert_eq!(v, IntOrString::Int(8080));
        assert_eq!(serde_json::to_string(&v).unwrap(), "8080");
        assert_eq!(IntOrString::from("http").scaled_value(10, true), None);
        assert!(serde_json::from_str::<IntOrString>("true").is_err());
        assert!(serde_json::from_str::<IntOrString>("4294967296").is_err());
    }
}
