//! `GET /metrics`: Prometheus text. On the main listener it answers only a
//! scraper on the same host, talking to Gatehouse directly: a loopback peer,
//! a loopback client, and no forwarding header (a same-host reverse proxy
//! is a loopback peer too, and would otherwise serve it to the world).
//! `GATEHOUSE_METRICS_LISTEN` serves it on an address of its own, for a
//! private network.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::client_address::{ClientAddress, is_forwarded};
use crate::measure;

/// `/metrics` for anyone who can reach its listener.
pub fn routes() -> Router {
    Router::new().route("/metrics", get(render))
}

/// `/metrics` for direct loopback scrapers only, on the public listener.
pub fn loopback_routes() -> Router {
    Router::new().route("/metrics", get(render_for_loopback))
}

async fn render() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        measure::handle().render(),
    )
        .into_response()
}

async fn render_for_loopback(request: Request) -> Response {
    let extensions = request.extensions();
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let client = extensions
        .get::<ClientAddress>()
        .map(|ClientAddress(ip)| *ip);
    let direct = !is_forwarded(request.headers());
    let loopback =
        |ip: Option<std::net::IpAddr>| ip.is_some_and(|ip| ip.to_canonical().is_loopback());
    if !(direct && loopback(peer) && loopback(client)) {
        return StatusCode::NOT_FOUND.into_response();
    }
    render().await
}
