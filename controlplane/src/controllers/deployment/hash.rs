//! The `pod-template-hash`: a stable name for a pod template, as Kubernetes
//! renders it (FNV-1a 32 of the template, its decimal digits mapped onto
//! consonants and digits that cannot spell words), plus a collision count
//! when two templates hash alike.

/// The label carrying the hash on a ReplicaSet, its selector and its pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The characters Kubernetes' `rand.SafeEncodeString` maps onto.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Maps each character onto [`SAFE`] (`rand.SafeEncodeString`).
fn safe_encode(text: &str) -> String {
    text.chars()
        .map(|c| char::from(SAFE[(c as usize) % SAFE.len()]))
        .collect()
}

/// The hash of `template` (its JSON, which is canonical: fields in
/// declaration order, maps sorted), with `collisions` appended when set.
pub fn pod_template_hash(
    template: &jotasu_api::PodTemplateSpec,
    collisions: Option<u32>,
) -> String {
    hash_bytes(
        &serde_json::to_vec(template).unwrap_or_default(),
        collisions,
    )
}

/// The safe-encoded FNV-1a hash of `bytes` with `collisions` appended
/// when set (a ControllerRevision's name is `<owner>-<hash of its data>`).
pub fn hash_bytes(bytes: &[u8], collisions: Option<u32>) -> String {
    let mut bytes = bytes.to_vec();
    if let Some(n) = collisions {
        bytes.extend_from_slice(n.to_string().as_bytes());
    }
    safe_encode(&fnv1a32(&bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::PodTemplateSpec;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn stable_safe_and_sensitive() {
        let mut t = PodTemplateSpec::default();
        t.metadata.labels.insert("app".into(), "web".into());
        let h = pod_template_hash(&t, None);
        assert_eq!(h, pod_template_hash(&t.clone(), None));
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.bytes().all(|b| SAFE.contains(&b)), "{h}");
        assert_ne!(h, pod_template_hash(&t, Some(1)));
        t.metadata.labels.insert("v".into(), "2".into());
        assert_ne!(h, pod_template_hash(&t, None));
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }
}
