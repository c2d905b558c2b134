//! What an operator sees of this node's data plane (`jotactl datapath …`,
//! `jotactl flows`): the `NodeDatapath` service, served beside `Node` on
//! the agent's port with the same TLS and the same rule — only the control
//! plane may call, and it checks the user's RBAC first. Maps are read
//! under the data plane's lock, filtered and limited here; names come
//! from the view ([`names`]); flow events from the ring buffer
//! ([`flows`]).

pub mod conntrack;
pub mod flows;
pub mod names;

use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};

use futures::Stream;
use jotasu_api::grpc::v1::{self, node_datapath_server::NodeDatapath};
use jotasu_ebpf::Protocol;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::datapath::SharedDatapath;
use crate::external::Host;
use crate::watch::SharedView;
use flows::{FlowFilter, FlowHub, HubMessage, Verdict};
use names::{Names, split_ref};

/// Turns the programs' flow events on as `config` says and, when on,
/// returns the ring buffer's reader to run until `stop` (instrumented).
/// A failure leaves the node without flow events, never without its data
/// plane.
pub fn flow_events(
    config: &crate::config::Config,
    datapath: &SharedDatapath,
    view: &SharedView,
    hub: &Arc<FlowHub>,
    cgroup_dir: &std::path::Path,
    watch_status: &tokio::sync::watch::Receiver<crate::watch::WatchStatus>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let settings = config.flow_events;
    let set = datapath
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .flow_events_mut()
        .set_config(settings);
    if let Err(e) = set {
        tracing::warn!(error = %e, "cannot configure flow events: jotactl flows shows nothing");
        return None;
    }
    if !settings.new_flows && !settings.drops {
        tracing::info!("flow events off (--flow-events=false)");
        return None;
    }
    let reader = match jotasu_ebpf::FlowReader::open_in(&config.bpffs, &config.node) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the flow event ring buffer: jotactl flows shows nothing");
            return None;
        }
    };
    let ctx = flows::ReaderContext {
        node: config.node.clone(),
        node_ip: config.node_ip,
        view: Arc::clone(view),
        datapath: Arc::clone(datapath),
        cgroup_dir: cgroup_dir.to_owned(),
        watch_status: watch_status.clone(),
        devices: flows::Devices {
            vxlan: flows::ifindex(&config.vxlan_device),
            underlay: datapath
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .underlay()
                .ifindex()
                .ok()
                .flatten()
                .unwrap_or(0),
        },
    };
    let span = tracing::info_span!("flow_events", node = %config.node);
    Some(tracing::Instrument::instrument(
        flows::run(reader, Arc::clone(hub), ctx, stop.clone()),
        span,
    ))
}

/// Recent flow events sent when the caller names no number.
const DEFAULT_LAST: usize = 20;
/// Messages queued per subscriber before it loses events.
const SUBSCRIBER_QUEUE: usize = 256;

/// The agent's `NodeDatapath` service.
#[derive(Debug, Clone)]
pub struct DatapathViews {
    node: String,
    node_ip: Ipv4Addr,
    datapath: SharedDatapath,
    view: SharedView,
    hub: Arc<FlowHub>,
}

impl DatapathViews {
    /// The views of node `node` (address `node_ip`).
    pub fn new(
        node: String,
        node_ip: Ipv4Addr,
        datapath: SharedDatapath,
        view: SharedView,
        hub: Arc<FlowHub>,
    ) -> Self {
        Self {
            node,
            node_ip,
            datapath,
            view,
            hub,
        }
    }

    fn names(&self) -> Names {
        let host = Host {
            name: self.node.clone(),
            ip: self.node_ip,
        };
        let v = self.view.read().unwrap_or_else(PoisonError::into_inner);
        Names::of(&v, Some(&host))
    }

