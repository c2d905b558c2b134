//! jotasu's control plane: the store (embedded or etcd), the API server,
//! its PKI and listeners, the scheduler and the controllers.
pub mod admin;
pub mod apiserver;
pub mod auth;
pub mod controllers;
pub mod leader;
pub mod manager;
pub mod pki;
pub mod runtime;
pub mod scheduler;
pub mod serve;
pub mod store;
