//! What a sign-in records about where it came from.

use std::net::IpAddr;

/// The client of a sign-in: kept on the session, and keyed on by throttling.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
}
