//! The harness for jotasu's end-to-end tests, demo and benchmarks.
//!
//! Everything here builds real kernel objects — network namespaces, veth
//! pairs, cgroups, processes — named with a per-run prefix ([`names`]) and
//! removed by guards on drop, on failure too. Traffic only ever flows between
//! namespaces these guards created.
pub mod bench;
pub mod cgroup;
pub mod cluster;
pub mod cmd;
pub mod cni;
pub mod containerd;
pub mod controlplane;
pub mod devcluster;
pub mod e2e;
pub mod etcd;
pub mod image;
pub mod jotactl;
pub mod lab;
pub mod mounts;
pub mod names;
pub mod netns;
pub mod objects;
pub mod packet;
pub mod pins;
pub mod plan;
pub mod privilege;
pub mod process;
pub mod registry;
pub mod signals;
pub mod simnode;
pub mod topology;
pub mod traffic;
pub mod wait;
