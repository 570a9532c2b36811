//! A registered account.

use sea_orm::entity::prelude::*;

/// `password_hash` of an account made with a passkey and no password: no
/// password matches it.
pub const NO_PASSWORD: &str = "";

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Trimmed and lower-cased, unique.
    #[sea_orm(unique)]
    pub email: String,
    /// An argon2id PHC string, or [`NO_PASSWORD`].
    pub password_hash: String,
    /// Changes with every password change: a session opens only if it is
    /// still the version whose password was verified.
    pub credential_version: i64,
    /// When the address was proven to reach its owner.
    pub email_verified_at: Option<DateTimeUtc>,
    /// When an operator disabled the account; it cannot sign in or use a session.
    pub disabled_at: Option<DateTimeUtc>,
    /// When its second factor was confirmed; `None`: it has none.
    pub second_factor_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
