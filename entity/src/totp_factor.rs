//! An account's TOTP secret, sealed with an AEAD under a server key.

use sea_orm::entity::prelude::*;

/// A row of `totp_factors`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The id of the key that sealed `secret`.
    pub key_id: String,
    /// Nonce and ciphertext, base64; never the secret itself.
    pub secret: String,
    pub created_at: DateTimeUtc,
    /// `None` while enrolment waits for its first code.
    pub confirmed_at: Option<DateTimeUtc>,
    /// The last time step accepted, so no code is accepted twice.
    pub last_step: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
