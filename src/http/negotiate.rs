//! Picks the response's media type from the request's `Accept`, as GraphQL
//! over HTTP asks: `application/graphql-response+json` when the client
//! accepts it, `application/json` for `*/*`, for a missing `Accept` and for
//! clients that know nothing else, and the GraphiQL page only for a request
//! that asks for HTML by name, such as a browser navigation.

use axum::http::{HeaderMap, header};

/// What a `/graphql` response is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/graphql-response+json`: the status says whether the
    /// document ran (2xx) or was refused before it could (4xx).
    GraphQLResponse,
    /// `application/json`: a refused document is still a 200, for clients
    /// that read only the body.
    Json,
    /// The GraphiQL page.
    Html,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::GraphQLResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
        }
    }
}

/// The best format the request accepts; `html` says whether the page is on
/// offer. An `Accept` that names nothing Gatehouse serves gets
/// `application/json` rather than a 406, so its error can still be read.
pub fn negotiate(headers: &HeaderMap, html: bool) -> Format {
    let mut best = (0.0, Format::Json);
    let ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    let mut any = false;
    for range in ranges {
        let mut parts = range.split(';');
        let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if mime.is_empty() {
            continue;
        }
        any = true;
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, q)| {
                q.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
            });
        // A weight outside 0..=1 (or NaN) makes the range meaningless.
        let Some(q) = q else {
            continue;
        };
        let offered: &[Format] = match mime.as_str() {
            "application/graphql-response+json" => &[Format::GraphQLResponse],
            "application/json" | "application/*" | "*/*" => &[Format::Json],
            "text/html" if html => &[Format::Html],
            _ => &[],
        };
        for &format in offered {
            // Ties go to the format listed first in `rank`.
            if q > best.0 || (q == best.0 && q > 0.0 && rank(format) < rank(best.1)) {
                best = (q, format);
            }
        }
    }
    if !any { Format::Json } else { best.1 }
}

fn rank(format: Format) -> u8 {
    match format {
        Format::GraphQLResponse => 0,
        Format::Json => 1,
        Format::Html => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: Option<&str>, html: bool) -> Format {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, accept.parse().unwrap());
        }
        negotiate(&headers, html)
    }

    #[test]
    fn clients_get_the_type_they_prefer() {
        use Format::*;
        let cases = [
            (None, Json),
            (Some("*/*"), Json),
            (Some("application/json"), Json),
            (Some("application/graphql-response+json"), GraphQLResponse),
            // Apollo Client 4
            (
                Some("application/graphql-response+json,application/json;q=0.9"),
                GraphQLResponse,
            ),
            // urql 6
            (
                Some(
                    "application/graphql-response+json, application/graphql+json, \
                     application/json, text/event-stream, multipart/mixed",
                ),
                GraphQLResponse,
            ),
            (
                Some("application/json, application/graphql-response+json"),
                GraphQLResponse,
            ),
            (
                Some("application/json, application/graphql-response+json;q=0.5"),
                Json,
            ),
            // A browser navigation.
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Html,
            ),
            (Some("text/plain"), Json),
            (Some("application/json;q=0"), Json),
            // Parameter names ignore case; nonsense weights count for nothing.
            (Some("text/html;Q=0.1, application/json;q=0.5"), Json),
            (Some("text/html;q=NaN, application/json;q=0.5"), Json),
            (Some("text/html;q=1e40, application/json;q=0.5"), Json),
        ];
        for (accept, expected) in cases {
            assert_eq!(pick(accept, true), expected, "{accept:?}");
        }
    }

    #[test]
    fn html_is_offered_only_with_the_page() {
        let browser = Some("text/html,application/xhtml+xml,*/*;q=0.8");
        assert_eq!(pick(browser, true), Format::Html);
        assert_eq!(pick(browser, false), Format::Json);
        assert_eq!(pick(Some("*/*"), true), Format::Json);
    }
}
