//! The command line and the one typed [`Settings`] struct, read once at start.
//! Every setting is a flag and a `GATEHOUSE_*` environment variable.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::domain::password_quality::MinScore;
use crate::domain::second_factor::Requirement;
use crate::domain::session_policy::{SessionPolicies, SessionPolicy, SessionRules};
use crate::domain::throttle_policy::{ThrottlePolicies, ThrottlePolicy};
use crate::mail::templates::{Letters, TOKEN_PLACEHOLDER};

/// `gatehouse serve | migrate | schema | healthcheck | user | session`.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log lines as `text` for people or `json` for a log pipeline.
    #[arg(
        long,
        env = "GATEHOUSE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What the binary is asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pending migrations, then serve the GraphQL API.
    Serve(Box<Settings>),
    /// Run pending migrations and exit.
    Migrate(DatabaseSettings),
    /// Print the GraphQL schema (SDL), exactly as `schema.graphql` holds it.
    Schema,
    /// Manage accounts: create, list, show, disable, enable, revoke-sessions, delete.
    User(Box<AdminArgs<UserCommand>>),
    /// Manage sessions: revoke.
    Session(Box<AdminArgs<SessionCommand>>),
    /// Exit 0 if the server on this host answers `GET /readyz` with 200,
    /// else 1: a container's HEALTHCHECK, where there is no curl.
    Healthcheck(HealthcheckArgs),
}

/// `gatehouse healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The address the server listens on, as `serve` reads it; an
    /// unspecified address (0.0.0.0 or [::]) is probed on loopback.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Give up (unhealthy) after this long without an answer.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Where `serve` listens, and so where `healthcheck` looks, by default.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What every admin command needs: the database, and how to print.
#[derive(Debug, Args)]
pub struct AdminArgs<C: Subcommand> {
    #[command(subcommand)]
    pub command: C,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub hashing: PasswordHashing,

    #[command(flatten)]
    pub quality: PasswordQuality,

    #[command(flatten)]
    pub mail: MailSettings,

    /// Print JSON for scripts instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `gatehouse user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from the terminal, or from
    /// stdin when it is not a terminal; never from an argument.
    Create { email: String },
    /// List accounts by e-mail, a page at a time.
    List {
        /// Only addresses containing this text.
        #[arg(long)]
        filter: Option<String>,
        /// Start after this address (the last one of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// How many to list: 1 to 1000.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Show an account, its live sessions and its recent security events.
    Show { email: String },
    /// Disable an account: it cannot sign in, and every session ends at once.
    Disable { email: String },
    /// Enable a disabled account; its old sessions stay ended.
    Enable { email: String },
    /// End every session of an account.
    RevokeSessions { email: String },
    /// Turn off the second factor of an account whose owner lost it: its
    /// recovery codes and remembered browsers end, every session is signed
    /// out, and the address is told. Verify who is asking first.
    ResetSecondFactor { email: String },
    /// Delete an account and everything of it.
    Delete { email: String },
}

/// `gatehouse session …`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// End one session, by its id.
    Revoke { id: uuid::Uuid },
}

/// Who may create accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Registration {
    /// Anyone, with `register`.
    Open,
    /// Operators only, with `gatehouse user create`.
    Closed,
}

/// Everything `gatehouse serve` needs.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    /// Address to serve on.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// Serve `/metrics` on this address of its own (e.g. a private
    /// interface). Unset: `/metrics` is on the main listener, for loopback
    /// peers only.
    #[arg(long, env = "GATEHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Who may create accounts: `open` (anyone, with `register`) or
    /// `closed` (operators, with `gatehouse user create`).
    #[arg(
        long,
        env = "GATEHOUSE_REGISTRATION",
        value_enum,
        default_value = "open"
    )]
    pub registration: Registration,

    /// Sign a session out after this long without a request (e.g. 30m).
    #[arg(long, env = "GATEHOUSE_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Sign a session out this long after sign-in, however active (e.g. 12h).
    #[arg(long, env = "GATEHOUSE_ABSOLUTE_TIMEOUT", default_value = "12h", value_parser = parse_duration)]
    pub absolute_timeout: Duration,

    /// How stale a session's recorded activity may get before a request
    /// writes it again: `auto` (5 s, or a tenth of the idle timeout if
    /// less) or a duration up to half the idle timeout. Coarser means fewer
    /// writes, and sessions that end up to this much before their idle
    /// deadline, never after it.
    #[arg(long, env = "GATEHOUSE_SLIDE_GRANULARITY", default_value = "auto",
          value_parser = parse_granularity)]
    pub slide_granularity: Granularity,

    #[command(flatten)]
    pub sessions: SessionFeatures,

    /// Keep ended sessions this long (so a stale token still reports why it
    /// ended), then purge them.
    #[arg(long, env = "GATEHOUSE_SESSION_RETENTION", default_value = "7days", value_parser = parse_duration)]
    pub session_retention: Duration,

    /// How often each node purges sessions past their retention.
    #[arg(long, env = "GATEHOUSE_PURGE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub purge_interval: Duration,

    /// The longest a GraphQL request may run before it is answered TIMEOUT.
    #[arg(long, env = "GATEHOUSE_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    #[command(flatten)]
    pub web: WebSettings,

    #[command(flatten)]
    pub connections: ConnectionSettings,

    #[command(flatten)]
    pub login_limits: LoginLimits,

    #[command(flatten)]
    pub hashing: PasswordHashing,

    #[command(flatten)]
    pub quality: PasswordQuality,

    #[command(flatten)]
    pub mail: MailSettings,

    #[command(flatten)]
    pub second_factor: SecondFactorSettings,

    #[command(flatten)]
    pub passkeys: PasskeySettings,

    #[command(flatten)]
    pub other_ways_in: OtherWaysIn,
}