    fn for_me(&self, node: &str) -> Result<(), Status> {
        if node.is_empty() || node == self.node {
            Ok(())
        } else {
            Err(Status::invalid_argument(format!(
                "this is node {:?}'s agent, not {node:?}'s",
                self.node
            )))
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("reading the data plane: {e}"))
}

fn flags(reach: jotasu_ebpf::Reach) -> Vec<String> {
    let mut out = vec![
        if reach.external {
            "External"
        } else {
            "ClusterIP"
        }
        .to_owned(),
    ];
    if reach.snat {
        out.push("SNAT".into());
    }
    if reach.affinity_timeout_s > 0 {
        out.push(format!("ClientIP({}s)", reach.affinity_timeout_s));
    }
    out
}

fn protocol(text: &str) -> Result<Option<Protocol>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.to_ascii_uppercase()
        .parse::<Protocol>()
        .map(Some)
        .map_err(|_| Status::invalid_argument(format!("protocol {text:?}: want tcp or udp")))
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<v1::FlowMessage, Status>> + Send>>;

fn flow_message(f: &v1::Flow) -> v1::FlowMessage {
    v1::FlowMessage {
        message: Some(v1::flow_message::Message::Flow(f.clone())),
    }
}

fn lost_message(events: u64, source: &str) -> v1::FlowMessage {
    v1::FlowMessage {
        message: Some(v1::flow_message::Message::Lost(v1::FlowsLost {
            events,
            source: source.to_owned(),
        })),
    }
}

#[tonic::async_trait]
impl NodeDatapath for DatapathViews {
    async fn services(
        &self,
        request: Request<v1::DatapathRequest>,
    ) -> Result<Response<v1::DatapathServices>, Status> {
        self.for_me(&request.get_ref().node)?;
        let names = self.names();
        let dp = self.datapath.lock().unwrap_or_else(PoisonError::into_inner);
        let mut services = Vec::new();
        for st in dp.services().map_err(internal)? {
            let per_backend = dp
                .backend_new_flows(st.id, st.service.backends.len())
                .map_err(internal)?;
            services.push(v1::DatapathService {
                id: st.id,
                frontend: format!("{}:{}", st.service.frontend.vip, st.service.frontend.port),
                protocol: st.service.frontend.protocol.to_string(),
                service: names
                    .service(&st.service.frontend)
                    .unwrap_or_default()
                    .to_owned(),
                flags: flags(st.service.reach),
                tc_new_flows: st.counters.tc_new_flows,
                sock_new_flows: st.counters.sock_new_flows,
                rejected: st.counters.rejected,
                backends: st
                    .service
                    .backends
                    .iter()
                    .zip(per_backend)
                    .enumerate()
                    .map(|(slot, (b, n))| v1::DatapathBackend {
                        slot: slot as u32,
                        address: b.to_string(),
                        pod: names.pod(*b.ip()).unwrap_or_default().to_owned(),
                        new_flows: n,
                    })
                    .collect(),
            });
        }
        Ok(Response::new(v1::DatapathServices { services }))
    }

