//! Queries on `sessions`. Every write that could race a revocation is a
//! conditional `UPDATE … WHERE revoked_at IS NULL`.

use chrono::{DateTime, Utc};
use entity::{session, user};
use sea_orm::sea_query::{Expr, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, UpdateMany,
};
use uuid::Uuid;

use crate::domain::client::ClientInfo;
use crate::domain::second_factor::{Method, Methods};
use crate::domain::session_policy::{SessionPolicies, SessionPolicy};
use crate::domain::token::TokenHash;

/// A session to open: whose, under which credentials and token, and how
/// its identity was proven.
pub struct NewSession<'a> {
    pub user_id: Uuid,
    /// The account's credentials when its identity was proven.
    pub credential_version: i64,
    pub token_hash: &'a TokenHash,
    pub remember_me: bool,
    pub client: &'a ClientInfo,
    pub methods: &'a Methods,
}

impl NewSession<'_> {
    /// The row as it is inserted at `now`.
    fn row(&self, now: DateTime<Utc>) -> session::Model {
        session::Model {
            id: Uuid::new_v4(),
            user_id: self.user_id,
            token_hash: self.token_hash.as_str().to_owned(),
            created_at: now,
            last_activity_at: now,
            revoked_at: None,
            user_agent: self.client.user_agent.clone(),
            ip_address: self.client.ip.map(|ip| ip.to_string()),
            authenticated_at: Some(now),
            remember_me: self.remember_me,
            revoked_reason: None,
            end_recorded: false,
            methods: self.methods.to_string(),
            aal: self.methods.level() as i16,
        }
    }
}

/// Inserts a session for `user_id` under a token's hash, but only while the
/// account's credentials are still at `credential_version`: a sign-in that
/// verified a password changed meanwhile opens nothing (`None`).
///
/// On PostgreSQL the account row is read `FOR SHARE`, so an uncommitted
/// password change makes this wait and then see the new version.
pub async fn insert(
    db: &impl ConnectionTrait,
    new: NewSession<'_>,
    now: DateTime<Utc>,
) -> Result<Option<session::Model>, DbErr> {
    let (user_id, credential_version) = (new.user_id, new.credential_version);
    let model = new.row(now);
    let account = Query::select()
        .exprs([
            Expr::val(model.id),
            Expr::val(model.user_id),
            Expr::val(model.token_hash.clone()),
            Expr::val(model.created_at),
            Expr::val(model.last_activity_at),
            Expr::val(model.user_agent.clone()),
            Expr::val(model.ip_address.clone()),
            Expr::val(model.authenticated_at),
            Expr::val(model.remember_me),
            Expr::val(model.methods.clone()),
            Expr::val(model.aal),
        ])
        .from(user::Entity)
        .and_where(user::Column::Id.eq(user_id))
        .and_where(user::Column::CredentialVersion.eq(credential_version))
        // A disable that commits first wins; one in progress is waited for.
        .and_where(user::Column::DisabledAt.is_null())
        .lock_shared()
        .to_owned();
    let insert = Query::insert()
        .into_table(session::Entity)
        .columns([
            session::Column::Id,
            session::Column::UserId,
            session::Column::TokenHash,
            session::Column::CreatedAt,
            session::Column::LastActivityAt,
            session::Column::UserAgent,
            session::Column::IpAddress,
            session::Column::AuthenticatedAt,
            session::Column::RememberMe,
            session::Column::Methods,
            session::Column::Aal,
        ])
        .select_from(account)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    let inserted = db.execute(&insert).await?.rows_affected();
    Ok((inserted == 1).then_some(model))
}

