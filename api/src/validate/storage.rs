//! PersistentVolume, PersistentVolumeClaim and StorageClass rules, in
//! Kubernetes' words; and the rules of their updates (what may change once
//! created). jotasu's volumes are directories: `local` or `hostPath`,
//! absolute paths without `..`, never `/`; `Block` volumes are refused.

use crate::error::FieldError;
use crate::kinds::storage::{
    ACCESS_MODES, FILESYSTEM, PersistentVolume, PersistentVolumeClaim, STORAGE, StorageClass,
};
use crate::path::FieldPath;
use crate::quantity::Quantity;
use crate::validate::{name, names};

/// A PersistentVolume.
pub(super) fn persistent_volume(pv: &PersistentVolume, errs: &mut Vec<FieldError>) {
    let spec = &pv.spec;
    let p = FieldPath::new("spec");
    access_modes(
        &spec.access_modes,
        &p.field("accessModes"),
        "must specify at least 1 access mode",
        errs,
    );
    let cp = p.field("capacity");
    if spec.capacity.is_empty() {
        errs.push(FieldError::required(&cp, ""));
    } else if !spec.capacity.contains_key(STORAGE) || spec.capacity.len() > 1 {
        let keys: Vec<&str> = spec.capacity.keys().map(String::as_str).collect();
        errs.push(FieldError::not_supported(&cp, keys.join(","), &[STORAGE]));
    }
    if let Some(q) = spec.capacity.get(STORAGE) {
        positive(q, &bracket(&cp, STORAGE), errs);
    }
    if let Some(policy) = spec.persistent_volume_reclaim_policy.as_deref() {
        match policy {
            "Delete" | "Retain" => {}
            "Recycle" => errs.push(FieldError::forbidden(
                &p.field("persistentVolumeReclaimPolicy"),
                "jotasu does not support the deprecated Recycle policy; use Delete or Retain",
            )),
            other => errs.push(FieldError::not_supported(
                &p.field("persistentVolumeReclaimPolicy"),
                other,
                &["Delete", "Recycle", "Retain"],
            )),
        }
    }
    class_name(
        spec.storage_class_name.as_deref(),
        &p.field("storageClassName"),
        errs,
    );
    volume_mode(spec.volume_mode.as_deref(), &p.field("volumeMode"), errs);
    match (&spec.local, &spec.host_path) {
        (None, None) => errs.push(FieldError::required(
            &p,
            "must specify a volume type (jotasu supports local and hostPath)",
        )),
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            &p.field("hostPath"),
            "may not specify more than 1 volume type",
        )),
        _ => {}
    }
    if let Some(l) = &spec.local {
        let lp = p.field("local");
        node_path(&l.path, &lp.field("path"), errs);
        if l.fs_type.as_deref().is_some_and(|t| !t.is_empty()) {
            errs.push(FieldError::forbidden(
                &lp.field("fsType"),
                "jotasu does not support block devices as local volumes; give a directory",
            ));
        }
        if spec.node_affinity.is_none() {
            errs.push(FieldError::required(
                &p.field("nodeAffinity"),
                "Local volume requires node affinity",
            ));
        }
    }
    if let Some(h) = &spec.host_path {
        let hp = p.field("hostPath");
        node_path(&h.path, &hp.field("path"), errs);
        if let Some(t) = h.type_.as_deref()
            && !super::pod_volumes::HOST_PATH_TYPES.contains(&t)
        {
            errs.push(FieldError::not_supported(
                &hp.field("type"),
                t,
                &super::pod_volumes::HOST_PATH_TYPES,
            ));
        }
    }
    if let Some(a) = &spec.node_affinity {
        let ap = p.field("nodeAffinity").field("required");
        match &a.required {
            None => errs.push(FieldError::required(
                &ap,
                "must specify required node constraints",
            )),
            Some(sel) => {
                let tp = ap.field("nodeSelectorTerms");
                if sel.node_selector_terms.is_empty() {
                    errs.push(FieldError::required(
                        &tp,
                        "must have at least one node selector term",
                    ));
                }
                for (i, t) in sel.node_selector_terms.iter().enumerate() {
                    super::affinity::node_selector_term(t, &tp.index(i), errs);
                }
            }
        }
    }
    if let Some(c) = &spec.claim_ref {
        let rp = p.field("claimRef");
        if c.name.as_deref().is_none_or(str::is_empty) {
            errs.push(FieldError::required(&rp.field("name"), ""));
        }
        if c.namespace.as_deref().is_none_or(str::is_empty) {
            errs.push(FieldError::required(&rp.field("namespace"), ""));
        }
    }
}

/// A PersistentVolumeClaim.
pub(super) fn persistent_volume_claim(pvc: &PersistentVolumeClaim, errs: &mut Vec<FieldError>) {
    claim_spec(&pvc.spec, &FieldPath::new("spec"), errs);
}

