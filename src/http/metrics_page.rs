//! `GET /metrics`: Prometheus text. On the main listener it answers only
//! loopback peers (a scraper on the same host); `GATEHOUSE_METRICS_LISTEN`
//! serves it on an address of its own, for a private network.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::measure;

/// `/metrics` for anyone who can reach its listener.
pub fn routes() -> Router {
    Router::new().route("/metrics", get(render))
}

/// `/metrics` for loopback peers only, on the public listener.
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

async fn render_for_loopback(ConnectInfo(peer): ConnectInfo<SocketAddr>) -> Response {
    if !peer.ip().to_canonical().is_loopback() {
        return StatusCode::NOT_FOUND.into_response();
    }
    render().await
}
