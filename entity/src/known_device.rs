//! A client that has signed in to an account before: its password attempts
//! are counted apart from strangers'.

use sea_orm::entity::prelude::*;

/// A row of `known_devices`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "known_devices")]
pub struct Model {
    /// Lower-case hex SHA-256 of the device token; the token is never stored.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub user_id: Uuid,
    pub created_at: DateTimeUtc,
    /// The last sign-in that presented it.
    pub last_used_at: DateTimeUtc,
    /// Until when it may sign in without the second factor, if it was
    /// asked to be remembered after one.
    pub second_factor_until: Option<DateTimeUtc>,
    /// Whether that skip holds only for the token in the cookie (`true`) or
    /// only in the request (`false`): the transport it was handed out on.
    pub second_factor_cookie: Option<bool>,
    /// The browser's `User-Agent` when it was remembered.
    pub user_agent: Option<String>,
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