/// Signing in with other providers (OpenID Connect) and with codes sent by
/// e-mail.
#[derive(Clone, Debug, Args)]
pub struct OtherWaysIn {
    /// OpenID Connect providers, as a JSON list of objects with `id`,
    /// `issuer`, `client_id`, `client_secret`, and optionally `name`,
    /// `scopes` (default `openid email profile`) and `trusted_for_linking`.
    #[arg(long, env = "GATEHOUSE_OIDC_PROVIDERS", hide_env_values = true)]
    pub oidc_providers: Option<SecretKeyText>,

    /// A file holding that JSON (instead of GATEHOUSE_OIDC_PROVIDERS).
    #[arg(long, env = "GATEHOUSE_OIDC_PROVIDERS_FILE")]
    pub oidc_providers_file: Option<std::path::PathBuf>,

    /// The only pages providers may send the browser back to, exactly as
    /// written, comma-separated.
    #[arg(long, env = "GATEHOUSE_OIDC_REDIRECT_URIS", value_delimiter = ',')]
    pub oidc_redirect_uris: Vec<String>,

    /// `on`: anyone may sign in with a code sent to the account's address.
    #[arg(long, env = "GATEHOUSE_EMAIL_SIGN_IN", default_value = "off",
          value_parser = parse_on_off)]
    pub email_sign_in: bool,
}

impl OtherWaysIn {
    /// The providers, from GATEHOUSE_OIDC_PROVIDERS or its file.
    pub fn providers(&self) -> anyhow::Result<Vec<crate::services::providers::ProviderConfig>> {
        let text = match (&self.oidc_providers, &self.oidc_providers_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "set GATEHOUSE_OIDC_PROVIDERS or GATEHOUSE_OIDC_PROVIDERS_FILE, not both"
            ),
            (Some(text), None) => text.0.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("GATEHOUSE_OIDC_PROVIDERS_FILE {}: {e}", path.display())
            })?,
            (None, None) => return Ok(Vec::new()),
        };
        // The error names the place, never the text: it holds secrets.
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "GATEHOUSE_OIDC_PROVIDERS: not a JSON list of providers (line {}, column {}): {}",
                e.line(),
                e.column(),
                classify(&e)
            )
        })
    }
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "a field is missing, unknown or of the wrong type",
        serde_json::error::Category::Eof => "cut short",
    }
}

fn parse_on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("expected on or off, not {other:?}")),
    }
}

/// The WebAuthn relying party passkeys are made for.
#[derive(Clone, Debug, Args)]
pub struct PasskeySettings {
    /// The domain passkeys are bound to, e.g. `example.com`: the pages'
    /// domain or a parent of it. Unset: `localhost`, for development, and
    /// only pages on localhost may use passkeys.
    #[arg(long, env = "GATEHOUSE_WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,

    /// The pages that may use passkeys, comma-separated, e.g.
    /// `https://app.example.com`. Default: `https://` and the RP ID.
    #[arg(long, env = "GATEHOUSE_WEBAUTHN_ORIGINS", value_delimiter = ',')]
    pub webauthn_origins: Vec<String>,

    /// The name authenticators show for this site.
    #[arg(long, env = "GATEHOUSE_WEBAUTHN_RP_NAME", default_value = "Gatehouse")]
    pub webauthn_rp_name: String,
}

