//! What the rest of the agent sees of containerd: plain data, no gRPC types.

use std::path::PathBuf;

/// What an image says about how to run it (its OCI config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The name containerd knows it by (normalized, e.g. `docker.io/library/busybox:latest`).
    pub name: String,
    /// The manifest digest (`sha256:…`): the pod status's imageID.
    pub digest: String,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir` (empty: `/`).
    pub working_dir: String,
    /// `User` (empty: root).
    pub user: String,
    /// The committed snapshot (the top layer's chain ID) its containers start from.
    pub snapshot: String,
}

/// A container to create: the image to take its root filesystem from and
/// the OCI runtime spec (JSON) to run it with.
#[derive(Debug, Clone)]
pub struct NewContainer {
    /// containerd's container id (also the snapshot key).
    pub id: String,
    /// The image it runs (its name and snapshot).
    pub image: ImageConfig,
    /// The OCI runtime spec as JSON.
    pub spec: serde_json::Value,
    /// Labels kept on the container (the agent finds its pods by them).
    pub labels: std::collections::HashMap<String, String>,
}

/// A container as containerd lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: std::collections::HashMap<String, String>,
}

/// How a task (the container's running process) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Created, not started.
    Created,
    /// Running, with its pid.
    Running {
        /// The init process's pid (in the agent's pid namespace).
        pid: u32,
    },
    /// Exited.
    Stopped(Exit),
    /// Paused or something else that the agent treats as unknown.
    Unknown,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code; 128 + N when killed by signal N.
    pub code: u32,
    /// When, as Unix seconds.
    pub at_unix: i64,
}

/// Where a task's stdout and stderr go: containerd's shim appends both to
/// this file (`file://` stdio), so output keeps flowing while the agent is
/// down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile(pub PathBuf);

/// CPU and memory of one running task, from containerd's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskUsage {
    /// CPU time used so far, in nanoseconds.
    pub cpu_nanos: u64,
    /// Memory in use (working set: usage less inactive file), in bytes.
    pub memory_bytes: u64,
}
