//! Hand-built Ethernet frames for running tc programs with BPF_PROG_TEST_RUN,
//! and a strict parser that verifies every checksum of the frames that come back.
//!
//! [`Packet`] describes one IPv4 TCP, UDP or ICMP frame field by field.
//! [`Packet::to_bytes`] builds it with correct lengths and checksums;
//! [`Packet::parse`] is its inverse and refuses a frame whose IPv4 header,
//! TCP, UDP or ICMP checksum does not verify. Checksums are computed here from
//! RFC 1071 alone, sharing nothing with the code under test. A few raw frames
//! (ARP, IPv6) exist for traffic a program must leave alone.
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

use anyhow::{bail, ensure};

/// Length of an Ethernet header.
pub const ETH_HLEN: usize = 14;
/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// TCP flag FIN.
pub const TCP_FIN: u8 = 0x01;
/// TCP flag SYN.
pub const TCP_SYN: u8 = 0x02;
/// TCP flag RST.
pub const TCP_RST: u8 = 0x04;
/// TCP flag PSH.
pub const TCP_PSH: u8 = 0x08;
/// TCP flag ACK.
pub const TCP_ACK: u8 = 0x10;
/// The IPv4 "don't fragment" bit of [`Packet::frag`].
pub const IP_DF: u16 = 0x4000;
/// ICMP type "destination unreachable".
pub const ICMP_DEST_UNREACH: u8 = 3;
/// ICMP code "port unreachable".
pub const ICMP_PORT_UNREACH: u8 = 3;
/// ICMP type "echo request".
pub const ICMP_ECHO: u8 = 8;
/// Source MAC of the frames built here: a client pod.
pub const POD_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC of the frames built here: the host side of its veth.
pub const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

const IPV4_HLEN: usize = 20;
const TCP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const ICMP_HLEN: usize = 8;

/// The transport header of a [`Packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP (urgent pointer 0; options in [`Packet::tcp_options`]).
    Tcp {
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number.
        ack: u32,
        /// Flag bits (`TCP_*`).
        flags: u8,
        /// Receive window.
        window: u16,
    },
    /// UDP; `checksum: false` carries checksum 0 ("none").
    Udp {
        /// Whether the datagram carries a checksum.
        checksum: bool,
    },
    /// ICMP; the ports of the packet's addresses are 0.
    Icmp {
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
        /// Bytes 4..8 of the header (echo id and sequence, or unused).
        rest: [u8; 4],
    },
}

/// One Ethernet + IPv4 frame, field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// IPv4 source and transport source port (0 for ICMP).
    pub src: SocketAddrV4,
    /// IPv4 destination and transport destination port (0 for ICMP).
    pub dst: SocketAddrV4,
    /// IPv4 time to live.
    pub ttl: u8,
    /// IPv4 identification.
    pub ip_id: u16,
    /// IPv4 flags and fragment offset in 8-byte units, host order ([`IP_DF`], ...).
    pub frag: u16,
    /// IPv4 options: a multiple of 4 bytes, at most 40.
    pub ip_options: Vec<u8>,
    /// TCP options (TCP only): a multiple of 4 bytes, at most 40.
    pub tcp_options: Vec<u8>,
    /// The transport header.
    pub transport: Transport,
    /// What follows the transport header.
    pub payload: Vec<u8>,
}

impl Packet {
    /// A TCP segment from [`POD_MAC`] to [`HOST_MAC`].
    pub fn tcp(src: SocketAddrV4, dst: SocketAddrV4, flags: u8, seq: u32, ack: u32) -> Self {
        Self::new(
            src,
            dst,
            Transport::Tcp {
                seq,
                ack,
                flags,
                window: 64240,
            },
        )
    }

    /// A UDP datagram with a checksum, from [`POD_MAC`] to [`HOST_MAC`].
    pub fn udp(src: SocketAddrV4, dst: SocketAddrV4) -> Self {
        Self::new(src, dst, Transport::Udp { checksum: true })
    }

