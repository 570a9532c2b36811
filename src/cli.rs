//! `gatehouse user …` and `gatehouse session …`: the operator's commands,
//! through [`Admin`]. A table by default, JSON with `--json`. Exit codes: 0
//! done, 1 refused (not found, taken, invalid), 2 wrong usage (clap's).

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use entity::{session, user};
use serde_json::{Value, json};

use crate::config::{AdminArgs, SessionCommand, UserCommand};
use crate::database;
use crate::domain::session_policy::{SessionPolicies, SessionPolicy};
use crate::error::AppError;
use crate::services::admin::Admin;
use crate::services::outbox::{Outbox, TokenLifetimes};
use crate::services::passwords::Passwords;
use crate::session_notifier::SessionNotifier;

/// Longer than any session lives, and still a date every database can compare.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Runs a `gatehouse user` command.
pub async fn user(args: AdminArgs<UserCommand>) -> anyhow::Result<ExitCode> {
    let admin = match admin(&args).await {
        Ok(admin) => admin,
        Err(err) => return Ok(setup_failed(&err, args.json)),
    };
    let now = Utc::now();
    let output = match args.command {
        UserCommand::Create { email } => {
            let password = read_password()?;
            admin
                .create(&email, password, now)
                .await
                .map(|u| account(&u))
        }
        UserCommand::List {
            filter,
            after,
            limit,
        } => admin
            .list(after.as_deref(), filter.as_deref(), limit)
            .await
            .map(|users| Value::Array(users.iter().map(account).collect())),
        UserCommand::Show { email } => admin.show(&email, now).await.map(|report| {
            let mut shown = account(&report.user);
            shown["sessions"] = report.sessions.iter().map(live_session).collect();
            shown["events"] = report
                .events
                .iter()
                .map(|e| {
                    json!({ "kind": e.kind, "detail": e.detail, "sessionId": e.session_id,
                            "occurredAt": e.occurred_at })
                })
                .collect();
            shown
        }),
        UserCommand::Disable { email } => admin
            .disable(&email, now)
            .await
            .map(|n| json!({ "email": email, "disabled": true, "revokedSessions": n })),
        UserCommand::Enable { email } => admin
            .enable(&email, now)
            .await
            .map(|()| json!({ "email": email, "disabled": false })),
        UserCommand::RevokeSessions { email } => admin
            .revoke_sessions(&email, now)
            .await
            .map(|n| json!({ "email": email, "revokedSessions": n })),
        UserCommand::ResetSecondFactor { email } => admin
            .reset_second_factor(&email, now)
            .await
            .map(|n| json!({ "email": email, "secondFactor": false, "revokedSessions": n })),
        UserCommand::Delete { email } => admin
            .delete(&email, now)
            .await
            .map(|()| json!({ "email": email, "deleted": true })),
    };
    Ok(finish(output, args.json))
}

/// Runs a `gatehouse session` command.
pub async fn session(args: AdminArgs<SessionCommand>) -> anyhow::Result<ExitCode> {
    let admin = match admin(&args).await {
        Ok(admin) => admin,
        Err(err) => return Ok(setup_failed(&err, args.json)),
    };
    let output = match args.command {
        SessionCommand::Revoke { id } => admin
            .revoke_session(id, Utc::now())
            .await
            .map(|live| json!({ "id": id, "revoked": live })),
    };
    Ok(finish(output, args.json))
}

async fn admin<C: Subcommand>(args: &AdminArgs<C>) -> anyhow::Result<Admin> {
    // `serve` makes its SQLite file; an operator's command must not make an
    // empty one because GATEHOUSE_DATABASE_URL was missing or mistyped.
    let url = args.database.database_url.expose();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        if !std::path::Path::new(path).exists() {
            anyhow::bail!(
                "no database at {path}: set GATEHOUSE_DATABASE_URL to the server's database"
            );
        }
    }
    // Only `migrate` and `serve` change the schema: a newer CLI must not
    // migrate under older nodes, nor an older one write to a newer schema.
    let db = database::connect(&args.database).await?;
    database::schema_state(&db).await?.require_current()?;
    let params = args.hashing.params().map_err(anyhow::Error::msg)?;
    let min_score = args.quality.min_score().map_err(anyhow::Error::msg)?;
    let mail = &args.mail;
    // The operator ends whatever has not ended yet, whatever this shell's
    // timeout settings are: no session may escape by a mismatch.
    let forever = SessionPolicy::new(FOREVER, FOREVER);
    Ok(Admin {
        db,
        passwords: Passwords::new(params, 1, min_score).await?,
        notifier: SessionNotifier::default(),
        policies: SessionPolicies {
            standard: forever,
            remembered: Some(forever),
        },
        outbox: Outbox::new(
            mail.letters(),
            TokenLifetimes {
                reset: mail.reset_ttl,
                verify: mail.verify_ttl,
            },
        ),
    })
}

