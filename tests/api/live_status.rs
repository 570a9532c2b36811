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

use crate::helpers::{TestApp, TestDatabase, serve, spawn_app_on, sqlite_url};

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
    // The warning is 4 s away: a loaded machine (tests in parallel) has
    // 3 s to land the activity before it.
    let app = app_with(TestDatabase::create().await, 8, 4).await;
    let (_, token, _) = app.signed_in_user().await;
    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.subscribe().await;
    let first = live.next(Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    app.me(&token).await.data("me");
    let moved = live.next(Duration::from_secs(5)).await.unwrap();
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

impl Live {
    async fn send(&mut self, message: Value) {
        self.0
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The close frame the server ends the connection with, skipping
    /// whatever comes before it.
    async fn closed(&mut self) -> Closed {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.0.next())
                .await
                .expect("closed in time")
            {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Closed(frame.code.into(), frame.reason.to_string());
                }
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    }
}

fn subscribe(id: &str, query: &str) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": { "query": query } })
}

const STATUS: &str = "subscription { sessionStatus { kind reason } }";

#[tokio::test]
async fn the_connection_closes_with_the_reason_once_its_session_ends() {
    let app = app_with(TestDatabase::create().await, 60, 5).await;
    let (_, token, _) = app.signed_in_user().await;
    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.subscribe().await;
    assert_eq!(
        live.next(Duration::from_secs(2)).await.unwrap()["kind"],
        "CURRENT"
    );
    app.graphql("mutation { logout }", json!({}), Some(&token))
        .await
        .data("logout");
    let ended = live.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(ended["reason"], "REVOKED");
    assert_eq!(live.next(Duration::from_secs(2)).await, None);
    // The socket's session is over: the connection goes too, and its place.
    assert_eq!(live.closed().await, Closed(4403, "REVOKED".into()));
}

#[tokio::test]
async fn protocol_breaches_and_extra_operations_close_the_connection() {
    let app = app_with(TestDatabase::create().await, 60, 5).await;
    let (_, token, _) = app.signed_in_user().await;

    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.send(subscribe("a", STATUS)).await;
    live.send(subscribe("a", STATUS)).await;
    assert_eq!(
        live.closed().await,
        Closed(4409, "Subscriber for a already exists".into())
    );

    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    for id in 0..=8 {
        live.send(subscribe(&id.to_string(), STATUS)).await;
    }
    assert_eq!(
        live.closed().await,
        Closed(4429, "TOO_MANY_OPERATIONS".into())
    );

    // Before connection_init, nothing runs.
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut early = Live(socket);
    early.send(subscribe("1", STATUS)).await;
    assert_eq!(early.closed().await, Closed(4401, "Unauthorized".into()));

    // The legacy subscriptions-transport-ws protocol is not served.
    let mut legacy = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .unwrap();
    legacy
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-ws".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(legacy).await.unwrap_err();
    assert!(refused.to_string().contains("400"), "{refused}");
}

#[tokio::test]
async fn queries_and_mutations_over_the_socket_are_refused_and_run_nothing() {
    let app = app_with(TestDatabase::create().await, 60, 5).await;
    let (_, token, _) = app.signed_in_user().await;
    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.send(subscribe("1", "mutation { logout }")).await;
    let answer = loop {
        let Some(Ok(Message::Text(text))) = live.0.next().await else {
            panic!("no answer");
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] != "ping" {
            break message;
        }
    };
    let errors = if answer["type"] == "error" {
        answer["payload"].clone()
    } else {
        answer["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "BAD_REQUEST", "{answer}");
    app.me(&token).await.data("me");
}

/// A peer that floods pings and never reads the pongs must cost the node
/// neither memory nor, for long, a connection. The real binary, so that its
/// memory is its own.
#[tokio::test]
async fn a_peer_that_floods_pings_and_never_reads_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&sqlite_url(&dir), "info");
    let rss = || {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            / 1024
    };
    let before = rss();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A peer whose window closes at once, as a slow reader's would.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr.parse().unwrap()).await.unwrap();
    let handshake = format!(
        "GET /graphql HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n",
        server.addr
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut response = [0u8; 1024];
    let read = stream.read(&mut response).await.unwrap();
    assert!(String::from_utf8_lossy(&response[..read]).starts_with("HTTP/1.1 101"));
    // Masked pings with 125-byte bodies, never reading the pongs.
    let mut ping = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
    ping.extend(std::iter::repeat_n(b'p' ^ 1, 125));
    let burst: Vec<u8> = ping.repeat(1000);
    let started = tokio::time::Instant::now();
    let mut peak = 0;
    let cut_off = loop {
        let write = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&burst)).await;
        peak = peak.max(rss().saturating_sub(before));
        if matches!(write, Ok(Err(_))) {
            break true;
        }
        if started.elapsed() > Duration::from_secs(25) {
            break false;
        }
    };
    assert!(peak < 32, "the flood grew the node by {peak} MiB");
    assert!(cut_off, "the server kept a peer that never reads");
}

#[tokio::test]
async fn strangers_who_never_initialise_are_limited_per_address() {
    let app = app_with(TestDatabase::create().await, 60, 5).await;
    let mut waiting = Vec::new();
    let handshake = || {
        let mut request = format!("ws://{}/graphql", app.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request)
    };
    for _ in 0..16 {
        waiting.push(handshake().await.unwrap().0);
    }
    let refused = handshake().await.unwrap_err();
    assert!(refused.to_string().contains("429"), "{refused}");
    // A place is free again once one of them initialises.
    let (_, token, _) = app.signed_in_user().await;
    let mut first = Live(waiting.remove(0));
    first
        .send(json!({ "type": "connection_init", "payload": bearer(&token) }))
        .await;
    let Some(Ok(Message::Text(ack))) = first.0.next().await else {
        panic!("no ack");
    };
    assert!(ack.contains("connection_ack"));
    handshake().await.expect("a place came free");
}

/// The close reason is the server's verdict, whatever the client selected.
#[tokio::test]
async fn the_close_reason_does_not_depend_on_the_selection() {
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.sessions.max_sessions_per_user = 1;
    })
    .await;
    let (email, token, _) = app.signed_in_user().await;
    let mut live = connect(&app, bearer(&token), &[]).await.unwrap();
    live.send(subscribe(
        "1",
        "subscription { sessionStatus { k: __typename } }",
    ))
    .await;
    // A newer sign-in pushes this session out.
    app.login(&email, crate::helpers::PASSWORD)
        .await
        .data("login");
    assert_eq!(live.closed().await, Closed(4403, "SESSION_LIMIT".into()));
}

#[tokio::test]
async fn messages_larger_than_the_read_buffer_arrive_whole() {
    // The socket reads 1 KiB at a time when idle; a frame twenty times that
    // grows the buffer as it comes, split across reads.
    let app = app_with(TestDatabase::create().await, 60, 5).await;
    let (_, token, _) = app.signed_in_user().await;
    let mut payload = bearer(&token);
    payload["padding"] = json!("p".repeat(20 * 1024));
    let mut live = connect(&app, payload, &[]).await.unwrap();
    let comment = format!("# {}\n", "c".repeat(10 * 1024));
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": format!("{comment}subscription {{ sessionStatus {{ kind }} }}") }
    });
    live.0
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();
    let current = live.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(current["kind"], "CURRENT");
}
