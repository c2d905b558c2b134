//! Attaching programs with pinned links, so they stay attached when the
//! process that attached them exits, and a later process finds them again.
use std::{
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::programs::{
    CgroupAttachMode, CgroupSockAddr, LinkOrder, SchedClassifier, TcAttachType,
    links::{FdLink, PinnedLink},
    tc::{SchedClassifierLink, TcAttachOptions},
};

use crate::error::DatapathError;

/// What an attach call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// A new link was created and pinned.
    New,
    /// A pinned link existed; it now runs this process's program.
    Replaced,
    /// A pinned link existed and was kept as it is.
    Kept,
}

fn prog_err(
    action: &'static str,
    program: &'static str,
    target: &str,
) -> impl FnOnce(aya::programs::ProgramError) -> DatapathError {
    let target = target.to_owned();
    move |e| DatapathError::Program {
        action,
        program,
        target,
        source: Box::new(e),
    }
}

fn link_err(action: &'static str, path: &Path) -> impl FnOnce(String) -> DatapathError {
    let path = path.to_owned();
    move |reason| DatapathError::Link {
        action,
        path,
        reason,
    }
}

/// Attaches `prog` to tc ingress of `ifname` (resolved in the calling thread's
/// network namespace) through a TCX link pinned at `pin`. A link already
/// pinned there is updated in place to run `prog` (atomic program replace);
/// a stale pin whose interface is gone is replaced by a new link.
pub(crate) fn tc_ingress(
    prog: &mut SchedClassifier,
    ifname: &str,
    pin: &Path,
) -> Result<Attached, DatapathError> {
    ifindex(ifname)?;
    if pin.exists() {
        let pinned =
            PinnedLink::from_pin(pin).map_err(|e| link_err("opening", pin)(e.to_string()))?;
        let fd = FdLink::from(pinned);
        if link_is_on(&fd, ifname) {
            let link = SchedClassifierLink::try_from(fd)
                .map_err(|e| link_err("adopting", pin)(e.to_string()))?;
            let id =
                prog.attach_to_link(link)
                    .map_err(prog_err("replacing", "from_pod", ifname))?;
            // The pin keeps the link; dropping our handle only closes an fd.
            drop(
                prog.take_link(id)
                    .map_err(prog_err("releasing", "from_pod", ifname))?,
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
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(prog_err("attaching", "from_pod", ifname))?;
    let link = prog
        .take_link(id)
        .map_err(prog_err("taking link of", "from_pod", ifname))?;
    let fd = FdLink::try_from(link).map_err(|e| link_err("converting", pin)(e.to_string()))?;
    fd.pin(pin)
        .map_err(|e| link_err("pinning", pin)(e.to_string()))?;
    Ok(Attached::New)
}

/// Whether the TCX link pinned at `pin` runs on `ifname`'s ingress now.
pub(crate) fn tc_ingress_pinned(ifname: &str, pin: &Path) -> Result<bool, DatapathError> {
    if !pin.exists() {
        return Ok(false);
    }
    let pinned = PinnedLink::from_pin(pin).map_err(|e| link_err("opening", pin)(e.to_string()))?;
    Ok(link_is_on(&FdLink::from(pinned), ifname))
}

/// Attaches a socket program to a cgroup through a link pinned at `pin`
/// (a bpf_link: it coexists with other programs on the cgroup whatever the
/// mode, which must be `Single` because link_create takes no flags)
/// (named after the cgroup's inode, so another cgroup gets its own pin).
pub(crate) fn cgroup(
    prog: &mut CgroupSockAddr,
    name: &'static str,
    cgroup: &Path,
    pin: &Path,
) -> Result<Attached, DatapathError> {
    if pin.exists() {
        return Ok(Attached::Kept);
    }
    let dir = fs::File::open(cgroup).map_err(|source| DatapathError::Io {
        action: "opening cgroup",
        path: cgroup.to_owned(),
        source,
    })?;
    let target = cgroup.display().to_string();
    let id = prog
        .attach(&dir, CgroupAttachMode::Single)
        .map_err(prog_err("attaching", name, &target))?;
    let link = prog
        .take_link(id)
        .map_err(prog_err("taking link of", name, &target))?;
    let fd = FdLink::try_from(link).map_err(|e| link_err("converting", pin)(e.to_string()))?;
    fd.pin(pin)
        .map_err(|e| link_err("pinning", pin)(e.to_string()))?;
    Ok(Attached::New)
}

/// The pin name for a cgroup attachment of `prog`.
pub(crate) fn cgroup_pin(
    links: &Path,
    prog: &str,
    cgroup: &Path,
) -> Result<PathBuf, DatapathError> {
    let ino = fs::metadata(cgroup)
        .map_err(|source| DatapathError::Io {
            action: "reading cgroup",
            path: cgroup.to_owned(),
            source,
        })?
        .ino();
    Ok(links.join(format!("{prog}_cg{ino}")))
}

/// Removes a link pin: the link detaches once no process holds it. Missing is fine.
pub(crate) fn remove_pin(pin: &Path) -> Result<bool, DatapathError> {
    match fs::remove_file(pin) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(DatapathError::Io {
            action: "removing pin",
            path: pin.to_owned(),
            source,
        }),
    }
}

pub(crate) fn ifindex(ifname: &str) -> Result<u32, DatapathError> {
    let c = std::ffi::CString::new(ifname).map_err(|_| DatapathError::NoSuchInterface {
        name: ifname.to_owned(),
    })?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(DatapathError::NoSuchInterface {
            name: ifname.to_owned(),
        });
    }
    Ok(index)
}

/// Whether a TCX link's program is attached to `ifname`'s ingress right now
/// (a link whose interface was deleted is defunct and runs nowhere).
fn link_is_on(link: &FdLink, ifname: &str) -> bool {
    let Ok(info) = link.info() else { return false };
    let prog_id = info.program_id();
    SchedClassifier::query_tcx(ifname, TcAttachType::Ingress)
        .is_ok_and(|(_, progs)| progs.iter().any(|p| p.id() == prog_id))
}
