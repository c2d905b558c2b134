//! jotasu's control plane.
pub mod store;
