//! `sessionStatus` over graphql-ws, on `/graphql`. The session is verified
//! once, at `connection_init`, from the payload's token or from the cookie.
//! Browsers apply no CORS to WebSocket handshakes, so the cookie counts
//! only when `Origin` is one of `GATEHOUSE_CORS_ORIGINS`.

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(protocol) => protocol,
        Err(err) => return err.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(err) => return err.into_response(),
    };
    let cookie = cookie_token(&sockets, &parts.headers);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let auth = sockets.auth.clone();
            GraphQLWebSocket::new(socket, sockets.schema, protocol)
                .on_connection_init(move |payload| async move {
                    let raw = payload_token(&payload).or(cookie).ok_or_else(|| {
                        async_graphql::Error::from(AppError::Unauthenticated(
                            AuthFailure::MissingToken,
                        ))
                    })?;
                    let token = SessionToken::parse(&raw)
                        .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
                    let now = auth.clock().now();
                    // Passive: a socket held open is not activity.
                    let current = auth.authenticate(&token, now, true).await?;
                    let mut data = Data::default();
                    data.insert(current);
                    Ok(data)
                })
                .serve()
        })
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
