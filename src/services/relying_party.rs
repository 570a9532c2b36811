//! The WebAuthn relying party: which site passkeys are bound to and which
//! pages may use them, as webauthn-rs checks them.

use std::sync::Arc;

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

use crate::config::PasskeySettings;
use crate::error::AppError;

/// How long the browser may take over a ceremony, and how long its state
/// lives in the database.
pub const CEREMONY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// The relying party every ceremony is run for.
#[derive(Clone)]
pub struct RelyingParty {
    webauthn: Arc<Webauthn>,
    /// `GATEHOUSE_WEBAUTHN_RP_ID` was set; else only pages on localhost
    /// (any port) may use passkeys, for development.
    configured: bool,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("origins", &self.webauthn.get_allowed_origins())
            .field("configured", &self.configured)
            .finish()
    }
}

impl RelyingParty {
    pub fn new(settings: &PasskeySettings) -> anyhow::Result<Self> {
        let name = settings.webauthn_rp_name.as_str();
        let Some(rp_id) = settings.webauthn_rp_id.as_deref() else {
            anyhow::ensure!(
                settings.webauthn_origins.is_empty(),
                "GATEHOUSE_WEBAUTHN_ORIGINS needs GATEHOUSE_WEBAUTHN_RP_ID: the domain \
                 passkeys are bound to"
            );
            let localhost = Url::parse("http://localhost").expect("a valid URL");
            let webauthn = WebauthnBuilder::new("localhost", &localhost)?
                .allow_any_port(true)
                .rp_name(name)
                .timeout(CEREMONY_LIFETIME)
                .build()?;
            return Ok(Self {
                webauthn: Arc::new(webauthn),
                configured: false,
            });
        };
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
        Ok(Self {
            webauthn: Arc::new(webauthn),
            configured: true,
        })
    }

    /// The relying party, to check a response against (which checks the
    /// page's origin itself).
    pub fn webauthn(&self) -> &Webauthn {
        &self.webauthn
    }

    /// The relying party for a ceremony asked for from the page at
    /// `origin`: refused with what to set when none is configured and the
    /// page is not on localhost, rather than failing in the browser.
    pub fn for_page(&self, origin: Option<&str>) -> Result<&Webauthn, AppError> {
        let on_localhost = || {
            origin
                .and_then(|o| Url::parse(o).ok())
                .is_some_and(|url| url.host_str() == Some("localhost"))
        };
        if self.configured || origin.is_none() || on_localhost() {
            Ok(&self.webauthn)
        } else {
            Err(AppError::PasskeysNotConfigured)
        }
    }
}
