//! Building and running the server: services, router, listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::clock::Clock;
use chrono::TimeDelta;

use crate::config::{Registration, Settings, SmtpUrl, WebSettings};
use crate::database;
use crate::graphql::persisted::PersistedDocuments;
use crate::graphql::schema::{self, RequireVerifiedEmail};
use crate::graphql::subscription::ExpiryWarning;
use crate::http::graphql::Endpoint;
use crate::http::guard::{Guard, PASSIVE_HEADER, PREFLIGHT_HEADER};
use crate::http::listener::{self, Admission};
use crate::http::socket_executor::SocketExecutor;
use crate::http::websocket::{self, Sockets};
use crate::http::{
    MAX_BODY_BYTES, client_address, cors_guard, graphql, guard, health, metrics_page, playground,
    request_log, timeout,
};
use crate::mail::transport::Mailer;
use crate::measure;
use crate::repo::session_reader::SessionReader;
use crate::services::auth::{AuthService, SecondFactor};
use crate::services::courier::Courier;
use crate::services::gauges;
use crate::services::in_flight::InFlightSlides;
use crate::services::outbox::{Outbox, TokenLifetimes};
use crate::services::passwords::Passwords;
use crate::services::providers::Providers;
use crate::services::purge::{self, Purge};
use crate::services::recovery::Recovery;
use crate::services::relying_party::RelyingParty;
use crate::services::secret_box::{SecretBox, default_key_file};
use crate::services::throttle::LoginThrottle;
use crate::session_cookie::SessionCookie;
use crate::session_notifier::SessionNotifier;

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// The caps and deadlines on the main listener's connections.
    admission: Admission,
    purge: Purge,
    courier: Courier,
    /// `GATEHOUSE_METRICS_LISTEN`'s listener, if set.
    metrics: Option<TcpListener>,
}

impl Application {
    /// Validates settings, connects, migrates, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::System).await
    }

    /// As [`Application::build`], judging every request by `clock`.
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        settings.validate().map_err(anyhow::Error::msg)?;
        listener::raise_file_limit(&settings.connections);
        // Before the database: a node without its key must not touch it.
        let second_factor = second_factor(&settings)?;
        let db = database::connect_and_migrate(&settings.database).await?;
        let params = settings.hashing.params().map_err(anyhow::Error::msg)?;
        let min_score = settings.quality.min_score().map_err(anyhow::Error::msg)?;
        let passwords = Passwords::new(params, settings.hashing.hash_queue, min_score).await?;
        // Counting sign-ins takes at most half the pool.
        let throttle = LoginThrottle::new(
            db.clone(),
            settings.login_limits.policies(),
            (settings.database.db_max_connections as usize / 2).max(1),
            settings.database.db_acquire_timeout,
        );
        let notifier = SessionNotifier::default();
        if db.get_database_backend() == DbBackend::Postgres {
            let pool = db.get_postgres_connection_pool().clone();
            tokio::spawn(notifier.clone().listen(pool));
        }
        let reader = SessionReader::new(
            &db,
            settings.database.db_guard_connections as usize,
            settings.database.db_acquire_timeout,
        )?;
        let mail = &settings.mail;
        let mailer = Mailer::new(
            mail.smtp_url.as_ref().map(SmtpUrl::expose),
            &mail.mail_from,
            mail.mail_dir.clone(),
        )?;
        let outbox = Outbox::new(
            mail.letters(),
            TokenLifetimes {
                reset: mail.reset_ttl,
                verify: mail.verify_ttl,
            },
        );
        let pending_mail = Recovery::pending_limit();
        let other = &settings.other_ways_in;
        let providers = Providers::new(other.providers()?, other.oidc_redirect_uris.clone())?;
        let auth = AuthService {
            second_factor,
            providers,
            email_sign_in: other.email_sign_in,
            pending_mail: pending_mail.clone(),
            relying_party: RelyingParty::new(&settings.passkeys)?,
            slides: InFlightSlides::default(),
            db: db.clone(),
            reader,
            rules: settings.session_rules().map_err(anyhow::Error::msg)?,
            passwords: passwords.clone(),
            throttle: throttle.clone(),
            clock: clock.clone(),
            notifier: notifier.clone(),
            outbox: outbox.clone(),
            registration_open: settings.registration == Registration::Open,
            live_reads: Arc::new(Semaphore::new(
                (settings.database.db_max_connections as usize / 2).max(1),
            )),
        };
        let recovery = Recovery {
            db: db.clone(),
            passwords,
            throttle: throttle.clone(),
            outbox: outbox.clone(),
            notifier: notifier.clone(),
            policies: settings.session_policies(),
            pending: pending_mail,
        };
        let courier = Courier {
            db: db.clone(),
            mailer,
            clock: clock.clone(),
            wake: outbox.woken(),
        };
        let documents = match &settings.web.trusted_documents {
            Some(path) => PersistedDocuments::trusted(path)?,
            None => PersistedDocuments::automatic(),
        };
        measure::handle();
        let router = router(auth, recovery, db.clone(), documents, &settings)?;
        let metrics =
            match settings.metrics_listen {
                Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen on GATEHOUSE_METRICS_LISTEN {addr}")
                })?),
                None => None,
            };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on GATEHOUSE_LISTEN {}", settings.listen))?;
        let purge = Purge {
            db,
            throttle,
            policies: settings.session_policies(),
            retention: purge::Retention {
                sessions: settings.session_retention,
                events: settings.sessions.event_retention,
            },
            interval: settings.purge_interval,
            clock,
        };
        let admission = Admission::new(&settings.connections, &settings.web.trusted_proxies);
        Ok(Self {
            listener,
            router,
            admission,
            purge,
            courier,
            metrics,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let live_count = gauges::run(
            self.purge.db.clone(),
            self.purge.policies,
            self.purge.clock.clone(),
        );
        let mut background = vec![
            tokio::spawn(live_count),
            tokio::spawn(measure::upkeep()),
            tokio::spawn(self.courier.run()),
            tokio::spawn(self.purge.run()),
        ];
        if let Some(listener) = self.metrics {
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            background.push(tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, metrics_page::routes()).await {
                    tracing::error!(error = %err, "the metrics listener failed");
                }
            }));
        }
        tracing::info!(addr = %self.listener.local_addr()?, "gatehouse listening");
        listener::serve(self.listener, self.router, self.admission, shutdown).await;
        for task in background {
            task.abort();
        }
        Ok(())
    }
}

