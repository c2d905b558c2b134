//! The agent's life: establish the node's identity (stored certificate or
//! a token join), set the node up (cgroups, containerd, data plane,
//! registration, CNI configuration), run its loops, and on SIGTERM stop
//! them — leaving pods and the data plane running, as a restarted agent
//! picks them up again. A second signal exits at once.

use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use jotasu_api::client::Credentials;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::cgroup::{Hierarchies, NodeCgroups};
use crate::config::Config;
use crate::containerd::Containerd;
use crate::credentials::renew::Renewer;
use crate::credentials::{self, Bootstrap};
use crate::network::vxlan::VxlanSpec;
use crate::network::{CniNetwork, NetworkSettings, PodNetns};
use crate::node::{NodeFacts, capacity, heartbeat_loop, register};
use crate::pods::{Manager, NodeContext, Registry};
use crate::server::NodePort;
use crate::watch::{ClusterView, Generations, WatchStatus, follow};
use crate::{datapath, dns, metrics, oci_runtime, overlay, server};

/// The node's port is served with the node's certificate: an agent
/// without one (on the local socket, not joined) cannot serve it.
fn node_port(credentials: Option<&Arc<Credentials>>) -> anyhow::Result<NodePort> {
    match credentials.filter(|c| c.current().certified_key().is_some()) {
        Some(c) => Ok(NodePort::Tls(Arc::clone(c))),
        None => anyhow::bail!(
            "the node has no certificate to serve its port (logs, exec, image import) with: join with \
             --server https://HOST:PORT --token <token> --ca-cert-hash sha256:<hash>"
        ),
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(config: Config, bootstrap: Bootstrap) -> anyhow::Result<()> {
    let node = config.node.clone();
    let identity = credentials::establish(&bootstrap)
        .await
        .context("establishing the node's identity")?;
    let port = node_port(identity.credentials.as_ref())?;
    let client = identity.client.clone();
    let hierarchies = Hierarchies::detect().context("reading /proc/mounts")?;
    let cgroups = NodeCgroups::ensure(hierarchies.clone(), &config.cgroup_parent)?;
    let runtime = oci_runtime::choose(
        &config.oci_runtime,
        &oci_runtime::HostRuntimes::detect(&hierarchies),
        |b| oci_runtime::which(b).is_some(),
    )?;
    info!(binary = %runtime.binary, reason = %runtime.reason, "OCI runtime");
    let containerd = Containerd::connect(&config.containerd_socket, &node)
        .await
        .with_context(|| {
            format!(
                "connecting to containerd at {}",
                config.containerd_socket.display()
            )
        })?
        .with_exec_dir(&config.state_dir.join("exec"))
        .with_insecure_registries(config.insecure_registries.clone())
        .with_oci_runtime((!runtime.is_default()).then(|| runtime.binary.clone()));
    let runtime_version = containerd.version().await.unwrap_or_default();
    let dp = datapath::open(&config.bpffs, &node, &cgroups.unified_dir())
        .with_context(|| format!("opening node {node}'s data plane"))?;
    let dp = Arc::new(std::sync::Mutex::new(dp));
    overlay::setup(
        &dp,
        &VxlanSpec {
            name: config.vxlan_device.clone(),
            port: config.vxlan_port,
            mtu: config.mtu,
        },
    )
    .await
    .with_context(|| format!("setting up node {node}'s overlay"))?;
    let (underlay, ifindex) = crate::network::underlay::interface_of(config.node_ip)
        .await
        .with_context(|| format!("finding node {node}'s underlay interface"))?;
    crate::network::underlay::enable_forwarding(&underlay)
        .with_context(|| format!("enabling IPv4 forwarding on {underlay}"))?;
    {
        let mut d = dp.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let attached = d
            .underlay_mut()
            .attach(&underlay, ifindex, config.node_ip)
            .with_context(|| format!("attaching the data plane to {underlay}"))?;
        info!(interface = %underlay, address = %config.node_ip, ?attached, "underlay ready: node ports, external IPs and host ports served");
    }

    let detected = capacity::detect(&hierarchies);
    let facts = NodeFacts {
        name: node.clone(),
        ip: config.node_ip,
        capacity: capacity::Capacity {
            cpu_millis: config.cpu_millis.unwrap_or(detected.cpu_millis),
            memory_bytes: config.memory_bytes.unwrap_or(detected.memory_bytes),
        },
        max_pods: config.max_pods,
        port: config.listen.port(),
        runtime_version: format!("containerd://{runtime_version}"),
        local_volumes: local_volume_offer(&config),
    };
    let pod_cidr = register(&client, &facts).await?;
    let cni_dir = config.cni_dir();
    let ipam_dir = cni_dir.join("ipam");
    let network = CniNetwork::write(
        &config.cni_conflist(),
        &NetworkSettings {
            node: &node,
            subnet: pod_cidr,
            bpffs: &config.bpffs,
            mtu: config.mtu,
            ipam_dir: &ipam_dir,
        },
        config.cni_path.clone(),
        &cni_dir.join("cache"),
    )?;
    let netns = PodNetns::new(&config.netns_dir)?;

    let (stop_tx, stop) = watch::channel(false);
    let view = Arc::new(RwLock::new(ClusterView::default()));
    let gens = Generations::default();
    let (status_tx, status_rx) = watch::channel(WatchStatus::default());
    let pods = Arc::new(Registry::default());
    let metrics = metrics::Metrics::new(
        Some(Arc::clone(&dp)),
        Arc::clone(&view),
        status_rx.clone(),
        Arc::clone(&pods),
    );

    let ctx = Arc::new(NodeContext {
        config: config.clone(),
        client: client.clone(),
        containerd: containerd.clone(),
        network,
        netns,
        cgroups,
        datapath: Arc::clone(&dp),
        view: Arc::clone(&view),
        metrics: Arc::clone(&metrics),
        memory_capacity: facts.capacity.memory_bytes,
    });
    let manager = Manager::new(Arc::clone(&ctx), pods);

    // Subscribed before the stream starts, so no consumer misses the first list.
    let services_gen = gens.services.subscribe();
    let nodes_gen = gens.nodes.subscribe();
    let pods_gen = gens.pods.subscribe();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(follow(
        client.clone(),
        node.clone(),
        Arc::clone(&view),
        gens.clone(),
        status_tx,
        stop.clone(),
    ));
    // The node's resolver answers its pods on the cluster DNS address.
    let local_dns = config
        .cluster_dns
        .filter(|_| config.dns_port != 0)
        .map(|vip| datapath::LocalDns {
            vip,
            resolver: std::net::SocketAddrV4::new(config.node_ip, config.dns_port),
        });
    if local_dns.is_none() {
        // No resolver: the kernel must not answer for it from an earlier run.
        dns::fast::enable(&dp, &[]);
    }
    if let Some(dns) = local_dns {
        let upstreams = if config.dns_upstreams.is_empty() {
            let node_conf =
                crate::pod::dns::ResolvConf::read(&config.resolv_conf).unwrap_or_else(|e| {
                    warn!(error = %e, "the node's resolver forwards nowhere");
                    crate::pod::dns::ResolvConf::default()
                });
            dns::server::upstreams(&node_conf, &[dns.vip.into()])
        } else {
            config.dns_upstreams.clone()
        };
        let settings = dns::server::DnsSettings {
            listen: dns.resolver.into(),
            domain: config.cluster_domain.clone(),
            service_cidr: None,
            upstreams,
            cache: dns::cache::Limits::default(),
        };
        let index: dns::server::SharedIndex = Arc::new(RwLock::new(Arc::new(dns::DnsIndex::new(
            &settings.domain,
            None,
            Vec::new(),
        ))));
        let frontends = if config.dns_fast_path {
            dns::fast::frontends(std::net::SocketAddrV4::new(dns.vip, 53), dns.resolver)
        } else {
            Vec::new()
        };
        dns::fast::enable(&dp, &frontends);
        tasks.spawn(dns::server::index_loop(
            Arc::clone(&index),
            Arc::clone(&view),
            settings.clone(),
            config.dns_fast_path.then(|| Arc::clone(&dp)),
            gens.services.subscribe(),
            gens.nodes.subscribe(),
            stop.clone(),
        ));
        let (stop, cache_metrics) = (stop.clone(), metrics.dns_cache());
        tasks.spawn(async move {
            if let Err(e) = dns::server::serve(index, settings, cache_metrics, stop).await {
                error!(error = %e, "the node's resolver failed");
            }
        });
    }
    let (programmed_tx, programmed_rx) = tokio::sync::watch::channel(None);
    tasks.spawn(datapath::sync_loop(
        Arc::clone(&dp),
        Arc::clone(&view),
        services_gen,
        Arc::clone(&metrics),
        datapath::NodeFrontends {
            local_dns,
            host: Some(crate::external::Host {
                name: node.clone(),
                ip: config.node_ip,
            }),
        },
        programmed_tx,
        stop.clone(),
    ));
    tasks.spawn(overlay::sync_loop(
        Arc::clone(&dp),
        Arc::clone(&view),
        node.clone(),
        nodes_gen,
        Arc::clone(&metrics),
        stop.clone(),
    ));
    tasks.spawn(crate::node::local_volumes::sync_loop(
        client.clone(),
        node.clone(),
        config.volumes_dir(),
        stop.clone(),
    ));
    tasks.spawn(heartbeat_loop(
        client.clone(),
        node.clone(),
        config.heartbeat,
        manager.usage_source(),
        programmed_rx,
        stop.clone(),
    ));
    {
        let (m, stop) = (Arc::clone(&metrics), stop.clone());
        let addr = config.metrics_listen;
        tasks.spawn(async move {
            if let Err(e) = metrics::serve(addr, m, stop).await {
                error!(%addr, error = %e, "the metrics endpoint failed");
            }
        });
    }
    let flow_hub = Arc::new(crate::views::flows::FlowHub::default());
    metrics.watch_flows(Arc::clone(&flow_hub));
    if let Some(reader) = crate::views::flow_events(
        &config,
        &dp,
        &view,
        &flow_hub,
        &NodeCgroups::existing(hierarchies.clone(), &config.cgroup_parent).unified_dir(),
        &status_rx,
        &stop,
    ) {
        tasks.spawn(reader);
    }
    {
        let (m, stop) = (manager.clone(), stop.clone());
        let addr = config.listen;
        let views = crate::views::DatapathViews::new(
            node.clone(),
            config.node_ip,
            Arc::clone(&dp),
            Arc::clone(&view),
            Arc::clone(&flow_hub),
        );
        tasks.spawn(async move {
            if let Err(e) = server::serve_with_views(addr, m, Some(views), port, stop).await {
                error!(%addr, error = %e, "the Node service failed");
            }
        });
    }
    if let (true, Some(creds)) = (identity.renewable, &identity.credentials) {
        let renewer = Renewer {
            source: client.clone(),
            server: bootstrap.server.clone(),
            node: node.clone(),
            credentials: Arc::clone(creds),
            pki: identity.pki.clone(),
        };
        tasks.spawn(renewer.run(stop.clone()));
    }
    tasks.spawn(manager.clone().run(pods_gen, status_rx, stop.clone()));
    info!(%node, ip = %config.node_ip, %pod_cidr, "agent running");

    shutdown_signal().await;
    info!(%node, "stopping: pods and the data plane keep running");
    let _ = stop_tx.send(true);
    tokio::select! {
        () = async { while tasks.join_next().await.is_some() {} } => {}
        () = shutdown_signal() => warn!("second signal: exiting now"),
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => warn!("tasks did not stop within 10 s; exiting"),
    }
    Ok(())
}

/// Where the node's local volumes go and the room it offers them (the
/// flag, else the size of their filesystem); None when the directory
/// cannot be made or measured (the node then offers no local volumes).
fn local_volume_offer(config: &Config) -> Option<(String, u64)> {
    let dir = config.volumes_dir();
    let bytes = match crate::node::local_volumes::filesystem_size(&dir) {
        Ok(size) => config.local_volume_capacity.unwrap_or(size),
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "no local volumes on this node: cannot use their directory");
            return None;
        }
    };
    Some((dir.to_string_lossy().into_owned(), bytes))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
