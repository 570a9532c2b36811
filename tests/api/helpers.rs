//! `spawn_app()` and one helper per operation, so tests read like the seed.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use entity::session;
use gatehouse::clock::Clock;
use gatehouse::config::{Cli, Command, SecretKeyText, Settings};
use gatehouse::startup::Application;
use graphql_client::{GraphQLQuery, QueryBody};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, EntityTrait, TransactionTrait,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::mailbox::MailDir;
use crate::operations::{
    ChangePassword, Login, Logout, Me, RefreshSession, Register, RevokeOtherSessions,
    RevokeSession, change_password, login, logout, me, refresh_session, register,
    revoke_other_sessions, revoke_session,
};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A password that satisfies the policy.
pub const PASSWORD: &str = "correct horse battery";
/// The sealing key every test node shares, as the nodes of a deployment do.
pub const SECRET_KEY: &str = "test:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A running server and a handle on its database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// Direct access, only to simulate the passage of time and to inspect
    /// what is at rest.
    pub db: DatabaseConnection,
    pub database: Arc<TestDatabase>,
    /// The server's clock: the system's, or one the test moves.
    pub clock: Clock,
    pub settings: Settings,
    /// The `.eml` files this node writes (the embedded default, no SMTP).
    pub mail: Arc<MailDir>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

/// A fresh, migrated-on-start database: a SQLite file in a temp dir, or a new
/// PostgreSQL database when `GATEHOUSE_TEST_DATABASE_URL` names a server.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
    _dir: Option<TempDir>,
}

const POSTGRES_ENV: &str = "GATEHOUSE_TEST_DATABASE_URL";

impl TestDatabase {
    pub async fn create() -> Arc<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            warn_postgres_skipped();
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("gatehouse.db").display()
            );
            return Arc::new(Self {
                url,
                postgres: None,
                _dir: Some(dir),
            });
        };
        let name = format!("gatehouse_test_{}", Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!(r#"CREATE DATABASE "{name}""#))
            .await
            .expect("CREATE DATABASE");
        admin.close().await.ok();
        let url = with_database_name(&admin_url, &name);
        Arc::new(Self {
            url,
            postgres: Some((admin_url, name)),
            _dir: None,
        })
    }
}

impl TestDatabase {
    /// Whether this run is on PostgreSQL; otherwise says loudly (past the
    /// harness's capture) that `test` was skipped.
    pub fn postgres_or_skip(&self, test: &str) -> bool {
        if self.postgres.is_none() {
            let _ = writeln!(
                std::io::stderr(),
                "*** SKIPPED {test}: it needs PostgreSQL ({POSTGRES_ENV}) ***"
            );
        }
        self.postgres.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(database) = self.postgres.take() {
            Reaper::get().drop_later(database);
        }
    }
}

/// Drops test databases on a thread of its own, once the test that used
/// one has returned. Dropping inside `Drop` would block the test's runtime
/// while its pool may hold a connection half-way through authentication;
/// PostgreSQL's `DROP DATABASE` then waits for that backend to absorb its
/// barrier, which it does only at `authentication_timeout` (60 s). Before
/// the process exits, every queued drop is waited for.
struct Reaper {
    queue: Mutex<std::sync::mpsc::Sender<(String, String)>>,
    pending: Mutex<usize>,
    drained: Condvar,
}

impl Reaper {
    fn get() -> &'static Reaper {
        static REAPER: OnceLock<Reaper> = OnceLock::new();
        REAPER.get_or_init(|| {
            let (queue, dropped) = std::sync::mpsc::channel::<(String, String)>();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for dropping test databases");
                for (admin_url, name) in dropped {
                    let result = runtime.block_on(async {
                        let admin = Database::connect(&admin_url).await?;
                        admin
                            .execute_unprepared(&format!(
                                r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                            ))
                            .await
                    });
                    if let Err(error) = result {
                        eprintln!("could not drop test database {name}: {error}");
                    }
                    let reaper = Reaper::get();
                    *reaper.pending.lock().unwrap() -= 1;
                    reaper.drained.notify_all();
                }
            });
            extern "C" fn wait_at_exit() {
                Reaper::get().wait();
            }
            // SAFETY: registers a plain function with no captured state.
            unsafe { libc::atexit(wait_at_exit) };
            Reaper {
                queue: Mutex::new(queue),
                pending: Mutex::new(0),
                drained: Condvar::new(),
            }
        })
    }

    fn drop_later(&self, database: (String, String)) {
        *self.pending.lock().unwrap() += 1;
        self.queue.lock().unwrap().send(database).unwrap();
    }

    fn wait(&self) {
        let pending = self.pending.lock().unwrap();
        let (_pending, timeout) = self
            .drained
            .wait_timeout_while(pending, Duration::from_secs(90), |n| *n > 0)
            .unwrap();
        if timeout.timed_out() {
            eprintln!("test databases were still being dropped at exit");
        }
    }
}

