//! sea-orm entities for Gatehouse's tables. Storage only: API types live in the
//! main crate, so nothing here can leak through a GraphQL derive.

pub mod login_throttle;
pub mod security_event;
pub mod session;
pub mod user;
