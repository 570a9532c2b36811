//! Use cases: what the API does, in terms of the domain and the repositories.

pub mod auth;
pub mod expiry;
pub mod hash_pool;
pub mod passwords;
pub mod purge;
pub mod throttle;
