//! One definition per kind, grouped by what they do.

pub mod config;
pub mod env;
pub mod hpa;
pub mod lifecycle;
pub mod node;
pub mod pod;
pub mod pod_status;
pub mod rbac;
pub mod security;
pub mod service;
pub mod volumes;
pub mod workloads;
