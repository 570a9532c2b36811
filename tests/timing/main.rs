//! Timing tests. They live in their own binary because cargo runs test
//! binaries one after another: here nothing else competes for the CPU, so
//! a difference in time is the server's, not a neighbouring test's.

// The helpers are shared with the `api` suite; this binary uses a few.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../api/mailbox.rs"]
mod mailbox;
#[allow(dead_code)]
#[path = "../api/operations.rs"]
mod operations;

mod document_attack;
mod enumeration;
