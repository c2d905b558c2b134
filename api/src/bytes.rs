//! `Bytes`: binary values that travel as standard base64 (Secret `data`,
//! ConfigMap `binaryData`), with a small hand-written codec.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Binary data, written as standard padded base64 in YAML and JSON.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Bytes(pub Vec<u8>);

/// Why a string is not valid base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    /// A character outside the base64 alphabet (or misplaced padding).
    #[error("illegal base64 data at input byte {0}")]
    IllegalByte(usize),
    /// The length is not a multiple of four.
    #[error("illegal base64 data: length {0} is not a multiple of 4 (missing padding?)")]
    Length(usize),
}

/// Encodes `data` as standard padded base64.
pub fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes standard padded base64 (the encoding Kubernetes uses for `[]byte`).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, Base64Error> {
    let input = text.as_bytes();
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for (q, quad) in input.chunks(4).enumerate() {
        let base = q * 4;
        if quad.len() != 4 {
            // Point at the first byte that cannot be valid, as Go does.
            return Err(match quad.iter().position(|c| sextet(*c).is_none()) {
                Some(i) => Base64Error::IllegalByte(base + i),
                None => Base64Error::Length(input.len()),
            });
        }
        let last = base + 4 == input.len();
        let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            let first_pad = quad.iter().position(|c| *c == b'=').unwrap_or(0);
            return Err(Base64Error::IllegalByte(base + first_pad));
        }
        let mut n = 0u32;
        for (i, c) in quad[..4 - pad].iter().enumerate() {
            n = (n << 6) | sextet(*c).ok_or(Base64Error::IllegalByte(base + i))?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

impl Bytes {
    /// The data as UTF-8 text, if it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secret values never go to logs.
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_base64(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        decode_base64(&text)
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "pässwörd\0\u{7f}",
        ] {
            let enc = encode_base64(s.as_bytes());
            assert_eq!(decode_base64(&enc).unwrap(), s.as_bytes(), "{s:?} -> {enc}");
        }
        assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode_base64(b"fo"), "Zm8=");
        assert_eq!(decode_base64("cGFzc3dvcmQ=").unwrap(), b"password");
    }

    #[test]
    fn rejects_invalid() {
        assert_eq!(decode_base64("abc"), Err(Base64Error::Length(3)));
        assert_eq!(decode_base64("ab!d"), Err(Base64Error::IllegalByte(2)));
        assert_eq!(decode_base64("Zm8=Zm8="), Err(Base64Error::IllegalByte(3)));
        assert_eq!(decode_base64("Z==="), Err(Base64Error::IllegalByte(1)));
        assert_eq!(
            decode_base64("not base64!"),
            Err(Base64Error::IllegalByte(3))
        );
        assert!(format!("{:?}", Bytes::from("secret")).contains("6 bytes"));
    }
}
