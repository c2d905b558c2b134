//! A pod's DNS fields, as Kubernetes' `validateDNSPolicy`,
//! `validatePodDNSConfig` and the hostname/subdomain rules check them.

use crate::error::FieldError;
use crate::kinds::pod::{DnsPolicy, PodSpec};
use crate::path::FieldPath;
use crate::validate::{name, names};

/// Most nameservers a resolver uses (glibc's `MAXNS`).
pub const MAX_DNS_NAMESERVERS: usize = 3;
/// Most search domains in a pod's resolv.conf.
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
/// Longest search list, spaces between domains included.
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// Checks `dnsPolicy`, `dnsConfig`, `hostname` and `subdomain` of `spec`.
pub(super) fn pod_dns(spec: &PodSpec, path: &FieldPath, errs: &mut Vec<FieldError>) {
    // An unknown policy is refused when the manifest is parsed (the enum);
    // a missing one is defaulted to `ClusterFirst`.
    let policy = spec.dns_policy.unwrap_or_default();
    dns_config(spec, policy, &path.field("dnsConfig"), errs);
    if let Some(h) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        name(names::dns1123_label, h, &path.field("hostname"), errs);
    }
    if let Some(s) = spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        name(names::dns1123_label, s, &path.field("subdomain"), errs);
    }
}

fn dns_config(spec: &PodSpec, policy: DnsPolicy, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if policy == DnsPolicy::None {
        match &spec.dns_config {
            None => {
                errs.push(FieldError::required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return;
            }
            Some(c) if c.nameservers.is_empty() => {
                errs.push(FieldError::required(
                    &path.field("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            Some(_) => {}
        }
    }
    let Some(c) = &spec.dns_config else { return };
    let ns = path.field("nameservers");
    if c.nameservers.len() > MAX_DNS_NAMESERVERS {
        errs.push(FieldError::invalid(
            &ns,
            list(&c.nameservers),
            format!("must not have more than {MAX_DNS_NAMESERVERS} nameservers"),
        ));
    }
    for (i, n) in c.nameservers.iter().enumerate() {
        name(names::ip, n, &ns.index(i), errs);
    }
    let sp = path.field("searches");
    if c.searches.len() > MAX_DNS_SEARCH_PATHS {
        errs.push(FieldError::invalid(
            &sp,
            list(&c.searches),
            format!("must not have more than {MAX_DNS_SEARCH_PATHS} search paths"),
        ));
    }
    if c.searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        errs.push(FieldError::invalid(
            &sp,
            list(&c.searches),
            format!(
                "must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including spaces) in the search list"
            ),
        ));
    }
    for (i, s) in c.searches.iter().enumerate() {
        // A trailing dot (a fully qualified domain) is fine.
        let domain = s.strip_suffix('.').unwrap_or(s);
        if let Err(e) = names::dns1123_subdomain(domain) {
            errs.push(FieldError::invalid(&sp.index(i), domain, e));
        }
    }
    for (i, o) in c.options.iter().enumerate() {
        if o.name.is_empty() {
            errs.push(FieldError::required(
                &path.field("options").index(i),
                "must not be empty",
            ));
        }
    }
}

/// `["a", "b"]`, the way Kubernetes prints a list in a message.
fn list(items: &[String]) -> String {
    format!("{items:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::pod::{PodDnsConfig, PodDnsConfigOption};

    fn check(spec: &PodSpec) -> Vec<String> {
        let mut errs = Vec::new();
        pod_dns(spec, &FieldPath::root().field("spec"), &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    fn with(policy: DnsPolicy, config: Option<PodDnsConfig>) -> PodSpec {
        PodSpec {
            dns_policy: Some(policy),
            dns_config: config,
            ..PodSpec::default()
        }
    }

    fn servers(n: &[&str]) -> PodDnsConfig {
        PodDnsConfig {
            nameservers: n.iter().map(|s| (*s).to_owned()).collect(),
            ..PodDnsConfig::default()
        }
    }

    #[test]
    fn none_needs_a_nameserver() {
        assert_eq!(
            check(&with(DnsPolicy::None, None)),
            ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
        );
        assert_eq!(
            check(&with(DnsPolicy::None, Some(PodDnsConfig::default()))),
            [
                "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"
            ]
        );
        assert!(check(&with(DnsPolicy::None, Some(servers(&["1.1.1.1"])))).is_empty());
        assert!(check(&with(DnsPolicy::ClusterFirst, None)).is_empty());
        assert!(check(&with(DnsPolicy::Default, Some(PodDnsConfig::default()))).is_empty());
    }

    #[test]
    fn nameservers_are_at_most_three_addresses() {
        let four = servers(&["1.1.1.1", "8.8.8.8", "2001:db8::1", "9.9.9.9"]);
        assert_eq!(
            check(&with(DnsPolicy::ClusterFirst, Some(four))),
            [
                "spec.dnsConfig.nameservers: Invalid value: \"[\"1.1.1.1\", \"8.8.8.8\", \"2001:db8::1\", \"9.9.9.9\"]\": must not have more than 3 nameservers"
            ]
        );
        assert_eq!(
            check(&with(DnsPolicy::None, Some(servers(&["1.1.1.1", "dns"])))),
            [
                "spec.dnsConfig.nameservers[1]: Invalid value: \"dns\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            ]
        );
    }

    #[test]
    fn searches_are_limited_subdomains() {
        let mut c = PodDnsConfig {
            searches: vec!["example.com.".into(), "Bad_Domain".into()],
            ..PodDnsConfig::default()
        };
        let errs = check(&with(DnsPolicy::ClusterFirst, Some(c.clone())));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.dnsConfig.searches[1]: Invalid value: \"Bad_Domain\": a lowercase RFC 1123 subdomain"),
            "{errs:?}"
        );
        c.searches = (0..33).map(|i| format!("d{i}.example")).collect();
        let errs = check(&with(DnsPolicy::ClusterFirst, Some(c.clone())));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].ends_with("must not have more than 32 search paths"),
            "{errs:?}"
        );
        // 9 domains of 250 characters: 2258 with the spaces.
        let long = format!(
            "{}.{}.{}.{}",
            "a".repeat(62),
            "b".repeat(62),
            "c".repeat(62),
            "d".repeat(61)
        );
        c.searches = vec![long; 9];
        let errs = check(&with(DnsPolicy::ClusterFirst, Some(c)));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].ends_with(
                "must not have more than 2048 characters (including spaces) in the search list"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn option_names_are_required() {
        let c = PodDnsConfig {
            options: vec![
                PodDnsConfigOption {
                    name: "ndots".into(),
                    value: Some("2".into()),
                },
                PodDnsConfigOption::default(),
            ],
            ..PodDnsConfig::default()
        };
        assert_eq!(
            check(&with(DnsPolicy::ClusterFirst, Some(c))),
            ["spec.dnsConfig.options[1]: Required value: must not be empty"]
        );
    }

    #[test]
    fn hostname_and_subdomain_are_labels() {
        let spec = PodSpec {
            hostname: Some("db-0".into()),
            subdomain: Some("db".into()),
            ..PodSpec::default()
        };
        assert!(check(&spec).is_empty());
        let spec = PodSpec {
            hostname: Some("db.0".into()),
            subdomain: Some("Db".into()),
            ..PodSpec::default()
        };
        let errs = check(&spec);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0]
                .starts_with("spec.hostname: Invalid value: \"db.0\": a lowercase RFC 1123 label")
        );
        assert!(
            errs[1]
                .starts_with("spec.subdomain: Invalid value: \"Db\": a lowercase RFC 1123 label")
        );
    }
}
