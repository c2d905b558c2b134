//! CNI specification versions.
use std::fmt;

use super::{CniError, Code};

/// The spec versions jotasu reads and writes, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// A supported CNI spec version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 0.4.0: results carry `"version": "4"` per IP; CHECK exists.
    V0_4_0,
    /// 1.0.0.
    V1_0_0,
    /// 1.1.0: STATUS, GC, `cniVersions`.
    V1_1_0,
}

impl Version {
    /// The newest version, which this crate implements.
    pub const LATEST: Self = Self::V1_1_0;

    /// Parses a supported version, or fails with code 1 naming the ones that are.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        match s {
            "0.4.0" => Ok(Self::V0_4_0),
            "1.0.0" => Ok(Self::V1_0_0),
            "1.1.0" => Ok(Self::V1_1_0),
            other => Err(CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "CNI version {other:?} is not supported; jotasu supports {}",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            )),
        }
    }

    /// The highest supported version among `offered` (a conflist's
    /// `cniVersions`), ignoring the ones this crate does not know.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        offered
            .into_iter()
            .filter_map(|v| Self::parse(v).ok())
            .max()
    }

    /// The version as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// Whether the STATUS and GC verbs exist in this version.
    pub fn has_status_and_gc(self) -> bool {
        self >= Self::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_and_names_them_when_not() {
        assert_eq!(Version::parse("1.0.0").ok(), Some(Version::V1_0_0));
        let e = Version::parse("0.3.1").err().map(|e| (e.code, e.msg));
        let (code, msg) = e.unwrap_or_default();
        assert_eq!(code, Code::IncompatibleVersion);
        assert!(msg.contains("0.3.1") && msg.contains("1.1.0"), "{msg}");
    }

    #[test]
    fn negotiates_the_highest_known() {
        assert_eq!(
            Version::negotiate(["0.3.1", "1.0.0", "9.9.9"]),
            Some(Version::V1_0_0)
        );
        assert_eq!(Version::negotiate(["0.2.0"]), None);
        assert!(Version::V1_1_0.has_status_and_gc());
        assert!(!Version::V1_0_0.has_status_and_gc());
    }
}
