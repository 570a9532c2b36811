//! The session guard: runs before any resolver, on every GraphQL request.
//! A token that is sent must be valid, live and unrevoked, or the request is
//! refused with 401 and the reason; resolvers only ever see the outcome.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use chrono::{DateTime, Utc};
use http_body_util::LengthLimitError;

use crate::context::{Client, CurrentSession, RequestContext};
use crate::domain::token::SessionToken;
use crate::error::{AppError, AuthFailure};
use crate::http::MAX_BODY_BYTES;
use crate::http::client_address::ClientAddress;
use crate::http::graphql::is_json;
use crate::http::negotiate::{Format, negotiate};
use crate::http::response;
use crate::measure;
use crate::services::auth::AuthService;
use crate::session_cookie::SessionCookie;

/// What the guard needs; shared, since axum clones a middleware's state
/// for every request.
pub struct Guard {
    pub auth: AuthService,
    /// Set when sessions may also arrive in a cookie.
    pub cookie: Option<SessionCookie>,
}

/// Where the request's token came from.
enum Credential<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

/// Reads the whole request, takes its one instant, authenticates it at
/// that instant, then hands a [`RequestContext`] to the schema.
pub async fn authenticate_request(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    // The instant is taken once the body has arrived: a client that sends
    // its headers and then trickles its body must not be judged at the
    // moment its headers came, when its session may still have been live.
    let format = negotiate(request.headers(), false);
    let mut request = match buffer_body(request).await {
        Ok(request) => request,
        Err(err) => return response::error(err, format),
    };
    let now = guard.auth.clock().now();
    let cookie_allowed = cookie_allowed(&request);
    let known_device = guard
        .cookie
        .filter(|_| cookie_allowed.is_ok())
        .and_then(|cookie| cookie.read_device(request.headers()))
        .map(str::to_owned);
    let passive = match passive(request.headers()) {
        Ok(passive) => passive,
        Err(err) => return response::error(err, format),
    };
    let checked = Checked {
        cookie_allowed,
        passive,
        format,
        now,
    };
    let session = match verified_session(&guard, request.headers(), checked).await {
        Ok(session) => {
            measure::verdict_accepted(session.is_some());
            session
        }
        Err(response) => return response,
    };
    let client = Client {
        known_device,
        user_agent: request.headers().get(header::USER_AGENT).cloned(),
        peer: request
            .extensions()
            .get::<ClientAddress>()
            .map(|ClientAddress(ip)| *ip),
    };
    let cookie_names_session = session.is_some() && cookie_names_session(&guard, &request);
    // In an Arc: the handler's extractor clones what it takes.
    request.extensions_mut().insert(Arc::new(RequestContext {
        now,
        session,
        client,
        passive,
        cookie_names_session,
    }));
    next.run(request).await
}

/// The session the request's credential names, verified at `now`, or the
/// whole response refusing it.
async fn verified_session(
    guard: &Guard,
    headers: &HeaderMap,
    checked: Checked,
) -> Result<Option<CurrentSession>, Response> {
    let Checked {
        cookie_allowed,
        passive,
        format,
        now,
    } = checked;
    let refuse = |err: AppError| {
        measure::verdict_refused(&err);
        response::error(err, format)
    };
    match credential(headers, guard.cookie) {
        Err(failure) => Err(refuse(AppError::Unauthenticated(failure))),
        Ok(Credential::None) => Ok(None),
        Ok(Credential::Bearer(raw)) => match verify_token(guard, raw, now, passive).await {
            Ok(current) => Ok(Some(current)),
            Err(err) => Err(refuse(err)),
        },
        Ok(Credential::Cookie(raw)) => match cookie_allowed {
            Err(err) => Err(refuse(err)),
            Ok(()) => match verify_token(guard, raw, now, passive).await {
                Ok(current) => Ok(Some(current)),
                Err(err) => {
                    let mut response = refuse(err);
                    if let Some(cookie) = guard.cookie {
                        // A dead cookie is cleared so the browser stops sending it.
                        response
                            .headers_mut()
                            .append(header::SET_COOKIE, cookie.clear());
                    }
                    Err(response)
                }
            },
        },
    }
}

/// The request with its body read into memory, within the body limit.
async fn buffer_body(request: Request) -> Result<Request, AppError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|err| {
            if err.into_inner().is::<LengthLimitError>() {
                AppError::PayloadTooLarge
            } else {
                AppError::BadRequest("The request body could not be read".into())
            }
        })?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Verifies a raw token at `now`: well-formed, known, live and unrevoked.
async fn verify_token(
    guard: &Guard,
    raw: &str,
    now: DateTime<Utc>,
    passive: bool,
) -> Result<CurrentSession, AppError> {
    let token =
        SessionToken::parse(raw).ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
    guard.auth.authenticate(&token, now, passive).await
}

/// What the guard read off the request before looking at its credential.
struct Checked {
    cookie_allowed: Result<(), AppError>,
    passive: bool,
    format: Format,
    now: DateTime<Utc>,
}

/// A request that declares itself not activity, such as a poll for an
/// unread count: checked by every rule, but it slides nothing.
pub const PASSIVE_HEADER: &str = "gatehouse-passive";

fn passive(headers: &HeaderMap) -> Result<bool, AppError> {
    let Some(value) = headers.get(PASSIVE_HEADER) else {
        return Ok(false);
    };
    match value.to_str().map(str::trim) {
        Ok(v) if v == "1" || v.eq_ignore_ascii_case("true") => Ok(true),
        Ok(v) if v == "0" || v.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(AppError::BadRequest(format!(
            "{PASSIVE_HEADER} must be true or false"
        ))),
    }
}

/// Whether the session cookie names the session the request was verified
/// under: the cookie was its credential, or holds the bearer's own token.
fn cookie_names_session(guard: &Guard, request: &Request) -> bool {
    let headers = request.headers();
    let Some(in_cookie) = guard.cookie.and_then(|c| c.read(headers)) else {
        return false;
    };
    match credential(headers, guard.cookie) {
        Ok(Credential::Cookie(_)) => true,
        Ok(Credential::Bearer(token)) => token == in_cookie,
        Ok(Credential::None) | Err(_) => false,
    }
}

/// The token from `Authorization: Bearer …`, else from the session cookie:
/// with both, the bearer is the credential and the cookie is not read.
/// Any other `Authorization` is an invalid token, not silently anonymous.
fn credential(
    headers: &HeaderMap,
    cookie: Option<SessionCookie>,
) -> Result<Credential<'_>, AuthFailure> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthFailure::InvalidToken)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::InvalidToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthFailure::InvalidToken);
        }
        return Ok(Credential::Bearer(token.trim()));
    }
    Ok(cookie
        .and_then(|c| c.read(headers))
        .map_or(Credential::None, Credential::Cookie))
}

/// A cookie rides along on cross-site requests, so it is honoured only on
/// a request that a cross-site page cannot send without a CORS preflight:
/// one that declares a JSON body (Apollo Client does, even on GET), or that
/// carries [`PREFLIGHT_HEADER`].
fn cookie_allowed(request: &Request) -> Result<(), AppError> {
    let headers = request.headers();
    if request.method() == Method::POST && !is_json(headers) {
        Err(AppError::UnsupportedMediaType)
    } else if is_json(headers) || headers.contains_key(PREFLIGHT_HEADER) {
        Ok(())
    } else {
        Err(AppError::PreflightRequired)
    }
}

/// A header with no meaning but that a cross-site page cannot set without
/// the preflight that CORS refuses to origins not configured.
pub const PREFLIGHT_HEADER: &str = "gatehouse-preflight";
