//! [`Registry`]: Debian's `docker-registry` (the distribution registry)
//! serving on 127.0.0.1:5000 inside a node's network namespace, its storage
//! in a temporary directory; and a push of the demo image into it with
//! oci-client. Killed by PID and removed on drop.

use std::collections::HashMap;
use std::io::Read as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::image::ImageArchive;
use crate::netns::NetNs;
use crate::process::Spawned;

/// Where the registry listens, inside the namespace.
pub const ADDRESS: &str = "127.0.0.1:5000";

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    child: Spawned,
    netns: String,
    _dir: tempfile::TempDir,
    auth: RegistryAuth,
}

impl Registry {
    /// Starts `docker-registry serve` inside `netns` and waits until it listens.
    pub fn start_in(netns: &NetNs) -> anyhow::Result<Self> {
        Self::start(netns, None)
    }

    /// As [`Registry::start_in`], serving only `user` with `password`
    /// (htpasswd, bcrypt); pushes use them.
    pub fn start_with_login(netns: &NetNs, user: &str, password: &str) -> anyhow::Result<Self> {
        Self::start(netns, Some((user, password)))
    }

    fn start(netns: &NetNs, login: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("jotasu-registry-")
            .tempdir()?;
        let config = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {ADDRESS}\n",
            dir.path().join("data").display()
        );
        let auth = match login {
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                let hash = bcrypt::hash(password, 4).context("hashing the registry password")?;
                std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
                text.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: jotasu-test\n    path: {}\n",
                    htpasswd.display()
                ));
                RegistryAuth::Basic(user.to_owned(), password.to_owned())
            }
            None => RegistryAuth::Anonymous,
        };
        std::fs::write(&config, text)?;
        let mut cmd = crate::netns::enter(netns.name(), "docker-registry");
        cmd.arg("serve").arg(&config);
        let child = Spawned::start(cmd)
            .context("starting docker-registry (apt install docker-registry)")?;
        let mut me = Self {
            child,
            netns: netns.name().to_owned(),
            _dir: dir,
            auth,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up =
                crate::netns::run_in(&me.netns, || std::net::TcpStream::connect(ADDRESS).is_ok())?;
            if up {
                return Ok(me);
            }
            if let Ok(Some(status)) = me.child.child().try_wait() {
                bail!("docker-registry exited: {status}");
            }
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on {ADDRESS} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pushes the image of `archive` as `repository:tag` (e.g. `demo/busybox:1`);
    /// returns the full reference pods use and the digest of the manifest
    /// the registry now serves for it.
    pub fn push(
        &self,
        archive: &ImageArchive,
        repository_tag: &str,
    ) -> anyhow::Result<(String, String)> {
        let mut files: HashMap<String, Vec<u8>> = HashMap::new();
        let mut tar = tar::Archive::new(std::fs::File::open(&archive.path)?);
        for entry in tar.entries()? {
            let mut entry = entry?;
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            files.insert(path, data);
        }
        let blob = |digest: &str| {
            files
                .get(&format!(
                    "blobs/sha256/{}",
                    digest.trim_start_matches("sha256:")
                ))
                .cloned()
                .with_context(|| format!("blob {digest} missing from the archive"))
        };
        let layer = ImageLayer::oci_v1(blob(&archive.layer_digest)?, None);
        let config = Config::oci_v1(blob(&archive.config_digest)?, None);
        let reference = format!("{ADDRESS}/{repository_tag}");
        let r: Reference = reference.parse()?;
        let auth = self.auth.clone();
        let digest = crate::netns::run_in(&self.netns, move || -> anyhow::Result<String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = Client::new(ClientConfig {
                    protocol: ClientProtocol::Http,
                    ..ClientConfig::default()
                });
                client
                    .push(&r, &[layer], config, &auth, None)
                    .await
                    .context("pushing to the registry")?;
                client
                    .fetch_manifest_digest(&r, &auth)
                    .await
                    .context("reading the pushed manifest's digest")
            })
        })??;
        Ok((reference, digest))
    }
}
