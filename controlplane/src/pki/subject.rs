//! Subjects with several O values (a user in several groups, as Kubernetes
//! reads them), which rcgen's `DistinguishedName` cannot hold (one value
//! per attribute type): the subject of an rcgen-made certificate is
//! replaced in its DER and the certificate signed again.

use rcgen::SigningKey;

/// DER of a subject with `O=<each group>` then `CN=<common_name>`, each
/// attribute a UTF8String in an RDN of its own.
pub(super) fn name(common_name: &str, groups: &[String]) -> Vec<u8> {
    const ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];
    const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
    let rdn = |oid: &[u8], value: &str| {
        let mut pair = wrap(0x06, oid);
        pair.extend(wrap(0x0c, value.as_bytes()));
        wrap(0x31, &wrap(0x30, &pair))
    };
    let mut rdns: Vec<u8> = groups.iter().flat_map(|g| rdn(&ORGANIZATION, g)).collect();
    rdns.extend(rdn(&COMMON_NAME, common_name));
    wrap(0x30, &rdns)
}

/// `cert_der` with its subject replaced by `subject` (DER), signed again
/// by `key` with the algorithm the certificate already names.
pub(super) fn replace_subject(
    cert_der: &[u8],
    subject: &[u8],
    key: &impl SigningKey,
) -> Result<Vec<u8>, rcgen::Error> {
    let malformed = || rcgen::Error::CouldNotParseCertificate;
    let (_, cert, _) = tlv(cert_der).ok_or_else(malformed)?;
    let (tbs_tag, tbs, rest) = tlv(cert).ok_or_else(malformed)?;
    let (_, _, after_alg) = tlv(rest).ok_or_else(malformed)?;
    let algorithm = &rest[..rest.len() - after_alg.len()];
    if tbs_tag != 0x30 {
        return Err(malformed());
    }
    // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, …
    let mut parts = Vec::new();
    let mut input = tbs;
    while !input.is_empty() {
        let (_, _, rest) = tlv(input).ok_or_else(malformed)?;
        parts.push(&input[..input.len() - rest.len()]);
        input = rest;
    }
    let subject_at = if parts.first().and_then(|p| p.first()) == Some(&0xa0) {
        5
    } else {
        4
    };
    if parts.len() <= subject_at {
        return Err(malformed());
    }
    let mut content = Vec::with_capacity(tbs.len() + subject.len());
    for (i, part) in parts.iter().enumerate() {
        content.extend_from_slice(if i == subject_at { subject } else { part });
    }
    let tbs = wrap(0x30, &content);
    let signature = key.sign(&tbs)?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    let mut body = tbs;
    body.extend_from_slice(algorithm);
    body.extend(wrap(0x03, &bits));
    Ok(wrap(0x30, &body))
}

/// One DER element: (tag, content, what follows it). Single-byte tags
/// and definite lengths only, as certificates use.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// `tag`, the DER length of `content`, `content`.
fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(wrap(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = vec![0u8; 300];
        let w = wrap(0x04, &long);
        assert_eq!(&w[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tag, content, rest) = tlv(&w).unwrap();
        assert_eq!((tag, content.len(), rest.len()), (0x04, 300, 0));
        assert!(tlv(&w[..100]).is_none());
        assert!(tlv(&[0x30, 0x80]).is_none());
    }
}
