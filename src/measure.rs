//! What Gatehouse measures for Prometheus, and how `/metrics` renders it.
//! Every label takes values from a fixed set (codes, reasons, schema field
//! names): never an address, an id or a token.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::AppError;
use crate::request_labels;

/// Seconds, from a millisecond to ten seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (a test harness): render ours alone.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        gauge!("gatehouse_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Keeps histograms' windows fresh; run once per process.
pub async fn upkeep() {
    let handle = handle();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        handle.run_upkeep();
    }
}

/// The guard let a request through with a session, or without one.
pub fn verdict_accepted(with_session: bool) {
    let outcome = if with_session {
        "accepted"
    } else {
        "anonymous"
    };
    counter!("gatehouse_guard_verdicts_total", "outcome" => outcome, "reason" => "").increment(1);
}

/// The guard refused a request.
pub fn verdict_refused(err: &AppError) {
    let reason = match err {
        AppError::Unauthenticated(failure) => failure.reason(),
        other => other.code(),
    };
    counter!("gatehouse_guard_verdicts_total", "outcome" => "refused", "reason" => reason)
        .increment(1);
}

/// How a `login` ended.
pub fn sign_in<T>(result: &Result<T, AppError>) {
    let outcome = match result {
        Ok(_) => "success",
        Err(AppError::InvalidCredentials) => "invalid_credentials",
        Err(AppError::RateLimited { .. }) => "rate_limited",
        Err(AppError::Unavailable(_) | AppError::Overloaded | AppError::Timeout) => "unavailable",
        Err(AppError::AccountDisabled) => "account_disabled",
        Err(_) => "other",
    };
    counter!("gatehouse_sign_ins_total", "outcome" => outcome).increment(1);
}

/// A throttle key locked: `account`, `ip`, `register`, `mail` or `mail-ip`.
pub fn lock_placed(kind: &str) {
    let kind = match kind {
        "account" | "ip" | "register" | "mail" | "mail-ip" => kind.to_owned(),
        _ => "other".to_owned(),
    };
    counter!("gatehouse_locks_total", "key" => kind).increment(1);
}

/// Hashes running or waiting for a core.
pub fn hash_queue(depth: usize) {
    gauge!("gatehouse_hash_queue_depth").set(depth as f64);
}

/// How long a hash waited for a core.
pub fn hash_wait(waited: Duration) {
    histogram!("gatehouse_hash_wait_seconds").record(waited.as_secs_f64());
}

/// One GraphQL request: its root field (or `multiple`, `none`) and outcome
/// (`OK` or the first error's code).
pub fn request(operation: &str, outcome: &str, took: Duration) {
    histogram!(
        "gatehouse_request_duration_seconds",
        "operation" => operation.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .record(took.as_secs_f64());
}

/// One database statement, by whether a request made it (`request`) or
/// the node's own work did (`background`): statements per request is the
/// first thing to look at when requests grow slow.
pub fn query(took: Duration, failed: bool) {
    let outcome = if failed { "error" } else { "ok" };
    let caller = if request_labels::in_request() {
        "request"
    } else {
        "background"
    };
    histogram!("gatehouse_db_query_duration_seconds", "outcome" => outcome, "caller" => caller)
        .record(took.as_secs_f64());
}

/// Live sessions, counted periodically.
pub fn live_sessions(count: u64) {
    gauge!("gatehouse_live_sessions").set(count as f64);
}
