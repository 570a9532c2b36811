//! Use cases: what the API does, in terms of the domain and the repositories.

pub mod admin;
pub mod auth;
pub mod courier;
pub mod expiry;
pub mod gauges;
pub mod hash_pool;
pub mod in_flight;
pub mod known_devices;
pub mod outbox;
pub mod passwords;
pub mod providers;
pub mod purge;
pub mod recovery;
pub mod relying_party;
pub mod secret_box;
pub mod throttle;
