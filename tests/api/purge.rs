//! The purge of ended sessions deletes exactly what it should.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use entity::session;
use gatehouse::domain::session_policy::{SessionPolicies, SessionPolicy};
use gatehouse::services::purge::{Retention, purge_once};
use sea_orm::EntityTrait;

use crate::helpers::{PASSWORD, spawn_app};

const IDLE: TimeDelta = TimeDelta::minutes(30);
const ABSOLUTE: TimeDelta = TimeDelta::hours(12);
const RETENTION: TimeDelta = TimeDelta::days(7);

#[tokio::test]
async fn purge_deletes_only_sessions_ended_before_the_retention() {
    let app = spawn_app().await;
    let (email, token, live) = app.signed_in_user().await;
    let session = || async {
        app.login(&email, PASSWORD).await.data("login")["session"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let now = Utc::now();
    let margin = TimeDelta::minutes(1);

    let old_but_live = session().await;
    app.backdate_session(&old_but_live, Some(now - ABSOLUTE + margin), Some(now))
        .await;
    let revoked_long_ago = session().await;
    app.backdate_revocation(&revoked_long_ago, now - RETENTION - margin)
        .await;
    let revoked_recently = session().await;
    app.backdate_revocation(&revoked_recently, now - RETENTION + margin)
        .await;
    let idle_long_ago = session().await;
    app.backdate_session(&idle_long_ago, None, Some(now - RETENTION - IDLE - margin))
        .await;
    let idle_recently = session().await;
    app.backdate_session(&idle_recently, None, Some(now - RETENTION - IDLE + margin))
        .await;
    let capped_long_ago = session().await;
    app.backdate_session(
        &capped_long_ago,
        Some(now - RETENTION - ABSOLUTE - margin),
        Some(now - RETENTION - ABSOLUTE),
    )
    .await;

    let policies = SessionPolicies {
        standard: SessionPolicy::new(Duration::from_secs(30 * 60), Duration::from_secs(12 * 3600)),
        remembered: None,
    };
    let retention = Retention {
        sessions: RETENTION.to_std().unwrap(),
        events: Duration::from_secs(90 * 24 * 3600),
    };
    let purged = purge_once(&app.db, &policies, retention, chrono::Utc::now())
        .await
        .expect("purge runs");
    assert_eq!(purged.sessions, 3);
    // The two timed-out sessions and the one past its retention are
    // recorded before anything is deleted.
    assert_eq!(purged.expiries_recorded, 3);

    let remaining: Vec<String> = session::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id.to_string())
        .collect();
    for kept in [&live, &old_but_live, &revoked_recently, &idle_recently] {
        assert!(remaining.contains(kept), "{kept} was purged");
    }
    for gone in [&revoked_long_ago, &idle_long_ago, &capped_long_ago] {
        assert!(!remaining.contains(gone), "{gone} was kept");
    }
    // Purging again, as another node would, finds nothing more.
    let again = purge_once(&app.db, &policies, retention, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((again.sessions, again.expiries_recorded), (0, 0));
    app.me(&token).await.data("me");
}
