//! The baseline's rule set: `iptables-restore` input in the shape kube-proxy's
//! iptables mode writes for ClusterIP services, so the benchmark can load the
//! same services into a plain node's nat table.
//!
//! ```text
//! PREROUTING, OUTPUT ─► KUBE-SERVICES ─(-d VIP -p tcp --dport P)─► KUBE-SVC-<hash>
//!   KUBE-SVC-<hash>: ! -s <cluster CIDR> → KUBE-MARK-MASQ;
//!                    statistic random 1/n, 1/(n-1), …, 1/2, then unconditional → KUBE-SEP-<hash>
//!   KUBE-SEP-<hash>: -s <endpoint> → KUBE-MARK-MASQ (hairpin); DNAT --to-destination <endpoint>
//! KUBE-SERVICES ends with the addrtype LOCAL jump to KUBE-NODEPORTS;
//! POSTROUTING ─► KUBE-POSTROUTING masquerades what KUBE-MARK-MASQ marked.
//! ```
//! Chain names carry 16 base32 characters of a hash of the service port (and
//! endpoint), as kube-proxy's do; kube-proxy hashes with SHA-256, this uses
//! FNV-1a, which gives names of the same shape and length.
use std::fmt::Write as _;

use jotasu_ebpf::{Protocol, Service};

/// The pod network: traffic from outside it to a ClusterIP is masqueraded.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The namespace the generated services claim to live in (rule comments).
const NAMESPACE: &str = "bench";

/// `iptables-restore --noflush` input declaring and filling every chain
/// kube-proxy would write for `services` (service `i` is named `svc-<i>`).
pub fn restore_input(services: &[Service]) -> String {
    let mut chains = String::new();
    let mut rules = String::new();
    for c in [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
    ] {
        let _ = writeln!(chains, ":{c} - [0:0]");
    }
    rules.push_str(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
         -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n\
         -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
         -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
         -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" \
         -j MASQUERADE --random-fully\n",
    );
    let mut per_service = String::new();
    for (i, svc) in services.iter().enumerate() {
        service_rules(i, svc, &mut chains, &mut rules, &mut per_service);
    }
    rules.push_str(&per_service);
    let _ = writeln!(
        rules,
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be \
         the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    );
    format!("*nat\n{chains}{rules}COMMIT\n")
}

/// Appends service `i`'s chain declarations, its `KUBE-SERVICES` rule (to
/// `rules`, keeping the set's order) and its own chains' rules (to `per_service`).
fn service_rules(
    i: usize,
    svc: &Service,
    chains: &mut String,
    rules: &mut String,
    per_service: &mut String,
) {
    let f = svc.frontend;
    let proto = match f.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    let port_name = format!("{NAMESPACE}/svc-{i}:p{}", f.port);
    let svc_chain = format!("KUBE-SVC-{}", chain_hash(&format!("{port_name}{proto}")));
    let dst = format!("-d {}/32 -p {proto} -m {proto} --dport {}", f.vip, f.port);
    let _ = writeln!(chains, ":{svc_chain} - [0:0]");
    let _ = writeln!(
        rules,
        "-A KUBE-SERVICES {dst} -m comment --comment \"{port_name} cluster IP\" -j {svc_chain}"
    );
    let _ = writeln!(
        per_service,
        "-A {svc_chain} ! -s {CLUSTER_CIDR} {dst} -m comment --comment \"{port_name} cluster IP\" \
         -j KUBE-MARK-MASQ"
    );
    let n = svc.backends.len();
    for (k, ep) in svc.backends.iter().enumerate() {
        let sep = format!(
            "KUBE-SEP-{}",
            chain_hash(&format!("{port_name}{proto}{ep}"))
        );
        let _ = writeln!(chains, ":{sep} - [0:0]");
        let comment = format!("-m comment --comment \"{port_name} -> {ep}\"");
        let pick = if k + 1 < n {
            // Endpoint k of n is taken with probability 1/(n-k) among those left.
            format!(
                " -m statistic --mode random --probability {:.10}",
                1.0 / (n - k) as f64
            )
        } else {
            String::new()
        };
        let _ = writeln!(per_service, "-A {svc_chain} {comment}{pick} -j {sep}");
        let _ = writeln!(
            per_service,
            "-A {sep} -s {}/32 -m comment --comment \"{port_name}\" -j KUBE-MARK-MASQ\n\
             -A {sep} -p {proto} -m comment --comment \"{port_name}\" -m {proto} \
             -j DNAT --to-destination {ep}",
            ep.ip()
        );
    }
}

