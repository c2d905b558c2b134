//! A pod's `/etc/resolv.conf`, made as the kubelet's `GetPodDNS` makes it:
//! a base from the pod's `dnsPolicy` (the cluster DNS server, the node's own
//! resolv.conf, or nothing), the pod's `dnsConfig` merged in, then cut to the
//! resolver's limits.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use jotasu_api::kinds::pod::{DnsPolicy, PodDnsConfig};

/// Nameservers a resolver uses (glibc's `MAXNS`); the rest are dropped.
pub const MAX_NAMESERVERS: usize = 3;
/// Search domains kept.
pub const MAX_SEARCHES: usize = 32;
/// Longest search line kept, spaces between domains included.
pub const MAX_SEARCH_LINE: usize = 2048;
/// Longest search domain kept (longer ones make some resolvers abort).
pub const MAX_SEARCH_DOMAIN: usize = 253;
/// The options of a `ClusterFirst` pod.
pub const CLUSTER_FIRST_OPTIONS: &[&str] = &["ndots:5"];

/// The resolver settings resolv.conf carries: `nameserver`, `search` and
/// `options` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// Nameserver addresses, in order.
    pub nameservers: Vec<String>,
    /// Search domains, in order.
    pub searches: Vec<String>,
    /// Options, `name` or `name:value`, one per name.
    pub options: Vec<String>,
}

/// The node's resolv.conf could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading the node's resolv.conf {path}: {source}")]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

