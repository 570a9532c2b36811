//! A signed-in session. Only the SHA-256 of its token is stored.

use sea_orm::entity::prelude::*;

/// A row of `sessions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// Lower-case hex SHA-256 of the bearer token.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub created_at: DateTimeUtc,
    pub last_activity_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// When a password was last proven on this session; always written.
    pub authenticated_at: Option<DateTimeUtc>,
    /// Whether the session lives under the remember-me policy.
    pub remember_me: bool,
    /// Why it ended: revoked by `LOGOUT`, `SESSION`, `PASSWORD_CHANGE` or
    /// `SESSION_LIMIT`, or timed out (`IDLE_TIMEOUT`, `ABSOLUTE_TIMEOUT`)
    /// once that end is recorded.
    pub revoked_reason: Option<String>,
    /// Whether the event of its end has been written.
    pub end_recorded: bool,
    /// What proved the identity, comma-separated (`PASSWORD,TOTP`).
    pub methods: String,
    /// The authenticator assurance level those give: 1 or 2.
    pub aal: i16,
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
