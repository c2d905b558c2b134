//! `Quantity`: Kubernetes resource amounts (`500m`, `0.5`, `128Mi`, `1G`, `1e3`).
//!
//! A quantity keeps the string the user wrote (so output round-trips) and its
//! exact value as a whole number of nano-units (10⁻⁹), so `1Gi`, `1024Mi` and
//! `1073741824` compare equal and `500m` < `0.6`. Precision finer than one
//! nano-unit is rounded up, as Kubernetes does.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Nano-units in one unit.
const NANOS_PER_UNIT: i128 = 1_000_000_000;
/// Largest magnitude accepted, in nano-units (about 10²⁹ units; 1Ei is 1.15·10¹⁸).
const MAX_NANOS: i128 = 10i128.pow(38);

/// A resource amount such as `250m` CPU or `512Mi` memory.
#[derive(Clone)]
pub struct Quantity {
    text: String,
    nanos: i128,
}

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is empty.
    #[error("quantity is empty")]
    Empty,
    /// The string does not have the form `<number><suffix>`.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Syntax,
    /// The suffix is not one of the SI or binary suffixes.
    #[error(
        "unknown suffix {0:?} (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or e<exponent>)"
    )]
    Suffix(String),
    /// The value is too large to represent.
    #[error("quantity is too large")]
    TooLarge,
}

impl Quantity {
    /// Parses a quantity in Kubernetes syntax.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let nanos = parse_nanos(text)?;
        Ok(Self {
            text: text.to_owned(),
            nanos,
        })
    }

    /// A quantity of `millis` thousandths (CPU millicores), written like `250m`.
    pub fn from_millis(millis: i64) -> Self {
        let text = if millis % 1000 == 0 {
            (millis / 1000).to_string()
        } else {
            format!("{millis}m")
        };
        Self {
            text,
            nanos: i128::from(millis) * 1_000_000,
        }
    }

    /// A quantity of whole units (bytes, cores), written as a plain integer.
    pub fn from_units(units: i64) -> Self {
        Self {
            text: units.to_string(),
            nanos: i128::from(units) * NANOS_PER_UNIT,
        }
    }

    /// The string as written (or as constructed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The exact value in nano-units (10⁻⁹).
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded up (CPU: millicores). Saturates at the `i64` range.
    pub fn millis(&self) -> i64 {
        saturate(ceil_div(self.nanos, 1_000_000))
    }

    /// The value in whole units, rounded up (memory: bytes). Saturates at the `i64` range.
    pub fn units(&self) -> i64 {
        saturate(ceil_div(self.nanos, NANOS_PER_UNIT))
    }

    /// True when the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// True when the value is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 { q + 1 } else { q }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Splits `text` into (sign, integer digits, fraction digits, suffix).
fn split_number(text: &str) -> Result<(bool, &str, &str, &str), QuantityError> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int, rest) = rest.split_at(int_len);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(after) => {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            after.split_at(n)
        }
        None => ("", rest),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(QuantityError::Syntax);
    }
    Ok((negative, int, frac, rest))
}

/// Returns (power of ten, power of two) for a suffix.
fn suffix_scale(suffix: &str) -> Result<(i32, u32), QuantityError> {
    let scale = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other => {
            let exp = other
                .strip_prefix(['e', 'E'])
                .ok_or_else(|| QuantityError::Suffix(other.into()))?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix(other.into()));
            }
            let e: i32 = exp.parse().map_err(|_| QuantityError::TooLarge)?;
            (e, 0)
        }
    };
    Ok(scale)
}

