//! sea-orm entities for Gatehouse's tables. Storage only: API types live in the
//! main crate, so nothing here can leak through a GraphQL derive.

pub mod email_sign_in_code;
pub mod email_token;
pub mod external_identity;
pub mod known_device;
pub mod login_throttle;
pub mod outbox;
pub mod passkey;
pub mod passkey_ceremony;
pub mod provider_flow;
pub mod recovery_code;
pub mod security_event;
pub mod session;
pub mod sign_in_challenge;
pub mod totp_factor;
pub mod user;
