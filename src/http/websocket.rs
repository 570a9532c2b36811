//! `sessionStatus` over graphql-ws, on `/graphql`. The session is verified
//! once, at `connection_init`, from the payload's token or from the cookie.
//! Browsers apply no CORS to WebSocket handshakes, so the cookie counts
//! only when `Origin` is one of `GATEHOUSE_CORS_ORIGINS`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::futures_util::stream::{SplitSink, SplitStream};
use async_graphql::futures_util::{SinkExt, Stream, StreamExt, future};
use async_graphql::http::{WebSocketProtocols, WsMessage};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use serde::Deserialize;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use crate::context::CurrentSession;
use crate::domain::token::SessionToken;
use crate::error::{AppError, AuthFailure};
use crate::graphql::subscription::ConnectionEnd;
use crate::http::MAX_BODY_BYTES;
use crate::http::client_address::ClientAddress;
use crate::http::places::{Place, Places, network};
use crate::http::socket_executor::SocketExecutor;
use crate::services::auth::AuthService;
use crate::session_cookie::SessionCookie;

/// How long a connection may go without `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Operations one connection may run at once. An app needs one
/// `sessionStatus`; graphql-ws clients share a connection among a tab's.
pub const MAX_OPERATIONS: usize = 8;
/// The longest one message may take to leave; a peer that does not read
/// is cut off.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings, and checks for an idle connection.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long an initialised connection may run nothing before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections from one client address (an IPv6 /64) that have not sent
/// `connection_init` yet.
pub const MAX_PENDING_PER_ADDRESS: usize = 16;
/// What may wait to be sent on one connection (pongs included) before it
/// is cut off.
const MAX_WRITE_BUFFER: usize = 64 * 1024;

/// What the WebSocket endpoint needs; behind one `Arc`, since axum clones
/// a middleware's state for every request, upgrade or not.
pub struct Sockets {
    pub executor: SocketExecutor,
    pub auth: AuthService,
    pub cookie: Option<SessionCookie>,
    pub origins: Vec<HeaderValue>,
    pub limits: Limits,
}

/// The bounds on open connections.
pub struct Limits {
    /// Connections this node holds at once.
    node: Arc<Semaphore>,
    /// Connections one session may hold at once (its tabs).
    per_session: usize,
    /// Connections one account may hold at once, across its sessions: so
    /// signing in again and again does not multiply [`Limits::per_session`].
    per_account: usize,
    /// Connections one client address (an IPv6 /64) may hold at once.
    per_address: usize,
    open: Places<Uuid>,
    accounts: Places<Uuid>,
    addresses: Places<IpAddr>,
    /// Connections per client address still waiting for `connection_init`.
    pending: Places<IpAddr>,
}

/// How many connections each holder may have open at once.
pub struct Caps {
    pub node: usize,
    pub per_session: usize,
    pub per_account: usize,
    pub per_address: usize,
}

impl Limits {
    pub fn new(caps: Caps) -> Self {
        Self {
            node: Arc::new(Semaphore::new(caps.node)),
            per_session: caps.per_session,
            per_account: caps.per_account,
            per_address: caps.per_address,
            open: Places::default(),
            accounts: Places::default(),
            addresses: Places::default(),
            pending: Places::default(),
        }
    }

    /// A place for one more connection from `address`, held for its life,
    /// and one held until its `connection_init`; `Err` names the 429's cause.
    fn arrive(&self, address: Option<IpAddr>) -> Result<Arrival, &'static str> {
        let Some(address) = address.map(network) else {
            return Ok((None, None));
        };
        let open = self
            .addresses
            .take(address, self.per_address)
            .ok_or("Too many live connections from this address")?;
        let pending = self
            .pending
            .take(address, MAX_PENDING_PER_ADDRESS)
            .ok_or("Too many connections from this address are waiting for connection_init")?;
        Ok((Some(open), Some(pending)))
    }

    /// Places for one more connection of `session` and of its account,
    /// held until dropped.
    fn take(&self, session: Uuid, account: Uuid) -> Option<(Place<Uuid>, Place<Uuid>)> {
        let session = self.open.take(session, self.per_session)?;
        let account = self.accounts.take(account, self.per_account)?;
        Some((session, account))
    }
}

