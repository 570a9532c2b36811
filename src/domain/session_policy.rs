//! When a session ends: a pure function of `now`, so every edge is unit-tested
//! without sleeping.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The rules a session lives by, beyond its timeouts' instants.
#[derive(Clone, Copy, Debug)]
pub struct SessionRules {
    pub policies: SessionPolicies,
    /// How recently a password must have been proven for a sensitive operation.
    pub fresh_age: TimeDelta,
    /// The most live sessions per account, if limited.
    pub max_sessions: Option<u32>,
}

/// The idle and absolute timeouts, read from settings on every check, so
/// tightening them applies at once to existing sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    idle: TimeDelta,
    absolute: TimeDelta,
    granularity: TimeDelta,
}

/// The policies a session can live under. It keeps its policy for life;
/// with remember-me turned off, remembered sessions fall back to the
/// standard one at once, as a tightened timeout does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicies {
    pub standard: SessionPolicy,
    pub remembered: Option<SessionPolicy>,
}

impl SessionPolicies {
    /// The policy of a session opened with or without remember-me.
    pub fn of(&self, remember_me: bool) -> &SessionPolicy {
        match (remember_me, &self.remembered) {
            (true, Some(remembered)) => remembered,
            _ => &self.standard,
        }
    }

    /// Whether a sign-in that asks to be remembered is.
    pub fn remembers(&self, asked: bool) -> bool {
        asked && self.remembered.is_some()
    }
}

/// The stored timestamps a verdict depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimes {
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// When a live session will end. Each instant is the first at which it is
/// rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
}

impl Expiry {
    /// The earlier of the two limits: when the session ends if left alone.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.idle_expires_at.min(self.absolute_expires_at)
    }
}

/// What the policy says of a session at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Active(Expiry),
    IdleExpired,
    AbsoluteExpired,
    Revoked,
}

/// The coarsest slide granularity allowed, whatever the idle timeout.
const MAX_SLIDE_GRANULARITY: TimeDelta = TimeDelta::seconds(5);

