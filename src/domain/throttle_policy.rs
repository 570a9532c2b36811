//! When repeated failed sign-ins lock a key, and for how long: pure
//! functions, so the growth and the cap are unit-tested without waiting.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

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
