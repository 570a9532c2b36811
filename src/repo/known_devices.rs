//! Queries on `known_devices`.

use chrono::{DateTime, Utc};
use entity::{known_device, user};
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{ActiveValue, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::domain::token::TokenHash;

/// The account a device token belongs to, and its address, if the token
/// was last used after `used_after`.
pub async fn owner(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
    used_after: DateTime<Utc>,
) -> Result<Option<(Uuid, String)>, DbErr> {
    let found = known_device::Entity::find_by_id(hash.as_str())
        .filter(known_device::Column::LastUsedAt.gt(used_after))
        .find_also_related(user::Entity)
        .one(db)
        .await?;
    Ok(found.and_then(|(device, user)| user.map(|u| (device.user_id, u.email))))
}

/// Records that the device signed in again at `now`.
pub async fn touch(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    known_device::Entity::update_many()
        .col_expr(known_device::Column::LastUsedAt, Expr::value(now))
        .filter(known_device::Column::TokenHash.eq(hash.as_str()))
        .exec(db)
        .await
        .map(drop)
}

/// Adds a device to the account, keeping only its `keep` most recently used.
pub async fn insert(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    hash: &TokenHash,
    keep: u64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = known_device::ActiveModel {
        token_hash: ActiveValue::Set(hash.as_str().to_owned()),
        user_id: ActiveValue::Set(user_id),
        created_at: ActiveValue::Set(now),
        last_used_at: ActiveValue::Set(now),
        second_factor_until: ActiveValue::Set(None),
        second_factor_cookie: ActiveValue::Set(None),
        user_agent: ActiveValue::Set(None),
    };
    known_device::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    let newest = Query::select()
        .column(known_device::Column::TokenHash)
        .from(known_device::Entity)
        .and_where(known_device::Column::UserId.eq(user_id))
        .order_by(known_device::Column::LastUsedAt, Order::Desc)
        .limit(keep)
        .to_owned();
    known_device::Entity::delete_many()
        .filter(known_device::Column::UserId.eq(user_id))
        .filter(known_device::Column::TokenHash.not_in_subquery(newest))
        .exec(db)
        .await
        .map(drop)
}

/// Forgets every device of the account: after a new password, no client
/// is known until it signs in with it.
pub async fn forget_all(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    let result = known_device::Entity::delete_many()
        .filter(known_device::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Deletes devices last used before `before`; returns how many.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = known_device::Entity::delete_many()
        .filter(known_device::Column::LastUsedAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Lets the device skip the second factor of its account until `until`.
pub async fn remember_second_factor(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
    user_id: Uuid,
    until: DateTime<Utc>,
    in_cookie: bool,
    user_agent: Option<&str>,
) -> Result<(), DbErr> {
    known_device::Entity::update_many()
        .col_expr(known_device::Column::SecondFactorUntil, Expr::value(until))
        .col_expr(
            known_device::Column::SecondFactorCookie,
            Expr::value(in_cookie),
        )
        .col_expr(
            known_device::Column::UserAgent,
            Expr::value(user_agent.map(str::to_owned)),
        )
        .filter(known_device::Column::TokenHash.eq(hash.as_str()))
        .filter(known_device::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .map(drop)
}

/// Whether the device may skip the account's second factor at `now`, its
/// token having come in the cookie (`in_cookie`) or in the request.
pub async fn skips_second_factor(
    db: &impl ConnectionTrait,
    hash: &TokenHash,
    user_id: Uuid,
    in_cookie: bool,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let found = known_device::Entity::find_by_id(hash.as_str())
        .filter(known_device::Column::UserId.eq(user_id))
        .filter(known_device::Column::SecondFactorCookie.eq(in_cookie))
        .filter(known_device::Column::SecondFactorUntil.gt(now))
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// The account's remembered devices at `now`, most recently used first.
pub async fn list_remembered(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<known_device::Model>, DbErr> {
    use sea_orm::QueryOrder;
    known_device::Entity::find()
        .filter(known_device::Column::UserId.eq(user_id))
        .filter(known_device::Column::SecondFactorUntil.gt(now))
        .order_by_desc(known_device::Column::LastUsedAt)
        .all(db)
        .await
}

/// Ends the second-factor memory of the account's devices; with `only`,
/// of the one device whose hash starts with it. Returns how many ended.
pub async fn forget_second_factor(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    only: Option<&str>,
) -> Result<u64, DbErr> {
    let mut update = known_device::Entity::update_many()
        .col_expr(
            known_device::Column::SecondFactorUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(known_device::Column::UserId.eq(user_id))
        .filter(known_device::Column::SecondFactorUntil.is_not_null());
    if let Some(id) = only {
        update = update.filter(known_device::Column::TokenHash.starts_with(id));
    }
    Ok(update.exec(db).await?.rows_affected)
}
