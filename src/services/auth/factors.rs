//! The account's second factor itself: TOTP enrolment, its recovery codes,
//! removing it, and the browsers remembered after it.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{known_device, totp_factor};
use qrcode::QrCode;
use qrcode::render::svg;
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use super::AuthService;
use super::sign_in::totp::Stage;
use crate::context::CurrentSession;
use crate::domain::client::ClientInfo;
use crate::domain::recovery_code::RecoveryCode;
use crate::domain::second_factor::{Method, Methods};
use crate::domain::security_event::EventKind;
use crate::domain::token::TokenHash;
use crate::domain::totp;
use crate::error::AppError;
use crate::mail::templates::SecondFactorNotice;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::{known_devices as device_rows, recovery_codes, sessions, totp_factors, users};
use crate::services::outbox::Outbox;

/// How long an enrolment waits for its first code.
pub const ENROLMENT_LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// Characters of a remembered device's id: a prefix of its token's hash.
const DEVICE_ID_LEN: usize = 16;

/// A new TOTP secret, for the user's app. Shown once, while it waits.
pub struct TotpEnrolment {
    /// Base32, for typing into an app by hand.
    pub secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    pub uri: String,
    /// The QR code as an SVG document.
    pub qr_code_svg: String,
    pub expires_at: DateTime<Utc>,
}

