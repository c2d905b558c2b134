//! Tests of the index: every record kind the specification names, from
//! Services, Endpoints and Nodes as the watch delivers them.

use super::*;
use jotasu_api::Node;
use serde_json::{Value, json};

pub(crate) const DOMAIN: &str = "cluster.local";

fn service(ns: &str, name: &str, cluster_ip: &str, ports: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": cluster_ip, "ports": ports},
    }))
    .expect("service")
}

fn endpoints(ns: &str, name: &str, subsets: Value) -> Endpoints {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "subsets": subsets,
    }))
    .expect("endpoints")
}

fn node(name: &str, cidr: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr},
    }))
    .expect("node")
}

/// A view with a ClusterIP Service (`web`, two named ports and one
/// unnamed), a headless one (`db`: two ready endpoints, one with a
/// hostname, and one not ready) and two nodes' pod CIDRs.
pub(crate) fn view() -> ClusterView {
    let mut v = ClusterView::default();
    let web = service(
        "shop",
        "web",
        "10.96.0.10",
        json!([
            {"name": "http", "port": 80},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]),
    );
    let db = service("shop", "db", "None", json!([{"name": "pg", "port": 5432}]));
    let db_eps = endpoints(
        "shop",
        "db",
        json!([{
            "addresses": [{"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.2.7"}],
            "notReadyAddresses": [{"ip": "10.244.1.9", "hostname": "db-9"}],
            "ports": [{"name": "pg", "port": 5433}],
        }]),
    );
    let key = |n: &str| ("shop".to_owned(), n.to_owned());
    v.services.insert(key("web"), web);
    v.services.insert(key("db"), db);
    v.endpoints.insert(key("db"), db_eps);
    v.nodes.insert("a".into(), node("a", "10.244.1.0/24"));
    v.nodes.insert("b".into(), node("b", "10.244.2.0/24"));
    v
}

pub(crate) fn index() -> DnsIndex {
    DnsIndex::build(&view(), DOMAIN, "10.96.0.0/12".parse().ok())
}

fn found(index: &DnsIndex, name: &str) -> Vec<Rdata> {
    match index.lookup(name) {
        Lookup::Found(r) => r,
        other => panic!("{name}: {other:?}"),
    }
}

fn a(ip: &str) -> Rdata {
    Rdata::A(ip.parse().expect("ip"))
}

fn srv(port: u16, target: &str) -> Rdata {
    Rdata::Srv {
        port,
        target: target.into(),
    }
}

#[test]
fn cluster_ip_service_has_a_srv_per_named_port_and_ptr() {
    let i = index();
    assert_eq!(found(&i, "web.shop.svc.cluster.local"), [a("10.96.0.10")]);
    let target = "web.shop.svc.cluster.local";
    assert_eq!(
        found(&i, "_http._tcp.web.shop.svc.cluster.local"),
        [srv(80, target)]
    );
    assert_eq!(
        found(&i, "_dns._udp.web.shop.svc.cluster.local"),
        [srv(53, target)]
    );
    assert_eq!(
        i.lookup("_dns._tcp.web.shop.svc.cluster.local"),
        Lookup::NotFound
    );
    assert_eq!(
        found(&i, "10.0.96.10.in-addr.arpa"),
        [Rdata::Ptr(target.into())]
    );
}

#[test]
fn headless_service_answers_its_ready_endpoints() {
    let i = index();
    let fqdn = "db.shop.svc.cluster.local";
    assert_eq!(found(&i, fqdn), [a("10.244.1.5"), a("10.244.2.7")]);
    assert_eq!(
        found(&i, "db-0.db.shop.svc.cluster.local"),
        [a("10.244.1.5")]
    );
    // No hostname: the dashed address names the endpoint (the SRV target).
    assert_eq!(
        found(&i, "10-244-2-7.db.shop.svc.cluster.local"),
        [a("10.244.2.7")]
    );
    // Not ready: no records at all.
    assert_eq!(i.lookup("db-9.db.shop.svc.cluster.local"), Lookup::NotFound);
    assert_eq!(
        found(&i, "_pg._tcp.db.shop.svc.cluster.local"),
        [
            srv(5433, "10-244-2-7.db.shop.svc.cluster.local"),
            srv(5433, "db-0.db.shop.svc.cluster.local"),
        ]
    );
    // PTR only for endpoints with a hostname; the other is in a pod CIDR.
    assert_eq!(
        found(&i, "5.1.244.10.in-addr.arpa"),
        [Rdata::Ptr("db-0.db.shop.svc.cluster.local".into())]
    );
    assert_eq!(i.lookup("7.2.244.10.in-addr.arpa"), Lookup::NotFound);
}

