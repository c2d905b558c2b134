//! The flow stream (`jotactl flows`, after Hubble's `hubble observe`): the
//! programs' flow events, read from the `flow_events` ring buffer as its fd
//! turns readable, named from the agent's view (pods, Services, nodes),
//! kept in a bounded buffer of recent events and fanned out to subscribers
//! through a bounded broadcast channel. A subscriber too slow to keep up
//! loses events and is told how many (a `lost` message), never holding the
//! reader back; what the programs could not write (ring full, rate limit)
//! is announced the same way.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jotasu_api::grpc::v1;
use jotasu_ebpf::{FlowEvent, FlowHook, FlowReader, FlowVerdict, Frontend, Protocol};
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

use super::names::Names;
use crate::datapath::SharedDatapath;
use crate::watch::SharedView;

/// Recent events the agent keeps for a subscriber that arrives later.
pub const RECENT: usize = 4096;
/// Events a subscriber may fall behind before it loses some.
pub const STREAM_BUFFER: usize = 1024;
/// Streams served at once; more are refused (RESOURCE_EXHAUSTED).
pub const MAX_SUBSCRIBERS: usize = 64;
/// Records taken from the ring buffer per wake-up.
const BATCH: usize = 512;

/// What the hub sends its subscribers.
#[derive(Debug, Clone)]
pub enum HubMessage {
    /// One event.
    Flow(Arc<v1::Flow>),
    /// The programs could not report this many events (ring buffer full,
    /// over the rate limit).
    DatapathLost(u64),
}

/// Recent events and the live fan-out.
#[derive(Debug)]
pub struct FlowHub {
    tx: broadcast::Sender<HubMessage>,
    recent: Mutex<VecDeque<Arc<v1::Flow>>>,
    /// Events decoded from the ring buffer.
    pub received: AtomicU64,
    /// Events subscribers lost by falling behind (summed over them).
    pub stream_lost: AtomicU64,
    /// Records that did not decode.
    pub malformed: AtomicU64,
    subscribers: Arc<std::sync::atomic::AtomicUsize>,
}

/// One stream's place among [`MAX_SUBSCRIBERS`]; freed when dropped.
#[derive(Debug)]
pub struct Subscription(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for FlowHub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(STREAM_BUFFER).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            received: AtomicU64::new(0),
            stream_lost: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            subscribers: Arc::default(),
        }
    }
}

impl FlowHub {
    /// Keeps `flow` among the recent ones and sends it to subscribers.
    pub fn publish(&self, flow: v1::Flow) {
        let flow = Arc::new(flow);
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(Arc::clone(&flow));
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        // No subscriber: nothing to do.
        let _ = self.tx.send(HubMessage::Flow(flow));
    }

    /// Tells subscribers that the programs lost `n` events.
    pub fn datapath_lost(&self, n: u64) {
        let _ = self.tx.send(HubMessage::DatapathLost(n));
    }

    /// The recent events (oldest first) matching `filter`, at most `last`,
    /// and a receiver of what comes after them.
    pub fn subscribe(
        &self,
        filter: &FlowFilter,
        last: usize,
    ) -> (Vec<Arc<v1::Flow>>, broadcast::Receiver<HubMessage>) {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        // Subscribing under the lock: nothing published falls between the two.
        let rx = self.tx.subscribe();
        let mut picked: Vec<Arc<v1::Flow>> = recent
            .iter()
            .rev()
            .filter(|f| filter.matches(f))
            .take(last)
            .cloned()
            .collect();
        picked.reverse();
        (picked, rx)
    }

    /// A place for one more stream, if fewer than [`MAX_SUBSCRIBERS`] run.
    pub fn admit(&self) -> Option<Subscription> {
        let n = self.subscribers.fetch_add(1, Ordering::AcqRel);
        let place = Subscription(Arc::clone(&self.subscribers));
        (n < MAX_SUBSCRIBERS).then_some(place)
    }

    /// Counts events a subscriber lost.
    pub fn lost_by_subscriber(&self, n: u64) {
        self.stream_lost.fetch_add(n, Ordering::Relaxed);
    }
}

/// forwarded or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new flow balanced to a backend.
    Forwarded,
    /// A drop or refusal.
    Dropped,
}

