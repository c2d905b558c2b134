//! `jotactl flows --node NODE [--pod P] [--service S] [--verdict
//! forwarded|dropped] [-f] [--last N] [-o json]`: the node's flow events —
//! new service flows and drops as its data plane reports them (after
//! Hubble's `hubble observe`): its recent events, then with `-f` new ones
//! as they happen. Filters apply on the node.

use std::io::Write as _;

use clap::Args;
use jotasu_api::client::ClientError;
use jotasu_api::grpc::v1;
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::connect;
use crate::datapath::ViewOutput;
use crate::report::CtlError;

/// `jotactl flows`.
#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// The node whose flow events to show.
    #[arg(long, value_name = "NODE")]
    pub node: String,
    /// Only flows from or to this pod (NAME in the namespace, or NS/NAME).
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// Only flows of this Service (NAME in the namespace, or NS/NAME).
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Only forwarded (new flows balanced) or dropped (drops and refusals).
    #[arg(long, value_name = "forwarded|dropped")]
    pub verdict: Option<String>,
    /// Keep streaming new events (Ctrl-C to stop).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// How many recent events to show first (the node keeps 4096).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub last: u32,
    /// One JSON object per line.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<ViewOutput>,
}

/// `NAME` → `namespace/NAME`.
fn qualified(global: &GlobalArgs, name: &Option<String>) -> String {
    match name.as_deref() {
        None | Some("") => String::new(),
        Some(n) if n.contains('/') => n.to_owned(),
        Some(n) => format!("{}/{n}", connect::namespace(global)),
    }
}

/// The request the arguments make.
pub fn request(global: &GlobalArgs, args: &FlowsArgs) -> Result<v1::FlowsRequest, CtlError> {
    let verdict = match args.verdict.as_deref() {
        None => String::new(),
        Some(v @ ("forwarded" | "dropped")) => v.to_owned(),
        Some(v) => {
            return Err(CtlError::Usage(format!(
                "--verdict {v:?}: want forwarded or dropped"
            )));
        }
    };
    Ok(v1::FlowsRequest {
        node: args.node.clone(),
        follow: args.follow,
        pod: qualified(global, &args.pod),
        service: qualified(global, &args.service),
        verdict,
        last: args.last.max(1),
    })
}

/// `HH:MM:SS.mmm` (UTC) of Unix nanoseconds.
pub fn clock(unix_nanos: i64) -> String {
    let ms = unix_nanos.div_euclid(1_000_000);
    let s = ms.div_euclid(1000);
    let day = s.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        ms.rem_euclid(1000)
    )
}

fn end(addr: &str, pod: &str) -> String {
    match (addr.is_empty(), pod.is_empty()) {
        (true, true) => "?".into(),
        (true, false) => pod.to_owned(),
        (false, true) => addr.to_owned(),
        (false, false) => format!("{addr} ({pod})"),
    }
}

/// One line per event, as `hubble observe` prints them.
pub fn line(f: &v1::Flow) -> String {
    let mut out = format!(
        "{} {}: {} -> {}",
        clock(f.time_unix_nanos),
        f.node,
        end(&f.source, &f.source_pod),
        end(&f.destination, &f.destination_pod)
    );
    if !f.service.is_empty() {
        out.push_str(&format!(" [{}]", f.service));
    }
    if !f.backend.is_empty() {
        out.push_str(&format!(" => {}", end(&f.backend, &f.backend_pod)));
    }
    out.push_str(&format!(" {} {}", f.protocol, f.verdict.to_uppercase()));
    if !f.drop_reason.is_empty() {
        out.push_str(&format!(" ({})", f.drop_reason));
    }
    out.push_str(&format!(" {}", f.program));
    out
}

fn json_line(f: &v1::Flow) -> String {
    json!({
        "time": f.time_unix_nanos, "node": f.node, "verdict": f.verdict,
        "dropReason": f.drop_reason, "program": f.program, "protocol": f.protocol,
        "source": f.source, "sourcePod": f.source_pod,
        "destination": f.destination, "destinationPod": f.destination_pod,
        "service": f.service, "backend": f.backend, "backendPod": f.backend_pod,
    })
    .to_string()
}

/// Runs `flows`.
pub async fn run(global: &GlobalArgs, args: &FlowsArgs) -> Result<(), CtlError> {
    let request = request(global, args)?;
    let client = connect::connect(global).await?;
    let mut stream = client
        .datapath()
        .flows(request)
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let mut stdout = std::io::stdout().lock();
    while let Some(msg) = stream.message().await.map_err(ClientError::from)? {
        match msg.message {
            Some(v1::flow_message::Message::Flow(f)) => {
                let text = match args.output {
                    Some(ViewOutput::Json) => json_line(&f),
                    None => line(&f),
                };
                writeln!(stdout, "{text}")?;
                stdout.flush()?;
            }
            Some(v1::flow_message::Message::Lost(l)) => {
                eprintln!(
                    "EVENTS LOST: {} ({})",
                    l.events,
                    if l.source == "stream" {
                        "this stream fell behind"
                    } else {
                        "the data plane's ring buffer was full or over its rate limit"
                    }
                );
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_hubble_observe() {
        let f = v1::Flow {
            time_unix_nanos: 1_700_000_000_123_000_000,
            node: "n1".into(),
            verdict: "forwarded".into(),
            program: "sock_connect4".into(),
            protocol: "TCP".into(),
            source_pod: "shop/client".into(),
            destination: "10.96.0.20:80".into(),
            service: "shop/web:http".into(),
            backend: "10.244.2.7:8080".into(),
            backend_pod: "shop/web-1".into(),
            ..v1::Flow::default()
        };
        assert_eq!(
            line(&f),
            "22:13:20.123 n1: shop/client -> 10.96.0.20:80 [shop/web:http] => 10.244.2.7:8080 (shop/web-1) TCP FORWARDED sock_connect4"
        );
        let d = v1::Flow {
            verdict: "dropped".into(),
            drop_reason: "spoofed_source".into(),
            program: "from_pod".into(),
            source: "10.9.9.9:1".into(),
            source_pod: String::new(),
            service: String::new(),
            backend: String::new(),
            ..f
        };
        assert!(
            line(&d).ends_with("10.9.9.9:1 -> 10.96.0.20:80 TCP DROPPED (spoofed_source) from_pod"),
            "{}",
            line(&d)
        );
        assert!(json_line(&d).contains("\"dropReason\":\"spoofed_source\""));
    }

    #[test]
    fn clock_is_utc_time_of_day() {
        assert_eq!(clock(0), "00:00:00.000");
        assert_eq!(clock(86_399_999_000_000), "23:59:59.999");
    }
}
