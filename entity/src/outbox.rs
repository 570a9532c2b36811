//! An e-mail waiting to be delivered. It holds everything needed to send
//! it, and is deleted once the mail server has taken it.

use sea_orm::entity::prelude::*;

/// A row of `outbox`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub created_at: DateTimeUtc,
    /// Delivery attempts begun so far.
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// While a node is sending it, no other node may claim it.
    pub claimed_until: Option<DateTimeUtc>,
    /// Why the last attempt failed, without the message.
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
