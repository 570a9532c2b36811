//! Sign-up, sign-in and everything done with a session. Every use case is
//! judged at the request's one instant, `now`, taken by the guard.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use entity::{security_event, session, user};
use sea_orm::{DatabaseConnection, DatabaseTransaction, SqlErr, TransactionTrait};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::clock::Clock;
use crate::context::{Account, CurrentSession, SessionRecord};
use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::security_event::EventKind;
use crate::domain::session_policy::{
    Expiry, SessionPolicies, SessionPolicy, SessionTimes, Verdict,
};
use crate::domain::token::{DeviceToken, Purpose, SessionToken};
use crate::error::{AppError, AuthFailure};
use crate::repo::security_events::{self, NewEvent};
use crate::repo::session_reader::{GuardRow, SessionReader};
use crate::repo::sessions::{self, Revocation};
use crate::repo::{email_tokens, known_devices as device_rows, users};
use crate::services::outbox::Outbox;
use crate::services::passwords::Passwords;
use crate::services::throttle::{Known, LoginThrottle};
use crate::services::{expiry, known_devices};
use crate::session_notifier::{Notice, SessionNotifier};

/// The rules a session lives by, beyond its timeouts' instants.
#[derive(Clone, Copy, Debug)]
pub struct SessionRules {
    pub policies: SessionPolicies,
    /// How recently a password must have been proven for a sensitive operation.
    pub fresh_age: TimeDelta,
    /// The most live sessions per account, if limited.
    pub max_sessions: Option<u32>,
}

/// The authentication use cases, shared by the guard and the resolvers.
#[derive(Clone)]
pub struct AuthService {
    pub db: DatabaseConnection,
    pub reader: SessionReader,
    pub rules: SessionRules,
    pub passwords: Passwords,
    pub throttle: LoginThrottle,
    pub clock: Clock,
    /// Where revocations are announced, for live subscriptions.
    pub notifier: SessionNotifier,
    /// Where e-mails are queued, in the transaction that causes them.
    pub outbox: Outbox,
    /// `GATEHOUSE_REGISTRATION=open`: anyone may sign up.
    pub registration_open: bool,
    /// Live subscriptions' reads at once: at most half the pool, so that
    /// many timers firing together never starve the requests.
    pub live_reads: Arc<Semaphore>,
}

/// A new session and the token that is its only key, returned once.
pub struct SignedIn {
    pub token: SessionToken,
    /// The client's known-device token, after a sign-in with a password.
    pub device: Option<DeviceToken>,
    pub account: Account,
    pub session: SessionRecord,
    pub expiry: Expiry,
}

/// A session as a live subscription sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Live(Expiry),
    Ended(AuthFailure),
}

/// What a client offers to sign in with a password.
pub struct LoginAttempt<'a> {
    pub email: &'a str,
    pub password: String,
    pub remember_me: bool,
    /// The known-device token the client holds, if any.
    pub device: Option<&'a str>,
}

/// What `changePassword` did besides changing the password.
pub struct PasswordChanged {
    pub session: CurrentSession,
    pub revoked_sessions: u64,
}

impl AuthService {
    /// Where revocations are announced, for live subscriptions.
    pub fn notifier(&self) -> &SessionNotifier {
        &self.notifier
    }

    /// The rules sessions live by.
    pub fn rules(&self) -> &SessionRules {
        &self.rules
    }

