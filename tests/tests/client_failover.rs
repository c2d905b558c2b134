//! Clients that fail over (issue 21, point 4): three control planes on one
//! etcd, sharing the cluster CA, each on its own 127.0.0.1 port. jotactl
//! given `--server A,B,C` works when A is a port with nothing listening and
//! when A is a stopped (SIGSTOP) control plane, moving on within the connect
//! timeout; a client's open watch moves to the next server within the
//! HTTP/2 keepalive window and resumes without a gap; a client configured
//! with one server learns the others from the Endpoints `default/kubernetes`
//! and keeps working when its server dies.
//!
//! Needs etcd (`/usr/bin/etcd`): without it these tests say so and pass,
//! except under `CI=true`, where they fail.
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jotasu_api::client::{Client, ServerUrl, TlsFiles, WatchFilter};
use jotasu_api::{Kind, Object, ObjectRef};
use jotasu_tests::controlplane::{ControlPlane, Options, free_port, scratch_root};
use jotasu_tests::etcd::EtcdServer;
use jotasu_tests::jotactl::Ctl;
use jotasu_tests::process::ProcessRecord;

/// Three control planes on one etcd; the first runs the controllers.
struct Ha {
    cps: Vec<ControlPlane>,
    _dirs: Vec<tempfile::TempDir>,
    _etcd: EtcdServer,
}

impl Ha {
    /// Starts etcd and three control planes, or None when etcd is missing
    /// (outside CI).
    async fn start() -> Option<Self> {
        let etcd = EtcdServer::start_or_skip().expect("etcd starts")?;
        let endpoints = vec![etcd.client_url().to_owned()];
        let first = ControlPlane::start(Options {
            tls: true,
            etcd_endpoints: endpoints.clone(),
            ..Options::default()
        })
        .await
        .expect("the first control plane starts");
        let mut cps = vec![first];
        let mut dirs = Vec::new();
        for _ in 0..2 {
            // The same cluster CA: copied into the new data dir before start.
            let prefix =
                jotasu_tests::names::scratch_prefix(&jotasu_tests::names::fresh_prefix(), "cp-");
            let dir = tempfile::Builder::new()
                .prefix(&prefix)
                .tempdir_in(scratch_root())
                .expect("a data dir");
            share_ca(cps[0].data_dir(), dir.path());
            let cp = ControlPlane::start(Options {
                tls: true,
                etcd_endpoints: endpoints.clone(),
                args: vec!["--no-controllers".into()],
                data_dir: Some(dir.path().to_owned()),
                ..Options::default()
            })
            .await
            .expect("another control plane starts");
            cps.push(cp);
            dirs.push(dir);
        }
        Some(Self {
            cps,
            _dirs: dirs,
            _etcd: etcd,
        })
    }

    fn url(&self, i: usize) -> String {
        self.cps[i].tls_url().expect("TLS is on")
    }

    fn tls(&self) -> TlsFiles {
        self.cps[0].admin_tls()
    }

    /// The global jotactl flags for `servers` with the admin credentials.
    fn ctl_args<'a>(&self, servers: &'a str, tls: &'a [String; 3]) -> Vec<&'a str> {
        let _ = self;
        vec![
            "--server",
            servers,
            "--certificate-authority",
            &tls[0],
            "--client-certificate",
            &tls[1],
            "--client-key",
            &tls[2],
        ]
    }

    fn tls_strings(&self) -> [String; 3] {
        let t = self.tls();
        let s = |p: Option<std::path::PathBuf>| p.expect("admin TLS").display().to_string();
        [
            s(t.certificate_authority),
            s(t.client_certificate),
            s(t.client_key),
        ]
    }
}

/// Copies `from`'s cluster CA into the data dir `to`.
fn share_ca(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("pki")).expect("pki dir");
    for file in ["ca.crt", "ca.key"] {
        std::fs::copy(from.join("pki").join(file), to.join("pki").join(file)).expect("copy CA");
    }
}

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\n  namespace: default\ndata:\n  k: v\n";