/// A new connection's places: its address's for its life, and its
/// address's among those waiting for `connection_init`.
type Arrival = (Option<Place<IpAddr>>, Option<Place<IpAddr>>);

/// The client address a connection is counted against. Today the TCP peer;
/// with trusted proxies, the address they forwarded.
fn client_address(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ClientAddress>()
        .map(|ClientAddress(ip)| *ip)
}

/// The one subprotocol served: graphql-ws's, as Apollo Client and urql
/// speak it. The legacy `subscriptions-transport-ws` is refused.
const GRAPHQL_TRANSPORT_WS: &str = "graphql-transport-ws";

/// Why a connection was closed at `connection_init`, and with which code.
struct Refusal {
    code: u16,
    reason: &'static str,
}

/// Takes a WebSocket handshake to graphql-ws; any other request goes on.
pub async fn upgrade_or_next(
    State(sockets): State<Arc<Sockets>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_upgrade(request.headers()) {
        return next.run(request).await;
    }
    let (mut parts, _) = request.into_parts();
    let Some(protocol) = offered_protocol(&parts.headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "Send Sec-WebSocket-Protocol: graphql-transport-ws",
        )
            .into_response();
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(err) => return err.into_response(),
    };
    let Ok(permit) = sockets.limits.node.clone().try_acquire_owned() else {
        let why = "This node holds as many live connections as it may; try again shortly";
        return refused_for_now(StatusCode::SERVICE_UNAVAILABLE, "5", why);
    };
    let (address, pending) = match sockets.limits.arrive(client_address(&parts)) {
        Ok(places) => places,
        Err(why) => return refused_for_now(StatusCode::TOO_MANY_REQUESTS, "10", why),
    };
    let cookie = cookie_token(&sockets, &parts.headers);
    upgrade
        .protocols([GRAPHQL_TRANSPORT_WS])
        // tungstenite's defaults (128 KiB read buffer, large frames) would
        // cost 150 KiB per idle connection. A subscriber sends a few
        // hundred bytes (a larger frame grows the buffer as it comes), and
        // no message may be larger than an HTTP body. The read buffer is
        // held for the connection's life: 1 KiB of the 16 it may cost.
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            serve(socket, sockets, protocol, cookie, pending).await;
            drop((permit, address));
        })
}

/// graphql-ws's subprotocol, if the handshake offers it among others.
fn offered_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    let offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let ours = offered
        .split(',')
        .map(str::trim)
        .find(|p| *p == GRAPHQL_TRANSPORT_WS)?;
    WebSocketProtocols::from_str(ours).ok()
}

/// A handshake refused for now, with when to try again.
fn refused_for_now(status: StatusCode, retry_after: &'static str, why: &'static str) -> Response {
    (status, [(header::RETRY_AFTER, retry_after)], why).into_response()
}

/// What one connection has said so far: written by its input filter
/// ([`admitted`]), its `connection_init` ([`Init::verdict`]) and its output
/// map ([`outgoing`]), and read by its loop ([`converse`]).
#[derive(Default)]
struct Conversation {
    /// `connection_init` was accepted.
    accepted: bool,
    /// The operations running, by id.
    active: HashSet<String>,
    /// A breach of the protocol or a limit: close with this.
    breach: Option<(u16, String)>,
    /// The input failed (a message over the size limit, a broken frame).
    broken: bool,
    /// Since when no operation has run.
    idle_since: Option<Instant>,
}

/// graphql-ws's envelope: enough to follow the operations.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

/// Runs one connection. A refused `connection_init` closes it with 4403
/// (graphql-ws's Forbidden) and the reason, or 4429 past the session's
/// limit, where async-graphql would send a generic 1002; no
/// `connection_init` within [`INIT_TIMEOUT`] closes it with 4408. Beyond
/// the protocol: at most [`MAX_OPERATIONS`] at once, every send bounded in
/// time, a ping every [`KEEPALIVE`], and the connection closed with 4403
/// once its session has ended, or after [`IDLE_TIMEOUT`] with nothing to run.
async fn serve(
    socket: WebSocket,
    sockets: Arc<Sockets>,
    protocol: WebSocketProtocols,
    cookie: Option<String>,
    pending: Option<Place<IpAddr>>,
) {
    let state = Arc::new(Mutex::new(Conversation::default()));
    let end = ConnectionEnd::default();
    let breached = Arc::new(Notify::new());
    let refused = Arc::new(OnceLock::<Refusal>::new());
    let (mut sink, stream) = socket.split();
    let init = Init {
        sockets: sockets.clone(),
        cookie,
        pending,
        state: state.clone(),
        end: end.clone(),
        refused: refused.clone(),
    };
    let input = admitted(stream, state.clone(), breached.clone());
    let mut output = async_graphql::http::WebSocket::new(sockets.executor.clone(), input, protocol)
        .on_connection_init(move |payload| init.verdict(payload))
        .map(outgoing(state.clone(), refused));
    let close = converse(&mut sink, &mut output, &state, &end, &breached).await;
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        send(&mut sink, Message::Close(Some(frame))).await;
    }
}

