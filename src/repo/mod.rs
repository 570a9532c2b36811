//! sea-orm queries, one module per table, and the guard's session reader.
//! No policy lives here.

pub mod email_sign_in_codes;
pub mod email_tokens;
pub mod external_identities;
pub mod known_devices;
pub mod outbox;
pub mod passkey_ceremonies;
pub mod passkeys;
pub mod provider_flows;
pub mod recovery_codes;
pub mod security_events;
pub mod session_reader;
pub mod sessions;
pub mod sign_in_challenges;
pub mod throttles;
pub mod totp_factors;
pub mod users;
