//! Queries on `recovery_codes`.

use chrono::{DateTime, Utc};
use entity::recovery_code;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;

use crate::domain::token::TokenHash;

/// Replaces every code of the account with these.
pub async fn replace(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    hashes: &[TokenHash],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    delete_all(db, user_id).await?;
    let rows = hashes.iter().map(|hash| recovery_code::ActiveModel {
        code_hash: Set(hash.as_str().to_owned()),
        user_id: Set(user_id),
        created_at: Set(now),
        used_at: Set(None),
    });
    recovery_code::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Uses the account's unused code with this hash, if there is one: of two
/// uses at once, exactly one wins.
pub async fn use_code(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    hash: &TokenHash,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
        .filter(recovery_code::Column::CodeHash.eq(hash.as_str()))
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// How many unused codes the account has.
pub async fn count_unused(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(db)
        .await
}

/// Deletes every code of the account.
pub async fn delete_all(db: &impl ConnectionTrait, user_id: Uuid) -> Result<(), DbErr> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .map(drop)
}
