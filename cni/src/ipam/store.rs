//! [`Allocator`]: the built-in allocator's file store for one network.
//!
//! `<data_dir>/<network>/` holds one file per allocated address, named by
//! the address (`10.244.0.7`) and holding `<container id>\n<ifname>\n`;
//! `last_reserved` (the last address handed out, where the round-robin
//! resumes); and `lock`, flocked around every access (see [`super::lock`]).
//! Files are written under a temporary name starting with `.` and renamed
//! into place, so a reader never sees half a file and a crash leaves at
//! most a dot-file that is not an allocation (GC removes it).
use std::{
    collections::{BTreeSet, HashSet},
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    Range,
    alloc::next_free,
    lock::{self, Held, Mode},
};
use crate::spec::{CniError, Code};

/// How long an operation waits for the lock before answering code 11.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

const LOCK_FILE: &str = "lock";
const LAST_RESERVED_FILE: &str = "last_reserved";
const TMP_PREFIX: &str = ".tmp-";

/// One allocated address and the attachment that holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Allocation {
    /// The address.
    pub ip: Ipv4Addr,
    /// `CNI_CONTAINERID` of the ADD that allocated it.
    pub container_id: String,
    /// `CNI_IFNAME` of that ADD.
    pub ifname: String,
}

impl Allocation {
    fn is(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id == container_id && self.ifname == ifname
    }
}

/// The file-backed allocator of one network's addresses. Cheap to open;
/// any number of them (threads, processes) may share a directory.
#[derive(Clone, Debug)]
pub struct Allocator {
    dir: PathBuf,
    network: String,
    range: Range,
    lock_timeout: Duration,
}

/// A `Code::Io` error naming what was done to which path.
pub(super) fn io_error(what: &str, path: &Path, e: io::Error) -> CniError {
    CniError::new(Code::Io, format!("IPAM: {what} {}", path.display())).with_details(e)
}

