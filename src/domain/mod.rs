//! Values and rules with no I/O: what an e-mail, a password and a token are,
//! and when a session ends.

pub mod client;
pub mod device;
pub mod email;
pub mod forwarded;
pub mod passkey;
pub mod password;
pub mod password_quality;
pub mod query_limits;
pub mod recovery_code;
pub mod second_factor;
pub mod security_event;
pub mod session_policy;
pub mod throttle_policy;
pub mod token;
pub mod totp;
