//! The Endpoints controller: for every Service with a selector, an
//! Endpoints object of the same name listing the selected pods — ready
//! ones on Ready nodes as addresses, the rest as not-ready addresses,
//! terminating ones left out — with each Service port resolved per pod
//! ([`subsets`]). It is written
//! only when it changes; when the Service goes, the controller deletes its
//! Endpoints (as Kubernetes' does, also for leftovers found at start).
//! Services without a selector keep hand-made Endpoints untouched;
//! ExternalName Services get none.
//!
//! Beside each Endpoints it keeps the Service's EndpointSlices
//! (`discovery.k8s.io/v1`, at most 100 endpoints each, [`slices`]), which
//! the agents follow: one endpoint's change rewrites one slice. Slices keep
//! a terminating pod until it is gone, `ready: false`, `terminating: true`,
//! `serving` as its readiness (so agents stop sending it new flows while it
//! finishes the ones it has). Slices name the Service as their owner, so
//! they go with it.

pub mod slices;
pub mod subsets;

use std::collections::HashSet;
use std::time::Duration;

use jotasu_api::kinds::discovery::{MANAGED_BY, MIRRORED_BY, SKIP_MIRROR_LABEL};
use jotasu_api::{Endpoints, Kind, Node, Object, ObjectRef, Pod};
use tracing::{debug, info, warn};

use crate::apiserver::ApiServerError;
use crate::runtime::status::{is_active, is_node_ready, is_ready, is_terminating, node_of};
use crate::runtime::{CATCH_UP, Change, Context, Key, WorkQueue, key_of, next_change, stopped};
use crate::store::Store;

/// Requeue delay after a failed write.
const RETRY: Duration = Duration::from_secs(1);

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let informers = ctx.informers.clone();
    let mut services_rx = informers.services.subscribe();
    let mut endpoints_rx = informers.endpoints.subscribe();
    let mut slices_rx = informers.endpoint_slices.subscribe();
    let mut pods_rx = informers.pods.subscribe();
    let mut nodes_rx = informers.nodes.subscribe();
    let mut shutdown = ctx.shutdown.clone();
    let queue = WorkQueue::new();
    queue_all(&ctx, &queue);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            c = next_change(&mut services_rx) => match c {
                Some(Change::Applied { new, .. }) => queue.add(key_of(new.as_ref())),
                Some(Change::Deleted(s)) => queue.add(key_of(s.as_ref())),
                Some(Change::Resynced) => queue_all(&ctx, &queue),
                None => break,
            },
            c = next_change(&mut endpoints_rx) => match c {
                // Someone else changed or removed it: put it right.
                Some(Change::Applied { new, .. }) => queue.add(key_of(new.as_ref())),
                Some(Change::Deleted(e)) => queue.add(key_of(e.as_ref())),
                Some(Change::Resynced) => queue_all(&ctx, &queue),
                None => break,
            },
            c = next_change(&mut slices_rx) => match c {
                Some(Change::Applied { new, .. }) => queue_slice_owner(&queue, &new),
                Some(Change::Deleted(e)) => queue_slice_owner(&queue, &e),
                Some(Change::Resynced) => queue_all(&ctx, &queue),
                None => break,
            },
            c = next_change(&mut pods_rx) => match c {
                Some(c) => on_pod(&ctx, &queue, c),
                None => break,
            },
            c = next_change(&mut nodes_rx) => match c {
                Some(c) => on_node(&ctx, &queue, c),
                None => break,
            },
            key = queue.next() => {
                if let Err(delay) = reconcile(&ctx, &key).await {
                    queue.add_after(key, delay);
                }
            }
        }
    }
    info!("endpoints controller stopped");
}

/// Every Service, and every Endpoints (a leftover whose Service is gone
/// is deleted).
fn queue_all<S: Store>(ctx: &Context<S>, queue: &WorkQueue<Key>) {
    for key in ctx.informers.services.read().objects.keys() {
        queue.add(key.clone());
    }
    for key in ctx.informers.endpoints.read().objects.keys() {
        queue.add(key.clone());
    }
}

/// A slice changed (by anyone): its Service, to put it right.
fn queue_slice_owner(queue: &WorkQueue<Key>, slice: &jotasu_api::EndpointSlice) {
    use jotasu_api::kinds::discovery::SERVICE_NAME_LABEL;
    if let Some(service) = slice.metadata.labels.get(SERVICE_NAME_LABEL) {
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        queue.add((namespace, service.clone()));
    }
}

