//! Pod networking: the pod's network namespace (`netns.rs`) and its
//! attachment through the CNI runtime library to `jotasu-cni` (`cni.rs`),
//! exactly as containerd's CRI would invoke the plugin; and the node's
//! VXLAN device for the overlay between nodes (`vxlan.rs`) and its
//! underlay interface, where clients outside the cluster arrive (`underlay.rs`).

mod cni;
mod netns;
pub mod underlay;
pub mod vxlan;

pub use cni::{CniNetwork, IFNAME, NetworkError, NetworkSettings, PodAttachment};
pub use netns::{NetnsError, PodNetns};
