//! `jotactl rollout status`: kubectl's status viewers (the message for the
//! state a Deployment or DaemonSet is in, and whether its rollout is done)
//! and the watch that prints them until it is. On a terminal the message
//! is one line rewritten in place; otherwise each new message is a line.

use std::io::{IsTerminal as _, Write};

use jotasu_api::client::{Client, ClientError};
use jotasu_api::grpc::v1;
use jotasu_api::kinds::statefulset::StatefulSetUpdateStrategyType;
use jotasu_api::kinds::workloads::DaemonSetUpdateStrategyType;
use jotasu_api::{DaemonSet, Deployment, Object, ObjectRef, StatefulSet};

use super::{StatusArgs, group_kind, targets};
use crate::cli::GlobalArgs;
use crate::connect;
use crate::report::CtlError;

/// The Deployment condition reason of a rollout past its deadline.
const TIMED_OUT: &str = "ProgressDeadlineExceeded";

/// The status message of a Deployment, and whether its rollout is done;
/// `Err` when it failed (or is not at `revision`, if given).
pub fn deployment_status(d: &Deployment, revision: i64) -> Result<(String, bool), String> {
    let name = d.metadata.name();
    if revision > 0 {
        let current = d
            .metadata
            .annotations
            .get("deployment.kubernetes.io/revision")
            .map_or(Ok(0), |v| v.parse::<i64>())
            .map_err(|e| format!("cannot get the revision of deployment {name:?}: {e}"))?;
        if current != revision {
            return Err(format!(
                "desired revision ({revision}) is different from the running revision ({current})"
            ));
        }
    }
    let status = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Ok((
            "Waiting for deployment spec update to be observed...\n".into(),
            false,
        ));
    }
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some(TIMED_OUT))
    {
        return Err(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let wait = |what: String| {
        Ok((
            format!("Waiting for deployment {name:?} rollout to finish: {what}...\n"),
            false,
        ))
    };
    let replicas = d.spec.replicas();
    if status.updated_replicas < replicas {
        return wait(format!(
            "{} out of {replicas} new replicas have been updated",
            status.updated_replicas
        ));
    }
    if status.replicas > status.updated_replicas {
        return wait(format!(
            "{} old replicas are pending termination",
            status.replicas - status.updated_replicas
        ));
    }
    if status.available_replicas < status.updated_replicas {
        return wait(format!(
            "{} of {} updated replicas are available",
            status.available_replicas, status.updated_replicas
        ));
    }
    Ok((
        format!("deployment {name:?} successfully rolled out\n"),
        true,
    ))
}

/// The status message of a DaemonSet, and whether its rollout is done.
pub fn daemonset_status(d: &DaemonSet) -> Result<(String, bool), String> {
    let strategy = d
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_)
        .unwrap_or_default();
    if strategy != DaemonSetUpdateStrategyType::RollingUpdate {
        return Err("rollout status is only available for RollingUpdate strategy type".into());
    }
    let name = d.metadata.name();
    let s = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > s.observed_generation.unwrap_or(0) {
        return Ok((
            "Waiting for daemon set spec update to be observed...\n".into(),
            false,
        ));
    }
    if s.updated_number_scheduled < s.desired_number_scheduled {
        return Ok((
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {} out of {} new pods have been updated...\n",
                s.updated_number_scheduled, s.desired_number_scheduled
            ),
            false,
        ));
    }
    if s.number_available < s.desired_number_scheduled {
        return Ok((
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {} of {} updated pods are available...\n",
                s.number_available, s.desired_number_scheduled
            ),
            false,
        ));
    }
    Ok((
        format!("daemon set {name:?} successfully rolled out\n"),
        true,
    ))
}

/// The status message of a StatefulSet, and whether its rollout is done
/// (kubectl's `StatefulSetStatusViewer`).
pub fn statefulset_status(d: &StatefulSet) -> Result<(String, bool), String> {
    if d.spec.update_type() != StatefulSetUpdateStrategyType::RollingUpdate {
        return Err("rollout status is only available for RollingUpdate strategy type".into());
    }
    let s = d.status.clone().unwrap_or_default();
    if s.observed_generation.unwrap_or(0) == 0
        || d.metadata.generation.unwrap_or(0) > s.observed_generation.unwrap_or(0)
    {
        return Ok((
            "Waiting for statefulset spec update to be observed...\n".into(),
            false,
        ));
    }
    let replicas = d.spec.replicas();
    if s.ready_replicas < replicas {
        return Ok((
            format!(
                "Waiting for {} pods to be ready...\n",
                replicas - s.ready_replicas
            ),
            false,
        ));
    }
    let partition = d.spec.partition();
    if partition > 0 {
        let wanted = replicas - partition;
        if s.updated_replicas < wanted {
            return Ok((
                format!(
                    "Waiting for partitioned roll out to finish: {} out of {wanted} new pods have been updated...\n",
                    s.updated_replicas
                ),
                false,
            ));
        }
        return Ok((
            format!(
                "partitioned roll out complete: {} new pods have been updated...\n",
                s.updated_replicas
            ),
            true,
        ));
    }
    let update = s.update_revision.clone().unwrap_or_default();
    if s.update_revision != s.current_revision {
        return Ok((
            format!(
                "waiting for statefulset rolling update to complete {} pods at revision {update}...\n",
                s.updated_replicas
            ),
            false,
        ));
    }
    Ok((
        format!(
            "statefulset rolling update complete {} pods at revision {}...\n",
            s.current_replicas,
            s.current_revision.unwrap_or_default()
        ),
        true,
    ))
}

