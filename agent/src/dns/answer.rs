//! The answer to one DNS query from the index: a reply for the cluster's
//! zones (authoritative, TTL 5 s as Kubernetes), or `Forward` for names
//! another server owns. Also the wire edges: parsing, and encoding that
//! truncates (TC) to what the client can take over UDP.

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::DecodeError;

use super::index::{DnsIndex, Lookup, Rdata, normalize};

/// The TTL of every record, as Kubernetes' DNS uses.
pub const TTL: u32 = 5;

/// The largest UDP reply a client that sends no EDNS can take.
pub const UDP_MIN: usize = 512;

/// The UDP payload size we advertise in our EDNS replies.
pub const EDNS_PAYLOAD: u16 = 1232;

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send this reply.
    Reply(Message),
    /// The name is not ours: pass the query to the upstream resolver.
    Forward,
}

/// Why bytes are not a DNS message, or a reply could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The bytes do not decode.
    #[error("malformed DNS message: {0}")]
    Decode(#[from] DecodeError),
    /// The reply does not encode.
    #[error("cannot encode DNS reply: {0}")]
    Encode(#[from] ProtoError),
}

/// Decodes a message.
pub fn parse(bytes: &[u8]) -> Result<Message, DnsError> {
    Ok(Message::from_vec(bytes)?)
}

/// The FORMERR reply to bytes that do not parse, when they hold at least a
/// header (the id is copied); `None` when there is nothing to reply to
/// (too short, or itself a response).
pub fn reply_to_malformed(bytes: &[u8]) -> Option<Message> {
    let header: [u8; 12] = bytes.get(..12)?.try_into().ok()?;
    if header[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([header[0], header[1]]);
    let mut reply = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
    reply.metadata.recursion_desired = header[2] & 0x01 != 0;
    reply.metadata.recursion_available = true;
    Some(reply)
}

/// The largest reply the query's sender takes over UDP: its EDNS payload
/// size, at least 512.
pub fn udp_limit(query: &Message) -> usize {
    usize::from(query.max_payload()).max(UDP_MIN)
}

/// Encodes a reply; when it exceeds `limit` bytes, the records are dropped
/// and TC is set, so the client retries over TCP.
pub fn encode(reply: &Message, limit: usize) -> Result<Vec<u8>, DnsError> {
    let bytes = reply.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    Ok(reply.truncate().to_vec()?)
}

fn reply_to(query: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::error_msg(query.metadata.id, OpCode::Query, code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.checking_disabled = query.metadata.checking_disabled;
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        reply.edns = Some(edns);
    }
    reply
}

/// Answers a query from the index.
pub fn answer(index: &DnsIndex, query: &Message) -> Answer {
    if query.metadata.message_type != MessageType::Query {
        return Answer::Reply(reply_to(query, ResponseCode::FormErr));
    }
    if query.metadata.op_code != OpCode::Query {
        return Answer::Reply(reply_to(query, ResponseCode::NotImp));
    }
    if query.edns.as_ref().is_some_and(|e| e.version() > 0) {
        // RFC 6891 §6.1.3: only EDNS version 0 is spoken here.
        return Answer::Reply(reply_to(query, ResponseCode::BADVERS));
    }
    let [question] = query.queries.as_slice() else {
        return Answer::Reply(reply_to(query, ResponseCode::FormErr));
    };
    if question.query_class() != DNSClass::IN {
        return Answer::Reply(reply_to(query, ResponseCode::FormErr));
    }
    let qname = question.name().to_ascii();
    let Some(zone) = index.zone_of(&qname).map(str::to_owned) else {
        return Answer::Forward;
    };
    let mut reply = reply_to(query, ResponseCode::NoError);
    reply.metadata.authoritative = true;
    reply.add_query(question.clone());
    let qtype = question.query_type();
    let records = match index.lookup(&qname) {
        Lookup::Found(records) => records,
        Lookup::NotFound | Lookup::Outside => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            reply.add_authorities(soa(index, &zone));
            return Answer::Reply(reply);
        }
    };
    let apex = normalize(&qname) == zone;
    if apex && matches!(qtype, RecordType::SOA | RecordType::ANY) {
        reply.add_answers(soa(index, &zone));
    }
    let owner = question.name().clone();
    for data in &records {
        let alias = matches!(data, Rdata::Cname(_));
        if qtype == RecordType::ANY || qtype == type_of(data) || alias {
            reply.add_answers(to_record(&owner, data));
        }
        // An alias inside the cluster domain: its target's records follow.
        if let (Rdata::Cname(target), false) = (data, qtype == RecordType::CNAME) {
            chase(index, target, qtype, &mut reply);
        }
    }
    if reply.answers.is_empty() {
        reply.add_authorities(soa(index, &zone));
    }
    Answer::Reply(reply)
}

fn chase(index: &DnsIndex, target: &str, qtype: RecordType, reply: &mut Message) {
    let (Lookup::Found(records), Some(owner)) = (index.lookup(target), fqdn(target)) else {
        return;
    };
    for data in records
        .iter()
        .filter(|d| qtype == RecordType::ANY || qtype == type_of(d))
    {
        reply.add_answers(to_record(&owner, data));
    }
}

fn type_of(data: &Rdata) -> RecordType {
    match data {
        Rdata::A(_) => RecordType::A,
        Rdata::Cname(_) => RecordType::CNAME,
        Rdata::Srv { .. } => RecordType::SRV,
        Rdata::Ptr(_) => RecordType::PTR,
        Rdata::Txt(_) => RecordType::TXT,
    }
}

/// A name of the index as an absolute DNS name.
fn fqdn(name: &str) -> Option<Name> {
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    Some(n)
}

fn to_record(owner: &Name, data: &Rdata) -> Option<Record> {
    let rdata = match data {
        Rdata::A(ip) => RData::A(A(*ip)),
        Rdata::Cname(target) => RData::CNAME(CNAME(fqdn(target)?)),
        Rdata::Srv { port, target } => RData::SRV(SRV::new(0, 100, *port, fqdn(target)?)),
        Rdata::Ptr(target) => RData::PTR(PTR(fqdn(target)?)),
        Rdata::Txt(text) => RData::TXT(TXT::new(vec![text.clone()])),
    };
    Some(Record::from_rdata(owner.clone(), TTL, rdata))
}

/// The zone's SOA, as CoreDNS writes it (`ns.dns.ZONE`,
/// `hostmaster.ZONE`, refresh 7200, retry 1800, expire 86400, minimum TTL).
fn soa(index: &DnsIndex, zone: &str) -> Option<Record> {
    let owner = fqdn(zone)?;
    let mname = fqdn(&format!("ns.dns.{zone}"))?;
    let rname = fqdn(&format!("hostmaster.{zone}"))?;
    let data = SOA::new(mname, rname, index.serial(), 7200, 1800, 86400, TTL);
    Some(Record::from_rdata(owner, TTL, RData::SOA(data)))
}

/// The question of a query for `name` and `qtype` (for tests and the server).
pub fn query_for(id: u16, name: &str, qtype: RecordType) -> Option<Message> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(fqdn(name)?, qtype));
    Some(m)
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
