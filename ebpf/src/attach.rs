//! Attaching the socket programs to cgroups with pinned links, so they stay
//! attached when the process that attached them exits, and a later process
//! finds them again. (Pod interfaces carry `from_pod` as a tc filter: [`crate::tc`].)
use std::{
    ffi::CString,
    fs, io, mem,
    os::{
        fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    },
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
        // An upgrade (or any later open) brings a newly loaded program: the
        // link swaps to it in one step, the hook never without a program.
        let fd = prog
            .fd()
            .map_err(prog_err("replacing", name, &cgroup.display().to_string()))?;
        update_link(pin, fd.as_fd())
            .map_err(|e| link_err("updating the program of", pin)(e.to_string()))?;
        return Ok(Attached::Replaced);
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

/// Makes the bpf_link pinned at `pin` run `prog` from now on
/// (`BPF_LINK_UPDATE` without `BPF_F_REPLACE`: atomic, whatever ran
/// before). aya 0.14 offers this for tc and XDP links only.
pub(crate) fn update_link(pin: &Path, prog: BorrowedFd<'_>) -> io::Result<()> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_UPDATE: libc::c_long = 29;
    /// `union bpf_attr` as BPF_OBJ_GET reads it.
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    /// `union bpf_attr` as BPF_LINK_UPDATE reads it.
    #[repr(C)]
    struct LinkUpdate {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
    }
    let path = CString::new(pin.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let get = ObjGet {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    // SAFETY: the attr is a valid, initialised prefix of bpf_attr; `path`
    // outlives the call; the kernel reads size_of::<ObjGet>() bytes.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &get as *const ObjGet,
            mem::size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: BPF_OBJ_GET returned a new fd that nothing else owns.
    let link = unsafe { OwnedFd::from_raw_fd(raw) };
    let update = LinkUpdate {
        link_fd: u32::try_from(link.as_raw_fd()).map_err(io::Error::other)?,
        new_prog_fd: u32::try_from(prog.as_raw_fd()).map_err(io::Error::other)?,
        flags: 0,
        old_prog_fd: 0,
    };
    // SAFETY: as above; both fds are open for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_UPDATE,
            &update as *const LinkUpdate,
            mem::size_of::<LinkUpdate>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

/// The name of the interface with index `index` in the calling thread's
/// network namespace, if there is one.
pub(crate) fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    name.to_str().ok().map(str::to_owned)
}