/// The guard's lookup: the session with this token hash, joined to its
/// account, in one indexed query. It selects what the guard judges and
/// serves, in this order, and neither the token's hash nor the password's:
/// the session's `id`, `user_id`, `created_at`, `last_activity_at`,
/// `revoked_at`, `revoked_reason`, `user_agent`, `ip_address`,
/// `authenticated_at`, `remember_me`, `end_recorded`, then the account's
/// `email`, `email_verified_at`, `created_at`, `disabled_at` and
/// `second_factor_at`, then the session's `methods` and `aal`.
pub fn find_with_user_query(token_hash: &str) -> Select<session::Entity> {
    use session::Column as S;
    use user::Column as U;
    session::Entity::find()
        .select_only()
        .columns([
            S::Id,
            S::UserId,
            S::CreatedAt,
            S::LastActivityAt,
            S::RevokedAt,
            S::RevokedReason,
            S::UserAgent,
            S::IpAddress,
            S::AuthenticatedAt,
            S::RememberMe,
            S::EndRecorded,
        ])
        .columns([
            U::Email,
            U::EmailVerifiedAt,
            U::CreatedAt,
            U::DisabledAt,
            U::SecondFactorAt,
        ])
        .columns([S::Methods, S::Aal])
        .inner_join(user::Entity)
        .filter(S::TokenHash.eq(token_hash))
}

/// The guard's lookup for many token hashes at once, on PostgreSQL (bind
/// one `text[]`): the columns of [`find_with_user_query`], then the token
/// hash, to match rows to requests.
pub fn find_many_with_user_sql() -> String {
    find_with_user_query("")
        .column(session::Column::TokenHash)
        .build(DbBackend::Postgres)
        .sql
        .replace(
            r#""sessions"."token_hash" = $1"#,
            r#""sessions"."token_hash" = ANY($1)"#,
        )
}

/// Records activity at `now`, only forward and only while the session is
/// live at `now` by all three rules, in one statement. Returns whether it
/// wrote; if not, the caller reads what the database holds.
pub async fn slide(
    db: &impl ConnectionTrait,
    id: Uuid,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let forward = Condition::all().add(session::Column::LastActivityAt.lt(now));
    let column = session::Column::LastActivityAt;
    set_if_live(db, id, policies, now, column, Expr::value(now), forward).await
}

/// Checks that the session is live at `now` and, inside a transaction,
/// holds it so that no revocation commits before the transaction does.
/// Returns whether it is live.
pub async fn claim_live(
    db: &impl ConnectionTrait,
    id: Uuid,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    // A write that changes nothing: it takes the row's lock on PostgreSQL
    // and the write lock on SQLite.
    let unchanged = Expr::col(session::Column::LastActivityAt);
    let column = session::Column::LastActivityAt;
    set_if_live(db, id, policies, now, column, unchanged, Condition::all()).await
}

/// Records that a password was proven on the session at `now`, if it is
/// live then; returns whether it was.
pub async fn set_authenticated(
    db: &impl ConnectionTrait,
    id: Uuid,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let column = session::Column::AuthenticatedAt;
    set_if_live(
        db,
        id,
        policies,
        now,
        column,
        Expr::value(now),
        Condition::all(),
    )
    .await
}

/// Records what proved the session's identity last, and the level that
/// gives. Call inside a transaction that claimed the session live.
pub async fn set_methods(
    db: &impl ConnectionTrait,
    id: Uuid,
    methods: &Methods,
) -> Result<(), DbErr> {
    session::Entity::update_many()
        .col_expr(session::Column::Methods, Expr::value(methods.to_string()))
        .col_expr(session::Column::Aal, Expr::value(methods.level() as i16))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await
        .map(drop)
}

/// Forgets what the account's sessions proved of a second factor that is
/// gone: they stand on their password alone (AAL1) from now.
pub async fn forget_second_factor(db: &impl ConnectionTrait, user_id: Uuid) -> Result<(), DbErr> {
    let password = Methods::of(&[Method::Password]);
    session::Entity::update_many()
        .col_expr(session::Column::Methods, Expr::value(password.to_string()))
        .col_expr(session::Column::Aal, Expr::value(password.level() as i16))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::Aal.gt(password.level() as i16))
        // A passkey proves itself, factor or not.
        .filter(session::Column::Methods.not_like("%PASSKEY%"))
        .exec(db)
        .await
        .map(drop)
}

