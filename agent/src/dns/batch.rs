//! Datagrams by the batch: `recvmmsg` takes up to [`BATCH`] queries in one
//! system call and `sendmmsg` sends their replies in one, where a loop of
//! `recvfrom`/`sendto` makes two calls per query. Under load most of a
//! query's cost is those calls, not the answer.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::SockAddr;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// The largest query taken over UDP; a longer one is dropped (TCP carries
/// anything: no client sends a question this long over UDP).
pub const SLOT: usize = 4096;

/// Buffers for one `recvmmsg`: the datagrams and their senders.
pub struct Batch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: [libc::socklen_t; BATCH],
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            bufs: vec![0; BATCH * SLOT],
            lens: [0; BATCH],
            truncated: [false; BATCH],
            // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            addr_lens: [0; BATCH],
        }
    }
}

impl Batch {
    /// Receives what is waiting on the nonblocking socket `fd`, up to
    /// [`BATCH`] datagrams: how many (`WouldBlock` when none).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain data; all zeroes is valid.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (iov, hdr)) in iovs.iter_mut().zip(hdrs.iter_mut()).enumerate() {
            iov.iov_base = self.bufs[i * SLOT..].as_mut_ptr().cast();
            iov.iov_len = SLOT;
            hdr.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            hdr.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a buffer of SLOT bytes and an
        // address slot inside `self`, which outlive the call; the kernel
        // writes at most BATCH headers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        for (i, hdr) in hdrs.iter().take(n).enumerate() {
            self.lens[i] = (hdr.msg_len as usize).min(SLOT);
            self.truncated[i] = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.addr_lens[i] = hdr.msg_hdr.msg_namelen;
        }
        Ok(n)
    }

    /// Datagram `i` of the last [`Self::recv`] and its sender; `None` when
    /// it was longer than [`SLOT`] or its sender is not an IP address.
    pub fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= BATCH || self.truncated[i] {
            return None;
        }
        let bytes = &self.bufs[i * SLOT..i * SLOT + self.lens[i]];
        Some((bytes, socket_addr(&self.addrs[i], self.addr_lens[i])?))
    }
}

/// The IP address and port in a sockaddr the kernel wrote (`len` bytes).
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says a sockaddr_in is there, and the
            // storage is large and aligned enough for any sockaddr.
            let a = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

/// Sends `replies` (to their addresses) on the nonblocking socket `fd` with
/// one `sendmmsg`: how many went (`WouldBlock` when none could).
pub fn send(fd: RawFd, replies: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
    let replies = &replies[..replies.len().min(BATCH)];
    let addrs: Vec<SockAddr> = replies.iter().map(|(a, _)| SockAddr::from(*a)).collect();
    // SAFETY: iovec and mmsghdr are plain data; all zeroes is valid.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (i, (_, bytes)) in replies.iter().enumerate() {
        iovs[i].iov_base = bytes.as_ptr().cast_mut().cast();
        iovs[i].iov_len = bytes.len();
        hdrs[i].msg_hdr.msg_name = addrs[i].as_ptr().cast_mut().cast();
        hdrs[i].msg_hdr.msg_namelen = addrs[i].len();
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first replies.len() headers point at the replies' bytes
    // and addresses, which outlive the call; the kernel only reads them.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr(),
            replies.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd as _;

    #[test]
    fn a_batch_goes_and_comes_back_in_one_call_each() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        server.set_nonblocking(true).expect("nonblocking");
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut batch = Batch::default();
        let err = batch.recv(server.as_raw_fd()).expect_err("nothing yet");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        for i in 0..5u8 {
            client
                .send_to(&[i; 3], server.local_addr().expect("addr"))
                .expect("send");
        }
        client
            .send_to(&vec![9; SLOT + 1], server.local_addr().expect("addr"))
            .expect("send a long one");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n = batch.recv(server.as_raw_fd()).expect("recv");
        assert_eq!(n, 6);
        let me = client.local_addr().expect("addr");
        let mut replies = Vec::new();
        for i in 0..5 {
            let (bytes, from) = batch.datagram(i).expect("a datagram");
            assert_eq!((bytes, from), (&[i as u8; 3][..], me));
            replies.push((from, bytes.iter().map(|b| b + 100).collect::<Vec<u8>>()));
        }
        assert!(batch.datagram(5).is_none(), "longer than a slot: dropped");
        assert_eq!(send(server.as_raw_fd(), &replies).expect("send"), 5);
        let mut buf = [0u8; 16];
        for i in 0..5u8 {
            let (n, from) = client.recv_from(&mut buf).expect("reply");
            assert_eq!(
                (&buf[..n], from),
                (&[i + 100; 3][..], server.local_addr().expect("addr"))
            );
        }
    }
}
