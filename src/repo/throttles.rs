//! Queries on `login_throttles`. A failure is counted by one atomic upsert,
//! so concurrent attempts on many nodes are never lost.

use chrono::{DateTime, Utc};
use entity::login_throttle::{self, Column, Entity};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

/// The latest `locked_until` among `keys` that is still ahead of `now`.
pub async fn locked_until(
    db: &impl ConnectionTrait,
    keys: &[String],
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let rows = Entity::find()
        .filter(Column::Key.is_in(keys.iter().cloned()))
        .filter(Column::LockedUntil.gt(now))
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(|r| r.locked_until).max())
}

/// Counts one failure for `key`, restarting the count if the last failure was
/// before `window_start`; returns the count.
pub async fn record_failure(
    db: &impl ConnectionTrait,
    key: &str,
    now: DateTime<Utc>,
    window_start: DateTime<Utc>,
) -> Result<u32, DbErr> {
    let recent = Expr::col((Entity, Column::LastFailureAt)).gt(window_start);
    let row = Entity::insert(login_throttle::ActiveModel {
        key: Set(key.to_owned()),
        failures: Set(1),
        last_failure_at: Set(now),
        locked_until: Set(None),
    })
    .on_conflict(
        OnConflict::column(Column::Key)
            .value(
                Column::Failures,
                Expr::case(recent, Expr::col((Entity, Column::Failures)).add(1)).finally(1),
            )
            .value(Column::LastFailureAt, now)
            .to_owned(),
    )
    .exec_with_returning(db)
    .await?;
    Ok(u32::try_from(row.failures).unwrap_or(0))
}

/// Locks `key` until `until`.
pub async fn lock(db: &impl ConnectionTrait, key: &str, until: DateTime<Utc>) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LockedUntil, Expr::value(until))
        .filter(Column::Key.eq(key))
        .exec(db)
        .await
        .map(drop)
}

/// Forgets `key`'s failures.
pub async fn clear(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    Entity::delete_by_id(key.to_owned())
        .exec(db)
        .await
        .map(drop)
}

/// Deletes counters quiet since `quiet_since` and no longer locked.
pub async fn purge(
    db: &impl ConnectionTrait,
    quiet_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let result = Entity::delete_many()
        .filter(Column::LastFailureAt.lt(quiet_since))
        .filter(
            sea_orm::Condition::any()
                .add(Column::LockedUntil.is_null())
                .add(Column::LockedUntil.lt(now)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
