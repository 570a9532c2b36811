//! `sessionStatus` over graphql-ws, on `/graphql`. The session is verified
//! once, at `connection_init`, from the payload's token or from the cookie.
//! Browsers apply no CORS to WebSocket handshakes, so the cookie counts
//! only when `Origin` is one of `GATEHOUSE_CORS_ORIGINS`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::futures_util::{SinkExt, StreamExt, future};
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::context::CurrentSession;
use crate::domain::token::SessionToken;
use crate::error::{AppError, AuthFailure};
use crate::http::MAX_BODY_BYTES;
use crate::http::socket_executor::SocketExecutor;
use crate::services::auth::AuthService;
use crate::session_cookie::SessionCookie;

/// How long a connection may go without `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the WebSocket endpoint needs.
#[derive(Clone)]
pub struct Sockets {
    pub executor: SocketExecutor,
    pub auth: AuthService,
    pub cookie: Option<SessionCookie>,
    pub origins: Vec<HeaderValue>,
    pub limits: Limits,
}

/// The bounds on open connections.
#[derive(Clone)]
pub struct Limits {
    /// Connections this node holds at once.
    node: Arc<Semaphore>,
    /// Connections one session may hold at once (its tabs).
    per_session: usize,
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Limits {
    pub fn new(node: usize, per_session: usize) -> Self {
        Self {
            node: Arc::new(Semaphore::new(node)),
            per_session,
            open: Arc::default(),
        }
    }

    /// A place for one more connection of `session`, held until dropped.
    fn take(&self, session: Uuid) -> Option<SessionSlot> {
        let mut open = self.open.lock().ok()?;
        let count = open.entry(session).or_default();
        if *count >= self.per_session {
            return None;
        }
        *count += 1;
        Some(SessionSlot {
            session,
            open: self.open.clone(),
        })
    }
}

/// One connection's place among its session's; freed with the connection.
struct SessionSlot {
    session: Uuid,
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock()
            && let Some(count) = open.get_mut(&self.session)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.session);
            }
        }
    }
}

/// Why a connection was closed at `connection_init`, and with which code.
struct Refusal {
    code: u16,
    reason: &'static str,
}

/// Takes a WebSocket handshake to graphql-ws; any other request goes on.
pub async fn upgrade_or_next(
    State(sockets): State<Sockets>,
    request: Request,
    next: Next,
) -> Response {
    if !is_upgrade(request.headers()) {
        return next.run(request).await;
    }
    let (mut parts, _) = request.into_parts();
    let Some(protocol) = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
    else {
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
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "This node holds as many live connections as it may; try again shortly",
        )
            .into_response();
    };
    let cookie = cookie_token(&sockets, &parts.headers);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // tungstenite's defaults (128 KiB read buffer, large frames) would
        // cost 150 KiB per idle connection; a subscriber sends a few
        // hundred bytes, and no message may be larger than an HTTP body.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| async move {
            serve(socket, sockets, protocol, cookie).await;
            drop(permit);
        })
}

/// Runs one connection. A refused `connection_init` closes it with 4403
/// (graphql-ws's Forbidden) and the reason, or 4429 past the session's
/// limit, where async-graphql would send a generic 1002; no
/// `connection_init` within [`INIT_TIMEOUT`] closes it with 4408.
async fn serve(
    socket: WebSocket,
    sockets: Sockets,
    protocol: WebSocketProtocols,
    cookie: Option<String>,
) {
    let refused = Arc::new(OnceLock::<Refusal>::new());
    let initialised = Arc::new(AtomicBool::new(false));
    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|message| future::ready(message.is_ok()))
        .filter_map(|message| {
            future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let auth = sockets.auth.clone();
    let limits = sockets.limits.clone();
    let on_refusal = refused.clone();
    let on_init = initialised.clone();
    let mut output = async_graphql::http::WebSocket::new(sockets.executor, input, protocol)
        .on_connection_init(move |payload| async move {
            on_init.store(true, Ordering::Relaxed);
            let session = verify(&auth, payload_token(&payload).or(cookie)).await;
            match session {
                Ok(current) => {
                    let Some(slot) = limits.take(current.session.id) else {
                        let _ = on_refusal.set(Refusal {
                            code: 4429,
                            reason: "TOO_MANY_CONNECTIONS",
                        });
                        return Err("Too many connections for this session".into());
                    };
                    let mut data = Data::default();
                    data.insert(current);
                    // Lives as long as the connection.
                    data.insert(slot);
                    Ok(data)
                }
                Err(AppError::Unauthenticated(failure)) => {
                    let _ = on_refusal.set(Refusal {
                        code: 4403,
                        reason: failure.reason(),
                    });
                    Err(AppError::Unauthenticated(failure).into())
                }
                // No verdict on the token (the database is down): the
                // connection fails, and the client retries.
                Err(err) => Err(err.into()),
            }
        })
        .map(|message| match message {
            WsMessage::Text(text) => Message::Text(text.into()),
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
        });
    let deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            message = output.next() => match message {
                Some(message) => {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            () = &mut deadline, if !initialised.load(Ordering::Relaxed) => {
                let close = CloseFrame {
                    code: 4408,
                    reason: "Connection initialisation timeout".into(),
                };
                let _ = sink.send(Message::Close(Some(close))).await;
                break;
            }
        }
    }
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
