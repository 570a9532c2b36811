//! Counted places per key (a client address, a session, an account), each
//! given back when its [`Place`] is dropped: the per-key caps on open
//! connections, sockets and WebSockets alike.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// Counted places per key.
pub struct Places<K>(Arc<Mutex<HashMap<K, usize>>>);

impl<K> Clone for Places<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K> Default for Places<K> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<K: Eq + Hash + Copy> Places<K> {
    /// One more place for `key`, unless it already holds `max`.
    pub fn take(&self, key: K, max: usize) -> Option<Place<K>> {
        let mut counts = lock(&self.0);
        let count = counts.entry(key).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Place {
            key,
            places: self.clone(),
        })
    }
}

/// One holder's place; freed when it is dropped.
pub struct Place<K: Eq + Hash> {
    key: K,
    places: Places<K>,
}

impl<K: Eq + Hash> Drop for Place<K> {
    fn drop(&mut self) {
        let mut counts = lock(&self.places.0);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// An IPv4 address, or the /64 of an IPv6 one: one allocation usually holds
/// a whole /64, and rotating within it must not escape a per-address cap.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A count is consistent after any panic: each change is one statement.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_comes_back_when_dropped() {
        let places = Places::default();
        let first = places.take(1, 2).unwrap();
        let _second = places.take(1, 2).unwrap();
        assert!(places.take(1, 2).is_none());
        assert!(places.take(2, 2).is_some(), "another key has its own count");
        drop(first);
        assert!(places.take(1, 2).is_some());
    }

    #[test]
    fn ipv6_peers_share_their_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(other));
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(network(mapped), "127.0.0.2".parse::<IpAddr>().unwrap());
    }
}
