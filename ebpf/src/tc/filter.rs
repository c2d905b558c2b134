//! `from_pod` (clsact ingress) and `to_pod` (clsact egress) on a pod veth
//! as tc filters: cls_bpf in direct-action mode, at jotasu's own priority
//! and handle. They live as long as the device, with no pin.
use std::io;

use aya::programs::{
    SchedClassifier,
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcFilterBpfOption, TcHandle as NlHandle, TcMessage, TcOption},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::Side;
use crate::{Attached, attach::ifindex, error::DatapathError};

/// jotasu's filter priority on pod veths (lower runs first).
pub(crate) const POD_FILTER_PRIORITY: u16 = 1;
/// jotasu's filter handle at [`POD_FILTER_PRIORITY`].
pub(crate) const POD_FILTER_HANDLE: u32 = 1;

fn options() -> NlOptions {
    NlOptions {
        priority: POD_FILTER_PRIORITY,
        handle: TcHandle::from(POD_FILTER_HANDLE),
        classid: None,
    }
}

fn attach_err(
    action: &'static str,
    side: Side,
    ifname: &str,
    e: aya::programs::ProgramError,
) -> DatapathError {
    DatapathError::Program {
        action,
        program: side.program(),
        target: ifname.to_owned(),
        source: Box::new(e),
    }
}

/// Attaches `prog` to `side` of `ifname` (in the calling thread's network
/// namespace), adding the clsact qdisc if missing. A filter already at
/// jotasu's priority and handle is replaced in place, atomically.
pub(super) fn attach(
    prog: &mut SchedClassifier,
    ifname: &str,
    side: Side,
) -> Result<Attached, DatapathError> {
    ifindex(ifname)?;
    if let Err(e) = tc::qdisc_add_clsact(ifname) {
        let exists =
            matches!(&e, tc::TcError::NetlinkError(n) if n.raw_os_error() == Some(libc::EEXIST));
        if !exists {
            return Err(attach_err(
                "adding the clsact qdisc for",
                side,
                ifname,
                e.into(),
            ));
        }
    }
    let (id, outcome) = match prog.attach_with_options(
        ifname,
        side.attach_type(),
        TcAttachOptions::Netlink(options()),
    ) {
        Ok(id) => (id, Attached::New),
        Err(e) if is_exists(&e) => {
            let o = options();
            let link = SchedClassifierLink::attached(
                ifname,
                side.attach_type(),
                o.priority,
                o.handle,
                None,
            )
            .map_err(|_| DatapathError::NoSuchInterface {
                name: ifname.to_owned(),
            })?;
            let id = prog
                .attach_to_link(link)
                .map_err(|e| attach_err("replacing", side, ifname, e))?;
            (id, Attached::Replaced)
        }
        Err(e) => return Err(attach_err("attaching", side, ifname, e)),
    };
    let link = prog
        .take_link(id)
        .map_err(|e| attach_err("taking the link of", side, ifname, e))?;
    // Dropping an aya tc link detaches the filter; the filter must outlive
    // this process, and the link holds nothing but numbers.
    std::mem::forget(link);
    Ok(outcome)
}

fn is_exists(e: &aya::programs::ProgramError) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.raw_os_error() == Some(libc::EEXIST)
        {
            return true;
        }
        if let Some(tc::TcError::NetlinkError(n)) = err.downcast_ref::<tc::TcError>()
            && n.raw_os_error() == Some(libc::EEXIST)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Removes jotasu's filter from `side` of `ifname`. Returns whether there was one.
pub(super) fn detach(ifname: &str, side: Side) -> Result<bool, DatapathError> {
    if !attached(ifname, side)? {
        return Ok(false);
    }
    let o = options();
    let link =
        SchedClassifierLink::attached(ifname, side.attach_type(), o.priority, o.handle, None)
            .map_err(|_| DatapathError::NoSuchInterface {
                name: ifname.to_owned(),
            })?;
    use aya::programs::links::Link as _;
    link.detach()
        .map_err(|e| attach_err("detaching", side, ifname, e))?;
    Ok(true)
}

/// Whether `side`'s program runs on `ifname` at jotasu's priority and handle.
pub(super) fn attached(ifname: &str, side: Side) -> Result<bool, DatapathError> {
    let index = ifindex(ifname)?;
    Ok(filters(index, side)
        .map_err(|source| DatapathError::Io {
            action: "listing tc filters of",
            path: ifname.into(),
            source,
        })?
        .iter()
        .any(|f| {
            f.priority == POD_FILTER_PRIORITY
                && f.handle == POD_FILTER_HANDLE
                && f.program
                    .as_deref()
                    .is_some_and(|p| p.starts_with(side.program()))
        }))
}

/// One tc filter, as much of it as jotasu looks at.
#[derive(Debug)]
struct Filter {
    priority: u16,
    handle: u32,
    /// The BPF program's name, for a bpf filter.
    program: Option<String>,
}

/// The filters on `side` of interface `index`'s clsact, dumped over rtnetlink.
fn filters(index: u32, side: Side) -> io::Result<Vec<Filter>> {
    let bad = |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;

    let mut msg = TcMessage::with_index(i32::try_from(index).map_err(|e| bad(&e))?);
    msg.header.parent = NlHandle {
        major: NlHandle::CLSACT.major,
        minor: match side {
            Side::Ingress => NlHandle::MIN_INGRESS,
            Side::Egress => NlHandle::MIN_EGRESS,
        },
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut req = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetTrafficFilter(msg)),
    );
    req.finalize();
    let mut buf = vec![0; req.buffer_len()];
    req.serialize(&mut buf);
    socket.send(&buf, 0)?;

    let mut filters = Vec::new();
    loop {
        let (data, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < data.len() {
            let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                .map_err(|e| bad(&e))?;
            let len = reply.header.length as usize;
            match reply.payload {
                NetlinkPayload::Done(_) => return Ok(filters),
                NetlinkPayload::Error(e) => {
                    return Err(e.code.map_or_else(
                        || bad(&"netlink error without a code"),
                        |c| io::Error::from_raw_os_error(-c.get()),
                    ));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(m)) => {
                    if let Some(f) = filter(&m) {
                        filters.push(f);
                    }
                }
                _ => {}
            }
            if len == 0 {
                return Err(bad(&"netlink message of length 0"));
            }
            offset += len;
        }
    }
}

/// A filter entry (the kernel also lists one bare entry per priority).
fn filter(m: &TcMessage) -> Option<Filter> {
    let handle = u32::from(m.header.handle);
    if handle == 0 {
        return None;
    }
    let program = m.attributes.iter().find_map(|a| match a {
        TcAttribute::Options(opts) => opts.iter().find_map(|o| match o {
            TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => Some(n.clone()),
            _ => None,
        }),
        _ => None,
    });
    Some(Filter {
        priority: (m.header.info >> 16) as u16,
        handle,
        program,
    })
}