/// Queues the Services in `namespace` selecting any of `labels`.
fn queue_selecting<'a, S: Store>(
    ctx: &Context<S>,
    queue: &WorkQueue<Key>,
    namespace: &str,
    labels: impl IntoIterator<Item = &'a jotasu_api::Labels> + Clone,
) {
    for service in ctx.informers.services.list_in(namespace) {
        if labels
            .clone()
            .into_iter()
            .any(|l| subsets::selects(&service, l))
        {
            queue.add(key_of(service.as_ref()));
        }
    }
}

/// What of a pod its Endpoints entry depends on.
fn view(pod: &Pod) -> impl PartialEq + '_ {
    (
        &pod.metadata.labels,
        pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()),
        is_ready(pod),
        is_active(pod),
        is_terminating(pod),
        node_of(pod),
    )
}

fn on_pod<S: Store>(ctx: &Context<S>, queue: &WorkQueue<Key>, change: Change<Pod>) {
    match change {
        Change::Applied { old, new } => {
            if old.as_ref().is_some_and(|o| view(o) == view(&new)) {
                return;
            }
            let namespace = new.metadata.namespace.clone().unwrap_or_default();
            let labels = old
                .as_ref()
                .map(|o| &o.metadata.labels)
                .into_iter()
                .chain([&new.metadata.labels]);
            queue_selecting(ctx, queue, &namespace, labels);
        }
        Change::Deleted(p) => {
            let namespace = p.metadata.namespace.clone().unwrap_or_default();
            queue_selecting(ctx, queue, &namespace, [&p.metadata.labels]);
        }
        Change::Resynced => queue_all(ctx, queue),
    }
}

/// A node's readiness changed (or it came or went): the Services of the
/// pods on it.
fn on_node<S: Store>(ctx: &Context<S>, queue: &WorkQueue<Key>, change: Change<Node>) {
    let name = match &change {
        Change::Applied { old, new } => {
            if old.as_ref().map(|o| is_node_ready(o)) == Some(is_node_ready(new)) {
                return;
            }
            new.metadata.name().to_owned()
        }
        Change::Deleted(n) => n.metadata.name().to_owned(),
        Change::Resynced => {
            queue_all(ctx, queue);
            return;
        }
    };
    let mut seen = HashSet::new();
    for pod in ctx.informers.pods.list() {
        if node_of(&pod) != Some(name.as_str()) {
            continue;
        }
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        if seen.insert((namespace.clone(), pod.metadata.labels.clone())) {
            queue_selecting(ctx, queue, &namespace, [&pod.metadata.labels]);
        }
    }
}

fn endpoints_ref(key: &Key) -> ObjectRef {
    ObjectRef {
        kind: Kind::Endpoints,
        namespace: Some(key.0.clone()),
        name: key.1.clone(),
    }
}

/// Brings one Service's Endpoints up to date; `Err(delay)` to retry.
async fn reconcile<S: Store>(ctx: &Context<S>, key: &Key) -> Result<(), Duration> {
    let informers = &ctx.informers;
    let current = informers.endpoints.get(&key.0, &key.1);
    let Some(service) = informers.services.get(&key.0, &key.1) else {
        if current.is_some() {
            return delete_leftover(ctx, key).await;
        }
        return Ok(());
    };
    if !subsets::managed(&service) {
        // Pods' slices go; hand-made Endpoints of a Service without a
        // selector are mirrored into slices (Kubernetes'
        // endpointslicemirroring controller), which is what agents follow.
        let mirrored = current.as_deref().filter(|e| {
            service.spec.selector.is_empty()
                && service.spec.type_() != jotasu_api::kinds::service::ServiceType::ExternalName
                && e.metadata.labels.get(SKIP_MIRROR_LABEL).map(String::as_str) != Some("true")
        });
        let groups: Option<Vec<subsets::Group>> =
            mirrored.map(|e| e.subsets.iter().map(subsets::Group::of_subset).collect());
        return reconcile_slices(
            ctx,
            key,
            &service,
            &[(MANAGED_BY, None), (MIRRORED_BY, groups.as_deref())],
        )
        .await;
    }
    let pods = informers.pods.list_in(&key.0);
    let groups = {
        let nodes = informers.nodes.read();
        let node_ready = |name: &str| {
            nodes
                .objects
                .get(&(String::new(), name.to_owned()))
                .is_some_and(|n| is_node_ready(n))
        };
        let refs: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
        subsets::groups(&service, &refs, node_ready)
    };
    let desired = subsets::desired_of(&service, &groups);
    if subsets::differs(current.as_deref(), &desired) {
        let ready: usize = desired.subsets.iter().map(|s| s.addresses.len()).sum();
        match ctx.apply(&[Object::Endpoints(desired.clone())]).await {
            Ok(applied) => {
                debug!(service = %key.1, namespace = %key.0, ready, "endpoints written");
                informers.endpoints.shows(&applied, CATCH_UP).await;
            }
            Err(e) => {
                warn!(service = %key.1, namespace = %key.0, error = %e, "cannot write endpoints");
                return Err(RETRY);
            }
        }
    }
    reconcile_slices(
        ctx,
        key,
        &service,
        &[(MANAGED_BY, Some(groups.as_slice())), (MIRRORED_BY, None)],
    )
    .await
}