impl ResolvConf {
    /// Parses resolv.conf text as the kubelet does: comment lines (`#`, `;`)
    /// skipped, every `nameserver` kept, the last `search` line wins (`.`
    /// dropped and trailing dots trimmed), `options` merged by name (the
    /// later wins). Other lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut conf = Self::default();
        for line in text.lines() {
            if line.starts_with(['#', ';']) {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => conf.nameservers.extend(fields.next().map(str::to_owned)),
                Some("search") => {
                    conf.searches = fields
                        .filter(|s| *s != ".")
                        .map(|s| s.strip_suffix('.').unwrap_or(s).to_owned())
                        .collect();
                }
                Some("options") => {
                    for o in fields {
                        set_option(&mut conf.options, o.to_owned());
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// Reads and parses `path`; a missing file is an empty configuration.
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ReadError {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The file, as containerd writes it for a pod: `search`, the
    /// `nameserver`s, `options` (empty lines left out).
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.searches.is_empty() {
            s.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for n in &self.nameservers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

/// The pod's resolver settings (the kubelet's `GetPodDNS`):
///
/// - `ClusterFirst` (and `ClusterFirstWithHostNet`, which is the same for a
///   pod off the host's network, and jotasu has no host-network pods): the
///   cluster DNS server alone, the searches `NS.svc.DOMAIN svc.DOMAIN
///   DOMAIN` then the node's, `options ndots:5`. Without a cluster DNS
///   server the pod falls back to `Default`, as the kubelet does.
/// - `Default`: the node's resolv.conf (`host`).
/// - `None`: nothing but `config`.
///
/// Then `config` is merged: nameservers and searches appended without
/// duplicates, options merged by name (the pod's win); and the result is
/// cut to [`MAX_NAMESERVERS`], [`MAX_SEARCHES`], [`MAX_SEARCH_DOMAIN`] and
/// [`MAX_SEARCH_LINE`].
pub fn pod_resolv_conf(
    policy: DnsPolicy,
    config: Option<&PodDnsConfig>,
    namespace: &str,
    cluster_dns: Option<IpAddr>,
    cluster_domain: &str,
    host: &ResolvConf,
) -> ResolvConf {
    let mut conf = match (policy, cluster_dns) {
        (DnsPolicy::None, _) => ResolvConf::default(),
        (DnsPolicy::ClusterFirst | DnsPolicy::ClusterFirstWithHostNet, Some(dns)) => ResolvConf {
            nameservers: vec![dns.to_string()],
            searches: cluster_searches(namespace, cluster_domain, &host.searches),
            options: CLUSTER_FIRST_OPTIONS
                .iter()
                .map(|o| (*o).to_owned())
                .collect(),
        },
        (DnsPolicy::ClusterFirst | DnsPolicy::ClusterFirstWithHostNet, None)
        | (DnsPolicy::Default, _) => host.clone(),
    };
    if let Some(c) = config {
        conf.nameservers = without_duplicates(
            conf.nameservers
                .into_iter()
                .chain(c.nameservers.iter().cloned()),
        );
        conf.searches =
            without_duplicates(conf.searches.into_iter().chain(c.searches.iter().cloned()));
        for o in &c.options {
            let option = match o.value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => format!("{}:{v}", o.name),
                None => o.name.clone(),
            };
            set_option(&mut conf.options, option);
        }
    }
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches = fit_searches(conf.searches);
    conf
}

/// `NS.svc.DOMAIN svc.DOMAIN DOMAIN` then the node's searches, without
/// duplicates (only the node's when there is no cluster domain).
fn cluster_searches(namespace: &str, domain: &str, host: &[String]) -> Vec<String> {
    if domain.is_empty() {
        return host.to_vec();
    }
    let cluster = [
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_owned(),
    ];
    without_duplicates(cluster.into_iter().chain(host.iter().cloned()))
}

/// The items in order, each only at its first place.
fn without_duplicates(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Sets an option (`name` or `name:value`): replaces the one of the same
/// name in place, or appends it.
fn set_option(options: &mut Vec<String>, option: String) {
    let name = |o: &str| o.split(':').next().unwrap_or_default().to_owned();
    let n = name(&option);
    match options.iter_mut().find(|o| name(o) == n) {
        Some(existing) => *existing = option,
        None => options.push(option),
    }
}

/// The first [`MAX_SEARCHES`], less any longer than [`MAX_SEARCH_DOMAIN`],
/// less the last ones until the line fits [`MAX_SEARCH_LINE`] (the
/// kubelet's `formDNSSearchFitsLimits`).
fn fit_searches(mut searches: Vec<String>) -> Vec<String> {
    searches.truncate(MAX_SEARCHES);
    searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN);
    while searches.join(" ").len() > MAX_SEARCH_LINE {
        searches.pop();
    }
    searches
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use jotasu_api::kinds::pod::PodDnsConfigOption;

    use super::*;

    const NODE: &str = "# generated by NetworkManager\n\
                        ; a comment\n\
                        search corp.example. lab.example .\n\
                        nameserver 192.168.1.1\n\
                        nameserver 192.168.1.2\n\
                        options timeout:2 edns0\n\
                        options timeout:3\n\
                        domain ignored.example\n";

    fn host() -> ResolvConf {
        ResolvConf::parse(NODE)
    }

    fn dns() -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)))
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    fn resolv(policy: DnsPolicy, config: Option<&PodDnsConfig>) -> ResolvConf {
        pod_resolv_conf(policy, config, "shop", dns(), "cluster.local", &host())
    }

    #[test]
    fn parses_the_node_file_as_the_kubelet() {
        assert_eq!(
            host(),
            ResolvConf {
                nameservers: strings(&["192.168.1.1", "192.168.1.2"]),
                searches: strings(&["corp.example", "lab.example"]),
                options: strings(&["timeout:3", "edns0"]),
            }
        );
        assert_eq!(ResolvConf::parse(""), ResolvConf::default());
    }

    #[test]
    fn a_missing_node_file_is_empty() {
        let dir = std::env::temp_dir().join(format!("jotasu-dns-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = ResolvConf::read(&dir.join("absent")).unwrap();
        assert_eq!(missing, ResolvConf::default());
        let file = dir.join("resolv.conf");
        std::fs::write(&file, NODE).unwrap();
        assert_eq!(ResolvConf::read(&file).unwrap(), host());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cluster_first_puts_the_cluster_first() {
        let want = "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
                    nameserver 10.96.0.10\n\
                    options ndots:5\n";
        assert_eq!(resolv(DnsPolicy::ClusterFirst, None).render(), want);
        assert_eq!(
            resolv(DnsPolicy::ClusterFirstWithHostNet, None).render(),
            want
        );
    }

    #[test]
    fn cluster_first_without_cluster_dns_is_default() {
        let r = pod_resolv_conf(
            DnsPolicy::ClusterFirst,
            None,
            "shop",
            None,
            "cluster.local",
            &host(),
        );
        assert_eq!(r, host());
        let r = pod_resolv_conf(DnsPolicy::ClusterFirst, None, "shop", dns(), "", &host());
        assert_eq!(
            r.searches,
            host().searches,
            "no cluster domain: the node's searches"
        );
    }

    #[test]
    fn default_is_the_node_file() {
        assert_eq!(
            resolv(DnsPolicy::Default, None).render(),
            "search corp.example lab.example\n\
             nameserver 192.168.1.1\nnameserver 192.168.1.2\n\
             options timeout:3 edns0\n"
        );
    }

    #[test]
    fn none_is_only_the_pod_config() {
        let c = PodDnsConfig {
            nameservers: strings(&["1.1.1.1"]),
            searches: strings(&["my.dns.search.suffix"]),
            options: vec![PodDnsConfigOption {
                name: "ndots".into(),
                value: Some("2".into()),
            }],
        };
        assert_eq!(
            resolv(DnsPolicy::None, Some(&c)).render(),
            "search my.dns.search.suffix\nnameserver 1.1.1.1\noptions ndots:2\n"
        );
        assert_eq!(resolv(DnsPolicy::None, None).render(), "");
    }

    #[test]
    fn the_pod_config_is_merged() {
        let c = PodDnsConfig {
            nameservers: strings(&["10.96.0.10", "1.1.1.1"]),
            searches: strings(&["cluster.local", "extra.example"]),
            options: vec![
                PodDnsConfigOption {
                    name: "ndots".into(),
                    value: Some("2".into()),
                },
                PodDnsConfigOption {
                    name: "single-request-reopen".into(),
                    value: None,
                },
            ],
        };
        let r = resolv(DnsPolicy::ClusterFirst, Some(&c));
        assert_eq!(r.nameservers, ["10.96.0.10", "1.1.1.1"], "deduplicated");
        assert_eq!(
            r.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "lab.example",
                "extra.example"
            ]
        );
        assert_eq!(
            r.options,
            ["ndots:2", "single-request-reopen"],
            "the pod's win"
        );
        let r = resolv(DnsPolicy::Default, Some(&c));
        assert_eq!(
            r.nameservers,
            ["192.168.1.1", "192.168.1.2", "10.96.0.10"],
            "first 3 kept"
        );
        assert_eq!(
            r.options,
            ["timeout:3", "edns0", "ndots:2", "single-request-reopen"]
        );
    }

    #[test]
    fn searches_are_cut_to_the_limits() {
        let c = PodDnsConfig {
            nameservers: strings(&["1.1.1.1"]),
            searches: (0..40).map(|i| format!("d{i}.example")).collect(),
            ..PodDnsConfig::default()
        };
        let r = resolv(DnsPolicy::None, Some(&c));
        assert_eq!(r.searches.len(), MAX_SEARCHES);
        assert_eq!(r.searches[31], "d31.example");
        let label = "a".repeat(60);
        let long = format!("{label}.{label}.{label}.{label}"); // 243 characters
        let c = PodDnsConfig {
            nameservers: strings(&["1.1.1.1"]),
            searches: (0..10)
                .map(|i| format!("{i}{long}"))
                .chain([format!("x{}", "b".repeat(MAX_SEARCH_DOMAIN))])
                .collect(),
            ..PodDnsConfig::default()
        };
        let r = resolv(DnsPolicy::None, Some(&c));
        // 8 domains of 244 and 7 spaces: 1959; a ninth would make 2204.
        assert_eq!(r.searches.len(), 8);
        assert!(r.searches.join(" ").len() <= MAX_SEARCH_LINE);
        assert!(r.searches.iter().all(|s| s.len() <= MAX_SEARCH_DOMAIN));
    }
}
