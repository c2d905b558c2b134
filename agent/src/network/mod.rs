//! Pod networking: the pod's network namespace (`netns.rs`) and its
//! attachment through the CNI runtime library to `jotasu-cni` (`cni.rs`),
//! exactly as containerd's CRI would invoke the plugin.

mod cni;
mod netns;

pub use cni::{CniNetwork, IFNAME, NetworkError, NetworkSettings, PodAttachment};
pub use netns::{NetnsError, PodNetns};
