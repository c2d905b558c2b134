//! The kubelet's atomic writer: a volume's files live in a timestamped
//! directory, `..data` is a symlink to it, and each top-level name is a
//! symlink into `..data`. An update writes a new timestamped directory and
//! swaps `..data` with one `rename`, so a reader sees the old set of files
//! or the new one, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _, symlink};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The symlink to the current data directory.
pub const DATA_LINK: &str = "..data";
/// The symlink made next to `..data` and renamed over it.
const DATA_TMP_LINK: &str = "..data_tmp";

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// Path relative to the volume (`key`, or `dir/key` from `items`).
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Permission bits (`0o644`, `0o400`, …).
    pub mode: u32,
}

/// Why a relative payload path is refused (`None`: it is fine).
pub fn check_relative_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("must not be empty");
    }
    if path.starts_with('/') {
        return Some("must be a relative path");
    }
    if path.starts_with("..") {
        return Some("must not start with '..'");
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Some("must not contain '..'");
    }
    None
}

/// A relative path without empty and `.` components.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The first component of a normalized relative path (the user-visible name).
fn top_level(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

fn io_err(what: String, e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Writes `files` into `target` (which must exist) atomically; returns
/// whether anything changed (false when the current data already matches,
/// contents and modes). Files whose paths fail [`check_relative_path`] are
/// refused with `InvalidInput` before anything is written.
pub fn write_atomic(target: &Path, files: &[FileContent]) -> io::Result<bool> {
    let mut payload: BTreeMap<String, &FileContent> = BTreeMap::new();
    for f in files {
        let normal = normalize(&f.path);
        let refused = check_relative_path(&f.path).or_else(|| {
            if normal.is_empty() {
                Some("must name a file")
            } else {
                check_relative_path(&normal)
            }
        });
        if let Some(why) = refused {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("file path {:?} {why}", f.path),
            ));
        }
        payload.insert(normal, f);
    }
    let old = current_data_dir(target);
    let unchanged = match &old {
        Some(name) => matches_payload(&target.join(name), &payload)?,
        None => false,
    };
    if unchanged {
        make_visible(target, &payload)?;
        return Ok(false);
    }

    let new_name = create_timestamped_dir(target)?;
    let new_dir = target.join(&new_name);
    if let Err(e) = write_payload(&new_dir, &payload) {
        let _ = fs::remove_dir_all(&new_dir);
        return Err(e);
    }
    let tmp = target.join(DATA_TMP_LINK);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("removing {}", tmp.display()), &e)),
    }
    symlink(&new_name, &tmp).map_err(|e| io_err(format!("linking {}", tmp.display()), &e))?;
    fs::rename(&tmp, target.join(DATA_LINK))
        .map_err(|e| io_err(format!("swapping {DATA_LINK} in {}", target.display()), &e))?;

    make_visible(target, &payload)?;
    remove_stale_visible(target, &payload)?;
    if let Some(old) = old.filter(|o| *o != new_name) {
        fs::remove_dir_all(target.join(&old)).map_err(|e| {
            io_err(
                format!("removing old data {}", target.join(&old).display()),
                &e,
            )
        })?;
    }
    Ok(true)
}

/// The name of the directory `..data` points to, when it is one of ours.
fn current_data_dir(target: &Path) -> Option<String> {
    let link = fs::read_link(target.join(DATA_LINK)).ok()?;
    let name = link.to_str()?.to_owned();
    (name.starts_with("..") && !name.contains('/') && target.join(&name).is_dir()).then_some(name)
}

/// Whether `dir` holds exactly the payload (same files, bytes and modes).
fn matches_payload(dir: &Path, payload: &BTreeMap<String, &FileContent>) -> io::Result<bool> {
    let mut found = BTreeSet::new();
    collect_files(dir, "", &mut found)?;
    if found.len() != payload.len() || found.iter().any(|p| !payload.contains_key(p.as_str())) {
        return Ok(false);
    }
    for (path, f) in payload {
        let full = dir.join(path);
        let meta = fs::symlink_metadata(&full)?;
        if meta.permissions().mode() & 0o7777 != f.mode || fs::read(&full)? != f.data {
            return Ok(false);
        }
    }
    Ok(true)
}

fn collect_files(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            collect_files(&entry.path(), &rel, out)?;
        } else {
            out.insert(rel);
        }
    }
    Ok(())
}

/// Makes `..YYYY_MM_DD_HH_MM_SS.N` in `target`, mode 0755.
fn create_timestamped_dir(target: &Path) -> io::Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let (y, mo, d) = jotasu_api::meta::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    loop {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "..{y:04}_{mo:02}_{d:02}_{:02}_{:02}_{:02}.{}{n}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            now.subsec_nanos()
        );
        let dir = target.join(&name);
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(format!("creating {}", dir.display()), &e)),
        }
    }
}

