//! Lease (`coordination.k8s.io/v1`): a named, renewable claim. jotasu uses
//! Leases as Kubernetes does: one in `kube-system` names the control plane
//! that runs the scheduler and the controllers (leader election), one per
//! node in `kube-node-lease` is renewed by the node's heartbeats (node
//! liveness, judged the same way by every control plane).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, Time};
use crate::resource::{ApiVersionTag, KindTag, resource};

/// The namespace of the node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// A claim held by `spec.holderIdentity` until `renewTime` plus
/// `leaseDurationSeconds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lease {
    /// Always `coordination.k8s.io/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<Lease>,
    /// Always `Lease`.
    #[serde(default)]
    pub kind: KindTag<Lease>,
    /// Its name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Who holds it and until when.
    #[serde(default)]
    pub spec: LeaseSpec,
}

/// The claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseSpec {
    /// The holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// How long after `renewTime` others may take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
    /// When the current holder took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<MicroTime>,
    /// When the holder last renewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<MicroTime>,
    /// How many times it changed hands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i32>,
    /// Kept as given (coordinated leader election).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Kept as given (coordinated leader election).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_holder: Option<String>,
}

/// A point in time with microseconds, RFC 3339 in UTC
/// (`2024-05-01T12:00:00.123456Z`), as Kubernetes' `MicroTime`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MicroTime(pub String);

impl MicroTime {
    /// Now.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self::from_unix_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    /// The time `micros` microseconds after the Unix epoch.
    pub fn from_unix_micros(micros: i64) -> Self {
        let secs = micros.div_euclid(1_000_000);
        let frac = micros.rem_euclid(1_000_000);
        let whole = Time::from_unix_seconds(secs).0;
        let stem = whole.strip_suffix('Z').unwrap_or(&whole);
        Self(format!("{stem}.{frac:06}Z"))
    }

    /// Microseconds since the Unix epoch, if the text is an RFC 3339 time.
    pub fn unix_micros(&self) -> Option<i64> {
        let secs = Time(self.0.clone()).unix_seconds()?;
        let frac = self
            .0
            .get(19..)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let six: String = digits
                    .chars()
                    .chain(std::iter::repeat('0'))
                    .take(6)
                    .collect();
                six.parse::<i64>().unwrap_or(0)
            })
            .unwrap_or(0);
        secs.checked_mul(1_000_000)?.checked_add(frac)
    }
}

impl fmt::Debug for MicroTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MicroTime({})", self.0)
    }
}

impl fmt::Display for MicroTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

resource!(Lease, "coordination.k8s.io/v1", "Lease", namespaced = true);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_round_trips() {
        let t = MicroTime::from_unix_micros(1_714_564_800_123_456);
        assert_eq!(t.0, "2024-05-01T12:00:00.123456Z");
        assert_eq!(t.unix_micros(), Some(1_714_564_800_123_456));
        assert_eq!(
            MicroTime("2024-05-01T12:00:00Z".into()).unix_micros(),
            Some(1_714_564_800_000_000)
        );
        assert_eq!(
            MicroTime("2024-05-01T12:00:00.5Z".into()).unix_micros(),
            Some(1_714_564_800_500_000)
        );
        assert_eq!(MicroTime("yesterday".into()).unix_micros(), None);
    }

    #[test]
    fn a_kubernetes_lease_decodes() {
        let l: Lease = serde_json::from_value(serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                     "renewTime": "2024-05-01T12:00:00.000000Z"}}))
        .unwrap();
        assert_eq!(l.spec.lease_duration_seconds, Some(40));
    }
}
