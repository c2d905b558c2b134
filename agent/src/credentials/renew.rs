//! Renewing the node certificate before it expires, as the kubelet's
//! certificate manager does: once 70–90 % (jittered) of its lifetime has
//! passed, a new key and CSR go to the control plane authenticated by the
//! current certificate; the answer is saved and swapped into the shared
//! [`Credentials`], so new connections (to the control plane, and the
//! control plane's to this node) use it. Failures retry with backoff.

use std::sync::Arc;
use std::time::Duration;

use jotasu_api::client::Credentials;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::check::material;
use super::files::NodePki;
use super::join::{CertificateSource, obtain};

/// The share of the lifetime after which renewal starts, at least.
const EARLIEST: f64 = 0.7;
/// … and at most.
const LATEST: f64 = 0.9;
/// The first retry's delay; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest delay between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// When to renew a certificate valid from `not_before` to `not_after`
/// (Unix seconds): after `fraction` of its lifetime.
pub fn renew_at(not_before: i64, not_after: i64, fraction: f64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    // Lifetimes are far below 2^52 seconds: the conversion is exact.
    not_before + (lifetime as f64 * fraction.clamp(0.0, 1.0)) as i64
}

/// A share of the lifetime in [`EARLIEST`, `LATEST`], from `random` in
/// [0, 1), so nodes joined together do not renew together.
pub fn jittered(random: f64) -> f64 {
    EARLIEST + (LATEST - EARLIEST) * random.clamp(0.0, 1.0)
}

/// The delay before retry number `attempt` (1 is the first retry).
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// A number in [0, 1) (random enough to spread renewals).
fn random_fraction() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// What renews the node's certificate.
#[derive(Debug)]
pub struct Renewer<S> {
    /// Who signs (the control plane, reached with `credentials`).
    pub source: S,
    /// The control plane's URL, for messages.
    pub server: String,
    /// The node.
    pub node: String,
    /// The credentials to keep fresh.
    pub credentials: Arc<Credentials>,
    /// Where they are stored.
    pub pki: NodePki,
}

impl<S: CertificateSource> Renewer<S> {
    /// Renews whenever due until `stop`.
    #[tracing::instrument(name = "renew_node_certificate", skip_all, fields(node = %self.node))]
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let current = self.credentials.current();
            let Some(info) = current.identity() else {
                warn!("no node certificate to renew");
                return;
            };
            let due = renew_at(info.not_before, info.not_after, jittered(random_fraction()));
            let wait = u64::try_from(due - jotasu_api::meta::unix_now()).unwrap_or(0);
            info!(
                expires = %jotasu_api::Time::from_unix_seconds(info.not_after).0,
                renew_in_seconds = wait,
                "node certificate renewal scheduled"
            );
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(wait)) => {}
                () = crate::stopped(&mut stop) => return,
            }
            if !self.renew_until_done(&mut stop).await {
                return;
            }
        }
    }

    /// Tries until the certificate is renewed (true) or `stop` (false).
    async fn renew_until_done(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let mut attempt = 0;
        loop {
            match self.renew_once().await {
                Ok(not_after) => {
                    info!(
                        expires = %jotasu_api::Time::from_unix_seconds(not_after).0,
                        "node certificate renewed"
                    );
                    return true;
                }
                Err(e) => {
                    attempt += 1;
                    let delay = backoff(attempt);
                    let expired = self
                        .credentials
                        .current()
                        .identity()
                        .is_some_and(|i| !i.valid_at(jotasu_api::meta::unix_now()));
                    if expired {
                        error!(error = %e, retry_in = ?delay,
                            "the node certificate has expired and renewal failed: restart the agent with a new --token to join again");
                    } else {
                        warn!(error = %e, attempt, retry_in = ?delay, "node certificate renewal failed; retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = crate::stopped(stop) => return false,
                    }
                }
            }
        }
    }

    /// One renewal: returns the new certificate's expiry.
    async fn renew_once(&self) -> Result<i64, super::CredentialsError> {
        let ca_pem = self.credentials.current().ca_pem().to_owned();
        let stored = obtain(&self.source, &self.server, &self.node, &ca_pem, None).await?;
        let material =
            material(&stored).map_err(|source| super::CredentialsError::Certificate {
                what: "the renewed certificate",
                source,
            })?;
        let not_after = material.identity().map_or(0, |i| i.not_after);
        self.pki.save(&stored)?;
        self.credentials.replace(material);
        Ok(not_after)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renews_within_70_to_90_percent() {
        assert_eq!(renew_at(1000, 2000, 0.7), 1700);
        assert_eq!(renew_at(1000, 2000, jittered(0.0)), 1700);
        assert_eq!(renew_at(1000, 2000, jittered(0.999_999)), 1899);
        assert_eq!(renew_at(1000, 1000, 0.8), 1000);
        for _ in 0..100 {
            let f = jittered(random_fraction());
            assert!((EARLIEST..LATEST).contains(&f), "{f}");
        }
    }

    #[tokio::test]
    async fn renews_saves_and_swaps_the_credentials() {
        use crate::credentials::testing::FakeSource;
        let mut source = FakeSource::new();
        // A certificate that started 5 minutes ago and lasts 4 more
        // seconds: over 90 % of its life is gone, renewal is due at once.
        source.lifetime = Duration::from_secs(4);
        let ca = source.ca_pem();
        let first = super::super::join::obtain(&source, "cp", "n1", &ca, Some("a.b"))
            .await
            .unwrap();
        let creds = Arc::new(super::super::check::credentials(&first).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let pki = NodePki::new(dir.path());
        pki.save(&first).unwrap();
        source.lifetime = Duration::from_secs(3600);
        let renewer = Renewer {
            source,
            server: "cp".into(),
            node: "n1".into(),
            credentials: Arc::clone(&creds),
            pki: pki.clone(),
        };
        let (stop_tx, stop) = watch::channel(false);
        let mut generation = creds.generation();
        let task = tokio::spawn(renewer.run(stop));
        tokio::time::timeout(Duration::from_secs(10), generation.changed())
            .await
            .unwrap()
            .unwrap();
        let renewed = creds.current();
        let info = renewed.identity().unwrap();
        assert_eq!(info.node_name(), Some("n1"));
        assert!(info.not_after > jotasu_api::meta::unix_now() + 3000);
        let saved = pki.load().unwrap().unwrap();
        assert_eq!(Some(saved.cert_pem.as_str()), renewed.cert_pem());
        assert_ne!(saved.key_pem, first.key_pem, "a new key");
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn backs_off_doubling_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(7), Duration::from_secs(60));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(60));
    }
}