/// The Service the control planes are published under (no selector).
const KUBERNETES_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: kubernetes, namespace: default}\nspec:\n  ports: [{name: https, port: 443, targetPort: 6443}]\n";

fn config_map(name: &str) -> String {
    CONFIG_MAP.replace("NAME", name)
}

/// A control plane stopped with SIGSTOP, continued on drop (so it can be
/// killed and reaped as usual).
struct Stopped(ProcessRecord);

impl Stopped {
    fn stop(cp: &ControlPlane) -> Self {
        let record = ProcessRecord::of(cp.pid().expect("running")).expect("its process");
        assert!(record.signal(libc::SIGSTOP), "SIGSTOP sent");
        Self(record)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

fn jotactl(ctl: &Ctl, global: &[&str], args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let mut all = global.to_vec();
    all.extend_from_slice(args);
    let run = ctl.run_with(&[], &all, stdin);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

#[tokio::test]
async fn jotactl_moves_past_a_dead_server() {
    let Some(ha) = Ha::start().await else { return };
    let dead = format!("https://{}", free_port().expect("a free port"));
    let servers = format!("{dead},{},{}", ha.url(1), ha.url(2));
    let tls = ha.tls_strings();
    let global = ha.ctl_args(&servers, &tls);
    let ctl = Ctl::new();
    let (code, out) = jotactl(
        &ctl,
        &global,
        &["apply", "-f", "-"],
        Some(&config_map("dead-a")),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("configmap/dead-a created"), "{out}");
    let (code, out) = jotactl(&ctl, &global, &["get", "configmap", "dead-a"], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dead-a"), "{out}");

    // JOTASU_SERVER takes the same list.
    let env = [
        ("JOTASU_SERVER", servers.as_str()),
        ("JOTASU_CONFIG", "/nonexistent"),
    ];
    let mut args = global[2..].to_vec();
    args.extend(["get", "configmap", "dead-a"]);
    let run = ctl.run_with(&env, &args, None);
    assert_eq!(run.code, 0, "{run:#?}");

    // Every server dead: one error naming them all.
    let all_dead = format!("{dead},https://{}", free_port().expect("a free port"));
    let global = ha.ctl_args(&all_dead, &tls);
    let (code, out) = jotactl(&ctl, &global, &["get", "configmap"], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&dead), "{out}");
}

#[tokio::test]
async fn jotactl_moves_past_a_stopped_server() {
    let Some(ha) = Ha::start().await else { return };
    let servers = format!("{},{},{}", ha.url(1), ha.url(0), ha.url(2));
    let tls = ha.tls_strings();
    let global = ha.ctl_args(&servers, &tls);
    let ctl = Ctl::new();
    let _stopped = Stopped::stop(&ha.cps[1]);
    let started = Instant::now();
    let (code, out) = jotactl(
        &ctl,
        &global,
        &["apply", "-f", "-"],
        Some(&config_map("stopped-a")),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = jotactl(&ctl, &global, &["get", "configmap", "stopped-a"], None);
    assert_eq!(code, 0, "{out}");
    // Two runs, each giving the stopped server at most the connect timeout.
    let took = started.elapsed();
    assert!(
        took < 2 * jotasu_api::client::CONNECT_TIMEOUT + Duration::from_secs(5),
        "took {took:?}"
    );
}

#[tokio::test]
async fn an_open_watch_moves_on_within_the_keepalive_window() {
    let Some(ha) = Ha::start().await else { return };
    let servers: Vec<ServerUrl> = [1, 0, 2]
        .iter()
        .map(|&i| ServerUrl::parse(&ha.url(i)).expect("a URL"))
        .collect();
    let client = Client::connect_to_any(&servers, &ha.tls())
        .await
        .expect("connects");
    assert_eq!(client.server().await, servers[0]);
    let list = client
        .list(Kind::ConfigMap, Some("default"), "")
        .await
        .expect("lists");
    let filter = WatchFilter {
        kinds: vec![Kind::ConfigMap],
        namespace: Some("default".into()),
        from_revision: list.revision + 1,
        ..WatchFilter::default()
    };
    let mut events = client.watch(&filter).await.expect("watches");
    let other = ha.cps[2].client().await.expect("a client of the third");
    let apply = |name: &'static str| {
        let other = other.clone();
        async move {
            let object: Object = serde_yaml_ng::from_str(&config_map(name)).expect("a manifest");
            other.apply(&[object], false).await.expect("applies");
        }
    };
    apply("before-stop").await;
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event")
        .expect("open")
        .expect("no error");
    assert_eq!(first.object.metadata().name(), "before-stop");

    let _stopped = Stopped::stop(&ha.cps[1]);
    let stopped_at = Instant::now();
    apply("while-stopped").await;
    let next = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("the watch moved on")
        .expect("open")
        .expect("no error");
    let took = stopped_at.elapsed();
    assert_eq!(next.object.metadata().name(), "while-stopped");
    assert!(
        took < jotasu_api::client::DEAD_PEER_WITHIN + Duration::from_secs(4),
        "the dead server was noticed after {took:?}"
    );
    assert_eq!(client.server().await, servers[1]);
    // Reads go on through the next server at once.
    let r = ObjectRef {
        kind: Kind::ConfigMap,
        namespace: Some("default".into()),
        name: "while-stopped".into(),
    };
    let started = Instant::now();
    client.get(&r).await.expect("reads");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_client_learns_the_published_control_planes() {
    let Some(mut ha) = Ha::start().await else {
        return;
    };
    let admin = ha.cps[0].client().await.expect("admin on the socket");
    let port = |i: usize| {
        ha.url(i)
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .expect("a port")
    };
    // As Kubernetes: a Service without a selector, its Endpoints by hand
    // (the endpoints controller removes Endpoints whose Service is gone).
    let endpoints = format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: kubernetes\n  namespace: default\nsubsets:\n- addresses: [{{ip: 127.0.0.1}}]\n  ports: [{{name: https, port: {}}}]\n- addresses: [{{ip: 127.0.0.1}}]\n  ports: [{{name: https, port: {}}}]\n",
        port(1),
        port(2)
    );
    let service: Object = serde_yaml_ng::from_str(KUBERNETES_SERVICE).expect("a manifest");
    let object: Object = serde_yaml_ng::from_str(&endpoints).expect("a manifest");
    admin
        .apply(&[service, object], false)
        .await
        .expect("published");

    let first = ServerUrl::parse(&ha.url(0)).expect("a URL");
    let client = Client::connect_to(&first, &ha.tls())
        .await
        .expect("connects");
    client.list(Kind::Namespace, None, "").await.expect("reads");
    let known: Vec<String> = client
        .servers()
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(known, [ha.url(0), ha.url(1), ha.url(2)]);

    ha.cps[0].kill9().expect("killed");
    let list = client
        .list(Kind::Namespace, None, "")
        .await
        .expect("reads through a published server");
    assert!(!list.items.is_empty());
    assert_eq!(client.server().await.to_string(), ha.url(1));

    // Missing or unreadable Endpoints: the configured list, silently.
    let other = ha.cps[1].client().await.expect("admin on the socket");
    other
        .delete(
            &ObjectRef {
                kind: Kind::Endpoints,
                namespace: Some("default".into()),
                name: "kubernetes".into(),
            },
            None,
        )
        .await
        .expect("deleted");
    let second = ServerUrl::parse(&ha.url(1)).expect("a URL");
    let client = Client::connect_to(&second, &ha.tls())
        .await
        .expect("connects");
    client.list(Kind::Namespace, None, "").await.expect("reads");
    assert_eq!(client.servers().await, [second]);
}
