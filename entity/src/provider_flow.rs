//! A sign-in (or link) at another provider, begun and not yet finished,
//! named by the hash of the secret its browser keeps.

use sea_orm::entity::prelude::*;

/// A row of `provider_flows`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_flows")]
pub struct Model {
    /// Lower-case hex SHA-256 of the flow secret (the PKCE verifier).
    #[sea_orm(primary_key, auto_increment = false)]
    pub flow_hash: String,
    pub state_hash: String,
    pub nonce_hash: String,
    pub provider: String,
    /// `SIGN_IN` or `LINK`.
    pub purpose: String,
    pub session_id: Option<Uuid>,
    pub redirect_uri: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
