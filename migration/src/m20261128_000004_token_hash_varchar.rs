//! `sessions.token_hash` was `char(64)`. PostgreSQL compares a `char` column
//! with a text parameter by casting the column, which cannot use its unique
//! index: every guarded request scanned the whole table. `varchar(64)`
//! compares as text, so the index serves the lookup again.
//!
//! SQLite has no column types to change (`char(64)` already has text
//! affinity, and its index was always used), and cannot alter a column, so
//! this migration does nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_token_hash_type(manager, ColumnType::String(StringLen::N(64))).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_token_hash_type(manager, ColumnType::Char(Some(64))).await
    }
}

async fn set_token_hash_type(manager: &SchemaManager<'_>, to: ColumnType) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    manager
        .alter_table(
            Table::alter()
                .table(Sessions::Table)
                .modify_column(ColumnDef::new_with_type(Sessions::TokenHash, to).not_null())
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TokenHash,
}
