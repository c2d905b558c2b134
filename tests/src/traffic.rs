//! The traffic the tests send: an echo server that answers with its pod's
//! name over TCP and UDP, and clients that record which backend answered.
//! Run inside pod namespaces through the `jotasu-testbin` binary.
use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// What a server prints once it listens on every port.
pub const READY: &str = "ready";
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `name\n` for every request on each TCP port (per connection, once
/// per chunk received, until the client closes) and each UDP datagram.
pub fn serve(name: &str, ports: &[u16], workers: usize) -> anyhow::Result<()> {
    let reply = Arc::<[u8]>::from(format!("{name}\n").into_bytes());
    let mut handles = Vec::new();
    for &port in ports {
        let tcp = TcpListener::bind(("0.0.0.0", port)).with_context(|| format!("tcp :{port}"))?;
        let tcp = Arc::new(tcp);
        for _ in 0..workers {
            let (tcp, reply) = (tcp.clone(), reply.clone());
            handles.push(thread::spawn(move || {
                while let Ok((conn, _)) = tcp.accept() {
                    let _ = answer_until_closed(conn, &reply);
                }
            }));
        }
        let udp = UdpSocket::bind(("0.0.0.0", port)).with_context(|| format!("udp :{port}"))?;
        let reply = reply.clone();
        handles.push(thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((_, peer)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&reply, peer);
            }
        }));
    }
    println!("{READY}");
    std::io::stdout().flush()?;
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn answer_until_closed(mut conn: TcpStream, reply: &[u8]) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf)? {
            0 => return Ok(()),
            _ => conn.write_all(reply)?,
        }
    }
}

/// One request on a fresh TCP connection: connect, send, read the name, close.
pub fn tcp_once(to: SocketAddr) -> anyhow::Result<String> {
    let mut conn = TcpStream::connect_timeout(&to, IO_TIMEOUT)
        .with_context(|| format!("connecting to {to}"))?;
    request(&mut conn).with_context(|| format!("request to {to}"))
}

/// A TCP connection from a chosen local port (SO_REUSEADDR, so a port that
/// still has TIME_WAIT sockets to other destinations can be bound).
pub fn tcp_connect_from(to: SocketAddr, port: u16) -> anyhow::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())
        .with_context(|| format!("binding local port {port}"))?;
    sock.connect_timeout(&to.into(), IO_TIMEOUT)
        .with_context(|| format!("connecting to {to}"))?;
    Ok(sock.into())
}

/// One request on an open connection; returns the answering backend's name.
pub fn request(conn: &mut TcpStream) -> anyhow::Result<String> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.write_all(b"who\n")?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    anyhow::ensure!(!line.is_empty(), "connection closed before an answer");
    Ok(line.trim().to_owned())
}

/// One datagram on a fresh (connected) UDP socket; returns the answer.
pub fn udp_once(to: SocketAddr) -> anyhow::Result<String> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.connect(to)
        .with_context(|| format!("udp connect {to}"))?;
    sock.send(b"who\n")?;
    let mut buf = [0u8; 256];
    let n = sock
        .recv(&mut buf)
        .with_context(|| format!("udp answer from {to}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
}

/// One datagram through an unconnected socket (sendto / recvfrom). Returns
/// the answer and the address the answer appeared to come from.
pub fn udp_unconnected_once(to: SocketAddr) -> anyhow::Result<(String, SocketAddr)> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.send_to(b"who\n", to)?;
    let mut buf = [0u8; 256];
    let (n, from) = sock
        .recv_from(&mut buf)
        .with_context(|| format!("udp answer from {to}"))?;
    Ok((String::from_utf8_lossy(&buf[..n]).trim().to_owned(), from))
}

/// The answering backends in `jotasu-testbin connect` output
/// (`"<backend> <peer address>"` per line; `"ERR"` for a failed request).
pub fn backends_of(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect()
}

/// `names` repeated in order up to `n` entries: what exact round-robin gives.
pub fn rotation<'a>(names: &[&'a str], n: usize) -> Vec<&'a str> {
    names.iter().cycle().take(n).copied().collect()
}

/// What [`churn`] saw.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ChurnReport {
    /// The backend each long-lived connection was given.
    pub held: Vec<String>,
    /// Failed requests on long-lived connections, by backend.
    pub held_failures: Vec<String>,
    /// Requests completed on long-lived connections.
    pub held_requests: u64,
    /// Backends of new connections before the mark.
    pub before_mark: Vec<String>,
    /// Backends of new connections after the mark.
    pub after_mark: Vec<String>,
    /// New connections that failed (after the mark).
    pub new_failures: Vec<String>,
}

