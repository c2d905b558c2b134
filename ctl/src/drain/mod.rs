//! `jotactl cordon`, `uncordon` and `drain`, as kubectl does them: cordon
//! marks a node unschedulable; drain cordons it, checks its pods against
//! the flags ([`filter`]), evicts them through the eviction call (which
//! respects PodDisruptionBudgets, retried every 5 s while a budget says
//! no) or deletes them (`--disable-eviction`), and waits until they are
//! gone.

pub mod filter;

use std::time::{Duration, Instant};

use clap::Args;
use jotasu_api::client::{Client, DeleteOptions};
use jotasu_api::{Kind, Object, ObjectRef, Pod};

use crate::cli::GlobalArgs;
use crate::connect;
use crate::report::{CtlError, note, out};

/// How long a refused eviction waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// `jotactl cordon|uncordon NODE`.
#[derive(Debug, Args)]
pub struct CordonArgs {
    /// The nodes.
    #[arg(value_name = "NODE", required = true)]
    pub nodes: Vec<String>,
}

/// `jotactl drain NODE`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Leave DaemonSet-managed pods (their controller would put them back).
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Also evict pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Also evict pods that no controller manages (they are not replaced).
    #[arg(long)]
    pub force: bool,
    /// Seconds each pod has to stop (default: its own terminationGracePeriodSeconds).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub grace_period: i64,
    /// Give up after this long (0s: wait forever), e.g. 90s, 5m.
    #[arg(long, default_value = "0s", value_parser = crate::rollout::parse_duration)]
    pub timeout: Duration,
    /// Delete pods instead of evicting them (disruption budgets are not asked).
    #[arg(long)]
    pub disable_eviction: bool,
}

fn node_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::Node,
        namespace: None,
        name: name.to_owned(),
    }
}

/// Sets `spec.unschedulable` of a node; whether it changed.
async fn set_unschedulable(client: &Client, name: &str, value: bool) -> Result<bool, CtlError> {
    loop {
        let Object::Node(mut node) = client.get(&node_ref(name)).await? else {
            return Err(CtlError::Usage(format!("{name} is not a node")));
        };
        if node.spec.unschedulable == value {
            return Ok(false);
        }
        node.spec.unschedulable = value;
        node.status = None;
        match client.apply(&[Object::Node(node)], false).await {
            Ok(_) => return Ok(true),
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `cordon` (`value` true) or `uncordon`.
pub async fn cordon(global: &GlobalArgs, args: &CordonArgs, value: bool) -> Result<(), CtlError> {
    let client = connect::connect(global).await?;
    for name in &args.nodes {
        let word = if value { "cordoned" } else { "uncordoned" };
        let changed = set_unschedulable(&client, name, value).await?;
        let already = if changed { "" } else { "already " };
        out(&format!("node/{name} {already}{word}\n"))?;
    }
    Ok(())
}

async fn pods_on(client: &Client, node: &str) -> Result<Vec<Pod>, CtlError> {
    Ok(client
        .list(Kind::Pod, None, "")
        .await?
        .items
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
        .filter(|p| p.spec.node_name.as_deref() == Some(node))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// Runs `drain`.
pub async fn drain(global: &GlobalArgs, args: &DrainArgs) -> Result<(), CtlError> {
    let client = connect::connect(global).await?;
    let name = args.node.as_str();
    let changed = set_unschedulable(&client, name, true).await?;
    out(&format!(
        "node/{name} {}cordoned\n",
        if changed { "" } else { "already " }
    ))?;
    let pods = pods_on(&client, name).await?;
    let selection = filter::select(
        &pods,
        filter::Flags {
            ignore_daemonsets: args.ignore_daemonsets,
            delete_emptydir_data: args.delete_emptydir_data,
            force: args.force,
        },
    );
    if !selection.errors.is_empty() {
        let lines = filter::lines(&selection.errors);
        note(&format!(
            "error: unable to drain node {name:?} due to error: [{}], continuing command...",
            lines.join(", ")
        ));
        note(&format!("There are pending nodes to be drained:\n {name}"));
        for line in &lines {
            note(line);
        }
        return Err(CtlError::Reported);
    }
    for line in filter::lines(&selection.warnings) {
        note(&format!("Warning: {line}"));
    }
    let grace = (args.grace_period >= 0).then_some(args.grace_period);
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    let mut waiting = Vec::new();
    for (ns, pod) in &selection.evict {
        let r = ObjectRef {
            kind: Kind::Pod,
            namespace: Some(ns.clone()),
            name: pod.clone(),
        };
        out(&format!("evicting pod {ns}/{pod}\n"))?;
        loop {
            let result = if args.disable_eviction {
                let options = DeleteOptions {
                    resource_version: None,
                    grace_period_seconds: grace,
                };
                client.delete_with(&r, &options).await.map(|_| ())
            } else {
                client.evict(&r, grace).await
            };
            match result {
                Ok(()) => break,
                Err(e) if e.is_not_found() => break,
                Err(e) if e.is_too_many_requests() => {
                    let reason = e
                        .api()
                        .map_or_else(|| e.to_string(), |s| s.message().to_owned());
                    note(&format!(
                        "error when evicting pods/{pod:?} -n {ns:?} (will retry after 5s): {reason}"
                    ));
                    if deadline.is_some_and(|d| Instant::now() + RETRY > d) {
                        return Err(timed_out(name, args.timeout));
                    }
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        waiting.push(r);
    }
    for r in &waiting {
        loop {
            match client.get(r).await {
                Err(e) if e.is_not_found() => break,
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    if deadline.is_some_and(|d| Instant::now() > d) {
                        return Err(timed_out(name, args.timeout));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        out(&format!("pod/{} evicted\n", r.name))?;
    }
    out(&format!("node/{name} drained\n"))?;
    Ok(())
}

fn timed_out(node: &str, timeout: Duration) -> CtlError {
    CtlError::Usage(format!(
        "unable to drain node {node:?} due to error: global timeout reached: {}s, continuing command...\nThere are pending nodes to be drained:\n {node}",
        timeout.as_secs()
    ))
}

/// The node object's spec flag, for tests.
#[cfg(test)]
fn unschedulable(n: &jotasu_api::Node) -> bool {
    n.spec.unschedulable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_refs_are_cluster_scoped() {
        let r = node_ref("n1");
        assert_eq!(r.kind, Kind::Node);
        assert!(r.namespace.is_none());
        assert!(!unschedulable(&jotasu_api::Node::default()));
    }
}