fn parse_nanos(text: &str) -> Result<i128, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, int, frac, suffix) = split_number(text)?;
    let (pow10, pow2) = suffix_scale(suffix)?;
    // mantissa × 10^(pow10 - frac.len() + 9) × 2^pow2, in nano-units.
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 38 {
        return Err(QuantityError::TooLarge);
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| QuantityError::Syntax)?
    };
    let frac_len = i32::try_from(frac.len()).map_err(|_| QuantityError::TooLarge)?;
    let exp10 = pow10.saturating_sub(frac_len).saturating_add(9);
    let mut value = mantissa;
    if mantissa != 0 {
        value = value
            .checked_mul(1i128 << pow2)
            .ok_or(QuantityError::TooLarge)?;
        if exp10 >= 0 {
            let factor = 10i128
                .checked_pow(exp10.unsigned_abs())
                .ok_or(QuantityError::TooLarge)?;
            value = value.checked_mul(factor).ok_or(QuantityError::TooLarge)?;
        } else {
            // Finer than a nano-unit: round up (away from zero for the magnitude).
            value = match 10i128.checked_pow(exp10.unsigned_abs()) {
                Some(divisor) => ceil_div(value, divisor),
                None => 1,
            };
        }
    }
    if value > MAX_NANOS {
        return Err(QuantityError::TooLarge);
    }
    Ok(if negative { -value } else { value })
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity({:?})", self.text)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}
impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as 500m, 2, 128Mi or 1G")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v).map_err(|e| E::custom(format!("invalid quantity {v:?}: {e}")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::from_units(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(q("500m").millis(), 500);
        assert_eq!(q("0.5").millis(), 500);
        assert_eq!(q(".5").millis(), 500);
        assert_eq!(q("2").millis(), 2000);
        assert_eq!(q("2.").millis(), 2000);
        assert_eq!(q("1e3").units(), 1000);
        assert_eq!(q("1E3").units(), 1000);
        assert_eq!(q("1e-3").millis(), 1);
        assert_eq!(q("0.1m").millis(), 1, "sub-milli rounds up");
        assert_eq!(q("100n").nanos(), 100);
        assert_eq!(q("5u").nanos(), 5000);
        assert_eq!(q("+3").units(), 3);
        assert_eq!(q("-1").units(), -1);
        assert!(q("-1").is_negative());
        assert!(q("0").is_zero());
        assert!(q("0Gi").is_zero());
    }

    #[test]
    fn memory_forms() {
        assert_eq!(q("128Mi").units(), 128 * 1024 * 1024);
        assert_eq!(q("1Gi").units(), 1 << 30);
        assert_eq!(q("1G").units(), 1_000_000_000);
        assert_eq!(q("100k").units(), 100_000);
        assert_eq!(q("1.5Gi").units(), 3 << 29);
        assert_eq!(q("1Ei").units(), 1 << 60);
        assert_eq!(q("8E").units(), 8_000_000_000_000_000_000);
        assert_eq!(q("0.5").units(), 1, "fractional units round up");
    }

    #[test]
    fn compares_by_value_and_keeps_text() {
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1Gi"), q("1073741824"));
        assert_eq!(q("1000m"), q("1"));
        assert!(q("500m") < q("0.6"));
        assert!(q("1G") < q("1Gi"));
        assert!(q("1e3") == q("1k"));
        assert_eq!(q("1024Mi").as_str(), "1024Mi");
        assert_eq!(serde_json::to_string(&q("0.5")).unwrap(), "\"0.5\"");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Quantity::parse(""), Err(QuantityError::Empty));
        assert_eq!(Quantity::parse("abc"), Err(QuantityError::Syntax));
        assert_eq!(Quantity::parse("."), Err(QuantityError::Syntax));
        assert_eq!(Quantity::parse("-"), Err(QuantityError::Syntax));
        assert!(matches!(
            Quantity::parse("1Gb"),
            Err(QuantityError::Suffix(_))
        ));
        assert!(matches!(
            Quantity::parse("1e"),
            Err(QuantityError::Suffix(_))
        ));
        assert!(matches!(
            Quantity::parse("1K"),
            Err(QuantityError::Suffix(_))
        ));
        assert!(matches!(
            Quantity::parse("1 Gi"),
            Err(QuantityError::Suffix(_))
        ));
        assert!(matches!(
            Quantity::parse("1.2.3"),
            Err(QuantityError::Suffix(_))
        ));
        assert_eq!(Quantity::parse("1e99"), Err(QuantityError::TooLarge));
        assert_eq!(
            Quantity::parse("99999999999999999999999999999999999999999"),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(q("1e-99").nanos(), 1, "tiny positive rounds up to one nano");
    }

    #[test]
    fn from_numbers() {
        let v: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(v.millis(), 500);
        let v: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(v.as_str(), "2");
        assert_eq!(Quantity::from_millis(1500).as_str(), "1500m");
        assert_eq!(Quantity::from_millis(2000).as_str(), "2");
        assert_eq!(Quantity::from_units(1 << 20), q("1Mi"));
        assert!(
            serde_json::from_str::<Quantity>("\"12x\"")
                .unwrap_err()
                .to_string()
                .contains("invalid quantity \"12x\"")
        );
    }
}
