//! Proof by another identity provider (OpenID Connect): the flow from its
//! authorization URL back to a session, and the linking rules that keep a
//! stranger from reaching an account through a provider (Sudhodanan &
//! Paverd, 2022). The provider's subject, never its address, is who comes
//! back.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{external_identity, provider_flow, user};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use super::Opening;
use crate::context::CurrentSession;
use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::second_factor::{Method, Methods};
use crate::domain::security_event::EventKind;
use crate::domain::token::{FlowToken, TokenHash};
use crate::error::AppError;
use crate::mail::templates::SecondFactorNotice;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::{external_identities, provider_flows, users};
use crate::services::auth::ways_in::ways_in;
use crate::services::auth::{AuthService, SignedIn, email_taken};
use crate::services::providers::ExternalClaims;

/// How long the browser has to come back from the provider.
pub const FLOW_LIFETIME: TimeDelta = TimeDelta::minutes(10);

const SIGN_IN: &str = "SIGN_IN";
const LINK: &str = "LINK";

/// Where to send the browser, and the secret it keeps until it returns.
pub struct ProviderAuthorization {
    pub url: String,
    pub flow: FlowToken,
    pub expires_at: DateTime<Utc>,
}

/// What the browser brings back: its flow secret, and the provider's
/// `code`, `state` and (RFC 9207) `iss` from the redirect.
pub struct ProviderReturn {
    pub flow: String,
    pub code: String,
    pub state: String,
    pub iss: Option<String>,
}

