//! Queries on `passkey_ceremonies`.

use chrono::{DateTime, Utc};
use entity::passkey_ceremony;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use uuid::Uuid;

use crate::domain::token::TokenHash;

/// Stores a ceremony just begun.
pub async fn insert(db: &impl ConnectionTrait, row: passkey_ceremony::Model) -> Result<(), DbErr> {
    passkey_ceremony::Entity::insert(passkey_ceremony::ActiveModel::from(row))
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Whose a ceremony must be to be taken: each condition given must hold.
#[derive(Default)]
pub struct Owner<'a> {
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub challenge: Option<&'a TokenHash>,
}

/// Takes the ceremony with this hash for `purpose` and `owner`, if it is
/// unused and unexpired at `now`, using it up: of two finishes at once,
/// exactly one gets it, a failed finish cannot be retried, and someone
/// else's attempt leaves it to its owner.
pub async fn take(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
    purpose: &str,
    owner: Owner<'_>,
    now: DateTime<Utc>,
) -> Result<Option<passkey_ceremony::Model>, DbErr> {
    let mut update = passkey_ceremony::Entity::update_many();
    if let Some(user) = owner.user_id {
        update = update.filter(passkey_ceremony::Column::UserId.eq(user));
    }
    if let Some(session) = owner.session_id {
        update = update.filter(passkey_ceremony::Column::SessionId.eq(session));
    }
    if let Some(challenge) = owner.challenge {
        update = update.filter(passkey_ceremony::Column::ChallengeHash.eq(challenge.as_str()));
    }
    let result = update
        .col_expr(passkey_ceremony::Column::UsedAt, Expr::value(now))
        .filter(passkey_ceremony::Column::TokenHash.eq(hash.as_str()))
        .filter(passkey_ceremony::Column::Purpose.eq(purpose))
        .filter(passkey_ceremony::Column::UsedAt.is_null())
        .filter(passkey_ceremony::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    if result.rows_affected != 1 {
        return Ok(None);
    }
    passkey_ceremony::Entity::find_by_id(hash.as_str())
        .one(db)
        .await
}

/// Deletes ceremonies that expired before `before`.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = passkey_ceremony::Entity::delete_many()
        .filter(passkey_ceremony::Column::ExpiresAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
