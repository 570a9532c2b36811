//! Write operations. Each takes one `input` (where it needs any) and returns
//! a payload.

use async_graphql::{Context, Object, Result};
use axum::http::header;
use uuid::Uuid;

use crate::context::PresentedDevice;
use crate::error::AppError;
use crate::graphql::second_factor::second_proof;
use crate::graphql::types::{
    AuthPayload, ChangeEmailInput, ChangePasswordInput, ChangePasswordPayload, DeleteAccountInput,
    LoginInput, ReauthenticateInput, ReauthenticatePayload, RefreshSessionPayload, RegisterInput,
    RequestPasswordResetInput, ResetPasswordInput, ResetPasswordPayload, RevokeSessionInput,
    RevokeSessionPayload, Session, VerifyEmailInput, VerifyEmailPayload, signed_in_payload,
};
use crate::graphql::{any_level, auth_service, recovery, request, signed_in, verified};
use crate::measure;
use crate::services::auth::LoginAttempt;
use crate::session_cookie::SessionCookie;

/// Signing up and in, keeping a session alive, signing out, the account.
#[derive(Default)]
pub struct AccountMutation;

/// Every write: signing up and in, keeping a session alive, signing out.
#[Object]
impl AccountMutation {
    /// Creates an account and signs it in at once.
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account's e-mail and password.")] input: RegisterInput,
    ) -> Result<AuthPayload> {
        let request = request(ctx)?;
        let client = request.client.info();
        let signed_in = auth_service(ctx)?
            .register(&input.email, input.password, &client, request.now)
            .await?;
        Ok(signed_in_payload(ctx, signed_in, request.now))
    }

    /// Signs in with e-mail and password, opening a new session with a new token.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's e-mail and password.")] input: LoginInput,
    ) -> Result<AuthPayload> {
        let request = request(ctx)?;
        let client = request.client.info();
        let attempt = LoginAttempt {
            email: &input.email,
            password: input.password,
            remember_me: input.remember_me,
            device: PresentedDevice::of(input.known_device.as_deref(), &request.client),
        };
        let signed_in = auth_service(ctx)?
            .login(attempt, &client, request.now)
            .await;
        measure::sign_in(&signed_in);
        let signed_in = signed_in?;
        Ok(signed_in_payload(ctx, signed_in, request.now))
    }

    /// Records activity now, sliding the idle window; the absolute cap stays.
    /// Needs a session token.
    async fn refresh_session(&self, ctx: &Context<'_>) -> Result<RefreshSessionPayload> {
        let (request, current) = signed_in(ctx)?;
        if request.passive {
            return Err(AppError::BadUserInput(
                "refreshSession records activity; send it without gatehouse-passive".into(),
            )
            .into());
        }
        let refreshed = auth_service(ctx)?.refresh(current, request.now).await?;
        let session = Session::of_current(&refreshed);
        Ok(RefreshSessionPayload {
            expires_at: session.expires_at,
            session,
        })
    }

    /// Proves the password again on this session (step-up), so that sensitive
    /// operations are allowed for `GATEHOUSE_FRESH_AGE`. Throttled and
    /// counted like `login`; it moves only `authenticatedAt` (the request
    /// itself is activity unless passive). Needs a session token.
    async fn reauthenticate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's password.")] input: ReauthenticateInput,
    ) -> Result<ReauthenticatePayload> {
        let (request, current) = any_level(ctx)?;
        let client = request.client.info();
        let second = second_proof(input.totp_code, input.recovery_code)?;
        let auth = auth_service(ctx)?;
        let proven = match (input.password, input.passkey, second) {
            (Some(password), None, second) => {
                auth.reauthenticate(current, password, second, &client, request.now)
                    .await?
            }
            (None, Some(passkey), None) => {
                let assertion = passkey.assertion();
                auth.reauthenticate_with_passkey(current, assertion, &client, request.now)
                    .await?
            }
            _ => {
                return Err(AppError::BadUserInput(
                    "give password (with a code where asked) or passkey alone".into(),
                )
                .into());
            }
        };
        Ok(ReauthenticatePayload {
            session: Session::of_current(&proven),
        })
    }

    /// Deletes the caller's account and all its sessions, at once and for
    /// good; every token of it then fails with `INVALID_TOKEN`. Needs a
    /// session token, a password proven within `GATEHOUSE_FRESH_AGE`
    /// (else `REAUTHENTICATION_REQUIRED`), and the password.
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's password.")] input: DeleteAccountInput,
    ) -> Result<bool> {
        let (request, current) = signed_in(ctx)?;
        let client = request.client.info();
        auth_service(ctx)?
            .delete_account(current, input.password, &client, request.now)
            .await?;
        if let Some(cookie) = ctx.data_opt::<SessionCookie>() {
            ctx.append_http_header(header::SET_COOKIE, cookie.clear());
        }
        Ok(true)
    }

    /// Signs out one of the caller's sessions, on every node at once.
    /// Another session than this one needs a password proven within
    /// `GATEHOUSE_FRESH_AGE` (else `REAUTHENTICATION_REQUIRED`).
    /// Needs a session token.
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which of your sessions to sign out.")] input: RevokeSessionInput,
    ) -> Result<RevokeSessionPayload> {
        let (request, current) = verified(ctx)?;
        let id = Uuid::parse_str(&input.session_id)
            .map_err(|_| AppError::BadUserInput("sessionId must be a UUID".into()))?;
        let (session, expiry) = auth_service(ctx)?.revoke(current, id, request.now).await?;
        Ok(RevokeSessionPayload {
            session: Session::new(&session, &expiry, current.session.id),
        })
    }

    /// Signs out the session the request was made with (a bearer token
    /// wins over the cookie), and clears the session cookie if it names
    /// that session. Needs a session token.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let (request, current) = any_level(ctx)?;
        let client = request.client.info();
        auth_service(ctx)?
            .logout(current, &client, request.now)
            .await?;
        // Clearing a cookie for another, still live session would make the
        // browser forget a sign-in that never ended.
        if let Some(cookie) = ctx.data_opt::<SessionCookie>()
            && request.cookie_names_session
        {
            ctx.append_http_header(header::SET_COOKIE, cookie.clear());
        }
        Ok(true)
    }

    /// Signs out every other session of the caller; returns how many.
    /// Needs a session token and a password proven within
    /// `GATEHOUSE_FRESH_AGE` (else `REAUTHENTICATION_REQUIRED`).
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> Result<i32> {
        let (request, current) = verified(ctx)?;
        let count = auth_service(ctx)?
            .revoke_others(current, request.now)
            .await?;
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// Replaces the caller's password and signs out every other session; this
    /// one stays. Needs a session token and the current password.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The current password and the new one.")] input: ChangePasswordInput,
    ) -> Result<ChangePasswordPayload> {
        let (request, current) = verified(ctx)?;
        let changed = auth_service(ctx)?
            .change_password(
                current,
                input.current_password,
                input.new_password,
                &request.client.info(),
                request.now,
            )
            .await?;
        Ok(ChangePasswordPayload {
            session: Session::of_current(&changed.session),
            revoked_sessions: i32::try_from(changed.revoked_sessions).unwrap_or(i32::MAX),
        })
    }

    // Account recovery and addresses, by e-mail.

    /// Sends a password-reset link to the address if an account has it.
    /// The answer is `true`, in the same time, whether or not one does.
    /// Limited per address and per client (`RATE_LIMITED`).
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Who forgot their password.")] input: RequestPasswordResetInput,
    ) -> Result<bool> {
        let request = request(ctx)?;
        recovery(ctx)?
            .request_reset(&input.email, &request.client.info(), request.now)
            .await?;
        Ok(true)
    }

    /// Sets a new password with the token from a reset e-mail, and signs out
    /// every session of the account (reason `PASSWORD_RESET`). A used,
    /// replaced, expired or unknown token is `INVALID_RESET_TOKEN`.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token and the new password.")] input: ResetPasswordInput,
    ) -> Result<ResetPasswordPayload> {
        let request = request(ctx)?;
        let reset = recovery(ctx)?
            .reset_password(
                &input.token,
                input.new_password,
                &request.client.info(),
                request.now,
            )
            .await?;
        Ok(ResetPasswordPayload {
            email: reset.email,
            revoked_sessions: i32::try_from(reset.revoked_sessions).unwrap_or(i32::MAX),
        })
    }

    /// Proves an address with the token from a verification e-mail. A used,
    /// replaced, expired or unknown token is `INVALID_VERIFICATION_TOKEN`.
    /// Needs no session: the link may be opened on another device.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token from the e-mail.")] input: VerifyEmailInput,
    ) -> Result<VerifyEmailPayload> {
        let request = request(ctx)?;
        let email = recovery(ctx)?
            .verify_email(&input.token, &request.client.info(), request.now)
            .await?;
        Ok(VerifyEmailPayload { email })
    }

    /// Sends a new verification link to the caller's address, replacing
    /// older ones; `false` if it is already verified. Needs a session token.
    async fn resend_verification_email(&self, ctx: &Context<'_>) -> Result<bool> {
        let (request, current) = signed_in(ctx)?;
        Ok(recovery(ctx)?
            .resend_verification(current, &request.client.info(), request.now)
            .await?)
    }

    /// Sends a verification link to a new address; the account moves to it
    /// when the link is used, and the old address is told. Needs a session
    /// token and the password.
    async fn change_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The password and the new address.")] input: ChangeEmailInput,
    ) -> Result<bool> {
        let (request, current) = signed_in(ctx)?;
        auth_service(ctx)?
            .change_email(
                current,
                input.password,
                &input.new_email,
                &request.client.info(),
                request.now,
            )
            .await?;
        Ok(true)
    }
}