/// The client's messages that [`admit`] lets through; a breach of the
/// protocol or a broken input is recorded and signalled instead.
fn admitted(
    stream: SplitStream<WebSocket>,
    state: Arc<Mutex<Conversation>>,
    breached: Arc<Notify>,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let (on_input, on_breach) = (state.clone(), breached.clone());
    stream
        .take_while(move |message| {
            if message.is_err() {
                lock(&on_input).broken = true;
                on_breach.notify_one();
            }
            future::ready(message.is_ok())
        })
        .filter_map(move |message| {
            future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                    let data = message.into_data();
                    let mut state = lock(&state);
                    match admit(&mut state, &data) {
                        None => Some(data),
                        Some(breach) => {
                            state.breach = Some(breach);
                            breached.notify_one();
                            None
                        }
                    }
                }
                _ => None,
            })
        })
}

/// What `connection_init` needs to accept or refuse the connection.
struct Init {
    sockets: Arc<Sockets>,
    cookie: Option<String>,
    /// The address's place among connections not yet initialised.
    pending: Option<Place<IpAddr>>,
    state: Arc<Mutex<Conversation>>,
    end: ConnectionEnd,
    refused: Arc<OnceLock<Refusal>>,
}

impl Init {
    /// The connection's data if its session is live and within its limits.
    /// A refused session or limit records the close code the connection
    /// ends with; with no verdict (the database is down) async-graphql's
    /// 1002 stands.
    async fn verdict(self, payload: serde_json::Value) -> async_graphql::Result<Data> {
        // No longer a stranger: the address's pending place is free.
        drop(self.pending);
        let token = payload_token(&payload).or(self.cookie);
        let current = match verify(&self.sockets.auth, token).await {
            Ok(current) => current,
            Err(AppError::Unauthenticated(failure)) => {
                let _ = self.refused.set(Refusal {
                    code: 4403,
                    reason: failure.reason(),
                });
                return Err(AppError::Unauthenticated(failure).into());
            }
            // No verdict on the token (the database is down): the
            // connection fails, and the client retries.
            Err(err) => return Err(err.into()),
        };
        let limits = &self.sockets.limits;
        let Some(slot) = limits.take(current.session.id, current.account.id) else {
            let _ = self.refused.set(Refusal {
                code: 4429,
                reason: "TOO_MANY_CONNECTIONS",
            });
            return Err("Too many connections for this session or account".into());
        };
        let mut state = lock(&self.state);
        state.accepted = true;
        state.idle_since = Some(Instant::now());
        let mut data = Data::default();
        data.insert(current);
        data.insert(self.end);
        // Lives as long as the connection.
        data.insert(slot);
        Ok(data)
    }
}

/// The server's messages as frames: each followed, and the close that
/// refuses `connection_init` given the code [`Init::verdict`] chose.
fn outgoing(
    state: Arc<Mutex<Conversation>>,
    refused: Arc<OnceLock<Refusal>>,
) -> impl FnMut(WsMessage) -> Message {
    move |message| match message {
        WsMessage::Text(text) => {
            follow(&mut lock(&state), &text);
            Message::Text(text.into())
        }
        WsMessage::Close(code, reason) => {
            let (code, reason) = match refused.get() {
                Some(refusal) if code == 1002 => (refusal.code, refusal.reason.to_owned()),
                _ => (code, reason),
            };
            Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))
        }
    }
}

