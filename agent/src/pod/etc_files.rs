//! The files the kubelet writes for each pod and bind-mounts into its
//! containers: `/etc/hosts` and `/etc/hostname` (`/etc/resolv.conf` is
//! [`crate::pod::dns`]'s).

use std::fmt::Write as _;
use std::net::IpAddr;

use jotasu_api::Pod;

/// Longest hostname (a DNS label).
const MAX_HOSTNAME: usize = 63;

/// The pod's hostname: `spec.hostname`, else its name, cut to 63
/// characters without a trailing `-` or `.` (the kubelet's
/// `truncateHostname`).
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .hostname
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name());
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

/// The pod's domain when it has a `subdomain`:
/// `SUBDOMAIN.NAMESPACE.svc.CLUSTER_DOMAIN` (the kubelet's
/// `GeneratePodHostNameAndDomain`).
pub fn pod_domain(pod: &Pod, cluster_domain: &str) -> Option<String> {
    let sub = pod.spec.subdomain.as_deref().filter(|s| !s.is_empty())?;
    Some(format!(
        "{sub}.{}.svc.{cluster_domain}",
        crate::pod::pod_namespace(pod)
    ))
}

/// The kubelet-managed `/etc/hosts`: the loopback and IPv6 names, then the
/// pod's IP (when it has one) with its hostname, as
/// `IP\tHOSTNAME.DOMAIN\tHOSTNAME` when the pod has a domain ([`pod_domain`]).
pub fn hosts_file(pod_ip: Option<IpAddr>, hostname: &str, domain: Option<&str>) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    match (pod_ip, domain) {
        (Some(ip), Some(domain)) => {
            let _ = writeln!(s, "{ip}\t{hostname}.{domain}\t{hostname}");
        }
        (Some(ip), None) => {
            let _ = writeln!(s, "{ip}\t{hostname}");
        }
        (None, _) => {}
    }
    s
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
        let h = hosts_file(Some(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 5))), "web", None);
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            h.ends_with("fe00::2\tip6-allrouters\n10.244.1.5\tweb\n"),
            "{h}"
        );
        assert!(!hosts_file(None, "web", None).contains("web"));
    }

    #[test]
    fn hostname_file_is_one_line() {
        assert_eq!(hostname_file("web"), "web\n");
    }

    #[test]
    fn hostname_and_subdomain_make_the_fqdn() {
        let mut p = pod("db-7d4b9c-x2x");
        p.metadata.namespace = Some("shop".into());
        assert_eq!(pod_domain(&p, "cluster.local"), None);
        p.spec.hostname = Some("db-0".into());
        assert_eq!(pod_hostname(&p), "db-0");
        p.spec.subdomain = Some("db".into());
        let domain = pod_domain(&p, "cluster.local");
        assert_eq!(domain.as_deref(), Some("db.shop.svc.cluster.local"));
        let h = hosts_file(
            Some(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 5))),
            &pod_hostname(&p),
            domain.as_deref(),
        );
        assert!(
            h.ends_with(
                "fe00::2\tip6-allrouters\n10.244.1.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n"
            ),
            "{h}"
        );
    }
}
