//! Creating the PKI on start: the CA once (ten years), and the control
//! plane's own leaves — re-issued when the server's names change, when
//! the layout of the leaves changed, or within 30 days of expiry.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};

use super::{PkiError, PkiPaths, at, read, serial, write};
use jotasu_api::client::identity::CONTROLPLANE_USER;

/// The group of the admin certificate: it may do anything.
const MASTERS: &str = "system:masters";

/// The PEM material the TLS listener needs.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The CA certificate (clients' certificates must chain to it).
    pub ca_pem: String,
    /// The server certificate followed by the CA certificate, so a
    /// joining node sees the CA in the handshake (and pins it).
    pub cert_pem: String,
    /// The server key.
    pub key_pem: String,
}

/// What was issued, to decide when to re-issue.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    server_names: Vec<String>,
    leaf_not_after_unix: i64,
    /// [`LAYOUT`] when issued (0: before the admin had its group and the
    /// control plane its client certificate).
    #[serde(default)]
    layout: u32,
}

/// The set of leaves and their subjects; bumping it re-issues them.
const LAYOUT: u32 = 2;

const DAY: i64 = 86_400;
const CA_DAYS: i64 = 3_652;
const LEAF_DAYS: i64 = 365;
const RENEW_BEFORE_DAYS: i64 = 30;

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, "jotasu-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// One of the control plane's own leaves.
struct Leaf {
    file: &'static str,
    common_name: &'static str,
    groups: &'static [&'static str],
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
}

fn leaf_params(leaf: &Leaf, now: i64) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(leaf.names.clone())?;
    p.distinguished_name
        .push(DnType::CommonName, leaf.common_name);
    for g in leaf.groups {
        p.distinguished_name.push(DnType::OrganizationName, *g);
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![leaf.usage.clone()];
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(serial());
    p.not_before = at(now - DAY);
    p.not_after = at(now + LEAF_DAYS * DAY);
    Ok(p)
}