/// The second factor: what is required, TOTP's name in apps, remembered
/// browsers, and the key that seals TOTP secrets.
#[derive(Clone, Debug, Args)]
pub struct SecondFactorSettings {
    /// `off` (never asked), `enrolled` (an account that has a factor must
    /// use it) or `all` (every account must enrol; until then a session
    /// may only read `me`, enrol and sign out).
    #[arg(long, env = "GATEHOUSE_REQUIRE_SECOND_FACTOR", default_value = "enrolled",
          value_parser = Requirement::parse)]
    pub require_second_factor: Requirement,

    /// The issuer authenticator apps show beside the account's address.
    #[arg(long, env = "GATEHOUSE_TOTP_ISSUER", default_value = "Gatehouse")]
    pub totp_issuer: String,

    /// How long a browser may skip the second factor after one on it, when
    /// asked to (`rememberDevice`); `0` turns it off.
    #[arg(long, env = "GATEHOUSE_REMEMBER_DEVICE", default_value = "30days",
          value_parser = parse_duration_or_zero)]
    pub remember_device: Duration,

    /// The keys that seal TOTP secrets: `ID:BASE64` (32 random bytes, e.g.
    /// `k1:$(openssl rand -base64 32)`), comma-separated; the first seals,
    /// every one opens. Required with PostgreSQL.
    #[arg(long, env = "GATEHOUSE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretKeyText>,

    /// A file holding those keys, one per line (instead of GATEHOUSE_SECRET_KEY).
    #[arg(long, env = "GATEHOUSE_SECRET_KEY_FILE")]
    pub secret_key_file: Option<std::path::PathBuf>,
}

/// Secret text from the environment: keys, providers' client secrets.
/// Its `Debug` hides it.
#[derive(Clone)]
pub struct SecretKeyText(pub String);

impl FromStr for SecretKeyText {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Ok(Self(value.to_owned()))
    }
}

impl fmt::Debug for SecretKeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKeyText(<redacted>)")
    }
}

/// A duration, or `0` for none.
fn parse_duration_or_zero(value: &str) -> Result<Duration, String> {
    if value.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(value)
}

/// Account recovery and e-mail.
#[derive(Clone, Debug, Args)]
pub struct MailSettings {
    /// The SMTP server: `smtp://USER:PASS@HOST:587?tls=required` (STARTTLS)
    /// or `smtps://USER:PASS@HOST:465` (TLS). Unset: write `.eml` files into
    /// GATEHOUSE_MAIL_DIR instead.
    #[arg(long, env = "GATEHOUSE_SMTP_URL")]
    pub smtp_url: Option<SmtpUrl>,

    /// The sender of every message, e.g. `Acme <no-reply@acme.example>`.
    #[arg(
        long,
        env = "GATEHOUSE_MAIL_FROM",
        default_value = "Gatehouse <gatehouse@localhost>"
    )]
    pub mail_from: String,

    /// Where messages are written as `.eml` files when no SMTP server is set.
    #[arg(long, env = "GATEHOUSE_MAIL_DIR", default_value = "mail")]
    pub mail_dir: std::path::PathBuf,

    /// The product's name, in subjects and bodies.
    #[arg(long, env = "GATEHOUSE_PRODUCT_NAME", default_value = "Gatehouse")]
    pub product_name: String,

    /// The password-reset link; `{token}` is replaced by the token.
    #[arg(
        long,
        env = "GATEHOUSE_RESET_URL",
        default_value = "http://localhost:5173/reset-password?token={token}"
    )]
    pub reset_url: String,

    /// The address-verification link; `{token}` is replaced by the token.
    #[arg(
        long,
        env = "GATEHOUSE_VERIFY_URL",
        default_value = "http://localhost:5173/verify-email?token={token}"
    )]
    pub verify_url: String,

    /// How long a reset link works.
    #[arg(long, env = "GATEHOUSE_RESET_TTL", default_value = "30m", value_parser = parse_duration)]
    pub reset_ttl: Duration,

    /// How long a verification link works.
    #[arg(long, env = "GATEHOUSE_VERIFY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub verify_ttl: Duration,

    /// Let an account whose address is not verified sign in only to verify it.
    #[arg(long, env = "GATEHOUSE_REQUIRE_VERIFIED_EMAIL", default_value_t = false, action = ArgAction::Set)]
    pub require_verified_email: bool,
}

impl MailSettings {
    /// The messages these settings describe.
    pub fn letters(&self) -> Letters {
        Letters {
            product: self.product_name.clone(),
            reset_url: self.reset_url.clone(),
            verify_url: self.verify_url.clone(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("GATEHOUSE_RESET_URL", &self.reset_url),
            ("GATEHOUSE_VERIFY_URL", &self.verify_url),
        ] {
            if !url.contains(TOKEN_PLACEHOLDER) {
                return Err(format!(
                    "{name} must contain {TOKEN_PLACEHOLDER}, got {url:?}"
                ));
            }
        }
        for (name, ttl) in [
            ("GATEHOUSE_RESET_TTL", self.reset_ttl),
            ("GATEHOUSE_VERIFY_TTL", self.verify_ttl),
        ] {
            if ttl < Duration::from_secs(1) || ttl > MAX_TIMEOUT {
                return Err(format!("{name} must be between 1s and 366days"));
            }
        }
        Ok(())
    }
}

/// An SMTP URL. Its `Debug` hides the password.
#[derive(Clone)]
pub struct SmtpUrl(DatabaseUrl);

impl SmtpUrl {
    /// The URL, for the transport only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl FromStr for SmtpUrl {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if !(value.starts_with("smtp://") || value.starts_with("smtps://")) {
            return Err("an SMTP URL starts with smtp:// or smtps://".into());
        }
        Ok(Self(DatabaseUrl(value.to_owned())))
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.redacted())
    }
}

