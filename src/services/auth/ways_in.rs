//! The rule that keeps an account reachable: nothing may take away its
//! last way in.

use entity::user;
use sea_orm::{ConnectionTrait, DbErr};

use crate::repo::{external_identities, passkeys};

/// The ways into `account`: its password, each passkey, each provider
/// link. Read in the transaction that holds the account's lock, so that
/// two removals at once are judged one after the other.
pub(super) async fn ways_in(
    db: &impl ConnectionTrait,
    account: &user::Model,
) -> Result<u64, DbErr> {
    let password = u64::from(account.password_hash != user::NO_PASSWORD);
    Ok(password
        + passkeys::count(db, account.id).await?
        + external_identities::count(db, account.id).await?)
}
