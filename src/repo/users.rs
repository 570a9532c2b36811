//! Queries on `users`.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::domain::email::Email;

/// Inserts a new account.
pub async fn insert(
    db: &impl ConnectionTrait,
    email: &Email,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<user::Model, DbErr> {
    let model = new_account(email, password_hash, now);
    user::Entity::insert(user::ActiveModel::from(model.clone()))
        .exec_without_returning(db)
        .await?;
    Ok(model)
}

fn new_account(email: &Email, password_hash: String, now: DateTime<Utc>) -> user::Model {
    user::Model {
        id: Uuid::new_v4(),
        email: email.as_str().to_owned(),
        password_hash,
        credential_version: 0,
        email_verified_at: None,
        disabled_at: None,
        second_factor_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// Stores an account made with a passkey: `id` is the user handle its
/// passkey was made for, and it has no password.
pub async fn insert_passwordless(
    db: &impl ConnectionTrait,
    id: Uuid,
    email: &Email,
    now: DateTime<Utc>,
) -> Result<user::Model, DbErr> {
    let model = user::Model {
        id,
        password_hash: user::NO_PASSWORD.to_owned(),
        ..new_account(email, String::new(), now)
    };
    user::Entity::insert(user::ActiveModel::from(model.clone()))
        .exec_without_returning(db)
        .await?;
    Ok(model)
}

/// The account with this (normalised) e-mail.
pub async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &Email,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await
}

/// The account with this id.
pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(id).one(db).await
}

/// Stores a new hash of the same password (new parameters); sessions that
/// password opened stay valid.
pub async fn rehash_password(
    db: &impl ConnectionTrait,
    id: Uuid,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::Entity::update(user::ActiveModel {
        id: Set(id),
        password_hash: Set(password_hash),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(db)
    .await
    .map(drop)
}

/// Replaces an account's password and moves its credential version on, so
/// that no sign-in verified against the old password opens a session.
pub async fn change_password(
    db: &impl ConnectionTrait,
    id: Uuid,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
        .col_expr(
            user::Column::CredentialVersion,
            Expr::col(user::Column::CredentialVersion).add(1),
        )
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// Takes the account's row lock until the transaction ends, so that
/// sign-ins that count its sessions take turns on every node.
///
/// A write that changes nothing: on PostgreSQL it locks the row; on SQLite
/// it takes the write lock first, where a read first would leave two such
/// transactions unable to upgrade (`SQLITE_BUSY`).
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(
            user::Column::CredentialVersion,
            Expr::col(user::Column::CredentialVersion),
        )
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// Deletes the account; its sessions go with it (`ON DELETE CASCADE`).
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    let result = user::Entity::delete_by_id(id).exec(db).await?;
    Ok(result.rows_affected == 1)
}

/// Marks the account's current address as proven at `now`, unless it
/// already is.
pub async fn mark_verified(
    db: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::EmailVerifiedAt.is_null())
        .exec(db)
        .await
        .map(drop)
}

/// Moves the account to a new address, proven at `now`. A taken address
/// fails on the unique index.
pub async fn change_email(
    db: &impl ConnectionTrait,
    id: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value(email))
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// Accounts by address, after `after`, with `filter` in the address.
pub async fn list(
    db: &impl ConnectionTrait,
    after: Option<&str>,
    filter: Option<&str>,
    limit: u64,
) -> Result<Vec<user::Model>, DbErr> {
    let mut select = user::Entity::find().order_by_asc(user::Column::Email);
    if let Some(after) = after {
        select = select.filter(user::Column::Email.gt(after));
    }
    if let Some(filter) = filter {
        // Literally: `%` and `_` in the filter are not wildcards.
        let escaped = filter
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = LikeExpr::new(format!("%{escaped}%")).escape('\\');
        select = select.filter(Expr::col(user::Column::Email).like(pattern));
    }
    select.limit(limit).all(db).await
}

/// Disables the account at `at`, or enables it with `None`.
pub async fn set_disabled(
    db: &impl ConnectionTrait,
    id: Uuid,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::DisabledAt, Expr::value(at))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// Records that the account's second factor was confirmed (`Some`) or
/// removed (`None`). Either changes its credentials: a sign-in proven
/// under the old ones opens nothing.
pub async fn set_second_factor(
    db: &impl ConnectionTrait,
    id: Uuid,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::SecondFactorAt, Expr::value(at))
        .col_expr(
            user::Column::CredentialVersion,
            Expr::col(user::Column::CredentialVersion).add(1),
        )
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}
