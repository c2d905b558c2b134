//! One definition per kind, grouped by what they do.

pub mod affinity;
pub mod batch;
mod batch_server;
pub mod config;
pub mod coordination;
pub mod discovery;
pub mod disruption;
pub mod env;
pub mod hpa;
pub mod lifecycle;
pub mod limits;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod pod_status;
pub mod qos;
pub mod rbac;
pub mod scheduling;
pub mod security;
pub mod service;
pub mod service_account;
pub mod statefulset;
pub mod storage;
pub mod volumes;
pub mod workloads;