async fn set_if_live(
    db: &impl ConnectionTrait,
    id: Uuid,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
    column: session::Column,
    value: SimpleExpr,
    also: Condition,
) -> Result<bool, DbErr> {
    let result = session::Entity::update_many()
        .col_expr(column, value)
        .filter(session::Column::Id.eq(id))
        .filter(live_at(policies, now))
        .filter(also)
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Why a session was revoked, as stored and as its holder is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// `logout`.
    Logout,
    /// `revokeSession` or `revokeOtherSessions`, from a session of the user.
    Session,
    /// `changePassword` signed the other sessions out.
    PasswordChange,
    /// A newer sign-in went past `GATEHOUSE_MAX_SESSIONS_PER_USER`.
    SessionLimit,
    /// `resetPassword` signed every session out.
    PasswordReset,
    /// An e-mail code proved an address that no one had proven: every way
    /// in set up before is taken back.
    AddressClaimed,
    /// An operator disabled the account.
    AccountDisabled,
    /// An operator revoked it (`gatehouse user revoke-sessions`, `session revoke`).
    Operator,
}

impl Revocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "LOGOUT",
            Self::Session => "SESSION",
            Self::PasswordChange => "PASSWORD_CHANGE",
            Self::SessionLimit => "SESSION_LIMIT",
            Self::PasswordReset => "PASSWORD_RESET",
            Self::AddressClaimed => "ADDRESS_CLAIMED",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
            Self::Operator => "OPERATOR",
        }
    }
}

/// An update that revokes at `now` for `reason`. Its end counts as
/// recorded: the caller writes the event in the same transaction.
fn revoking(now: DateTime<Utc>, reason: Revocation) -> UpdateMany<session::Entity> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .col_expr(session::Column::EndRecorded, Expr::value(true))
}

