//! The controllers that turn stored intent into running workloads, each a
//! pure reconcile function (tested without I/O) and a runner that feeds it
//! from the shared informers and writes its decisions through the API:
//! Deployments → ReplicaSets → Pods, DaemonSets, StatefulSets, CronJobs →
//! Jobs → Pods, disruption budgets, Endpoints, node lifecycle,
//! the horizontal pod autoscaler, namespace deletion and every namespace's
//! default ServiceAccount, and the PV controller with jotasu's local
//! provisioner. They and the scheduler ([`crate::scheduler`]) run on one
//! runtime ([`crate::runtime`]: informers, queues, triggers, workers);
//! [`crate::manager`] starts them all.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod hpa;
pub mod job;
pub mod namespace;
pub mod nodes;
pub mod quota;
pub mod replicaset;
pub mod serviceaccounts;
pub mod statefulset;
pub mod volumes;
