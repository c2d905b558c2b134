//! The store's lock: `flock(2)` on `<dir>/lock`, waited for up to a
//! timeout so that a stuck holder turns into CNI error 11 (try again
//! later) rather than a hung runtime.
//!
//! No stale-lock handling is needed: the kernel drops an flock when the
//! last descriptor of its open file goes away, so a plugin killed while
//! holding the lock releases it. Each acquisition opens the file afresh:
//! flocks belong to open files, so two [`super::Allocator`]s in one process
//! (or two threads) exclude each other as two processes do.
use std::{
    fs::{File, OpenOptions, TryLockError},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use super::store::io_error;
use crate::spec::{CniError, Code};

/// How long to wait between attempts.
const POLL: Duration = Duration::from_millis(5);

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(super) struct Held {
    file: File,
}

/// Shared (readers) or exclusive (read-modify-write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Shared,
    Exclusive,
}

/// Takes the lock on `path` (created if absent) in `mode`, polling until
/// `timeout`; code 11 naming the file when it stays held.
pub(super) fn acquire(path: &Path, mode: Mode, timeout: Duration) -> Result<Held, CniError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io_error("opening the lock file", path, e))?;
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = match mode {
            Mode::Shared => file.try_lock_shared(),
            Mode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(Held { file }),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => thread::sleep(POLL),
            Err(TryLockError::WouldBlock) => {
                return Err(CniError::new(
                    Code::TryAgainLater,
                    format!(
                        "the IPAM lock {} is held by another process for more than {timeout:?}; try again later",
                        path.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(io_error("locking", path, e)),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Closing the file would release it too; unlocking says so.
        let _ = self.file.unlock();
    }
}
