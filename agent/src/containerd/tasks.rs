//! Containers and their tasks: create a container on a fresh snapshot of
//! its image, start its task with stdout and stderr appended to a file by
//! the shim, follow, signal and remove it.

use std::collections::HashMap;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetRequest, KillRequest, ListContainersRequest, StartRequest, WaitRequest,
};
use containerd_client::types::v1::Status;
use prost_types::Any;

use super::error::rpc;
use super::types::{ContainerInfo, Exit, LogFile, NewContainer, TaskState};
use super::{Containerd, ContainerdError, RUNTIME, Result, SNAPSHOTTER};

/// The type URL containerd gives runtime specs.
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

fn exit_of(status: u32, at: Option<prost_types::Timestamp>) -> Exit {
    Exit {
        code: status,
        at_unix: at.map_or_else(jotasu_api::meta::unix_now, |t| t.seconds),
    }
}

fn missing_ok<T>(
    r: std::result::Result<T, tonic::Status>,
) -> std::result::Result<Option<T>, tonic::Status> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(s),
    }
}

impl Containerd {
    /// Creates the container: a snapshot of its image under its id, the
    /// container record with its spec and labels. Both are made under a
    /// lease, as containerd's own client does: until the record names the
    /// snapshot, nothing else keeps it from the garbage collector, which
    /// any deletion (in any namespace) may start.
    pub async fn create(&self, c: &NewContainer) -> Result<()> {
        if c.image.snapshot.is_empty() {
            return Err(ContainerdError::Image {
                object: c.image.name.clone(),
                reason: "the image has no layers".into(),
            });
        }
        let lease = self.create_lease("create").await?;
        let created = self.create_leased(c, &lease).await;
        self.delete_lease(&lease).await;
        created
    }

