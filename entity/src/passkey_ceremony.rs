//! A WebAuthn ceremony begun and not yet finished: its state stays here,
//! named by the hash of the token its client holds.

use sea_orm::entity::prelude::*;

/// A row of `passkey_ceremonies`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkey_ceremonies")]
pub struct Model {
    /// Lower-case hex SHA-256 of the ceremony token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    /// `REGISTER`, `SIGN_UP`, `SIGN_IN`, `SECOND_FACTOR` or `REAUTHENTICATE`.
    pub purpose: String,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub challenge_hash: Option<String>,
    pub email: Option<String>,
    /// webauthn-rs's serialised ceremony state.
    pub state: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
