//! Queries on `login_throttles`. Every change to a counter is a
//! compare-and-set on its `version`, so attempts counted at once, on any
//! number of nodes, are each counted exactly once.

use chrono::{DateTime, Utc};
use entity::login_throttle::{self, Column, Entity, Model};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::domain::throttle_policy::ThrottleState;

/// The stored counters among `keys`.
pub async fn find(db: &impl ConnectionTrait, keys: &[String]) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::Key.is_in(keys.iter().cloned()))
        .all(db)
        .await
}

/// The state the policy judges.
pub fn state(row: &Model) -> ThrottleState {
    ThrottleState {
        attempts: u32::try_from(row.failures).unwrap_or(0),
        last_attempt_at: row.last_failure_at,
        locked_until: row.locked_until,
    }
}

/// Stores `state` for `key` if it still has `version` (`None`: if it has no
/// row yet). Returns whether this write won.
pub async fn compare_and_set(
    db: &impl ConnectionTrait,
    key: &str,
    version: Option<i64>,
    state: &ThrottleState,
) -> Result<bool, DbErr> {
    let attempts = i32::try_from(state.attempts).unwrap_or(i32::MAX);
    let Some(version) = version else {
        let inserted = Entity::insert(login_throttle::ActiveModel {
            key: Set(key.to_owned()),
            failures: Set(attempts),
            last_failure_at: Set(state.last_attempt_at),
            locked_until: Set(state.locked_until),
            version: Set(0),
        })
        .on_conflict(OnConflict::column(Column::Key).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
        return Ok(inserted == 1);
    };
    let result = Entity::update_many()
        .col_expr(Column::Failures, Expr::value(attempts))
        .col_expr(Column::LastFailureAt, Expr::value(state.last_attempt_at))
        .col_expr(Column::LockedUntil, Expr::value(state.locked_until))
        .col_expr(Column::Version, Expr::value(version + 1))
        .filter(Column::Key.eq(key))
        .filter(Column::Version.eq(version))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives back one attempt that turned out not to be a guess (a success).
/// Any lock it caused stays.
pub async fn give_back(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(
            Column::Failures,
            Expr::col(Column::Failures).sub(Expr::value(1)),
        )
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .filter(Column::Key.eq(key))
        .filter(Column::Failures.gt(0))
        .exec(db)
        .await
        .map(drop)
}

/// Forgets `key`'s count and lock.
pub async fn clear(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    Entity::delete_by_id(key.to_owned())
        .exec(db)
        .await
        .map(drop)
}

/// Deletes counters quiet since `quiet_since`, counting their locks too:
/// they would be forgotten at their next attempt anyway.
pub async fn purge(db: &impl ConnectionTrait, quiet_since: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = Entity::delete_many()
        .filter(Column::LastFailureAt.lt(quiet_since))
        .filter(
            sea_orm::Condition::any()
                .add(Column::LockedUntil.is_null())
                .add(Column::LockedUntil.lt(quiet_since)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