impl AuthService {
    /// Starts a sign-in at `provider`, which sends the browser back to
    /// `redirect_uri` (one of `GATEHOUSE_OIDC_REDIRECT_URIS`). Counted per
    /// address like passkey ceremonies: each writes a row.
    pub async fn begin_provider_sign_in(
        &self,
        provider: &str,
        redirect_uri: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<ProviderAuthorization, AppError> {
        self.throttle.reserve_ceremony(client.ip, now).await?;
        self.begin_flow(provider, redirect_uri, SIGN_IN, None, now)
            .await
    }

    /// Starts linking an account at `provider` to the caller's, from a
    /// fresh session; only this session can finish it.
    pub async fn begin_provider_link(
        &self,
        current: &CurrentSession,
        provider: &str,
        redirect_uri: &str,
        now: DateTime<Utc>,
    ) -> Result<ProviderAuthorization, AppError> {
        self.require_fresh(current, now)?;
        let session = Some(current.session.id);
        self.begin_flow(provider, redirect_uri, LINK, session, now)
            .await
    }

    async fn begin_flow(
        &self,
        provider: &str,
        redirect_uri: &str,
        purpose: &str,
        session_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<ProviderAuthorization, AppError> {
        let flow = FlowToken::generate().map_err(AppError::internal)?;
        let authorization = self.providers.authorize(provider, redirect_uri, &flow);
        let authorization = authorization.await?;
        let expires_at = now + FLOW_LIFETIME;
        let row = provider_flow::Model {
            flow_hash: flow.hash().as_str().to_owned(),
            state_hash: authorization.state_hash.as_str().to_owned(),
            nonce_hash: authorization.nonce_hash.as_str().to_owned(),
            provider: provider.to_owned(),
            purpose: purpose.to_owned(),
            session_id,
            redirect_uri: redirect_uri.to_owned(),
            created_at: now,
            expires_at,
            used_at: None,
        };
        provider_flows::insert(&self.db, row).await?;
        Ok(ProviderAuthorization {
            url: authorization.url,
            flow,
            expires_at,
        })
    }

    /// Finishes a provider sign-in. The subject signs in to the account it
    /// is linked to. A new one with an address no account has makes an
    /// account (its address proven only if the provider says so). A new
    /// one with an address an account has joins it only if the provider
    /// proved the address, the account did too, and the provider is
    /// trusted for linking; else `LINK_REQUIRED`. A second factor, where
    /// the account has one, still follows.
    pub async fn sign_in_with_provider(
        &self,
        back: ProviderReturn,
        remember_me: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let (row, claims) = self.redeem_flow(back, SIGN_IN, None, now).await?;
        let provider = row.provider.as_str();
        let remember_me = self.rules.policies.remembers(remember_me);
        if let Some(link) = external_identities::find(&self.db, provider, &claims.subject).await? {
            let user = self.provider_account(link.user_id).await?;
            let email = claims.email.as_deref();
            external_identities::record_use(&self.db, link.id, email, now).await?;
            self.throttle.reserve_signin(user.id, now).await?;
            let txn = self.db.begin().await?;
            return self
                .first_step_proven(txn, &user, Method::Provider, remember_me, client, now)
                .await;
        }
        let email = claims
            .email
            .as_deref()
            .and_then(|e| Email::parse(e).ok())
            .ok_or(AppError::ProviderEmailMissing)?;
        match users::find_by_email(&self.db, &email).await? {
            Some(user) => {
                self.join_by_address(&user, provider, &claims, remember_me, client, now)
                    .await
            }
            None => {
                self.sign_up_with_provider(provider, &email, &claims, remember_me, client, now)
                    .await
            }
        }
    }

    /// A new subject whose address has an account: joined only if the
    /// provider proved the address, the account proved it too, and the
    /// provider is trusted for linking; otherwise the account must link it.
    async fn join_by_address(
        &self,
        user: &user::Model,
        provider: &str,
        claims: &ExternalClaims,
        remember_me: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let trusted = self.providers.trusted_for_linking(provider);
        if !(claims.email_verified && user.email_verified_at.is_some() && trusted) {
            tracing::info!(
                user_id = %user.id, provider,
                provider_verified = claims.email_verified,
                account_verified = user.email_verified_at.is_some(),
                trusted,
                "provider sign-in refused: the address's account must link it"
            );
            return Err(AppError::LinkRequired);
        }
        if user.disabled_at.is_some() {
            return Err(AppError::AccountDisabled);
        }
        self.throttle.reserve_signin(user.id, now).await?;
        let txn = self.db.begin().await?;
        users::lock(&txn, user.id).await?;
        let linking = Linking {
            user: user.id,
            email: &user.email,
            session: None,
            client,
            signs_in: true,
        };
        self.link(&txn, linking, provider, claims, now).await?;
        self.first_step_proven(txn, user, Method::Provider, remember_me, client, now)
            .await
    }

    /// A new account for a provider's new subject, with no password. An
    /// address the provider did not prove is sent no verification link:
    /// a stranger could have claimed it there, and its owner, clicking a
    /// link she did not ask for, would adopt his account. She can still
    /// take the address back (a reset or a sign-in code); the holder can
    /// ask for the link with `resendVerificationEmail`.
    async fn sign_up_with_provider(
        &self,
        provider: &str,
        email: &Email,
        claims: &ExternalClaims,
        remember_me: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        if !self.registration_open {
            return Err(AppError::RegistrationClosed);
        }
        self.throttle.reserve_registration(client.ip, now).await?;
        let txn = self.db.begin().await?;
        let mut user = users::insert_passwordless(&txn, Uuid::new_v4(), email, now)
            .await
            .map_err(email_taken)?;
        if claims.email_verified {
            users::mark_verified(&txn, user.id, now).await?;
            user.email_verified_at = Some(now);
        }
        let row = identity(user.id, provider, claims, true, now);
        if !external_identities::insert(&txn, row).await? {
            // The same subject's first sign-in twice at once: one wins (on
            // PostgreSQL the other usually meets the address's index first:
            // EMAIL_TAKEN).
            txn.rollback().await?;
            return Err(AppError::IdentityAlreadyLinked);
        }
        let event = NewEvent::of_account(EventKind::ProviderLinked, user.id, now)
            .detail(provider)
            .client(client);
        security_events::insert(&txn, vec![event]).await?;
        let opening = Opening {
            user: &user,
            credential_version: user.credential_version,
            by: "REGISTER",
            methods: Methods::of(&[Method::Provider]),
            remember_me,
            client,
        };
        let signed_in = self.open_session(txn, opening, now).await?;
        self.outbox.wake();
        Ok(signed_in)
    }

    /// Finishes linking an account at a provider to the caller's.
    pub async fn link_provider(
        &self,
        current: &CurrentSession,
        back: ProviderReturn,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<external_identity::Model, AppError> {
        self.require_fresh(current, now)?;
        let session = Some(current.session.id);
        let (row, claims) = self.redeem_flow(back, LINK, session, now).await?;
        let user = current.account.id;
        let (txn, at) = self.claim(current, now).await?;
        if let Some(existing) =
            external_identities::find(&txn, &row.provider, &claims.subject).await?
        {
            txn.rollback().await?;
            return match existing.user_id == user {
                true => Ok(existing),
                false => Err(AppError::IdentityAlreadyLinked),
            };
        }
        let linking = Linking {
            user,
            email: &current.account.email,
            session: Some(current.session.id),
            client,
            signs_in: false,
        };
        let linked = self.link(&txn, linking, &row.provider, &claims, at).await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(linked)
    }

    /// Unlinks one of the caller's providers, from a fresh session; refused
    /// if it is the account's last way to sign in.
    pub async fn unlink_provider(
        &self,
        current: &CurrentSession,
        id: Uuid,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        self.require_fresh(current, now)?;
        let user = current.account.id;
        // The account is locked by the claim: two unlinks at once are
        // judged one after the other.
        let (txn, at) = self.claim(current, now).await?;
        let owned = external_identities::list(&txn, user).await?;
        if !owned.iter().any(|row| row.id == id) {
            txn.rollback().await?;
            return Err(AppError::NotFound);
        }
        let account = users::find_by_id(&txn, user)
            .await?
            .ok_or(AppError::NotFound)?;
        if ways_in(&txn, &account).await? <= 1 {
            txn.rollback().await?;
            return Err(AppError::LastSignInMethod);
        }
        let Some(provider) = external_identities::delete(&txn, user, id).await? else {
            txn.rollback().await?;
            return Err(AppError::NotFound);
        };
        let event = NewEvent::of(EventKind::ProviderUnlinked, user, current.session.id, at)
            .detail(&provider)
            .client(client);
        security_events::insert(&txn, vec![event]).await?;
        let (email, notice) = (&current.account.email, SecondFactorNotice::ProviderUnlinked);
        self.outbox
            .queue_second_factor_notice(&txn, email, notice, at)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user, provider, "provider unlinked");
        Ok(())
    }

    /// The account's provider links, oldest first.
    pub async fn external_identities(
        &self,
        user: Uuid,
    ) -> Result<Vec<external_identity::Model>, AppError> {
        Ok(external_identities::list(&self.db, user).await?)
    }

    /// The providers configured, as `(id, name)`.
    pub fn providers(&self) -> Vec<(String, String)> {
        let list = self.providers.list();
        list.map(|(id, name)| (id.to_owned(), name.to_owned()))
            .collect()
    }

    /// Takes the flow (its secret, `state`, purpose and session must all
    /// match) and redeems its code with the provider.
    async fn redeem_flow(
        &self,
        back: ProviderReturn,
        purpose: &str,
        session_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(provider_flow::Model, ExternalClaims), AppError> {
        let flow = FlowToken::parse(&back.flow).ok_or(AppError::InvalidProviderFlow)?;
        let state = TokenHash::of(&back.state);
        let row = provider_flows::take(&self.db, &flow.hash(), &state, purpose, session_id, now)
            .await?
            .ok_or(AppError::InvalidProviderFlow)?;
        if let Some(iss) = &back.iss
            && !self.providers.is_issuer(&row.provider, iss)
        {
            tracing::info!(provider = %row.provider, "redirect from another issuer (RFC 9207)");
            return Err(AppError::InvalidProviderResponse);
        }
        let claims = self
            .providers
            .redeem(
                &row.provider,
                back.code,
                &flow,
                &row.redirect_uri,
                &row.nonce_hash,
                now,
            )
            .await?;
        Ok((row, claims))
    }

    /// Links the subject to the account in `txn`, with its event and the
    /// notice to the account's address.
    async fn link(
        &self,
        txn: &DatabaseTransaction,
        linking: Linking<'_>,
        provider: &str,
        claims: &ExternalClaims,
        at: DateTime<Utc>,
    ) -> Result<external_identity::Model, AppError> {
        let Linking {
            user,
            email,
            session,
            client,
            signs_in,
        } = linking;
        let row = identity(user, provider, claims, signs_in, at);
        if !external_identities::insert(txn, row.clone()).await? {
            return Err(AppError::IdentityAlreadyLinked);
        }
        let event = match session {
            Some(session) => NewEvent::of(EventKind::ProviderLinked, user, session, at),
            None => NewEvent::of_account(EventKind::ProviderLinked, user, at),
        };
        security_events::insert(txn, vec![event.detail(provider).client(client)]).await?;
        let notice = SecondFactorNotice::ProviderLinked;
        self.outbox
            .queue_second_factor_notice(txn, email, notice, at)
            .await?;
        tracing::info!(user_id = %user, provider, "provider linked");
        Ok(row)
    }

    async fn provider_account(&self, id: Uuid) -> Result<user::Model, AppError> {
        let user = users::find_by_id(&self.db, id)
            .await?
            .ok_or(AppError::InvalidProviderFlow)?;
        if user.disabled_at.is_some() {
            return Err(AppError::AccountDisabled);
        }
        Ok(user)
    }
}

/// Whose account a link joins, from which session and client, and
/// whether it signs in at once.
struct Linking<'a> {
    user: Uuid,
    email: &'a str,
    session: Option<Uuid>,
    client: &'a ClientInfo,
    signs_in: bool,
}

fn identity(
    user: Uuid,
    provider: &str,
    claims: &ExternalClaims,
    signs_in: bool,
    at: DateTime<Utc>,
) -> external_identity::Model {
    external_identity::Model {
        id: Uuid::new_v4(),
        user_id: user,
        provider: provider.to_owned(),
        subject: claims.subject.clone(),
        email: claims.email.clone(),
        created_at: at,
        last_used_at: signs_in.then_some(at),
    }
}