#[test]
fn terminating_endpoints_are_never_handed_out() {
    // Every endpoint of db is terminating, and 10.244.1.5 still serves: the
    // data plane may send it flows, the DNS names it no more.
    let mut v = view();
    let key = ("shop".to_owned(), "db".to_owned());
    v.terminating
        .insert(key, ["10.244.1.5".to_owned()].into_iter().collect());
    let i = DnsIndex::build(&v, DOMAIN, None);
    assert_eq!(found(&i, "db.shop.svc.cluster.local"), [a("10.244.2.7")]);
    assert_eq!(i.lookup("db-0.db.shop.svc.cluster.local"), Lookup::NotFound);
}

#[test]
fn headless_service_without_endpoints_exists_with_no_records() {
    let mut v = view();
    v.endpoints.clear();
    let i = DnsIndex::build(&v, DOMAIN, None);
    assert_eq!(found(&i, "db.shop.svc.cluster.local"), []);
}

#[test]
fn names_are_case_insensitive_with_or_without_the_dot() {
    let i = index();
    assert_eq!(found(&i, "WEB.Shop.SVC.cluster.LOCAL."), [a("10.96.0.10")]);
    let upper = DnsIndex::build(&view(), "Cluster.Local.", None);
    assert_eq!(upper.domain(), "cluster.local");
    assert_eq!(
        found(&upper, "web.shop.svc.cluster.local"),
        [a("10.96.0.10")]
    );
}

#[test]
fn pod_names_answer_inside_the_pod_cidrs_only() {
    let i = index();
    assert_eq!(
        found(&i, "10-244-1-33.any.pod.cluster.local"),
        [a("10.244.1.33")]
    );
    for name in [
        "10-244-9-1.any.pod.cluster.local",   // outside the CIDRs
        "10-244-01-3.any.pod.cluster.local",  // leading zero
        "10-244-1-3-4.any.pod.cluster.local", // five octets
        "10-244-1-256.any.pod.cluster.local", // not an octet
        "10-244-1-3.a.b.pod.cluster.local",   // two namespace labels
        "10-244-1-3.pod.cluster.local",       // no namespace
    ] {
        assert_eq!(i.lookup(name), Lookup::NotFound, "{name}");
    }
}

#[test]
fn schema_version_and_empty_non_terminals() {
    let i = index();
    assert_eq!(
        found(&i, "dns-version.cluster.local"),
        [Rdata::Txt("1.1.0".into())]
    );
    for name in [
        "cluster.local",
        "svc.cluster.local",
        "pod.cluster.local",
        "shop.svc.cluster.local",
        "_tcp.web.shop.svc.cluster.local",
    ] {
        assert_eq!(found(&i, name), [], "{name}");
    }
    assert_eq!(i.lookup("other.svc.cluster.local"), Lookup::NotFound);
    assert_eq!(i.lookup("x.web.shop.svc.cluster.local"), Lookup::NotFound);
}

#[test]
fn zones_decide_what_is_ours() {
    let i = index();
    assert_eq!(i.lookup("example.com"), Lookup::Outside);
    assert_eq!(i.lookup("notcluster.local"), Lookup::Outside);
    // Reverse names: ours for known addresses and inside the ranges.
    assert_eq!(i.lookup("8.8.8.8.in-addr.arpa"), Lookup::Outside);
    assert_eq!(i.lookup("1.0.97.10.in-addr.arpa"), Lookup::NotFound);
    assert_eq!(i.lookup("96.10.in-addr.arpa"), Lookup::Outside);
    assert_eq!(i.lookup("in-addr.arpa"), Lookup::Outside);
    assert_eq!(
        i.zone_of("web.shop.svc.cluster.local"),
        Some("cluster.local")
    );
    assert_eq!(i.zone_of("5.1.244.10.in-addr.arpa"), Some(REVERSE_ZONE));
    // Without a service CIDR, only known ClusterIPs are ours.
    let bare = DnsIndex::build(&view(), DOMAIN, None);
    assert_eq!(bare.lookup("1.0.97.10.in-addr.arpa"), Lookup::Outside);
    assert!(matches!(
        bare.lookup("10.0.96.10.in-addr.arpa"),
        Lookup::Found(_)
    ));
}