/// Remember-me, step-up, the session limit and the security history.
#[derive(Clone, Debug, Args)]
pub struct SessionFeatures {
    /// Let `login(input: {rememberMe: true})` open a session under the
    /// remember-me timeouts. With `false`, such sessions use the standard ones.
    #[arg(long, env = "GATEHOUSE_REMEMBER_ME", default_value_t = true, action = clap::ArgAction::Set)]
    pub remember_me: bool,

    /// The idle timeout of a remember-me session.
    #[arg(long, env = "GATEHOUSE_REMEMBER_IDLE_TIMEOUT", default_value = "7days", value_parser = parse_duration)]
    pub remember_idle_timeout: Duration,

    /// The absolute timeout of a remember-me session.
    #[arg(long, env = "GATEHOUSE_REMEMBER_ABSOLUTE_TIMEOUT", default_value = "30days", value_parser = parse_duration)]
    pub remember_absolute_timeout: Duration,

    /// How recently a password must have been proven on a session for a
    /// sensitive operation (step-up).
    #[arg(long, env = "GATEHOUSE_FRESH_AGE", default_value = "10m", value_parser = parse_duration)]
    pub fresh_age: Duration,

    /// The most live sessions one account may have; a sign-in past it signs
    /// out the least recently active. 0: no limit. 100 is several devices
    /// and browsers signing in daily for a month of remember-me, with room
    /// to spare, and keeps what a thief with the password can pile up small.
    #[arg(long, env = "GATEHOUSE_MAX_SESSIONS_PER_USER", default_value_t = 100)]
    pub max_sessions_per_user: u32,

    /// How long before a session ends `sessionStatus` warns its subscribers.
    #[arg(long, env = "GATEHOUSE_EXPIRY_WARNING", default_value = "2m", value_parser = parse_duration)]
    pub expiry_warning: Duration,

    /// Live `sessionStatus` connections one node holds at once.
    #[arg(long, env = "GATEHOUSE_MAX_LIVE_CONNECTIONS", default_value_t = 20_000)]
    pub max_live_connections: usize,

    /// Live `sessionStatus` connections one session may hold at once (tabs).
    #[arg(
        long,
        env = "GATEHOUSE_MAX_LIVE_CONNECTIONS_PER_SESSION",
        default_value_t = 16
    )]
    pub max_live_connections_per_session: usize,

    /// Keep security events this long, then purge them.
    #[arg(long, env = "GATEHOUSE_EVENT_RETENTION", default_value = "90days", value_parser = parse_duration)]
    pub event_retention: Duration,
}

/// argon2id parameters and the bound on hashing work. A sign-in with a hash
/// made under other parameters re-hashes it under these.
#[derive(Clone, Debug, Args)]
pub struct PasswordHashing {
    /// argon2id memory per hash, in KiB (OWASP: 19456).
    #[arg(long, env = "GATEHOUSE_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,

    /// argon2id passes (OWASP: 2).
    #[arg(long, env = "GATEHOUSE_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// argon2id lanes (OWASP: 1).
    #[arg(long, env = "GATEHOUSE_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,

    /// Hashes that may wait for a core; past this, SERVICE_UNAVAILABLE at once.
    /// A waiting sign-in holds no hashing memory, and a client kept waiting
    /// is cheaper than one refused and retrying in a tight loop.
    #[arg(long, env = "GATEHOUSE_HASH_QUEUE", default_value_t = 512)]
    pub hash_queue: usize,
}

impl PasswordHashing {
    /// The argon2 parameters, refused by name when out of range.
    pub fn params(&self) -> Result<argon2::Params, String> {
        argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
        .map_err(|e| {
            format!(
                "GATEHOUSE_ARGON2_MEMORY_KIB/ITERATIONS/PARALLELISM are not valid argon2 parameters: {e}"
            )
        })
    }
}

/// How hard to guess a new password must be (NIST SP 800-63B-4's blocklist).
#[derive(Clone, Debug, Args)]
pub struct PasswordQuality {
    /// The lowest zxcvbn score, 0 to 4, that `register`, `changePassword`,
    /// `resetPassword` and `gatehouse user create` accept; 0 turns the check
    /// off. 3 is zxcvbn's own line ("safely unguessable": over 10^8
    /// guesses). Sign-in never scores, so existing passwords keep working.
    #[arg(long, env = "GATEHOUSE_PASSWORD_MIN_SCORE", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(0..=4))]
    pub password_min_score: u8,
}

impl PasswordQuality {
    /// The minimum score these settings describe.
    pub fn min_score(&self) -> Result<MinScore, String> {
        MinScore::new(self.password_min_score)
            .map_err(|e| format!("GATEHOUSE_PASSWORD_MIN_SCORE (--password-min-score): {e}"))
    }
}

