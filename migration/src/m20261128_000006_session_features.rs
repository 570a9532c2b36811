//! What the session features need:
//!
//! - `sessions.authenticated_at`: when a password was last proven on the
//!   session (step-up). Nullable only because SQLite cannot add a NOT NULL
//!   column without a constant default; it is backfilled and always written.
//! - `sessions.remember_me`: which policy the session lives under, for life.
//! - `sessions.revoked_reason`: why it ended (a revocation's cause, or the
//!   timeout once recorded), so its holder is told.
//! - `sessions.end_recorded`: whether the event of its end is written, so
//!   that an expiry is recorded once, by whichever node sees it first.
//! - `security_events`: each user's own history, newest first.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            timestamp_with_time_zone_null(Sessions::AuthenticatedAt),
            boolean(Sessions::RememberMe).default(false).to_owned(),
            string_len_null(Sessions::RevokedReason, 32),
            boolean(Sessions::EndRecorded).default(false).to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .exec_stmt(
                Query::update()
                    .table(Sessions::Table)
                    .value(Sessions::AuthenticatedAt, Expr::col(Sessions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // Sessions that ended before events existed have nothing to record.
        manager
            .exec_stmt(
                Query::update()
                    .table(Sessions::Table)
                    .value(Sessions::EndRecorded, true)
                    .and_where(Expr::col(Sessions::RevokedAt).is_not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SecurityEvents::Table)
                    .if_not_exists()
                    .col(pk_uuid(SecurityEvents::Id))
                    // No foreign key: "account deleted" outlives the account.
                    .col(uuid(SecurityEvents::UserId))
                    .col(string_len(SecurityEvents::Kind, 32))
                    .col(string_len_null(SecurityEvents::Detail, 32))
                    .col(uuid_null(SecurityEvents::SessionId))
                    .col(uuid_null(SecurityEvents::ActorSessionId))
                    .col(boolean_null(SecurityEvents::RememberMe))
                    .col(string_len_null(SecurityEvents::UserAgent, 512))
                    .col(string_len_null(SecurityEvents::IpAddress, 64))
                    .col(timestamp_with_time_zone(SecurityEvents::OccurredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_security_events_user_time")
                    .table(SecurityEvents::Table)
                    .col(SecurityEvents::UserId)
                    .col(SecurityEvents::OccurredAt)
                    .col(SecurityEvents::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_security_events_time")
                    .table(SecurityEvents::Table)
                    .col(SecurityEvents::OccurredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SecurityEvents::Table).to_owned())
            .await?;
        for column in [
            Sessions::EndRecorded,
            Sessions::RevokedReason,
            Sessions::RememberMe,
            Sessions::AuthenticatedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    CreatedAt,
    RevokedAt,
    AuthenticatedAt,
    RememberMe,
    RevokedReason,
    EndRecorded,
}

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    Id,
    UserId,
    Kind,
    Detail,
    SessionId,
    ActorSessionId,
    RememberMe,
    UserAgent,
    IpAddress,
    OccurredAt,
}
