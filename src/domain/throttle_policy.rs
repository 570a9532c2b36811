//! When repeated sign-in attempts lock a key, and for how long: pure
//! functions of `now`, so the growth, the cap and the daily budget are
//! unit-tested without waiting.
//!
//! An attempt is counted before its password is checked, so attempts in
//! flight together cannot all pass a check that only failures would move.
//! A key forgets its count only after a whole window with neither an
//! attempt nor a lock, so waiting out a lock never resets it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The throttle policy of each kind of key; `None`: that key is not kept.
#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicies {
    pub account: ThrottlePolicy,
    pub address: Option<ThrottlePolicy>,
    pub registration: Option<ThrottlePolicy>,
    /// Successful sign-ins of one account.
    pub signin: ThrottlePolicy,
    /// E-mails asked for one address (reset and verification links).
    pub mail_address: ThrottlePolicy,
    /// E-mails asked for from one client address, across addresses.
    pub mail_client: Option<ThrottlePolicy>,
    /// Wrong second-factor codes for one account.
    pub code_account: ThrottlePolicy,
    /// Wrong second-factor codes from one client address.
    pub code_address: Option<ThrottlePolicy>,
    /// Passkey sign-ins begun from one client address.
    pub ceremony_address: Option<ThrottlePolicy>,
}

/// The limit for one kind of key (an account, or a client address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before the key locks.
    pub max_failures: u32,
    /// A counter resets after this long without a failure.
    pub window: TimeDelta,
    /// The first lock; each further failure doubles it.
    pub lockout: TimeDelta,
    /// The longest lock.
    pub max_lockout: TimeDelta,
    /// A plain rate (e-mails per hour): once a lock has passed, the count
    /// starts again, so one request as each lock ends cannot keep a key
    /// locked for ever.
    pub forgets_after_lock: bool,
}

impl ThrottlePolicy {
    /// Builds a policy from settings; durations beyond chrono's range saturate.
    pub fn new(
        max_failures: u32,
        window: Duration,
        lockout: Duration,
        max_lockout: Duration,
    ) -> Self {
        let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        Self {
            max_failures,
            window: delta(window),
            lockout: delta(lockout),
            max_lockout: delta(max_lockout),
            forgets_after_lock: false,
        }
    }

    /// `max` per `period`: the key locks for the rest of the period at the
    /// limit, and starts afresh when the lock ends.
    pub fn rate(max: u32, period: Duration) -> Self {
        Self {
            forgets_after_lock: true,
            ..Self::new(max, period, period, period)
        }
    }

    /// How long a key stays locked after its `failures`-th failure, if at all.
    pub fn lockout_after(&self, failures: u32) -> Option<TimeDelta> {
        let beyond = failures.checked_sub(self.max_failures)?;
        let factor = 1i32.checked_shl(beyond.min(30)).unwrap_or(i32::MAX);
        let lock = self.lockout.checked_mul(factor).unwrap_or(self.max_lockout);
        Some(lock.min(self.max_lockout))
    }

    /// The start of the window: failures before it no longer count.
    pub fn window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_signed(self.window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// What is stored for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleState {
    /// Attempts counted, less those given back.
    pub attempts: u32,
    /// The last attempt counted.
    pub last_attempt_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

/// Whether an attempt may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; store this state.
    Admitted(ThrottleState),
    /// Locked until then.
    Refused(DateTime<Utc>),
}

impl ThrottlePolicy {
    /// Counts an attempt at `now` against a key with `state` (none for a
    /// key never seen). The attempt that reaches the limit goes ahead and
    /// locks the key for those after it; a lock is never shortened.
    pub fn admit(&self, now: DateTime<Utc>, state: Option<ThrottleState>) -> Admission {
        let Some(state) = state else {
            return Admission::Admitted(self.count(now, 1, None));
        };
        if let Some(until) = state.locked_until.filter(|until| *until > now) {
            return Admission::Refused(until);
        }
        if self.forgets_after_lock && state.locked_until.is_some() {
            return Admission::Admitted(self.count(now, 1, None));
        }
        let quiet_since = state.locked_until.map_or(state.last_attempt_at, |until| {
            until.max(state.last_attempt_at)
        });
        let attempts = if quiet_since > self.window_start(now) {
            state.attempts.saturating_add(1)
        } else {
            1
        };
        Admission::Admitted(self.count(now, attempts, state.locked_until))
    }

