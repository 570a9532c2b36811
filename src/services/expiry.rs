//! Recording when a session timed out: once, by whichever node first sees
//! it, a request or the purge.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use crate::context::SessionRecord;
use crate::domain::client::ClientInfo;
use crate::domain::security_event::EventKind;
use crate::domain::session_policy::SessionPolicies;
use crate::error::AppError;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::sessions;

/// Writes the event of a session's timeout. The first node to mark the
/// session's end recorded writes it, in the same transaction, dated when
/// the timeout ended the session. A failure is logged and left for the
/// purge to retry: the request it came from is refused either way.
pub async fn record(
    db: &DatabaseConnection,
    policies: &SessionPolicies,
    user_id: Uuid,
    session: &SessionRecord,
    now: DateTime<Utc>,
) {
    let expiry = policies
        .of(session.remember_me)
        .expiry(session.created_at, session.last_activity_at);
    let (detail, at) = if expiry.absolute_expires_at <= expiry.idle_expires_at {
        ("ABSOLUTE_TIMEOUT", expiry.absolute_expires_at)
    } else {
        ("IDLE_TIMEOUT", expiry.idle_expires_at)
    };
    // The session's own client: the device whose session ended.
    let client = ClientInfo {
        user_agent: session.user_agent.clone(),
        ip: session.ip_address.as_deref().and_then(|ip| ip.parse().ok()),
    };
    let recorded = async {
        let txn = db.begin().await?;
        if sessions::record_end(&txn, session.id, detail, policies, now).await? {
            let event = NewEvent::of(EventKind::SessionExpired, user_id, session.id, at)
                .detail(detail)
                .client(&client)
                .remembered(session.remember_me);
            security_events::insert(&txn, vec![event]).await?;
        }
        txn.commit().await
    };
    if let Err(err) = recorded.await {
        tracing::warn!(error = %err, session_id = %session.id, "recording an expiry failed; the purge will retry");
    }
}

/// Records the end of up to `limit` sessions that timed out by `now`
/// without a request seeing it; returns how many it found.
pub async fn record_unobserved(
    db: &DatabaseConnection,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<usize, AppError> {
    let expired = sessions::expired_unrecorded(db, policies, now, limit).await?;
    for session in &expired {
        record(
            db,
            policies,
            session.user_id,
            &SessionRecord::from(session),
            now,
        )
        .await;
    }
    Ok(expired.len())
}