/// A claim's spec at `p` (a claim's, or a StatefulSet's claim template's).
pub(super) fn claim_spec(
    spec: &crate::kinds::storage::PersistentVolumeClaimSpec,
    p: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if spec.access_modes.iter().any(|m| m == "ReadWriteOncePod") {
        errs.push(FieldError::forbidden(
            &p.field("accessModes"),
            "jotasu does not enforce ReadWriteOncePod (one pod at a time); use ReadWriteOnce (one node at a time, which local volumes are)",
        ));
    }
    access_modes(
        &spec.access_modes,
        &p.field("accessModes"),
        "at least 1 access mode is required",
        errs,
    );
    let rp = p.field("resources");
    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.get(STORAGE));
    match request {
        None => errs.push(FieldError::required(&bracket(&rp, STORAGE), "")),
        Some(q) => positive(q, &bracket(&rp, STORAGE), errs),
    }
    if let Some(r) = &spec.resources {
        for (key, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (res, q) in map {
                if res != STORAGE {
                    errs.push(FieldError::not_supported(
                        &rp.field(key).key(res),
                        res,
                        &[STORAGE],
                    ));
                } else if q.is_negative() {
                    errs.push(FieldError::invalid(
                        &rp.field(key).key(res),
                        q,
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
        if let (Some(req), Some(lim)) = (r.requests.get(STORAGE), r.limits.get(STORAGE))
            && req.nanos() > lim.nanos()
        {
            errs.push(FieldError::invalid(
                &rp.field("requests").key(STORAGE),
                req,
                format!("must be less than or equal to storage limit ({lim})"),
            ));
        }
    }
    if let Some(s) = &spec.selector {
        super::workloads::label_selector(s, &p.field("selector"), errs);
    }
    class_name(
        spec.storage_class_name.as_deref(),
        &p.field("storageClassName"),
        errs,
    );
    volume_mode(spec.volume_mode.as_deref(), &p.field("volumeMode"), errs);
    if let Some(v) = spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
        name(names::dns1123_subdomain, v, &p.field("volumeName"), errs);
    }
}

/// A StorageClass.
pub(super) fn storage_class(sc: &StorageClass, errs: &mut Vec<FieldError>) {
    let p = FieldPath::new("provisioner");
    if sc.provisioner.is_empty() {
        errs.push(FieldError::required(&p, ""));
    } else if sc.provisioner.len() > 63 {
        errs.push(FieldError::new(
            &p,
            "Too long: may not be more than 63 bytes",
        ));
    } else if let Err(e) = names::qualified_name(&sc.provisioner.to_ascii_lowercase()) {
        errs.push(FieldError::invalid(&p, &sc.provisioner, e));
    }
    let pp = FieldPath::new("parameters");
    if sc.parameters.keys().any(String::is_empty) {
        errs.push(FieldError::invalid(
            &pp,
            "",
            "parameter keys may not be empty",
        ));
    }
    if sc.provisioner == crate::kinds::storage::LOCAL_PROVISIONER && !sc.parameters.is_empty() {
        errs.push(FieldError::forbidden(
            &pp,
            "the jotasu.io/local provisioner takes no parameters",
        ));
    }
    if let Some(r) = sc.reclaim_policy.as_deref()
        && !matches!(r, "Delete" | "Retain")
    {
        errs.push(FieldError::not_supported(
            &FieldPath::new("reclaimPolicy"),
            r,
            &["Delete", "Retain"],
        ));
    }
    if let Some(m) = sc.volume_binding_mode.as_deref()
        && !matches!(m, "Immediate" | "WaitForFirstConsumer")
    {
        errs.push(FieldError::not_supported(
            &FieldPath::new("volumeBindingMode"),
            m,
            &["Immediate", "WaitForFirstConsumer"],
        ));
    }
    let tp = FieldPath::new("allowedTopologies");
    for (i, term) in sc.allowed_topologies.iter().enumerate() {
        let ep = tp.index(i).field("matchLabelExpressions");
        if term.match_label_expressions.is_empty() {
            errs.push(FieldError::required(
                &ep,
                "must have at least one label selector expression",
            ));
        }
        for (j, r) in term.match_label_expressions.iter().enumerate() {
            if let Err(e) = names::qualified_name(&r.key) {
                errs.push(FieldError::invalid(&ep.index(j).field("key"), &r.key, e));
            }
            if r.values.is_empty() {
                errs.push(FieldError::required(
                    &ep.index(j).field("values"),
                    "must specify as least one value",
                ));
            }
        }
    }
}

/// What a claim's update may change: once bound, nothing of the spec but
/// `resources.requests` (Kubernetes' rule; jotasu then refuses a change
/// of size, as it does not resize volumes); before, nothing of the spec
/// but what binding fills in.
pub fn pvc_update(new: &PersistentVolumeClaim, old: &PersistentVolumeClaim) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut a = new.spec.clone();
    let mut b = old.spec.clone();
    // What the system assigns (the class at admission, the volume at binding).
    if b.volume_name.as_deref().is_none_or(str::is_empty) {
        a.volume_name = None;
        b.volume_name = None;
    }
    if b.storage_class_name.is_none() {
        a.storage_class_name = None;
    }
    let (ra, rb) = (a.resources.take(), b.resources.take());
    if a != b {
        errs.push(FieldError::forbidden(
            &FieldPath::new("spec"),
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let size = |r: &Option<crate::kinds::storage::VolumeResourceRequirements>| {
        r.as_ref()
            .and_then(|r| r.requests.get(STORAGE))
            .map(Quantity::nanos)
    };
    if size(&ra) != size(&rb) {
        errs.push(FieldError::forbidden(
            &FieldPath::new("spec")
                .field("resources")
                .field("requests")
                .key(STORAGE),
            "jotasu does not resize volumes: the size of a claim cannot change; make a new claim",
        ));
    }
    errs
}

/// What a PersistentVolume's update may change: not its source, node
/// affinity or volume mode.
pub fn pv_update(new: &PersistentVolume, old: &PersistentVolume) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let p = FieldPath::new("spec");
    if new.spec.local != old.spec.local || new.spec.host_path != old.spec.host_path {
        errs.push(FieldError::forbidden(
            &p.field("persistentvolumesource"),
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    if old.spec.node_affinity.is_some() && new.spec.node_affinity != old.spec.node_affinity {
        errs.push(FieldError::new(
            &p.field("nodeAffinity"),
            "Invalid value: field is immutable once set",
        ));
    }
    if new.spec.volume_mode != old.spec.volume_mode {
        errs.push(FieldError::invalid(
            &p.field("volumeMode"),
            new.spec.volume_mode.as_deref().unwrap_or(""),
            "field is immutable",
        ));
    }
    errs
}

/// What a StorageClass's update may change: not its provisioner,
/// parameters, reclaim policy or binding mode.
pub fn storage_class_update(new: &StorageClass, old: &StorageClass) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.parameters != old.parameters {
        errs.push(FieldError::forbidden(
            &FieldPath::new("parameters"),
            "updates to parameters are forbidden.",
        ));
    }
    if new.provisioner != old.provisioner {
        errs.push(FieldError::forbidden(
            &FieldPath::new("provisioner"),
            "updates to provisioner are forbidden.",
        ));
    }
    if new.reclaim_policy != old.reclaim_policy {
        errs.push(FieldError::forbidden(
            &FieldPath::new("reclaimPolicy"),
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    if new.volume_binding_mode != old.volume_binding_mode {
        errs.push(FieldError::invalid(
            &FieldPath::new("volumeBindingMode"),
            new.volume_binding_mode.as_deref().unwrap_or(""),
            "field is immutable",
        ));
    }
    errs
}

fn access_modes(modes: &[String], path: &FieldPath, missing: &str, errs: &mut Vec<FieldError>) {
    if modes.is_empty() {
        errs.push(FieldError::required(path, missing));
    }
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            let mut sorted = ACCESS_MODES.to_vec();
            sorted.sort_unstable();
            errs.push(FieldError::not_supported(path, m, &sorted));
        }
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// `path[key]`, as Kubernetes writes a key of a resource map.
fn bracket(path: &FieldPath, key: &str) -> FieldPath {
    FieldPath::new(&format!("{path}[{key}]"))
}

fn positive(q: &Quantity, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if q.nanos() <= 0 {
        errs.push(FieldError::invalid(path, q, "must be greater than zero"));
    }
}

fn class_name(class: Option<&str>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(c) = class.filter(|c| !c.is_empty()) {
        name(names::dns1123_subdomain, c, path, errs);
    }
}

fn volume_mode(mode: Option<&str>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    match mode {
        None => {}
        Some(m) if m == FILESYSTEM => {}
        Some("Block") => errs.push(FieldError::forbidden(
            path,
            "jotasu does not support Block volumes; use Filesystem",
        )),
        Some(m) => errs.push(FieldError::not_supported(path, m, &["Block", "Filesystem"])),
    }
}

/// A volume's directory on the node: absolute, without `..`, not `/`.
fn node_path(p: &str, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if p.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !p.starts_with('/') {
        errs.push(FieldError::invalid(path, p, "must be an absolute path"));
    } else if p.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(path, p, "must not contain '..'"));
    } else if p.split('/').all(str::is_empty) {
        errs.push(FieldError::invalid(
            path,
            p,
            "must not be the root directory: a volume is a directory of its own",
        ));
    }
}
