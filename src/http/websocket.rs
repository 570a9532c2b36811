//! `sessionStatus` over graphql-ws, on `/graphql`. The session is verified
//! once, at `connection_init`, from the payload's token or from the cookie.
//! Browsers apply no CORS to WebSocket handshakes, so the cookie counts
//! only when `Origin` is one of `GATEHOUSE_CORS_ORIGINS`.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use async_graphql::Data;
use async_graphql::futures_util::{SinkExt, StreamExt, future};
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::context::CurrentSession;
use crate::domain::token::SessionToken;
use crate::error::{AppError, AuthFailure};
use crate::graphql::schema::GatehouseSchema;
use crate::services::auth::AuthService;
use crate::session_cookie::SessionCookie;

/// What the WebSocket endpoint needs.
#[derive(Clone)]
pub struct Sockets {
    pub schema: GatehouseSchema,
    pub auth: AuthService,
    pub cookie: Option<SessionCookie>,
    pub origins: Vec<HeaderValue>,
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
    let cookie = cookie_token(&sockets, &parts.headers);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(socket, sockets, protocol, cookie))
}

/// Runs one connection. A refused `connection_init` closes it with 4403
/// (graphql-ws's Forbidden) and the reason, where async-graphql would
/// send a generic 1002.
async fn serve(
    socket: WebSocket,
    sockets: Sockets,
    protocol: WebSocketProtocols,
    cookie: Option<String>,
) {
    let refused = Arc::new(OnceLock::<AuthFailure>::new());
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
    let on_refusal = refused.clone();
    let mut output = async_graphql::http::WebSocket::new(sockets.schema, input, protocol)
        .on_connection_init(move |payload| async move {
            let session = verify(&auth, payload_token(&payload).or(cookie)).await;
            match session {
                Ok(current) => {
                    let mut data = Data::default();
                    data.insert(current);
                    Ok(data)
                }
                Err(AppError::Unauthenticated(failure)) => {
                    let _ = on_refusal.set(failure);
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
                    Some(failure) if code == 1002 => (4403, failure.reason().to_owned()),
                    _ => (code, reason),
                };
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }))
            }
        });
    while let Some(message) = output.next().await {
        if sink.send(message).await.is_err() {
            break;
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
