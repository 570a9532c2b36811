//! `sessionStatus` over graphql-ws, through a real WebSocket: the state at
//! once, a warning before the end, the end with its reason the moment it
//! happens (on any node), and refusals with graphql-ws's close codes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestApp, TestDatabase, spawn_app_on};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A graphql-ws connection that has been acknowledged.
struct Live(Socket);

/// How a connection ended before it was acknowledged.
#[derive(Debug, PartialEq, Eq)]
struct Closed(u16, String);

async fn connect(app: &TestApp, payload: Value, headers: &[(&str, &str)]) -> Result<Live, Closed> {
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = name.parse().unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": payload });
    socket.send(Message::text(init.to_string())).await.unwrap();
    match socket.next().await {
        Some(Ok(Message::Text(text))) => {
            let message: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(message["type"], "connection_ack", "{message}");
            Ok(Live(socket))
        }
        Some(Ok(Message::Close(Some(frame)))) => {
            Err(Closed(frame.code.into(), frame.reason.to_string()))
        }
        other => panic!("unexpected {other:?}"),
    }
}

impl Live {
    async fn subscribe(&mut self) {
        let subscribe = json!({
            "id": "1",
            "type": "subscribe",
            "payload": { "query": "subscription { sessionStatus { kind expiresAt secondsLeft reason } }" }
        });
        self.0
            .send(Message::text(subscribe.to_string()))
            .await
            .unwrap();
    }

    /// The next `sessionStatus`, or `None` once the stream completes.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(within, self.0.next())
                .await
                .expect("a message in time")?
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let message: Value = serde_json::from_str(&text).unwrap();
            match message["type"].as_str() {
                Some("next") => return Some(message["payload"]["data"]["sessionStatus"].clone()),
                Some("complete") => return None,
                Some("ping") => {}
                _ => panic!("unexpected {message}"),
            }
        }
    }
}

fn bearer(token: &str) -> Value {
    json!({ "authorization": format!("Bearer {token}") })
}

async fn app_with(database: std::sync::Arc<TestDatabase>, idle: u64, warning: u64) -> TestApp {
    spawn_app_on(database, move |s| {
        s.idle_timeout = Duration::from_secs(idle);
        s.sessions.expiry_warning = Duration::from_secs(warning);
    })
    .await
}

#[tokio::test]
async fn it_warns_before_the_idle_end_then_ends_and_never_slides() {
    let app = app_with(TestDatabase::create().await, 3, 1).await;
    let (_, token, id) = app.signed_in_user().await;
    let before = app.session_row(&id).await.last_activity_at;
    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.subscribe().await;
    let current = live.next(Duration::from_secs(1)).await.unwrap();
    assert_eq!(current["kind"], "CURRENT");
    let warning = live.next(Duration::from_secs(3)).await.unwrap();
    assert_eq!(warning["kind"], "WARNING");
    assert_eq!(warning["secondsLeft"], 1);
    let ended = live.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        (ended["kind"].as_str(), ended["reason"].as_str()),
        (Some("ENDED"), Some("IDLE_TIMEOUT"))
    );
    assert_eq!(live.next(Duration::from_secs(1)).await, None);
    // Holding the subscription open was never activity.
    assert_eq!(app.session_row(&id).await.last_activity_at, before);
}

