//! Queries on `security_events`. Each is written by the caller inside the
//! transaction of the change it records.

use chrono::{DateTime, Utc};
use entity::security_event;
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::domain::client::ClientInfo;
use crate::domain::second_factor::Methods;
use crate::domain::security_event::EventKind;

/// An event to record.
pub struct NewEvent<'a> {
    pub user_id: Uuid,
    pub kind: EventKind,
    pub detail: Option<&'a str>,
    pub session_id: Option<Uuid>,
    pub actor_session_id: Option<Uuid>,
    pub remember_me: Option<bool>,
    pub client: Option<&'a ClientInfo>,
    pub methods: Option<&'a Methods>,
    pub at: DateTime<Utc>,
}

impl<'a> NewEvent<'a> {
    /// An event of `kind` for one session, with nothing else to say.
    pub fn of(kind: EventKind, user_id: Uuid, session_id: Uuid, at: DateTime<Utc>) -> Self {
        Self {
            user_id,
            kind,
            detail: None,
            session_id: Some(session_id),
            actor_session_id: None,
            remember_me: None,
            client: None,
            methods: None,
            at,
        }
    }

    /// An event of `kind` for the account as a whole, not one session.
    pub fn of_account(kind: EventKind, user_id: Uuid, at: DateTime<Utc>) -> Self {
        Self {
            session_id: None,
            ..Self::of(kind, user_id, Uuid::nil(), at)
        }
    }

    pub fn detail(mut self, detail: &'a str) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn client(mut self, client: &'a ClientInfo) -> Self {
        self.client = Some(client);
        self
    }

    pub fn remembered(mut self, remember_me: bool) -> Self {
        self.remember_me = Some(remember_me);
        self
    }

    /// What proved the identity, for a sign-in or a step-up.
    pub fn methods(mut self, methods: &'a Methods) -> Self {
        self.methods = Some(methods);
        self
    }

    pub fn actor(mut self, session_id: Uuid) -> Self {
        self.actor_session_id = Some(session_id);
        self
    }
}

/// Rows per `INSERT`: 11 values each, far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters, however many sessions a
/// revocation ends.
const ROWS_PER_STATEMENT: usize = 1000;

/// Records events, in the caller's transaction, any number of them.
pub async fn insert(db: &impl ConnectionTrait, events: Vec<NewEvent<'_>>) -> Result<(), DbErr> {
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        insert_rows(db, events.by_ref().take(ROWS_PER_STATEMENT)).await?;
    }
    Ok(())
}

async fn insert_rows<'a>(
    db: &impl ConnectionTrait,
    events: impl Iterator<Item = NewEvent<'a>>,
) -> Result<(), DbErr> {
    let rows = events.map(|e| security_event::ActiveModel {
        id: ActiveValue::Set(Uuid::new_v4()),
        user_id: ActiveValue::Set(e.user_id),
        kind: ActiveValue::Set(e.kind.as_str().to_owned()),
        detail: ActiveValue::Set(e.detail.map(str::to_owned)),
        session_id: ActiveValue::Set(e.session_id),
        actor_session_id: ActiveValue::Set(e.actor_session_id),
        remember_me: ActiveValue::Set(e.remember_me),
        user_agent: ActiveValue::Set(e.client.and_then(|c| c.user_agent.clone())),
        ip_address: ActiveValue::Set(e.client.and_then(|c| c.ip).map(|ip| ip.to_string())),
        occurred_at: ActiveValue::Set(e.at),
        methods: ActiveValue::Set(e.methods.map(|m| m.to_string())),
    });
    security_event::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Up to `limit` events of `user_id`, newest first, strictly before the
/// `(occurred_at, id)` cursor when there is one.
pub async fn page(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<security_event::Model>, DbErr> {
    let mut select =
        security_event::Entity::find().filter(security_event::Column::UserId.eq(user_id));
    if let Some((at, id)) = before {
        select = select.filter(
            Condition::any()
                .add(security_event::Column::OccurredAt.lt(at))
                .add(
                    Condition::all()
                        .add(security_event::Column::OccurredAt.eq(at))
                        .add(security_event::Column::Id.lt(id)),
                ),
        );
    }
    select
        .order_by_desc(security_event::Column::OccurredAt)
        .order_by_desc(security_event::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Deletes events that occurred before `before`; returns how many.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = security_event::Entity::delete_many()
        .filter(security_event::Column::OccurredAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
