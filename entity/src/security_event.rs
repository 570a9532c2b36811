//! One entry of a user's security history: a sign-in, a sign-out, a
//! revocation, an expiry, a password change.

use sea_orm::entity::prelude::*;

/// A row of `security_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "security_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// `SIGNED_IN`, `REAUTHENTICATED`, `SIGNED_OUT`, `SESSION_REVOKED`,
    /// `SESSION_EXPIRED`, `PASSWORD_CHANGED` or `ACCOUNT_DELETED`.
    pub kind: String,
    /// What the kind leaves open: how a sign-in came (`LOGIN`, `REGISTER`),
    /// who revoked, or which timeout ended the session.
    pub detail: Option<String>,
    pub session_id: Option<Uuid>,
    /// The session that caused the event, when another one did.
    pub actor_session_id: Option<Uuid>,
    pub remember_me: Option<bool>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub occurred_at: DateTimeUtc,
    /// For a sign-in or step-up: what proved the identity (`PASSWORD,TOTP`).
    pub methods: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
