//! The RBAC objects as the authorizer reads them (placeholder: lists the
//! store on every call until the watching cache lands).

use std::sync::Arc;

use jotasu_api::{Kind, Object};
use tokio::sync::watch;

use super::RbacSnapshot;
use crate::apiserver::keys::kind_prefix;
use crate::auth::attributes::{Attributes, Decision, UserInfo};
use crate::store::{Store, StoreError};

/// RBAC over the store's current objects.
#[derive(Debug)]
pub struct RbacCache<S> {
    store: Arc<S>,
}

impl<S: Store> RbacCache<S> {
    /// A cache over `store`.
    pub async fn start(
        store: Arc<S>,
        _shutdown: watch::Receiver<bool>,
    ) -> Result<Self, StoreError> {
        Ok(Self { store })
    }

    /// RBAC's decision.
    pub async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> Result<Decision, StoreError> {
        let mut objects = Vec::new();
        for kind in [
            Kind::Role,
            Kind::ClusterRole,
            Kind::RoleBinding,
            Kind::ClusterRoleBinding,
        ] {
            let range = self.store.range(&kind_prefix(kind, None), None).await?;
            for kv in &range.kvs {
                if let Ok(o) = serde_json::from_slice::<Object>(&kv.value) {
                    objects.push(o);
                }
            }
        }
        Ok(RbacSnapshot::new(objects).authorize(user, attributes))
    }
}
