//! The second factor: a TOTP secret (encrypted) per account, its recovery
//! codes (hashed), the challenges between a password and a code (hashed),
//! what each session was opened with, and browsers that need not ask again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // When the account's second factor was confirmed; read by the guard.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::SecondFactorAt))
                    .to_owned(),
            )
            .await?;
        // What proved the session's identity (comma-separated methods) and
        // the assurance level that gives; older sessions had a password.
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(string_len(Sessions::Methods, 64).default("PASSWORD"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(small_integer(Sessions::Aal).default(1))
                    .to_owned(),
            )
            .await?;
        // What proved the identity, on the events that open or step up a session.
        manager
            .alter_table(
                Table::alter()
                    .table(SecurityEvents::Table)
                    .add_column(string_len_null(SecurityEvents::Methods, 64))
                    .to_owned(),
            )
            .await?;
        // A browser that passed the second factor may skip it until then.
        manager
            .alter_table(
                Table::alter()
                    .table(KnownDevices::Table)
                    .add_column(timestamp_with_time_zone_null(
                        KnownDevices::SecondFactorUntil,
                    ))
                    .to_owned(),
            )
            .await?;
        // Whether the remembered token must come in the cookie (cookie
        // mode) or in the request (token mode): where it was handed out.
        manager
            .alter_table(
                Table::alter()
                    .table(KnownDevices::Table)
                    .add_column(boolean_null(KnownDevices::SecondFactorCookie))
                    .to_owned(),
            )
            .await?;
        // Which browser it is, for the list its owner can revoke from.
        manager
            .alter_table(
                Table::alter()
                    .table(KnownDevices::Table)
                    .add_column(string_len_null(KnownDevices::UserAgent, 512))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    .if_not_exists()
                    .col(uuid(TotpFactors::UserId).primary_key())
                    // Which key sealed the secret; the secret itself is an
                    // AEAD ciphertext, never plain.
                    .col(string_len(TotpFactors::KeyId, 32))
                    .col(text(TotpFactors::Secret))
                    .col(timestamp_with_time_zone(TotpFactors::CreatedAt))
                    .col(timestamp_with_time_zone_null(TotpFactors::ConfirmedAt))
                    // The last time step accepted: a code is used once (RFC 6238 §5.2).
                    .col(big_integer_null(TotpFactors::LastStep))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TotpFactors::Table, TotpFactors::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .if_not_exists()
                    .col(string_len(RecoveryCodes::CodeHash, 64).primary_key())
                    .col(uuid(RecoveryCodes::UserId))
                    .col(timestamp_with_time_zone(RecoveryCodes::CreatedAt))
                    .col(timestamp_with_time_zone_null(RecoveryCodes::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RecoveryCodes::Table, RecoveryCodes::UserId)
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
                    .name("idx_recovery_codes_user")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SignInChallenges::Table)
                    .if_not_exists()
                    .col(string_len(SignInChallenges::TokenHash, 64).primary_key())
                    .col(uuid(SignInChallenges::UserId))
                    // The credentials it was issued under: a change since ends it.
                    .col(big_integer(SignInChallenges::CredentialVersion))
                    .col(boolean(SignInChallenges::RememberMe))
                    .col(timestamp_with_time_zone(SignInChallenges::CreatedAt))
                    .col(timestamp_with_time_zone(SignInChallenges::ExpiresAt))
                    .col(integer(SignInChallenges::Failures).default(0))
                    .col(timestamp_with_time_zone_null(SignInChallenges::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SignInChallenges::Table, SignInChallenges::UserId)
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
                    .name("idx_sign_in_challenges_expiry")
                    .table(SignInChallenges::Table)
                    .col(SignInChallenges::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SignInChallenges::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpFactors::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        let drops = [
            (
                KnownDevices::Table.into_iden(),
                KnownDevices::UserAgent.into_iden(),
            ),
            (
                KnownDevices::Table.into_iden(),
                KnownDevices::SecondFactorCookie.into_iden(),
            ),
            (
                KnownDevices::Table.into_iden(),
                KnownDevices::SecondFactorUntil.into_iden(),
            ),
            (Sessions::Table.into_iden(), Sessions::Aal.into_iden()),
            (Sessions::Table.into_iden(), Sessions::Methods.into_iden()),
            (Users::Table.into_iden(), Users::SecondFactorAt.into_iden()),
            (
                SecurityEvents::Table.into_iden(),
                SecurityEvents::Methods.into_iden(),
            ),
        ];
        for (table, column) in drops {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    SecondFactorAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Methods,
    Aal,
}

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    Methods,
}

#[derive(DeriveIden)]
enum KnownDevices {
    Table,
    SecondFactorUntil,
    SecondFactorCookie,
    UserAgent,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    UserId,
    KeyId,
    Secret,
    CreatedAt,
    ConfirmedAt,
    LastStep,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    CodeHash,
    UserId,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum SignInChallenges {
    Table,
    TokenHash,
    UserId,
    CredentialVersion,
    RememberMe,
    CreatedAt,
    ExpiresAt,
    Failures,
    UsedAt,
}
