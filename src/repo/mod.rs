//! sea-orm queries, one module per table. No policy lives here.

pub mod sessions;
pub mod throttles;
pub mod users;
