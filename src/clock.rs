//! The one source of the current time. The guard reads it once per request
//! and everything the request does is judged at that instant. Tests set it.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The system clock, or a clock that tests set by hand.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// A clock that stands at `at` until moved.
    pub fn manual(at: DateTime<Utc>) -> Self {
        Self::Manual(Arc::new(Mutex::new(truncate(at))))
    }

    /// The current instant, in whole microseconds: what PostgreSQL and
    /// SQLite store, so a value written is exactly the value kept.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => truncate(Utc::now()),
            Self::Manual(at) => *at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// Moves a manual clock to `at`; the system clock cannot be moved.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Self::Manual(now) = self {
            *now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = truncate(at);
        }
    }
}

fn truncate(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(at)
}
