//! Several control planes behind one client: the configured servers (flags,
//! `JOTASU_SERVER`, a context's `servers:`) and those the cluster publishes
//! as the Endpoints `default/kubernetes`. One connection is used at a time;
//! when its server stops answering (refused, HTTP/2 keepalive unanswered,
//! `Unavailable`) the next one in the list is dialled.
//!
//! [`Servers::active`] hands out the connection in use (dialling the list
//! in order, from the one after the last that failed, when there is none);
//! [`Servers::failed`] drops it. Which calls are sent again is the caller's
//! choice ([`Retry`]): [`lost_server`] and [`never_sent`] classify an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tracing::{debug, info, warn};

use super::connect::{ServerUrl, dial};
use super::credentials::Credentials;
use super::error::ClientError;
use crate::grpc::v1;
use crate::grpc::v1::api_client::ApiClient;
use crate::object::{Kind, Object, ObjectRef};

/// How often a long-lived client reads the published control planes again.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(45);

/// How long reading the published control planes may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The namespace and name of the Endpoints listing the live control planes
/// (as Kubernetes publishes its API servers).
pub const CONTROL_PLANE_ENDPOINTS: (&str, &str) = ("default", "kubernetes");

/// Which calls are sent again on another server after the connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads, watches, and writes that are idempotent by design (apply,
    /// scale, heartbeats): sent again whatever happened to the first try.
    Always,
    /// Other writes: sent again only if the first try never reached a
    /// server (its connection could not be made).
    IfNeverSent,
}

/// Whether `status` says the server is gone rather than answering: a
/// transport failure (refused, reset, keepalive timeout) or `Unavailable`
/// (a control plane shutting down says so).
pub(crate) fn lost_server(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
        || (std::error::Error::source(status).is_some()
            && status.code() != tonic::Code::DeadlineExceeded)
}