impl Verdict {
    /// The name `jotactl flows --verdict` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Dropped => "dropped",
        }
    }

    /// Parses `forwarded` or `dropped`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "forwarded" => Some(Self::Forwarded),
            "dropped" => Some(Self::Dropped),
            _ => None,
        }
    }
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFilter {
    /// From or to this pod (`namespace/name`): source, destination or backend.
    pub pod: Option<String>,
    /// Of this Service (`namespace/name`).
    pub service: Option<String>,
    /// Only this verdict.
    pub verdict: Option<Verdict>,
}

impl FlowFilter {
    /// Whether `f` is wanted.
    pub fn matches(&self, f: &v1::Flow) -> bool {
        self.verdict.is_none_or(|v| f.verdict == v.as_str())
            && self.pod.as_deref().is_none_or(|p| {
                [&f.source_pod, &f.destination_pod, &f.backend_pod]
                    .iter()
                    .any(|x| x.as_str() == p)
            })
            && self
                .service
                .as_deref()
                .is_none_or(|s| f.service.split_once(':').is_some_and(|(name, _)| name == s))
    }
}

/// The node's devices a tc program may run on, by ifindex.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Devices {
    /// The VXLAN device (from_overlay).
    pub vxlan: u32,
    /// The underlay interface (from_underlay).
    pub underlay: u32,
}

/// The ifindex of interface `name` in the agent's namespace (0: none).
pub fn ifindex(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: a NUL-terminated string that outlives the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// The program that wrote an event.
pub fn program(e: &FlowEvent, devices: Devices) -> &'static str {
    match e.hook {
        FlowHook::Tc if e.ifindex != 0 && e.ifindex == devices.vxlan => "from_overlay",
        FlowHook::Tc if e.ifindex != 0 && e.ifindex == devices.underlay => "from_underlay",
        // A pod's veth: from_pod on ingress, which is where every drop
        // but a failed reverse-NAT rewrite in to_pod happens.
        FlowHook::Tc => "from_pod",
        other => other.as_str(),
    }
}

fn protocol_name(n: u8) -> String {
    match Protocol::from_number(n) {
        Some(p) => p.to_string(),
        None if n == 1 => "ICMP".into(),
        None if n == 0 => String::new(),
        None => n.to_string(),
    }
}

fn addr(s: SocketAddrV4) -> String {
    if s.ip().is_unspecified() {
        String::new()
    } else {
        s.to_string()
    }
}

/// What an event needs named.
#[derive(Debug, Default)]
pub struct Naming<'a> {
    /// The view's names.
    pub names: Option<&'a Names>,
    /// Programmed frontends by service id.
    pub frontends: Option<&'a HashMap<u32, Frontend>>,
    /// Pods by cgroup id (socket programs).
    pub cgroups: Option<&'a HashMap<u64, String>>,
    /// The node's devices.
    pub devices: Devices,
    /// This node.
    pub node: &'a str,
    /// Wall-clock nanoseconds minus monotonic nanoseconds, now.
    pub realtime_offset_ns: i64,
}

/// The message for event `e`.
pub fn describe(e: &FlowEvent, n: &Naming<'_>) -> v1::Flow {
    let pod_of = |ip: Ipv4Addr| {
        n.names
            .and_then(|names| names.pod(ip))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let frontend = e
        .service_id
        .and_then(|id| n.frontends.and_then(|f| f.get(&id)).copied());
    let service = frontend
        .and_then(|f| n.names.and_then(|names| names.service(&f)))
        .map(str::to_owned)
        .unwrap_or_default();
    let (verdict, drop_reason, backend) = match e.verdict {
        FlowVerdict::Forwarded { backend } => ("forwarded", String::new(), Some(backend)),
        FlowVerdict::Dropped { reason } => (
            "dropped",
            match reason {
                Ok(r) => r.as_str().to_owned(),
                Err(n) => format!("unknown_{n}"),
            },
            None,
        ),
    };
    let source_pod = match e.cgroup_id {
        Some(id) => n
            .cgroups
            .and_then(|c| c.get(&id))
            .and_then(|uid| n.names.and_then(|names| names.pod_by_uid(uid)))
            .map_or_else(|| "(node)".to_owned(), str::to_owned),
        None => pod_of(*e.src.ip()),
    };
    v1::Flow {
        time_unix_nanos: i64::try_from(e.monotonic_ns)
            .unwrap_or(i64::MAX)
            .saturating_add(n.realtime_offset_ns),
        node: n.node.to_owned(),
        verdict: verdict.to_owned(),
        drop_reason,
        program: program(e, n.devices).to_owned(),
        protocol: protocol_name(e.proto),
        source: addr(e.src),
        source_pod,
        destination: addr(e.dst),
        destination_pod: pod_of(*e.dst.ip()),
        service,
        backend: backend.map(addr).unwrap_or_default(),
        backend_pod: backend.map(|b| pod_of(*b.ip())).unwrap_or_default(),
    }
}

/// Wall-clock minus monotonic time, in nanoseconds.
pub fn realtime_offset_ns() -> i64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

/// Pods' uids by the cgroup id (inode) of the pod's cgroup and of each of
/// its containers', under the node's cgroup2 directory (`pod<uid>/<id>`).
pub fn scan_cgroups(node_dir: &Path) -> HashMap<u64, String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = HashMap::new();
    let Ok(pods) = std::fs::read_dir(node_dir) else {
        return out;
    };
    for pod in pods.flatten() {
        let name = pod.file_name();
        let Some(uid) = name.to_str().and_then(|n| n.strip_prefix("pod")) else {
            continue;
        };
        let path = pod.path();
        if let Ok(m) = std::fs::metadata(&path) {
            out.insert(m.ino(), uid.to_owned());
        }
        for c in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            if let Ok(m) = c.metadata()
                && m.is_dir()
            {
                out.insert(m.ino(), uid.to_owned());
            }
        }
    }
    out
}

