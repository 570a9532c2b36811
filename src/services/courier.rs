//! Delivers the outbox. Every node runs one; a message is claimed under a
//! lease before it is sent, so two nodes never both send it, and it is
//! deleted (with the token inside it) as soon as the server takes it.
//! A failed attempt is retried with exponential backoff; a node that dies
//! mid-send leaves a lease that runs out, and the message is sent again.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::error::AppError;
use crate::mail::transport::Mailer;
use crate::repo::outbox;

/// How long a claimed message is this node's to send: well past the SMTP
/// timeout, so no other node sends it while this one still may.
const LEASE: TimeDelta = TimeDelta::minutes(5);
/// The longest wait between two attempts at one message.
const MAX_BACKOFF: TimeDelta = TimeDelta::minutes(5);
/// How often a node looks for messages that others queued, or that are
/// due for a retry.
const POLL: Duration = Duration::from_secs(2);
/// Messages looked at per round.
const BATCH: u64 = 20;

/// The outbox's delivery worker.
pub struct Courier {
    pub db: DatabaseConnection,
    pub mailer: Mailer,
    pub clock: Clock,
    pub wake: Arc<Notify>,
}

impl Courier {
    /// Delivers until the task is dropped: at once when this node queued a
    /// message, and every poll for the rest.
    pub async fn run(self) {
        loop {
            match self.deliver_due().await {
                // A full batch: there may be more already due.
                Ok(seen) if seen as u64 == BATCH => continue,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = ?err, "outbox: cannot read; will retry"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One round: claims and sends each due message; returns how many were due.
    pub async fn deliver_due(&self) -> Result<usize, AppError> {
        let now = self.clock.now();
        let due = outbox::due(&self.db, now, BATCH).await?;
        for message in &due {
            let now = self.clock.now();
            if !outbox::claim(&self.db, message.id, now, now + LEASE).await? {
                continue; // another node has it
            }
            let attempt = message.attempts + 1;
            match self.mailer.send(message).await {
                Ok(()) => {
                    outbox::delivered(&self.db, message.id).await?;
                    tracing::info!(message_id = %message.id, attempt, "mail delivered");
                }
                Err(failure) if failure.permanent => {
                    // Retrying cannot help, and the message holds a token.
                    outbox::delivered(&self.db, message.id).await?;
                    tracing::warn!(
                        message_id = %message.id, attempt, reason = %failure.reason,
                        "mail refused for good; dropped"
                    );
                }
                Err(failure) => {
                    let retry_at = self.clock.now() + backoff(attempt);
                    outbox::failed(&self.db, message.id, retry_at, &failure.reason).await?;
                    tracing::warn!(
                        message_id = %message.id, attempt, reason = %failure.reason,
                        %retry_at, "mail not delivered; will retry"
                    );
                }
            }
        }
        Ok(due.len())
    }
}

/// 1 s after the first failure, doubling, at most [`MAX_BACKOFF`].
fn backoff(attempt: i32) -> TimeDelta {
    let exponent = attempt.clamp(1, 20) - 1;
    TimeDelta::seconds(1i64 << exponent).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let waits: Vec<i64> = (1..=12).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(waits[..5], [1, 2, 4, 8, 16]);
        assert_eq!(waits[9..], [300, 300, 300]);
        assert_eq!(backoff(i32::MAX).num_seconds(), 300);
    }
}
