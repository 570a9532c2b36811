//! The OpenID Connect providers this node signs people in with, as a
//! relying party: discovery (cached, and not needed to start), the
//! authorization URL with `state`, `nonce` and PKCE, and the code redeemed
//! for an ID token whose signature, `iss`, `aud`, `exp` and `nonce` the
//! openidconnect crate checks. Keys are refetched when a token names one
//! the cache does not have, so a provider can rotate them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse, reqwest,
};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::domain::token::{FlowToken, TokenHash};
use crate::error::AppError;

/// The longest any call to a provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failed discovery is remembered, so that a provider that is
/// down costs its callers nothing until then.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// The most a provider's answer may hold (metadata, keys and tokens are a
/// few KiB): an endless answer must not fill this node's memory.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How long discovered metadata is trusted before it is fetched again.
const METADATA_LIFETIME: Duration = Duration::from_secs(3600);
/// The shortest time between two fetches of a provider's keys.
const KEYS_REFETCH_SPACING: Duration = Duration::from_secs(10);

/// One entry of `GATEHOUSE_OIDC_PROVIDERS`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Whether its verified addresses may join an account with the same
    /// verified address by themselves.
    #[serde(default)]
    pub trusted_for_linking: bool,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The longest subject stored (OpenID Connect allows 255 ASCII characters).
const MAX_SUBJECT_BYTES: usize = 255;

/// A provider's address as accounts know it, or none if it is not one.
fn usable(email: Option<&str>) -> Option<String> {
    email
        .and_then(|e| crate::domain::email::Email::parse(e).ok())
        .map(|e| e.as_str().to_owned())
}

/// What a provider said about the person who signed in there.
#[derive(Clone, Debug)]
pub struct ExternalClaims {
    pub subject: String,
    /// Normalised; none if the provider gave none, or one that is not an address.
    pub email: Option<String>,
    pub email_verified: bool,
}

/// Where to send the browser, and what the flow must remember (as hashes).
pub struct Authorization {
    pub url: String,
    pub state_hash: TokenHash,
    pub nonce_hash: TokenHash,
}

/// A configured provider and what this node has learnt of it.
struct Provider {
    config: ProviderConfig,
    issuer: IssuerUrl,
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    metadata: Option<(Arc<CoreProviderMetadata>, Instant)>,
    failed_at: Option<Instant>,
    keys_fetched_at: Option<Instant>,
}

/// The providers, the redirect URIs they may send browsers to, and one
/// HTTP client that follows no redirects.
#[derive(Clone)]
pub struct Providers(Arc<Inner>);

struct Inner {
    providers: Vec<Provider>,
    redirect_uris: Vec<String>,
    http: reqwest::Client,
}

impl Provider {
    /// One configured provider, refused at start if its id, scopes or
    /// issuer are wrong.
    fn checked(config: ProviderConfig) -> anyhow::Result<Self> {
        let id_ok = !config.id.is_empty()
            && config.id.len() <= 64
            && config
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        anyhow::ensure!(id_ok, "a provider id is 1 to 64 letters, digits, - or _");
        anyhow::ensure!(
            config.scopes.iter().any(|s| s == "openid"),
            "provider {}: its scopes must include openid",
            config.id
        );
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| anyhow::anyhow!("provider {}: issuer: {e}", config.id))?;
        // Its answers decide whose account opens: never over plain HTTP,
        // but on this machine (development, tests).
        let url = issuer.url();
        let loopback = matches!(
            url.host(),
            Some(openidconnect::url::Host::Domain("localhost"))
                | Some(openidconnect::url::Host::Ipv4(
                    std::net::Ipv4Addr::LOCALHOST
                ))
                | Some(openidconnect::url::Host::Ipv6(
                    std::net::Ipv6Addr::LOCALHOST
                ))
        );
        anyhow::ensure!(
            url.scheme() == "https" || loopback,
            "provider {}: the issuer must be https (http only on localhost)",
            config.id
        );
        Ok(Self {
            config,
            issuer,
            known: Mutex::default(),
        })
    }
}