/// Revokes the session at `now` if it is still live then; returns whether
/// it did.
pub async fn revoke_live(
    db: &impl ConnectionTrait,
    id: Uuid,
    policies: &SessionPolicies,
    reason: Revocation,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = revoking(now, reason)
        .filter(session::Column::Id.eq(id))
        .filter(live_at(policies, now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Revokes one session of `user_id` if it is live; returns whether it did.
pub async fn revoke(
    db: &impl ConnectionTrait,
    id: Uuid,
    user_id: Uuid,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = revoking(now, Revocation::Session)
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(live_at(policies, now))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Revokes every live session of `user_id` but `keep`; returns their ids.
pub async fn revoke_others(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Uuid,
    policies: &SessionPolicies,
    reason: Revocation,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    let revoked = revoking(now, reason)
        .filter(session::Column::UserId.eq(user_id))
        .filter(live_at(policies, now))
        .filter(session::Column::Id.ne(keep))
        .exec_with_returning(db)
        .await?;
    Ok(revoked.into_iter().map(|s| s.id).collect())
}

/// How many sessions are live at `now`, across all accounts.
pub async fn count_live(
    db: &impl ConnectionTrait,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    session::Entity::find()
        .filter(live_at(policies, now))
        .count(db)
        .await
}

/// Revokes every live session of `user_id`; returns their ids.
pub async fn revoke_all(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    policies: &SessionPolicies,
    reason: Revocation,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    let revoked = revoking(now, reason)
        .filter(session::Column::UserId.eq(user_id))
        .filter(live_at(policies, now))
        .exec_with_returning(db)
        .await?;
    Ok(revoked.into_iter().map(|s| s.id).collect())
}

/// Makes room for the new session `keep` under `limit`: revokes the least
/// recently active of the account's other live sessions at `now`; returns
/// their ids. The new session is never among them. The caller holds the
/// account's lock, so sign-ins on any node take turns and none counts a
/// stale set.
pub async fn enforce_limit(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Uuid,
    limit: u32,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    let others: Vec<Uuid> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::Id.ne(keep))
        .filter(live_at(policies, now))
        .order_by_desc(session::Column::LastActivityAt)
        .order_by_desc(session::Column::CreatedAt)
        .into_tuple()
        .all(db)
        .await?;
    let room = (limit as usize).saturating_sub(1);
    let excess = others.get(room..).unwrap_or_default().to_vec();
    // In chunks: a limit lowered under thousands of live sessions must not
    // exceed the database's bound parameters.
    for chunk in excess.chunks(IDS_PER_STATEMENT) {
        revoking(now, Revocation::SessionLimit)
            .filter(session::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(excess)
}

/// Ids bound in one `IN (…)`.
const IDS_PER_STATEMENT: usize = 1000;

/// Marks the end of a session that timed out by `now`, with which timeout;
/// returns whether this call did. Of all the nodes that see an expiry,
/// exactly one writes its event, and none does for a session that a
/// racing request kept alive. Once marked, it stays ended whatever the
/// settings do later.
pub async fn record_end(
    db: &impl ConnectionTrait,
    id: Uuid,
    reason: &'static str,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = session::Entity::update_many()
        .col_expr(session::Column::EndRecorded, Expr::value(true))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::EndRecorded.eq(false))
        .filter(session::Column::RevokedAt.is_null())
        .filter(within_timeouts(policies, now).not())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Up to `limit` sessions that expired by `now` and whose end is not yet
/// recorded, for the purge to record.
pub async fn expired_unrecorded(
    db: &impl ConnectionTrait,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<session::Model>, DbErr> {
    session::Entity::find()
        .filter(session::Column::EndRecorded.eq(false))
        .filter(session::Column::RevokedAt.is_null())
        .filter(within_timeouts(policies, now).not())
        .limit(limit)
        .all(db)
        .await
}

/// A session by id, whatever its state.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<session::Model>, DbErr> {
    session::Entity::find_by_id(id)
        .all(db)
        .await
        .map(|rows| rows.into_iter().next())
}

/// A session of `user_id`, whatever its state; `None` for anyone else's.
pub async fn find_owned(
    db: &impl ConnectionTrait,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<session::Model>, DbErr> {
    session::Entity::find_by_id(id)
        .filter(session::Column::UserId.eq(user_id))
        .one(db)
        .await
}

/// The live sessions of `user_id`, newest first.
pub async fn list_live(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    policies: &SessionPolicies,
    now: DateTime<Utc>,
) -> Result<Vec<session::Model>, DbErr> {
    let select: Select<session::Entity> = session::Entity::find();
    select
        .filter(session::Column::UserId.eq(user_id))
        .filter(live_at(policies, now))
        .order_by_desc(session::Column::CreatedAt)
        .all(db)
        .await
}

/// The SQL twin of `SessionPolicy::evaluate(now, ..) == Active`, each
/// session judged under its own policy.
fn live_at(policies: &SessionPolicies, now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(session::Column::RevokedAt.is_null())
        .add(session::Column::EndRecorded.eq(false))
        .add(within_timeouts(policies, now))
}

/// Whether neither timeout of its policy has ended the session at `now`.
fn within_timeouts(policies: &SessionPolicies, now: DateTime<Utc>) -> Condition {
    let within = |policy: &SessionPolicy| {
        let (created_after, active_after) = policy.live_cutoffs(now);
        Condition::all()
            .add(session::Column::CreatedAt.gt(created_after))
            .add(session::Column::LastActivityAt.gt(active_after))
    };
    match &policies.remembered {
        None => within(&policies.standard),
        Some(remembered) => Condition::any()
            .add(within(&policies.standard).add(session::Column::RememberMe.eq(false)))
            .add(within(remembered).add(session::Column::RememberMe.eq(true))),
    }
}

/// Deletes sessions that ended (expired or revoked) before `ended_before`
/// and whose end is recorded; returns how many. A live session never
/// matches, and running it on many nodes at once is harmless.
pub async fn purge_ended(
    db: &impl ConnectionTrait,
    policies: &SessionPolicies,
    ended_before: DateTime<Utc>,
) -> Result<u64, DbErr> {
    // Not live at `ended_before` means ended by then, for good. A timed-out
    // session stays until its end is recorded; a revoked one was recorded
    // when it was revoked.
    let result = session::Entity::delete_many()
        .filter(
            Condition::any()
                .add(session::Column::RevokedAt.lt(ended_before))
                .add(
                    Condition::all()
                        .add(within_timeouts(policies, ended_before).not())
                        .add(session::Column::EndRecorded.eq(true)),
                ),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
