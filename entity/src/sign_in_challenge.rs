//! A password proven, waiting for the second factor; stored only as its hash.

use sea_orm::entity::prelude::*;

/// A row of `sign_in_challenges`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_challenges")]
pub struct Model {
    /// Lower-case hex SHA-256 of the challenge token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub user_id: Uuid,
    /// The account's credentials when the password was proven.
    pub credential_version: i64,
    pub remember_me: bool,
    /// What proved the first step: `PASSWORD`, `PROVIDER` or `EMAIL_CODE`.
    pub first_method: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Wrong codes given for it so far.
    pub failures: i32,
    pub used_at: Option<DateTimeUtc>,
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
