//! The demo and test image: an OCI image layout tar with one layer holding
//! Debian's statically linked busybox (`busybox-static`), its applet links,
//! `/etc/passwd` and `/etc/group`. Built deterministically, so the same
//! busybox always gives the same digests, and cached on disk.
use std::{
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::Command,
};

use crate::error::{DevError, Result};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The name the demo image is imported under.
pub const DEMO_IMAGE: &str = "jotasu.local/busybox:latest";
/// The same busybox whose entrypoint sleeps, ignoring its arguments, instead
/// of running `sh`: what the corpus test runs in place of images it cannot
/// pull, so a container without a `command` keeps running whatever its `args`.
pub const IDLE_IMAGE: &str = "jotasu.local/busybox-idle:latest";

/// The busybox binary of Debian's `busybox-static` package.
pub const BUSYBOX_BIN: &str = "/bin/busybox";

/// Every file in the image carries this mtime (2023-11-14), so builds are
/// reproducible.
const MTIME: u64 = 1_700_000_000;

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// An image archive written by [`build_busybox_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    /// The tar file (OCI image layout).
    pub path: PathBuf,
    /// The full image name (`io.containerd.image.name`).
    pub name: String,
    /// The manifest's digest (`sha256:…`): what containerd's image record targets.
    pub manifest_digest: String,
    /// The image config's digest.
    pub config_digest: String,
    /// The (uncompressed) layer's digest, also its diff ID.
    pub layer_digest: String,
}

/// Writes the busybox image as an OCI image layout tar at `out`, named
/// `name` (e.g. [`DEMO_IMAGE`]). When `out` already holds exactly these
/// bytes it is left untouched.
pub fn build_busybox_image(out: &Path, name: &str) -> Result<ImageArchive> {
    let process = if name == IDLE_IMAGE {
        json!({"Entrypoint": ["sh", "-c", "exec sleep 2147483647", "idle"]})
    } else {
        json!({"Cmd": ["sh"]})
    };
    build_image(out, name, process)
}

/// [`build_busybox_image`] with `process` (`Entrypoint`, `Cmd`) in the
/// image's config.
fn build_image(out: &Path, name: &str, process: serde_json::Value) -> Result<ImageArchive> {
    let busybox = fs::read(BUSYBOX_BIN).map_err(|source| DevError::Io {
        action: "reading (install Debian's busybox-static: scripts/bootstrap.sh)",
        path: BUSYBOX_BIN.into(),
        source,
    })?;
    if !is_static_elf(&busybox) {
        return Err(DevError::Invalid(format!(
            "{BUSYBOX_BIN} is not a statically linked ELF binary: the image needs Debian's \
             busybox-static, not busybox (apt-get install busybox-static)"
        )));
    }
    let applets = applets()?;
    let layer = build_layer(&busybox, &applets)?;
    let layer_digest = digest(&layer);

    let mut image_config = process;
    image_config["Env"] = json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    let config = json!({
        "architecture": host_arch(),
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": image_config,
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "history": [{
            "created": "2023-11-14T22:13:20Z",
            "created_by": "jotasu-tests: busybox-static, its applet links, /etc/passwd, /etc/group",
        }],
    })
    .to_string()
    .into_bytes();
    let config_digest = digest(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer.len() }],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = digest(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag_of(name),
            },
        }],
    })
    .to_string()
    .into_bytes();

    let mut blobs = [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ];
    blobs.sort_by(|a, b| a.0.cmp(b.0));
    let mut tar = TarWriter::default();
    tar.dir("blobs/", 0o755)?;
    tar.dir("blobs/sha256/", 0o755)?;
    for (d, data) in blobs {
        let hex = d.trim_start_matches("sha256:");
        tar.file(&format!("blobs/sha256/{hex}"), 0o644, data)?;
    }
    tar.file("index.json", 0o644, &index)?;
    tar.file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let bytes = tar.finish()?;

    if fs::read(out).ok().as_deref() != Some(&bytes[..]) {
        if let Some(dir) = out.parent() {
            fs::create_dir_all(dir).map_err(DevError::io("creating", dir))?;
        }
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, &bytes).map_err(DevError::io("writing", &tmp))?;
        fs::rename(&tmp, out).map_err(DevError::io("renaming to", out))?;
    }
    Ok(ImageArchive {
        path: out.to_path_buf(),
        name: name.to_owned(),
        manifest_digest,
        config_digest,
        layer_digest,
    })
}