/// The status of any object with a status viewer.
pub fn object_status(object: &Object, revision: i64) -> Result<(String, bool), String> {
    match object {
        Object::Deployment(d) => deployment_status(d, revision),
        Object::DaemonSet(d) => daemonset_status(d),
        Object::StatefulSet(d) => statefulset_status(d),
        other => Err(format!(
            "no status viewer has been implemented for {}",
            group_kind(other.kind())
        )),
    }
}

/// Shows status messages: each new one on its own line, or (on a
/// terminal) rewriting one line until the last.
#[derive(Debug)]
pub struct Display<W> {
    out: W,
    live: bool,
    last: Option<String>,
    open_line: bool,
}

impl<W: Write> Display<W> {
    /// Writes to `out`; `live` rewrites one line in place.
    pub fn new(out: W, live: bool) -> Self {
        Self {
            out,
            live,
            last: None,
            open_line: false,
        }
    }

    /// Shows `message` (a line ending in `\n`) unless it is the last one shown.
    pub fn show(&mut self, message: &str, done: bool) -> std::io::Result<()> {
        if self.last.as_deref() == Some(message) && !done {
            return Ok(());
        }
        if self.live {
            write!(self.out, "\r\x1b[2K")?;
            if done {
                self.out.write_all(message.as_bytes())?;
                self.open_line = false;
            } else {
                self.out.write_all(message.trim_end().as_bytes())?;
                self.open_line = true;
            }
        } else {
            self.out.write_all(message.as_bytes())?;
        }
        self.out.flush()?;
        self.last = Some(message.to_owned());
        Ok(())
    }

    /// Ends a line left open (before an error is shown).
    pub fn close(&mut self) -> std::io::Result<()> {
        if self.open_line {
            writeln!(self.out)?;
            self.open_line = false;
        }
        self.out.flush()
    }

    /// The writer.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn revision_of(object: &Object) -> i64 {
    object
        .metadata()
        .revision()
        .and_then(|r| i64::try_from(r).ok())
        .unwrap_or(0)
}

/// Shows the status of `object`; `Ok(true)` when the watch should stop.
fn check<W: Write>(
    display: &mut Display<W>,
    object: &Object,
    args: &StatusArgs,
) -> Result<bool, CtlError> {
    let (message, done) = object_status(object, args.revision).map_err(CtlError::Usage)?;
    display.show(&message, done)?;
    Ok(done || !args.watch)
}

/// Follows one object until its rollout is done.
async fn follow<W: Write>(
    client: &Client,
    r: &ObjectRef,
    args: &StatusArgs,
    display: &mut Display<W>,
) -> Result<(), CtlError> {
    let mut object = client.get(r).await?;
    if check(display, &object, args)? {
        return Ok(());
    }
    let deleted = || CtlError::Usage("object has been deleted".into());
    loop {
        let request = v1::WatchRequest {
            kinds: vec![r.kind.as_str().to_owned()],
            namespace: r.namespace.clone().unwrap_or_default(),
            from_revision: revision_of(&object) + 1,
            label_selector: String::new(),
            node: String::new(),
        };
        let mut events = client
            .raw()
            .watch(request)
            .await
            .map_err(ClientError::from)?
            .into_inner();
        loop {
            let event = match events.message().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(status) => {
                    let e = ClientError::from(status);
                    if e.is_resync() {
                        break;
                    }
                    return Err(e.into());
                }
            };
            let decoded = event
                .object
                .as_ref()
                .map(v1::Object::decode)
                .transpose()
                .map_err(|e| ClientError::Decode(e.to_string()))?;
            let Some(mut changed) = decoded.filter(|o| o.name() == r.name) else {
                continue;
            };
            if event.r#type == v1::EventType::Deleted as i32 {
                return Err(deleted());
            }
            changed.metadata_mut().resource_version = Some(event.revision.to_string());
            object = changed;
            if check(display, &object, args)? {
                return Ok(());
            }
        }
        // The watch ended (the server restarted, or history was compacted):
        // read the object again and watch from there.
        object = match client.get(r).await {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Err(deleted()),
            Err(e) => return Err(e.into()),
        };
        if check(display, &object, args)? {
            return Ok(());
        }
    }
}

