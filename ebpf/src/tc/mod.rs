//! How `from_pod` hooks into a pod's host-side veth ([`PodHook`]).
//!
//! Two ways, because each costs something the other does not:
//!
//! - **filter** (default): a cls_bpf filter on the device's clsact qdisc.
//!   Added in about 0.1 ms. It takes the device's one ingress qdisc slot, so
//!   another tool that wants to create its own ingress qdisc there fails with
//!   "file exists" — the reference `bandwidth` plugin's egress shaping does
//!   (containernetworking/plugins#894).
//! - **tcx**: a TCX bpf_link, pinned. It needs no qdisc and coexists with
//!   any other tc user. But the kernel waits for an RCU grace period while
//!   holding the RTNL lock on every TCX attach and on tearing one down
//!   (`tcx_entry_sync`): 4–16 ms on our machines, during which every netlink
//!   operation on the node waits too.
//!
//! Attaching one way removes an attachment made the other way, so the
//! program never runs twice on a device.
mod filter;
pub(crate) mod tcx;

use std::{fmt, path::Path, str::FromStr};

use aya::programs::{SchedClassifier, TcAttachType};

use crate::{Attached, attach::remove_pin, error::DatapathError};

/// How `from_pod` is attached to a pod veth. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodHook {
    /// A tc filter on the clsact qdisc (fast; takes the ingress qdisc slot).
    #[default]
    Filter,
    /// A pinned TCX link (coexists with other tc users; an RCU grace period
    /// under RTNL per attach and per teardown).
    Tcx,
}

impl PodHook {
    /// Every hook, by name.
    pub const ALL: [Self; 2] = [Self::Filter, Self::Tcx];

    /// The hook's name in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::Tcx => "tcx",
        }
    }
}

impl fmt::Display for PodHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PodHook {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| format!("unknown pod hook {s:?}: use \"filter\" or \"tcx\""))
    }
}

/// Which side of a pod's host-side veth a program runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Ingress: what the pod sends (`from_pod`).
    Ingress,
    /// Egress: what the node's stack sends the pod (`to_pod`).
    Egress,
}

impl Side {
    /// The program that runs there.
    pub(crate) fn program(self) -> &'static str {
        match self {
            Self::Ingress => "from_pod",
            Self::Egress => "to_pod",
        }
    }

    pub(crate) fn attach_type(self) -> TcAttachType {
        match self {
            Self::Ingress => TcAttachType::Ingress,
            Self::Egress => TcAttachType::Egress,
        }
    }
}

/// Attaches `prog` to `side` of `ifname` by `hook` (`pin`: where its TCX
/// link is or would be pinned), removing an attachment made the other way.
pub(crate) fn attach(
    prog: &mut SchedClassifier,
    ifname: &str,
    side: Side,
    hook: PodHook,
    pin: &Path,
) -> Result<Attached, DatapathError> {
    match hook {
        PodHook::Filter => {
            let outcome = filter::attach(prog, ifname, side)?;
            remove_pin(pin)?;
            Ok(outcome)
        }
        PodHook::Tcx => {
            let outcome = tcx::attach(prog, side.program(), ifname, side.attach_type(), pin)?;
            filter::detach(ifname, side)?;
            Ok(outcome)
        }
    }
}

/// Removes `side`'s program from `ifname` whichever way it was attached; a
/// missing interface is fine (its filter went with it; its pin is
/// removed). Returns whether anything was attached.
pub(crate) fn detach(ifname: &str, side: Side, pin: &Path) -> Result<bool, DatapathError> {
    let pinned = remove_pin(pin)?;
    let filtered = match filter::detach(ifname, side) {
        Err(DatapathError::NoSuchInterface { .. }) => false,
        other => other?,
    };
    Ok(pinned || filtered)
}

/// How `side`'s program runs on `ifname` now, if it does.
pub(crate) fn attached(
    ifname: &str,
    side: Side,
    pin: &Path,
) -> Result<Option<PodHook>, DatapathError> {
    if tcx::attached(ifname, side.attach_type(), pin)? {
        return Ok(Some(PodHook::Tcx));
    }
    Ok(filter::attached(ifname, side)?.then_some(PodHook::Filter))
}

#[cfg(test)]
mod tests {
    use super::PodHook;

    #[test]
    fn hooks_parse_by_name_and_reject_others() {
        for h in PodHook::ALL {
            assert_eq!(h.as_str().parse::<PodHook>(), Ok(h));
        }
        assert_eq!(PodHook::default(), PodHook::Filter);
        let e = "tc".parse::<PodHook>().unwrap_err();
        assert!(e.contains("\"filter\" or \"tcx\""), "{e}");
    }
}
