//! A sign-in code sent by e-mail, named by the hash of the challenge its
//! browser keeps.

use sea_orm::entity::prelude::*;

/// A row of `email_sign_in_codes`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_sign_in_codes")]
pub struct Model {
    /// Lower-case hex SHA-256 of the challenge token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub challenge_hash: String,
    pub email: String,
    /// None when no account had the address.
    pub user_id: Option<Uuid>,
    /// Lower-case hex SHA-256 of the challenge and the code.
    pub code_hash: String,
    pub failures: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
