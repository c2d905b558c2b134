//! The files the kubelet writes for each pod and bind-mounts into its
//! containers: `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`.

use std::fmt::Write as _;
use std::net::IpAddr;

use jotasu_api::Pod;

/// Longest hostname (a DNS label).
const MAX_HOSTNAME: usize = 63;

/// The pod's hostname: its name, cut to 63 characters without a trailing
/// `-` or `.` (the kubelet's `truncateHostname`).
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod.metadata.name();
    let cut = name
        .char_indices()
        .nth(MAX_HOSTNAME)
        .map_or(name, |(i, _)| &name[..i]);
    if cut.len() < name.len() {
        cut.trim_end_matches(['-', '.']).to_owned()
    } else {
        cut.to_owned()
    }
}

/// The kubelet-managed `/etc/hosts`: the loopback and IPv6 names, then the
/// pod's IP with its hostname (when it has an IP).
pub fn hosts_file(pod_ip: Option<IpAddr>, hostname: &str) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = pod_ip {
        let _ = writeln!(s, "{ip}\t{hostname}");
    }
    s
}

/// `/etc/resolv.conf` for the `ClusterFirst` DNS policy: the cluster DNS
/// server, the namespace's, the services' and the cluster's search domains,
/// `ndots:5`.
pub fn resolv_conf(nameserver: IpAddr, namespace: &str, cluster_domain: &str) -> String {
    format!(
        "search {namespace}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}\n\
         nameserver {nameserver}\n\
         options ndots:5\n"
    )
}

/// `/etc/hostname`: the hostname and a newline.
pub fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use jotasu_api::meta::ObjectMeta;

    use super::*;

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta::named(name),
            ..Pod::default()
        }
    }

    #[test]
    fn hostname_is_the_pod_name_cut_to_a_label() {
        assert_eq!(pod_hostname(&pod("web-7d4b9c-x2x")), "web-7d4b9c-x2x");
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(pod_hostname(&pod(&long)), "a".repeat(62));
        let exact = "c".repeat(63);
        assert_eq!(pod_hostname(&pod(&exact)), exact);
    }

    #[test]
    fn hosts_file_lists_the_pod() {
        let h = hosts_file(Some(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 5))), "web");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            h.ends_with("fe00::2\tip6-allrouters\n10.244.1.5\tweb\n"),
            "{h}"
        );
        assert!(!hosts_file(None, "web").contains("web"));
    }

    #[test]
    fn resolv_conf_is_cluster_first() {
        let r = resolv_conf(
            IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
            "shop",
            "cluster.local",
        );
        assert_eq!(
            r,
            "search shop.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert_eq!(hostname_file("web"), "web\n");
    }
}
