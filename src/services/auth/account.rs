//! The account itself: sign-up, a new password or address, and deletion.

use chrono::{DateTime, Utc};
use sea_orm::TransactionTrait;

use super::sign_in::{Opening, SignedIn};
use super::{AuthService, email_taken};
use crate::context::CurrentSession;
use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::second_factor::{Method, Methods};
use crate::domain::security_event::EventKind;
use crate::domain::token::Purpose;
use crate::error::AppError;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::sessions::{self, Revocation};
use crate::repo::{email_tokens, known_devices as device_rows, users};
use crate::services::known_devices;
use crate::session_notifier::Notice;

/// What `changePassword` did besides changing the password.
pub struct PasswordChanged {
    pub session: CurrentSession,
    pub revoked_sessions: u64,
}

impl AuthService {
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
        // The session starts at the request's instant, before the hashing
        // wait: its caps can only come earlier for it.
        let txn = self.db.begin().await?;
        let user = users::insert(&txn, &email, hash, now)
            .await
            .map_err(email_taken)?;
        if mail {
            self.outbox
                .queue_link(&txn, Purpose::Verify, user.id, &user.email, now)
                .await?;
        }
        let opening = Opening {
            user: &user,
            credential_version: user.credential_version,
            by: "REGISTER",
            methods: Methods::of(&[Method::Password]),
            remember_me: false,
            client,
        };
        let mut signed_in = self.open_session(txn, opening, now).await?;
        self.outbox.wake();
        signed_in.device = Some(known_devices::remember(&self.db, user.id, None, now).await?);
        Ok(signed_in)
    }

    /// Replaces the caller's password after checking the current one, and
    /// signs out every other session; the caller's own stays, and counts as
    /// freshly authenticated unless the account's second factor is asked
    /// for (then only a step-up with a code does that). A wrong current password counts against the
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
        // Where a code is asked for, a password alone makes no session
        // fresh: changing it must not stand in for a step-up.
        let factor = current.account.second_factor;
        let freshens = !self.second_factor.requirement.asks_at_sign_in(factor);
        if freshens {
            sessions::set_authenticated(&txn, keep, policies, at).await?;
        }
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
        if freshens {
            session.authenticated_at = at;
        }
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
}
