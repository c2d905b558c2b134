//! Binary encoding of the embedded file's records (little-endian,
//! length-prefixed; a leading version byte so the format can evolve).
use crate::store::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

const FORMAT: u8 = 1;

/// A key's stored record (the key is the table key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: u64,
}

impl Record {
    pub fn into_kv(self, key: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }
}

pub(super) fn encode_record(r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(25 + r.value.len());
    out.push(FORMAT);
    out.extend_from_slice(&r.create_revision.to_le_bytes());
    out.extend_from_slice(&r.mod_revision.to_le_bytes());
    out.extend_from_slice(&r.version.to_le_bytes());
    out.extend_from_slice(&r.value);
    out
}

pub(super) fn decode_record(bytes: &[u8]) -> Result<Record, StoreError> {
    let mut r = Reader::new(bytes);
    r.format()?;
    Ok(Record {
        create_revision: r.u64()?,
        mod_revision: r.u64()?,
        version: r.u64()?,
        value: r.rest().to_vec(),
    })
}

/// Encodes the events of one revision (a log entry).
pub(super) fn encode_events(events: &[WatchEvent]) -> Vec<u8> {
    let mut out = vec![FORMAT];
    put_u64(&mut out, events.len() as u64);
    for e in events {
        out.push(match e.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        put_kv(&mut out, &e.kv);
        match &e.prev_kv {
            None => out.push(0),
            Some(prev) => {
                out.push(1);
                put_kv(&mut out, prev);
            }
        }
    }
    out
}

/// Decodes a log entry written at `revision`.
pub(super) fn decode_events(
    revision: Revision,
    bytes: &[u8],
) -> Result<Vec<WatchEvent>, StoreError> {
    let mut r = Reader::new(bytes);
    r.format()?;
    let n = r.u64()?;
    let mut events = Vec::new();
    for _ in 0..n {
        let kind = match r.u8()? {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            k => {
                return Err(StoreError::Corrupt(format!(
                    "unknown event kind {k} at revision {revision}"
                )));
            }
        };
        let kv = r.kv()?;
        let prev_kv = match r.u8()? {
            0 => None,
            _ => Some(r.kv()?),
        };
        events.push(WatchEvent {
            kind,
            kv,
            prev_kv,
            revision,
        });
    }
    Ok(events)
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_kv(out: &mut Vec<u8>, kv: &KeyValue) {
    put_bytes(out, &kv.key);
    put_bytes(out, &kv.value);
    put_u64(out, kv.create_revision);
    put_u64(out, kv.mod_revision);
    put_u64(out, kv.version);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.buf.len() < n {
            return Err(StoreError::Corrupt(format!(
                "record truncated: needs {n} more bytes, has {}",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = usize::try_from(self.u64()?)
            .map_err(|_| StoreError::Corrupt("length does not fit in memory".into()))?;
        self.take(n)
    }

    fn kv(&mut self) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: self.bytes()?.to_vec(),
            value: self.bytes()?.to_vec(),
            create_revision: self.u64()?,
            mod_revision: self.u64()?,
            version: self.u64()?,
        })
    }

    fn format(&mut self) -> Result<(), StoreError> {
        match self.u8()? {
            FORMAT => Ok(()),
            v => Err(StoreError::Corrupt(format!("unknown record format {v}"))),
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_events_round_trip() {
        let rec = Record {
            value: b"v".to_vec(),
            create_revision: 3,
            mod_revision: 9,
            version: 4,
        };
        assert_eq!(decode_record(&encode_record(&rec)).unwrap(), rec);
        let kv = rec.clone().into_kv(b"/k");
        let events = vec![
            WatchEvent {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev_kv: Some(kv.clone()),
                revision: 9,
            },
            WatchEvent {
                kind: EventKind::Delete,
                kv,
                prev_kv: None,
                revision: 9,
            },
        ];
        assert_eq!(decode_events(9, &encode_events(&events)).unwrap(), events);
        assert!(decode_events(9, &encode_events(&events)[..10]).is_err());
        assert!(decode_record(&[7, 0]).is_err());
    }
}
