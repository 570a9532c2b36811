//! The second factor over GraphQL: finishing a sign-in with a code, TOTP
//! enrolment, recovery codes, and remembered browsers.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::context::PresentedDevice;
use crate::domain::recovery_code::RecoveryCode;
use crate::error::AppError;
use crate::graphql::types::{AuthPayload, PasskeyAssertionInput, Session, signed_in_payload};
use crate::graphql::{any_level, auth_service, request, signed_in};
use crate::measure;
use crate::services::auth::{ChallengeAnswer, SecondProof};
use crate::session_cookie::SessionCookie;

/// Finishing a sign-in that asked for the second factor.
#[derive(InputObject)]
pub struct CompleteSignInInput {
    /// `extensions.challenge` from `login`'s `SECOND_FACTOR_REQUIRED`.
    pub challenge: String,
    /// A code from the authenticator app.
    pub totp_code: Option<String>,
    /// One of the account's recovery codes, instead of `totpCode`.
    pub recovery_code: Option<String>,
    /// A passkey instead of a code, from `beginPasskeySecondFactor`.
    pub passkey: Option<PasskeyAssertionInput>,
    /// Skip the second factor on this browser for `GATEHOUSE_REMEMBER_DEVICE`.
    pub remember_device: Option<bool>,
    /// The `knownDevice` token this client holds, as for `login`.
    pub known_device: Option<String>,
}

/// A current code from the app being enrolled.
#[derive(InputObject)]
pub struct ConfirmTotpEnrolmentInput {
    /// The code the app shows now.
    pub code: String,
}

/// Which remembered browser to forget.
#[derive(InputObject)]
pub struct ForgetRememberedDeviceInput {
    /// `RememberedDevice.id`.
    pub id: String,
}

/// A new TOTP secret for the user's authenticator app. Show it once; it
/// works only after `confirmTotpEnrolment`.
#[derive(SimpleObject)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
    /// The `otpauth://` URI the QR code holds.
    pub uri: String,
    /// The QR code as an SVG document, to show as it is.
    pub qr_code_svg: String,
    /// When this enrolment stops waiting for its first code.
    pub expires_at: DateTime<Utc>,
}

/// Recovery codes, shown this once; each works once.
#[derive(SimpleObject)]
pub struct RecoveryCodesPayload {
    /// Ten codes, `xxxx-xxxx-xxxx`; keep them somewhere safe.
    pub recovery_codes: Vec<String>,
    /// This session, which now counts as having proven the factor.
    pub session: Session,
}

/// One code, whichever kind; both or neither is `BAD_USER_INPUT`.
pub fn second_proof(
    totp: Option<String>,
    recovery: Option<String>,
) -> Result<Option<SecondProof>, AppError> {
    match (totp, recovery) {
        (Some(_), Some(_)) => Err(AppError::BadUserInput(
            "give totpCode or recoveryCode, not both".into(),
        )),
        (Some(code), None) => Ok(Some(SecondProof::Totp(code))),
        (None, Some(code)) => Ok(Some(SecondProof::RecoveryCode(code))),
        (None, None) => Ok(None),
    }
}

fn codes(codes: Vec<RecoveryCode>) -> Vec<String> {
    codes.iter().map(|c| c.expose().to_owned()).collect()
}

/// The second factor's writes.
#[derive(Default)]
pub struct SecondFactorMutation;

#[Object]
impl SecondFactorMutation {
    /// Finishes a sign-in that answered `SECOND_FACTOR_REQUIRED`, with a
    /// TOTP code or a recovery code. Wrong codes count against the
    /// account's and the address's limits; the challenge dies after 3 of
    /// them or 5 minutes (`INVALID_CHALLENGE`: sign in again).
    async fn complete_sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The challenge and one code.")] input: CompleteSignInInput,
    ) -> Result<AuthPayload> {
        let request = request(ctx)?;
        let client = request.client.info();
        let proof = match (
            second_proof(input.totp_code, input.recovery_code)?,
            input.passkey,
        ) {
            (Some(code), None) => code,
            (None, Some(passkey)) => SecondProof::Passkey(passkey.assertion()),
            _ => {
                return Err(AppError::BadUserInput(
                    "give one of totpCode, recoveryCode or passkey".into(),
                )
                .into());
            }
        };
        let answer = ChallengeAnswer {
            challenge: &input.challenge,
            proof,
            remember_device: input.remember_device.unwrap_or(false),
            // With cookies on, the device token lives in its HttpOnly cookie,
            // and only the cookie may skip the factor later.
            remember_in_cookie: ctx.data_opt::<SessionCookie>().is_some(),
            device: PresentedDevice::of(input.known_device.as_deref(), &request.client),
        };
        let signed_in = auth_service(ctx)?
            .complete_sign_in(answer, &client, request.now)
            .await;
        measure::sign_in(&signed_in);
        Ok(signed_in_payload(ctx, signed_in?, request.now))
    }

    /// Starts TOTP enrolment: a new secret and its QR code. Needs a fresh
    /// session (`GATEHOUSE_FRESH_AGE`); the factor is on only after
    /// `confirmTotpEnrolment`, within 10 minutes.
    async fn begin_totp_enrolment(&self, ctx: &Context<'_>) -> Result<TotpEnrolment> {
        let (request, current) = any_level(ctx)?;
        let enrolment = auth_service(ctx)?
            .begin_totp_enrolment(current, request.now)
            .await?;
        Ok(TotpEnrolment {
            secret: enrolment.secret,
            uri: enrolment.uri,
            qr_code_svg: enrolment.qr_code_svg,
            expires_at: enrolment.expires_at,
        })
    }

    /// Turns the second factor on with a current code from the app, and
    /// returns the 10 recovery codes, this once.
    async fn confirm_totp_enrolment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A current code from the app.")] input: ConfirmTotpEnrolmentInput,
    ) -> Result<RecoveryCodesPayload> {
        let (request, current) = any_level(ctx)?;
        let client = request.client.info();
        let (session, recovery) = auth_service(ctx)?
            .confirm_totp_enrolment(current, &input.code, &client, request.now)
            .await?;
        Ok(RecoveryCodesPayload {
            recovery_codes: codes(recovery),
            session: Session::of_current(&session),
        })
    }

    /// Replaces every recovery code with 10 new ones. Needs a code proven
    /// on this session within `GATEHOUSE_FRESH_AGE` (`reauthenticate`).
    async fn regenerate_recovery_codes(&self, ctx: &Context<'_>) -> Result<RecoveryCodesPayload> {
        let (request, current) = signed_in(ctx)?;
        let client = request.client.info();
        let recovery = auth_service(ctx)?
            .regenerate_recovery_codes(current, &client, request.now)
            .await?;
        Ok(RecoveryCodesPayload {
            recovery_codes: codes(recovery),
            session: Session::of_current(current),
        })
    }

    /// Turns the second factor off, with its recovery codes and remembered
    /// browsers. Needs a code proven on this session within
    /// `GATEHOUSE_FRESH_AGE`; the account's address is told.
    async fn remove_second_factor(&self, ctx: &Context<'_>) -> Result<bool> {
        let (request, current) = signed_in(ctx)?;
        let client = request.client.info();
        auth_service(ctx)?
            .remove_second_factor(current, &client, request.now)
            .await?;
        Ok(true)
    }

    /// Makes one remembered browser ask for the second factor again.
    async fn forget_remembered_device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which browser.")] input: ForgetRememberedDeviceInput,
    ) -> Result<bool> {
        let (_, current) = signed_in(ctx)?;
        auth_service(ctx)?
            .forget_remembered_device(current, &input.id)
            .await?;
        Ok(true)
    }
}
