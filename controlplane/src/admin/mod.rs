//! The control plane's administration commands (`jotasu-controlplane
//! token …`, `user add`), run on a control-plane machine against its
//! local socket and PKI, as kubeadm's are.

pub mod cli;
pub mod duration;
pub mod token;
pub mod user;
