//! DNS on the wire for the malformed-query tests: messages built byte by
//! byte, hex on the testbin's command line, and the testbin's raw clients
//! ([`udp_exchange`], [`hold_tcp`]).
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// What the testbin prints once its TCP connection holds.
pub const HELD: &str = "held";

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex (`None` if it is not hex).
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Sends `message` in one datagram from a fresh socket connected to `to`
/// and waits up to `wait` for one reply.
pub fn udp_exchange(
    to: SocketAddr,
    message: &[u8],
    wait: Duration,
) -> anyhow::Result<Option<Vec<u8>>> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(to)?;
    socket.set_read_timeout(Some(wait))?;
    socket.send(message)?;
    let mut buf = vec![0u8; 65_535];
    match socket.recv(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Connects to `to` over TCP, writes `bytes`, prints [`HELD`] and keeps the
/// connection open until stdin closes.
pub fn hold_tcp(to: SocketAddr, bytes: &[u8]) -> anyhow::Result<()> {
    let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    conn.write_all(bytes)?;
    println!("{HELD}");
    std::io::stdout().flush()?;
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    Ok(())
}

/// A DNS query header (id, RD set, `qdcount` questions) followed by `rest`.
pub fn query_bytes(id: u16, qdcount: u16, rest: &[u8]) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x01, 0x00]);
    b.extend_from_slice(&qdcount.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(rest);
    b
}

/// `name` in DNS wire form (labels, then the root).
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        b.push(u8::try_from(label.len()).expect("a label under 256 bytes"));
        b.extend_from_slice(label.as_bytes());
    }
    b.push(0);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hex_in_their_forms() {
        assert_eq!(wire_name("a.bc"), [1, b'a', 2, b'b', b'c', 0]);
        assert_eq!(
            from_hex(&to_hex(&[0, 0xab, 0xff])),
            Some(vec![0, 0xab, 0xff])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex(""), Some(vec![]));
    }
}
