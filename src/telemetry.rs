//! Logging. Secrets never reach it: tokens and passwords are typed values with
//! redacted `Debug`, and no layer here logs headers or bodies.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Libraries that log message contents (a WebSocket's `connection_init`
/// holds a token) at debug and trace: never below info, whatever `RUST_LOG`.
const QUIET: [&str; 2] = ["tungstenite=info", "tokio_tungstenite=info"];

/// Installs a stderr subscriber filtered by `RUST_LOG`, or else by
/// `default` (`info` for the server, `warn` for one-shot commands), writing
/// text or JSON lines. A JSON line carries its spans' fields, such as the
/// request id.
pub fn init(default: &str, format: LogFormat) {
    // webauthn-rs logs a stranger's malformed passkey at ERROR; our own
    // refusal says why at info.
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},sqlx=warn,webauthn_rs_core=off")));
    for directive in QUIET {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (as in tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
