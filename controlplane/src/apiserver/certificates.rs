//! `RequestNodeCertificate`: a node's certificate (identity
//! `system:node:<name>` in `system:nodes`) for its CSR. A joining machine
//! authenticates with a bootstrap token, a joined node renewing with its
//! current certificate (only for its own name). A name already joined
//! with another key is refused while its Node exists: a second machine
//! cannot take over a node's identity (delete the Node to free the name).
//! The key each name was issued for is recorded beside the objects.

use std::time::Duration;

use jotasu_api::validate::names::dns1123_subdomain;
use jotasu_api::{Kind, ObjectRef};
use serde::{Deserialize, Serialize};

use super::error::{ApiResult, ApiServerError};
use super::guard::{Guard, forbidden};
use crate::auth::attributes::{Attributes, UserInfo, verbs};
use crate::store::{Compare, Store, StoreError, Txn};

/// Largest CSR accepted.
pub const MAX_CSR: usize = 16 << 10;

/// Signs node certificates (the cluster CA).
pub trait NodeSigner: Send + Sync + std::fmt::Debug {
    /// The CA certificate, PEM.
    fn ca_pem(&self) -> &str;
    /// A certificate for `node`'s CSR valid for `lifetime`: its PEM and
    /// the SHA-256 of its public key (hex); an error says why the CSR was refused.
    fn sign_node(
        &self,
        node: &str,
        csr_pem: &str,
        lifetime: Duration,
    ) -> Result<(String, String), String>;
}

/// A signed node certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertificate {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The CA, PEM.
    pub ca_pem: String,
}

/// Which key a node name was last issued a certificate for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyRecord {
    public_key_sha256: String,
    issued_at: i64,
}

/// Where the key a node name holds is recorded.
fn record_key(node: &str) -> Vec<u8> {
    format!("/registry/nodekeys/{node}").into_bytes()
}

/// The attributes of asking for `node`'s certificate.
pub fn attributes(node: &str) -> Attributes {
    Attributes {
        verb: verbs::CREATE.into(),
        api_group: "certificates.k8s.io".into(),
        resource: "certificatesigningrequests".into(),
        name: Some(node.to_owned()),
        ..Attributes::default()
    }
}

impl<S: Store> Guard<S> {
    /// Signs `csr_pem` for `node` if `user` may have it.
    pub async fn node_certificate(
        &self,
        user: &UserInfo,
        node: &str,
        csr_pem: &str,
    ) -> ApiResult<NodeCertificate> {
        let (signer, lifetime) = self.signer().ok_or_else(|| {
            ApiServerError::Invalid(
                "this control plane issues no node certificates: it has no TCP listener (--listen)"
                    .into(),
            )
        })?;
        dns1123_subdomain(node)
            .map_err(|e| ApiServerError::Invalid(format!("node name {node:?}: {e}")))?;
        if csr_pem.len() > MAX_CSR {
            return Err(ApiServerError::Invalid(format!(
                "the certificate signing request is {} bytes; at most {MAX_CSR} are accepted",
                csr_pem.len()
            )));
        }
        self.check(user, attributes(node), None).await?;
        let (certificate_pem, key_hash) = signer
            .sign_node(node, csr_pem, lifetime)
            .map_err(|e| ApiServerError::Invalid(format!("node {node:?}: {e}")))?;
        let renewal = user.node() == Some(node);
        self.record_key(user, node, &key_hash, renewal).await?;
        Ok(NodeCertificate {
            certificate_pem,
            ca_pem: signer.ca_pem().to_owned(),
        })
    }

    /// Records that `node` holds `key_hash`, refusing a second machine's
    /// key while the node exists (unless the node itself renews).
    async fn record_key(
        &self,
        user: &UserInfo,
        node: &str,
        key_hash: &str,
        renewal: bool,
    ) -> ApiResult<()> {
        let key = record_key(node);
        let store = self.store();
        let stored = store.get(&key).await?;
        let expected = stored.as_ref().map_or(0, |kv| kv.mod_revision);
        if !renewal
            && let Some(kv) = &stored
            && serde_json::from_slice::<KeyRecord>(&kv.value)
                .is_ok_and(|r| r.public_key_sha256 != key_hash)
        {
            let node_ref = ObjectRef {
                kind: Kind::Node,
                namespace: None,
                name: node.to_owned(),
            };
            if store
                .get(&super::keys::object_key(&node_ref))
                .await?
                .is_some()
            {
                return Err(forbidden(
                    user,
                    attributes(node),
                    Some(format!(
                        "node {node:?} has already joined with another key: a second machine cannot take its name \
                         (delete the Node with `jotactl delete node {node}` if the old machine is gone)"
                    )),
                ));
            }
        }
        let record = KeyRecord {
            public_key_sha256: key_hash.to_owned(),
            issued_at: jotasu_api::meta::unix_now(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| {
            ApiServerError::Invalid(format!("node {node:?}: cannot encode its key record: {e}"))
        })?;
        let txn = Txn::new()
            .when(Compare::mod_revision(&key, expected))
            .put(&key, &value);
        match store.txn(txn).await {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(ApiServerError::Conflict(ObjectRef {
                kind: Kind::Node,
                namespace: None,
                name: node.to_owned(),
            })),
            Err(e) => Err(e.into()),
        }
    }
}

impl NodeSigner for crate::pki::Signer {
    fn ca_pem(&self) -> &str {
        crate::pki::Signer::ca_pem(self)
    }

    fn sign_node(
        &self,
        node: &str,
        csr_pem: &str,
        lifetime: Duration,
    ) -> Result<(String, String), String> {
        self.sign_node_csr(node, csr_pem, lifetime)
            .map(|issued| (issued.cert_pem, issued.public_key_sha256))
            .map_err(|e| e.to_string())
    }
}
