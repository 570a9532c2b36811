//! A passkey: a WebAuthn credential's public key on an account.

use sea_orm::entity::prelude::*;

/// A row of `passkeys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// base64url of the credential ID; unique across accounts.
    #[sea_orm(unique)]
    pub credential_id: String,
    /// webauthn-rs's `Passkey` as JSON: a public key, nothing secret.
    pub credential: String,
    pub name: String,
    /// The authenticator's model, when it said.
    pub aaguid: Option<Uuid>,
    /// Synced by its provider (the backup-state flag).
    pub backed_up: bool,
    pub sign_count: i64,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
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
