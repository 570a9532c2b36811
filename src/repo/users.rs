//! Queries on `users`.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::domain::email::Email;

/// Inserts a new account.
pub async fn insert(
    db: &impl ConnectionTrait,
    email: &Email,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<user::Model, DbErr> {
    let model = user::Model {
        id: Uuid::new_v4(),
        email: email.as_str().to_owned(),
        password_hash,
        created_at: now,
        updated_at: now,
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

/// Replaces an account's password hash.
pub async fn set_password_hash(
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
