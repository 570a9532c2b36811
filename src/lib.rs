//! Gatehouse: a GraphQL identity API whose sessions end exactly when they should.
//!
//! The request flows guard → resolver → service → repository → database.

pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod database;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod mail;
pub mod measure;
pub mod repo;
pub mod request_labels;
pub mod services;
pub mod session_cookie;
pub mod session_notifier;
pub mod startup;
pub mod telemetry;