/// 16 base32 characters (RFC 4648 alphabet) of an 80-bit FNV-1a digest of `s`.
pub fn chain_hash(s: &str) -> String {
    let fnv = |seed: u64| {
        s.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let digest =
        (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(fnv(0x84222325cbf29ce4));
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..16)
        .map(|k| char::from(ALPHABET[((digest >> (123 - 5 * k)) & 31) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashSet,
        net::{Ipv4Addr, SocketAddrV4},
    };

    use jotasu_ebpf::Frontend;

    use super::*;

    fn services(n: u8, backends: u8) -> Vec<Service> {
        (0..n)
            .map(|i| {
                let eps = (0..backends)
                    .map(|b| SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 11 + b), 8080));
                Service::new(Frontend::tcp(Ipv4Addr::new(10, 97, 0, 1 + i), 80), eps)
            })
            .collect()
    }

    fn lines<'a>(input: &'a str, prefix: &str) -> Vec<&'a str> {
        input.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn one_service_has_kube_proxys_shape() {
        let input = restore_input(&services(1, 10));
        assert!(
            input.starts_with("*nat\n") && input.ends_with("COMMIT\n"),
            "{input}"
        );
        let jumps = lines(
            &input,
            "-A KUBE-SERVICES -d 10.97.0.1/32 -p tcp -m tcp --dport 80 ",
        );
        assert_eq!(jumps.len(), 1, "{input}");
        let svc = jumps[0].rsplit(' ').next().expect("a jump target");
        assert!(svc.starts_with("KUBE-SVC-") && svc.len() == 25, "{svc}");

        let svc_rules = lines(&input, &format!("-A {svc} "));
        assert_eq!(svc_rules.len(), 11, "masquerade rule + one per endpoint");
        assert!(
            svc_rules[0].contains(&format!("! -s {CLUSTER_CIDR} "))
                && svc_rules[0].ends_with("-j KUBE-MARK-MASQ")
        );
        let probabilities: Vec<&str> = svc_rules[1..]
            .iter()
            .map(|r| {
                r.split("--probability ")
                    .nth(1)
                    .map_or("none", |p| p.split(' ').next().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            probabilities,
            [
                "0.1000000000",
                "0.1111111111",
                "0.1250000000",
                "0.1428571429",
                "0.1666666667",
                "0.2000000000",
                "0.2500000000",
                "0.3333333333",
                "0.5000000000",
                "none"
            ]
        );
        for (b, rule) in svc_rules[1..].iter().enumerate() {
            let sep = rule.rsplit(' ').next().expect("a jump target");
            assert!(sep.starts_with("KUBE-SEP-") && sep.len() == 25, "{sep}");
            let ep = format!("10.244.0.{}", 11 + b);
            assert_eq!(
                lines(&input, &format!("-A {sep} ")),
                [
                    format!(
                        "-A {sep} -s {ep}/32 -m comment --comment \"bench/svc-0:p80\" -j KUBE-MARK-MASQ"
                    ),
                    format!(
                        "-A {sep} -p tcp -m comment --comment \"bench/svc-0:p80\" -m tcp -j DNAT --to-destination {ep}:8080"
                    ),
                ]
            );
        }
    }

    #[test]
    fn every_chain_is_declared_once_and_entry_points_are_hooked() {
        let input = restore_input(&services(50, 10));
        let declared: Vec<&str> = lines(&input, ":")
            .iter()
            .map(|l| &l[1..l.len() - 8])
            .collect();
        let unique: HashSet<&str> = declared.iter().copied().collect();
        assert_eq!(declared.len(), unique.len(), "duplicate chain names");
        assert_eq!(declared.len(), 4 + 50 + 50 * 10);
        for rule in lines(&input, "-A ") {
            let target = rule
                .split(" -j ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .unwrap_or("");
            if target.starts_with("KUBE-") {
                assert!(unique.contains(target), "jump to undeclared {target}");
            }
        }
        for hook in ["PREROUTING", "OUTPUT"] {
            assert_eq!(lines(&input, &format!("-A {hook} ")).len(), 1, "{hook}");
        }
        let services = lines(&input, "-A KUBE-SERVICES ");
        assert_eq!(services.len(), 51);
        assert!(
            services[50].ends_with("-j KUBE-NODEPORTS"),
            "the nodeport rule is last"
        );
        assert!(
            services[25].contains("-d 10.97.0.26/32"),
            "the set's order is kept"
        );
    }

    #[test]
    fn chain_hash_is_stable_base32() {
        let h = chain_hash("bench/svc-0:p80tcp");
        assert_eq!(h.len(), 16);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "{h}"
        );
        assert_eq!(h, chain_hash("bench/svc-0:p80tcp"));
        assert_ne!(h, chain_hash("bench/svc-1:p80tcp"));
    }
}
