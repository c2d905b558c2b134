//! [`EtcdPki`]: a small CA of an etcd cluster this harness runs, made on
//! start (as kubeadm's `etcd/ca`): each member's certificate (server and
//! peer, for its address) and one client certificate for the control
//! planes. Members require client certificates from this CA on both the
//! client and the peer port, so nothing but the control planes (and the
//! other members) talks to them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{DevError, Result};

/// The files of an etcd cluster's PKI, in one directory.
#[derive(Debug, Clone)]
pub struct EtcdPki {
    dir: PathBuf,
}

impl EtcdPki {
    /// Makes a CA in `dir` (created, mode 0700), a certificate for each
    /// member address in `members` (`member-<i>.crt`/`.key`) and the
    /// client certificate `client.crt`/`.key` (CN `jotasu-controlplane`).
    pub fn create(dir: &Path, members: &[IpAddr]) -> Result<Self> {
        {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(DevError::io("creating", dir))?;
        }
        let me = Self {
            dir: dir.to_owned(),
        };
        let cert = |what: &str| {
            let what = what.to_owned();
            move |e: rcgen::Error| DevError::State(format!("etcd PKI: {what}: {e}"))
        };
        let ca_key = KeyPair::generate().map_err(cert("generating the CA key"))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(cert("CA"))?;
        ca.distinguished_name.push(DnType::CommonName, "etcd-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(cert("self-signing"))?;
        me.write("ca.crt", &ca_cert.pem())?;
        me.write("ca.key", &ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |name: &str, cn: &str, sans: Vec<String>, file: &str| -> Result<()> {
            let key = KeyPair::generate().map_err(cert(name))?;
            let mut p = CertificateParams::new(sans).map_err(cert(name))?;
            p.distinguished_name.push(DnType::CommonName, cn);
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            p.use_authority_key_identifier_extension = true;
            let c = p.signed_by(&key, &issuer).map_err(cert(name))?;
            me.write(&format!("{file}.crt"), &c.pem())?;
            me.write(&format!("{file}.key"), &key.serialize_pem())
        };
        for (i, ip) in members.iter().enumerate() {
            let name = format!("etcd-member-{i}");
            leaf(
                &name,
                &name,
                vec![ip.to_string(), "127.0.0.1".into(), "localhost".into()],
                &format!("member-{i}"),
            )?;
        }
        leaf("the client", "jotasu-controlplane", Vec::new(), "client")?;
        Ok(me)
    }

    fn write(&self, name: &str, pem: &str) -> Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.dir.join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(pem.as_bytes()))
            .map_err(DevError::io("writing", &path))
    }

    /// The CA certificate (`--trusted-ca-file`, `--etcd-cafile`).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Member `i`'s certificate and key.
    pub fn member(&self, i: usize) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("member-{i}.crt")),
            self.dir.join(format!("member-{i}.key")),
        )
    }

    /// The client certificate and key (`--etcd-certfile`, `--etcd-keyfile`).
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.crt"), self.dir.join("client.key"))
    }

    /// The control plane's flags for this PKI: `--etcd-cafile`,
    /// `--etcd-certfile`, `--etcd-keyfile`.
    pub fn controlplane_args(&self) -> Vec<String> {
        let (cert, key) = self.client();
        vec![
            "--etcd-cafile".into(),
            self.ca_cert().display().to_string(),
            "--etcd-certfile".into(),
            cert.display().to_string(),
            "--etcd-keyfile".into(),
            key.display().to_string(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_ca_members_and_a_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = EtcdPki::create(
            &dir.path().join("pki"),
            &["192.168.77.1".parse().expect("ip")],
        )
        .expect("created");
        let (cert, key) = pki.member(0);
        let (ccert, ckey) = pki.client();
        for f in [pki.ca_cert(), cert, key.clone(), ccert, ckey] {
            let text = std::fs::read_to_string(&f).expect("written");
            assert!(text.starts_with("-----BEGIN"), "{}", f.display());
        }
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let args = pki.controlplane_args();
        assert_eq!(args[0], "--etcd-cafile");
        assert_eq!(args.len(), 6);
    }
}