impl Providers {
    /// Reads the settings; nothing is fetched until a provider is used.
    pub fn new(configs: Vec<ProviderConfig>, redirect_uris: Vec<String>) -> anyhow::Result<Self> {
        let mut providers: Vec<Provider> = Vec::new();
        for config in configs {
            anyhow::ensure!(
                providers.iter().all(|p| p.config.id != config.id),
                "provider {} is listed twice",
                config.id
            );
            providers.push(Provider::checked(config)?);
        }
        for uri in &redirect_uris {
            RedirectUrl::new(uri.clone())
                .map_err(|e| anyhow::anyhow!("GATEHOUSE_OIDC_REDIRECT_URIS: {uri}: {e}"))?;
        }
        anyhow::ensure!(
            providers.is_empty() || !redirect_uris.is_empty(),
            "GATEHOUSE_OIDC_PROVIDERS needs GATEHOUSE_OIDC_REDIRECT_URIS"
        );
        // No redirects: a provider's endpoints answer directly, and a
        // redirect could point this node at an internal address.
        let http = reqwest::ClientBuilder::new()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_TIMEOUT)
            .build()?;
        Ok(Self(Arc::new(Inner {
            providers,
            redirect_uris,
            http,
        })))
    }

    /// The providers, as `(id, name)`, in the order configured.
    pub fn list(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.providers.iter().map(|p| {
            let id = p.config.id.as_str();
            (id, p.config.name.as_deref().unwrap_or(id))
        })
    }

    /// Whether `iss` from a redirect (RFC 9207) names this provider: a
    /// code meant for another provider is refused before it is sent.
    pub fn is_issuer(&self, id: &str, iss: &str) -> bool {
        self.find(id).is_ok_and(|p| p.config.issuer == iss)
    }

    /// Whether its verified addresses may join accounts by themselves.
    pub fn trusted_for_linking(&self, id: &str) -> bool {
        self.find(id).is_ok_and(|p| p.config.trusted_for_linking)
    }

    /// The redirect URI exactly as allowed, or `REDIRECT_URI_NOT_ALLOWED`.
    pub fn allowed_redirect(&self, uri: &str) -> Result<String, AppError> {
        self.0
            .redirect_uris
            .iter()
            .find(|allowed| allowed.as_str() == uri)
            .cloned()
            .ok_or(AppError::RedirectUriNotAllowed)
    }

    /// The provider's authorization URL for a new flow: a fresh `state`
    /// and `nonce`, and the flow secret's S256 PKCE challenge.
    pub async fn authorize(
        &self,
        id: &str,
        redirect_uri: &str,
        flow: &FlowToken,
    ) -> Result<Authorization, AppError> {
        let provider = self.find(id)?;
        let redirect = self.allowed_redirect(redirect_uri)?;
        let metadata = self.metadata(provider).await?;
        let client = client_of(provider, &metadata, redirect)?;
        let verifier = PkceCodeVerifier::new(flow.expose().to_owned());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in provider.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state_hash: TokenHash::of(state.secret()),
            nonce_hash: TokenHash::of(nonce.secret()),
        })
    }

    /// Redeems a code for the ID token and checks it: signature by the
    /// provider's keys (fetched again once if it names a new one), `iss`,
    /// `aud`, `exp` at `now`, and the flow's `nonce`. The address comes
    /// from the ID token, or from userinfo for the same subject.
    pub async fn redeem(
        &self,
        id: &str,
        code: String,
        flow: &FlowToken,
        redirect_uri: &str,
        nonce_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<ExternalClaims, AppError> {
        let provider = self.find(id)?;
        let metadata = self.metadata(provider).await?;
        let client = client_of(provider, &metadata, redirect_uri.to_owned())?;
        let verifier = PkceCodeVerifier::new(flow.expose().to_owned());
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| unavailable(id, "token endpoint", e))?
            .set_pkce_verifier(verifier)
            .request_async(&self.caller())
            .await
            .map_err(|e| token_error(id, e))?;
        let id_token = response.id_token().ok_or_else(|| {
            tracing::info!(provider = id, "provider sent no ID token");
            AppError::InvalidProviderResponse
        })?;
        let claims = self
            .verified_claims(provider, &client, id_token, redirect_uri, nonce_hash, now)
            .await?;
        let subject = claims.subject().to_string();
        if subject.len() > MAX_SUBJECT_BYTES {
            tracing::info!(provider = id, "provider sent a subject too long to store");
            return Err(AppError::InvalidProviderResponse);
        }
        let mut external = ExternalClaims {
            subject,
            email: usable(claims.email().map(|e| e.as_str())),
            email_verified: claims.email_verified().unwrap_or(false),
        };
        if external.email.is_none() && metadata.userinfo_endpoint().is_some() {
            let info: CoreUserInfoClaims = client
                .user_info(
                    response.access_token().clone(),
                    Some(claims.subject().clone()),
                )
                .map_err(|e| unavailable(id, "userinfo", e))?
                .request_async(&self.caller())
                .await
                .map_err(|e| {
                    tracing::warn!(provider = id, error = %e, "userinfo failed");
                    AppError::ProviderUnavailable
                })?;
            external.email = usable(info.email().map(|e| e.as_str()));
            external.email_verified = info.email_verified().unwrap_or(false);
        }
        Ok(external)
    }

    /// The ID token's claims, checked at `now`: signature by the provider's
    /// keys, `iss`, `aud`, `exp` and our nonce. A key it does not know yet
    /// (a rotation) fetches the keys again, then checks once more.
    async fn verified_claims(
        &self,
        provider: &Provider,
        client: &Client,
        id_token: &CoreIdToken,
        redirect_uri: &str,
        nonce_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<CoreIdTokenClaims, AppError> {
        let id = provider.config.id.as_str();
        let check_nonce = |nonce: Option<&Nonce>| match nonce {
            Some(n) if TokenHash::of(n.secret()).as_str() == nonce_hash => Ok(()),
            Some(_) => Err("nonce mismatch".to_owned()),
            None => Err("no nonce".to_owned()),
        };
        let verifier = client.id_token_verifier().set_time_fn(move || now);
        match id_token.claims(&verifier, check_nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let metadata = self.refetch_keys(provider).await?;
                let client = client_of(provider, &metadata, redirect_uri.to_owned())?;
                let verifier = client.id_token_verifier().set_time_fn(move || now);
                let claims = id_token.claims(&verifier, check_nonce);
                Ok(claims.map_err(|e| refused(id, e))?.clone())
            }
            result => Ok(result.map_err(|e| refused(id, e))?.clone()),
        }
    }

    /// What calls a provider: the shared client, reading at most
    /// [`MAX_RESPONSE_BYTES`] of an answer.
    fn caller(&self) -> impl Fn(HttpRequest) -> Call + Send + Sync + use<> {
        let http = self.0.http.clone();
        move |request| Box::pin(fetch(http.clone(), request))
    }

    fn find(&self, id: &str) -> Result<&Provider, AppError> {
        self.0
            .providers
            .iter()
            .find(|p| p.config.id == id)
            .ok_or(AppError::UnknownProvider)
    }

    /// The provider's metadata and keys, discovered on first use and again
    /// after [`METADATA_LIFETIME`] (the old ones serve if that fails). A
    /// provider that failed is not asked again for [`RETRY_AFTER_FAILURE`].
    async fn metadata(&self, provider: &Provider) -> Result<Arc<CoreProviderMetadata>, AppError> {
        let mut known = provider.known.lock().await;
        if let Some((metadata, at)) = &known.metadata
            && at.elapsed() < METADATA_LIFETIME
        {
            return Ok(metadata.clone());
        }
        let stale = known.metadata.as_ref().map(|(m, _)| m.clone());
        if known
            .failed_at
            .is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE)
        {
            return stale.ok_or(AppError::ProviderUnavailable);
        }
        let id = &provider.config.id;
        let caller = self.caller();
        match CoreProviderMetadata::discover_async(provider.issuer.clone(), &caller).await {
            Ok(metadata) => {
                tracing::info!(provider = %id, "provider discovered");
                let metadata = Arc::new(metadata);
                known.metadata = Some((metadata.clone(), Instant::now()));
                known.failed_at = None;
                Ok(metadata)
            }
            Err(err) => {
                tracing::warn!(provider = %id, error = %err, "provider discovery failed");
                known.failed_at = Some(Instant::now());
                stale.ok_or(AppError::ProviderUnavailable)
            }
        }
    }

    /// Fetches the provider's keys again, at most once per
    /// [`KEYS_REFETCH_SPACING`] (the first time at once): a token signed
    /// with a key the cache does not hold may follow a rotation.
    async fn refetch_keys(&self, provider: &Provider) -> Result<CoreProviderMetadata, AppError> {
        let mut known = provider.known.lock().await;
        let id = &provider.config.id;
        let Some((metadata, _)) = known.metadata.clone() else {
            return Err(AppError::ProviderUnavailable);
        };
        if known
            .keys_fetched_at
            .is_some_and(|at| at.elapsed() < KEYS_REFETCH_SPACING)
        {
            tracing::info!(provider = %id, "ID token signed by an unknown key");
            return Err(AppError::InvalidProviderResponse);
        }
        known.keys_fetched_at = Some(Instant::now());
        let keys = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.caller())
            .await
            .map_err(|e| unavailable(id, "keys", e))?;
        let updated = (*metadata).clone().set_jwks(keys);
        tracing::info!(provider = %id, "provider keys fetched again");
        known.metadata = Some((Arc::new(updated.clone()), Instant::now()));
        Ok(updated)
    }
}

