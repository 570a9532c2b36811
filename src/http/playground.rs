//! `GET /graphql`: GraphiQL, for people exploring the API in a browser.

use async_graphql::http::GraphiQLSource;
use axum::response::Html;

/// The GraphiQL page, pointed at this server's endpoint.
pub async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}