/// Runs `rollout status`.
pub async fn run(global: &GlobalArgs, args: &StatusArgs) -> Result<(), CtlError> {
    let refs = targets(&args.resources, connect::namespace(global))?;
    let client = connect::connect(global).await?;
    let stdout = std::io::stdout();
    let live = stdout.is_terminal();
    let mut display = Display::new(stdout.lock(), live);
    for r in &refs {
        let result = if args.timeout.is_zero() {
            follow(&client, r, args, &mut display).await
        } else {
            match tokio::time::timeout(args.timeout, follow(&client, r, args, &mut display)).await {
                Ok(result) => result,
                Err(_) => Err(CtlError::Usage(
                    "timed out waiting for the condition".into(),
                )),
            }
        };
        if let Err(e) = result {
            display.close()?;
            return Err(e);
        }
    }
    display.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": generation,
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": status
        }))
        .unwrap()
    }

    fn counts(replicas: i32, updated: i32, available: i32) -> serde_json::Value {
        json!({"observedGeneration": 2, "replicas": replicas, "updatedReplicas": updated,
               "availableReplicas": available})
    }

    #[test]
    fn deployment_messages() {
        let msg = |d: &Deployment| deployment_status(d, 0);
        assert_eq!(
            msg(&deployment(3, counts(3, 3, 3))),
            Ok((
                "Waiting for deployment spec update to be observed...\n".into(),
                false
            ))
        );
        assert_eq!(
            msg(&deployment(2, counts(4, 1, 3))),
            Ok((
                "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n".into(),
                false
            ))
        );
        assert_eq!(
            msg(&deployment(2, counts(4, 3, 3))),
            Ok((
                "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n".into(),
                false
            ))
        );
        assert_eq!(
            msg(&deployment(2, counts(3, 3, 2))),
            Ok((
                "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...\n".into(),
                false
            ))
        );
        assert_eq!(
            msg(&deployment(2, counts(3, 3, 3))),
            Ok(("deployment \"web\" successfully rolled out\n".into(), true))
        );
        let mut stuck = counts(3, 1, 2);
        stuck["conditions"] = json!([{"type": "Progressing", "status": "False",
                                      "reason": "ProgressDeadlineExceeded"}]);
        assert_eq!(
            msg(&deployment(2, stuck)),
            Err("deployment \"web\" exceeded its progress deadline".into())
        );
        assert!(deployment_status(&deployment(2, counts(3, 3, 3)), 2).is_ok());
        assert_eq!(
            deployment_status(&deployment(2, counts(3, 3, 3)), 5),
            Err("desired revision (5) is different from the running revision (2)".into())
        );
    }

    #[test]
    fn daemonset_messages() {
        let ds = |status: serde_json::Value| -> DaemonSet {
            serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "agent", "generation": 1},
                "spec": {"selector": {"matchLabels": {"a": "b"}},
                         "template": {"metadata": {"labels": {"a": "b"}},
                                      "spec": {"containers": [{"name": "c", "image": "i"}]}}},
                "status": status
            }))
            .unwrap()
        };
        let s = |v| daemonset_status(&ds(v)).unwrap();
        assert_eq!(
            s(json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                     "updatedNumberScheduled": 1})),
            ("Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated...\n".into(), false)
        );
        assert_eq!(
            s(json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                     "updatedNumberScheduled": 3, "numberAvailable": 2})),
            ("Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available...\n".into(), false)
        );
        assert_eq!(
            s(json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
                     "updatedNumberScheduled": 3, "numberAvailable": 3})),
            (
                "daemon set \"agent\" successfully rolled out\n".into(),
                true
            )
        );
        assert_eq!(
            s(json!({})),
            (
                "Waiting for daemon set spec update to be observed...\n".into(),
                false
            )
        );
        let svc: Object = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}
        }))
        .unwrap();
        assert_eq!(
            object_status(&svc, 0),
            Err("no status viewer has been implemented for Service".into())
        );
    }

    #[test]
    fn display_plain_and_live() {
        let mut plain = Display::new(Vec::new(), false);
        plain.show("a\n", false).unwrap();
        plain.show("a\n", false).unwrap();
        plain.show("b\n", true).unwrap();
        plain.close().unwrap();
        assert_eq!(String::from_utf8(plain.into_inner()).unwrap(), "a\nb\n");
        let mut live = Display::new(Vec::new(), true);
        live.show("a\n", false).unwrap();
        live.close().unwrap();
        assert_eq!(
            String::from_utf8(live.into_inner()).unwrap(),
            "\r\x1b[2Ka\n"
        );
    }
}
