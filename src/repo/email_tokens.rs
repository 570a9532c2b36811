//! Queries on `email_tokens`.

use chrono::{DateTime, Utc};
use entity::email_token;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::domain::token::{EmailToken, Purpose};

/// Stores a new token's hash for `email`, after consuming the user's
/// outstanding tokens of the same purpose: only the newest link works.
pub async fn replace(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    token: &EmailToken,
    email: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    consume_all(db, user_id, token.purpose(), now).await?;
    let model = email_token::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        purpose: Set(token.purpose().as_str().to_owned()),
        token_hash: Set(token.hash().as_str().to_owned()),
        email: Set(email.to_owned()),
        created_at: Set(now),
        expires_at: Set(expires_at),
        consumed_at: Set(None),
    };
    email_token::Entity::insert(model)
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// The token with this hash, if it is unused and unexpired at `now`.
pub async fn find_usable(
    db: &impl ConnectionTrait,
    token: &EmailToken,
    now: DateTime<Utc>,
) -> Result<Option<email_token::Model>, DbErr> {
    email_token::Entity::find()
        .filter(email_token::Column::TokenHash.eq(token.hash().as_str()))
        .filter(email_token::Column::Purpose.eq(token.purpose().as_str()))
        .filter(usable_at(now))
        .one(db)
        .await
}

/// Uses the token up if it is still usable at `now`; returns whether this
/// call did. Of two requests with one token, exactly one wins.
pub async fn consume(
    db: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = email_token::Entity::update_many()
        .col_expr(email_token::Column::ConsumedAt, Expr::value(now))
        .filter(email_token::Column::Id.eq(id))
        .filter(usable_at(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Uses up every outstanding token of the user for `purpose`.
pub async fn consume_all(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = email_token::Entity::update_many()
        .col_expr(email_token::Column::ConsumedAt, Expr::value(now))
        .filter(email_token::Column::UserId.eq(user_id))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .filter(email_token::Column::ConsumedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Uses up every outstanding change of address of the user: verification
/// tokens for any address but `current`. A new password must cancel a move
/// that whoever knew the old one asked for.
pub async fn consume_changes(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    current: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = email_token::Entity::update_many()
        .col_expr(email_token::Column::ConsumedAt, Expr::value(now))
        .filter(email_token::Column::UserId.eq(user_id))
        .filter(email_token::Column::Purpose.eq(Purpose::Verify.as_str()))
        .filter(email_token::Column::Email.ne(current))
        .filter(email_token::Column::ConsumedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Deletes tokens that expired before `before`; they can prove nothing.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = email_token::Entity::delete_many()
        .filter(email_token::Column::ExpiresAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

fn usable_at(now: DateTime<Utc>) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(email_token::Column::ConsumedAt.is_null())
        .add(email_token::Column::ExpiresAt.gt(now))
}