    /// An ICMP message from [`POD_MAC`] to [`HOST_MAC`].
    pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, kind: u8, code: u8, rest: [u8; 4]) -> Self {
        let (src, dst) = (SocketAddrV4::new(src, 0), SocketAddrV4::new(dst, 0));
        Self::new(src, dst, Transport::Icmp { kind, code, rest })
    }

    fn new(src: SocketAddrV4, dst: SocketAddrV4, transport: Transport) -> Self {
        Self {
            dst_mac: HOST_MAC,
            src_mac: POD_MAC,
            src,
            dst,
            ttl: 64,
            ip_id: 0x1c46,
            frag: IP_DF,
            ip_options: Vec::new(),
            tcp_options: Vec::new(),
            transport,
            payload: Vec::new(),
        }
    }

    /// The same packet carrying `payload`.
    pub fn with_payload(self, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            payload: payload.into(),
            ..self
        }
    }

    /// The IP protocol number of the transport.
    pub fn protocol(&self) -> u8 {
        match self.transport {
            Transport::Tcp { .. } => IPPROTO_TCP,
            Transport::Udp { .. } => IPPROTO_UDP,
            Transport::Icmp { .. } => IPPROTO_ICMP,
        }
    }

    /// The frame, with correct lengths and checksums.
    pub fn to_bytes(&self) -> Vec<u8> {
        let l4 = self.l4_bytes();
        let mut ip = self.ipv4_header(l4.len());
        ip.extend(l4);
        ethernet(self.dst_mac, self.src_mac, ETH_P_IP, &ip)
    }

    fn ipv4_header(&self, l4_len: usize) -> Vec<u8> {
        check_options("IPv4", &self.ip_options);
        let hlen = IPV4_HLEN + self.ip_options.len();
        let total = u16::try_from(hlen + l4_len).expect("an IPv4 packet fits 64 KiB");
        let mut h = Vec::with_capacity(hlen);
        h.push(0x40 | (hlen / 4) as u8);
        h.push(0); // DSCP/ECN
        h.extend(total.to_be_bytes());
        h.extend(self.ip_id.to_be_bytes());
        h.extend(self.frag.to_be_bytes());
        h.extend([self.ttl, self.protocol(), 0, 0]);
        h.extend(self.src.ip().octets());
        h.extend(self.dst.ip().octets());
        h.extend(&self.ip_options);
        let sum = internet_checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h
    }

    /// The transport header and payload, checksummed.
    fn l4_bytes(&self) -> Vec<u8> {
        let ports = [self.src.port().to_be_bytes(), self.dst.port().to_be_bytes()].concat();
        let (mut seg, checksum_at) = match self.transport {
            Transport::Tcp {
                seq,
                ack,
                flags,
                window,
            } => {
                check_options("TCP", &self.tcp_options);
                let words = (TCP_HLEN + self.tcp_options.len()) / 4;
                let mut h = ports;
                h.extend(seq.to_be_bytes());
                h.extend(ack.to_be_bytes());
                h.extend([(words as u8) << 4, flags]);
                h.extend(window.to_be_bytes());
                h.extend([0; 4]); // checksum, urgent pointer
                h.extend(&self.tcp_options);
                (h, Some(16))
            }
            Transport::Udp { checksum } => {
                let len = u16::try_from(UDP_HLEN + self.payload.len()).expect("UDP length");
                let mut h = ports;
                h.extend(len.to_be_bytes());
                h.extend([0; 2]);
                (h, checksum.then_some(6))
            }
            Transport::Icmp { kind, code, rest } => {
                let mut h = vec![kind, code, 0, 0];
                h.extend(rest);
                (h, Some(2))
            }
        };
        seg.extend(&self.payload);
        if let Some(at) = checksum_at {
            let sum = match self.transport {
                Transport::Icmp { .. } => internet_checksum(&seg),
                // A computed UDP checksum of 0 is sent as 0xffff (RFC 768).
                Transport::Udp { .. } => match self.l4_checksum(&seg) {
                    0 => 0xffff,
                    sum => sum,
                },
                Transport::Tcp { .. } => self.l4_checksum(&seg),
            };
            seg[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        seg
    }

    /// The TCP/UDP checksum of `seg` under this packet's IPv4 pseudo-header.
    fn l4_checksum(&self, seg: &[u8]) -> u16 {
        let len = u16::try_from(seg.len()).expect("segment fits 64 KiB");
        let mut data = Vec::with_capacity(12 + seg.len());
        data.extend(self.src.ip().octets());
        data.extend(self.dst.ip().octets());
        data.extend([0, self.protocol()]);
        data.extend(len.to_be_bytes());
        data.extend(seg);
        internet_checksum(&data)
    }

    /// Parses a frame [`Self::to_bytes`] could have built, verifying its IPv4
    /// header checksum and its TCP, UDP (unless 0) or ICMP checksum. Anything
    /// it cannot represent exactly (trailing bytes, TOS, urgent data, another
    /// EtherType or protocol) is an error.
    pub fn parse(frame: &[u8]) -> anyhow::Result<Self> {
        ensure!(
            frame.len() >= ETH_HLEN + IPV4_HLEN,
            "frame of {} bytes: too short",
            frame.len()
        );
        let (eth, ip) = frame.split_at(ETH_HLEN);
        ensure!(
            be16(eth, 12) == ETH_P_IP,
            "EtherType {:#06x} is not IPv4",
            be16(eth, 12)
        );
        ensure!(ip[0] >> 4 == 4, "IP version {}", ip[0] >> 4);
        let hlen = usize::from(ip[0] & 0xf) * 4;
        let total = usize::from(be16(ip, 2));
        ensure!(
            hlen >= IPV4_HLEN && hlen <= total,
            "IPv4 header length {hlen}, total {total}"
        );
        ensure!(
            total == ip.len(),
            "IPv4 total length {total}, but {} bytes follow",
            ip.len()
        );
        ensure!(ip[1] == 0, "TOS {:#04x}", ip[1]);
        ensure!(
            internet_checksum(&ip[..hlen]) == 0,
            "IPv4 header checksum {:#06x} does not verify",
            be16(ip, 10)
        );
        let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
        let mut p = Self {
            dst_mac: eth[0..6].try_into()?,
            src_mac: eth[6..12].try_into()?,
            src: SocketAddrV4::new(addr(12), 0),
            dst: SocketAddrV4::new(addr(16), 0),
            ttl: ip[8],
            ip_id: be16(ip, 4),
            frag: be16(ip, 6),
            ip_options: ip[IPV4_HLEN..hlen].to_vec(),
            tcp_options: Vec::new(),
            transport: Transport::Udp { checksum: false },
            payload: Vec::new(),
        };
        let seg = &ip[hlen..];
        let header_len = match ip[9] {
            IPPROTO_TCP => {
                ensure!(seg.len() >= TCP_HLEN, "TCP segment of {} bytes", seg.len());
                let doff = usize::from(seg[12] >> 4) * 4;
                ensure!(seg[12] & 0xf == 0, "TCP reserved bits {:#x}", seg[12] & 0xf);
                ensure!(
                    doff >= TCP_HLEN && doff <= seg.len(),
                    "TCP data offset {doff}"
                );
                p.tcp_options = seg[TCP_HLEN..doff].to_vec();
                ensure!(be16(seg, 18) == 0, "TCP urgent pointer {}", be16(seg, 18));
                p.transport = Transport::Tcp {
                    seq: be32(seg, 4),
                    ack: be32(seg, 8),
                    flags: seg[13],
                    window: be16(seg, 14),
                };
                ensure!(
                    p.l4_checksum(seg) == 0,
                    "TCP checksum {:#06x} does not verify",
                    be16(seg, 16)
                );
                doff
            }
            IPPROTO_UDP => {
                ensure!(seg.len() >= UDP_HLEN, "UDP datagram of {} bytes", seg.len());
                ensure!(
                    usize::from(be16(seg, 4)) == seg.len(),
                    "UDP length {}",
                    be16(seg, 4)
                );
                let checksum = be16(seg, 6) != 0;
                p.transport = Transport::Udp { checksum };
                ensure!(
                    !checksum || p.l4_checksum(seg) == 0,
                    "UDP checksum {:#06x} does not verify",
                    be16(seg, 6)
                );
                UDP_HLEN
            }
            IPPROTO_ICMP => {
                ensure!(
                    seg.len() >= ICMP_HLEN,
                    "ICMP message of {} bytes",
                    seg.len()
                );
                ensure!(
                    internet_checksum(seg) == 0,
                    "ICMP checksum {:#06x} does not verify",
                    be16(seg, 2)
                );
                p.transport = Transport::Icmp {
                    kind: seg[0],
                    code: seg[1],
                    rest: seg[4..8].try_into()?,
                };
                ICMP_HLEN
            }
            other => bail!("IP protocol {other} is not supported"),
        };
        if p.protocol() != IPPROTO_ICMP {
            p.src.set_port(be16(seg, 0));
            p.dst.set_port(be16(seg, 2));
        }
        p.payload = seg[header_len..].to_vec();
        Ok(p)
    }
}

/// The RFC 1071 Internet checksum of `data` (an odd length is padded with a
/// zero byte). Over data that includes a correct checksum field it is 0.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u64 = data
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying `body` as EtherType `ethertype`.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HLEN + body.len());
    f.extend(dst);
    f.extend(src);
    f.extend(ethertype.to_be_bytes());
    f.extend(body);
    f
}

