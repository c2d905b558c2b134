//! jotasu's control plane.