/// What browsers and SPAs see.
#[derive(Clone, Debug, Args)]
pub struct WebSettings {
    /// Serve GraphiQL at `GET /graphql`.
    #[arg(long, env = "GATEHOUSE_PLAYGROUND", default_value_t = true, action = ArgAction::Set)]
    pub playground: bool,

    /// Answer introspection queries (GraphiQL and codegen need them).
    #[arg(long, env = "GATEHOUSE_INTROSPECTION", default_value_t = true, action = ArgAction::Set)]
    pub introspection: bool,

    /// Exact origins allowed to call the API from a browser, comma-separated
    /// (e.g. `https://app.example.com,http://localhost:5173`).
    #[arg(long, env = "GATEHOUSE_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// Also carry the session in an HttpOnly cookie set by login and register.
    #[arg(long, env = "GATEHOUSE_SESSION_COOKIE", default_value_t = false, action = ArgAction::Set)]
    pub session_cookie: bool,

    /// Mark the cookie `Secure`; turn off only for http://localhost development.
    #[arg(long, env = "GATEHOUSE_COOKIE_SECURE", default_value_t = true, action = ArgAction::Set)]
    pub cookie_secure: bool,

    /// Run only the documents in this manifest (the `persisted-documents.json`
    /// that GraphQL Code Generator's client preset writes), by id or hash.
    /// GraphiQL is not served, and introspection runs only if the manifest
    /// holds it.
    #[arg(long, env = "GATEHOUSE_TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<std::path::PathBuf>,

    /// Reverse proxies whose forwarding headers are believed, as addresses
    /// or CIDRs, comma-separated (e.g. `127.0.0.1,10.0.0.0/8`). From these
    /// peers the client is the rightmost address of `X-Forwarded-For` (or
    /// `Forwarded`) that is not itself a trusted proxy. Unset: forwarding
    /// headers are ignored, and the client is the TCP peer.
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Bounds on the main listener's connections, so that one client cannot
/// take a node's sockets or memory (README: Connection limits).
#[derive(Clone, Debug, Args)]
pub struct ConnectionSettings {
    /// Connections the main listener holds open at once (WebSockets
    /// included); past it, a new connection is closed unread.
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS", default_value_t = 25_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Connections one client address (an IPv6 /64) may hold open at once;
    /// peers in `GATEHOUSE_TRUSTED_PROXIES` are exempt.
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,

    /// How long a client has to send a request's headers once the server
    /// waits for them: from the connection's start, or from the previous
    /// response, so also how long an idle keep-alive connection stays open.
    #[arg(long, env = "GATEHOUSE_HEADER_READ_TIMEOUT", default_value = "10s",
          value_parser = parse_header_read_timeout)]
    pub header_read_timeout: Duration,

    /// The largest request head (request line and headers) in bytes; a
    /// larger one is answered 431 and the connection closed.
    #[arg(long, env = "GATEHOUSE_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u32).range(8192..=1024 * 1024))]
    pub max_header_bytes: u32,

    /// Live `sessionStatus` connections one account may hold at once,
    /// across all its sessions.
    #[arg(long, env = "GATEHOUSE_MAX_LIVE_CONNECTIONS_PER_ACCOUNT", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_live_connections_per_account: u32,

    /// Live `sessionStatus` connections one client address (an IPv6 /64)
    /// may hold at once.
    #[arg(long, env = "GATEHOUSE_MAX_LIVE_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_live_connections_per_address: u32,
}

/// Zero would refuse every request; past a few minutes it protects nothing.
fn parse_header_read_timeout(value: &str) -> Result<Duration, String> {
    let timeout = parse_duration(value)?;
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(300) {
        return Err("must be between 100ms and 5m".into());
    }
    Ok(timeout)
}

/// A network as a CIDR, or one address as its own network.
fn parse_network(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{value:?} is neither an address nor a CIDR like 10.0.0.0/8"))
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing more.
fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("an origin starts with http:// or https://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ', '@']) {
        return Err(format!(
            "{value:?} is not an exact origin like https://app.example.com"
        ));
    }
    Ok(value.to_owned())
}

/// Brute-force limits on password guesses and on sign-ups.
#[derive(Clone, Debug, Args)]
pub struct LoginLimits {
    /// Password attempts for one account before it locks.
    #[arg(long, env = "GATEHOUSE_LOGIN_MAX_FAILURES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_max_failures: u32,