/// What the reader needs besides the ring buffer.
#[derive(Debug, Clone)]
pub struct ReaderContext {
    /// This node.
    pub node: String,
    /// Its address (external frontends).
    pub node_ip: Ipv4Addr,
    /// The view.
    pub view: SharedView,
    /// The data plane (service ids, the programs' loss counters).
    pub datapath: SharedDatapath,
    /// The node's cgroup2 directory.
    pub cgroup_dir: PathBuf,
    /// The node's devices.
    pub devices: Devices,
    /// The watch's status: its event count tells when the view changed.
    pub watch_status: watch::Receiver<crate::watch::WatchStatus>,
}

/// Names, refreshed at most once a second (and cgroups on a miss).
struct Cache {
    names: Names,
    frontends: HashMap<u32, Frontend>,
    cgroups: HashMap<u64, String>,
    at: Option<Instant>,
    view_events: u64,
    cgroups_at: Option<Instant>,
}

impl Cache {
    /// Whether `e` names something the cache does not know.
    fn misses(&self, e: &FlowEvent) -> bool {
        let backend = match e.verdict {
            FlowVerdict::Forwarded { backend } => Some(*backend.ip()),
            FlowVerdict::Dropped { .. } => None,
        };
        e.service_id
            .is_some_and(|id| !self.frontends.contains_key(&id))
            || backend.is_some_and(|ip| self.names.pod(ip).is_none())
            || (e.cgroup_id.is_none() && self.names.pod(*e.src.ip()).is_none())
    }

    /// Rebuilds the names when the view changed, once a second (the
    /// programmed service ids follow the view), and sooner (at most 4
    /// times a second) when an event names what they do not know.
    fn refresh(&mut self, ctx: &ReaderContext, events: &[FlowEvent]) {
        let view_events = ctx.watch_status.borrow().events;
        let due = match self.at {
            None => true,
            Some(t) => {
                view_events != self.view_events
                    || t.elapsed() > Duration::from_secs(1)
                    || (t.elapsed() > Duration::from_millis(250)
                        && events.iter().any(|e| self.misses(e)))
            }
        };
        if due {
            self.view_events = view_events;
            let host = crate::external::Host {
                name: ctx.node.clone(),
                ip: ctx.node_ip,
            };
            self.names = {
                let v = ctx.view.read().unwrap_or_else(PoisonError::into_inner);
                Names::of(&v, Some(&host))
            };
            self.frontends = ctx
                .datapath
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .frontends()
                .into_iter()
                .collect();
            self.at = Some(Instant::now());
        }
        let missing = events
            .iter()
            .filter_map(|e| e.cgroup_id)
            .any(|id| !self.cgroups.contains_key(&id));
        if missing
            && self
                .cgroups_at
                .is_none_or(|t| t.elapsed() > Duration::from_secs(2))
        {
            self.cgroups = scan_cgroups(&ctx.cgroup_dir);
            self.cgroups_at = Some(Instant::now());
        }
    }
}

