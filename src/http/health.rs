//! Liveness and readiness probes for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::DatabaseConnection;

/// `GET /healthz`: the process is serving.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers, so requests can succeed.
pub async fn readyz(State(db): State<DatabaseConnection>) -> (StatusCode, &'static str) {
    match db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
