//! Mounts a run left behind (tmpfs volumes, overlay roots) removed before
//! their directories are.

use std::path::Path;

/// Unmounts everything mounted below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let root = dir.to_string_lossy().into_owned();
    let below = format!("{root}/");
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|p| *p == root || p.starts_with(&below))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p) {
            // SAFETY: umount2 with a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
