//! Writing a pod's status to the control plane (retried over conflicts
//! with a fresh read: the status is the node's to write) and finalizing a
//! terminated pod (delete with grace 0).

use jotasu_api::client::{Client, ClientError, DeleteOptions};
use jotasu_api::kinds::pod_status::PodStatus;
use jotasu_api::{Kind, Object, ObjectRef, Pod};

fn pod_ref(pod: &Pod) -> ObjectRef {
    ObjectRef {
        kind: Kind::Pod,
        namespace: Some(crate::pod::pod_namespace(pod).to_owned()),
        name: pod.metadata.name().to_owned(),
    }
}

/// Writes `status` onto `pod`; returns the pod as stored, or None when it
/// is gone (or replaced by another pod of the same name).
pub async fn write_status(
    client: &Client,
    pod: &Pod,
    status: &PodStatus,
) -> Result<Option<Pod>, ClientError> {
    let mut current = pod.clone();
    for _ in 0..5 {
        current.status = Some(status.clone());
        match client.update_status(&Object::Pod(current.clone())).await {
            Ok(Object::Pod(p)) => return Ok(Some(p)),
            Ok(_) => return Ok(None),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) if e.is_conflict() => match client.get(&pod_ref(pod)).await {
                Ok(Object::Pod(p)) if p.metadata.uid == pod.metadata.uid => current = p,
                Ok(_) => return Ok(None),
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Err(ClientError::Decode(format!(
        "pod {}: status kept conflicting with other writers",
        pod.metadata.name()
    )))
}

/// Removes a pod whose containers are gone (the node's half of a graceful
/// delete). A pod already gone is fine.
pub async fn finalize(client: &Client, pod: &Pod) -> Result<(), ClientError> {
    let options = DeleteOptions {
        resource_version: None,
        grace_period_seconds: Some(0),
    };
    match client.delete_with(&pod_ref(pod), &options).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
