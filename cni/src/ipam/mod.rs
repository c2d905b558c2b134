//! IPAM (in progress).
