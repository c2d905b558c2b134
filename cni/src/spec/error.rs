//! The spec's error result: `{"cniVersion", "code", "msg", "details"}`.
use serde::{Deserialize, Serialize};

use super::Version;

/// The spec's well-known error codes, and jotasu's own (100 and up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1: the config's cniVersion is not supported.
    IncompatibleVersion,
    /// 2: a field of the network config is not supported.
    UnsupportedField,
    /// 3: the container (its network namespace) does not exist.
    UnknownContainer,
    /// 4: a required `CNI_*` environment variable is missing or invalid.
    InvalidEnvironment,
    /// 5: reading or writing a file, or running a program, failed.
    #[default]
    Io,
    /// 6: stdin (or a delegate's output) is not the JSON expected.
    Decode,
    /// 7: the network config is invalid.
    InvalidConfig,
    /// 11: a transient condition (a lock held too long); try again.
    TryAgainLater,
    /// 50: STATUS — the plugin cannot serve ADD now.
    NotAvailable,
    /// 100: a netlink operation failed.
    Netlink,
    /// 101: the data plane (pinned maps, tc program) failed.
    Datapath,
    /// 102: the address range is exhausted.
    RangeExhausted,
    /// 103: CHECK found the attachment not as ADD left it.
    CheckFailed,
    /// 104: a delegated plugin (IPAM) failed; its message follows.
    Delegate,
    /// A code another plugin reported, kept as is.
    Other(u32),
}

impl Code {
    /// The number written in JSON.
    pub fn number(self) -> u32 {
        match self {
            Self::IncompatibleVersion => 1,
            Self::UnsupportedField => 2,
            Self::UnknownContainer => 3,
            Self::InvalidEnvironment => 4,
            Self::Io => 5,
            Self::Decode => 6,
            Self::InvalidConfig => 7,
            Self::TryAgainLater => 11,
            Self::NotAvailable => 50,
            Self::Netlink => 100,
            Self::Datapath => 101,
            Self::RangeExhausted => 102,
            Self::CheckFailed => 103,
            Self::Delegate => 104,
            Self::Other(n) => n,
        }
    }

    /// The code for `n`.
    pub fn from_number(n: u32) -> Self {
        [
            Self::IncompatibleVersion,
            Self::UnsupportedField,
            Self::UnknownContainer,
            Self::InvalidEnvironment,
            Self::Io,
            Self::Decode,
            Self::InvalidConfig,
            Self::TryAgainLater,
            Self::NotAvailable,
            Self::Netlink,
            Self::Datapath,
            Self::RangeExhausted,
            Self::CheckFailed,
            Self::Delegate,
        ]
        .into_iter()
        .find(|c| c.number() == n)
        .unwrap_or(Self::Other(n))
    }
}

/// A CNI error: what a plugin prints (with a non-zero exit) when it fails.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {}: {msg}{}", code.number(), if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    /// What kind of failure.
    pub code: Code,
    /// What failed, on what, and what to do.
    pub msg: String,
    /// More detail (an underlying error).
    pub details: String,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    details: String,
}

impl CniError {
    /// An error with a message and no details.
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds `details` (typically the underlying error's chain).
    #[must_use]
    pub fn with_details(mut self, details: impl std::fmt::Display) -> Self {
        self.details = details.to_string();
        self
    }

    /// The JSON a plugin prints for this error under `version`.
    pub fn to_json(&self, version: Version) -> String {
        let wire = Wire {
            cni_version: version.as_str().to_owned(),
            code: self.code.number(),
            msg: self.msg.clone(),
            details: self.details.clone(),
        };
        serde_json::to_string(&wire).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"{version}","code":{},"msg":"error"}}"#,
                self.code.number()
            )
        })
    }

    /// Reads a plugin's error output, if it is one.
    pub fn from_json(s: &[u8]) -> Option<Self> {
        let w: Wire = serde_json::from_slice(s).ok()?;
        Some(Self {
            code: Code::from_number(w.code),
            msg: w.msg,
            details: w.details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_with_its_number() {
        let e = CniError::new(Code::InvalidConfig, "bad subnet").with_details("x");
        let json = e.to_json(Version::V1_0_0);
        assert!(json.contains(r#""code":7"#) && json.contains(r#""cniVersion":"1.0.0""#));
        assert_eq!(CniError::from_json(json.as_bytes()), Some(e));
        assert_eq!(Code::from_number(11), Code::TryAgainLater);
        assert_eq!(Code::from_number(123), Code::Other(123));
    }
}