fn router(
    auth: AuthService,
    recovery: Recovery,
    db: DatabaseConnection,
    documents: PersistedDocuments,
    settings: &Settings,
) -> anyhow::Result<Router> {
    let web = &settings.web;
    let cookie = web
        .session_cookie
        .then(|| SessionCookie::new(web.cookie_secure));
    // GraphiQL sends documents of its own: no use where only trusted ones run.
    let page = web.playground && !documents.is_trusted_only();
    let warning = chrono::TimeDelta::from_std(settings.sessions.expiry_warning)
        .map_err(anyhow::Error::msg)?;
    let schema = schema::build(
        auth.clone(),
        recovery,
        cookie,
        web.introspection,
        ExpiryWarning(warning),
        RequireVerifiedEmail(settings.mail.require_verified_email),
    )?;
    let sockets = Sockets {
        executor: SocketExecutor {
            schema: schema.clone(),
            documents: documents.clone(),
        },
        auth: auth.clone(),
        cookie,
        origins: allowed_origins(&web.cors_origins),
        limits: websocket::Limits::new(websocket::Caps {
            node: settings.sessions.max_live_connections,
            per_session: settings.sessions.max_live_connections_per_session,
            per_account: settings.connections.max_live_connections_per_account as usize,
            per_address: settings.connections.max_live_connections_per_address as usize,
        }),
    };
    let endpoint = Endpoint { schema, documents };
    // `route_layer`: a method with no route gets its 405 without the guard
    // looking at, or sliding, the session it names.
    let mut execute = post(graphql::post)
        .get(graphql::get)
        .with_state(endpoint)
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(Guard { auth, cookie }),
            guard::authenticate_request,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            settings.request_timeout,
            timeout::deadline,
        ));
    let mut app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(db);
    if page {
        execute = execute.route_layer(axum::middleware::from_fn(playground::page_for_browsers));
        app = app.merge(playground::routes());
    }
    // Outermost: a handshake never meets the guard or the deadline.
    execute = execute.route_layer(axum::middleware::from_fn_with_state(
        Arc::new(sockets),
        websocket::upgrade_or_next,
    ));
    app = app.route("/graphql", execute);
    if settings.metrics_listen.is_none() {
        app = app.merge(metrics_page::loopback_routes());
    }
    Ok(edge(app, web, cookie.is_some()))
}