/// Holds `held` long-lived connections to `to` and keeps requesting on them
/// while opening new connections, until `stop`; `on_started` runs once the
/// held connections are up. `marked` splits the new
/// connections into before and after (the test sets it once it changed the
/// service).
pub fn churn(
    to: SocketAddr,
    held: usize,
    marked: &AtomicBool,
    stop: &AtomicBool,
    deadline: Instant,
    on_started: impl FnOnce(),
) -> anyhow::Result<ChurnReport> {
    let mut conns = Vec::new();
    let mut report = ChurnReport::default();
    for _ in 0..held {
        let mut c = TcpStream::connect_timeout(&to, IO_TIMEOUT)?;
        c.set_nodelay(true)?;
        report.held.push(request(&mut c)?);
        conns.push(c);
    }
    on_started();
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
        let after = marked.load(Ordering::Acquire);
        for (c, backend) in conns.iter_mut().zip(&report.held) {
            match request(c) {
                Ok(_) => report.held_requests += 1,
                Err(_) => report.held_failures.push(backend.clone()),
            }
        }
        match tcp_once(to) {
            Ok(b) if after => report.after_mark.push(b),
            Ok(b) => report.before_mark.push(b),
            Err(e) => report.new_failures.push(format!("{e:#}")),
        }
    }
    Ok(report)
}

/// What [`http_load`] saw.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// Requests answered `200`.
    pub ok: u64,
    /// Every failed request: why (connect, write, read, or the status line).
    pub failures: Vec<String>,
}

/// One `GET /` over HTTP/1.0 on a fresh connection; `Ok` if answered 200.
pub fn http_get(to: SocketAddr) -> anyhow::Result<()> {
    let mut conn = TcpStream::connect_timeout(&to, IO_TIMEOUT).context("connect")?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").context("write")?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).context("read")?;
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    anyhow::ensure!(
        status.starts_with("HTTP/1.") && status.split(' ').nth(1) == Some("200"),
        "status line {status:?}"
    );
    Ok(())
}

/// `workers` threads sending [`http_get`] to `to` until `stop`, back to
/// back, or each starting one request every `interval` when given (a
/// paced load: `workers / interval` requests per second while the backends
/// keep up); `on_started` runs once every worker had one answer (requests
/// before that are warm-up and count too).
pub fn http_load(
    to: SocketAddr,
    workers: usize,
    interval: Option<std::time::Duration>,
    stop: &AtomicBool,
    deadline: Instant,
    on_started: impl FnOnce(),
) -> LoadReport {
    let started = std::sync::Barrier::new(workers + 1);
    let reports: Vec<LoadReport> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let started = &started;
                s.spawn(move || {
                    let mut report = LoadReport::default();
                    let mut first = true;
                    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                        let next = interval.map(|i| Instant::now() + i);
                        match http_get(to) {
                            Ok(()) => report.ok += 1,
                            Err(e) => report.failures.push(format!("{e:#}")),
                        }
                        if first {
                            first = false;
                            started.wait();
                        }
                        if let Some(wait) =
                            next.map(|n| n.saturating_duration_since(Instant::now()))
                        {
                            thread::sleep(wait);
                        }
                    }
                    if first {
                        started.wait();
                    }
                    report
                })
            })
            .collect();
        started.wait();
        on_started();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all = LoadReport::default();
    for r in reports {
        all.ok += r.ok;
        all.failures.extend(r.failures);
    }
    all
}

/// The arguments of `jotasu-testbin http-load` against `to` with `workers`
/// workers, paced to `rate` requests/s over all of them (0: unpaced).
pub fn http_load_args(to: &str, workers: usize, rate: f64) -> Vec<String> {
    [
        "http-load",
        "--to",
        to,
        "--workers",
        &workers.to_string(),
        "--rate",
        &rate.to_string(),
        "--timeout",
        "1800",
    ]
    .map(String::from)
    .to_vec()
}

/// A running `jotasu-testbin http-load` (wherever `cmd` runs it: a pod's
/// namespace, a host outside the cluster): started once every worker had
/// an answer; [`HttpLoad::stop`] ends it and returns what it saw. Killed
/// on drop if not stopped.
#[derive(Debug)]
pub struct HttpLoad {
    label: String,
    child: Option<std::process::Child>,
}

impl HttpLoad {
    /// Spawns `cmd` (an `http-load` command) and waits for its "started".
    pub fn start(mut cmd: std::process::Command, label: &str) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the load {label}"))?;
        let mut me = Self {
            label: label.to_owned(),
            child: None,
        };
        let mut first = String::new();
        let stdout = child.stdout.as_mut().context("stdout is piped")?;
        std::io::BufReader::new(stdout).read_line(&mut first)?;
        me.child = Some(child);
        anyhow::ensure!(
            first.trim() == "started",
            "the load {label} did not start: {first:?}"
        );
        Ok(me)
    }

    /// Stops the load; what it saw.
    pub fn stop(mut self) -> anyhow::Result<LoadReport> {
        let mut child = self.child.take().context("the load was stopped")?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or("");
        serde_json::from_str(last).with_context(|| format!("{}: no report in {text:?}", self.label))
    }

    /// What the load is called.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl Drop for HttpLoad {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
