//! Queries on `external_identities`.

use chrono::{DateTime, Utc};
use entity::external_identity;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TryInsertResult,
};
use uuid::Uuid;

/// Links an account at a provider; false if that subject is linked already
/// (to this account or another), which the unique index decides.
pub async fn insert(
    db: &impl ConnectionTrait,
    row: external_identity::Model,
) -> Result<bool, DbErr> {
    let result = external_identity::Entity::insert(external_identity::ActiveModel::from(row))
        .on_conflict_do_nothing_on([
            external_identity::Column::Provider,
            external_identity::Column::Subject,
        ])
        .exec_without_returning(db)
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(1)))
}

/// The link of this subject at this provider, if any.
pub async fn find(
    db: &impl ConnectionTrait,
    provider: &str,
    subject: &str,
) -> Result<Option<external_identity::Model>, DbErr> {
    external_identity::Entity::find()
        .filter(external_identity::Column::Provider.eq(provider))
        .filter(external_identity::Column::Subject.eq(subject))
        .one(db)
        .await
}

/// The account's links, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Vec<external_identity::Model>, DbErr> {
    external_identity::Entity::find()
        .filter(external_identity::Column::UserId.eq(user_id))
        .order_by_asc(external_identity::Column::CreatedAt)
        .order_by_asc(external_identity::Column::Id)
        .all(db)
        .await
}

pub async fn count(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    external_identity::Entity::find()
        .filter(external_identity::Column::UserId.eq(user_id))
        .count(db)
        .await
}

/// Records a sign-in with it, and the address the provider gives now.
pub async fn record_use(
    db: &impl ConnectionTrait,
    id: Uuid,
    email: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    external_identity::Entity::update_many()
        .col_expr(external_identity::Column::LastUsedAt, Expr::value(now))
        .col_expr(
            external_identity::Column::Email,
            Expr::value(email.map(str::to_owned)),
        )
        .filter(external_identity::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// Unlinks the account's link with this id; its provider, if there was one.
pub async fn delete(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<String>, DbErr> {
    let Some(row) = external_identity::Entity::find_by_id(id)
        .filter(external_identity::Column::UserId.eq(user_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let result = external_identity::Entity::delete_by_id(id).exec(db).await?;
    Ok((result.rows_affected == 1).then_some(row.provider))
}

/// Unlinks every link of the account; their providers.
pub async fn delete_all(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<String>, DbErr> {
    let providers = list(db, user_id)
        .await?
        .into_iter()
        .map(|row| row.provider)
        .collect();
    external_identity::Entity::delete_many()
        .filter(external_identity::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(providers)
}
