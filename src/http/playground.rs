//! GraphiQL at `/graphql`, for a browser that asks for HTML, served entirely
//! from the binary so it works on a network with no way out. Vendored files and their versions are in
//! `assets/graphiql/`; `assets/graphiql/update.sh` refreshes them.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::negotiate::{Format, negotiate};

/// Everything the page may load comes from this server; inline styles are
/// GraphiQL's own.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The page and its assets, under `/graphql` and `/graphiql/…`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let asset = |body: &'static [u8], content_type: &'static str| {
        get(move || async move { serve(body, content_type, "public, max-age=86400") })
    };
    Router::new()
        .route(
            "/graphiql/graphiql.min.js",
            asset(include_bytes!("../../assets/graphiql/graphiql.min.js"), JS),
        )
        .route(
            "/graphiql/graphiql.min.css",
            asset(
                include_bytes!("../../assets/graphiql/graphiql.min.css"),
                CSS,
            ),
        )
        .route(
            "/graphiql/react.production.min.js",
            asset(
                include_bytes!("../../assets/graphiql/react.production.min.js"),
                JS,
            ),
        )
        .route(
            "/graphiql/react-dom.production.min.js",
            asset(
                include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
                JS,
            ),
        )
        .route(
            "/graphiql/gatehouse.js",
            asset(include_bytes!("graphiql.js"), JS),
        )
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Answers a browser navigation to `/graphql` with the page; every other
/// request goes on to the API, before the guard sees it.
pub async fn page_for_browsers(request: Request, next: Next) -> Response {
    let read = request.method() == Method::GET || request.method() == Method::HEAD;
    if read && negotiate(request.headers(), true) == Format::Html {
        return graphiql();
    }
    next.run(request).await
}

/// The GraphiQL page itself.
fn graphiql() -> Response {
    let mut response = serve(
        include_bytes!("graphiql.html"),
        "text/html; charset=utf-8",
        "no-cache",
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // The same URL answers API requests: a cache must tell them apart.
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

fn serve(body: &'static [u8], content_type: &'static str, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
