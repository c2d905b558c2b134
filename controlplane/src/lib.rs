//! jotasu's control plane: the store (embedded or etcd), the API server,
//! its PKI and listeners.
pub mod apiserver;
pub mod pki;
pub mod serve;
pub mod store;
