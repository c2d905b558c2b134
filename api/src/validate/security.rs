//! Security context rules: Kubernetes' (id ranges, capability and
//! privilege combinations, seccomp types) and jotasu's own refusals of the
//! fields it does not implement, each naming the field.

use crate::error::FieldError;
use crate::kinds::security::{
    PodSecurityContext, SeccompProfile, SecurityContext, capability_name,
};
use crate::path::FieldPath;

/// Why a field is refused: jotasu does not implement it.
fn unsupported(path: &FieldPath, what: &str, errs: &mut Vec<FieldError>) {
    errs.push(FieldError::forbidden(
        path,
        format!("jotasu does not support {what} yet; remove the field"),
    ));
}

fn id(value: Option<i64>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(v) = value
        && !(0..=i64::from(i32::MAX)).contains(&v)
    {
        errs.push(FieldError::invalid(
            path,
            v,
            "must be between 0 and 2147483647, inclusive",
        ));
    }
}

fn seccomp(p: &SeccompProfile, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let types = ["Localhost", "RuntimeDefault", "Unconfined"];
    if !types.contains(&p.type_.as_str()) {
        errs.push(FieldError::not_supported(
            &path.field("type"),
            &p.type_,
            &types,
        ));
        return;
    }
    let profile = p.localhost_profile.as_deref().filter(|s| !s.is_empty());
    match (p.type_.as_str(), profile) {
        ("Localhost", None) => errs.push(FieldError::required(
            &path.field("localhostProfile"),
            "must be set when seccomp type is Localhost",
        )),
        (t, Some(_)) if t != "Localhost" => errs.push(FieldError::invalid(
            &path.field("localhostProfile"),
            profile.unwrap_or_default(),
            "can only be set when seccomp type is Localhost",
        )),
        _ => {}
    }
    // Unconfined is no filter and RuntimeDefault the agent's default
    // profile; a node's own profile files are not read.
    if p.type_ == "Localhost" {
        errs.push(FieldError::forbidden(
            &path.field("type"),
            "jotasu does not load Localhost seccomp profiles: use RuntimeDefault (the runtime's default filter) or Unconfined",
        ));
    }
}

/// `spec.securityContext`.
pub(super) fn pod_security_context(
    sc: &PodSecurityContext,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    id(sc.run_as_user, &path.field("runAsUser"), errs);
    id(sc.run_as_group, &path.field("runAsGroup"), errs);
    id(sc.fs_group, &path.field("fsGroup"), errs);
    for (i, g) in sc.supplemental_groups.iter().enumerate() {
        id(Some(*g), &path.field("supplementalGroups").index(i), errs);
    }
    if let Some(p) = &sc.fs_group_change_policy {
        let policies = ["OnRootMismatch", "Always"];
        if !policies.contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                &path.field("fsGroupChangePolicy"),
                p,
                &policies,
            ));
        }
    }
    if let Some(p) = &sc.seccomp_profile {
        seccomp(p, &path.field("seccompProfile"), errs);
    }
    let refused = [
        (
            "supplementalGroupsPolicy",
            sc.supplemental_groups_policy.is_some(),
        ),
        ("seLinuxOptions", sc.se_linux_options.is_some()),
        ("seLinuxChangePolicy", sc.se_linux_change_policy.is_some()),
        ("appArmorProfile", sc.app_armor_profile.is_some()),
        ("sysctls", sc.sysctls.is_some()),
        ("windowsOptions", sc.windows_options.is_some()),
    ];
    for (field, set) in refused {
        if set {
            unsupported(&path.field(field), field, errs);
        }
    }
}

/// A container's `securityContext`.
pub(super) fn security_context(sc: &SecurityContext, path: &FieldPath, errs: &mut Vec<FieldError>) {
    id(sc.run_as_user, &path.field("runAsUser"), errs);
    id(sc.run_as_group, &path.field("runAsGroup"), errs);
    if let Some(caps) = &sc.capabilities {
        for (field, list) in [("add", &caps.add), ("drop", &caps.drop)] {
            for (i, name) in list.iter().enumerate() {
                if name != "ALL" && capability_name(name).is_none() {
                    errs.push(FieldError::invalid(
                        &path.field("capabilities").field(field).index(i),
                        name,
                        "not a Linux capability (names as NET_ADMIN or CAP_NET_ADMIN, or ALL)",
                    ));
                }
            }
        }
    }
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            errs.push(FieldError::invalid(
                path,
                "",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        let sys_admin = sc.capabilities.as_ref().is_some_and(|c| {
            c.add
                .iter()
                .any(|n| capability_name(n) == Some("SYS_ADMIN"))
        });
        if sys_admin {
            errs.push(FieldError::invalid(
                path,
                "",
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    if let Some(p) = &sc.seccomp_profile {
        seccomp(p, &path.field("seccompProfile"), errs);
    }
    if let Some(pm) = &sc.proc_mount {
        let kinds = ["Default", "Unmasked"];
        if !kinds.contains(&pm.as_str()) {
            errs.push(FieldError::not_supported(
                &path.field("procMount"),
                pm,
                &kinds,
            ));
        } else if pm != "Default" {
            unsupported(&path.field("procMount"), "procMount: Unmasked", errs);
        }
    }
    let refused = [
        ("seLinuxOptions", sc.se_linux_options.is_some()),
        ("appArmorProfile", sc.app_armor_profile.is_some()),
        ("windowsOptions", sc.windows_options.is_some()),
    ];
    for (field, set) in refused {
        if set {
            unsupported(&path.field(field), field, errs);
        }
    }
}
