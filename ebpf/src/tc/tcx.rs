//! A tc program (`from_pod` on a pod veth, `from_overlay` on the VXLAN
//! device) as a TCX link pinned under the node's `links/`.
use std::path::Path;

use aya::programs::{
    LinkOrder, SchedClassifier, TcAttachType,
    links::{FdLink, PinnedLink},
    tc::{SchedClassifierLink, TcAttachOptions},
};

use crate::{
    Attached,
    attach::{ifindex, link_err, prog_err, remove_pin},
    error::DatapathError,
};

/// Attaches `prog` (named `program`, for errors) to `attach_type` of `ifname`
/// through a TCX link pinned at `pin`. A link already pinned there for this interface is updated in
/// place (atomic program replace); a stale pin whose interface is gone is
/// replaced by a new link.
pub(crate) fn attach(
    prog: &mut SchedClassifier,
    program: &'static str,
    ifname: &str,
    attach_type: TcAttachType,
    pin: &Path,
) -> Result<Attached, DatapathError> {
    ifindex(ifname)?;
    if pin.exists() {
        let pinned =
            PinnedLink::from_pin(pin).map_err(|e| link_err("opening", pin)(e.to_string()))?;
        let fd = FdLink::from(pinned);
        if link_is_on(&fd, ifname, attach_type) {
            let link = SchedClassifierLink::try_from(fd)
                .map_err(|e| link_err("adopting", pin)(e.to_string()))?;
            let id = prog
                .attach_to_link(link)
                .map_err(prog_err("replacing", program, ifname))?;
            // The pin keeps the link; dropping our handle only closes an fd.
            drop(
                prog.take_link(id)
                    .map_err(prog_err("releasing", program, ifname))?,
            );
            return Ok(Attached::Replaced);
        }
        // The interface the link was made for is gone (or renamed): start afresh.
        drop(fd);
        remove_pin(pin)?;
    }
    let id = prog
        .attach_with_options(
            ifname,
            attach_type,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(prog_err("attaching", program, ifname))?;
    let link = prog
        .take_link(id)
        .map_err(prog_err("taking link of", program, ifname))?;
    let fd = FdLink::try_from(link).map_err(|e| link_err("converting", pin)(e.to_string()))?;
    fd.pin(pin)
        .map_err(|e| link_err("pinning", pin)(e.to_string()))?;
    Ok(Attached::New)
}

/// Whether the TCX link pinned at `pin` runs on `ifname` (`attach_type`) now.
pub(crate) fn attached(
    ifname: &str,
    attach_type: TcAttachType,
    pin: &Path,
) -> Result<bool, DatapathError> {
    if !pin.exists() {
        return Ok(false);
    }
    let pinned = PinnedLink::from_pin(pin).map_err(|e| link_err("opening", pin)(e.to_string()))?;
    Ok(link_is_on(&FdLink::from(pinned), ifname, attach_type))
}

/// Whether a TCX link's program is attached to `ifname` (`attach_type`)
/// right now (a link whose interface was deleted is defunct and runs nowhere).
fn link_is_on(link: &FdLink, ifname: &str, attach_type: TcAttachType) -> bool {
    let Ok(info) = link.info() else { return false };
    let prog_id = info.program_id();
    SchedClassifier::query_tcx(ifname, attach_type)
        .is_ok_and(|(_, progs)| progs.iter().any(|p| p.id() == prog_id))
}
