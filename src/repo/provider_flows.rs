//! Queries on `provider_flows`.

use chrono::{DateTime, Utc};
use entity::provider_flow;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::domain::token::TokenHash;

/// Stores a flow just begun.
pub async fn insert(db: &impl ConnectionTrait, row: provider_flow::Model) -> Result<(), DbErr> {
    provider_flow::Entity::insert(provider_flow::ActiveModel::from(row))
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Takes the flow with this hash, if its `state`, purpose and session are
/// these and it is unused and unexpired at `now`, using it up: of two
/// finishes at once exactly one gets it, and a code and `state` from
/// another browser's flow find nothing.
pub async fn take(
    db: &impl ConnectionTrait,
    flow: &TokenHash,
    state: &TokenHash,
    purpose: &str,
    session_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<provider_flow::Model>, DbErr> {
    let mut update = provider_flow::Entity::update_many();
    update = match session_id {
        Some(id) => update.filter(provider_flow::Column::SessionId.eq(id)),
        None => update.filter(provider_flow::Column::SessionId.is_null()),
    };
    let result = update
        .col_expr(provider_flow::Column::UsedAt, Expr::value(now))
        .filter(provider_flow::Column::FlowHash.eq(flow.as_str()))
        .filter(provider_flow::Column::StateHash.eq(state.as_str()))
        .filter(provider_flow::Column::Purpose.eq(purpose))
        .filter(provider_flow::Column::UsedAt.is_null())
        .filter(provider_flow::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    if result.rows_affected != 1 {
        return Ok(None);
    }
    provider_flow::Entity::find_by_id(flow.as_str())
        .one(db)
        .await
}

/// Deletes flows that expired before `before`.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = provider_flow::Entity::delete_many()
        .filter(provider_flow::Column::ExpiresAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
