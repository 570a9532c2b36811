//! Tells live subscriptions that a session ended by revocation, the moment
//! it commits. On one node an in-process broadcast carries it; nodes that
//! share PostgreSQL will also hear each other through LISTEN/NOTIFY.
//!
//! Timeouts need no notice: each subscription keeps a timer for the next
//! instant that matters.

use tokio::sync::broadcast;
use uuid::Uuid;

/// How many notices a slow subscriber may fall behind before it re-reads
/// its session from the database instead.
const BACKLOG: usize = 1024;

/// What ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Session(Uuid),
    /// Every session of an account (deleted).
    Account(Uuid),
}

/// The hub of revocation notices.
#[derive(Clone)]
pub struct SessionNotifier(broadcast::Sender<Notice>);

impl Default for SessionNotifier {
    fn default() -> Self {
        Self(broadcast::channel(BACKLOG).0)
    }
}

impl SessionNotifier {
    /// Announces that these sessions ended; call after the commit.
    pub fn ended(&self, sessions: impl IntoIterator<Item = Uuid>) {
        for id in sessions {
            self.send(Notice::Session(id));
        }
    }

    /// Announces that every session of an account ended.
    pub fn account_ended(&self, user_id: Uuid) {
        self.send(Notice::Account(user_id));
    }

    fn send(&self, notice: Notice) {
        // No subscriber is not an error.
        let _ = self.0.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.0.subscribe()
    }
}
