//! `jotactl` end to end: the real binary against a real
//! `jotasu-controlplane` process, asserting on the lines kubectl users and
//! their scripts rely on (outcomes, tables, error messages, exit codes).
//! Needs `cargo build -p jotasu-ctl -p jotasu-controlplane --bins`.
use std::path::{Path, PathBuf};

use jotasu_tests::controlplane::{ControlPlane, Options};
use jotasu_tests::jotactl::Ctl;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/tests/manifests")
}

/// Asserts `text` contains every one of `wants`.
fn has_all(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Every object of the manifest corpus as apply names it.
const CORPUS: &[&str] = &[
    "configmap/app-config",
    "configmap/game-demo",
    "daemonset.apps/fluentd-elasticsearch",
    "deployment.apps/app",
    "deployment.apps/frontend",
    "deployment.apps/nginx-deployment",
    "deployment.apps/php-apache",
    "deployment.apps/redis-follower",
    "deployment.apps/redis-leader",
    "endpoints/redis-leader",
    "horizontalpodautoscaler.autoscaling/php-apache",
    "namespace/games",
    "node/node-1",
    "pod/configmap-demo-pod",
    "secret/db-credentials",
    "secret/tls",
    "service/app",
    "service/frontend",
    "service/nginx",
    "service/php-apache",
    "service/redis-follower",
    "service/redis-leader",
];

fn outcomes(word: &str) -> Vec<String> {
    CORPUS.iter().map(|o| format!("{o} {word}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_corpus_get_and_describe() {
    // The API alone: the corpus carries a hand-written Endpoints for a
    // Service with a selector, which the endpoints controller would own
    // (as in Kubernetes), so re-applying it would not stay "unchanged".
    let cp = ControlPlane::start(Options {
        args: vec!["--no-controllers".into()],
        ..Options::default()
    })
    .await
    .expect("control plane");
    let ctl = Ctl::new();
    let url = cp.url();
    let dir = corpus();
    let dir = dir.to_str().expect("utf-8 path");

    // Apply the directory: created, then unchanged.
    let run = ctl.at(&url, &["apply", "-f", dir]);
    assert_eq!(sorted_lines(run.ok()), outcomes("created"));
    assert_eq!(run.stderr, "");
    let run = ctl.at(&url, &["apply", "-f", dir]);
    assert_eq!(sorted_lines(run.ok()), outcomes("unchanged"));

    // An edit: the changed object is configured, the rest unchanged.
    let edited = tempfile::tempdir().expect("tempdir");
    let nginx = std::fs::read_to_string(corpus().join("nginx.yaml")).expect("nginx.yaml");
    assert!(nginx.contains("replicas: 3"));
    let path = edited.path().join("nginx.yaml");
    std::fs::write(&path, nginx.replace("replicas: 3", "replicas: 4")).expect("write");
    let path = path.to_str().expect("utf-8 path");
    assert_eq!(
        ctl.at(&url, &["apply", "-f", path]).ok(),
        "deployment.apps/nginx-deployment configured\nservice/nginx unchanged\n"
    );

    // Tables.
    let table = ctl.at(&url, &["get", "deployments", "nginx-deployment"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert_eq!(lines.len(), 2, "{table:#?}");
    assert_eq!(
        lines[0],
        "NAME               READY   UP-TO-DATE   AVAILABLE   AGE"
    );
    assert!(
        lines[1].starts_with("nginx-deployment   0/4     0            0           "),
        "{table:#?}"
    );
    let wide = ctl.at(&url, &["get", "deploy/nginx-deployment", "-o", "wide"]);
    assert!(
        wide.ok()
            .lines()
            .next()
            .is_some_and(|h| h.ends_with("AGE   CONTAINERS   IMAGES         SELECTOR")),
        "{wide:#?}"
    );
    assert!(
        wide.ok()
            .contains("nginx        nginx:1.14.2   app=nginx,tier!=db,!legacy\n"),
        "{wide:#?}"
    );
    let svc = ctl.at(&url, &["get", "svc", "nginx", "--no-headers"]);
    let cells: Vec<&str> = svc.ok().split_whitespace().collect();
    assert_eq!(cells[..2], ["nginx", "NodePort"], "{svc:#?}");
    // The control plane gave the NodePort Service a node port from the range.
    let (port, node_port) = cells[4]
        .strip_suffix("/TCP")
        .and_then(|p| p.split_once(':'))
        .unwrap_or_else(|| panic!("PORT(S) is 80:<node port>/TCP: {svc:#?}"));
    assert_eq!(port, "80");
    let node_port: u16 = node_port.parse().expect("a port number");
    assert!((30000..=32767).contains(&node_port), "{svc:#?}");

    // -A: a NAMESPACE column and every namespace, sorted.
    let all = ctl.at(&url, &["get", "configmaps", "-A"]);
    let lines: Vec<Vec<&str>> = all
        .ok()
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAMESPACE", "NAME", "DATA", "AGE"]);
    assert_eq!(lines[1][..3], ["default", "app-config", "1"]);
    assert_eq!(lines[2][..3], ["games", "game-demo", "5"]);
    assert_eq!(lines.len(), 3);
    // -n, and a namespace with nothing in it.
    let pods = ctl.at(&url, &["get", "pods", "-n", "games"]);
    assert!(
        pods.ok()
            .contains("\nconfigmap-demo-pod   0/1     Pending   0          ")
    );
    let empty = ctl.at(&url, &["get", "pods", "-n", "empty"]);
    assert_eq!(empty.ok(), "");
    assert_eq!(empty.stderr, "No resources found in empty namespace.\n");
    let empty = ctl.at(&url, &["get", "pods", "-l", "app=nothing", "-A"]);
    assert_eq!(empty.ok(), "");
    assert_eq!(empty.stderr, "No resources found\n");

    // -l and -o name.
    assert_eq!(
        ctl.at(&url, &["get", "deploy", "-l", "app=redis", "-o", "name"])
            .ok(),
        "deployment.apps/redis-follower\ndeployment.apps/redis-leader\n"
    );
    assert_eq!(
        ctl.at(
            &url,
            &["get", "deploy/frontend", "svc/frontend", "-o", "name"]
        )
        .ok(),
        "deployment.apps/frontend\nservice/frontend\n"
    );

    // -o yaml of one named object is the object, with the server's
    // fields, and reads back as a manifest.
    let yaml = ctl.at(&url, &["get", "deploy", "nginx-deployment", "-o", "yaml"]);
    let text = yaml.ok();
    assert!(
        text.starts_with(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nginx-deployment\n"
        ),
        "{text}"
    );
    let server_fields = [
        "\n  uid: ",
        "\n  creationTimestamp: ",
        "\n  generation: 2\n",
    ];
    has_all(text, &server_fields);
    has_all(text, &["\n  replicas: 4\n"]);
    let loaded = jotasu_api::load_manifest("out.yaml", text, jotasu_api::ParseOptions::default())
        .expect("jotactl's YAML reads back as a manifest");
    assert_eq!(loaded.objects.len(), 1);
    assert_eq!(
        ctl.at(&url, &["get", "deploy", "-o", "yaml", "-l", "app=nginx"])
            .ok()
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
            .collect::<Vec<_>>(),
        ["apiVersion: v1", "items:", "kind: List", "metadata:"],
        "a listing is a List"
    );
    // -o json of a listing is a List, sorted by name.
    let json = ctl.at(&url, &["get", "services", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.ok()).expect("json");
    assert_eq!(v["kind"], "List");
    let names: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "app",
            "frontend",
            "nginx",
            "php-apache",
            "redis-follower",
            "redis-leader"
        ]
    );

    // Not found: kubectl's message, exit 1, the found ones still printed.
    let missing = ctl.at(&url, &["get", "deployment", "nope"]);
    assert_eq!(
        missing.failed(),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    assert_eq!(missing.stdout, "");
    let some = ctl.at(&url, &["get", "deploy", "frontend", "nope", "-o", "name"]);
    assert!(
        some.failed()
            .contains("deployments.apps \"nope\" not found")
    );
    assert_eq!(some.stdout, "deployment.apps/frontend\n");
    let bad_kind = ctl.at(&url, &["get", "ingresses"]);
    assert_eq!(
        bad_kind.failed(),
        "error: the server doesn't have a resource type \"ingresses\"\n"
    );

    // Describe.
    let page = ctl.at(&url, &["describe", "deployment", "nginx-deployment"]);
    has_all(
        page.ok(),
        &[
            "Name:                   nginx-deployment\n",
            "Namespace:              default\n",
            "Selector:               app=nginx,tier!=db,!legacy\n",
            "Replicas:               4 desired | 0 updated | 0 total | 0 available | 0 unavailable\n",
            "StrategyType:           RollingUpdate\n",
            "RollingUpdateStrategy:  0 max unavailable, 1 max surge\n",
            "Pod Template:\n",
            "      Image:  nginx:1.14.2\n",
        ],
    );
    let page = ctl.at(&url, &["describe", "svc", "redis-leader"]);
    has_all(page.ok(), &["Endpoints:         10.244.1.5:6379\n"]);
    let page = ctl.at(&url, &["describe", "svc/nginx"]);
    has_all(
        page.ok(),
        &[
            "Endpoints:                <none>\n",
            "External Traffic Policy:  Cluster\n",
        ],
    );
    let page = ctl.at(
        &url,
        &["-n", "games", "describe", "secret", "db-credentials"],
    );
    let text = page.ok();
    has_all(text, &["password:   12 bytes\n", "api-token:  9 bytes\n"]);
    assert!(
        !text.contains("1f2d1e2e67df") && !text.contains("t0ps3cret"),
        "{text}"
    );
    // A name prefix describes every match, as kubectl does.
    let page = ctl.at(&url, &["describe", "deploy", "redis"]);
    let names = [
        "Name:                   redis-follower\n",
        "Name:                   redis-leader\n",
    ];
    has_all(page.ok(), &names);
    let page = ctl.at(&url, &["describe", "deploy", "nope"]);
    assert_eq!(
        page.failed(),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
}

const CM_STDIN: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-stdin\ndata:\n  k: v\n";

#[tokio::test(flavor = "multi_thread")]
async fn stdin_bad_manifests_namespaces_and_dry_run() {
    let cp = ControlPlane::start(Options::default())
        .await
        .expect("control plane");
    let ctl = Ctl::new();
    let url = cp.url();

    let run = ctl.pipe(&url, &["apply", "-f", "-"], CM_STDIN);
    assert_eq!(run.ok(), "configmap/from-stdin created\n");

    // One good and two bad files: every problem shown, nothing written.
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write manifest");
    };
    write(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\ndata:\n  k: v\n",
    );
    write(
        "b.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\nspec:\n  replicas: three\n",
    );
    write(
        "c.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\nbogus: 1\n",
    );
    let d = dir.path().to_str().expect("utf-8 path");
    let bad = ctl.at(&url, &["apply", "-f", d]);
    let err = bad.failed();
    assert_eq!(bad.stdout, "");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "error: {d}/b.yaml: document 1 (Deployment broken): spec.replicas: invalid type: string \"three\""
        )),
        "{err}"
    );
    assert_eq!(
        lines[1],
        format!("error: {d}/c.yaml: document 1 (ConfigMap other): bogus: unknown field `bogus`")
    );
    assert_eq!(
        ctl.at(&url, &["get", "configmap", "fine"]).failed(),
        "Error from server (NotFound): configmaps \"fine\" not found\n"
    );
    assert_eq!(
        ctl.at(&url, &["apply", "-f", &format!("{d}/missing.yaml")])
            .failed(),
        format!("error: the path \"{d}/missing.yaml\" does not exist\n")
    );
    assert_eq!(
        ctl.pipe(&url, &["apply", "-f", "-"], "").failed(),
        "error: no objects passed to apply\n"
    );

    // -n: objects without a namespace land there; another namespace is refused.
    let in_a = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: a\n";
    let run = ctl.pipe(&url, &["-n", "b", "apply", "-f", "-"], in_a);
    assert_eq!(
        run.failed(),
        "error: STDIN: document 1 (ConfigMap x): the namespace from the provided object \"a\" does not match the namespace \"b\". You must pass '--namespace=a' to perform this operation.\n"
    );
    // A namespace must exist before anything is created in it.
    let run = ctl.pipe(&url, &["apply", "-n", "team", "-f", "-"], CM_STDIN);
    assert_eq!(
        run.failed(),
        "Error from server (NotFound): namespaces \"team\" not found\n"
    );
    let team = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n";
    assert_eq!(
        ctl.pipe(&url, &["apply", "-f", "-"], team).ok(),
        "namespace/team created\n"
    );
    let run = ctl.pipe(&url, &["apply", "-n", "team", "-f", "-"], CM_STDIN);
    assert_eq!(run.ok(), "configmap/from-stdin created\n");
    assert_eq!(
        ctl.at(&url, &["get", "cm", "-n", "team", "-o", "name"])
            .ok(),
        "configmap/from-stdin\n"
    );

    // Dry runs report and write nothing.
    let dry = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n";
    for (flag, suffix) in [
        ("--dry-run=server", "(server dry run)"),
        ("--dry-run", "(dry run)"),
    ] {
        let run = ctl.pipe(&url, &["apply", flag, "-f", "-"], dry);
        assert_eq!(run.ok(), format!("configmap/dry created {suffix}\n"));
    }
    assert_eq!(ctl.at(&url, &["get", "cm", "dry"]).code, 1);
}

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_and_cascading_delete() {
    let cp = ControlPlane::start(Options::default())
        .await
        .expect("control plane");
    let ctl = Ctl::new();
    let url = cp.url();
    let apply = |text: &str| ctl.pipe(&url, &["apply", "-f", "-"], text);
    assert_eq!(
        apply(&deployment("web")).ok(),
        "deployment.apps/web created\n"
    );

    assert_eq!(
        ctl.at(&url, &["scale", "deployment", "web", "--replicas=3"])
            .ok(),
        "deployment.apps/web scaled\n"
    );
    let json = ctl.at(&url, &["get", "deploy/web", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.ok()).expect("json");
    assert_eq!(v["spec"]["replicas"], 3);
    assert_eq!(
        ctl.at(&url, &["scale", "deploy/web", "--replicas", "0"])
            .ok(),
        "deployment.apps/web scaled\n"
    );
    let svc =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";
    apply(svc).ok();
    let refused = ctl.at(&url, &["scale", "svc/web", "--replicas=2"]);
    assert!(
        refused
            .failed()
            .starts_with("Error from server (Invalid): ")
            && refused.stderr.contains("cannot be scaled"),
        "{refused:#?}"
    );
    assert!(
        ctl.at(&url, &["scale", "deploy", "nope", "--replicas=2"])
            .failed()
            .contains("deployments.apps \"nope\" not found")
    );

    // A ConfigMap owned by the Deployment goes with it; only the named
    // object is printed.
    let uid = v["metadata"]["uid"].as_str().expect("uid").to_owned();
    let owned = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    uid: {uid}\ndata:\n  k: v\n"
    );
    assert_eq!(apply(&owned).ok(), "configmap/owned created\n");
    assert_eq!(
        ctl.at(&url, &["delete", "deployment", "web"]).ok(),
        "deployment.apps \"web\" deleted\n"
    );
    assert_eq!(
        ctl.at(&url, &["get", "configmap", "owned"]).failed(),
        "Error from server (NotFound): configmaps \"owned\" not found\n"
    );
    let again = ctl.at(&url, &["delete", "deploy/web", "svc/web"]);
    assert_eq!(
        again.failed(),
        "Error from server (NotFound): deployments.apps \"web\" not found\n"
    );
    assert_eq!(
        again.stdout, "service \"web\" deleted\n",
        "the others are still deleted"
    );
    assert_eq!(
        ctl.at(&url, &["delete", "deploy", "web", "--ignore-not-found"])
            .ok(),
        ""
    );

    // delete -f, -l and --all.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("two.yaml");
    std::fs::write(
        &file,
        format!("{}---\n{}", deployment("a"), deployment("b")),
    )
    .expect("write");
    let file = file.to_str().expect("utf-8 path");
    ctl.at(&url, &["apply", "-f", file]).ok();
    assert_eq!(
        ctl.at(&url, &["delete", "-f", file]).ok(),
        "deployment.apps \"a\" deleted\ndeployment.apps \"b\" deleted\n"
    );
    ctl.at(&url, &["apply", "-f", file]).ok();
    assert_eq!(
        ctl.at(&url, &["delete", "deploy", "-l", "app=a"]).ok(),
        "",
        "labels are on the template, not the Deployment"
    );
    assert_eq!(
        ctl.at(&url, &["delete", "deployments", "--all"]).ok(),
        "deployment.apps \"a\" deleted\ndeployment.apps \"b\" deleted\n"
    );
    let none = ctl.at(&url, &["delete", "deployments", "--all"]);
    assert_eq!(none.ok(), "");
    assert_eq!(none.stderr, "No resources found\n");
    assert!(
        ctl.at(&url, &["delete", "deployments"])
            .failed()
            .contains("no name was specified")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_from_flag_env_and_context_file() {
    let cp = ControlPlane::start(Options::default())
        .await
        .expect("control plane");
    let ctl = Ctl::new();
    let url = cp.url();
    ctl.pipe(&url, &["apply", "-f", "-"], CM_STDIN).ok();
    let want = "configmap/from-stdin\n";

    // JOTASU_SERVER.
    let run = ctl.run_with(
        &[("JOTASU_SERVER", &url)],
        &["get", "cm", "-o", "name"],
        None,
    );
    assert_eq!(run.ok(), want);
    // The control plane's admin.conf as the context file, by env and by flag.
    let admin = cp.data_dir().join("admin.conf");
    let admin = admin.to_str().expect("utf-8 path");
    let run = ctl.run_with(
        &[("JOTASU_CONFIG", admin)],
        &["get", "cm", "-o", "name"],
        None,
    );
    assert_eq!(run.ok(), want);
    let run = ctl.run(&[
        "--config",
        admin,
        "--context",
        "local",
        "get",
        "cm",
        "-o",
        "name",
    ]);
    assert_eq!(run.ok(), want);
    let run = ctl.run(&["--config", admin, "--context", "nope", "get", "cm"]);
    assert!(
        run.failed().contains("no context named \"nope\""),
        "{run:#?}"
    );
    let run = ctl.run(&["--config", admin, "config", "get-contexts"]);
    assert!(
        run.ok()
            .starts_with("CURRENT   NAME    SERVER\n*         local   unix://"),
        "{run:#?}"
    );

    // Nowhere to go.
    let run = ctl.run(&["get", "pods"]);
    assert!(
        run.failed()
            .starts_with("error: no server given: pass --server URL"),
        "{run:#?}"
    );
    let gone = cp.data_dir().join("nope.sock");
    let gone = format!("unix://{}", gone.display());
    let run = ctl.at(&gone, &["get", "pods"]);
    assert!(
        run.failed()
            .starts_with(&format!("The connection to the server {gone} was refused")),
        "{run:#?}"
    );
    let run = ctl.at("http://127.0.0.1:1", &["get", "pods"]);
    assert!(
        run.failed().starts_with("error: invalid server URL"),
        "{run:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_client_certificates() {
    let cp = ControlPlane::start(Options {
        tls: true,
        ..Options::default()
    })
    .await
    .expect("control plane with TLS");
    let ctl = Ctl::new();
    let url = cp.tls_url().expect("tls url");
    let tls = cp.admin_tls();
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .expect("admin TLS file")
            .to_str()
            .expect("utf-8 path")
            .to_owned()
    };
    let (ca, cert, key) = (
        path(&tls.certificate_authority),
        path(&tls.client_certificate),
        path(&tls.client_key),
    );
    let with_cert = [
        "--server",
        url.as_str(),
        "--certificate-authority",
        ca.as_str(),
        "--client-certificate",
        cert.as_str(),
        "--client-key",
        key.as_str(),
    ];
    let args = |rest: &[&'static str]| {
        let mut a: Vec<&str> = with_cert.to_vec();
        a.extend_from_slice(rest);
        a
    };
    let run = ctl.run_with(&[], &args(&["apply", "-f", "-"]), Some(CM_STDIN));
    assert_eq!(run.ok(), "configmap/from-stdin created\n");
    let run = ctl.run(&args(&["get", "cm", "-o", "name"]));
    assert_eq!(run.ok(), "configmap/from-stdin\n");

    // The admin.conf `tls` context names the same files.
    let admin = cp.data_dir().join("admin.conf");
    let admin = admin.to_str().expect("utf-8 path");
    let run = ctl.run_with(
        &[("JOTASU_CONFIG", admin)],
        &["--context", "tls", "get", "cm", "-o", "name"],
        None,
    );
    assert_eq!(run.ok(), "configmap/from-stdin\n");

    // Without a client certificate the server refuses the connection.
    let run = ctl.run(&[
        "--server",
        &url,
        "--certificate-authority",
        &ca,
        "get",
        "cm",
    ]);
    let err = run.failed();
    assert_eq!(run.stdout, "");
    assert!(err.contains("client certificate"), "{err}");
    // Without the CA, jotactl says what is missing.
    let run = ctl.run(&["--server", &url, "get", "cm"]);
    assert!(
        run.failed()
            .contains("a certificate authority (--certificate-authority) is needed"),
        "{run:#?}"
    );
}
