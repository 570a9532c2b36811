//! Gauges that cost a query, refreshed on a timer rather than per scrape,
//! so scraping `/metrics` never touches the database.

use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::domain::session_policy::SessionPolicies;
use crate::measure;
use crate::repo::sessions;

const REFRESH: Duration = Duration::from_secs(30);

/// Counts live sessions every [`REFRESH`].
pub async fn run(db: DatabaseConnection, policies: SessionPolicies, clock: Clock) {
    loop {
        match sessions::count_live(&db, &policies, clock.now()).await {
            Ok(count) => measure::live_sessions(count),
            Err(err) => tracing::warn!(error = %err, "counting live sessions failed; will retry"),
        }
        tokio::time::sleep(REFRESH).await;
    }
}
