//! E-mail: what each message says, and how it leaves the node.

pub mod templates;
pub mod transport;
