//! Other ways in: accounts at other identity providers linked by their
//! subject, the provider sign-ins under way, and codes sent by e-mail.
//! A sign-in challenge now records what proved the first step.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ExternalIdentities::Table)
                    .if_not_exists()
                    .col(uuid(ExternalIdentities::Id).primary_key())
                    .col(uuid(ExternalIdentities::UserId))
                    .col(string_len(ExternalIdentities::Provider, 64))
                    // The provider's `sub`: the identity, whatever its e-mail becomes.
                    .col(string_len(ExternalIdentities::Subject, 255))
                    // The provider's last word on its e-mail, for display.
                    .col(string_len_null(ExternalIdentities::Email, 320))
                    .col(timestamp_with_time_zone(ExternalIdentities::CreatedAt))
                    .col(timestamp_with_time_zone_null(
                        ExternalIdentities::LastUsedAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ExternalIdentities::Table, ExternalIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "idx_external_identities_subject",
                vec![ExternalIdentities::Provider, ExternalIdentities::Subject],
            ),
            (
                "idx_external_identities_user",
                vec![ExternalIdentities::UserId],
            ),
        ] {
            let mut index = Index::create();
            index
                .if_not_exists()
                .name(name)
                .table(ExternalIdentities::Table);
            if name.ends_with("subject") {
                index.unique();
            }
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ProviderFlows::Table)
                    .if_not_exists()
                    // SHA-256 of the flow secret the browser keeps, which is
                    // also the PKCE verifier: the provider sees only this hash.
                    .col(string_len(ProviderFlows::FlowHash, 64).primary_key())
                    .col(string_len(ProviderFlows::StateHash, 64))
                    .col(string_len(ProviderFlows::NonceHash, 64))
                    .col(string_len(ProviderFlows::Provider, 64))
                    .col(string_len(ProviderFlows::Purpose, 16))
                    // The session that began a link.
                    .col(uuid_null(ProviderFlows::SessionId))
                    .col(string_len(ProviderFlows::RedirectUri, 2048))
                    .col(timestamp_with_time_zone(ProviderFlows::CreatedAt))
                    .col(timestamp_with_time_zone(ProviderFlows::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ProviderFlows::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EmailSignInCodes::Table)
                    .if_not_exists()
                    // SHA-256 of the challenge the browser keeps.
                    .col(string_len(EmailSignInCodes::ChallengeHash, 64).primary_key())
                    .col(string_len(EmailSignInCodes::Email, 320))
                    // None for an address with no account: it is stored all
                    // the same, so answers look alike.
                    .col(uuid_null(EmailSignInCodes::UserId))
                    // SHA-256 of the challenge and the code together: the
                    // code alone, 10^8 values, would be found from its hash.
                    .col(string_len(EmailSignInCodes::CodeHash, 64))
                    .col(integer(EmailSignInCodes::Failures).default(0))
                    .col(timestamp_with_time_zone(EmailSignInCodes::CreatedAt))
                    .col(timestamp_with_time_zone(EmailSignInCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(EmailSignInCodes::UsedAt))
                    .to_owned(),
            )
            .await?;
        for (name, table, column) in [
            (
                "idx_provider_flows_expiry",
                ProviderFlows::Table.into_iden(),
                ProviderFlows::ExpiresAt.into_iden(),
            ),
            (
                "idx_email_sign_in_codes_expiry",
                EmailSignInCodes::Table.into_iden(),
                EmailSignInCodes::ExpiresAt.into_iden(),
            ),
        ] {
            let index = Index::create()
                .if_not_exists()
                .name(name)
                .table(table)
                .col(column)
                .to_owned();
            manager.create_index(index).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(SignInChallenges::Table)
                    .add_column(string_len(SignInChallenges::FirstMethod, 32).default("PASSWORD"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SignInChallenges::Table)
                    .drop_column(SignInChallenges::FirstMethod)
                    .to_owned(),
            )
            .await?;
        for table in [
            EmailSignInCodes::Table.into_iden(),
            ProviderFlows::Table.into_iden(),
            ExternalIdentities::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SignInChallenges {
    Table,
    FirstMethod,
}

#[derive(DeriveIden)]
enum ExternalIdentities {
    Table,
    Id,
    UserId,
    Provider,
    Subject,
    Email,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum ProviderFlows {
    Table,
    FlowHash,
    StateHash,
    NonceHash,
    Provider,
    Purpose,
    SessionId,
    RedirectUri,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum EmailSignInCodes {
    Table,
    ChallengeHash,
    Email,
    UserId,
    CodeHash,
    Failures,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}
