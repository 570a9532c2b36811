//! The only way Gatehouse's schema changes. `gatehouse serve` and
//! `gatehouse migrate` run [`Migrator`] at start; tests do the same.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_users;
mod m20261128_000002_create_sessions;
mod m20261128_000003_create_login_throttles;
mod m20261128_000004_token_hash_varchar;
mod m20261128_000005_credential_and_throttle_versions;
mod m20261128_000006_session_features;
mod m20261128_000007_account_recovery;
mod m20261128_000008_disabled_accounts;
mod m20261203_000009_known_devices;
mod m20261204_000010_second_factor;
mod m20261205_000011_passkeys;
mod m20261206_000012_other_ways_in;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_users::Migration),
            Box::new(m20261128_000002_create_sessions::Migration),
            Box::new(m20261128_000003_create_login_throttles::Migration),
            Box::new(m20261128_000004_token_hash_varchar::Migration),
            Box::new(m20261128_000005_credential_and_throttle_versions::Migration),
            Box::new(m20261128_000006_session_features::Migration),
            Box::new(m20261128_000007_account_recovery::Migration),
            Box::new(m20261128_000008_disabled_accounts::Migration),
            Box::new(m20261203_000009_known_devices::Migration),
            Box::new(m20261204_000010_second_factor::Migration),
            Box::new(m20261205_000011_passkeys::Migration),
            Box::new(m20261206_000012_other_ways_in::Migration),
        ]
    }
}