    /// Password attempts from one client address (an IPv6 /64), across
    /// accounts, before it locks; `off` for none (0 in code).
    #[arg(long, env = "GATEHOUSE_LOGIN_MAX_FAILURES_PER_IP", default_value = "20",
          value_parser = parse_address_limit)]
    pub login_max_failures_per_ip: u32,

    /// A count is forgotten after this long with neither an attempt nor a lock.
    #[arg(long, env = "GATEHOUSE_LOGIN_FAILURE_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub login_failure_window: Duration,

    /// The first lock; each further attempt doubles it.
    #[arg(long, env = "GATEHOUSE_LOGIN_LOCKOUT", default_value = "30s", value_parser = parse_duration)]
    pub login_lockout: Duration,

    /// The longest lock.
    #[arg(long, env = "GATEHOUSE_LOGIN_MAX_LOCKOUT", default_value = "1h", value_parser = parse_duration)]
    pub login_max_lockout: Duration,

    /// Sign-ups from one client address (an IPv6 /64) per hour; `off` for
    /// no limit (0 in code).
    #[arg(long, env = "GATEHOUSE_REGISTER_MAX_PER_IP", default_value = "10",
          value_parser = parse_address_limit)]
    pub register_max_per_ip: u32,

    /// Successful sign-ins one account may make per hour. A person signs in
    /// a few times a day; a thief with the password must not be able to
    /// fill the database with sessions and events.
    #[arg(long, env = "GATEHOUSE_SIGNIN_MAX_PER_ACCOUNT", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub signin_max_per_account: u32,

    /// Reset and verification e-mails one address may be sent per hour.
    #[arg(long, env = "GATEHOUSE_MAIL_MAX_PER_ADDRESS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub mail_max_per_address: u32,

    /// Reset and verification e-mails one client address (an IPv6 /64) may
    /// ask for per hour, across addresses; `off` for no limit (0 in code).
    #[arg(long, env = "GATEHOUSE_MAIL_MAX_PER_IP", default_value = "20",
          value_parser = parse_address_limit)]
    pub mail_max_per_ip: u32,

    /// Wrong second-factor codes (TOTP or recovery) per account before it
    /// locks, under the same window and growing lock as passwords.
    #[arg(long, env = "GATEHOUSE_CODE_MAX_FAILURES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub code_max_failures: u32,

    /// Wrong second-factor codes per client address (an IPv6 /64), across
    /// accounts; `off` for no limit.
    #[arg(long, env = "GATEHOUSE_CODE_MAX_FAILURES_PER_IP", default_value = "20",
          value_parser = parse_address_limit)]
    pub code_max_failures_per_ip: u32,

    /// Passkey sign-ins begun per client address (an IPv6 /64) per hour,
    /// each a stored ceremony; `off` for no limit.
    #[arg(long, env = "GATEHOUSE_PASSKEY_CEREMONIES_PER_IP", default_value = "600",
          value_parser = parse_address_limit)]
    pub passkey_ceremonies_per_ip: u32,
}

/// A per-client-address limit: a count of at least 1, or `off` (kept as 0).
/// `0` itself is refused: it reads as "nothing allowed", the opposite.
fn parse_address_limit(value: &str) -> Result<u32, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    match value.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{value:?} is neither a count of at least 1 nor `off`"
        )),
    }
}

impl LoginLimits {
    /// The policies these settings describe.
    pub fn policies(&self) -> ThrottlePolicies {
        let policy = |max| {
            ThrottlePolicy::new(
                max,
                self.login_failure_window,
                self.login_lockout,
                self.login_max_lockout,
            )
        };
        let hour = Duration::from_secs(3600);
        // 0 is `off`: the address is not counted at all.
        let per_address =
            |max: u32, make: &dyn Fn(u32) -> ThrottlePolicy| (max > 0).then(|| make(max));
        ThrottlePolicies {
            account: policy(self.login_max_failures),
            address: per_address(self.login_max_failures_per_ip, &policy),
            // Every sign-up counts, successful or not: what is limited is
            // account creation and what EMAIL_TAKEN reveals.
            registration: per_address(self.register_max_per_ip, &|max| {
                ThrottlePolicy::new(max, hour, hour, hour)
            }),
            signin: ThrottlePolicy::rate(self.signin_max_per_account, hour),
            mail_address: ThrottlePolicy::rate(self.mail_max_per_address, hour),
            mail_client: per_address(self.mail_max_per_ip, &|max| ThrottlePolicy::rate(max, hour)),
            code_account: policy(self.code_max_failures),
            code_address: per_address(self.code_max_failures_per_ip, &policy),
            ceremony_address: per_address(self.passkey_ceremonies_per_ip, &|max| {
                ThrottlePolicy::rate(max, hour)
            }),
        }
    }
}

/// Where the data lives.
#[derive(Clone, Debug, Args)]
pub struct DatabaseSettings {
    /// `sqlite://FILE?mode=rwc` or `postgres://USER:PASS@HOST/DB`.
    #[arg(
        long,
        env = "GATEHOUSE_DATABASE_URL",
        default_value = "sqlite://gatehouse.db?mode=rwc"
    )]
    pub database_url: DatabaseUrl,

    /// Most connections this node opens. With PostgreSQL's default of 100,
    /// 10 per node leaves room for several nodes and an operator.
    #[arg(long, env = "GATEHOUSE_DB_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// PostgreSQL connections of the guard's own, beside the pool, for the
    /// one lookup every guarded request makes; lookups that arrive together
    /// share a statement. Two keep lookups going if one connection stalls.
    #[arg(long, env = "GATEHOUSE_DB_GUARD_CONNECTIONS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub db_guard_connections: u32,

    /// How long a request waits for a free connection before it is answered
    /// SERVICE_UNAVAILABLE; also the limit on opening one.
    #[arg(long, env = "GATEHOUSE_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub db_acquire_timeout: Duration,
}