fn write_payload(dir: &Path, payload: &BTreeMap<String, &FileContent>) -> io::Result<()> {
    for (path, f) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| io_err(format!("creating {}", parent.display()), &e))?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(f.mode)
            .open(&full)
            .map_err(|e| io_err(format!("creating {}", full.display()), &e))?;
        file.write_all(&f.data)
            .map_err(|e| io_err(format!("writing {}", full.display()), &e))?;
        // The umask may have cleared bits: set the mode as asked.
        fs::set_permissions(&full, fs::Permissions::from_mode(f.mode))?;
    }
    Ok(())
}

/// Links each top-level name to `..data/<name>` unless it already is a link.
fn make_visible(target: &Path, payload: &BTreeMap<String, &FileContent>) -> io::Result<()> {
    let tops: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    for top in tops {
        let link = target.join(top);
        match fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => continue,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a symlink", link.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        symlink(Path::new(DATA_LINK).join(top), &link)
            .map_err(|e| io_err(format!("linking {}", link.display()), &e))?;
    }
    Ok(())
}

/// Removes the top-level symlinks the new payload no longer has.
fn remove_stale_visible(target: &Path, payload: &BTreeMap<String, &FileContent>) -> io::Result<()> {
    let tops: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    for entry in fs::read_dir(target)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || tops.contains(name.as_str()) {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str, mode: u32) -> FileContent {
        FileContent {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    fn read(dir: &Path, p: &str) -> String {
        fs::read_to_string(dir.join(p)).expect("readable")
    }

    fn data_dirs(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA_LINK)
            .collect()
    }

    #[test]
    fn writes_the_kubelet_layout() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        let changed =
            write_atomic(t, &[file("a", "1", 0o644), file("d/b", "2", 0o400)]).expect("writes");
        assert!(changed);
        assert_eq!(read(t, "a"), "1");
        assert_eq!(read(t, "d/b"), "2");
        assert_eq!(
            fs::read_link(t.join("a")).expect("link"),
            Path::new("..data/a")
        );
        assert_eq!(
            fs::read_link(t.join("d")).expect("link"),
            Path::new("..data/d")
        );
        let ts = fs::read_link(t.join(DATA_LINK)).expect("..data");
        let ts = ts.to_str().expect("utf-8");
        assert!(ts.starts_with("..") && ts.len() > 22, "{ts}");
        let mode = |p: &str| fs::metadata(t.join(p)).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode("a"), 0o644);
        assert_eq!(mode("d/b"), 0o400);
        assert_eq!(mode(ts), 0o755);
        assert_eq!(data_dirs(t), vec![ts.to_owned()]);
    }

    #[test]
    fn unchanged_payload_is_not_rewritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        let files = [file("a", "1", 0o644)];
        write_atomic(t, &files).expect("writes");
        let before = fs::read_link(t.join(DATA_LINK)).expect("link");
        assert!(!write_atomic(t, &files).expect("writes"));
        assert_eq!(fs::read_link(t.join(DATA_LINK)).expect("link"), before);
        // A mode change alone is a change.
        assert!(write_atomic(t, &[file("a", "1", 0o600)]).expect("writes"));
    }

    #[test]
    fn update_swaps_data_and_drops_old_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let t = tmp.path();
        write_atomic(t, &[file("a", "1", 0o644), file("gone", "x", 0o644)]).expect("writes");
        let first = fs::read_link(t.join(DATA_LINK)).expect("link");
        assert!(
            write_atomic(t, &[file("a", "2", 0o644), file("new", "y", 0o644)]).expect("writes")
        );
        let second = fs::read_link(t.join(DATA_LINK)).expect("link");
        assert_ne!(first, second);
        assert_eq!(read(t, "a"), "2");
        assert_eq!(read(t, "new"), "y");
        assert!(fs::symlink_metadata(t.join("gone")).is_err());
        assert!(!t.join(&first).exists(), "old data dir removed");
        assert_eq!(data_dirs(t).len(), 1);
        assert!(fs::symlink_metadata(t.join(DATA_TMP_LINK)).is_err());
    }

    #[test]
    fn empty_payload_is_fine() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(write_atomic(tmp.path(), &[]).expect("writes"));
        assert!(tmp.path().join(DATA_LINK).exists());
        assert!(!write_atomic(tmp.path(), &[]).expect("writes"));
    }

    #[test]
    fn bad_paths_are_refused_before_writing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for bad in [
            "",
            ".",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "..data",
            "..hidden",
            "./..x",
        ] {
            let err = write_atomic(tmp.path(), &[file("ok", "1", 0o644), file(bad, "2", 0o644)])
                .expect_err(bad);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}: {err}");
        }
        assert_eq!(fs::read_dir(tmp.path()).expect("dir").count(), 0);
        assert_eq!(check_relative_path("a/b.c"), None);
        assert_eq!(check_relative_path("a..b"), None);
    }

    #[test]
    fn a_plain_file_in_the_way_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("a"), "squatter").expect("write");
        assert!(write_atomic(tmp.path(), &[file("a", "1", 0o644)]).is_err());
    }
}