#[tokio::test]
async fn activity_elsewhere_moves_the_expiry_instead_of_warning() {
    let app = app_with(TestDatabase::create().await, 4, 2).await;
    let (_, token, _) = app.signed_in_user().await;
    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.subscribe().await;
    let first = live.next(Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    app.me(&token).await.data("me");
    let moved = live.next(Duration::from_secs(3)).await.unwrap();
    assert_eq!(moved["kind"], "CURRENT", "{moved}");
    assert!(moved["expiresAt"].as_str() > first["expiresAt"].as_str());
}

#[tokio::test]
async fn a_revocation_on_any_node_ends_the_stream_at_once() {
    let database = TestDatabase::create().await;
    // SQLite is one node; nodes share PostgreSQL, so there the subscriber
    // is on another node than the logout.
    let postgres = database.url.starts_with("postgres");
    let a = app_with(database.clone(), 1800, 120).await;
    let b = if postgres {
        Some(app_with(database, 1800, 120).await)
    } else {
        None
    };
    let (_, token, _) = a.signed_in_user().await;
    let mut live = connect(b.as_ref().unwrap_or(&a), bearer(&token), &[])
        .await
        .unwrap();
    live.subscribe().await;
    live.next(Duration::from_secs(1)).await.unwrap();
    a.logout(&token).await.data("logout");
    let ended = live.next(Duration::from_secs(1)).await.unwrap();
    assert_eq!(ended["reason"], "REVOKED");
}

#[tokio::test]
async fn refusals_close_with_graphql_ws_codes() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.web.session_cookie = true;
        s.web.cookie_secure = false;
        s.web.cors_origins = vec!["http://localhost:5173".into()];
        s.sessions.max_live_connections_per_session = 1;
    })
    .await;
    assert_eq!(
        connect(&app, bearer("gth_forged"), &[]).await.err(),
        Some(Closed(4403, "INVALID_TOKEN".into()))
    );
    assert_eq!(
        connect(&app, json!({}), &[]).await.err(),
        Some(Closed(4403, "MISSING_TOKEN".into()))
    );
    let (_, token, _) = app.signed_in_user().await;
    let cookie = format!("gatehouse_session={token}");
    // No CORS for WebSockets: the cookie counts only from an allowed origin.
    assert_eq!(
        connect(
            &app,
            json!({}),
            &[("cookie", &cookie), ("origin", "https://evil.example")]
        )
        .await
        .err(),
        Some(Closed(4403, "MISSING_TOKEN".into()))
    );
    let first = connect(
        &app,
        json!({}),
        &[("cookie", &cookie), ("origin", "http://localhost:5173")],
    )
    .await
    .expect("the allowed origin's cookie");
    assert_eq!(
        connect(&app, bearer(&token), &[]).await.err(),
        Some(Closed(4429, "TOO_MANY_CONNECTIONS".into()))
    );
    drop(first);
}

#[tokio::test]
async fn the_absolute_cap_ends_the_stream_however_active() {
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.idle_timeout = Duration::from_secs(3);
        s.absolute_timeout = Duration::from_secs(3);
        s.sessions.expiry_warning = Duration::from_secs(1);
    })
    .await;
    let (_, token, _) = app.signed_in_user().await;
    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.subscribe().await;
    assert_eq!(
        live.next(Duration::from_secs(1)).await.unwrap()["kind"],
        "CURRENT"
    );
    app.refresh_session(&token).await.data("refreshSession");
    // The refresh moved the idle expiry (a CURRENT), never the end.
    let mut warning = live.next(Duration::from_secs(3)).await.unwrap();
    if warning["kind"] == "CURRENT" {
        warning = live.next(Duration::from_secs(3)).await.unwrap();
    }
    assert_eq!(warning["kind"], "WARNING", "{warning}");
    let ended = live.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(ended["reason"], "ABSOLUTE_TIMEOUT");
}

#[tokio::test]
async fn a_revocation_while_the_listener_reconnects_still_ends_the_stream() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    let database = TestDatabase::create().await;
    if !database
        .postgres_or_skip("a_revocation_while_the_listener_reconnects_still_ends_the_stream")
    {
        return;
    }
    let app = app_with(database, 1800, 120).await;
    let (_, token, _) = app.signed_in_user().await;
    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.subscribe().await;
    live.next(Duration::from_secs(1)).await.unwrap();
    // Cut the node's LISTEN connection, then revoke while it is down: the
    // notice is lost, and the re-check after reconnecting must find it.
    let killed = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        ))
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "the node listens on one connection");
    app.logout(&token).await.data("logout");
    let ended = live.next(Duration::from_secs(4)).await.unwrap();
    assert_eq!(ended["reason"], "REVOKED");
}

#[tokio::test]
async fn trusted_documents_mode_runs_only_manifest_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("persisted-documents.json");
    let status = "subscription { sessionStatus { kind expiresAt secondsLeft reason } }";
    std::fs::write(
        &manifest,
        json!({ "s": status, "m": "query Me { me { user { id } } }" }).to_string(),
    )
    .unwrap();
    let database = TestDatabase::create().await;
    // Signed up through a node that runs any document.
    let (_, token, _) = spawn_app_on(database.clone(), |_| {})
        .await
        .signed_in_user()
        .await;
    let app = spawn_app_on(database, move |s| s.web.trusted_documents = Some(manifest)).await;

    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.subscribe().await;
    assert_eq!(
        live.next(Duration::from_secs(1)).await.unwrap()["kind"],
        "CURRENT"
    );

    let Live(mut other) = connect(&app, bearer(&token), &[]).await.unwrap();
    let untrusted = json!({
        "id": "2",
        "type": "subscribe",
        "payload": { "query": "subscription { sessionStatus { kind } }" }
    });
    other
        .send(Message::text(untrusted.to_string()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(2), other.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        answer.to_string().contains("DOCUMENT_NOT_TRUSTED"),
        "{answer}"
    );
}
