//! A pod's quality-of-service class, as Kubernetes' `GetPodQOS` computes
//! it for CPU and memory: the agent's OOM scores and the quotas'
//! `BestEffort` scope both read it.

use crate::{Container, Pod, Quantity};

/// A pod's quality-of-service class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Every container has CPU and memory limits equal to its requests.
    Guaranteed,
    /// Something in between.
    Burstable,
    /// No container requests or limits CPU or memory.
    BestEffort,
}

impl QosClass {
    /// The name Kubernetes shows (`Guaranteed`, `Burstable`, `BestEffort`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }
}

fn request<'a>(c: &'a Container, name: &str) -> Option<&'a Quantity> {
    c.resources.as_ref()?.requests.get(name)
}

fn limit<'a>(c: &'a Container, name: &str) -> Option<&'a Quantity> {
    c.resources.as_ref()?.limits.get(name)
}

/// The pod's QoS class (init containers included; zero amounts count as
/// none).
pub fn qos_class(pod: &Pod) -> QosClass {
    let mut any = false;
    let mut guaranteed = true;
    for c in pod.spec.containers.iter().chain(&pod.spec.init_containers) {
        for name in ["cpu", "memory"] {
            let l = limit(c, name).filter(|q| !q.is_zero());
            let r = request(c, name).filter(|q| !q.is_zero()).or(l);
            any |= l.is_some() || r.is_some();
            match (r, l) {
                (Some(r), Some(l)) if r == l => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}
