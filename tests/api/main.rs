//! Integration tests: the real router on 127.0.0.1:0 over real HTTP, on a
//! fresh database made by the migrations.

mod admin_cli;
mod auth;
mod binary;
mod browser;
mod cluster;
mod connection_limits;
mod errors;
mod faults;
mod guessing;
mod hashing;
mod helpers;
mod hostile_documents;
mod http_spec;
mod known_devices;
mod live_status;
mod mail_limits;
mod mailbox;
mod mass_revocation;
mod operating;
mod operations;
mod purge;
mod query_plans;
mod recovery;
mod request_context;
mod restart;
mod reverse_proxy;
mod revocation;
mod round_trips;
mod schema;
mod schema_versions;
mod session_features;
mod session_timeouts;
mod throttle;
mod web;
mod wire_counter;
