//! Pulling images by reference from an OCI distribution registry
//! (oci-client), client-side as containerd 1.6 expects: the manifest (and
//! the index above it), the config and the layers are fetched into an
//! in-memory image layout and stored, labelled and unpacked by the same
//! path as an imported archive. Registries on loopback addresses and those
//! named insecure are reached over plain HTTP.

use std::collections::HashMap;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use super::image::{Layout, descriptor, is_index, normalize, pick_manifest};
use super::types::ImageConfig;
use super::{Containerd, ContainerdError, Result};

const ACCEPTED: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Whether a registry is reached over plain HTTP: loopback hosts always,
/// others when named in `insecure`.
pub fn plain_http(registry: &str, insecure: &[String]) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || insecure.iter().any(|i| i == registry || i == host)
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

impl Containerd {
    /// Pulls `reference` into the node's namespace and returns how to run it.
    pub async fn pull(&self, reference: &str) -> Result<ImageConfig> {
        self.pull_with(reference, |_| None).await
    }

    /// [`Containerd::pull`] with credentials for the image's registry, if
    /// `credentials` (given the registry's host) has them.
    pub async fn pull_with(
        &self,
        reference: &str,
        credentials: impl FnOnce(&str) -> Option<crate::pod::pull_secrets::Credentials>,
    ) -> Result<ImageConfig> {
        let name = normalize(reference);
        let fail = |reason: String| ContainerdError::Pull {
            reference: name.clone(),
            reason,
        };
        let r: Reference = name.parse().map_err(|e| fail(format!("{e}")))?;
        let protocol = if plain_http(r.registry(), &self.insecure_registries) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        // The registry client's TLS uses the process's rustls provider: ring,
        // as everywhere in jotasu (a second install is a no-op error).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(ClientConfig {
            protocol,
            ..ClientConfig::default()
        });
        let auth = match credentials(r.registry()) {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        let (top, top_digest) = client
            .pull_manifest_raw(&r, &auth, &ACCEPTED)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let top_json: Value = serde_json::from_slice(&top).map_err(|e| fail(e.to_string()))?;
        let media_type = top_json
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(OCI_IMAGE_MEDIA_TYPE)
            .to_owned();
        let mut files: HashMap<String, Vec<u8>> = HashMap::new();
        let target = containerd_client::types::Descriptor {
            media_type: media_type.clone(),
            digest: top_digest.clone(),
            size: i64::try_from(top.len()).unwrap_or(i64::MAX),
            annotations: HashMap::new(),
        };
        files.insert(blob_path(&top_digest), top.to_vec());
        let manifest = if is_index(&media_type) {
            let m = pick_manifest(&top_json)
                .and_then(descriptor)
                .ok_or_else(|| fail("the index has no manifest for this platform".into()))?;
            let (bytes, digest) = client
                .pull_manifest_raw(&r.clone_with_digest(m.digest.clone()), &auth, &ACCEPTED)
                .await
                .map_err(|e| fail(e.to_string()))?;
            files.insert(blob_path(&digest), bytes.to_vec());
            serde_json::from_slice::<Value>(&bytes).map_err(|e| fail(e.to_string()))?
        } else {
            top_json
        };
        let mut blobs: Vec<String> = manifest
            .get("layers")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|d| Some(d.get("digest")?.as_str()?.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        blobs.extend(
            manifest
                .pointer("/config/digest")
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        for digest in blobs {
            let mut data = Vec::new();
            client
                .pull_blob(&r, digest.as_str(), &mut data)
                .await
                .map_err(|e| fail(format!("blob {digest}: {e}")))?;
            files.insert(blob_path(&digest), data);
        }
        let layout = Layout {
            what: name.clone(),
            files,
        };
        let lease = self.create_lease("pull").await?;
        let stored = async {
            self.store_tree(&layout, &target, &lease).await?;
            self.put_image(&name, &target).await
        }
        .await;
        self.delete_lease(&lease).await;
        stored?;
        self.image(&name)
            .await?
            .ok_or_else(|| fail("the pulled image is not in the image store".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::plain_http;

    #[test]
    fn loopback_and_named_registries_use_http() {
        assert!(plain_http("127.0.0.1:5000", &[]));
        assert!(plain_http("localhost:5000", &[]));
        assert!(!plain_http("registry.example:5000", &[]));
        assert!(plain_http(
            "registry.example:5000",
            &["registry.example:5000".into()]
        ));
        assert!(plain_http(
            "registry.example:5000",
            &["registry.example".into()]
        ));
        assert!(!plain_http("docker.io", &[]));
    }
}