/// Says once, past the test harness's capture, that PostgreSQL was not tested.
fn warn_postgres_skipped() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** PostgreSQL run SKIPPED: {POSTGRES_ENV} is not set, so this run tested SQLite only. \
             Set it (as .ci/run does) to run the whole suite on PostgreSQL too. ***\n"
        );
    });
}

fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("URL has a database path");
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// A GraphQL answer with its HTTP status and headers.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `data.<field>`, asserting the operation succeeded.
    pub fn data(&self, field: &str) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "expected success, got {} {}",
            self.status,
            self.body
        );
        &self.body["data"][field]
    }

    /// `errors[0].extensions.code`.
    pub fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.body))
    }

    /// `errors[0].extensions.reason`.
    pub fn reason(&self) -> &str {
        self.body["errors"][0]["extensions"]["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("no error reason in {}", self.body))
    }

    /// `errors[0].message`.
    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }

    /// Asserts a 401 with `UNAUTHENTICATED` and this reason.
    pub fn assert_unauthenticated(&self, reason: &str) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{}", self.body);
        assert_eq!(self.code(), "UNAUTHENTICATED");
        assert_eq!(self.reason(), reason, "{}", self.body);
    }
}

/// Default settings: the documented timeouts.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Duration::from_secs(30 * 60), Duration::from_secs(12 * 3600)).await
}

/// A server with these timeouts, on a fresh database.
pub async fn spawn_app_with(idle: Duration, absolute: Duration) -> TestApp {
    spawn_app_on(TestDatabase::create().await, |s| {
        s.idle_timeout = idle;
        s.absolute_timeout = absolute;
    })
    .await
}

/// A server on an existing database (another node of a cluster), with its
/// settings adjusted by `configure`.
pub async fn spawn_app_on(
    database: Arc<TestDatabase>,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_app_with_clock(database, Clock::System, configure).await
}

/// A server whose every request is judged by `clock`.
pub async fn spawn_app_with_clock(
    database: Arc<TestDatabase>,
    clock: Clock,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    // The documented defaults, as `gatehouse serve` with no flags has them.
    let Command::Serve(settings) = Cli::try_parse_from(["gatehouse", "serve"])
        .expect("defaults parse")
        .command
    else {
        unreachable!("parsed serve")
    };
    let mut settings = *settings;
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database.database_url = database.url.parse().unwrap();
    settings.database.db_max_connections = 5;
    // Every test signs its users up from 127.0.0.1; the sign-up limit has
    // tests of its own.
    settings.login_limits.register_max_per_ip = 1_000_000;
    settings.second_factor.secret_key = Some(SecretKeyText(SECRET_KEY.into()));
    let mail = Arc::new(MailDir::new());
    settings.mail.mail_dir = mail.path().to_owned();
    configure(&mut settings);
    let mut app = TestApp {
        addr: "127.0.0.1:0".parse().unwrap(),
        client: client(),
        db: DatabaseConnection::default(),
        database,
        clock,
        settings,
        mail,
        server: None,
    };
    app.start().await;
    // Connect after the server has migrated the database.
    app.db = Database::connect(&app.database.url).await.expect("test db");
    app
}

