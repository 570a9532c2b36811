//! The optional HttpOnly session cookie, for SPAs that would rather not keep
//! the token where scripts can read it.

use axum::http::{HeaderMap, HeaderValue, header};

/// How the session cookie is named and flagged.
#[derive(Clone, Copy, Debug)]
pub struct SessionCookie {
    secure: bool,
}

impl SessionCookie {
    /// `secure: false` only for plain-http development on localhost.
    pub fn new(secure: bool) -> Self {
        Self { secure }
    }

    /// `__Host-` pins the cookie to this host and path, but needs `Secure`.
    pub fn name(&self) -> &'static str {
        if self.secure {
            "__Host-gatehouse_session"
        } else {
            "gatehouse_session"
        }
    }

    /// A `Set-Cookie` that stores `token` for `max_age_secs`.
    pub fn set(&self, token: &str, max_age_secs: i64) -> Option<HeaderValue> {
        self.header(token, max_age_secs.max(0))
    }

    /// A `Set-Cookie` that stores a known-device token for `max_age_secs`.
    /// It is not a session: logging out keeps it.
    pub fn set_device(&self, token: &str, max_age_secs: i64) -> Option<HeaderValue> {
        self.header_named(self.device_name(), token, max_age_secs.max(0))
    }

    /// The known-device token from the request's cookie, if it carries one.
    pub fn read_device<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        read_named(headers, self.device_name())
    }

    fn device_name(&self) -> &'static str {
        if self.secure {
            "__Host-gatehouse_device"
        } else {
            "gatehouse_device"
        }
    }

    /// A `Set-Cookie` that deletes the cookie.
    pub fn clear(&self) -> HeaderValue {
        self.header("", 0)
            .unwrap_or_else(|| HeaderValue::from_static("gatehouse_session=; Max-Age=0"))
    }

    /// The token from the request's cookie, if it carries one.
    pub fn read<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        read_named(headers, self.name())
    }

    fn header(&self, value: &str, max_age: i64) -> Option<HeaderValue> {
        self.header_named(self.name(), value, max_age)
    }

    fn header_named(&self, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        ))
        .ok()
    }
}

/// The value of the cookie `name` in the request, if any.
fn read_named<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookie_is_host_prefixed_and_locked_down() {
        let value = SessionCookie::new(true).set("gth_x", 60).unwrap();
        assert_eq!(
            value,
            "__Host-gatehouse_session=gth_x; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn reads_its_own_cookie_among_others() {
        let cookie = SessionCookie::new(false);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gatehouse_session=gth_abc; b=2"),
        );
        assert_eq!(cookie.read(&headers), Some("gth_abc"));
        assert_eq!(SessionCookie::new(true).read(&headers), None);
    }
}
