//! [`Dig`]: what one run of Debian's `dig` printed, read back — the
//! reply's status, flags, answer and authority records.
use std::collections::BTreeSet;

/// One resource record as dig prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The owner name (absolute, with its dot).
    pub name: String,
    /// The TTL.
    pub ttl: u32,
    /// The type (`A`, `SRV`, …).
    pub rtype: String,
    /// The data, fields joined by one space.
    pub data: String,
}

/// What one `dig` run got.
#[derive(Debug, Clone, Default)]
pub struct Dig {
    /// dig's exit code (9: no reply).
    pub code: i32,
    /// The reply's status (`NOERROR`, `NXDOMAIN`, …); None without a reply.
    pub status: Option<String>,
    /// The header flags (`qr`, `aa`, `tc`, …).
    pub flags: BTreeSet<String>,
    /// The answer section.
    pub answer: Vec<Record>,
    /// The authority section.
    pub authority: Vec<Record>,
    /// Everything dig printed, for messages.
    pub output: String,
}

impl Dig {
    /// Reads dig's default output.
    pub fn parse(code: i32, output: &str) -> Self {
        let mut dig = Self {
            code,
            output: output.to_owned(),
            ..Self::default()
        };
        let mut section = "";
        for line in output.lines() {
            if let Some(rest) = line.split_once("status: ").map(|(_, r)| r) {
                dig.status = rest.split(',').next().map(str::to_owned);
                // dig prints one reply (after a TCP retry: the TCP one).
                dig.answer.clear();
                dig.authority.clear();
            } else if let Some(rest) = line.strip_prefix(";; flags:") {
                let flags = rest.split(';').next().unwrap_or_default();
                dig.flags = flags.split_whitespace().map(str::to_owned).collect();
            } else if let Some(name) = line
                .strip_prefix(";; ")
                .and_then(|l| l.strip_suffix(" SECTION:"))
            {
                section = match name {
                    "ANSWER" => "answer",
                    "AUTHORITY" => "authority",
                    _ => "",
                };
            } else if line.trim().is_empty() || line.starts_with(';') {
                if line.trim().is_empty() {
                    section = "";
                }
            } else if let Some(record) = Self::record(line) {
                match section {
                    "answer" => dig.answer.push(record),
                    "authority" => dig.authority.push(record),
                    _ => {}
                }
            }
        }
        dig
    }

    fn record(line: &str) -> Option<Record> {
        let mut f = line.split_whitespace();
        let name = f.next()?.to_owned();
        let ttl = f.next()?.parse().ok()?;
        let _class = f.next()?;
        let rtype = f.next()?.to_owned();
        let data = f.collect::<Vec<_>>().join(" ");
        Some(Record {
            name,
            ttl,
            rtype,
            data,
        })
    }

    /// The reply's status, `NOERROR` and so on ("no reply" without one).
    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("no reply")
    }

    /// The data of the answers of type `rtype`.
    pub fn data(&self, rtype: &str) -> BTreeSet<String> {
        self.answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.data.clone())
            .collect()
    }

    /// NOERROR with exactly these answers of type `rtype` (and no others).
    pub fn answers(&self, rtype: &str, want: &BTreeSet<String>) -> bool {
        self.status() == "NOERROR"
            && &self.data(rtype) == want
            && self.answer.iter().all(|r| r.rtype == rtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::set;

    const NXDOMAIN: &str = "
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @10.96.0.10 +tries=1 +time=2 nope.default.svc.cluster.local
; (1 server found)
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 40008
;; flags: qr aa rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; QUESTION SECTION:
;nope.default.svc.cluster.local.\tIN\tA

;; AUTHORITY SECTION:
cluster.local.\t\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. 11 7200 1800 86400 5

;; Query time: 0 msec
";

    const RETRIED: &str = ";; Truncated, retrying in TCP mode.
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 29658
;; flags: qr aa rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 0

;; QUESTION SECTION:
;_http._tcp.many.default.svc.cluster.local. IN SRV

;; ANSWER SECTION:
_http._tcp.many.default.svc.cluster.local. 5 IN\tSRV 0 100 80 a.many.default.svc.cluster.local.
_http._tcp.many.default.svc.cluster.local. 5 IN\tSRV 0 100 80 b.many.default.svc.cluster.local.
";

    #[test]
    fn dig_output_reads_back() {
        let d = Dig::parse(0, NXDOMAIN);
        assert_eq!(d.status(), "NXDOMAIN");
        assert_eq!(d.flags, set(["qr", "aa", "rd", "ra"]));
        assert!(d.answer.is_empty());
        assert_eq!(
            d.authority,
            [Record {
                name: "cluster.local.".into(),
                ttl: 5,
                rtype: "SOA".into(),
                data: "ns.dns.cluster.local. hostmaster.cluster.local. 11 7200 1800 86400 5".into(),
            }]
        );
        let d = Dig::parse(0, RETRIED);
        assert!(d.answers(
            "SRV",
            &set([
                "0 100 80 a.many.default.svc.cluster.local.",
                "0 100 80 b.many.default.svc.cluster.local."
            ])
        ));
        assert_eq!(
            Dig::parse(9, ";; no servers could be reached").status(),
            "no reply"
        );
    }
}