/// From the terminal without echo, or the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password("Password: ")?);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The database could not be opened, or its schema is not this binary's
/// (`SCHEMA_MISMATCH`, exit 3): said as the output format asks.
fn setup_failed(err: &anyhow::Error, as_json: bool) -> ExitCode {
    let message = format!("{err:#}");
    let (code, exit) = match err.downcast_ref::<database::SchemaMismatch>() {
        Some(_) => ("SCHEMA_MISMATCH", ExitCode::from(3)),
        None => ("SERVICE_UNAVAILABLE", ExitCode::FAILURE),
    };
    if as_json {
        eprintln!("{}", json!({ "code": code, "message": message }));
    } else {
        eprintln!("gatehouse: {message}");
    }
    exit
}

/// Prints the result (a table, or JSON) or the error, and picks the exit code.
fn finish(output: Result<Value, AppError>, as_json: bool) -> ExitCode {
    match output {
        Ok(value) if as_json => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Ok(value) => {
            print!("{}", table(&value));
            ExitCode::SUCCESS
        }
        Err(err) => {
            let weakness = match &err {
                AppError::PasswordTooWeak(weak) => Some(weak),
                _ => None,
            };
            if as_json {
                let mut shown = json!({ "code": err.code(), "message": err.message() });
                if let Some(weak) = weakness {
                    shown["warning"] = json!(weak.warning);
                    shown["suggestions"] = json!(weak.suggestions);
                    shown["score"] = json!(weak.score);
                    shown["minScore"] = json!(weak.min_score);
                }
                eprintln!("{shown}");
            } else {
                eprintln!("gatehouse: {} ({})", err.message(), err.code());
                for suggestion in weakness.iter().flat_map(|w| &w.suggestions) {
                    eprintln!("  - {suggestion}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

fn account(user: &user::Model) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "emailVerified": user.email_verified_at.is_some(),
        "disabled": user.disabled_at.is_some(),
        "createdAt": user.created_at,
    })
}

fn live_session(session: &session::Model) -> Value {
    json!({
        "id": session.id,
        "createdAt": session.created_at,
        "lastActivityAt": session.last_activity_at,
        "rememberMe": session.remember_me,
        "ipAddress": session.ip_address,
    })
}

/// A list of objects as aligned columns; an object as `key  value` lines,
/// with its lists as tables below.
fn table(value: &Value) -> String {
    match value {
        Value::Array(rows) => columns(rows),
        Value::Object(fields) => {
            let mut out = String::new();
            let width = fields.keys().map(String::len).max().unwrap_or(0);
            for (key, field) in fields.iter().filter(|(_, v)| !v.is_array()) {
                out.push_str(&format!("{key:width$}  {}\n", cell(field)));
            }
            for (key, field) in fields.iter().filter(|(_, v)| v.is_array()) {
                out.push_str(&format!(
                    "\n{key}:\n{}",
                    columns(field.as_array().unwrap_or(&Vec::new()))
                ));
            }
            out
        }
        other => format!("{}\n", cell(other)),
    }
}

fn columns(rows: &[Value]) -> String {
    let Some(Value::Object(first)) = rows.first() else {
        return "(none)\n".into();
    };
    let keys: Vec<&String> = first.keys().collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| keys.iter().map(|k| cell(&row[k.as_str()])).collect())
        .collect();
    let widths: Vec<usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            cells
                .iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(k.len())
        })
        .collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(keys.iter().map(|k| k.as_str()).collect());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => match text.parse::<DateTime<Utc>>() {
            Ok(at) => at.format("%Y-%m-%d %H:%M:%S").to_string(),
            Err(_) => text.clone(),
        },
        other => other.to_string(),
    }
}
