//! The WebAuthn relying party: which site passkeys are bound to and which
//! pages may use them, as webauthn-rs checks them.

use std::sync::Arc;

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

use crate::config::PasskeySettings;
use crate::error::AppError;

/// How long the browser may take over a ceremony, and how long its state
/// lives in the database.
pub const CEREMONY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// The relying party every ceremony is run for; `None` until
/// `GATEHOUSE_WEBAUTHN_RP_ID` is set, so that no deployment takes passkeys
/// its operator never turned on.
#[derive(Clone)]
pub struct RelyingParty(Option<Arc<Webauthn>>);

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origins = self.0.as_ref().map(|w| w.get_allowed_origins());
        f.debug_tuple("RelyingParty").field(&origins).finish()
    }
}

impl RelyingParty {
    pub fn new(settings: &PasskeySettings) -> anyhow::Result<Self> {
        let Some(rp_id) = settings.webauthn_rp_id.as_deref() else {
            anyhow::ensure!(
                settings.webauthn_origins.is_empty(),
                "GATEHOUSE_WEBAUTHN_ORIGINS needs GATEHOUSE_WEBAUTHN_RP_ID: the domain \
                 passkeys are bound to"
            );
            return Ok(Self(None));
        };
        let name = settings.webauthn_rp_name.as_str();
        // For development: any port of http://localhost.
        if rp_id == "localhost" && settings.webauthn_origins.is_empty() {
            // A fixed, well-formed literal: parsing it cannot fail.
            let localhost = Url::parse("http://localhost").expect("a valid URL");
            let webauthn = WebauthnBuilder::new(rp_id, &localhost)?
                .allow_any_port(true)
                .rp_name(name)
                .timeout(CEREMONY_LIFETIME)
                .build()?;
            return Ok(Self(Some(Arc::new(webauthn))));
        }
        let origins: Vec<Url> = if settings.webauthn_origins.is_empty() {
            vec![Url::parse(&format!("https://{rp_id}"))?]
        } else {
            let parse = |o: &String| {
                Url::parse(o).map_err(|e| anyhow::anyhow!("GATEHOUSE_WEBAUTHN_ORIGINS: {o}: {e}"))
            };
            settings
                .webauthn_origins
                .iter()
                .map(parse)
                .collect::<Result<_, _>>()?
        };
        let mut builder = WebauthnBuilder::new(rp_id, &origins[0]).map_err(|_| {
            anyhow::anyhow!(
                "GATEHOUSE_WEBAUTHN_RP_ID {rp_id} must be the domain of every origin in \
                 GATEHOUSE_WEBAUTHN_ORIGINS, or a parent of it"
            )
        })?;
        for origin in &origins[1..] {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder.rp_name(name).timeout(CEREMONY_LIFETIME).build()?;
        Ok(Self(Some(Arc::new(webauthn))))
    }

    /// The relying party, or `PASSKEYS_NOT_CONFIGURED` saying what to set.
    pub fn webauthn(&self) -> Result<&Webauthn, AppError> {
        self.0.as_deref().ok_or(AppError::PasskeysNotConfigured)
    }
}
