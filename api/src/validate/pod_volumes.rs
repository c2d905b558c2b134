//! Pod volume rules: one source each (ConfigMap, Secret, emptyDir,
//! downwardAPI, projected, hostPath, persistentVolumeClaim), projected files, modes and paths,
//! and jotasu's refusals (service account tokens, mount propagation).

use std::collections::BTreeSet;

use crate::error::FieldError;
use crate::kinds::pod::{DownwardApiVolumeFile, KeyToPath, Volume};
use crate::path::FieldPath;
use crate::validate::{name, names};

/// Checks volumes; returns their names.
pub(super) fn volumes<'a>(
    volumes: &'a [Volume],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        name(names::dns1123_label, &v.name, &p.field("name"), errs);
        if !seen.insert(v.name.as_str()) {
            errs.push(FieldError::duplicate(&p.field("name"), &v.name));
        }
        let sources = usize::from(v.config_map.is_some())
            + usize::from(v.secret.is_some())
            + usize::from(v.empty_dir.is_some())
            + usize::from(v.downward_api.is_some())
            + usize::from(v.projected.is_some())
            + usize::from(v.host_path.is_some())
            + usize::from(v.persistent_volume_claim.is_some());
        match sources {
            0 => errs.push(FieldError::required(
                &p,
                "must specify a volume type (jotasu supports configMap, secret, emptyDir, downwardAPI, projected, hostPath and persistentVolumeClaim)",
            )),
            1 => {}
            _ => errs.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 volume type",
            )),
        }
        if let Some(cm) = &v.config_map {
            let cp = p.field("configMap");
            name(names::dns1123_subdomain, &cm.name, &cp.field("name"), errs);
            projection(&cm.items, cm.default_mode, &cp, errs);
        }
        if let Some(s) = &v.secret {
            let sp = p.field("secret");
            name(
                names::dns1123_subdomain,
                &s.secret_name,
                &sp.field("secretName"),
                errs,
            );
            projection(&s.items, s.default_mode, &sp, errs);
        }
        if let Some(ed) = &v.empty_dir {
            let ep = p.field("emptyDir");
            if let Some(m) = ed
                .medium
                .as_deref()
                .filter(|m| !m.is_empty() && *m != "Memory")
            {
                errs.push(FieldError::not_supported(
                    &ep.field("medium"),
                    m,
                    &["", "Memory"],
                ));
            }
            if let Some(q) = ed.size_limit.as_ref().filter(|q| q.is_negative()) {
                errs.push(FieldError::invalid(
                    &ep.field("sizeLimit"),
                    q,
                    "must be greater than or equal to 0",
                ));
            }
        }
        if let Some(d) = &v.downward_api {
            let dp = p.field("downwardAPI");
            file_mode(d.default_mode, &dp.field("defaultMode"), errs);
            downward_files(&d.items, &dp.field("items"), errs);
        }
        if let Some(pr) = &v.projected {
            projected(pr, &p.field("projected"), errs);
        }
        if let Some(c) = &v.persistent_volume_claim {
            let cp = p.field("persistentVolumeClaim").field("claimName");
            if c.claim_name.is_empty() {
                errs.push(FieldError::required(&cp, ""));
            } else {
                name(names::dns1123_subdomain, &c.claim_name, &cp, errs);
            }
        }
        if let Some(h) = &v.host_path {
            let hp = p.field("hostPath");
            if h.path.is_empty() {
                errs.push(FieldError::required(&hp.field("path"), ""));
            } else if h.path.split('/').any(|part| part == "..") {
                errs.push(FieldError::invalid(
                    &hp.field("path"),
                    &h.path,
                    "must not contain '..'",
                ));
            }
            if let Some(t) = h.type_.as_deref()
                && !HOST_PATH_TYPES.contains(&t)
            {
                errs.push(FieldError::not_supported(
                    &hp.field("type"),
                    t,
                    &HOST_PATH_TYPES,
                ));
            }
        }
    }
    seen
}

/// `hostPath.type` values (`""`: no check).
pub const HOST_PATH_TYPES: [&str; 8] = [
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

fn downward_files(items: &[DownwardApiVolumeFile], path: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        relative_path(&item.path, &p.field("path"), errs);
        file_mode(item.mode, &p.field("mode"), errs);
        match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), None) => super::downward::field_ref(f, false, &p.field("fieldRef"), errs),
            (None, Some(r)) => {
                super::downward::resource_field_ref(r, true, &p.field("resourceFieldRef"), errs);
            }
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &p,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            )),
            (None, None) => errs.push(FieldError::required(
                &p,
                "one of fieldRef and resourceFieldRef is required",
            )),
        }
    }
}

fn projected(
    pr: &crate::kinds::pod::ProjectedVolumeSource,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    file_mode(pr.default_mode, &path.field("defaultMode"), errs);
    for (i, src) in pr.sources.iter().enumerate() {
        let p = path.field("sources").index(i);
        let count = usize::from(src.config_map.is_some())
            + usize::from(src.secret.is_some())
            + usize::from(src.downward_api.is_some())
            + usize::from(src.service_account_token.is_some())
            + usize::from(src.cluster_trust_bundle.is_some())
            + usize::from(src.pod_certificate.is_some());
        if count > 1 {
            errs.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 volume type per source",
            ));
        }
        if let Some(cm) = &src.config_map {
            let cp = p.field("configMap");
            name(names::dns1123_subdomain, &cm.name, &cp.field("name"), errs);
            projection(&cm.items, None, &cp, errs);
        }
        if let Some(s) = &src.secret {
            let sp = p.field("secret");
            name(names::dns1123_subdomain, &s.name, &sp.field("name"), errs);
            projection(&s.items, None, &sp, errs);
        }
        if let Some(d) = &src.downward_api {
            downward_files(&d.items, &p.field("downwardAPI").field("items"), errs);
        }
        if src.service_account_token.is_some() {
            errs.push(FieldError::forbidden(
                &p.field("serviceAccountToken"),
                "jotasu mounts no service account tokens yet; remove this source",
            ));
        }
        for (field, set) in [
            ("clusterTrustBundle", src.cluster_trust_bundle.is_some()),
            ("podCertificate", src.pod_certificate.is_some()),
        ] {
            if set {
                errs.push(FieldError::forbidden(
                    &p.field(field),
                    format!("jotasu does not support {field} projections yet; remove this source"),
                ));
            }
        }
    }
}

fn projection(
    items: &[KeyToPath],
    mode: Option<i32>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    file_mode(mode, &path.field("defaultMode"), errs);
    for (i, item) in items.iter().enumerate() {
        let p = path.field("items").index(i);
        name(names::config_key, &item.key, &p.field("key"), errs);
        relative_path(&item.path, &p.field("path"), errs);
        file_mode(item.mode, &p.field("mode"), errs);
    }
}

fn file_mode(mode: Option<i32>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(m) = mode
        && !(0..=0o777).contains(&m)
    {
        errs.push(FieldError::invalid(
            path,
            m,
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
}

pub(super) fn relative_path(p: &str, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if p.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if p.starts_with('/') {
        errs.push(FieldError::invalid(path, p, "must be a relative path"));
    } else if p.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(path, p, "must not contain '..'"));
    }
}