/// Creates what is missing or stale and returns the listener's material.
/// `server_names` are the DNS names and IPs the server certificate carries
/// (localhost and 127.0.0.1 are always added).
pub fn ensure(paths: &PkiPaths, server_names: &[String]) -> Result<ServerTls, PkiError> {
    let dir = &paths.dir;
    let cert_err = |what: &'static str| {
        let dir = dir.clone();
        move |source| PkiError::Cert { what, dir, source }
    };
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| PkiError::Io {
                path: dir.clone(),
                source,
            })?;
    }
    let now = jotasu_api::meta::unix_now();
    if !paths.ca_key().exists() || !paths.ca_cert().exists() {
        let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
        let mut params = ca_params().map_err(cert_err("CA parameters"))?;
        params.not_before = at(now - DAY);
        params.not_after = at(now + CA_DAYS * DAY);
        let cert = params
            .self_signed(&key)
            .map_err(cert_err("self-signing the CA"))?;
        write(&paths.ca_key(), &key.serialize_pem(), 0o600)?;
        write(&paths.ca_cert(), &cert.pem(), 0o644)?;
        // A new CA invalidates every leaf.
        let _ = std::fs::remove_file(paths.file("state.json"));
    }
    let ca_pem = read(&paths.ca_cert())?;
    let ca_key =
        KeyPair::from_pem(&read(&paths.ca_key())?).map_err(cert_err("reading the CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .map_err(cert_err("reading the CA certificate"))?;

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for n in server_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let leaves = [
        Leaf {
            file: "server",
            common_name: "jotasu-apiserver",
            groups: &[],
            names: names.clone(),
            usage: ExtendedKeyUsagePurpose::ServerAuth,
        },
        Leaf {
            file: "admin",
            common_name: "jotasu-admin",
            groups: &[MASTERS],
            names: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        },
        Leaf {
            file: "controlplane-client",
            common_name: CONTROLPLANE_USER,
            groups: &[],
            names: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
        },
    ];
    let state_path = paths.file("state.json");
    let state: State = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let fresh = state.server_names == names
        && state.layout == LAYOUT
        && state.leaf_not_after_unix - RENEW_BEFORE_DAYS * DAY > now
        && leaves.iter().all(|l| {
            paths.file(&format!("{}.crt", l.file)).exists()
                && paths.file(&format!("{}.key", l.file)).exists()
        });
    if !fresh {
        for leaf in &leaves {
            let key = KeyPair::generate().map_err(cert_err("generating a key"))?;
            let params = leaf_params(leaf, now).map_err(cert_err("certificate parameters"))?;
            let cert = params
                .signed_by(&key, &issuer)
                .map_err(cert_err("signing a certificate"))?;
            write(
                &paths.file(&format!("{}.key", leaf.file)),
                &key.serialize_pem(),
                0o600,
            )?;
            write(
                &paths.file(&format!("{}.crt", leaf.file)),
                &cert.pem(),
                0o644,
            )?;
        }
        let state = State {
            server_names: names,
            leaf_not_after_unix: now + LEAF_DAYS * DAY,
            layout: LAYOUT,
        };
        let json = serde_json::to_string_pretty(&state).unwrap_or_default();
        write(&state_path, &json, 0o644)?;
    }
    let server_pem = read(&paths.server_cert())?;
    Ok(ServerTls {
        cert_pem: format!("{}\n{}", server_pem.trim_end(), ca_pem),
        ca_pem,
        key_pem: read(&paths.server_key())?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jotasu_api::client::identity::{CertInfo, certs_from_pem, verify_issued_by};

    #[test]
    fn creates_once_and_reissues_on_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        let a = ensure(&paths, &[]).unwrap();
        let b = ensure(&paths, &[]).unwrap();
        assert_eq!(a.cert_pem, b.cert_pem, "nothing changed: nothing re-issued");
        let c = ensure(&paths, &["cp.example".into()]).unwrap();
        assert_ne!(
            a.cert_pem, c.cert_pem,
            "a new name re-issues the server certificate"
        );
        assert_eq!(a.ca_pem, c.ca_pem, "the CA stays");
        use std::os::unix::fs::PermissionsExt as _;
        for f in [
            "ca.key",
            "controlplane-client.key",
            "admin.key",
            "server.key",
        ] {
            let mode = std::fs::metadata(paths.file(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let mode = std::fs::metadata(&paths.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn the_listener_presents_the_chain_and_the_clients_have_their_identities() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        let tls = ensure(&paths, &[]).unwrap();
        let chain = certs_from_pem("chain", &tls.cert_pem).unwrap();
        let ca = certs_from_pem("ca", &tls.ca_pem).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], ca[0], "the CA follows the server certificate");
        verify_issued_by("server", &chain[0], &ca[0]).unwrap();

        let read_info = |p| CertInfo::from_pem("c", &std::fs::read_to_string(p).unwrap()).unwrap();
        let admin = read_info(paths.admin_cert());
        assert_eq!(admin.common_name, "jotasu-admin");
        assert_eq!(admin.organizations, [MASTERS]);
        let cp = read_info(paths.controlplane_client_cert());
        assert_eq!(cp.common_name, CONTROLPLANE_USER);
        assert!(cp.organizations.is_empty());
        let now = jotasu_api::meta::unix_now();
        assert!(cp.valid_at(now));
        assert!(read_info(paths.ca_cert()).valid_at(now + 3_000 * DAY));
    }

    #[test]
    fn leaves_of_an_older_layout_are_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        ensure(&paths, &[]).unwrap();
        let admin = std::fs::read_to_string(paths.admin_cert()).unwrap();
        // As an older control plane left it: no layout, no client certificate.
        let state = std::fs::read_to_string(paths.file("state.json")).unwrap();
        let mut state: serde_json::Value = serde_json::from_str(&state).unwrap();
        state.as_object_mut().unwrap().remove("layout");
        std::fs::write(paths.file("state.json"), state.to_string()).unwrap();
        std::fs::remove_file(paths.controlplane_client_cert()).unwrap();
        ensure(&paths, &[]).unwrap();
        assert!(paths.controlplane_client_cert().exists());
        assert_ne!(std::fs::read_to_string(paths.admin_cert()).unwrap(), admin);
    }
}