impl SessionPolicy {
    /// Builds a policy; durations beyond chrono's range saturate.
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        let to_delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        let idle = to_delta(idle);
        Self {
            idle,
            absolute: to_delta(absolute),
            granularity: MAX_SLIDE_GRANULARITY.min(idle / 10),
        }
    }

    /// Both limits for a session with these timestamps.
    pub fn expiry(&self, created_at: DateTime<Utc>, last_activity_at: DateTime<Utc>) -> Expiry {
        let add = |t: DateTime<Utc>, d| t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC);
        Expiry {
            idle_expires_at: add(last_activity_at, self.idle),
            absolute_expires_at: add(created_at, self.absolute),
        }
    }

    /// Judges a session at `now`. Revocation wins, then the absolute cap, then
    /// idleness: a session past both limits reports the one activity cannot fix.
    pub fn evaluate(&self, now: DateTime<Utc>, times: &SessionTimes) -> Verdict {
        if times.revoked_at.is_some() {
            return Verdict::Revoked;
        }
        let expiry = self.expiry(times.created_at, times.last_activity_at);
        if now >= expiry.absolute_expires_at {
            Verdict::AbsoluteExpired
        } else if now >= expiry.idle_expires_at {
            Verdict::IdleExpired
        } else {
            Verdict::Active(expiry)
        }
    }

    /// The cut-offs a live session's timestamps must both be strictly after
    /// at `now`, for filtering in SQL: `(created_after, active_after)`.
    pub fn live_cutoffs(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let sub = |d| {
            now.checked_sub_signed(d)
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        (sub(self.absolute), sub(self.idle))
    }

    /// How stale `last_activity_at` may be before a request writes it again:
    /// by default at most 5 s and at most a tenth of the idle timeout. The
    /// guard judges from the stored activity, so a session can end up to
    /// this much before its exact idle deadline, never after it.
    pub fn slide_granularity(&self) -> TimeDelta {
        self.granularity
    }

    /// The policy with a coarser (or finer) slide, as
    /// `GATEHOUSE_SLIDE_GRANULARITY` sets it; at most half the idle timeout,
    /// so that an active session always slides before it times out.
    pub fn with_slide_granularity(mut self, granularity: Option<Duration>) -> Self {
        if let Some(granularity) = granularity {
            let granularity = TimeDelta::from_std(granularity).unwrap_or(TimeDelta::MAX);
            self.granularity = granularity.min(self.idle / 2);
        }
        self
    }

    /// Whether a request at `now` must record activity. Skipping the write
    /// within the granularity costs at most that much of the idle window, and
    /// the expiry we report is always the one we enforce.
    pub fn needs_slide(&self, now: DateTime<Utc>, last_activity_at: DateTime<Utc>) -> bool {
        now - last_activity_at >= self.slide_granularity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: TimeDelta = TimeDelta::minutes(30);
    const ABSOLUTE: TimeDelta = TimeDelta::hours(12);
    const TICK: TimeDelta = TimeDelta::microseconds(1);

    fn policy() -> SessionPolicy {
        SessionPolicy::new(Duration::from_secs(30 * 60), Duration::from_secs(12 * 3600))
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn times(created: DateTime<Utc>, last: DateTime<Utc>) -> SessionTimes {
        SessionTimes {
            created_at: created,
            last_activity_at: last,
            revoked_at: None,
        }
    }

    #[test]
    fn fresh_session_is_active_with_both_limits() {
        let v = policy().evaluate(t0(), &times(t0(), t0()));
        let Verdict::Active(e) = v else {
            panic!("{v:?}")
        };
        assert_eq!(e.idle_expires_at, t0() + IDLE);
        assert_eq!(e.absolute_expires_at, t0() + ABSOLUTE);
        assert_eq!(e.expires_at(), t0() + IDLE);
    }

    #[test]
    fn idle_limit_is_exclusive() {
        let s = times(t0(), t0());
        assert!(matches!(
            policy().evaluate(t0() + IDLE - TICK, &s),
            Verdict::Active(_)
        ));
        assert_eq!(policy().evaluate(t0() + IDLE, &s), Verdict::IdleExpired);
        assert_eq!(
            policy().evaluate(t0() + IDLE + TICK, &s),
            Verdict::IdleExpired
        );
    }

    #[test]
    fn absolute_limit_is_exclusive_even_when_just_active() {
        let now = t0() + ABSOLUTE;
        let active_now = times(t0(), now - TICK);
        assert!(matches!(
            policy().evaluate(now - TICK, &active_now),
            Verdict::Active(_)
        ));
        assert_eq!(
            policy().evaluate(now, &active_now),
            Verdict::AbsoluteExpired
        );
        assert_eq!(
            policy().evaluate(now + TICK, &active_now),
            Verdict::AbsoluteExpired
        );
    }

    #[test]
    fn expiry_never_passes_the_absolute_cap() {
        let last = t0() + ABSOLUTE - TimeDelta::minutes(1);
        let e = policy().expiry(t0(), last);
        assert_eq!(e.expires_at(), t0() + ABSOLUTE);
    }

    #[test]
    fn past_both_limits_reports_absolute() {
        let s = times(t0(), t0());
        assert_eq!(
            policy().evaluate(t0() + ABSOLUTE + IDLE, &s),
            Verdict::AbsoluteExpired
        );
    }

    #[test]
    fn revoked_wins_over_everything() {
        let mut s = times(t0(), t0());
        s.revoked_at = Some(t0());
        assert_eq!(policy().evaluate(t0(), &s), Verdict::Revoked);
        assert_eq!(
            policy().evaluate(t0() + ABSOLUTE + IDLE, &s),
            Verdict::Revoked
        );
    }

    #[test]
    fn clock_skew_ahead_does_not_stretch_the_cap() {
        // Another node with a fast clock wrote activity "in the future".
        let last = t0() + TimeDelta::seconds(3);
        let s = times(t0(), last);
        let Verdict::Active(e) = policy().evaluate(t0(), &s) else {
            panic!("skewed session should still be active")
        };
        assert_eq!(e.idle_expires_at, last + IDLE);
        assert_eq!(e.absolute_expires_at, t0() + ABSOLUTE);
        assert!(!policy().needs_slide(t0(), last));
    }

    #[test]
    fn granularity_is_at_most_5s_and_a_tenth_of_idle() {
        assert_eq!(policy().slide_granularity(), TimeDelta::seconds(5));
        let short = SessionPolicy::new(Duration::from_secs(2), Duration::from_secs(6));
        assert_eq!(short.slide_granularity(), TimeDelta::milliseconds(200));
    }

    #[test]
    fn slide_is_due_exactly_at_the_granularity() {
        let g = policy().slide_granularity();
        assert!(!policy().needs_slide(t0() + g - TICK, t0()));
        assert!(policy().needs_slide(t0() + g, t0()));
    }

    #[test]
    fn live_cutoffs_agree_with_evaluate() {
        let now = t0() + ABSOLUTE;
        let (created_after, active_after) = policy().live_cutoffs(now);
        let sql_live =
            |s: &SessionTimes| s.created_at > created_after && s.last_activity_at > active_after;
        for created in [created_after - TICK, created_after, created_after + TICK] {
            for last in [active_after - TICK, active_after, active_after + TICK] {
                let s = times(created, last);
                let live = matches!(policy().evaluate(now, &s), Verdict::Active(_));
                assert_eq!(sql_live(&s), live, "created {created}, last {last}");
            }
        }
    }

    #[test]
    fn huge_durations_saturate_instead_of_overflowing() {
        let p = SessionPolicy::new(Duration::MAX, Duration::MAX);
        assert!(matches!(
            p.evaluate(t0(), &times(t0(), t0())),
            Verdict::Active(_)
        ));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    proptest! {
        /// Whatever the timestamps, a session is active exactly while `now`
        /// is before the `expiresAt` it reports, which never passes the cap,
        /// and the SQL cut-offs agree.
        #[test]
        fn verdict_matches_reported_expiry(
            idle in 1u64..100_000,
            extra in 0u64..100_000,
            created in -200_000i64..200_000,
            last in -200_000i64..200_000,
            now in -200_000i64..400_000,
        ) {
            let policy = SessionPolicy::new(Duration::from_secs(idle), Duration::from_secs(idle + extra));
            let times = SessionTimes { created_at: at(created), last_activity_at: at(last), revoked_at: None };
            let expiry = policy.expiry(times.created_at, times.last_activity_at);
            let verdict = policy.evaluate(at(now), &times);
            prop_assert_eq!(matches!(verdict, Verdict::Active(_)), at(now) < expiry.expires_at());
            prop_assert!(expiry.expires_at() <= times.created_at + TimeDelta::seconds((idle + extra) as i64));
            let (created_after, active_after) = policy.live_cutoffs(at(now));
            let live_in_sql = times.created_at > created_after && times.last_activity_at > active_after;
            prop_assert_eq!(live_in_sql, matches!(verdict, Verdict::Active(_)));
        }

        /// Activity never revives a session past its absolute cap.
        #[test]
        fn no_activity_extends_the_cap(idle in 1u64..10_000, extra in 0u64..10_000, late in 0i64..100_000) {
            let absolute = idle + extra;
            let policy = SessionPolicy::new(Duration::from_secs(idle), Duration::from_secs(absolute));
            let now = at(absolute as i64 + late);
            let times = SessionTimes { created_at: at(0), last_activity_at: now, revoked_at: None };
            prop_assert_eq!(policy.evaluate(now, &times), Verdict::AbsoluteExpired);
        }
    }
}
