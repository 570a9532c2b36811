//! Queries on `outbox`. A message is claimed by a compare-and-set on its
//! lease, so of the nodes that see it due exactly one sends it.

use chrono::{DateTime, Utc};
use entity::outbox;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::mail::templates::Letter;

/// Queues a message, in the caller's transaction.
pub async fn insert(
    db: &impl ConnectionTrait,
    letter: Letter,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::new_v4();
    let model = outbox::ActiveModel {
        id: Set(id),
        recipient: Set(letter.to),
        subject: Set(letter.subject),
        body_text: Set(letter.text),
        body_html: Set(letter.html),
        created_at: Set(now),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        last_error: Set(None),
    };
    outbox::Entity::insert(model)
        .exec_without_returning(db)
        .await?;
    Ok(id)
}

/// Up to `limit` messages due at `now` that no node holds, oldest first.
pub async fn due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .filter(unclaimed_at(now))
        .order_by_asc(outbox::Column::NextAttemptAt)
        .limit(limit)
        .all(db)
        .await
}

/// Takes the message until `until` if no node holds it at `now`, counting
/// the attempt; returns whether this call did.
pub async fn claim(
    db: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::ClaimedUntil, Expr::value(until))
        .col_expr(
            outbox::Column::Attempts,
            Expr::col(outbox::Column::Attempts).add(1),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .filter(unclaimed_at(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The mail server took it: the message, and the token in it, are gone.
pub async fn delivered(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    outbox::Entity::delete_by_id(id).exec(db).await.map(drop)
}

/// The attempt failed: release the message to be retried at `retry_at`.
pub async fn failed(
    db: &impl ConnectionTrait,
    id: Uuid,
    retry_at: DateTime<Utc>,
    error: &str,
) -> Result<(), DbErr> {
    let error: String = error.chars().take(512).collect();
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::ClaimedUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(retry_at))
        .col_expr(outbox::Column::LastError, Expr::value(error))
        .filter(outbox::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

fn unclaimed_at(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(outbox::Column::ClaimedUntil.is_null())
        .add(outbox::Column::ClaimedUntil.lte(now))
}
