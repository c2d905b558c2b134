//! What the scheduler and every controller run on: shared informers (the
//! cluster in memory), work queues fed by triggers ([`Controller`]),
//! workers, and typed writes through the in-process API server (the same
//! admission, validation and optimistic concurrency a gRPC client gets).

mod controller;
mod informer;
mod queue;
pub mod status;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use jotasu_api::{
    ControllerRevision, DaemonSet, Deployment, Endpoints, HorizontalPodAutoscaler, Namespace, Node,
    Object, OwnerReference, Pod, ReplicaSet, Resource, Service, ServiceAccount, StatefulSet,
};
use tokio::sync::watch;

pub use controller::{Controller, owner_key};
pub use informer::{Cache, Change, Informer, Key, key_of, kind_of, next_change};
pub use queue::WorkQueue;
pub use worker::{CONFLICT_RETRY, MAX_BACKOFF, backoff, work};

use crate::apiserver::{ApiResult, ApiServer, ApiServerError, Applied};
use crate::store::{Revision, Store};

/// The informers every controller shares, one per kind they read.
#[derive(Debug, Clone)]
pub struct Informers {
    /// Pods.
    pub pods: Informer<Pod>,
    /// Nodes.
    pub nodes: Informer<Node>,
    /// Deployments.
    pub deployments: Informer<Deployment>,
    /// ReplicaSets.
    pub replica_sets: Informer<ReplicaSet>,
    /// DaemonSets.
    pub daemon_sets: Informer<DaemonSet>,
    /// StatefulSets.
    pub stateful_sets: Informer<StatefulSet>,
    /// ControllerRevisions.
    pub controller_revisions: Informer<ControllerRevision>,
    /// PodDisruptionBudgets.
    pub disruption_budgets: Informer<jotasu_api::PodDisruptionBudget>,
    /// Jobs.
    pub jobs: Informer<jotasu_api::Job>,
    /// CronJobs.
    pub cron_jobs: Informer<jotasu_api::CronJob>,
    /// Services.
    pub services: Informer<Service>,
    /// Endpoints.
    pub endpoints: Informer<Endpoints>,
    /// EndpointSlices.
    pub endpoint_slices: Informer<jotasu_api::EndpointSlice>,
    /// HorizontalPodAutoscalers.
    pub hpas: Informer<HorizontalPodAutoscaler>,
    /// Namespaces.
    pub namespaces: Informer<Namespace>,
    /// ServiceAccounts.
    pub service_accounts: Informer<ServiceAccount>,
    /// PersistentVolumeClaims.
    pub claims: Informer<jotasu_api::PersistentVolumeClaim>,
    /// PersistentVolumes.
    pub volumes: Informer<jotasu_api::PersistentVolume>,
    /// StorageClasses.
    pub storage_classes: Informer<jotasu_api::StorageClass>,
}

impl Informers {
    /// Starts them all; they stop when `shutdown` turns true.
    pub fn start<S: Store>(api: &ApiServer<S>, shutdown: &watch::Receiver<bool>) -> Self {
        Self {
            pods: Informer::start(api.clone(), shutdown.clone()),
            nodes: Informer::start(api.clone(), shutdown.clone()),
            deployments: Informer::start(api.clone(), shutdown.clone()),
            replica_sets: Informer::start(api.clone(), shutdown.clone()),
            daemon_sets: Informer::start(api.clone(), shutdown.clone()),
            stateful_sets: Informer::start(api.clone(), shutdown.clone()),
            controller_revisions: Informer::start(api.clone(), shutdown.clone()),
            disruption_budgets: Informer::start(api.clone(), shutdown.clone()),
            jobs: Informer::start(api.clone(), shutdown.clone()),
            cron_jobs: Informer::start(api.clone(), shutdown.clone()),
            services: Informer::start(api.clone(), shutdown.clone()),
            endpoints: Informer::start(api.clone(), shutdown.clone()),
            endpoint_slices: Informer::start(api.clone(), shutdown.clone()),
            hpas: Informer::start(api.clone(), shutdown.clone()),
            namespaces: Informer::start(api.clone(), shutdown.clone()),
            service_accounts: Informer::start(api.clone(), shutdown.clone()),
            claims: Informer::start(api.clone(), shutdown.clone()),
            volumes: Informer::start(api.clone(), shutdown.clone()),
            storage_classes: Informer::start(api.clone(), shutdown.clone()),
        }
    }