/// The layers every route sits behind, innermost first.
fn edge(app: Router, web: &WebSettings, credentials: bool) -> Router {
    let trusted: Arc<[ipnet::IpNet]> = web.trusted_proxies.clone().into();
    let origins: Arc<[HeaderValue]> = allowed_origins(&web.cors_origins).into();
    app.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Once, before anything keys on the client.
        .layer(axum::middleware::from_fn_with_state(
            trusted,
            client_address::resolve,
        ))
        .layer(cors(&web.cors_origins, credentials))
        .layer(axum::middleware::from_fn_with_state(
            origins,
            cors_guard::only_allowed_origins,
        ))
        // One line per request, with its id; the path only: a GET's query
        // string can hold a document, and a document a password.
        .layer(axum::middleware::from_fn(request_log::log_request))
        // A bug must cost one request a 500, never the connection or the node.
        .layer(CatchPanicLayer::new())
}

/// CORS for the configured origins; preflights are answered here, before
/// the guard. Any other origin's CORS headers are stripped by
/// [`cors_guard`], so browsers refuse it.
fn cors(origins: &[String], credentials: bool) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed_origins(origins)))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(PREFLIGHT_HEADER),
            HeaderName::from_static(PASSIVE_HEADER),
        ])
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
        .allow_credentials(credentials)
        .max_age(Duration::from_secs(600))
}

fn allowed_origins(origins: &[String]) -> Vec<HeaderValue> {
    origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect()
}

/// Resolves on Ctrl-C or SIGTERM, for graceful shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// The second-factor settings, with the sealing keys: from the settings, or
/// for the embedded default a key file made beside the SQLite database. A
/// PostgreSQL deployment must set them: its nodes share what one seals.
fn second_factor(settings: &Settings) -> anyhow::Result<SecondFactor> {
    let config = &settings.second_factor;
    let secrets = match (&config.secret_key, &config.secret_key_file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("set GATEHOUSE_SECRET_KEY or GATEHOUSE_SECRET_KEY_FILE, not both")
        }
        (Some(text), None) => {
            SecretBox::parse(&text.0).map_err(|e| anyhow::anyhow!("GATEHOUSE_SECRET_KEY: {e}"))?
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("GATEHOUSE_SECRET_KEY_FILE {}: {e}", path.display())
            })?;
            SecretBox::parse(&text)
                .map_err(|e| anyhow::anyhow!("GATEHOUSE_SECRET_KEY_FILE {}: {e}", path.display()))?
        }
        (None, None) => {
            let url = settings.database.database_url.expose();
            let Some(path) = default_key_file(url) else {
                anyhow::bail!(
                    "GATEHOUSE_SECRET_KEY (or GATEHOUSE_SECRET_KEY_FILE) must be set: it seals \
                     TOTP secrets, and every node must share it. Make one with \
                     `echo k1:$(openssl rand -base64 32)`"
                );
            };
            let (secrets, created) = SecretBox::load_or_create(&path).map_err(|e| {
                anyhow::anyhow!(
                    "the key that seals TOTP secrets is kept beside the database of \
                         GATEHOUSE_DATABASE_URL, but {e}; fix the path or set GATEHOUSE_SECRET_KEY"
                )
            })?;
            if created {
                tracing::warn!(
                    path = %path.display(),
                    "generated the key that seals TOTP secrets; back it up with the database, \
                     or set GATEHOUSE_SECRET_KEY in production"
                );
            } else {
                tracing::info!(path = %path.display(), "sealing TOTP secrets with the key file");
            }
            secrets
        }
    };
    let remember = config.remember_device;
    Ok(SecondFactor {
        requirement: config.require_second_factor,
        totp_issuer: config.totp_issuer.clone(),
        remember_device: (!remember.is_zero())
            .then(|| TimeDelta::from_std(remember).unwrap_or(TimeDelta::MAX)),
        secrets,
    })
}