/// The longest timeout accepted: beyond this a "session" is a password.
const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

impl Settings {
    /// Refuses settings that cannot make sense together, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let features = &self.sessions;
        for (name, value) in [
            ("GATEHOUSE_IDLE_TIMEOUT (--idle-timeout)", self.idle_timeout),
            (
                "GATEHOUSE_ABSOLUTE_TIMEOUT (--absolute-timeout)",
                self.absolute_timeout,
            ),
            (
                "GATEHOUSE_REMEMBER_IDLE_TIMEOUT (--remember-idle-timeout)",
                features.remember_idle_timeout,
            ),
            (
                "GATEHOUSE_REMEMBER_ABSOLUTE_TIMEOUT (--remember-absolute-timeout)",
                features.remember_absolute_timeout,
            ),
            ("GATEHOUSE_FRESH_AGE (--fresh-age)", features.fresh_age),
        ] {
            if value < Duration::from_secs(1) || value > MAX_TIMEOUT {
                return Err(format!(
                    "{name} must be between 1s and 366days, got {}",
                    humantime::format_duration(value)
                ));
            }
        }
        self.hashing.params()?;
        self.quality.min_score()?;
        self.mail.validate()?;
        if self.purge_interval < Duration::from_secs(1) {
            return Err("GATEHOUSE_PURGE_INTERVAL (--purge-interval) must be at least 1s".into());
        }
        if self.session_retention > MAX_TIMEOUT {
            return Err(
                "GATEHOUSE_SESSION_RETENTION (--session-retention) must be at most 366days".into(),
            );
        }
        if self.sessions.event_retention > MAX_TIMEOUT {
            return Err(
                "GATEHOUSE_EVENT_RETENTION (--event-retention) must be at most 366days".into(),
            );
        }
        for (idle, absolute, prefix) in [
            (self.idle_timeout, self.absolute_timeout, ""),
            (
                features.remember_idle_timeout,
                features.remember_absolute_timeout,
                "REMEMBER_",
            ),
        ] {
            if let Some(granularity) = self.slide_granularity.0
                && granularity > idle / 2
            {
                return Err(format!(
                    "GATEHOUSE_SLIDE_GRANULARITY (--slide-granularity) must be at most half of \
                     GATEHOUSE_{prefix}IDLE_TIMEOUT, or auto"
                ));
            }
            if idle > absolute {
                let flag = prefix.to_lowercase().replace('_', "-");
                return Err(format!(
                    "GATEHOUSE_{prefix}IDLE_TIMEOUT (--{flag}idle-timeout) {} is longer than \
                     GATEHOUSE_{prefix}ABSOLUTE_TIMEOUT (--{flag}absolute-timeout) {}",
                    humantime::format_duration(idle),
                    humantime::format_duration(absolute)
                ));
            }
        }
        Ok(())
    }

    /// Every rule a session lives by.
    pub fn session_rules(&self) -> Result<SessionRules, String> {
        Ok(SessionRules {
            policies: self.session_policies(),
            fresh_age: chrono::TimeDelta::from_std(self.sessions.fresh_age)
                .map_err(|e| format!("GATEHOUSE_FRESH_AGE: {e}"))?,
            max_sessions: (self.sessions.max_sessions_per_user > 0)
                .then_some(self.sessions.max_sessions_per_user),
        })
    }

    /// The timeout policies these settings describe.
    pub fn session_policies(&self) -> SessionPolicies {
        let features = &self.sessions;
        let granularity = self.slide_granularity.0;
        SessionPolicies {
            standard: SessionPolicy::new(self.idle_timeout, self.absolute_timeout)
                .with_slide_granularity(granularity),
            remembered: features.remember_me.then(|| {
                SessionPolicy::new(
                    features.remember_idle_timeout,
                    features.remember_absolute_timeout,
                )
                .with_slide_granularity(granularity)
            }),
        }
    }
}

/// `GATEHOUSE_SLIDE_GRANULARITY`: `None` is `auto`.
#[derive(Clone, Copy, Debug)]
pub struct Granularity(pub Option<Duration>);

fn parse_granularity(value: &str) -> Result<Granularity, String> {
    if value == "auto" {
        return Ok(Granularity(None));
    }
    parse_duration(value).map(|d| Granularity(Some(d)))
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|e| format!("{e}; write a duration such as 2s, 30m or 12h"))
}