    /// Waits until every cache holds its first List.
    pub async fn synced(&self) {
        self.pods.synced().await;
        self.nodes.synced().await;
        self.deployments.synced().await;
        self.replica_sets.synced().await;
        self.daemon_sets.synced().await;
        self.stateful_sets.synced().await;
        self.controller_revisions.synced().await;
        self.disruption_budgets.synced().await;
        self.jobs.synced().await;
        self.cron_jobs.synced().await;
        self.services.synced().await;
        self.endpoints.synced().await;
        self.endpoint_slices.synced().await;
        self.hpas.synced().await;
        self.namespaces.synced().await;
        self.service_accounts.synced().await;
        self.claims.synced().await;
        self.volumes.synced().await;
        self.storage_classes.synced().await;
    }
}

/// What a controller's runner gets: the API, the shared caches and the
/// shutdown signal.
#[derive(Debug)]
pub struct Context<S> {
    /// The in-process API server (writes go through it).
    pub api: ApiServer<S>,
    /// The shared caches.
    pub informers: Informers,
    /// Turns true when the control plane stops.
    pub shutdown: watch::Receiver<bool>,
}

impl<S> Clone for Context<S> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            informers: self.informers.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// How long a runner waits for its cache to show its own writes.
pub const CATCH_UP: Duration = Duration::from_secs(5);

/// Resolves when the control plane stops (for a runner's `select!`).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Seconds since the epoch (pure functions take `now` as an argument).
pub use jotasu_api::meta::unix_now as now_seconds;

/// A controller owner reference to `owner` (controller and
/// blockOwnerDeletion set, as Kubernetes' controllers write them).
pub fn controller_reference<T: Resource>(owner: &T) -> OwnerReference {
    let meta = owner.metadata();
    OwnerReference {
        api_version: T::API_VERSION.to_owned(),
        kind: T::KIND.to_owned(),
        name: meta.name().to_owned(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `owned` is controlled by `owner` (by uid).
pub fn controlled_by<T: Resource, O: Resource>(owned: &T, owner: &O) -> bool {
    match (owned.metadata().controller_ref(), &owner.metadata().uid) {
        (Some(r), Some(uid)) => r.kind == O::KIND && &r.uid == uid,
        _ => false,
    }
}

fn to_json(object: &Object) -> ApiResult<String> {
    serde_json::to_string(object).map_err(|e| {
        ApiServerError::Invalid(format!("{}: cannot encode: {e}", object.object_ref()))
    })
}

impl<S: Store> Context<S> {
    /// Applies objects in one all-or-nothing request (creates and updates;
    /// a `metadata.resourceVersion` set on an object is a precondition).
    pub async fn apply(&self, objects: &[Object]) -> ApiResult<Vec<Applied>> {
        let json = objects.iter().map(to_json).collect::<ApiResult<Vec<_>>>()?;
        self.api.apply(&json, false).await
    }

    /// Replaces an object's status (its resourceVersion must be current).
    pub async fn update_status(&self, object: &Object) -> ApiResult<Object> {
        self.api.update_status(&to_json(object)?).await
    }

    /// The revision of the latest write: after writes, wait for an
    /// informer to reach it before reconciling again.
    pub async fn revision(&self) -> ApiResult<Revision> {
        self.api.revision().await
    }
}

/// The highest resourceVersion among `applied` (0 if none).
pub fn last_revision(applied: &[Applied]) -> Revision {
    applied
        .iter()
        .map(|a| a.resource_version)
        .max()
        .unwrap_or(0)
}

/// Shared handle to an object in a cache.
pub type Shared<T> = Arc<T>;
