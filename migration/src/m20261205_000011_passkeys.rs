//! Passkeys (WebAuthn credentials) and the ceremonies that register and
//! use them, whose state stays here so that any node can finish one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .if_not_exists()
                    .col(uuid(Passkeys::Id).primary_key())
                    .col(uuid(Passkeys::UserId))
                    // base64url of the credential ID (at most 1023 bytes):
                    // one authenticator's key belongs to one account.
                    .col(string_len(Passkeys::CredentialId, 1400).unique_key())
                    // webauthn-rs's `Passkey`: the public key and its flags.
                    .col(text(Passkeys::Credential))
                    .col(string_len(Passkeys::Name, 64))
                    .col(uuid_null(Passkeys::Aaguid))
                    .col(boolean(Passkeys::BackedUp))
                    // The authenticator's signature counter, moved forward
                    // by a conditional UPDATE so two uses cannot both pass.
                    .col(big_integer(Passkeys::SignCount).default(0))
                    .col(timestamp_with_time_zone(Passkeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(Passkeys::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Passkeys::Table, Passkeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_passkeys_user")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PasskeyCeremonies::Table)
                    .if_not_exists()
                    .col(string_len(PasskeyCeremonies::TokenHash, 64).primary_key())
                    .col(string_len(PasskeyCeremonies::Purpose, 24))
                    // The account it is for; for a sign-up, the id it will get.
                    .col(uuid_null(PasskeyCeremonies::UserId))
                    // The session that began it, for a registration or a step-up.
                    .col(uuid_null(PasskeyCeremonies::SessionId))
                    // The sign-in challenge it answers, as a second factor.
                    .col(string_len_null(PasskeyCeremonies::ChallengeHash, 64))
                    // The address of the account a sign-up will create.
                    .col(string_len_null(PasskeyCeremonies::Email, 320))
                    // webauthn-rs's ceremony state, never sent to the client.
                    .col(text(PasskeyCeremonies::State))
                    .col(timestamp_with_time_zone(PasskeyCeremonies::CreatedAt))
                    .col(timestamp_with_time_zone(PasskeyCeremonies::ExpiresAt))
                    .col(timestamp_with_time_zone_null(PasskeyCeremonies::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_passkey_ceremonies_expiry")
                    .table(PasskeyCeremonies::Table)
                    .col(PasskeyCeremonies::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PasskeyCeremonies::Table.into_iden(),
            Passkeys::Table.into_iden(),
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
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    Credential,
    Name,
    Aaguid,
    BackedUp,
    SignCount,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum PasskeyCeremonies {
    Table,
    TokenHash,
    Purpose,
    UserId,
    SessionId,
    ChallengeHash,
    Email,
    State,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}