/// A broadcast ARP request from [`POD_MAC`]: who has `target`? Tell `sender`.
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut body = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1]; // Ethernet, IPv4, request
    body.extend(POD_MAC);
    body.extend(sender.octets());
    body.extend([0; 6]);
    body.extend(target.octets());
    ethernet([0xff; 6], POD_MAC, ETH_P_ARP, &body)
}

/// An IPv6 UDP datagram from [`POD_MAC`] to [`HOST_MAC`], checksummed.
pub fn ipv6_udp(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(UDP_HLEN + payload.len()).expect("UDP length");
    let mut udp = [
        sport.to_be_bytes(),
        dport.to_be_bytes(),
        len.to_be_bytes(),
        [0; 2],
    ]
    .concat();
    udp.extend(payload);
    let pseudo = [
        &src.octets()[..],
        &dst.octets(),
        &u32::from(len).to_be_bytes(),
        &[0, 0, 0, IPPROTO_UDP],
    ];
    let sum = match internet_checksum(&[&pseudo.concat()[..], &udp].concat()) {
        0 => 0xffff,
        sum => sum,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend(len.to_be_bytes());
    ip.extend([IPPROTO_UDP, 64]);
    ip.extend(src.octets());
    ip.extend(dst.octets());
    ip.extend(udp);
    ethernet(HOST_MAC, POD_MAC, ETH_P_IPV6, &ip)
}

fn check_options(what: &str, options: &[u8]) {
    assert!(
        options.len().is_multiple_of(4) && options.len() <= 40,
        "{what} options must be a multiple of 4 bytes, at most 40"
    );
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port)
    }

    #[test]
    fn checksum_matches_the_textbook_ipv4_header() {
        // The worked example of Wikipedia's "IPv4 header checksum" article.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&header), 0xb861);
    }

    #[test]
    fn checksum_pads_an_odd_length() {
        assert_eq!(internet_checksum(&[0x12, 0x34, 0x56]), !0x6834);
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    #[test]
    fn frames_round_trip_through_parse() {
        let packets = [
            Packet {
                tcp_options: vec![2, 4, 5, 0xb4],
                ..Packet::tcp(sa(1, 40000), sa(2, 80), TCP_SYN, 7, 0)
            },
            Packet::tcp(sa(1, 40000), sa(2, 80), TCP_PSH | TCP_ACK, 8, 9)
                .with_payload(vec![0xab; 1001]),
            Packet {
                ip_options: vec![1, 1, 1, 0],
                ..Packet::udp(sa(3, 53), sa(4, 5353))
            },
            Packet {
                transport: Transport::Udp { checksum: false },
                ..Packet::udp(sa(3, 53), sa(4, 53))
            }
            .with_payload(*b"abc"),
            Packet::icmp(*sa(5, 0).ip(), *sa(6, 0).ip(), ICMP_ECHO, 0, [0, 1, 0, 2])
                .with_payload(*b"ping"),
        ];
        for p in packets {
            let bytes = p.to_bytes();
            assert_eq!(Packet::parse(&bytes).unwrap(), p);
        }
    }

    #[test]
    fn parse_refuses_a_corrupted_checksum() {
        let good = Packet::udp(sa(1, 1000), sa(2, 2000))
            .with_payload(*b"data")
            .to_bytes();
        for (at, what) in [(ETH_HLEN + 10, "IPv4 header"), (ETH_HLEN + 20 + 6, "UDP")] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            let err = Packet::parse(&bad).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
    }
}
