//! Questions about the caller's own rights: who the server takes it for
//! (`auth whoami`) and whether a user may do something (`auth can-i`).

use super::Client;
use super::error::ClientError;
use crate::grpc::v1;

/// The server's answer to an access review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Whether it is allowed.
    pub allowed: bool,
    /// What allowed it, or why not.
    pub reason: String,
}

impl Client {
    /// Who the server takes this client for: its user name and groups.
    pub async fn who_am_i(&self) -> Result<(String, Vec<String>), ClientError> {
        let r = self
            .raw()
            .who_am_i(v1::WhoAmIRequest {})
            .await?
            .into_inner();
        Ok((r.username, r.groups))
    }

    /// Whether `user` (None: this client) may do what `attributes` say.
    pub async fn access_review(
        &self,
        attributes: v1::ResourceAttributes,
        user: Option<(&str, &[String])>,
    ) -> Result<Review, ClientError> {
        let (user, groups) = user.map_or((String::new(), Vec::new()), |(u, g)| {
            (u.to_owned(), g.to_vec())
        });
        let r = self
            .raw()
            .access_review(v1::AccessReviewRequest {
                attributes: Some(attributes),
                user,
                groups,
            })
            .await?
            .into_inner();
        Ok(Review {
            allowed: r.allowed,
            reason: r.reason,
        })
    }
}