impl Allocator {
    /// The allocator of `network` under `dir_root` (directories created),
    /// handing out `range`. Code 7 when `network` cannot name a directory
    /// (empty, containing `/`, or starting with `.`).
    pub fn open(dir_root: &Path, network: &str, range: Range) -> Result<Self, CniError> {
        if network.is_empty() || network.contains('/') || network.starts_with('.') {
            return Err(CniError::new(
                Code::InvalidConfig,
                format!(
                    "network name {network:?} cannot name the IPAM directory: it must be non-empty, without '/', and not start with '.'"
                ),
            ));
        }
        let dir = dir_root.join(network);
        fs::create_dir_all(&dir).map_err(|e| io_error("creating the directory", &dir, e))?;
        Ok(Self {
            dir,
            network: network.to_owned(),
            range,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// The same allocator waiting at most `timeout` for the lock.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The addresses handed out.
    pub fn range(&self) -> Range {
        self.range
    }

    /// The address of attachment (`container_id`, `ifname`): the one it
    /// already holds (ADD is idempotent), else the next free one, recorded
    /// on disk (durably) before it is returned. Code 102 when the range is
    /// exhausted, 11 when the lock stays held, 4 for an empty id or ifname.
    pub fn allocate(&self, container_id: &str, ifname: &str) -> Result<Ipv4Addr, CniError> {
        for (name, value) in [("CNI_CONTAINERID", container_id), ("CNI_IFNAME", ifname)] {
            if value.is_empty() || value.contains(['\n', '\r']) {
                return Err(CniError::new(
                    Code::InvalidEnvironment,
                    format!("IPAM: {name} {value:?} must be non-empty and on one line"),
                ));
            }
        }
        let _held = self.lock(Mode::Exclusive)?;
        let all = self.scan()?;
        if let Some(a) = all.iter().find(|a| a.is(container_id, ifname)) {
            return Ok(a.ip);
        }
        let used: BTreeSet<Ipv4Addr> = all.iter().map(|a| a.ip).collect();
        let ip = next_free(&self.range, &used, self.last_reserved()).ok_or_else(|| {
            CniError::new(
                Code::RangeExhausted,
                format!(
                    "network {:?}: all {} addresses of range {} are allocated; use a larger subnet (or range), or run GC to release the addresses of containers that are gone",
                    self.network,
                    self.range.len(),
                    self.range
                ),
            )
        })?;
        write_durably(
            &self.dir,
            &ip.to_string(),
            &format!("{container_id}\n{ifname}\n"),
        )?;
        // Only a hint for the round-robin: losing it reuses addresses sooner.
        if let Err(e) = write_durably(&self.dir, LAST_RESERVED_FILE, &format!("{ip}\n")) {
            tracing::warn!(error = %e, "IPAM: recording the last reserved address failed");
        }
        tracing::debug!(network = %self.network, %ip, container_id, ifname, "IPAM: allocated");
        Ok(ip)
    }

    /// Releases the addresses of attachment (`container_id`, `ifname`),
    /// returning them; none is success (DEL is idempotent).
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<Vec<Ipv4Addr>, CniError> {
        let _held = self.lock(Mode::Exclusive)?;
        let mine: Vec<Allocation> = self
            .scan()?
            .into_iter()
            .filter(|a| a.is(container_id, ifname))
            .collect();
        self.remove(&mine)?;
        Ok(mine.into_iter().map(|a| a.ip).collect())
    }

    /// The address attachment (`container_id`, `ifname`) holds, if any.
    pub fn lookup(&self, container_id: &str, ifname: &str) -> Result<Option<Ipv4Addr>, CniError> {
        let _held = self.lock(Mode::Shared)?;
        Ok(self
            .scan()?
            .into_iter()
            .find(|a| a.is(container_id, ifname))
            .map(|a| a.ip))
    }

    /// Every allocation, by address; those outside the current range too
    /// (left by an earlier config, they stay used until released).
    pub fn allocations(&self) -> Result<Vec<Allocation>, CniError> {
        let _held = self.lock(Mode::Shared)?;
        self.scan()
    }

    /// Releases every allocation whose (container id, ifname) is not in
    /// `valid` (CNI GC's `cni.dev/valid-attachments`), returning them, and
    /// removes temporary files left by crashed writers.
    pub fn gc(&self, valid: &[(String, String)]) -> Result<Vec<Allocation>, CniError> {
        let valid: HashSet<(&str, &str)> = valid
            .iter()
            .map(|(c, i)| (c.as_str(), i.as_str()))
            .collect();
        let _held = self.lock(Mode::Exclusive)?;
        let stale: Vec<Allocation> = self
            .scan()?
            .into_iter()
            .filter(|a| !valid.contains(&(a.container_id.as_str(), a.ifname.as_str())))
            .collect();
        self.remove(&stale)?;
        self.remove_temporaries();
        Ok(stale)
    }

    /// How many addresses of the range are free.
    pub fn free(&self) -> Result<usize, CniError> {
        let _held = self.lock(Mode::Shared)?;
        let used = self
            .scan()?
            .iter()
            .filter(|a| self.range.contains(a.ip))
            .count();
        Ok(self.range.len().saturating_sub(used))
    }

    fn lock(&self, mode: Mode) -> Result<Held, CniError> {
        lock::acquire(&self.dir.join(LOCK_FILE), mode, self.lock_timeout)
    }

    /// The allocations on disk, by address. Only files named by an IPv4
    /// address count: `lock`, `last_reserved` and dot-files do not.
    fn scan(&self) -> Result<Vec<Allocation>, CniError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_error("reading", &self.dir, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("reading", &self.dir, e))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let text = fs::read_to_string(&path).map_err(|e| io_error("reading", &path, e))?;
            // A foreign or damaged file still marks the address used.
            let mut lines = text.lines().map(str::to_owned);
            found.push(Allocation {
                ip,
                container_id: lines.next().unwrap_or_default(),
                ifname: lines.next().unwrap_or_default(),
            });
        }
        found.sort();
        Ok(found)
    }

    /// Removes the files of `allocations`, trying each, and syncs the
    /// directory; the first failure is returned after the rest are tried.
    fn remove(&self, allocations: &[Allocation]) -> Result<(), CniError> {
        let mut first_error = None;
        for a in allocations {
            let path = self.dir.join(a.ip.to_string());
            match fs::remove_file(&path) {
                Ok(()) => tracing::debug!(network = %self.network, ip = %a.ip, "IPAM: released"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(io_error("removing", &path, e));
                }
            }
        }
        if !allocations.is_empty() {
            sync_dir(&self.dir)?;
        }
        first_error.map_or(Ok(()), Err)
    }

    fn remove_temporaries(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TMP_PREFIX))
            {
                let path = entry.path();
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "IPAM: removing a temporary file failed");
                }
            }
        }
    }

    /// Where the round-robin resumes; a missing or damaged file restarts it.
    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
}

/// Writes `dir/name` so that after a crash it holds either its old content
/// or `content`, never a part: temporary file, fsync, rename, fsync dir.
fn write_durably(dir: &Path, name: &str, content: &str) -> Result<(), CniError> {
    let tmp = dir.join(format!("{TMP_PREFIX}{name}-{}", std::process::id()));
    let target = dir.join(name);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("writing", &tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("renaming into place", &target, e));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), CniError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing the directory", dir, e))
}

#[cfg(test)]
mod tests;
