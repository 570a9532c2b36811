//! Signing in: one module per proof of identity, and the one path that
//! opens a session, whatever proved it.

pub mod email_code;
pub mod passkey;
pub mod password;
pub mod provider;
pub mod second_factor;
pub(in crate::services::auth) mod totp;

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::DatabaseTransaction;

use crate::context::{Account, SessionRecord};
use crate::domain::client::ClientInfo;
use crate::domain::second_factor::{Level, Method, Methods};
use crate::domain::security_event::EventKind;
use crate::domain::session_policy::Expiry;
use crate::domain::token::{DeviceToken, SessionToken};
use crate::error::AppError;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::sessions::{self, NewSession};
use crate::repo::users;
use crate::services::auth::AuthService;
use crate::session_notifier::Notice;

/// A new session and the token that is its only key, returned once.
pub struct SignedIn {
    pub token: SessionToken,
    /// The client's known-device token, after a sign-in with a password.
    pub device: Option<DeviceToken>,
    pub account: Account,
    pub session: SessionRecord,
    pub expiry: Expiry,
}

/// A session about to open: whose, how it came in, what proved it, and
/// from where.
pub(in crate::services::auth) struct Opening<'a> {
    pub user: &'a user::Model,
    /// The account's credentials when its password was proven: if they
    /// changed since, nothing opens.
    pub credential_version: i64,
    /// How the account came in, for its event: `REGISTER` or `LOGIN`.
    pub by: &'static str,
    pub methods: Methods,
    pub remember_me: bool,
    pub client: &'a ClientInfo,
}

impl AuthService {
    /// The one path that opens a session, whatever proved the identity:
    /// a new token, the session under the account's current credentials,
    /// its event and the session limit, committed in `txn` with whatever
    /// the caller wrote there. Refused if the account changed since it
    /// was proven.
    pub(in crate::services::auth) async fn open_session(
        &self,
        txn: DatabaseTransaction,
        opening: Opening<'_>,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let Opening {
            user,
            credential_version,
            by,
            methods,
            remember_me,
            client,
        } = opening;
        // Every way in passes here: none may skip a factor the rule asks for.
        let requirement = self.second_factor.requirement;
        if requirement.asks_at_sign_in(user.second_factor_at.is_some())
            && methods.level() < Level::Aal2
        {
            return Err(AppError::internal(anyhow::anyhow!(
                "a sign-in reached the session without its second factor"
            )));
        }
        let token = SessionToken::generate().map_err(AppError::internal)?;
        // Sessions it revokes are judged and stamped when the write lands.
        let at = self.write_instant(now);
        if self.rules.max_sessions.is_some() {
            users::lock(&txn, user.id).await?;
        }
        let hash = token.hash();
        let new = NewSession {
            user_id: user.id,
            credential_version,
            token_hash: &hash,
            remember_me,
            client,
            methods: &methods,
        };
        let Some(session) = sessions::insert(&txn, new, now).await? else {
            // The password was changed, or the account disabled, while this
            // one was being checked.
            txn.rollback().await?;
            return Err(self.lost_race(user).await);
        };
        let mut limited = Vec::new();
        let mut events = vec![
            NewEvent::of(EventKind::SignedIn, user.id, session.id, now)
                .detail(by)
                .client(client)
                .remembered(remember_me)
                .methods(&methods),
        ];
        if let Some(limit) = self.rules.max_sessions {
            let policies = &self.rules.policies;
            let (user_id, keep) = (user.id, session.id);
            limited = sessions::enforce_limit(&txn, user_id, keep, limit, policies, at).await?;
            events.extend(limited.iter().map(|&id| {
                NewEvent::of(EventKind::SessionRevoked, user.id, id, at)
                    .detail("SESSION_LIMIT")
                    .actor(session.id)
            }));
        }
        security_events::insert(&txn, events).await?;
        let notices = self
            .notifier
            .announce(&txn, limited.into_iter().map(Notice::Session));
        let notices = notices.await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user.id, session_id = %session.id, by, %methods, "signed in");
        let session = SessionRecord::from(&session);
        Ok(SignedIn {
            token,
            device: None,
            account: Account::from(user),
            expiry: self.expiry(&session),
            session,
        })
    }

    /// A first step other than a password proven (another provider, an
    /// e-mail code): the second factor's challenge where the account has
    /// one (a remembered browser skips only a password's), else a session
    /// opened in `txn` with what the caller wrote there. The caller has
    /// counted the sign-in (`reserve_signin`) before opening `txn`: on
    /// SQLite a count made inside it would wait on its own lock.
    pub(in crate::services::auth) async fn first_step_proven(
        &self,
        txn: DatabaseTransaction,
        user: &user::Model,
        first: Method,
        remember_me: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        if self
            .second_factor
            .requirement
            .asks_at_sign_in(user.second_factor_at.is_some())
        {
            txn.commit().await?;
            self.outbox.wake();
            return Err(self.challenge(user, first, remember_me, now).await?);
        }
        let opening = Opening {
            user,
            credential_version: user.credential_version,
            by: "LOGIN",
            methods: Methods::of(&[first]),
            remember_me,
            client,
        };
        let signed_in = self.open_session(txn, opening, now).await?;
        self.outbox.wake();
        Ok(signed_in)
    }

    /// Why a session could not open for an account proven a moment ago.
    async fn lost_race(&self, user: &user::Model) -> AppError {
        tracing::info!(user_id = %user.id, "sign-in lost a race with a change to the account");
        match users::find_by_id(&self.db, user.id).await {
            Ok(Some(now)) if now.disabled_at.is_some() => AppError::AccountDisabled,
            Ok(_) => AppError::InvalidCredentials,
            Err(err) => err.into(),
        }
    }
}