/// A browser that may skip the second factor until `until`.
pub struct RememberedDevice {
    pub id: String,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl AuthService {
    /// Starts TOTP enrolment from a fresh session: a new secret, sealed and
    /// stored unconfirmed (replacing an unconfirmed one), for the app.
    pub async fn begin_totp_enrolment(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<TotpEnrolment, AppError> {
        self.require_fresh(current, now)?;
        let user = current.account.id;
        let mut secret = [0u8; totp::SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(AppError::internal)?;
        let (key_id, sealed) = self.second_factor.secrets.seal(user, &secret)?;
        if !totp_factors::put_pending(&self.db, user, &key_id, &sealed, now).await? {
            return Err(AppError::SecondFactorAlreadyEnabled);
        }
        let issuer = &self.second_factor.totp_issuer;
        let uri = totp::uri(&secret, issuer, &current.account.email);
        let qr_code_svg = QrCode::new(uri.as_bytes())
            .map_err(AppError::internal)?
            .render::<svg::Color>()
            .min_dimensions(200, 200)
            .build();
        tracing::info!(user_id = %user, "TOTP enrolment begun");
        Ok(TotpEnrolment {
            secret: totp::base32(&secret),
            uri,
            qr_code_svg,
            expires_at: now + ENROLMENT_LIFETIME,
        })
    }

    /// Confirms enrolment with a current code from the app: the factor is
    /// on, this session counts as having proven it, and the account gets
    /// its recovery codes, returned here once.
    pub async fn confirm_totp_enrolment(
        &self,
        current: &CurrentSession,
        code: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(CurrentSession, Vec<RecoveryCode>), AppError> {
        let user = current.account.id;
        // Nothing waiting costs no attempt: only a real code is counted.
        let since = now - ENROLMENT_LIFETIME;
        let waiting = |f: &totp_factor::Model| f.confirmed_at.is_none() && f.created_at > since;
        if !totp_factors::find(&self.db, user)
            .await?
            .is_some_and(|f| waiting(&f))
        {
            return Err(AppError::EnrolmentExpired);
        }
        let on = Some(current.session.id);
        let reservation = self.throttle.reserve_code(user, client.ip, on, now).await?;
        let (txn, at) = self.claim(current, now).await?;
        let stage = Stage::Pending { since };
        if !self.accept_totp(&txn, user, code, stage, at).await? {
            txn.rollback().await?;
            return Err(AppError::InvalidSecondFactor);
        }
        users::set_second_factor(&txn, user, Some(at), at).await?;
        let codes = self.replace_recovery_codes(&txn, user, at).await?;
        // The code just given proves the factor on this session.
        let methods = Methods::of(&[Method::Password, Method::Totp]);
        sessions::set_methods(&txn, current.session.id, &methods).await?;
        let event = NewEvent::of(EventKind::SecondFactorEnabled, user, current.session.id, at)
            .client(client)
            .methods(&methods);
        security_events::insert(&txn, vec![event]).await?;
        let (email, notice) = (&current.account.email, SecondFactorNotice::Enabled);
        self.outbox
            .queue_second_factor_notice(&txn, email, notice, at)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        self.throttle.code_succeeded(reservation).await?;
        tracing::info!(user_id = %user, "second factor enabled");
        let mut account = current.account.clone();
        account.second_factor = true;
        let mut session = current.session.clone();
        session.level = methods.level();
        session.methods = methods;
        Ok((self.current(account, session), codes))
    }

    /// New recovery codes for the account, replacing all of them. Needs a
    /// code proven on the session within the fresh age.
    pub async fn regenerate_recovery_codes(
        &self,
        current: &CurrentSession,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Vec<RecoveryCode>, AppError> {
        self.require_fresh_code(current, now)?;
        let (txn, at) = self.claim(current, now).await?;
        let user = current.account.id;
        if totp_factors::find(&txn, user)
            .await?
            .is_none_or(|f| f.confirmed_at.is_none())
        {
            txn.rollback().await?;
            return Err(AppError::SecondFactorNotEnabled);
        }
        let codes = self.replace_recovery_codes(&txn, user, at).await?;
        let event = NewEvent::of(
            EventKind::RecoveryCodesRegenerated,
            user,
            current.session.id,
            at,
        )
        .client(client);
        security_events::insert(&txn, vec![event]).await?;
        let (email, notice) = (&current.account.email, SecondFactorNotice::CodesReplaced);
        self.outbox
            .queue_second_factor_notice(&txn, email, notice, at)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user, "recovery codes regenerated");
        Ok(codes)
    }

    /// Turns the second factor off. Needs a code proven on the session
    /// within the fresh age. Its recovery codes and remembered browsers
    /// end with it, and the account's address is told.
    pub async fn remove_second_factor(
        &self,
        current: &CurrentSession,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<CurrentSession, AppError> {
        self.require_fresh_code(current, now)?;
        let (txn, at) = self.claim(current, now).await?;
        let user = current.account.id;
        if !totp_factors::delete(&txn, user).await? || !current.account.second_factor {
            txn.rollback().await?;
            return Err(AppError::SecondFactorNotEnabled);
        }
        let email = &current.account.email;
        end_factor(
            &txn,
            &self.outbox,
            user,
            email,
            SecondFactorNotice::Removed,
            at,
        )
        .await?;
        let event = NewEvent::of(EventKind::SecondFactorRemoved, user, current.session.id, at)
            .detail("USER")
            .client(client);
        security_events::insert(&txn, vec![event]).await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user, "second factor removed");
        let mut account = current.account.clone();
        account.second_factor = false;
        Ok(self.current(account, current.session.clone()))
    }

    /// How many unused recovery codes the account has.
    pub async fn recovery_codes_left(&self, current: &CurrentSession) -> Result<u64, AppError> {
        Ok(recovery_codes::count_unused(&self.db, current.account.id).await?)
    }

    /// The browsers that may skip the account's second factor now.
    pub async fn remembered_devices(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<Vec<RememberedDevice>, AppError> {
        let rows = device_rows::list_remembered(&self.db, current.account.id, now).await?;
        Ok(rows.iter().filter_map(remembered).collect())
    }

    /// Makes one remembered browser ask for the second factor again;
    /// another account's, or an unknown id, is `NOT_FOUND`.
    pub async fn forget_remembered_device(
        &self,
        current: &CurrentSession,
        id: &str,
    ) -> Result<(), AppError> {
        let well_formed = id.len() == DEVICE_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(AppError::NotFound);
        }
        let user = current.account.id;
        let id = id.to_ascii_lowercase();
        match device_rows::forget_second_factor(&self.db, user, Some(&id)).await? {
            0 => Err(AppError::NotFound),
            _ => Ok(()),
        }
    }

    async fn replace_recovery_codes(
        &self,
        txn: &DatabaseTransaction,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<RecoveryCode>, AppError> {
        let codes = RecoveryCode::generate_set().map_err(AppError::internal)?;
        let hashes: Vec<TokenHash> = codes.iter().map(|c| c.hash(user)).collect();
        recovery_codes::replace(txn, user, &hashes, now).await?;
        Ok(codes)
    }
}

fn remembered(row: &known_device::Model) -> Option<RememberedDevice> {
    Some(RememberedDevice {
        id: row.token_hash.get(..DEVICE_ID_LEN)?.to_owned(),
        user_agent: row.user_agent.clone(),
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        until: row.second_factor_until?,
    })
}

/// What ends with a second factor, whoever removes it: its secret, its
/// recovery codes, the browsers remembered after it, and a notice to the
/// owner. Changes the account's credentials, so a sign-in proven under
/// the factor opens nothing.
pub async fn end_factor(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    user: Uuid,
    email: &str,
    notice: SecondFactorNotice,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    totp_factors::delete(txn, user).await?;
    recovery_codes::delete_all(txn, user).await?;
    device_rows::forget_second_factor(txn, user, None).await?;
    // What sessions proved of this factor proves nothing of a next one.
    sessions::forget_second_factor(txn, user).await?;
    users::set_second_factor(txn, user, None, now).await?;
    outbox
        .queue_second_factor_notice(txn, email, notice, now)
        .await
}
