//! Queries on `totp_factors`.

use chrono::{DateTime, Utc};
use entity::totp_factor;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
};
use uuid::Uuid;

/// The account's factor, confirmed or waiting for its first code.
pub async fn find(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Option<totp_factor::Model>, DbErr> {
    totp_factor::Entity::find_by_id(user_id).one(db).await
}

/// Stores a new unconfirmed secret, replacing an unconfirmed one; a
/// confirmed factor is never replaced here. Returns whether it stored.
pub async fn put_pending(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    key_id: &str,
    sealed: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = totp_factor::ActiveModel {
        user_id: Set(user_id),
        key_id: Set(key_id.to_owned()),
        secret: Set(sealed.to_owned()),
        created_at: Set(now),
        confirmed_at: Set(None),
        last_step: Set(None),
    };
    let on_conflict = OnConflict::column(totp_factor::Column::UserId)
        .update_columns([
            totp_factor::Column::KeyId,
            totp_factor::Column::Secret,
            totp_factor::Column::CreatedAt,
        ])
        .action_and_where(totp_factor::Column::ConfirmedAt.is_null())
        .to_owned();
    let result = totp_factor::Entity::insert(row)
        .on_conflict(on_conflict)
        .exec_without_returning(db)
        .await?;
    Ok(result == 1)
}

/// Accepts time step `step` for the account's factor, only if it is later
/// than every step accepted before: one code, one use, on every node.
/// `confirm` also makes a pending factor active (enrolment); otherwise the
/// factor must already be confirmed. Returns whether this call won.
pub async fn accept_step(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    step: i64,
    confirm: Option<DateTime<Utc>>,
) -> Result<bool, DbErr> {
    let later = Condition::any()
        .add(totp_factor::Column::LastStep.is_null())
        .add(totp_factor::Column::LastStep.lt(step));
    let mut update = totp_factor::Entity::update_many()
        .col_expr(totp_factor::Column::LastStep, Expr::value(step))
        .filter(totp_factor::Column::UserId.eq(user_id))
        .filter(later);
    update = match confirm {
        Some(at) => update
            .col_expr(totp_factor::Column::ConfirmedAt, Expr::value(at))
            .filter(totp_factor::Column::ConfirmedAt.is_null()),
        None => update.filter(totp_factor::Column::ConfirmedAt.is_not_null()),
    };
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// Removes the account's factor, confirmed or not; returns whether it had one.
pub async fn delete(db: &impl ConnectionTrait, user_id: Uuid) -> Result<bool, DbErr> {
    let result = totp_factor::Entity::delete_by_id(user_id).exec(db).await?;
    Ok(result.rows_affected == 1)
}

/// Deletes enrolments never confirmed and begun before `before`.
pub async fn purge_pending(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = totp_factor::Entity::delete_many()
        .filter(totp_factor::Column::ConfirmedAt.is_null())
        .filter(totp_factor::Column::CreatedAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