/// The layer: `/bin/busybox`, a symlink to it for every applet, the
/// directories a container expects, `/etc/passwd` and `/etc/group`.
fn build_layer(busybox: &[u8], applets: &[String]) -> Result<Vec<u8>> {
    enum Entry<'a> {
        Dir(u32),
        File(u32, &'a [u8]),
        Link(&'a str),
    }
    let mut entries: std::collections::BTreeMap<String, Entry<'_>> = Default::default();
    for d in [
        "bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "usr", "usr/bin", "usr/sbin",
        "var", "var/www",
    ] {
        let mode = if d == "root" { 0o700 } else { 0o755 };
        entries.insert(format!("{d}/"), Entry::Dir(mode));
    }
    entries.insert("tmp/".into(), Entry::Dir(0o1777));
    entries.insert("bin/busybox".into(), Entry::File(0o755, busybox));
    entries.insert(
        "etc/passwd".into(),
        Entry::File(
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
    );
    entries.insert(
        "etc/group".into(),
        Entry::File(0o644, b"root:x:0:\nnobody:x:65534:\n"),
    );
    for applet in applets {
        let path = applet.trim_start_matches('/');
        if path.is_empty() || path == "bin/busybox" {
            continue;
        }
        // Parent directories outside the fixed set (none today) come first.
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            entries
                .entry(format!("{}/", p.display()))
                .or_insert(Entry::Dir(0o755));
            parent = p.parent();
        }
        entries.insert(path.to_owned(), Entry::Link("/bin/busybox"));
    }
    let mut tar = TarWriter::default();
    for (path, entry) in &entries {
        match entry {
            Entry::Dir(mode) => tar.dir(path, *mode)?,
            Entry::File(mode, data) => tar.file(path, *mode, data)?,
            Entry::Link(target) => tar.symlink(path, target)?,
        }
    }
    tar.finish()
}

/// The applets busybox knows, as paths (`usr/bin/wget`, `bin/sh`, …).
fn applets() -> Result<Vec<String>> {
    let out = crate::cmd::run(Command::new(BUSYBOX_BIN).arg("--list-full"))?;
    let list: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(".."))
        .map(str::to_owned)
        .collect();
    if !list.iter().any(|a| a == "bin/sh") {
        return Err(DevError::Invalid(format!(
            "`{BUSYBOX_BIN} --list-full` does not list bin/sh: not a usable busybox"
        )));
    }
    Ok(list)
}

/// True for an ELF file without a `PT_INTERP` program header (no dynamic loader).
fn is_static_elf(bin: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bin.len() < 64 || &bin[..4] != b"\x7fELF" || bin[4] != 2 || bin[5] != 1 {
        return false; // not a 64-bit little-endian ELF
    }
    let u16_at = |o: usize| bin.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        bin.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = usize::try_from(phoff).unwrap_or(usize::MAX) + i * usize::from(phentsize);
        bin.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != PT_INTERP)
    })
}

/// The OCI architecture name of this machine (`amd64`, `arm64`, …).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The tag of an image name (`jotasu.local/busybox:1` → `1`; `latest` when
/// it has none).
fn tag_of(name: &str) -> &str {
    let last = name.rsplit('/').next().unwrap_or(name);
    let last = last.split('@').next().unwrap_or(last);
    last.split_once(':').map_or("latest", |(_, t)| t)
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// A tar writer with fixed owners and mtimes.
#[derive(Default)]
struct TarWriter {
    inner: Option<tar::Builder<Vec<u8>>>,
}

impl TarWriter {
    fn builder(&mut self) -> &mut tar::Builder<Vec<u8>> {
        self.inner
            .get_or_insert_with(|| tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(size);
        h
    }

    fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.builder()
            .append_data(&mut h, path, std::io::empty())
            .map_err(DevError::io("archiving the image's directory", path))
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.builder()
            .append_data(&mut h, path, data)
            .map_err(DevError::io("archiving the image's file", path))
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder()
            .append_link(&mut h, path, target)
            .map_err(DevError::io("archiving the image's symlink", path))
    }

    fn finish(mut self) -> Result<Vec<u8>> {
        let builder = self
            .inner
            .take()
            .unwrap_or_else(|| tar::Builder::new(Vec::new()));
        builder
            .into_inner()
            .map_err(DevError::io("finishing", "the image archive"))
    }
}

impl std::fmt::Debug for TarWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TarWriter")
    }
}

/// Reads the names of the entries of a tar file (for tests and debugging).
pub fn tar_entries(path: &Path) -> Result<Vec<String>> {
    let mut data = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(DevError::io("reading", path))?;
    let mut archive = tar::Archive::new(&data[..]);
    let mut names = Vec::new();
    let entries = archive.entries().map_err(DevError::io("reading", path))?;
    for e in entries {
        let e = e.map_err(DevError::io("reading", path))?;
        let name = e.path().map_err(DevError::io("reading", path))?;
        names.push(name.to_string_lossy().into_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_from_the_last_component() {
        assert_eq!(tag_of("jotasu.local/busybox:1"), "1");
        assert_eq!(tag_of("localhost:5000/busybox"), "latest");
        assert_eq!(tag_of("busybox"), "latest");
    }

    #[test]
    fn the_image_is_reproducible_and_cached() {
        if !Path::new(BUSYBOX_BIN).exists() {
            eprintln!("!!! SKIPPED: {BUSYBOX_BIN} missing (apt-get install busybox-static) !!!");
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI needs busybox-static"
            );
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let a = build_busybox_image(&dir.path().join("a.tar"), DEMO_IMAGE).expect("build a");
        let b = build_busybox_image(&dir.path().join("b.tar"), DEMO_IMAGE).expect("build b");
        assert_eq!(a.manifest_digest, b.manifest_digest);
        assert_eq!(fs::read(&a.path).ok(), fs::read(&b.path).ok());
        let mtime = fs::metadata(&a.path).and_then(|m| m.modified()).ok();
        let again = build_busybox_image(&a.path, DEMO_IMAGE).expect("rebuild");
        assert_eq!(again, a);
        assert_eq!(fs::metadata(&a.path).and_then(|m| m.modified()).ok(), mtime);
        let names = tar_entries(&a.path).expect("entries");
        assert!(names.iter().any(|n| n == "index.json"), "{names:?}");
        assert!(names.iter().any(|n| n == "oci-layout"), "{names:?}");
        let blob = format!(
            "blobs/sha256/{}",
            a.layer_digest.trim_start_matches("sha256:")
        );
        assert!(names.contains(&blob), "{names:?}");
        assert!(is_static_elf(&fs::read(BUSYBOX_BIN).expect("busybox")));
        assert!(!is_static_elf(&fs::read("/bin/ls").unwrap_or_default()));
    }
}