    /// The clock the guard reads once per request.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Creates an account and signs it in, in one transaction. Sign-ups are
    /// counted per address before any hashing.
    pub async fn register(
        &self,
        email: &str,
        password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        if !self.registration_open {
            return Err(AppError::RegistrationClosed);
        }
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        let password = Password::parse_new(password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        self.throttle.reserve_registration(client.ip, now).await?;
        // Counted, then judged before the lookup: alike for every address.
        self.passwords
            .require_quality(&password, email.as_str())
            .await?;
        // Checked before hashing so a taken address costs no argon2 slot; the
        // unique index still decides a race.
        if users::find_by_email(&self.db, &email).await?.is_some() {
            return Err(AppError::EmailTaken);
        }
        // Every message counts against its address, so signing up someone
        // else's address again and again cannot flood it. Past the limit the
        // account is made without the mail; its owner can ask again later.
        let mail = self.may_mail(&email, now).await?;
        let hash = self.passwords.hash(password).await?;
        let token = SessionToken::generate().map_err(AppError::internal)?;
        // The session starts at the request's instant, before the hashing
        // wait: its caps can only come earlier for it.
        let txn = self.db.begin().await?;
        let user = users::insert(&txn, &email, hash, now)
            .await
            .map_err(|e| match e.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => AppError::EmailTaken,
                _ => e.into(),
            })?;
        let session = sessions::insert(&txn, user.id, 0, &token.hash(), false, client, now)
            .await?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("new account vanished")))?;
        let signed_in = NewEvent::of(EventKind::SignedIn, user.id, session.id, now)
            .detail("REGISTER")
            .client(client);
        security_events::insert(&txn, vec![signed_in.remembered(false)]).await?;
        if mail {
            self.outbox
                .queue_link(&txn, Purpose::Verify, user.id, &user.email, now)
                .await?;
        }
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user.id, session_id = %session.id, "registered");
        let device = known_devices::remember(&self.db, user.id, None, now).await?;
        let mut signed_in = self.signed_in(token, Account::from(&user), &session);
        signed_in.device = Some(device);
        Ok(signed_in)
    }

    /// Checks a password and opens a new session. An unknown e-mail and a
    /// wrong password fail alike, in message and in time, and both count
    /// towards the brute-force limits, before any hashing. `device` is the
    /// client's known-device token, if it has one.
    pub async fn login(
        &self,
        attempt: LoginAttempt<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let email = Email::parse(attempt.email).map_err(AppError::BadUserInput)?;
        let password = Password::parse_attempt(attempt.password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        let known = known_devices::recognise(&self.db, &email, attempt.device, now).await?;
        let device = known.as_ref().map(DeviceToken::hash);
        let reservation = self
            .throttle
            .reserve(&email, client.ip, device.as_ref().map(Known::Device), now)
            .await?;
        let user = self.check_password(&email, password, now).await?;
        self.throttle.succeeded(reservation).await?;
        self.throttle.reserve_signin(user.id, now).await?;
        let device = known_devices::remember(&self.db, user.id, known, now).await?;
        let token = SessionToken::generate().map_err(AppError::internal)?;
        let remember_me = self.rules.policies.remembers(attempt.remember_me);
        let session = self
            .open_session(&user, &token, remember_me, client, now)
            .await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "logged in");
        let mut signed_in = self.signed_in(token, Account::from(&user), &session);
        signed_in.device = Some(device);
        Ok(signed_in)
    }

    /// The account at `email` if `password` is its password and it may
    /// sign in; its hash is redone under the current parameters if needed.
    async fn check_password(
        &self,
        email: &Email,
        password: Password,
        now: DateTime<Utc>,
    ) -> Result<user::Model, AppError> {
        let user = users::find_by_email(&self.db, email).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.passwords.verify(password, stored).await?;
        let Some(user) = user.filter(|_| verified.matched) else {
            tracing::info!("login failed");
            return Err(AppError::InvalidCredentials);
        };
        if user.disabled_at.is_some() {
            tracing::info!(user_id = %user.id, "login refused: account disabled");
            return Err(AppError::AccountDisabled);
        }
        if let Some(hash) = verified.rehash {
            users::rehash_password(&self.db, user.id, hash, now).await?;
            tracing::info!(user_id = %user.id, "password rehashed with current parameters");
        }
        Ok(user)
    }

    /// Opens a session for `user` under `token`, in one transaction with
    /// its event and the session limit, unless the account changed since
    /// its password was checked.
    async fn open_session(
        &self,
        user: &user::Model,
        token: &SessionToken,
        remember_me: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<session::Model, AppError> {
        let txn = self.db.begin().await?;
        // Sessions it revokes are judged and stamped when the write lands.
        let at = self.write_instant(now);
        if self.rules.max_sessions.is_some() {
            users::lock(&txn, user.id).await?;
        }
        let (version, hash) = (user.credential_version, token.hash());
        let insert = sessions::insert(&txn, user.id, version, &hash, remember_me, client, now);
        let Some(session) = insert.await? else {
            // The password was changed, or the account disabled, while this
            // one was being checked.
            txn.rollback().await?;
            let now_disabled = users::find_by_id(&self.db, user.id)
                .await?
                .is_some_and(|u| u.disabled_at.is_some());
            tracing::info!(user_id = %user.id, "login lost a race with a change to the account");
            return Err(if now_disabled {
                AppError::AccountDisabled
            } else {
                AppError::InvalidCredentials
            });
        };
        let mut limited = Vec::new();
        let mut events = vec![
            NewEvent::of(EventKind::SignedIn, user.id, session.id, now)
                .detail("LOGIN")
                .client(client)
                .remembered(remember_me),
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
        Ok(session)
    }

    /// The guard's check: finds the token's session, judges it at `now`,
    /// records the activity unless the request is passive, and reports the
    /// expiry the database then holds.
    pub async fn authenticate(
        &self,
        token: &SessionToken,
        now: DateTime<Utc>,
        passive: bool,
    ) -> Result<CurrentSession, AppError> {
        let GuardRow {
            session: mut record,
            account,
            disabled,
        } = self
            .reader
            .find(&token.hash())
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        if disabled {
            return Err(AppError::Unauthenticated(AuthFailure::AccountDisabled));
        }
        if let Err(refused) = self.judge(&record, now) {
            // The reader's row may predate a slide that kept the session
            // alive: read it again from the primary before refusing.
            let Some(fresh) = sessions::find(&self.db, record.id).await? else {
                return Err(refused);
            };
            record = SessionRecord::from(&fresh);
            if let Err(refused) = self.judge(&record, now) {
                if !record.end_recorded && record.revoked_at.is_none() {
                    expiry::record(&self.db, &self.rules.policies, account.id, &record, now).await;
                }
                return Err(refused);
            }
        }
        let record = if !passive
            && self
                .policy(&record)
                .needs_slide(now, record.last_activity_at)
        {
            self.slide(record, now).await?
        } else {
            record
        };
        Ok(self.current(account, record))
    }

    /// A session's state at `now`, read from the primary, for a live
    /// subscription. It slides nothing: holding a tab open is not activity.
    pub async fn session_state(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<SessionState, AppError> {
        let _permit = self
            .live_reads
            .acquire()
            .await
            .map_err(AppError::internal)?;
        let Some(session) = sessions::find(&self.db, id).await? else {
            return Ok(SessionState::Ended(AuthFailure::InvalidToken));
        };
        let session = SessionRecord::from(&session);
        match self.judge(&session, now) {
            Ok(()) => Ok(SessionState::Live(self.expiry(&session))),
            Err(AppError::Unauthenticated(failure)) => Ok(SessionState::Ended(failure)),
            Err(err) => Err(err),
        }
    }

    /// Records activity at `now`, whatever the granularity: the SPA's
    /// keep-alive. It can never revive a session that has ended.
    pub async fn refresh(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<CurrentSession, AppError> {
        let at = self.write_instant(now);
        let session = self.slide(current.session.clone(), at).await?;
        Ok(self.current(current.account.clone(), session))
    }

    /// Proves the password again on the caller's session (step-up). It is
    /// throttled and counted exactly like `login`, and slides nothing else.
    pub async fn reauthenticate(
        &self,
        current: &CurrentSession,
        password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<CurrentSession, AppError> {
        self.prove_password(current, password, client, now).await?;
        let (txn, at) = self.claim(current, now).await?;
        sessions::set_authenticated(&txn, current.session.id, &self.rules.policies, at).await?;
        let event = NewEvent::of(
            EventKind::Reauthenticated,
            current.account.id,
            current.session.id,
            at,
        )
        .client(client);
        security_events::insert(&txn, vec![event]).await?;
        txn.commit().await?;
        tracing::info!(user_id = %current.account.id, session_id = %current.session.id, "reauthenticated");
        let mut session = current.session.clone();
        session.authenticated_at = at;
        Ok(self.current(current.account.clone(), session))
    }

    /// Revokes one of the caller's sessions. Anyone else's is `NOT_FOUND`,
    /// exactly like an id that does not exist. Another of the caller's
    /// sessions needs a fresh password.
    pub async fn revoke(
        &self,
        current: &CurrentSession,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(SessionRecord, Expiry), AppError> {
        let own = id == current.session.id;
        if !own {
            self.require_fresh(current, now)?;
        }
        let (txn, at) = self.claim(current, now).await?;
        let user = current.account.id;
        let revoked = sessions::revoke(&txn, id, user, &self.rules.policies, at).await?;
        if revoked {
            let by = if own {
                "CURRENT_SESSION"
            } else {
                "OTHER_SESSION"
            };
            let event = NewEvent::of(EventKind::SessionRevoked, user, id, at)
                .detail(by)
                .actor(current.session.id);
            security_events::insert(&txn, vec![event]).await?;
        }
        let session = sessions::find_owned(&txn, id, user)
            .await?
            .ok_or(AppError::NotFound)?;
        let ended = revoked.then_some(Notice::Session(id));
        let notices = self.notifier.announce(&txn, ended).await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user, session_id = %id, "session revoked");
        let session = SessionRecord::from(&session);
        let expiry = self.expiry(&session);
        Ok((session, expiry))
    }

    /// Signs out the caller's own session, if it is still live.
    pub async fn logout(
        &self,
        current: &CurrentSession,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let (id, user, at) = (
            current.session.id,
            current.account.id,
            self.write_instant(now),
        );
        let txn = self.db.begin().await?;
        let policies = &self.rules.policies;
        if !sessions::revoke_live(&txn, id, policies, Revocation::Logout, at).await? {
            txn.rollback().await?;
            return Err(self.ended(id, at).await);
        }
        let event = NewEvent::of(EventKind::SignedOut, user, id, at).client(client);
        security_events::insert(&txn, vec![event]).await?;
        let notices = self.notifier.announce(&txn, [Notice::Session(id)]).await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user, session_id = %id, "logged out");
        Ok(())
    }

    /// Revokes every other live session of the caller; returns how many.
    /// Needs a fresh password.
    pub async fn revoke_others(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<u64, AppError> {
        self.require_fresh(current, now)?;
        let (txn, at) = self.claim(current, now).await?;
        let (user, keep) = (current.account.id, current.session.id);
        let policies = &self.rules.policies;
        let revoked =
            sessions::revoke_others(&txn, user, keep, policies, Revocation::Session, at).await?;
        let events = revoked
            .iter()
            .map(|&id| {
                NewEvent::of(EventKind::SessionRevoked, user, id, at)
                    .detail("OTHER_SESSION")
                    .actor(keep)
            })
            .collect();
        security_events::insert(&txn, events).await?;
        let ended = revoked.iter().copied().map(Notice::Session);
        let notices = self.notifier.announce(&txn, ended).await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user, count = revoked.len(), "other sessions revoked");
        Ok(revoked.len() as u64)
    }

    /// The caller's live sessions at `now`, newest first, each with its expiry.
    pub async fn live_sessions(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<Vec<(SessionRecord, Expiry)>, AppError> {
        let policies = &self.rules.policies;
        let sessions = sessions::list_live(&self.db, current.account.id, policies, now).await?;
        Ok(sessions
            .iter()
            .map(SessionRecord::from)
            .map(|s| {
                let expiry = self.expiry(&s);
                (s, expiry)
            })
            .collect())
    }

    /// The caller's security events, newest first, before a cursor.
    pub async fn security_events(
        &self,
        current: &CurrentSession,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: u64,
    ) -> Result<Vec<security_event::Model>, AppError> {
        Ok(security_events::page(&self.db, current.account.id, before, limit).await?)
    }

    /// Replaces the caller's password after checking the current one, and
    /// signs out every other session; the caller's own stays, and counts as
    /// freshly authenticated. A wrong current password counts against the
    /// session under the account's limits, so a stolen session is no free
    /// oracle for it, and strangers' guesses cannot block its owner.
    pub async fn change_password(
        &self,
        current: &CurrentSession,
        current_password: String,
        new_password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<PasswordChanged, AppError> {
        let new_password = Password::parse_new(new_password).map_err(AppError::BadUserInput)?;
        self.prove_password(current, current_password, client, now)
            .await?;
        self.passwords
            .require_quality(&new_password, &current.account.email)
            .await?;
        let hash = self.passwords.hash(new_password).await?;
        let (txn, at) = self.claim(current, now).await?;
        let (user, keep) = (current.account.id, current.session.id);
        let policies = &self.rules.policies;
        users::change_password(&txn, user, hash, at).await?;
        // Clients known to the old password are strangers to the new one.
        device_rows::forget_all(&txn, user).await?;
        // A move of address asked for with the old password is cancelled.
        email_tokens::consume_changes(&txn, user, &current.account.email, at).await?;
        sessions::set_authenticated(&txn, keep, policies, at).await?;
        let revoked =
            sessions::revoke_others(&txn, user, keep, policies, Revocation::PasswordChange, at)
                .await?;
        let mut events =
            vec![NewEvent::of(EventKind::PasswordChanged, user, keep, at).client(client)];
        events.extend(revoked.iter().map(|&id| {
            NewEvent::of(EventKind::SessionRevoked, user, id, at)
                .detail("PASSWORD_CHANGE")
                .actor(keep)
        }));
        security_events::insert(&txn, events).await?;
        let ended = revoked.iter().copied().map(Notice::Session);
        let notices = self.notifier.announce(&txn, ended).await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user, revoked_sessions = revoked.len(), "password changed");
        // Best effort, like a reset's: the change stands either way.
        if let Err(err) = self.throttle.forget_sign_ins(user).await {
            tracing::warn!(error = ?err, "could not clear sign-ins after a password change");
        }
        let mut session = current.session.clone();
        session.authenticated_at = at;
        Ok(PasswordChanged {
            session: self.current(current.account.clone(), session),
            revoked_sessions: revoked.len() as u64,
        })
    }

    /// Sends a verification link to `new_email`; the account moves to it
    /// only when the link is used. Needs the password, checked and counted
    /// like a login. Whether another account has the address is told only
    /// when the link is used, so this is no oracle for it.
    pub async fn change_email(
        &self,
        current: &CurrentSession,
        password: String,
        new_email: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let new_email = Email::parse(new_email).map_err(AppError::BadUserInput)?;
        if new_email.as_str() == current.account.email {
            return Err(AppError::BadUserInput(
                "newEmail is already the account's address".into(),
            ));
        }
        self.prove_password(current, password, client, now).await?;
        // The current address hears of it now, while it can still act, and
        // again when the move is done: both notices count against it, first,
        // so that a refusal spends nothing of the new address's budget.
        let email = Email::parse(&current.account.email)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored e-mail: {e}")))?;
        for _ in 0..2 {
            self.throttle.reserve_mail(&email, None, now).await?;
        }
        // Links that move an account to an address have a budget of their
        // own there: other accounts cannot spend what its owner needs for a
        // reset.
        self.throttle
            .reserve_mail_invitation(&new_email, client.ip, now)
            .await?;
        let (txn, at) = self.claim(current, now).await?;
        let user = current.account.id;
        self.outbox
            .queue_link(&txn, Purpose::Verify, user, new_email.as_str(), at)
            .await?;
        let (from, to) = (&current.account.email, new_email.as_str());
        self.outbox
            .queue_email_change_requested(&txn, from, to, at)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user, "change of e-mail address requested");
        Ok(())
    }

    /// Deletes the caller's account and every session of it, in one
    /// transaction. Needs a fresh password, and the password itself.
    pub async fn delete_account(
        &self,
        current: &CurrentSession,
        password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        self.require_fresh(current, now)?;
        self.prove_password(current, password, client, now).await?;
        let (txn, at) = self.claim(current, now).await?;
        let user = current.account.id;
        let event =
            NewEvent::of(EventKind::AccountDeleted, user, current.session.id, at).client(client);
        security_events::insert(&txn, vec![event]).await?;
        users::delete(&txn, user).await?;
        let notices = self
            .notifier
            .announce(&txn, [Notice::Account(user)])
            .await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user, "account deleted");
        Ok(())
    }

    /// Counts a message to `email`; false if its budget is spent, so the
    /// caller goes on without sending it.
    async fn may_mail(&self, email: &Email, now: DateTime<Utc>) -> Result<bool, AppError> {
        match self.throttle.reserve_mail(email, None, now).await {
            Ok(()) => Ok(true),
            Err(AppError::RateLimited { .. }) => {
                tracing::info!("message not sent: the address's hourly budget is spent");
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Under a sign-in storm, refuses before any database work, so refused
    /// requests cost almost nothing.
    fn refuse_if_saturated(&self) -> Result<(), AppError> {
        if self.passwords.is_saturated() {
            return Err(AppError::Overloaded);
        }
        Ok(())
    }

    /// Opens a transaction in which the caller's session is live at the
    /// write's instant and cannot be revoked until it ends; refuses with the
    /// reason if it ended after the guard ran. Returns that instant.
    async fn claim(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<(DatabaseTransaction, DateTime<Utc>), AppError> {
        let id = current.session.id;
        let txn = self.db.begin().await?;
        let at = self.write_instant(now);
        // The account first, then its sessions, in every transaction that
        // writes more than one row of it: no two can wait on each other.
        users::lock(&txn, current.account.id).await?;
        if !sessions::claim_live(&txn, id, &self.rules.policies, at).await? {
            txn.rollback().await?;
            return Err(self.ended(id, at).await);
        }
        Ok((txn, at))
    }

    /// The instant a write to a session is judged at: the request's, or
    /// later when the request has waited since (for a hashing slot, for a
    /// connection), so that the session must still be live when the write
    /// lands, and a revocation is stamped when it happens.
    fn write_instant(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.clock.now().max(now)
    }

    /// Moves `last_activity_at` forward to `now` while the session is live,
    /// and returns the session as the database then holds it. A slide that
    /// lost to a later one keeps the later value; one that finds the session
    /// ended refuses with the reason.
    async fn slide(
        &self,
        mut session: SessionRecord,
        now: DateTime<Utc>,
    ) -> Result<SessionRecord, AppError> {
        if sessions::slide(&self.db, session.id, &self.rules.policies, now).await? {
            session.last_activity_at = now;
            return Ok(session);
        }
        let stored = sessions::find(&self.db, session.id)
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        let stored = SessionRecord::from(&stored);
        refuse_unless_active(self.policy(&stored).evaluate(now, &times(&stored)), &stored)?;
        Ok(stored)
    }

    /// Why a session that was live when the guard ran is not live at `now`.
    async fn ended(&self, id: Uuid, now: DateTime<Utc>) -> AppError {
        match sessions::find(&self.db, id).await {
            Ok(Some(session)) => {
                let session = SessionRecord::from(&session);
                refuse_unless_active(
                    self.policy(&session).evaluate(now, &times(&session)),
                    &session,
                )
                .err()
                // A slide that began earlier can land after the failed write and
                // make the row look live again; the write was refused all the same.
                .unwrap_or(AppError::Unauthenticated(AuthFailure::Revoked))
            }
            Ok(None) => AppError::Unauthenticated(AuthFailure::InvalidToken),
            Err(err) => err.into(),
        }
    }

    /// The verdict on a session at `now`, as a refusal with its reason.
    fn judge(&self, session: &SessionRecord, now: DateTime<Utc>) -> Result<(), AppError> {
        refuse_unless_active(self.policy(session).evaluate(now, &times(session)), session)
    }

    fn policy(&self, session: &SessionRecord) -> &SessionPolicy {
        self.rules.policies.of(session.remember_me)
    }

    fn expiry(&self, session: &SessionRecord) -> Expiry {
        self.policy(session)
            .expiry(session.created_at, session.last_activity_at)
    }

    /// Refuses a sensitive operation unless a password was proven on the
    /// session within the fresh age, saying how to prove it.
    fn require_fresh(&self, current: &CurrentSession, now: DateTime<Utc>) -> Result<(), AppError> {
        let authenticated_at = current.session.authenticated_at;
        if now - authenticated_at < self.rules.fresh_age {
            return Ok(());
        }
        Err(AppError::ReauthenticationRequired {
            authenticated_at,
            fresh_age: self.rules.fresh_age.num_seconds(),
        })
    }

    /// Checks the caller's password, throttled like a login but counted
    /// against the caller's session.
    async fn prove_password(
        &self,
        current: &CurrentSession,
        password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let password = Password::parse_attempt(password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        let email = Email::parse(&current.account.email)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored e-mail: {e}")))?;
        // Counted against the session: a thief holding one gets its own
        // small budget, and strangers' guesses cannot block its owner.
        let on = Some(Known::Session(current.session.id));
        let reservation = self.throttle.reserve(&email, client.ip, on, now).await?;
        // Re-read so a password changed by another session is the one checked.
        let user = users::find_by_id(&self.db, current.account.id)
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        let verified = self.passwords.verify(password, Some(user.password_hash));
        if !verified.await?.matched {
            return Err(AppError::InvalidCredentials);
        }
        self.throttle.succeeded(reservation).await
    }

    fn current(&self, account: Account, session: SessionRecord) -> CurrentSession {
        CurrentSession {
            account,
            expiry: self.expiry(&session),
            session,
        }
    }

    fn signed_in(
        &self,
        token: SessionToken,
        account: Account,
        session: &session::Model,
    ) -> SignedIn {
        let session = SessionRecord::from(session);
        SignedIn {
            token,
            device: None,
            account,
            expiry: self.expiry(&session),
            session,
        }
    }
}

/// `UNAUTHENTICATED` with the verdict's reason, unless the session is live.
/// A recorded timeout stands, even if the settings have loosened since.
fn refuse_unless_active(verdict: Verdict, session: &SessionRecord) -> Result<(), AppError> {
    let recorded_timeout = || match session.revoked_reason.as_deref() {
        Some("ABSOLUTE_TIMEOUT") => AuthFailure::AbsoluteTimeout,
        _ => AuthFailure::IdleTimeout,
    };
    let failure = match verdict {
        Verdict::Active(_) if session.end_recorded && session.revoked_at.is_none() => {
            recorded_timeout()
        }
        Verdict::Active(_) => return Ok(()),
        Verdict::IdleExpired => AuthFailure::IdleTimeout,
        Verdict::AbsoluteExpired => AuthFailure::AbsoluteTimeout,
        Verdict::Revoked
            if session.revoked_reason.as_deref() == Some(Revocation::SessionLimit.as_str()) =>
        {
            AuthFailure::SessionLimit
        }
        Verdict::Revoked
            if session.revoked_reason.as_deref() == Some(Revocation::PasswordReset.as_str()) =>
        {
            AuthFailure::PasswordReset
        }
        Verdict::Revoked
            if session.revoked_reason.as_deref() == Some(Revocation::AccountDisabled.as_str()) =>
        {
            AuthFailure::AccountDisabled
        }
        Verdict::Revoked => AuthFailure::Revoked,
    };
    Err(AppError::Unauthenticated(failure))
}

/// The timestamps the policy judges.
fn times(session: &SessionRecord) -> SessionTimes {
    SessionTimes {
        created_at: session.created_at,
        last_activity_at: session.last_activity_at,
        revoked_at: session.revoked_at,
    }
}