impl TestApp {
    async fn start(&mut self) {
        let application = Application::build_with_clock(self.settings.clone(), self.clock.clone())
            .await
            .expect("application builds");
        self.addr = application.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            application
                .run_until_stopped(async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        self.server = Some((stop, handle));
    }

    /// Restarts with changed settings, as an operator would.
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Settings)) {
        configure(&mut self.settings);
        self.restart().await;
    }

    /// Stops the server gracefully and starts a new one on the same database.
    pub async fn restart(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            handle.await.expect("server stops cleanly");
        }
        self.settings.listen = "127.0.0.1:0".parse().unwrap();
        self.start().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a GraphQL operation, with a bearer token if given.
    pub async fn graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Reply {
        self.post_json(&json!({ "query": query, "variables": variables }), token)
            .await
    }

    /// Sends a typed operation from `operations/`.
    pub async fn send<V: serde::Serialize>(
        &self,
        body: QueryBody<V>,
        token: Option<&str>,
    ) -> Reply {
        self.post_json(&body, token).await
    }

    /// POSTs any JSON body.
    pub async fn post_value(&self, body: &Value, token: Option<&str>) -> Reply {
        self.post_json(body, token).await
    }

    /// POSTs any JSON body, without a token.
    pub async fn post_raw_json(&self, body: &Value) -> Reply {
        self.post_json(body, None).await
    }

    async fn post_json(&self, body: &impl serde::Serialize, token: Option<&str>) -> Reply {
        let mut request = self.client.post(self.url("/graphql")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.json().await.expect("JSON body"),
        }
    }

    pub async fn register(&self, email: &str, password: &str) -> Reply {
        let input = register::RegisterInput {
            email: email.into(),
            password: password.into(),
        };
        self.send(Register::build_query(register::Variables { input }), None)
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        let input = login::LoginInput {
            email: email.into(),
            password: password.into(),
            remember_me: false,
            known_device: None,
        };
        self.send(Login::build_query(login::Variables { input }), None)
            .await
    }

    pub async fn me(&self, token: &str) -> Reply {
        self.send(Me::build_query(me::Variables), Some(token)).await
    }

    pub async fn refresh_session(&self, token: &str) -> Reply {
        let body = RefreshSession::build_query(refresh_session::Variables);
        self.send(body, Some(token)).await
    }

    pub async fn revoke_session(&self, token: &str, session_id: &str) -> Reply {
        let input = revoke_session::RevokeSessionInput {
            session_id: session_id.into(),
        };
        let body = RevokeSession::build_query(revoke_session::Variables { input });
        self.send(body, Some(token)).await
    }

    pub async fn logout(&self, token: &str) -> Reply {
        self.send(Logout::build_query(logout::Variables), Some(token))
            .await
    }

    pub async fn revoke_other_sessions(&self, token: &str) -> Reply {
        let body = RevokeOtherSessions::build_query(revoke_other_sessions::Variables);
        self.send(body, Some(token)).await
    }

    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Reply {
        let input = change_password::ChangePasswordInput {
            current_password: current.into(),
            new_password: new.into(),
        };
        let body = ChangePassword::build_query(change_password::Variables { input });
        self.send(body, Some(token)).await
    }

    /// Registers `email` with the test password and proves the address
    /// with the link from its first e-mail; the session's token.
    pub async fn verified_user(&self, email: &str) -> String {
        let registered = self.register(email, PASSWORD).await;
        let token = registered.data("register")["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let link = crate::mailbox::Inbox::nth_to(&*self.mail, email, 1)
            .await
            .token("ghv_");
        self.graphql(
            "mutation($t: String!) { verifyEmail(input: {token: $t}) { email } }",
            serde_json::json!({ "t": link }),
            None,
        )
        .await
        .data("verifyEmail");
        token
    }

    /// Registers a fresh user and returns `(email, token, session id)`.
    pub async fn signed_in_user(&self) -> (String, String, String) {
        let email = format!("user-{}@example.com", Uuid::new_v4());
        let reply = self.register(&email, PASSWORD).await;
        let payload = reply.data("register");
        (
            email,
            payload["token"].as_str().unwrap().to_owned(),
            payload["session"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// The stored row of a session.
    pub async fn session_row(&self, id: &str) -> session::Model {
        session::Entity::find_by_id(Uuid::parse_str(id).unwrap())
            .one(&self.db)
            .await
            .unwrap()
            .expect("session row exists")
    }

    /// Back-dates a session's timestamps: the only way tests move time.
    pub async fn backdate_session(
        &self,
        id: &str,
        created_at: Option<DateTime<Utc>>,
        last_activity_at: Option<DateTime<Utc>>,
    ) {
        self.update_session(id, |row| {
            if let Some(t) = created_at {
                row.created_at = Set(t);
            }
            if let Some(t) = last_activity_at {
                row.last_activity_at = Set(t);
            }
        })
        .await;
    }

    /// Marks a session revoked at `at`, as if it had been long ago.
    pub async fn backdate_revocation(&self, id: &str, at: DateTime<Utc>) {
        self.update_session(id, |row| row.revoked_at = Set(Some(at)))
            .await;
    }

    async fn update_session(&self, id: &str, change: impl FnOnce(&mut session::ActiveModel)) {
        let mut row: session::ActiveModel = self.session_row(id).await.into();
        change(&mut row);
        row.update(&self.db).await.unwrap();
    }

    /// Blocks every write to `users` until the returned transaction ends: the
    /// database's write lock on SQLite, a table lock on PostgreSQL.
    pub async fn block_user_writes(&self) -> DatabaseTransaction {
        let txn = self.db.begin().await.unwrap();
        let sql = match txn.get_database_backend() {
            DbBackend::Postgres => "LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
            _ => {
                "INSERT INTO login_throttles (key, failures, last_failure_at) VALUES ('lock', 0, '2000-01-01')"
            }
        };
        txn.execute_unprepared(sql).await.unwrap();
        txn
    }
}

/// Parses an RFC 3339 timestamp from a response.
pub fn timestamp(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("timestamp string"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// A `gatehouse serve` process on port 0, with its log collected.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Its `.eml` files, unless the caller set `GATEHOUSE_MAIL_DIR`.
    pub mail: MailDir,
    log: Arc<Mutex<String>>,
}

/// Runs `gatehouse serve` on port 0 and waits until it listens.
pub fn serve(url: &str, rust_log: &str) -> Server {
    serve_with(url, rust_log, &[])
}

/// As [`serve`], with more settings.
pub fn serve_with(url: &str, rust_log: &str, envs: &[(&str, &str)]) -> Server {
    let mail = MailDir::new();
    // SQLite nodes make their own key file beside the database; PostgreSQL
    // nodes refuse to start without the shared one.
    let key = url
        .starts_with("postgres")
        .then_some(("GATEHOUSE_SECRET_KEY", SECRET_KEY));
    let mut child = Process::new(BIN)
        .arg("serve")
        .envs(key)
        .env("GATEHOUSE_MAIL_DIR", mail.path())
        .envs(envs.iter().copied())
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_DATABASE_URL", url)
        // These tests sign many users up from one address.
        .env("GATEHOUSE_REGISTER_MAX_PER_IP", "1000000")
        .env("RUST_LOG", rust_log)
        .stderr(Stdio::piped())
        .spawn()
        .expect("gatehouse serve starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let addr = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        log.lock().unwrap().push_str(&line);
        log.lock().unwrap().push('\n');
        if let Some(rest) = line.split("gatehouse listening addr=").nth(1) {
            break rest.trim().to_owned();
        }
        // GATEHOUSE_LOG_FORMAT=json
        if let Ok(json) = serde_json::from_str::<Value>(&line)
            && json["fields"]["message"] == "gatehouse listening"
        {
            break json["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining so the server never blocks on a full pipe.
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    Server {
        child,
        addr,
        mail,
        log,
    }
}

impl Server {
    pub async fn post(&self, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut request = client()
            .post(format!("http://{}/graphql", self.addr))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn terminate(mut self) -> (bool, String) {
        signal(&self.child, "-TERM");
        let exited_cleanly = self.child.wait().unwrap().success();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (exited_cleanly, log)
    }
}

/// A test that fails must not leave its server running: it would hold the
/// test runner's output open.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(child: &Child, signal: &str) {
    let status = Process::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("gatehouse.db").display()
    )
}

/// An HTTP client that asks for what Apollo Client and urql ask for:
/// `application/graphql-response+json`, whose statuses say whether a
/// document ran. Tests of `application/json` set `Accept` themselves.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static(GRAPHQL_RESPONSE),
    );
    reqwest::Client::builder()
        .user_agent("gatehouse-tests")
        .default_headers(headers)
        .build()
        .unwrap()
}

pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
