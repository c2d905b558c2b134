//! Which control planes serve, published as Kubernetes does: every control
//! plane that listens on TCP renews a Lease `kube-system/jotasu-apiserver-<id>`
//! (labelled `apiserver.kubernetes.io/identity=jotasu-controlplane`,
//! carrying its address) — [`advertise`]; the leader keeps the Service
//! `default/kubernetes` (the service range's first address, port 443) and
//! its Endpoints listing the live ones — [`publish`]. Clients read that
//! Endpoints object to learn where else to go; pods reach the API at
//! `kubernetes.default`. Liveness is judged as the election judges it
//! ([`super::decide::Observation`]): by the local clock, from when a
//! renewal was seen.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jotasu_api::kinds::coordination::MicroTime;
use jotasu_api::{Kind, ObjectRef};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::decide::{Observation, Record};
use crate::apiserver::keys::kind_prefix;
use crate::apiserver::{ApiServer, ApiServerError, lease};
use crate::store::{Compare, Store, StoreError, Txn};

/// The label of control-plane identity Leases.
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
/// Its value.
pub const IDENTITY: &str = "jotasu-controlplane";
/// The annotation carrying a control plane's address (`IP:PORT`).
pub const ADDRESS_ANNOTATION: &str = "jotasu.io/advertise-address";
/// How often a control plane renews its identity Lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long others count it live after a renewal they saw.
pub const LIVE_FOR: Duration = Duration::from_secs(15);

/// The name of a control plane's identity Lease.
pub fn lease_name(identity: &str) -> String {
    let id = identity.rsplit('_').next().unwrap_or(identity);
    format!("jotasu-apiserver-{}", &id[..id.len().min(16)])
}

/// Renews this control plane's identity Lease until `stop`, then deletes it.
pub async fn advertise<S: Store>(
    store: Arc<S>,
    identity: String,
    address: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let name = lease_name(&identity);
    let key = lease::key("kube-system", &name);
    let mut tick = tokio::time::interval(RENEW_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let current = match store.get(&key).await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "cannot read this control plane's identity Lease");
                continue;
            }
        };
        let mut l = current.as_ref().and_then(lease::decode).unwrap_or_else(|| {
            lease::fresh("kube-system", &name, &identity, lease::seconds(LIVE_FOR))
        });
        l.metadata
            .labels
            .insert(IDENTITY_LABEL.into(), IDENTITY.into());
        l.metadata
            .annotations
            .insert(ADDRESS_ANNOTATION.into(), address.to_string());
        l.spec.holder_identity = Some(identity.clone());
        l.spec.renew_time = Some(MicroTime::now());
        let guard = current.map_or_else(
            || Compare::absent(&key),
            |kv| Compare::mod_revision(&key, kv.mod_revision),
        );
        let txn = Txn::new().when(guard).put(&key, &lease::encode(&l));
        if let Err(e) = store.txn(txn).await {
            debug!(error = %e, "renewing this control plane's identity Lease failed; retrying");
        }
    }
    if let Err(e) = store.delete(&key).await {
        warn!(error = %e, "could not remove this control plane's identity Lease; it expires");
    }
}

/// The live control planes' addresses, from the identity Leases read now
/// (`observed` carries what was seen before).
async fn live<S: Store>(
    api: &ApiServer<S>,
    observed: &mut HashMap<String, Observation>,
) -> Result<BTreeSet<SocketAddr>, StoreError> {
    let now = Instant::now();
    let listed = api
        .store()
        .range(&kind_prefix(Kind::Lease, Some("kube-system")), None)
        .await?;
    let mut seen = HashMap::new();
    let mut out = BTreeSet::new();
    for kv in &listed.kvs {
        let Some(l) = lease::decode(kv) else { continue };
        if l.metadata.labels.get(IDENTITY_LABEL).map(String::as_str) != Some(IDENTITY) {
            continue;
        }
        let Some(address) = l
            .metadata
            .annotations
            .get(ADDRESS_ANNOTATION)
            .and_then(|a| a.parse::<SocketAddr>().ok())
        else {
            continue;
        };
        let name = l.metadata.name().to_owned();
        let record = Record {
            holder: l.spec.holder_identity.clone().unwrap_or_default(),
            duration: LIVE_FOR,
            mod_revision: kv.mod_revision,
        };
        let o = Observation::next(observed.get(&name), record, now);
        if now.saturating_duration_since(o.since) < LIVE_FOR {
            out.insert(address);
        }
        seen.insert(name, o);
    }
    *observed = seen;
    Ok(out)
}

fn kubernetes_service(cluster_ip: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip,
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}
    })
}

fn kubernetes_endpoints(addresses: &BTreeSet<SocketAddr>) -> serde_json::Value {
    let port = addresses.iter().next().map_or(6443, SocketAddr::port);
    serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "false"}},
        "subsets": [{"addresses": addresses.iter().map(|a| serde_json::json!({"ip": a.ip().to_string()})).collect::<Vec<_>>(),
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
    })
}

/// The leader's loop: keeps `default/kubernetes` listing the live control
/// planes, looking every half [`RENEW_EVERY`] until `stop`.
pub async fn publish<S: Store>(api: ApiServer<S>, mut stop: watch::Receiver<bool>) {
    let mut observed = HashMap::new();
    let mut published: Option<BTreeSet<SocketAddr>> = None;
    let mut tick = tokio::time::interval(RENEW_EVERY / 2);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let addresses = match live(&api, &mut observed).await {
            Ok(a) => a,
            Err(e) => {
                debug!(error = %e, "cannot read the control planes' identity Leases");
                continue;
            }
        };
        if addresses.is_empty() || published.as_ref() == Some(&addresses) {
            continue;
        }
        let first = api.ranges().service_cidr.nth(1).map(|ip| ip.to_string());
        let port = addresses.iter().next().map_or(6443, SocketAddr::port);
        let mut objects = vec![kubernetes_endpoints(&addresses)];
        let service = ObjectRef {
            kind: Kind::Service,
            namespace: Some("default".into()),
            name: "kubernetes".into(),
        };
        if let (Err(ApiServerError::NotFound(_)), Some(ip)) = (api.get(&service).await, first) {
            objects.push(kubernetes_service(&ip, port));
        }
        let json: Vec<String> = objects.iter().map(ToString::to_string).collect();
        match api.apply(&json, false).await {
            Ok(_) => {
                info!(
                    ?addresses,
                    "published the control planes in default/kubernetes"
                );
                published = Some(addresses);
            }
            Err(e) => {
                warn!(error = %e, "cannot publish the control planes in default/kubernetes; retrying")
            }
        }
    }
}