/// A call to a provider in flight.
type Call = Pin<Box<dyn Future<Output = Result<HttpResponse, FetchError>> + Send>>;

/// Why a call to a provider failed.
#[derive(Debug)]
enum FetchError {
    Http(reqwest::Error),
    TooLarge,
    Response(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(err) => write!(f, "{err}"),
            Self::TooLarge => write!(f, "answer over {MAX_RESPONSE_BYTES} bytes"),
            Self::Response(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// One call, its answer read up to [`MAX_RESPONSE_BYTES`].
async fn fetch(http: reqwest::Client, request: HttpRequest) -> Result<HttpResponse, FetchError> {
    let request = reqwest::Request::try_from(request).map_err(FetchError::Http)?;
    let mut response = http.execute(request).await.map_err(FetchError::Http)?;
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut answer = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Http)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    answer
        .body(body)
        .map_err(|e| FetchError::Response(e.to_string()))
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn client_of(
    provider: &Provider,
    metadata: &CoreProviderMetadata,
    redirect_uri: String,
) -> Result<Client, AppError> {
    let redirect = RedirectUrl::new(redirect_uri).map_err(|_| AppError::RedirectUriNotAllowed)?;
    Ok(CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(provider.config.client_id.clone()),
        Some(ClientSecret::new(provider.config.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

fn unavailable(id: &str, what: &str, err: impl std::fmt::Display) -> AppError {
    tracing::warn!(provider = id, error = %err, "provider {what} failed");
    AppError::ProviderUnavailable
}

fn refused(id: &str, err: ClaimsVerificationError) -> AppError {
    tracing::info!(provider = id, error = %err, "provider ID token refused");
    AppError::InvalidProviderResponse
}

/// A code the provider refuses is the caller's problem; anything else
/// (its outage, our client settings) the provider's side.
fn token_error<E: std::error::Error>(
    id: &str,
    err: openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> AppError {
    match err {
        openidconnect::RequestTokenError::ServerResponse(response)
            if *response.error() == openidconnect::core::CoreErrorResponseType::InvalidGrant =>
        {
            tracing::info!(provider = id, "provider refused the code");
            AppError::InvalidProviderResponse
        }
        other => unavailable(id, "token endpoint", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str) -> ProviderConfig {
        ProviderConfig {
            id: id.into(),
            name: None,
            issuer: "https://issuer.example".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            scopes: default_scopes(),
            trusted_for_linking: false,
        }
    }

    #[test]
    fn settings_that_cannot_work_are_refused_at_start() {
        let redirect = vec!["https://app.example/callback".to_owned()];
        assert!(Providers::new(vec![config("a")], redirect.clone()).is_ok());
        assert!(Providers::new(vec![config("a")], vec![]).is_err());
        assert!(Providers::new(vec![config("a"), config("a")], redirect.clone()).is_err());
        assert!(Providers::new(vec![config("no spaces")], redirect.clone()).is_err());
        let mut no_openid = config("b");
        no_openid.scopes = vec!["email".into()];
        assert!(Providers::new(vec![no_openid], redirect.clone()).is_err());
        assert!(Providers::new(vec![], vec!["not a url".into()]).is_err());
    }

    #[test]
    fn issuers_are_https_but_on_this_machine() {
        let redirect = vec!["https://app.example/callback".to_owned()];
        let with = |issuer: &str| ProviderConfig {
            issuer: issuer.into(),
            ..config("a")
        };
        for ok in [
            "https://id.example",
            "http://127.0.0.1:9000",
            "http://localhost:9000",
        ] {
            assert!(
                Providers::new(vec![with(ok)], redirect.clone()).is_ok(),
                "{ok}"
            );
        }
        assert!(Providers::new(vec![with("http://id.example")], redirect).is_err());
    }

    #[test]
    fn only_addresses_and_short_subjects_are_kept() {
        assert_eq!(
            usable(Some("A@Example.com")).as_deref(),
            Some("a@example.com")
        );
        assert_eq!(usable(Some("<img src=x>")), None);
        assert_eq!(
            usable(Some(&format!("{}@example.com", "a".repeat(300)))),
            None
        );
        assert_eq!(usable(None), None);
    }

    #[test]
    fn only_listed_redirect_uris_are_allowed_exactly() {
        let redirect = vec!["https://app.example/callback".to_owned()];
        let providers = Providers::new(vec![config("a")], redirect).unwrap();
        assert!(
            providers
                .allowed_redirect("https://app.example/callback")
                .is_ok()
        );
        for other in [
            "https://app.example/callback/",
            "https://app.example/callback?x=1",
            "https://APP.example/callback",
            "https://evil.example/callback",
        ] {
            assert!(matches!(
                providers.allowed_redirect(other),
                Err(AppError::RedirectUriNotAllowed)
            ));
        }
    }

    #[test]
    fn the_client_secret_never_prints() {
        let text = format!("{:?}", config("a"));
        assert!(!text.contains("\"s\""), "{text}");
    }
}
