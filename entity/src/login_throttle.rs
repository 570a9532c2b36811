//! Failed sign-in counters, per account and per client address.

use sea_orm::entity::prelude::*;

/// A row of `login_throttles`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_throttles")]
pub struct Model {
    /// `account:<sha256 of e-mail>`, `ip:<address or IPv6 /64>` or
    /// `register:<address or IPv6 /64>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// Attempts counted since the key last went quiet for a whole window,
    /// less those given back by successes.
    pub failures: i32,
    /// The last attempt counted.
    pub last_failure_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    /// Bumped by every write, for compare-and-set.
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