#[test]
fn external_names_are_aliases() {
    let mut i = index();
    i.add_external_name("shop", "pay", "API.Example.com.");
    assert_eq!(
        found(&i, "pay.shop.svc.cluster.local"),
        [Rdata::Cname("api.example.com".into())]
    );
}

#[test]
fn external_name_services_are_built_as_aliases() {
    let mut v = view();
    let alias = |spec: Value| -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "pay", "namespace": "shop"}, "spec": spec}),
        )
        .expect("service")
    };
    let key = ("shop".to_owned(), "pay".to_owned());
    // A leftover address and ports do not make it an A record or SRV.
    v.services.insert(
        key.clone(),
        alias(
            json!({"type": "ExternalName", "externalName": "api.example.com.",
            "clusterIP": "10.96.0.44", "ports": [{"name": "https", "port": 443}]}),
        ),
    );
    let i = DnsIndex::build(&v, DOMAIN, None);
    assert_eq!(
        found(&i, "pay.shop.svc.cluster.local"),
        [Rdata::Cname("api.example.com".into())]
    );
    assert_eq!(
        i.lookup("_https._tcp.pay.shop.svc.cluster.local"),
        Lookup::NotFound
    );
    assert_eq!(i.lookup("44.0.96.10.in-addr.arpa"), Lookup::Outside);
    // Without its external name (invalid, but stored objects are not
    // trusted), an ExternalName Service is no name at all.
    v.services
        .insert(key, alias(json!({"type": "ExternalName"})));
    let i = DnsIndex::build(&v, DOMAIN, None);
    assert_eq!(i.lookup("pay.shop.svc.cluster.local"), Lookup::NotFound);
}

#[test]
fn odd_objects_are_skipped() {
    let mut v = view();
    let key = ("shop".to_owned(), "pending".to_owned());
    v.services.insert(
        key,
        service("shop", "pending", "", json!([{"name": "x", "port": 80}])),
    );
    let mut nameless = service("shop", "x", "10.96.0.1", json!([]));
    nameless.metadata.name = None;
    v.services.insert(("shop".into(), "x".into()), nameless);
    let eps = endpoints(
        "shop",
        "db",
        json!([{"addresses": [{"ip": "fd00::1"}, {"ip": "bogus"}], "ports": [{"port": 1}]}]),
    );
    v.endpoints.insert(("shop".into(), "db".into()), eps);
    let i = DnsIndex::build(&v, DOMAIN, None);
    // Not allocated yet: the name exists without an address.
    assert_eq!(found(&i, "pending.shop.svc.cluster.local"), []);
    assert_eq!(found(&i, "db.shop.svc.cluster.local"), []);
    assert_eq!(i.lookup("x.shop.svc.cluster.local"), Lookup::NotFound);
}

#[test]
fn reverse_names_round_trip() {
    let ip = "10.1.2.3".parse().expect("ip");
    assert_eq!(reverse_name(ip), "3.2.1.10.in-addr.arpa");
    assert_eq!(parse_reverse("3.2.1.10.in-addr.arpa"), Some(ip));
    for bad in [
        "3.2.1.in-addr.arpa",
        "03.2.1.10.in-addr.arpa",
        "3.2.1.10.11.in-addr.arpa",
        "x.2.1.10.in-addr.arpa",
        "3.2.1.10in-addr.arpa",
    ] {
        assert_eq!(parse_reverse(bad), None, "{bad}");
    }
}

#[test]
fn the_fast_path_gets_the_names_with_one_a_record_and_nothing_else() {
    let names = index().single_a_names();
    let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec![
            (
                "10-244-2-7.db.shop.svc.cluster.local".to_owned(),
                ip("10.244.2.7")
            ),
            (
                "db-0.db.shop.svc.cluster.local".to_owned(),
                ip("10.244.1.5")
            ),
            ("web.shop.svc.cluster.local".to_owned(), ip("10.96.0.10")),
        ],
        "not the headless name with two addresses, nor SRV, PTR or TXT names"
    );
}