    fn count(
        &self,
        now: DateTime<Utc>,
        attempts: u32,
        locked_until: Option<DateTime<Utc>>,
    ) -> ThrottleState {
        let lock = self.lockout_after(attempts).map(|lockout| {
            let until = now
                .checked_add_signed(lockout)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            locked_until.map_or(until, |earlier| earlier.max(until))
        });
        ThrottleState {
            attempts,
            last_attempt_at: now,
            locked_until: lock.or(locked_until),
        }
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    /// One request as each lock ends must not keep a rate-limited key
    /// locked: after a lock the count starts again.
    #[test]
    fn a_rate_starts_afresh_after_its_lock() {
        let hour = Duration::from_secs(3600);
        let policy = ThrottlePolicy::rate(5, hour);
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let mut state = None;
        for _ in 0..5 {
            let Admission::Admitted(next) = policy.admit(t0, state) else {
                panic!("refused within the rate");
            };
            state = Some(next);
        }
        assert!(matches!(policy.admit(t0, state), Admission::Refused(_)));
        let after = t0 + TimeDelta::hours(1);
        let Admission::Admitted(next) = policy.admit(after, state) else {
            panic!("still locked after the period");
        };
        assert_eq!((next.attempts, next.locked_until), (1, None));
    }
}

#[cfg(test)]
/// How many attempts a patient attacker gets in `span` from a fresh key,
/// trying again the instant each lock ends.
pub fn budget(policy: &ThrottlePolicy, start: DateTime<Utc>, span: TimeDelta) -> u32 {
    let (mut now, mut state, mut attempts) = (start, None, 0);
    while now < start + span {
        match policy.admit(now, state) {
            Admission::Admitted(next) => {
                attempts += 1;
                state = Some(next);
            }
            Admission::Refused(until) => now = until,
        }
    }
    attempts
}

/// Whole seconds until `locked_until`, rounded up, if it is still ahead.
pub fn retry_after(now: DateTime<Utc>, locked_until: DateTime<Utc>) -> Option<u64> {
    let left = locked_until - now;
    (left > TimeDelta::zero()).then(|| {
        let secs = left.num_seconds() as u64;
        if left > TimeDelta::seconds(left.num_seconds()) {
            secs + 1
        } else {
            secs
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy::new(
            5,
            Duration::from_secs(15 * 60),
            Duration::from_secs(30),
            Duration::from_secs(15 * 60),
        )
    }

    #[test]
    fn no_lock_below_the_limit() {
        for failures in 0..5 {
            assert_eq!(policy().lockout_after(failures), None);
        }
    }

    #[test]
    fn lock_doubles_from_the_limit_up_to_the_cap() {
        let locks: Vec<_> = (5..12)
            .map(|f| policy().lockout_after(f).unwrap().num_seconds())
            .collect();
        assert_eq!(locks, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(
            policy().lockout_after(u32::MAX).unwrap(),
            TimeDelta::minutes(15)
        );
    }

    fn admitted(admission: Admission) -> ThrottleState {
        match admission {
            Admission::Admitted(state) => state,
            Admission::Refused(until) => panic!("refused until {until}"),
        }
    }

    #[test]
    fn the_attempt_that_reaches_the_limit_goes_ahead_and_locks() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut state = None;
        for n in 1..=5 {
            let next = admitted(policy().admit(now, state));
            assert_eq!(next.attempts, n);
            state = Some(next);
        }
        assert_eq!(
            policy().admit(now, state),
            Admission::Refused(now + TimeDelta::seconds(30))
        );
    }

    #[test]
    fn waiting_out_a_lock_does_not_reset_the_count() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let locked = ThrottleState {
            attempts: 11,
            last_attempt_at: t0,
            locked_until: Some(t0 + TimeDelta::minutes(15)),
        };
        // The lock ends after the window since the last attempt has passed.
        let after = t0 + TimeDelta::minutes(15);
        assert_eq!(admitted(policy().admit(after, Some(locked))).attempts, 12);
        // Only a whole quiet window after the lock forgets the count.
        let quiet = t0 + TimeDelta::minutes(30) + TimeDelta::seconds(1);
        assert_eq!(admitted(policy().admit(quiet, Some(locked))).attempts, 1);
    }

    #[test]
    fn retry_after_rounds_up_and_ends() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(retry_after(now, now + TimeDelta::milliseconds(1)), Some(1));
        assert_eq!(retry_after(now, now + TimeDelta::seconds(30)), Some(30));
        assert_eq!(
            retry_after(now, now + TimeDelta::milliseconds(30_001)),
            Some(31)
        );
        assert_eq!(retry_after(now, now), None);
        assert_eq!(retry_after(now, now - TimeDelta::seconds(1)), None);
    }
}