    async fn conntrack(
        &self,
        request: Request<v1::ConntrackRequest>,
    ) -> Result<Response<v1::ConntrackList>, Status> {
        let req = request.into_inner();
        self.for_me(&req.node)?;
        let names = self.names();
        let mut filter =
            conntrack::Filter {
                address: match req.address.as_str() {
                    "" => None,
                    a => Some(a.parse::<Ipv4Addr>().map_err(|_| {
                        Status::invalid_argument(format!("address {a:?} is not an IPv4 address"))
                    })?),
                },
                port: match req.port {
                    0 => None,
                    p => Some(u16::try_from(p).map_err(|_| {
                        Status::invalid_argument(format!("port {p} is out of range"))
                    })?),
                },
                protocol: protocol(&req.protocol)?,
                frontends: None,
            };
        if !req.service.is_empty() {
            let (ns, name) = split_ref(&req.service);
            filter.frontends = Some(names.frontends_of(&ns, &name).into_iter().collect());
        }
        let entries = self
            .datapath
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conntrack()
            .map_err(internal)?;
        let total = entries.len();
        let limit = conntrack::limit(req.limit);
        let (picked, matched) = conntrack::select(entries, &filter, limit);
        Ok(Response::new(v1::ConntrackList {
            entries: picked
                .iter()
                .map(|e| v1::ConntrackEntry {
                    protocol: Protocol::from_number(e.proto)
                        .map_or_else(|| e.proto.to_string(), |p| p.to_string()),
                    source: e.src.to_string(),
                    destination: e.dst.to_string(),
                    direction: if e.forward { "forward" } else { "reply" }.to_owned(),
                    nat: e.nat.to_string(),
                    peer: e.peer.map(|p| p.to_string()).unwrap_or_default(),
                    closing: e.closing,
                    external: e.external,
                    service: conntrack::frontend_of(e)
                        .and_then(|f| names.service(&f))
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect(),
            total: total as u64,
            matched: matched as u64,
            truncated: matched > limit,
        }))
    }

    async fn tunnels(
        &self,
        request: Request<v1::DatapathRequest>,
    ) -> Result<Response<v1::TunnelList>, Status> {
        self.for_me(&request.get_ref().node)?;
        let names = self.names();
        let (tunnels, peers) = {
            let dp = self.datapath.lock().unwrap_or_else(PoisonError::into_inner);
            (
                dp.overlay().tunnels().map_err(internal)?,
                dp.overlay().peers().map_err(internal)?,
            )
        };
        Ok(Response::new(v1::TunnelList {
            tunnels: tunnels
                .iter()
                .map(|(cidr, ip)| v1::Tunnel {
                    pod_cidr: cidr.to_string(),
                    node_ip: ip.to_string(),
                    node: names.node(*ip).unwrap_or_default().to_owned(),
                })
                .collect(),
            peers: peers.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn drops(
        &self,
        request: Request<v1::DatapathRequest>,
    ) -> Result<Response<v1::DatapathCounters>, Status> {
        use std::sync::atomic::Ordering;
        self.for_me(&request.get_ref().node)?;
        let (drops, counters, events) = {
            let dp = self.datapath.lock().unwrap_or_else(PoisonError::into_inner);
            (
                dp.drop_counters().map_err(internal)?,
                dp.node_counters().map_err(internal)?,
                dp.flow_events().counters().map_err(internal)?,
            )
        };
        let named = |name: &str, value: u64| v1::NamedCount {
            name: name.to_owned(),
            value,
        };
        Ok(Response::new(v1::DatapathCounters {
            drops: drops
                .iter()
                .map(|(r, n)| v1::DropCount {
                    reason: r.as_str().to_owned(),
                    count: *n,
                    description: r.description().to_owned(),
                })
                .collect(),
            counters: counters.iter().map(|(n, v)| named(n, *v)).collect(),
            flow_events: vec![
                named("emitted", events.emitted),
                named("lost", events.lost),
                named("rate_limited", events.rate_limited),
                named("sampled_out", events.sampled_out),
                named("stream_lost", self.hub.stream_lost.load(Ordering::Relaxed)),
            ],
        }))
    }

    type FlowsStream = FlowStream;

    async fn flows(
        &self,
        request: Request<v1::FlowsRequest>,
    ) -> Result<Response<Self::FlowsStream>, Status> {
        let req = request.into_inner();
        self.for_me(&req.node)?;
        let qualify = |s: &str| {
            (!s.is_empty()).then(|| {
                let (ns, name) = split_ref(s);
                format!("{ns}/{name}")
            })
        };
        let filter = FlowFilter {
            pod: qualify(&req.pod),
            service: qualify(&req.service),
            verdict: match req.verdict.as_str() {
                "" => None,
                v => Some(Verdict::parse(v).ok_or_else(|| {
                    Status::invalid_argument(format!("verdict {v:?}: want forwarded or dropped"))
                })?),
            },
        };
        let last = match req.last {
            0 => DEFAULT_LAST,
            n => (n as usize).min(flows::RECENT),
        };
        let place = self.hub.admit().ok_or_else(|| {
            Status::resource_exhausted(format!(
                "this node already serves {} flow streams",
                flows::MAX_SUBSCRIBERS
            ))
        })?;
        let (recent, mut rx) = self.hub.subscribe(&filter, last);
        let (tx, out) = mpsc::channel(SUBSCRIBER_QUEUE);
        let hub = Arc::clone(&self.hub);
        let follow = req.follow;
        tokio::spawn(
            async move {
                let _place = place;
                for f in &recent {
                    if tx.send(Ok(flow_message(f))).await.is_err() {
                        return;
                    }
                }
                if !follow {
                    return;
                }
                loop {
                    let msg = tokio::select! {
                        m = rx.recv() => m,
                        () = tx.closed() => return,
                    };
                    let out = match msg {
                        Ok(HubMessage::Flow(f)) if filter.matches(&f) => flow_message(&f),
                        Ok(HubMessage::Flow(_)) => continue,
                        Ok(HubMessage::DatapathLost(n)) => lost_message(n, "datapath"),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            hub.lost_by_subscriber(n);
                            lost_message(n, "stream")
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if tx.send(Ok(out)).await.is_err() {
                        return;
                    }
                }
            }
            .instrument(tracing::debug_span!("flow_stream", follow)),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}