/// Sends `output` until the connection ends, pinging on the way; the close
/// code and reason to end with, if the server ends it.
async fn converse(
    sink: &mut SplitSink<WebSocket, Message>,
    output: &mut (impl Stream<Item = Message> + Unpin),
    state: &Mutex<Conversation>,
    end: &ConnectionEnd,
    breached: &Notify,
) -> Option<(u16, String)> {
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        tokio::select! {
            message = output.next() => match message {
                Some(message) => {
                    if !send(sink, message).await {
                        return None;
                    }
                    if let Some(reason) = end.0.get().filter(|_| lock(state).active.is_empty()) {
                        return Some((4403, (*reason).to_owned()));
                    }
                }
                None => return None,
            },
            () = breached.notified() => {
                let mut state = lock(state);
                if let Some(breach) = state.breach.take() {
                    return Some(breach);
                }
                if state.broken {
                    return Some((1009, "Message too big or malformed".into()));
                }
            }
            () = &mut init_deadline, if !lock(state).accepted => {
                return Some((4408, "Connection initialisation timeout".into()));
            }
            _ = keepalive.tick() => {
                let idle = {
                    let state = lock(state);
                    state.idle_since.is_some_and(|since| since.elapsed() >= IDLE_TIMEOUT)
                };
                if idle {
                    return Some((1000, "No active subscription".into()));
                }
                if !send(sink, Message::Ping(Default::default())).await {
                    return None;
                }
            }
        }
    }
}

/// Sends one message within [`SEND_TIMEOUT`]; false if the peer is gone
/// or does not read.
async fn send(sink: &mut SplitSink<WebSocket, Message>, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await,
        Ok(Ok(()))
    )
}

/// Checks a client message against the protocol and the limits; the
/// breach, if any, with its close code.
fn admit(state: &mut Conversation, data: &[u8]) -> Option<(u16, String)> {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(data) else {
        return None; // async-graphql answers malformed messages itself
    };
    let id = envelope.id.unwrap_or_default();
    match envelope.kind.as_str() {
        "subscribe" if !state.accepted => Some((4401, "Unauthorized".into())),
        "subscribe" if state.active.contains(&id) => Some((
            4409,
            format!("Subscriber for {} already exists", truncate(&id)),
        )),
        "subscribe" if state.active.len() >= MAX_OPERATIONS => {
            Some((4429, "TOO_MANY_OPERATIONS".into()))
        }
        "subscribe" => {
            state.active.insert(id);
            state.idle_since = None;
            None
        }
        "complete" => {
            finished(state, &id);
            None
        }
        _ => None,
    }
}

/// Follows the server's messages: an operation that completes or fails is
/// no longer active.
fn follow(state: &mut Conversation, text: &str) {
    let Ok(envelope) = serde_json::from_str::<Envelope>(text) else {
        return;
    };
    let id = envelope.id.unwrap_or_default();
    match envelope.kind.as_str() {
        "complete" | "error" => finished(state, &id),
        _ => {}
    }
}

fn finished(state: &mut Conversation, id: &str) {
    state.active.remove(id);
    if state.active.is_empty() && state.accepted {
        state.idle_since = Some(Instant::now());
    }
}

/// An id as echoed in a close reason, which may hold at most 123 bytes.
fn truncate(id: &str) -> &str {
    let mut end = id.len().min(64);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    &id[..end]
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The session a connection's token names, verified now. Passive: a
/// socket held open is not activity.
async fn verify(auth: &AuthService, raw: Option<String>) -> Result<CurrentSession, AppError> {
    let raw = raw.ok_or(AppError::Unauthenticated(AuthFailure::MissingToken))?;
    let token =
        SessionToken::parse(&raw).ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
    auth.authenticate(&token, auth.clock().now(), true).await
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `{"authorization": "Bearer gth_…"}` or `{"token": "gth_…"}`.
fn payload_token(payload: &serde_json::Value) -> Option<String> {
    let field = |name: &str| payload.get(name).and_then(|v| v.as_str());
    field("authorization")
        .or_else(|| field("Authorization"))
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_owned())
        .or_else(|| field("token").map(str::to_owned))
}

/// The cookie's token, from an allowed origin only.
fn cookie_token(sockets: &Sockets, headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?;
    if !sockets.origins.contains(origin) {
        return None;
    }
    sockets.cookie?.read(headers).map(str::to_owned)
}
