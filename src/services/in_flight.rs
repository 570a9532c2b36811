//! The activity writes ("slides") this node makes: at most one per session
//! in flight, and none again within the slide granularity of the last one
//! that landed, so a busy session's parallel requests never queue on its
//! row, nor a revocation behind them.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use lru::LruCache;
use uuid::Uuid;

/// Sessions this node remembers sliding; past this, the least recently
/// slid are forgotten, which costs at most one more write each.
// A literal above zero, checked at compile time (a const): it cannot panic.
const REMEMBERED: NonZeroUsize = NonZeroUsize::new(65_536).expect("nonzero");

#[derive(Clone, Copy, Debug)]
enum Slide {
    InFlight,
    /// Committed: the database holds this activity or a later one.
    Landed(DateTime<Utc>),
}

/// This node's slides, by session.
#[derive(Clone, Debug)]
pub struct InFlightSlides(Arc<Mutex<LruCache<Uuid, Slide>>>);

impl Default for InFlightSlides {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(LruCache::new(REMEMBERED))))
    }
}

/// This request's claim on its session's slide; given back when dropped,
/// even if the request is cancelled mid-write.
pub struct SlideClaim {
    slides: InFlightSlides,
    id: Uuid,
    landed: Option<DateTime<Utc>>,
}

impl InFlightSlides {
    /// Claims the session's slide at `now`, or `None` if this node is
    /// writing it, or wrote it less than `granularity` before `now`: that
    /// write moved the same row forward, so this request uses the value it
    /// read, which is never later than the database's.
    pub fn claim(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        granularity: TimeDelta,
    ) -> Option<SlideClaim> {
        let mut slides = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match slides.get(&id) {
            Some(Slide::InFlight) => return None,
            Some(Slide::Landed(at)) if now - *at < granularity => return None,
            _ => {}
        }
        slides.put(id, Slide::InFlight);
        Some(SlideClaim {
            slides: self.clone(),
            id,
            landed: None,
        })
    }
}

impl SlideClaim {
    /// The slide committed activity at `at`.
    pub fn landed(mut self, at: DateTime<Utc>) {
        self.landed = Some(at);
    }
}

impl Drop for SlideClaim {
    fn drop(&mut self) {
        let mut slides = self.slides.0.lock().unwrap_or_else(|e| e.into_inner());
        match self.landed {
            Some(at) => {
                slides.put(self.id, Slide::Landed(at));
            }
            None => {
                slides.pop(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slide_per_session_in_flight_and_none_soon_after_it_landed() {
        let slides = InFlightSlides::default();
        let g = TimeDelta::seconds(5);
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = slides.claim(a, t0, g).expect("free");
        assert!(slides.claim(a, t0, g).is_none(), "in flight");
        let other = slides.claim(b, t0, g).expect("another session is free");
        first.landed(t0);
        assert!(slides.claim(a, t0 + TimeDelta::seconds(4), g).is_none());
        assert!(slides.claim(a, t0 + g, g).is_some());
        // A write that failed or was cancelled leaves nothing behind.
        drop(other);
        assert!(slides.claim(b, t0, g).is_some());
    }
}
