//! What the guard decided about one request, handed to every resolver. It
//! belongs to neither the HTTP layer that builds it nor the GraphQL layer
//! that reads it.

use std::fmt;
use std::net::IpAddr;

use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use entity::{session, user};
use uuid::Uuid;

use crate::domain::client::ClientInfo;
use crate::domain::second_factor::{Level, Methods, Restriction};
use crate::domain::session_policy::Expiry;

/// The longest `User-Agent` kept on a session.
const MAX_USER_AGENT: usize = 512;

/// One request as the guard saw it: its instant, its session, its client.
#[derive(Debug)]
pub struct RequestContext {
    /// The one instant at which everything in this request is judged.
    pub now: DateTime<Utc>,
    /// The verified, live session, when a valid token came with the request.
    pub session: Option<CurrentSession>,
    pub client: Client,
    /// Sent with `gatehouse-passive`: checked like any other, but it is not
    /// activity, so it slides nothing.
    pub passive: bool,
    /// The session cookie names [`RequestContext::session`]: it was the
    /// credential, or carries the very token the bearer header did. Only
    /// then may a sign-out clear it; a cookie for another session stays.
    pub cookie_names_session: bool,
}

/// The caller's session as the guard verified it, with the expiry the
/// database holds after the guard's activity write.
#[derive(Clone, Debug)]
pub struct CurrentSession {
    pub account: Account,
    pub session: SessionRecord,
    pub expiry: Expiry,
    /// What the second-factor rule leaves this session unable to do yet.
    pub restriction: Option<Restriction>,
}

/// An account without its password hash.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    /// Whether a second factor is on.
    pub second_factor: bool,
}

impl From<&user::Model> for Account {
    fn from(user: &user::Model) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            email_verified: user.email_verified_at.is_some(),
            created_at: user.created_at,
            second_factor: user.second_factor_at.is_some(),
        }
    }
}

/// A stored session without its token hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// When a password was last proven on the session.
    pub authenticated_at: DateTime<Utc>,
    pub remember_me: bool,
    /// Its end is recorded: it stays ended whatever the settings say later.
    pub end_recorded: bool,
    /// What proved its identity when it opened or last stepped up.
    pub methods: Methods,
    pub level: Level,
}

impl From<&session::Model> for SessionRecord {
    fn from(session: &session::Model) -> Self {
        Self {
            id: session.id,
            created_at: session.created_at,
            last_activity_at: session.last_activity_at,
            revoked_at: session.revoked_at,
            revoked_reason: session.revoked_reason.clone(),
            user_agent: session.user_agent.clone(),
            ip_address: session.ip_address.clone(),
            // Written by every insert; only rows from before step-up existed
            // lack it, and those were backfilled with their creation.
            authenticated_at: session.authenticated_at.unwrap_or(session.created_at),
            remember_me: session.remember_me,
            end_recorded: session.end_recorded,
            methods: Methods::parse(&session.methods),
            level: Level::from_stored(session.aal),
        }
    }
}

/// A known-device token as the client sent it: in the request, or in the
/// cookie (which scripts cannot read).
#[derive(Clone, Copy)]
pub struct PresentedDevice<'a> {
    pub token: &'a str,
    pub in_cookie: bool,
}

impl<'a> PresentedDevice<'a> {
    /// The token in the request's input if there is one, else the cookie's.
    pub fn of(input: Option<&'a str>, client: &'a Client) -> Option<Self> {
        let given = input.map(|token| Self {
            token,
            in_cookie: false,
        });
        given.or_else(|| {
            client.known_device.as_deref().map(|token| Self {
                token,
                in_cookie: true,
            })
        })
    }
}

/// Where a request came from, as it arrived. Only sign-ins record it, so it
/// becomes a [`ClientInfo`] there and costs other requests nothing.
#[derive(Default)]
pub struct Client {
    pub user_agent: Option<HeaderValue>,
    /// The client address as `http::client_address` resolved it (behind a
    /// trusted proxy, the client it forwarded for), not the raw TCP peer.
    pub peer: Option<IpAddr>,
    /// The known-device cookie, where cookies are on and the request could
    /// not have been forged cross-site; only a sign-in reads it.
    pub known_device: Option<String>,
}

impl Client {
    /// What a new session records, and what throttling keys on.
    pub fn info(&self) -> ClientInfo {
        ClientInfo {
            user_agent: self
                .user_agent
                .as_ref()
                // UTF-8, not `to_str`, which refuses anything but ASCII.
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
            ip: self.peer,
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
