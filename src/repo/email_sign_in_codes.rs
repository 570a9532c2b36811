//! Queries on `email_sign_in_codes`.

use chrono::{DateTime, Utc};
use entity::email_sign_in_code;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::domain::token::TokenHash;

/// Stores a code just sent (or, for an address with no account, its
/// stand-in).
pub async fn insert(
    db: &impl ConnectionTrait,
    row: email_sign_in_code::Model,
) -> Result<(), DbErr> {
    email_sign_in_code::Entity::insert(email_sign_in_code::ActiveModel::from(row))
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// The code of this challenge, if it is unused, unexpired at `now` and
/// has fewer than `max_failures` wrong guesses.
pub async fn find_open(
    db: &impl ConnectionTrait,
    challenge: &TokenHash,
    max_failures: i32,
    now: DateTime<Utc>,
) -> Result<Option<email_sign_in_code::Model>, DbErr> {
    email_sign_in_code::Entity::find_by_id(challenge.as_str())
        .filter(email_sign_in_code::Column::UsedAt.is_null())
        .filter(email_sign_in_code::Column::ExpiresAt.gt(now))
        .filter(email_sign_in_code::Column::Failures.lt(max_failures))
        .one(db)
        .await
}

/// Uses the code up if it is still open; whether this call did. Of two
/// right answers at once, one wins.
pub async fn consume(
    db: &impl ConnectionTrait,
    challenge: &TokenHash,
    max_failures: i32,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = email_sign_in_code::Entity::update_many()
        .col_expr(email_sign_in_code::Column::UsedAt, Expr::value(now))
        .filter(email_sign_in_code::Column::ChallengeHash.eq(challenge.as_str()))
        .filter(email_sign_in_code::Column::UsedAt.is_null())
        .filter(email_sign_in_code::Column::ExpiresAt.gt(now))
        .filter(email_sign_in_code::Column::Failures.lt(max_failures))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Counts a wrong guess against the code.
pub async fn fail(db: &impl ConnectionTrait, challenge: &TokenHash) -> Result<(), DbErr> {
    email_sign_in_code::Entity::update_many()
        .col_expr(
            email_sign_in_code::Column::Failures,
            Expr::col(email_sign_in_code::Column::Failures).add(1),
        )
        .filter(email_sign_in_code::Column::ChallengeHash.eq(challenge.as_str()))
        .exec(db)
        .await
        .map(drop)
}

/// Deletes codes that expired before `before`.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = email_sign_in_code::Entity::delete_many()
        .filter(email_sign_in_code::Column::ExpiresAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