    async fn create_leased(&self, c: &NewContainer, lease: &str) -> Result<()> {
        let parent = c.image.snapshot.clone();
        let prepared = SnapshotsClient::new(self.channel())
            .prepare(self.leased(
                PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.to_owned(),
                    key: c.id.clone(),
                    parent,
                    labels: HashMap::new(),
                },
                lease,
            ))
            .await;
        match prepared {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::AlreadyExists => {}
            Err(s) => return Err(rpc("prepare snapshot", &c.id)(s)),
        }
        let spec = serde_json::to_vec(&c.spec).map_err(|e| ContainerdError::Image {
            object: c.id.clone(),
            reason: format!("runtime spec: {e}"),
        })?;
        let container = Container {
            id: c.id.clone(),
            labels: c.labels.clone(),
            image: c.image.name.clone(),
            runtime: Some(Runtime {
                name: RUNTIME.to_owned(),
                options: self.runtime_options(),
            }),
            spec: Some(Any {
                type_url: SPEC_TYPE.to_owned(),
                value: spec,
            }),
            snapshotter: SNAPSHOTTER.to_owned(),
            snapshot_key: c.id.clone(),
            ..Container::default()
        };
        ContainersClient::new(self.channel())
            .create(self.leased(
                CreateContainerRequest {
                    container: Some(container),
                },
                lease,
            ))
            .await
            .map_err(rpc("create container", &c.id))?;
        Ok(())
    }

    /// Starts the container's task; stdout and stderr are appended to
    /// `log` by the shim. A stopped task left from before is deleted first.
    pub async fn start(&self, id: &str, log: &LogFile) -> Result<u32> {
        if let Some(TaskState::Stopped(_) | TaskState::Created) = self.state(id).await? {
            self.delete_task(id).await?;
        }
        let mounts = SnapshotsClient::new(self.channel())
            .mounts(self.req(MountsRequest {
                snapshotter: SNAPSHOTTER.to_owned(),
                key: id.to_owned(),
            }))
            .await
            .map_err(rpc("snapshot mounts", id))?
            .into_inner()
            .mounts;
        let uri = format!("file://{}", log.0.display());
        let mut tasks = TasksClient::new(self.channel());
        tasks
            .create(self.req(CreateTaskRequest {
                container_id: id.to_owned(),
                rootfs: mounts,
                stdout: uri.clone(),
                stderr: uri,
                options: self.runtime_options(),
                ..CreateTaskRequest::default()
            }))
            .await
            .map_err(rpc("create task", id))?;
        let started = tasks
            .start(self.req(StartRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
            }))
            .await
            .map_err(rpc("start task", id))?;
        Ok(started.into_inner().pid)
    }

    /// The task's state (None: no task).
    pub async fn state(&self, id: &str) -> Result<Option<TaskState>> {
        let got = missing_ok(
            TasksClient::new(self.channel())
                .get(self.req(GetRequest {
                    container_id: id.to_owned(),
                    exec_id: String::new(),
                }))
                .await,
        )
        .map_err(rpc("get task", id))?;
        let Some(process) = got.and_then(|r| r.into_inner().process) else {
            return Ok(None);
        };
        Ok(Some(match Status::try_from(process.status) {
            Ok(Status::Running) => TaskState::Running { pid: process.pid },
            Ok(Status::Created) => TaskState::Created,
            Ok(Status::Stopped) => {
                TaskState::Stopped(exit_of(process.exit_status, process.exited_at))
            }
            _ => TaskState::Unknown,
        }))
    }

    /// Waits until the task exits.
    pub async fn wait(&self, id: &str) -> Result<Exit> {
        let r = TasksClient::new(self.channel())
            .wait(self.req(WaitRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
            }))
            .await
            .map_err(rpc("wait task", id))?
            .into_inner();
        Ok(exit_of(r.exit_status, r.exited_at))
    }

    /// Signals the task (with `all`, every process of the container).
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        TasksClient::new(self.channel())
            .kill(self.req(KillRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
                signal: u32::try_from(signal).unwrap_or(9),
                all,
            }))
            .await
            .map_err(rpc("kill task", id))?;
        Ok(())
    }

    /// Deletes a stopped task (None: there was none).
    pub async fn delete_task(&self, id: &str) -> Result<Option<Exit>> {
        let r = missing_ok(
            TasksClient::new(self.channel())
                .delete(self.req(DeleteTaskRequest {
                    container_id: id.to_owned(),
                }))
                .await,
        )
        .map_err(rpc("delete task", id))?;
        Ok(r.map(|r| {
            let r = r.into_inner();
            exit_of(r.exit_status, r.exited_at)
        }))
    }

    /// Removes the container whatever its state: its task (killed if it
    /// runs), the container, its snapshot. Missing pieces are fine.
    pub async fn remove(&self, id: &str) -> Result<()> {
        if let Some(TaskState::Running { .. } | TaskState::Unknown) = self.state(id).await? {
            let _ = self.kill(id, libc::SIGKILL, true).await;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.wait(id)).await;
        }
        self.delete_task(id).await?;
        missing_ok(
            ContainersClient::new(self.channel())
                .delete(self.req(DeleteContainerRequest { id: id.to_owned() }))
                .await,
        )
        .map_err(rpc("delete container", id))?;
        missing_ok(
            SnapshotsClient::new(self.channel())
                .remove(self.req(RemoveSnapshotRequest {
                    snapshotter: SNAPSHOTTER.to_owned(),
                    key: id.to_owned(),
                }))
                .await,
        )
        .map_err(rpc("remove snapshot", id))?;
        Ok(())
    }

    /// Every container of the namespace with its labels.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        let r = ContainersClient::new(self.channel())
            .list(self.req(ListContainersRequest {
                filters: Vec::new(),
            }))
            .await
            .map_err(rpc("list containers", self.namespace()))?;
        Ok(r.into_inner()
            .containers
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id,
                labels: c.labels,
            })
            .collect())
    }

    /// The container's runtime spec, as stored.
    pub(crate) async fn spec(&self, id: &str) -> Result<serde_json::Value> {
        use containerd_client::services::v1::GetContainerRequest;
        let c = ContainersClient::new(self.channel())
            .get(self.req(GetContainerRequest { id: id.to_owned() }))
            .await
            .map_err(rpc("get container", id))?
            .into_inner()
            .container
            .and_then(|c| c.spec)
            .ok_or_else(|| ContainerdError::Image {
                object: id.to_owned(),
                reason: "the container has no spec".into(),
            })?;
        serde_json::from_slice(&c.value).map_err(|e| ContainerdError::Image {
            object: id.to_owned(),
            reason: format!("its spec: {e}"),
        })
    }
}
