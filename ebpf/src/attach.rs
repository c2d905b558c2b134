//! Attaching the socket programs to cgroups with pinned links, so they stay
//! attached when the process that attached them exits, and a later process
//! finds them again. (Pod interfaces carry `from_pod` as a tc filter: [`crate::tc`].)
use std::{
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use aya::programs::{CgroupAttachMode, CgroupSockAddr, links::FdLink};

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

pub(crate) fn prog_err(
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

pub(crate) fn link_err(action: &'static str, path: &Path) -> impl FnOnce(String) -> DatapathError {
    let path = path.to_owned();
    move |reason| DatapathError::Link {
        action,
        path,
        reason,
    }
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