/// Brings each manager's EndpointSlices of the Service to its desired
/// endpoint groups (None: it should have none), from one read of the namespace's
/// slices, in one write.
async fn reconcile_slices<S: Store>(
    ctx: &Context<S>,
    key: &Key,
    service: &jotasu_api::Service,
    wanted: &[(&str, Option<&[subsets::Group]>)],
) -> Result<(), Duration> {
    let informers = &ctx.informers;
    let in_namespace = informers.endpoint_slices.list_in(&key.0);
    let mut changes = slices::Changes::default();
    for (manager, desired) in wanted {
        let refs: Vec<&jotasu_api::EndpointSlice> = in_namespace
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| slices::owned_by(s, &key.1, manager))
            .collect();
        let mine = match desired {
            Some(desired) => slices::reconcile(service, desired, &refs, manager),
            None => slices::Changes {
                delete: refs.iter().map(|s| s.metadata.name().to_owned()).collect(),
                ..slices::Changes::default()
            },
        };
        changes.create.extend(mine.create);
        changes.update.extend(mine.update);
        changes.delete.extend(mine.delete);
    }
    if changes.is_empty() {
        return Ok(());
    }
    let writes: Vec<Object> = changes
        .create
        .into_iter()
        .chain(changes.update)
        .map(Object::EndpointSlice)
        .collect();
    if !writes.is_empty() {
        match ctx.apply(&writes).await {
            Ok(applied) => {
                debug!(service = %key.1, namespace = %key.0, slices = applied.len(), "endpoint slices written");
                informers.endpoint_slices.shows(&applied, CATCH_UP).await;
            }
            Err(e) => {
                warn!(service = %key.1, namespace = %key.0, error = %e, "cannot write endpoint slices");
                return Err(RETRY);
            }
        }
    }
    for name in &changes.delete {
        let r = ObjectRef {
            kind: Kind::EndpointSlice,
            namespace: Some(key.0.clone()),
            name: name.clone(),
        };
        match ctx.api.delete(&r, None).await {
            Ok(_) | Err(ApiServerError::NotFound(_)) => {}
            Err(e) => {
                warn!(slice = %name, namespace = %key.0, error = %e, "cannot delete an endpoint slice");
                return Err(RETRY);
            }
        }
    }
    if !changes.delete.is_empty() {
        let gone = |c: &crate::runtime::Cache<jotasu_api::EndpointSlice>| {
            changes
                .delete
                .iter()
                .all(|n| !c.objects.contains_key(&(key.0.clone(), n.clone())))
        };
        informers.endpoint_slices.wait_until(CATCH_UP, gone).await;
    }
    Ok(())
}

/// Deletes the Endpoints of a Service that is gone — once the store
/// confirms it is (the Service cache may lag the Endpoints cache, e.g. for
/// a Service and hand-made Endpoints applied together).
async fn delete_leftover<S: Store>(ctx: &Context<S>, key: &Key) -> Result<(), Duration> {
    let service = ObjectRef {
        kind: Kind::Service,
        ..endpoints_ref(key)
    };
    match ctx.api.get(&service).await {
        Err(ApiServerError::NotFound(_)) => {}
        Ok(_) => {
            // It exists: its event is on the way and will bring it here again.
            return Ok(());
        }
        Err(e) => {
            warn!(service = %key.1, namespace = %key.0, error = %e, "cannot read the service");
            return Err(RETRY);
        }
    }
    match ctx.api.delete(&endpoints_ref(key), None).await {
        Ok(_) | Err(ApiServerError::NotFound(_)) => {
            debug!(service = %key.1, namespace = %key.0, "service gone; endpoints deleted");
            let informers = &ctx.informers;
            let gone = |c: &crate::runtime::Cache<Endpoints>| !c.objects.contains_key(key);
            informers.endpoints.wait_until(CATCH_UP, gone).await;
            Ok(())
        }
        Err(e) => {
            warn!(service = %key.1, namespace = %key.0, error = %e, "cannot delete endpoints");
            Err(RETRY)
        }
    }
}

#[cfg(test)]
mod tests;