/// A database URL. Its `Debug` hides everything after the scheme, since a
/// PostgreSQL URL usually carries a password.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced, for messages.
    pub fn redacted(&self) -> String {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &self.0[scheme_end + 3..at];
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{}{user}:***{}", &self.0[..scheme_end + 3], &self.0[at..])
            }
            _ => self.0.clone(),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.starts_with("sqlite:")
            || value.starts_with("postgres://")
            || value.starts_with("postgresql://")
        {
            Ok(Self(value.to_owned()))
        } else {
            Err("expected a sqlite:// or postgres:// URL".to_owned())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(idle: &str, absolute: &str) -> Settings {
        Cli::try_parse_from([
            "gatehouse",
            "serve",
            "--idle-timeout",
            idle,
            "--absolute-timeout",
            absolute,
        ])
        .map(|cli| match cli.command {
            Command::Serve(s) => *s,
            other => panic!("parsed as {other:?}"),
        })
        .expect("parses")
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = settings("30m", "12h");
        assert_eq!(s.idle_timeout, Duration::from_secs(30 * 60));
        assert_eq!(s.absolute_timeout, Duration::from_secs(12 * 3600));
        assert_eq!(s.sessions.max_sessions_per_user, 100);
        assert_eq!(s.login_limits.signin_max_per_account, 30);
        assert_eq!(s.quality.min_score(), MinScore::new(3));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn idle_longer_than_absolute_is_refused_by_name() {
        let err = settings("13h", "12h").validate().unwrap_err();
        assert!(err.contains("GATEHOUSE_IDLE_TIMEOUT"), "{err}");
    }

    #[test]
    fn zero_timeout_is_refused() {
        let err = settings("0s", "12h").validate().unwrap_err();
        assert!(err.contains("GATEHOUSE_IDLE_TIMEOUT"), "{err}");
    }

    #[test]
    fn unparsable_duration_names_the_flag() {
        let err = Cli::try_parse_from(["gatehouse", "serve", "--idle-timeout", "5x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--idle-timeout"), "{err}");
    }

    /// The guessing budgets the README states, from the real defaults.
    #[test]
    fn a_patient_attacker_gets_the_documented_budget() {
        use crate::domain::throttle_policy::budget;
        use chrono::{DateTime, TimeDelta};
        let policies = settings("30m", "12h").login_limits.policies();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let day = TimeDelta::days(1);
        let per_day = |p, days| budget(&p, t0, day * days) - budget(&p, t0, day * (days - 1));
        assert_eq!(budget(&policies.account, t0, day), 34);
        assert_eq!(per_day(policies.account, 7), 24);
        let address = policies.address.unwrap();
        assert_eq!(budget(&address, t0, day), 49);
        assert_eq!(per_day(address, 7), 24);
        assert_eq!(budget(&policies.registration.unwrap(), t0, day), 33);
        // Second-factor codes: the same shape, so the README's chances
        // (3 codes in 10^6 per guess) follow from these counts.
        assert_eq!(budget(&policies.code_account, t0, day), 34);
        assert_eq!(per_day(policies.code_account, 7), 24);
    }

    #[test]
    fn each_per_address_limit_can_be_turned_off_by_name_only() {
        let limits = |value: &str| {
            Cli::try_parse_from([
                "gatehouse",
                "serve",
                "--login-max-failures-per-ip",
                value,
                "--register-max-per-ip",
                value,
                "--mail-max-per-ip",
                value,
            ])
            .map(|cli| match cli.command {
                Command::Serve(s) => s.login_limits.policies(),
                other => panic!("parsed as {other:?}"),
            })
        };
        let off = limits("off").unwrap();
        assert!(off.address.is_none() && off.registration.is_none() && off.mail_client.is_none());
        let three = limits("3").unwrap();
        assert!(three.address.is_some() && three.registration.is_some());
        assert!(three.mail_client.is_some());
        for bad in ["0", "-1", "none", ""] {
            assert!(limits(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn the_minimum_password_score_is_zero_to_four() {
        let score = |value: &str| {
            let flag = format!("--password-min-score={value}");
            Cli::try_parse_from(["gatehouse", "serve", &flag]).map(|cli| match cli.command {
                Command::Serve(s) => s.quality.min_score().unwrap(),
                other => panic!("parsed as {other:?}"),
            })
        };
        assert!(score("0").unwrap().is_off());
        assert_eq!(score("4").unwrap().get(), 4);
        for bad in ["5", "-1", "three"] {
            let err = score(bad).unwrap_err().to_string();
            assert!(err.contains("--password-min-score"), "{err}");
        }
    }

    #[test]
    fn origins_must_be_exact() {
        assert_eq!(
            parse_origin("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert!(parse_origin("http://localhost:5173").is_ok());
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://*.example.com",
        ] {
            assert!(parse_origin(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn database_url_debug_hides_the_password() {
        let url: DatabaseUrl = "postgres://gate:s3cret@db:5432/gatehouse".parse().unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("gate:***@db:5432/gatehouse"), "{shown}");
    }
}
