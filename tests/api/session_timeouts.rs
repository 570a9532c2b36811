//! The seed suite (SESS-01 to SESS-06), each case twice: the seed's way, by
//! back-dating timestamps under the default 30m/12h policy, and in real time
//! with an idle timeout of 2 s and an absolute one of 6 s.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokio::time::sleep;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with, timestamp};

const SHORT_IDLE: Duration = Duration::from_secs(2);
const SHORT_ABSOLUTE: Duration = Duration::from_secs(6);

/// SESS-01: a fresh session is accepted.
#[tokio::test]
async fn sess_01_fresh_session_is_accepted() {
    let app = spawn_app().await;
    let (email, _, _) = app.signed_in_user().await;
    let token = app.login(&email, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.me(&token).await;
    assert_eq!(me.data("me")["user"]["email"], email.as_str());
}

/// SESS-01 in real time.
#[tokio::test]
async fn sess_01_fresh_session_is_accepted_real_time() {
    let app = spawn_app_with(SHORT_IDLE, SHORT_ABSOLUTE).await;
    let (email, token, _) = app.signed_in_user().await;
    assert_eq!(
        app.me(&token).await.data("me")["user"]["email"],
        email.as_str()
    );
}

/// SESS-02: idle past the window → 401 IDLE_TIMEOUT.
#[tokio::test]
async fn sess_02_idle_session_is_rejected() {
    let app = spawn_app().await;
    let (_, token, session_id) = app.signed_in_user().await;
    app.backdate_session(&session_id, None, Some(Utc::now() - TimeDelta::hours(1)))
        .await;
    app.me(&token).await.assert_unauthenticated("IDLE_TIMEOUT");
}

/// SESS-02 in real time.
#[tokio::test]
async fn sess_02_idle_session_is_rejected_real_time() {
    let app = spawn_app_with(SHORT_IDLE, SHORT_ABSOLUTE).await;
    let (_, token, _) = app.signed_in_user().await;
    sleep(SHORT_IDLE + Duration::from_millis(300)).await;
    app.me(&token).await.assert_unauthenticated("IDLE_TIMEOUT");
}

/// SESS-03: created too long ago → 401, even though active a moment ago.
#[tokio::test]
async fn sess_03_absolute_cap_overrides_recent_activity() {
    let app = spawn_app().await;
    let (_, token, session_id) = app.signed_in_user().await;
    app.backdate_session(
        &session_id,
        Some(Utc::now() - TimeDelta::days(1)),
        Some(Utc::now()),
    )
    .await;
    app.me(&token)
        .await
        .assert_unauthenticated("ABSOLUTE_TIMEOUT");
}

/// SESS-03 in real time: a session kept busy still ends at the cap.
#[tokio::test]
async fn sess_03_absolute_cap_overrides_recent_activity_real_time() {
    let app = spawn_app_with(SHORT_IDLE, SHORT_ABSOLUTE).await;
    let (_, token, _) = app.signed_in_user().await;
    let signed_in_at = tokio::time::Instant::now();
    // Stay active well inside the idle window until just before the cap.
    while signed_in_at.elapsed() < SHORT_ABSOLUTE - Duration::from_millis(1500) {
        app.me(&token).await.data("me");
        sleep(Duration::from_millis(700)).await;
    }
    let last_ok = app.me(&token).await;
    last_ok.data("me");
    sleep(SHORT_ABSOLUTE.saturating_sub(signed_in_at.elapsed()) + Duration::from_millis(300)).await;
    app.me(&token)
        .await
        .assert_unauthenticated("ABSOLUTE_TIMEOUT");
}

/// SESS-04: a request inside the window succeeds and slides
/// `last_activity_at` to now.
#[tokio::test]
async fn sess_04_request_slides_last_activity() {
    let app = spawn_app().await;
    let (_, token, session_id) = app.signed_in_user().await;
    let backdated = Utc::now() - TimeDelta::seconds(10);
    app.backdate_session(&session_id, None, Some(backdated))
        .await;

    app.me(&token).await.data("me");

    let row = app.session_row(&session_id).await;
    assert!(
        row.last_activity_at > backdated,
        "activity was not recorded"
    );
    let lag = Utc::now() - row.last_activity_at;
    assert!(
        lag < TimeDelta::seconds(5),
        "last_activity_at lags by {lag}"
    );
}

/// SESS-04 in real time: requests keep a session alive past the idle timeout.
#[tokio::test]
async fn sess_04_request_slides_last_activity_real_time() {
    let app = spawn_app_with(SHORT_IDLE, SHORT_ABSOLUTE).await;
    let (_, token, session_id) = app.signed_in_user().await;
    let started = tokio::time::Instant::now();
    for _ in 0..2 {
        sleep(Duration::from_millis(1200)).await;
        app.me(&token).await.data("me");
    }
    assert!(started.elapsed() > SHORT_IDLE, "the test proved nothing");
    let lag = Utc::now() - app.session_row(&session_id).await.last_activity_at;
    assert!(
        lag < TimeDelta::seconds(1),
        "last_activity_at lags by {lag}"
    );
}

/// SESS-05: a revoked session → 401 REVOKED.
#[tokio::test]
async fn sess_05_revoked_session_is_rejected() {
    let app = spawn_app().await;
    let (_, token, session_id) = app.signed_in_user().await;
    app.revoke_session(&token, &session_id)
        .await
        .data("revokeSession");
    app.me(&token).await.assert_unauthenticated("REVOKED");
}

/// SESS-05 under the short policy: revocation is immediate, not at expiry.
#[tokio::test]
async fn sess_05_revoked_session_is_rejected_real_time() {
    let app = spawn_app_with(SHORT_IDLE, SHORT_ABSOLUTE).await;
    let (_, token, session_id) = app.signed_in_user().await;
    app.revoke_session(&token, &session_id)
        .await
        .data("revokeSession");
    app.me(&token).await.assert_unauthenticated("REVOKED");
}

/// SESS-06: `refreshSession` succeeds and returns a new `expiresAt`.
#[tokio::test]
async fn sess_06_refresh_returns_new_expiry() {
    let app = spawn_app().await;
    let (_, token, session_id) = app.signed_in_user().await;
    let backdated = Utc::now() - TimeDelta::minutes(10);
    app.backdate_session(&session_id, None, Some(backdated))
        .await;

    let reply = app.refresh_session(&token).await;
    let payload = reply.data("refreshSession");
    let expires_at = timestamp(&payload["expiresAt"]);
    assert!(expires_at > backdated + TimeDelta::minutes(30));
    assert_eq!(payload["session"]["expiresAt"], payload["expiresAt"]);
    let expected = Utc::now() + TimeDelta::minutes(30);
    assert!((expected - expires_at).abs() < TimeDelta::seconds(5));
}

/// SESS-06 in real time: a refresh keeps an otherwise idle session alive.
#[tokio::test]
async fn sess_06_refresh_returns_new_expiry_real_time() {
    let app = spawn_app_with(SHORT_IDLE, SHORT_ABSOLUTE).await;
    let (_, token, _) = app.signed_in_user().await;
    let first = timestamp(&app.me(&token).await.data("me")["session"]["expiresAt"]);
    sleep(Duration::from_millis(1200)).await;
    let refreshed =
        timestamp(&app.refresh_session(&token).await.data("refreshSession")["expiresAt"]);
    assert!(
        refreshed > first,
        "expiresAt did not move: {first} → {refreshed}"
    );
    sleep(Duration::from_millis(1200)).await;
    app.me(&token).await.data("me");
}

/// The absolute cap is reported and never moved by activity.
#[tokio::test]
async fn refresh_never_moves_the_absolute_cap() {
    let app = spawn_app().await;
    let (_, token, session_id) = app.signed_in_user().await;
    let created = Utc::now() - TimeDelta::hours(12) + TimeDelta::minutes(5);
    app.backdate_session(&session_id, Some(created), None).await;
    let payload = app.refresh_session(&token).await;
    let payload = payload.data("refreshSession");
    let cap = created + TimeDelta::hours(12);
    // PostgreSQL keeps microseconds, so compare to within a millisecond.
    assert!((timestamp(&payload["expiresAt"]) - cap).abs() < TimeDelta::milliseconds(1));
}