/// Reads node `ctx.node`'s ring buffer into `hub` until `stop`.
pub async fn run(
    reader: FlowReader,
    hub: Arc<FlowHub>,
    ctx: ReaderContext,
    mut stop: watch::Receiver<bool>,
) {
    // SAFETY: the FlowReader owns the ring buffer's map fd, which stays
    // open and the same for as long as the AsyncFd owns the reader.
    let registered =
        unsafe { AsyncFd::register_with_interest(reader, tokio::io::Interest::READABLE) };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            warn!(error = %e, "cannot poll the flow event ring buffer: no flow events");
            return;
        }
    };
    let mut cache = Cache {
        names: Names::default(),
        frontends: HashMap::new(),
        cgroups: HashMap::new(),
        at: None,
        view_events: 0,
        cgroups_at: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut datapath_lost = None::<u64>;
    loop {
        tokio::select! {
            () = crate::stopped(&mut stop) => return,
            _ = tick.tick() => {
                // What the programs could not report since the last tick.
                let counters = ctx
                    .datapath
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .flow_events()
                    .counters();
                if let Ok(c) = counters {
                    let now = c.lost.saturating_add(c.rate_limited);
                    if let Some(before) = datapath_lost
                        && now > before
                    {
                        hub.datapath_lost(now - before);
                    }
                    datapath_lost = Some(now);
                }
            }
            ready = fd.readable_mut() => {
                let mut guard = match ready {
                    Ok(g) => g,
                    Err(e) => {
                        warn!(error = %e, "polling the flow event ring buffer failed");
                        return;
                    }
                };
                let records = guard.get_inner_mut().drain(BATCH);
                // Fewer than a batch: the ring is empty, wait for the next wake-up.
                if records.len() < BATCH {
                    guard.clear_ready();
                }
                drop(guard);
                let mut events = Vec::with_capacity(records.len());
                for r in records {
                    match r {
                        Ok(e) => events.push(e),
                        Err(e) => {
                            hub.malformed.fetch_add(1, Ordering::Relaxed);
                            debug!(error = %e, "undecodable flow event");
                        }
                    }
                }
                cache.refresh(&ctx, &events);
                let naming = Naming {
                    names: Some(&cache.names),
                    frontends: Some(&cache.frontends),
                    cgroups: Some(&cache.cgroups),
                    devices: ctx.devices,
                    node: &ctx.node,
                    realtime_offset_ns: realtime_offset_ns(),
                };
                for e in &events {
                    hub.publish(describe(e, &naming));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jotasu_ebpf::DropReason;

    use super::*;

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn new_flow() -> FlowEvent {
        FlowEvent {
            monotonic_ns: 5,
            hook: FlowHook::FromPod,
            ifindex: 12,
            proto: 6,
            service_id: Some(3),
            src: sa("10.244.1.5:40000"),
            dst: sa("10.96.0.20:80"),
            cgroup_id: None,
            verdict: FlowVerdict::Forwarded {
                backend: sa("10.244.2.7:8080"),
            },
        }
    }

    fn names() -> Names {
        let mut v = crate::watch::ClusterView::default();
        for json in [
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"namespace":"shop","name":"web"},
                "spec":{"clusterIP":"10.96.0.20","ports":[{"name":"http","port":80}]}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"shop","name":"client","uid":"u-1"},
                "spec":{"containers":[{"name":"c","image":"busybox"}]},"status":{"podIP":"10.244.1.5"}}"#,
        ] {
            let o = jotasu_api::Object::from_value(serde_json::from_str(json).unwrap()).unwrap();
            v.apply(jotasu_api::client::EventType::Added, o);
        }
        Names::of(&v, None)
    }

    #[test]
    fn a_new_flow_is_named_from_the_view() {
        let names = names();
        let frontends = HashMap::from([(3, Frontend::tcp("10.96.0.20".parse().unwrap(), 80))]);
        let n = Naming {
            names: Some(&names),
            frontends: Some(&frontends),
            node: "n1",
            realtime_offset_ns: 1_000,
            ..Naming::default()
        };
        let f = describe(&new_flow(), &n);
        assert_eq!(f.verdict, "forwarded");
        assert_eq!(f.program, "from_pod");
        assert_eq!(f.protocol, "TCP");
        assert_eq!(f.source, "10.244.1.5:40000");
        assert_eq!(f.source_pod, "shop/client");
        assert_eq!(f.destination, "10.96.0.20:80");
        assert_eq!(f.service, "shop/web:http");
        assert_eq!(f.backend, "10.244.2.7:8080");
        assert_eq!(f.backend_pod, "");
        assert_eq!(f.time_unix_nanos, 1_005);
        assert_eq!(f.node, "n1");
    }

    #[test]
    fn drops_and_socket_events_name_their_program_and_pod() {
        let names = names();
        let cgroups = HashMap::from([(99u64, "u-1".to_owned())]);
        let n = Naming {
            names: Some(&names),
            cgroups: Some(&cgroups),
            devices: Devices {
                vxlan: 4,
                underlay: 2,
            },
            ..Naming::default()
        };
        let drop = FlowEvent {
            hook: FlowHook::Tc,
            ifindex: 4,
            service_id: None,
            verdict: FlowVerdict::Dropped {
                reason: Ok(DropReason::UnknownOverlayPeer),
            },
            ..new_flow()
        };
        let f = describe(&drop, &n);
        assert_eq!(
            (f.verdict.as_str(), f.drop_reason.as_str()),
            ("dropped", "unknown_overlay_peer")
        );
        assert_eq!(f.program, "from_overlay");
        assert_eq!(f.service, "");
        let on_veth = FlowEvent {
            ifindex: 12,
            ..drop
        };
        assert_eq!(describe(&on_veth, &n).program, "from_pod");
        let sock = FlowEvent {
            hook: FlowHook::SockConnect,
            ifindex: 0,
            src: sa("0.0.0.0:0"),
            cgroup_id: Some(99),
            ..new_flow()
        };
        let f = describe(&sock, &n);
        assert_eq!(
            (f.program.as_str(), f.source.as_str()),
            ("sock_connect4", "")
        );
        assert_eq!(f.source_pod, "shop/client");
        let node_process = FlowEvent {
            cgroup_id: Some(7),
            ..sock
        };
        assert_eq!(describe(&node_process, &n).source_pod, "(node)");
    }

    fn flow(verdict: &str, src_pod: &str, service: &str) -> v1::Flow {
        v1::Flow {
            verdict: verdict.into(),
            source_pod: src_pod.into(),
            service: service.into(),
            ..v1::Flow::default()
        }
    }

    #[test]
    fn filters_follow_hubble_observe() {
        let f = flow("forwarded", "shop/client", "shop/web:http");
        assert!(FlowFilter::default().matches(&f));
        let by_pod = FlowFilter {
            pod: Some("shop/client".into()),
            ..FlowFilter::default()
        };
        assert!(by_pod.matches(&f));
        assert!(!by_pod.matches(&flow("forwarded", "shop/other", "")));
        let by_service = FlowFilter {
            service: Some("shop/web".into()),
            ..FlowFilter::default()
        };
        assert!(by_service.matches(&f));
        assert!(!by_service.matches(&flow("forwarded", "", "shop/webshop:80")));
        let dropped = FlowFilter {
            verdict: Verdict::parse("DROPPED"),
            ..FlowFilter::default()
        };
        assert!(!dropped.matches(&f));
        assert!(dropped.matches(&flow("dropped", "", "")));
        assert_eq!(Verdict::parse("maybe"), None);
    }

    #[tokio::test]
    async fn recent_events_are_bounded_and_slow_subscribers_lag() {
        let hub = FlowHub::default();
        for i in 0..(RECENT + 10) {
            hub.publish(v1::Flow {
                time_unix_nanos: i as i64,
                ..v1::Flow::default()
            });
        }
        let (recent, mut rx) = hub.subscribe(&FlowFilter::default(), usize::MAX);
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].time_unix_nanos, 10, "the oldest fell out");
        let (last3, _) = hub.subscribe(&FlowFilter::default(), 3);
        assert_eq!(
            last3.iter().map(|f| f.time_unix_nanos).collect::<Vec<_>>(),
            [RECENT as i64 + 7, RECENT as i64 + 8, RECENT as i64 + 9]
        );
        for _ in 0..(STREAM_BUFFER + 5) {
            hub.publish(v1::Flow::default());
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 5),
            other => panic!("expected a lag, got {other:?}"),
        }
        let places: Vec<Subscription> = (0..MAX_SUBSCRIBERS).map_while(|_| hub.admit()).collect();
        assert_eq!(places.len(), MAX_SUBSCRIBERS);
        assert!(hub.admit().is_none(), "one too many");
        drop(places);
        assert!(hub.admit().is_some(), "places are freed");
    }
}
