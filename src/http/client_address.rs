//! The client's address, resolved once per request from the TCP peer and,
//! from a trusted reverse proxy only, its forwarding headers. Everything
//! that keys on a client (throttling, the address a session records, the
//! WebSocket per-address limit) reads [`ClientAddress`], never the peer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::domain::forwarded;

/// The request's client, as [`resolve`] decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The headers by which proxies say whom they forward for (the common
/// ones, so that `/metrics` is not relayed by a proxy that uses another).
const FORWARDING_HEADERS: [&str; 7] = [
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "forwarded-for",
    "cf-connecting-ip",
];

/// Puts the request's [`ClientAddress`] into its extensions. A request with
/// no known peer (a router served without connect info) gets none.
pub async fn resolve(
    State(trusted): State<Arc<[IpNet]>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let client = client_of(peer, &trusted, request.headers());
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

/// Whether the request says it was forwarded by a proxy, believed or not.
pub fn is_forwarded(headers: &HeaderMap) -> bool {
    FORWARDING_HEADERS
        .iter()
        .any(|name| headers.contains_key(HeaderName::from_static(name)))
}

fn client_of(peer: IpAddr, trusted: &[IpNet], headers: &HeaderMap) -> IpAddr {
    if trusted.is_empty() {
        return peer.to_canonical();
    }
    // A header that is not text is garbage, and garbage means the peer.
    let lines = |name: &str| -> Option<Vec<&str>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().ok())
            .collect()
    };
    match (lines("x-forwarded-for"), lines("forwarded")) {
        (Some(xff), Some(fwd)) => forwarded::client_address(peer, trusted, &xff, &fwd),
        _ => peer.to_canonical(),
    }
}