/// Whether the call that failed with `status` certainly never reached a
/// server: its connection could not be made.
pub(crate) fn never_sent(status: &tonic::Status) -> bool {
    let mut next = std::error::Error::source(status);
    while let Some(e) = next {
        if e.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether `status` is a connection closed because the client's credentials
/// were replaced (see `tls::Retiring`): not a lost server.
fn retired(status: &tonic::Status) -> bool {
    let mut next = std::error::Error::source(status);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionAborted)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The connection in use.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    /// Its server.
    pub server: ServerUrl,
    /// The channel.
    pub channel: Channel,
    /// Which connection this is (a failure of an older one is ignored).
    pub generation: u64,
}

#[derive(Debug)]
struct State {
    configured: Vec<ServerUrl>,
    discovered: Vec<ServerUrl>,
    active: Option<Active>,
    /// Where the next round of dialling starts in [`State::all`].
    start: usize,
}

impl State {
    fn all(&self) -> Vec<ServerUrl> {
        let mut all = self.configured.clone();
        for s in &self.discovered {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        all
    }
}

/// The servers a client may use, and the connection it uses.
#[derive(Debug)]
pub(crate) struct Servers {
    creds: Option<Arc<Credentials>>,
    state: tokio::sync::Mutex<State>,
    /// The last channel handed out (for the raw gRPC clients).
    last: std::sync::Mutex<Option<Channel>>,
    /// When the published control planes were last read.
    discovered_at: std::sync::Mutex<Option<Instant>>,
    generation: AtomicU64,
}

impl Servers {
    /// `configured` (at least one), reached with `creds` when https.
    pub fn new(
        configured: Vec<ServerUrl>,
        creds: Option<Arc<Credentials>>,
    ) -> Result<Self, ClientError> {
        if configured.is_empty() {
            return Err(ClientError::BadUrl {
                url: String::new(),
                reason: "no server in the list".into(),
            });
        }
        if creds.is_none()
            && let Some(ServerUrl::Https { url, .. }) = configured
                .iter()
                .find(|s| matches!(s, ServerUrl::Https { .. }))
        {
            return Err(ClientError::MissingTls {
                server: url.clone(),
                missing: "a certificate authority (--certificate-authority)",
            });
        }
        Ok(Self {
            creds,
            state: tokio::sync::Mutex::new(State {
                configured,
                discovered: Vec::new(),
                active: None,
                start: 0,
            }),
            last: std::sync::Mutex::new(None),
            discovered_at: std::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    /// The configured servers, then the discovered ones.
    pub async fn list(&self) -> Vec<ServerUrl> {
        self.state.lock().await.all()
    }

    /// The server in use, else the first configured.
    pub async fn current(&self) -> ServerUrl {
        let state = self.state.lock().await;
        match &state.active {
            Some(a) => a.server.clone(),
            None => state.configured[0].clone(),
        }
    }

    /// The last channel handed out, if any.
    pub fn last_channel(&self) -> Option<Channel> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many servers are known.
    pub async fn len(&self) -> usize {
        self.state.lock().await.all().len()
    }

    /// The connection in use; without one, dials the servers in turn from
    /// the one after the last that failed. Every server refusing is an error
    /// naming them all.
    pub async fn active(&self) -> Result<Active, ClientError> {
        let mut state = self.state.lock().await;
        if let Some(a) = &state.active {
            return Ok(a.clone());
        }
        let all = state.all();
        let mut failures = Vec::new();
        for i in 0..all.len() {
            let index = (state.start + i) % all.len();
            let server = &all[index];
            match dial(server, self.creds.as_ref()).await {
                Ok(channel) => {
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    if generation > 1 || i > 0 {
                        info!(server = %server, "connected to the control plane");
                    }
                    let active = Active {
                        server: server.clone(),
                        channel: channel.clone(),
                        generation,
                    };
                    state.active = Some(active.clone());
                    state.start = index;
                    *self
                        .last
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(channel);
                    return Ok(active);
                }
                Err(e) => {
                    if all.len() > 1 {
                        debug!(server = %server, error = %e, "control plane not answering; trying the next");
                    }
                    failures.push((server.to_string(), e));
                }
            }
        }
        state.start = 0;
        Err(match failures.len() {
            1 => failures.remove(0).1,
            _ => ClientError::Connect {
                server: failures
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                detail: failures
                    .iter()
                    .map(|(s, e)| format!("{s}: {}", connect_detail(e)))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        })
    }

    /// The connection `generation` failed with `status`: the next call
    /// dials the next server (a failure of an older connection is ignored).
    pub async fn failed(&self, generation: u64, status: &tonic::Status) {
        let mut state = self.state.lock().await;
        let Some(active) = state.active.take_if(|a| a.generation == generation) else {
            return;
        };
        let all = state.all();
        let index = all.iter().position(|s| *s == active.server).unwrap_or(0);
        let error = super::error::error_chain(status);
        if retired(status) {
            // Closed on purpose after the credentials were renewed: the
            // same server, with the new certificate.
            state.start = index;
            debug!(server = %active.server, "reconnecting with renewed credentials");
            return;
        }
        state.start = (index + 1) % all.len().max(1);
        if all.len() > 1 {
            warn!(server = %active.server, next = %all[state.start], %error, "lost the control plane; moving to the next");
        } else {
            debug!(server = %active.server, %error, "lost the control plane; reconnecting");
        }
    }

    /// Reads the published control planes through `active` when they were
    /// never read or [`DISCOVERY_INTERVAL`] passed, and adds them to the
    /// list. A missing object or a refusal keeps the list as it is.
    pub async fn discover(&self, active: &Active) {
        // Published addresses are https: without credentials (a unix
        // socket client) they could not be used.
        if self.creds.is_none() {
            return;
        }
        {
            let mut at = self
                .discovered_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if at.is_some_and(|t| t.elapsed() < DISCOVERY_INTERVAL) {
                return;
            }
            *at = Some(Instant::now());
        }
        let (namespace, name) = CONTROL_PLANE_ENDPOINTS;
        let object_ref = ObjectRef {
            kind: Kind::Endpoints,
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        };
        let mut request = tonic::Request::new(v1::GetRequest {
            r#ref: Some((&object_ref).into()),
        });
        request.set_timeout(DISCOVERY_TIMEOUT);
        let mut api = ApiClient::new(active.channel.clone());
        let call = api.get(request);
        let object = match tokio::time::timeout(DISCOVERY_TIMEOUT, call).await {
            Ok(Ok(o)) => o.into_inner().decode(),
            Ok(Err(status)) => {
                debug!(code = ?status.code(), message = status.message(), "the control planes' Endpoints cannot be read; keeping the configured servers");
                return;
            }
            Err(_) => {
                debug!("reading the control planes' Endpoints timed out");
                return;
            }
        };
        let found = match object {
            Ok(Object::Endpoints(e)) => published(&e),
            _ => return,
        };
        let mut state = self.state.lock().await;
        let current = state.all();
        let new: Vec<_> = found
            .into_iter()
            .filter(|s| !state.configured.contains(s))
            .collect();
        if new != state.discovered {
            debug!(servers = ?new.iter().map(ToString::to_string).collect::<Vec<_>>(), "the published control planes");
        }
        // Keep the dialling position on the same server.
        let at = current.get(state.start).cloned();
        state.discovered = new;
        let all = state.all();
        state.start = at
            .and_then(|s| all.iter().position(|x| *x == s))
            .unwrap_or(0);
    }
}

/// The text of a connect error without its "refused - is it running" frame.
fn connect_detail(e: &ClientError) -> String {
    match e {
        ClientError::Connect { detail, .. } => detail.clone(),
        e => e.to_string(),
    }
}

/// The `https://IP:PORT` servers an Endpoints object publishes: the ready
/// addresses of its subsets with their port named `https` (the only port
/// when unnamed).
pub fn published(endpoints: &crate::Endpoints) -> Vec<ServerUrl> {
    let mut out = Vec::new();
    for subset in &endpoints.subsets {
        let port = subset
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some("https"))
            .or_else(|| match subset.ports.as_slice() {
                [only] if only.name.as_deref().is_none_or(str::is_empty) => Some(only),
                _ => None,
            });
        let Some(port) = port.and_then(|p| u16::try_from(p.port).ok()) else {
            continue;
        };
        for address in &subset.addresses {
            let Ok(ip) = address.ip.parse::<std::net::IpAddr>() else {
                continue;
            };
            let url = format!("https://{}", std::net::SocketAddr::new(ip, port));
            if let Ok(s) = ServerUrl::parse(&url)
                && !out.contains(&s)
            {
                out.push(s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_the_published_servers() {
        let e: crate::Endpoints = serde_yaml_ng::from_str(
            r#"
metadata: {name: kubernetes, namespace: default}
subsets:
- addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}, {ip: "not an ip"}, {ip: "::1"}]
  ports: [{name: metrics, port: 9000}, {name: https, port: 6443}]
- addresses: [{ip: 10.0.0.3}]
  ports: [{port: 7443}]
- addresses: [{ip: 10.0.0.4}]
  ports: [{name: http, port: 80}]
"#,
        )
        .unwrap();
        let urls: Vec<String> = published(&e).iter().map(ToString::to_string).collect();
        assert_eq!(
            urls,
            [
                "https://10.0.0.1:6443",
                "https://10.0.0.2:6443",
                "https://[::1]:6443",
                "https://10.0.0.3:7443"
            ]
        );
    }

    #[test]
    fn classifies_failures() {
        let refused = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ))));
        assert!(lost_server(&refused));
        assert!(never_sent(&refused));
        let answered = tonic::Status::unavailable("shutting down");
        assert!(lost_server(&answered));
        assert!(!never_sent(&answered));
        let not_found = tonic::Status::not_found("x");
        assert!(!lost_server(&not_found));
        assert!(!retired(&refused));
        let renewed = tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the client's credentials were renewed",
        )));
        assert!(lost_server(&renewed) && retired(&renewed));
    }

    #[tokio::test]
    async fn every_server_refusing_names_them_all() {
        let servers = Servers::new(
            vec![
                ServerUrl::parse("unix:///nonexistent/a.sock").unwrap(),
                ServerUrl::parse("unix:///nonexistent/b.sock").unwrap(),
            ],
            None,
        )
        .unwrap();
        let e = servers.active().await.unwrap_err().to_string();
        assert!(e.contains("a.sock") && e.contains("b.sock"), "{e}");
        assert!(
            Servers::new(vec![ServerUrl::parse("https://127.0.0.1:1").unwrap()], None).is_err()
        );
    }
}
