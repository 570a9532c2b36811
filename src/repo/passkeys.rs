//! Queries on `passkeys`.

use chrono::{DateTime, Utc};
use entity::passkey;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TryInsertResult,
};
use uuid::Uuid;

/// Stores a new passkey; false if its credential is already registered
/// (to any account), so one authenticator's key has one owner.
pub async fn insert(db: &impl ConnectionTrait, row: passkey::Model) -> Result<bool, DbErr> {
    let result = passkey::Entity::insert(passkey::ActiveModel::from(row))
        .on_conflict_do_nothing_on([passkey::Column::CredentialId])
        .exec_without_returning(db)
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(1)))
}

/// The account's passkeys, oldest first.
pub async fn list(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<passkey::Model>, DbErr> {
    passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedAt)
        .order_by_asc(passkey::Column::Id)
        .all(db)
        .await
}

pub async fn count(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .count(db)
        .await
}

/// The passkey with this credential ID (base64url), whoever owns it.
pub async fn find_by_credential(
    db: &impl ConnectionTrait,
    credential_id: &str,
) -> Result<Option<passkey::Model>, DbErr> {
    passkey::Entity::find()
        .filter(passkey::Column::CredentialId.eq(credential_id))
        .one(db)
        .await
}

/// The account's passkey with this id.
pub async fn find_owned(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<passkey::Model>, DbErr> {
    passkey::Entity::find_by_id(id)
        .filter(passkey::Column::UserId.eq(user_id))
        .one(db)
        .await
}

/// Records a use whose signature counter is `counter`, if it moves the
/// stored one forward (or both are 0: synced passkeys keep no counter).
/// False if another use got there first with this count or a later one.
pub async fn record_use(
    db: &impl ConnectionTrait,
    id: Uuid,
    counter: u32,
    credential: String,
    backed_up: bool,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let counter = i64::from(counter);
    let forward = passkey::Column::SignCount.lt(counter).or(Expr::val(counter)
        .eq(0)
        .and(passkey::Column::SignCount.eq(0)));
    let result = passkey::Entity::update_many()
        .col_expr(passkey::Column::SignCount, Expr::value(counter))
        .col_expr(passkey::Column::Credential, Expr::value(credential))
        .col_expr(passkey::Column::BackedUp, Expr::value(backed_up))
        .col_expr(passkey::Column::LastUsedAt, Expr::value(now))
        .filter(passkey::Column::Id.eq(id))
        .filter(forward)
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Renames the account's passkey; false if it has none with this id.
pub async fn rename(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    name: &str,
) -> Result<bool, DbErr> {
    let result = passkey::Entity::update_many()
        .col_expr(passkey::Column::Name, Expr::value(name))
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Deletes every passkey of the account; their names.
pub async fn delete_all(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<String>, DbErr> {
    let names = list(db, user_id)
        .await?
        .into_iter()
        .map(|row| row.name)
        .collect();
    passkey::Entity::delete_many()
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(names)
}

/// Deletes the account's passkey; false if it has none with this id.
pub async fn delete(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let result = passkey::Entity::delete_many()
        .filter(passkey::Column::Id.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
