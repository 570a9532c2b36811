//! Proof by TOTP code: the account's sealed secret, opened, checks the
//! code, and its time step is accepted once, on every node.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::domain::totp;
use crate::error::AppError;
use crate::repo::totp_factors;
use crate::services::auth::AuthService;

/// Which factor row a code is checked against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::services::auth) enum Stage {
    /// The active factor, at sign-in or step-up.
    Confirmed,
    /// An enrolment waiting for its first code, begun after `since`;
    /// accepting the code confirms it at the given instant.
    Pending { since: DateTime<Utc> },
}

impl AuthService {
    /// Whether `code` is the account's current TOTP code, not used before.
    /// The step it proves is recorded in `db` (a transaction, so that a
    /// sign-in that fails later gives it back).
    pub(in crate::services::auth) async fn accept_totp(
        &self,
        db: &impl ConnectionTrait,
        user_id: Uuid,
        code: &str,
        stage: Stage,
        now: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        let Some(factor) = totp_factors::find(db, user_id).await? else {
            return Ok(false);
        };
        let usable = match stage {
            Stage::Confirmed => factor.confirmed_at.is_some(),
            Stage::Pending { since } => factor.confirmed_at.is_none() && factor.created_at > since,
        };
        if !usable {
            return Ok(false);
        }
        let secret = self
            .second_factor
            .secrets
            .open(user_id, &factor.key_id, &factor.secret)?;
        let Some(step) = totp::matching_step(&secret, code.trim(), now.timestamp()) else {
            return Ok(false);
        };
        // Accepted only if later than every step before: a replay, here or
        // on another node, loses.
        let confirm = matches!(stage, Stage::Pending { .. }).then_some(now);
        Ok(totp_factors::accept_step(db, user_id, step, confirm).await?)
    }
}
