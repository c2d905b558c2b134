//! Traffic endpoints for tests, the demo and benchmarks, run inside pod
//! namespaces (`ip netns exec NS jotasu-testbin ...`).
use std::{
    io::BufRead as _,
    net::{SocketAddr, TcpStream},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use jotasu_tests::dns::wire;
use jotasu_tests::traffic;

#[derive(Parser)]
#[command(
    about = "jotasu test traffic: echo servers and clients that report which backend answered"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Answer NAME on TCP and UDP PORTs; print "ready" once listening.
    Serve {
        /// What to answer.
        #[arg(long)]
        name: String,
        /// Ports to listen on (TCP and UDP each).
        #[arg(long, value_delimiter = ',', required = true)]
        ports: Vec<u16>,
        /// Threads accepting TCP connections per port.
        #[arg(long, default_value_t = 8)]
        workers: usize,
    },
    /// Make COUNT requests to TO, each on a new connection (or datagram
    /// socket); print "<backend> <peer address>" per request, or "ERR <why>".
    Connect {
        /// Address to reach (a service VIP or a pod).
        #[arg(long)]
        to: SocketAddr,
        /// Requests to make.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Use UDP instead of TCP.
        #[arg(long)]
        udp: bool,
        /// With --udp: sendto/recvfrom on an unconnected socket.
        #[arg(long)]
        unconnected: bool,
        /// TCP: connect from this local port, then the next ones (one per request).
        #[arg(long)]
        source_port: Option<u16>,
    },
    /// Read a DatapathSpec (JSON) on stdin, make the node's data plane hold
    /// it, print "applied" and exit.
    DatapathApply {
        /// The node's network namespace (entered on a thread; not with
        /// `ip netns exec`, which hides /sys/fs/bpf).
        #[arg(long)]
        netns: String,
    },
    /// Hold HELD connections to TO requesting on them while opening new ones;
    /// print "started" once the held connections are up, treat a line on
    /// stdin as the mark, stop at EOF and print a JSON report.
    Churn {
        /// Address to reach.
        #[arg(long)]
        to: SocketAddr,
        /// Long-lived connections to hold.
        #[arg(long, default_value_t = 6)]
        held: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Send HTTP/1.0 `GET /` to TO from WORKERS threads back to back, each
    /// on a new connection; print "started" once each had an answer, stop
    /// at EOF on stdin and print a JSON report (answers 200, failures).
    HttpLoad {
        /// Address to reach.
        #[arg(long)]
        to: SocketAddr,
        /// Concurrent clients.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Requests per second over all workers (0: as fast as they go).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Send each hex MESSAGE as one UDP datagram (each from a fresh socket
    /// connected to TO); print "reply <hex>" or "none" per message.
    DnsExchange {
        /// The DNS server.
        #[arg(long)]
        to: SocketAddr,
        /// How long to wait for each reply, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        wait_ms: u64,
        /// The messages, in hex ("" is an empty datagram).
        messages: Vec<String>,
    },
    /// Connect to TO over TCP, write the hex BYTES, print "held" and keep
    /// the connection open until stdin closes.
    DnsHold {
        /// The DNS server.
        #[arg(long)]
        to: SocketAddr,
        /// What to write, in hex.
        bytes: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Serve {
            name,
            ports,
            workers,
        } => traffic::serve(&name, &ports, workers),
        Cmd::Connect {
            to,
            count,
            udp,
            unconnected,
            source_port,
        } => {
            for i in 0..count {
                let line = if udp && unconnected {
                    traffic::udp_unconnected_once(to).map(|(name, from)| format!("{name} {from}"))
                } else if udp {
                    traffic::udp_once(to).map(|name| format!("{name} {to}"))
                } else {
                    match source_port {
                        Some(p) => traffic::tcp_connect_from(to, p + i as u16),
                        None => TcpStream::connect_timeout(&to, Duration::from_secs(5))
                            .map_err(anyhow::Error::from),
                    }
                    .and_then(|mut c| {
                        let peer = c.peer_addr()?;
                        Ok(format!("{} {peer}", traffic::request(&mut c)?))
                    })
                };
                match line {
                    Ok(l) => println!("{l}"),
                    Err(e) => println!("ERR {e:#}"),
                }
            }
            Ok(())
        }
        Cmd::DatapathApply { netns } => {
            let spec: jotasu_tests::lab::DatapathSpec = serde_json::from_reader(std::io::stdin())?;
            jotasu_tests::netns::run_in(&netns, || spec.apply().map(drop))??;
            println!("applied");
            Ok(())
        }
        Cmd::DnsExchange {
            to,
            wait_ms,
            messages,
        } => {
            for hex in messages {
                let message = wire::from_hex(&hex).context("a message in hex")?;
                match wire::udp_exchange(to, &message, Duration::from_millis(wait_ms))? {
                    Some(reply) => println!("reply {}", wire::to_hex(&reply)),
                    None => println!("none"),
                }
            }
            Ok(())
        }
        Cmd::DnsHold { to, bytes } => {
            wire::hold_tcp(to, &wire::from_hex(&bytes).context("bytes in hex")?)
        }
        Cmd::HttpLoad {
            to,
            workers,
            rate,
            timeout,
        } => {
            let workers = workers.max(1);
            let interval = (rate > 0.0).then(|| Duration::from_secs_f64(workers as f64 / rate));
            let stop = AtomicBool::new(false);
            let deadline = Instant::now() + Duration::from_secs(timeout);
            std::thread::scope(|s| {
                let worker = s.spawn(|| {
                    traffic::http_load(to, workers, interval, &stop, deadline, || {
                        println!("started");
                    })
                });
                // Anything on stdin, or its end, stops the load.
                let _ = std::io::stdin().lock().lines().next();
                stop.store(true, Ordering::Release);
                let report = worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("the load panicked"))?;
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            })
        }
        Cmd::Churn { to, held, timeout } => {
            let (marked, stop) = (AtomicBool::new(false), AtomicBool::new(false));
            let deadline = Instant::now() + Duration::from_secs(timeout);
            std::thread::scope(|s| {
                let worker = s.spawn(|| {
                    traffic::churn(to, held, &marked, &stop, deadline, || {
                        println!("started");
                    })
                });
                let mut lines = std::io::stdin().lock().lines();
                if lines.next().is_some() {
                    marked.store(true, Ordering::Release);
                    let _ = lines.next(); // EOF (or a second line) stops
                }
                stop.store(true, Ordering::Release);
                let report = worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("churn panicked"))??;
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            })
        }
    }
}
