//! The harness for jotasu's end-to-end tests, demo and benchmarks.
//!
//! Everything here builds real kernel objects — network namespaces, veth
//! pairs, cgroups, processes — named with a per-run prefix ([`names`]) and
//! removed by guards on drop, on failure too. Traffic only ever flows between
//! namespaces these guards created. The local cluster itself (namespaces,
//! containerd, control plane, agents) is `jotasu-dev`'s, re-exported here
//! under its old paths.
pub use jotasu_dev::{
    cgroup, cluster, cmd, containerd, controlplane, devcluster, image, mounts, names, netns, plan,
    privilege, process, signals,
};
pub mod bench;
pub mod cni;
pub mod dns;
pub mod e2e;
pub mod etcd;
pub mod ha;
pub mod jotactl;
pub mod k8s_clients;
pub mod lab;
pub mod objects;
pub mod packet;
pub mod pins;
pub mod registry;
pub mod simnode;
pub mod tc_run;
pub mod topology;
pub mod traffic;
pub mod wait;
