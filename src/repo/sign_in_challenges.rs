//! Queries on `sign_in_challenges`.

use chrono::{DateTime, Utc};
use entity::sign_in_challenge;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::domain::token::TokenHash;

/// Stores a new challenge.
pub async fn insert(db: &impl ConnectionTrait, row: sign_in_challenge::Model) -> Result<(), DbErr> {
    sign_in_challenge::Entity::insert(sign_in_challenge::ActiveModel::from(row))
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// The challenge with this hash while it can still be answered at `now`:
/// unused, unexpired, and under `max_failures` wrong codes.
pub async fn find_open(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
    max_failures: i32,
    now: DateTime<Utc>,
) -> Result<Option<sign_in_challenge::Model>, DbErr> {
    sign_in_challenge::Entity::find_by_id(hash.as_str())
        .filter(sign_in_challenge::Column::UsedAt.is_null())
        .filter(sign_in_challenge::Column::ExpiresAt.gt(now))
        .filter(sign_in_challenge::Column::Failures.lt(max_failures))
        .one(db)
        .await
}

/// Uses the challenge up, if it is still open: exactly one answer opens a
/// session.
pub async fn consume(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
    max_failures: i32,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = sign_in_challenge::Entity::update_many()
        .col_expr(sign_in_challenge::Column::UsedAt, Expr::value(now))
        .filter(sign_in_challenge::Column::TokenHash.eq(hash.as_str()))
        .filter(sign_in_challenge::Column::UsedAt.is_null())
        .filter(sign_in_challenge::Column::ExpiresAt.gt(now))
        .filter(sign_in_challenge::Column::Failures.lt(max_failures))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives a challenge that [`consume`] took back to its client, counting
/// the wrong code that was given for it.
pub async fn fail(db: &impl ConnectionTrait, hash: &TokenHash) -> Result<(), DbErr> {
    sign_in_challenge::Entity::update_many()
        .col_expr(
            sign_in_challenge::Column::Failures,
            Expr::col(sign_in_challenge::Column::Failures).add(1),
        )
        .col_expr(
            sign_in_challenge::Column::UsedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(sign_in_challenge::Column::TokenHash.eq(hash.as_str()))
        .exec(db)
        .await
        .map(drop)
}

/// Deletes challenges that expired before `before`.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = sign_in_challenge::Entity::delete_many()
        .filter(sign_in_challenge::Column::ExpiresAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
