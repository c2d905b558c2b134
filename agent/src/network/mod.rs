//! Pod networking: the pod's network namespace (`netns.rs`) and its
//! attachment through the CNI runtime library to `jotasu-cni` (`cni.rs`),
//! exactly as containerd's CRI would invoke the plugin; and the node's
//! VXLAN device for the overlay between nodes (`vxlan.rs`).

mod cni;
mod netns;
pub mod vxlan;

pub use cni::{CniNetwork, IFNAME, NetworkError, NetworkSettings, PodAttachment};
pub use netns::{NetnsError, PodNetns};
