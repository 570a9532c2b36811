//! Two version counters that make concurrent writes safe without locks:
//!
//! - `users.credential_version` changes with the password, so a sign-in
//!   verified against the old password cannot open a session after the
//!   change has committed;
//! - `login_throttles.version` changes with every counted attempt, so nodes
//!   that count at once compare and set, and none of them loses a count.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(big_integer(Users::CredentialVersion).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(LoginThrottles::Table)
                    .add_column(big_integer(LoginThrottles::Version).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(LoginThrottles::Table)
                    .drop_column(LoginThrottles::Version)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::CredentialVersion)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    CredentialVersion,
}

#[derive(DeriveIden)]
enum LoginThrottles {
    Table,
    Version,
}
