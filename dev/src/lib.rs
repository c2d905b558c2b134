//! Local jotasu clusters on one machine, every part in network namespaces
//! this crate made: an underlay bridge, the control plane in a namespace of
//! its own, N nodes each running `jotasu-agent`, one private containerd,
//! the busybox demo image.
//!
//! One code path, two lifetimes: the end-to-end tests own a
//! [`cluster::LocalCluster`] (removed on drop, its processes die with their
//! spawner), and `jotactl dev up` runs the `jotasu-dev` supervisor
//! ([`devcluster`]), a detached process that holds one until `jotactl dev
//! down`. Every name carries a per-run prefix ([`names`], [`plan`]), so
//! clusters side by side never collide and what a killed one left is found
//! again by name. Failures are [`error::DevError`]s, naming what failed on
//! what object.
pub mod bins;
pub mod cgroup;
pub mod cluster;
pub mod cmd;
pub mod containerd;
pub mod controlplane;
pub mod devcluster;
pub mod error;
pub mod etcd;
pub mod etcd_pki;
pub mod image;
pub mod mounts;
pub mod names;
pub mod netns;
pub mod plan;
pub mod privilege;
pub mod process;
pub mod signals;
