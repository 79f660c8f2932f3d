//! The `error_logs` table: reports filed by clients (`POST /logs/error`) and agents
//! (`agent_error` events), listed per visibility (`GET /logs/error`), marked read or cleared,
//! and deleted past their retention.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// A new error log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewErrorLog {
    /// `critical`, `error` or `warning`.
    pub severity: String,
    pub source: String,
    pub user: Option<Uuid>,
    pub message: String,
    pub context_lang: String,
    pub context_env: Value,
    pub request_url: Option<String>,
    pub request_status: Option<i32>,
    pub traceback: Option<String>,
}

/// Whose logs a caller sees (and may clear).
#[derive(Debug, Clone, PartialEq)]
pub enum LogVisibility {
    /// Superadmins: every log.
    All,
    /// Domain admins: logs of the users in the domain's projects, cleared ones included.
    Domain(String),
    /// Users: their own logs that are not cleared.
    Own(Uuid),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorLogRow {
    pub id: Uuid,
    pub created_at: Option<DateTime<Utc>>,
    pub severity: Option<String>,
    pub source: Option<String>,
    pub user: Option<Uuid>,
    pub is_read: Option<bool>,
    pub is_cleared: Option<bool>,
    pub message: Option<String>,
    pub context_lang: Option<String>,
    pub context_env: Option<Value>,
    pub request_url: Option<String>,
    pub request_status: Option<i32>,
    pub traceback: Option<String>,
}

pub async fn insert_error_log(
    client: &impl GenericClient,
    log: &NewErrorLog,
) -> Result<Uuid, QueryError> {
    let row = client
        .query_one(
            "INSERT INTO error_logs (severity, source, \"user\", message, context_lang,
                                     context_env, request_url, request_status, traceback,
                                     is_read, is_cleared)
             VALUES ($1::text::errorlog_severity, $2, $3, $4, $5, $6, $7, $8, $9, false, false)
             RETURNING id",
            &[
                &log.severity,
                &log.source,
                &log.user,
                &log.message,
                &log.context_lang,
                &log.context_env,
                &log.request_url,
                &log.request_status,
                &log.traceback,
            ],
        )
        .await
        .map_err(db_err("storing an error log"))?;
    row.read(0)
}

/// The condition (on `error_logs e`) of a visibility, with `$1` its parameter if any.
fn visibility_condition(visibility: &LogVisibility) -> &'static str {
    match visibility {
        LogVisibility::All => "true",
        LogVisibility::Domain(_) => {
            "e.\"user\" IN (SELECT agu.user_id FROM association_groups_users agu
                             JOIN groups g ON g.id = agu.group_id WHERE g.domain_name = $1)"
        }
        LogVisibility::Own(_) => "e.\"user\" = $1 AND NOT coalesce(e.is_cleared, false)",
    }
}

/// One page of the visible logs, newest first, and how many are visible in all.
pub async fn list_error_logs(
    client: &impl GenericClient,
    visibility: &LogVisibility,
    page_size: i64,
    page_no: i64,
) -> Result<(Vec<ErrorLogRow>, i64), QueryError> {
    let condition = visibility_condition(visibility);
    // A hostile page number must not overflow the offset (PostgreSQL then answers an empty page).
    let offset = (page_no.max(1) - 1).saturating_mul(page_size);
    let domain;
    let user;
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
    match visibility {
        LogVisibility::All => {}
        LogVisibility::Domain(name) => {
            domain = name.clone();
            params.push(&domain);
        }
        LogVisibility::Own(id) => {
            user = *id;
            params.push(&user);
        }
    }
    let next = params.len() + 1;
    let select = format!(
        "SELECT e.id, e.created_at, e.severity::text, e.source, e.\"user\", e.is_read,
                e.is_cleared, e.message, e.context_lang, e.context_env, e.request_url,
                e.request_status, e.traceback
           FROM error_logs e WHERE {condition}
          ORDER BY e.created_at DESC, e.id LIMIT ${next} OFFSET ${}",
        next + 1
    );
    let mut page_params = params.clone();
    page_params.push(&page_size);
    page_params.push(&offset);
    let rows = client
        .query(&select, &page_params)
        .await
        .map_err(db_err("listing error logs"))?
        .iter()
        .map(|row| {
            Ok(ErrorLogRow {
                id: row.read(0)?,
                created_at: row.read(1)?,
                severity: row.read(2)?,
                source: row.read(3)?,
                user: row.read(4)?,
                is_read: row.read(5)?,
                is_cleared: row.read(6)?,
                message: row.read(7)?,
                context_lang: row.read(8)?,
                context_env: row.read(9)?,
                request_url: row.read(10)?,
                request_status: row.read(11)?,
                traceback: row.read(12)?,
            })
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    let count: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM error_logs e WHERE {condition}"),
            &params,
        )
        .await
        .map_err(db_err("counting error logs"))?
        .read(0)?;
    Ok((rows, count))
}

pub async fn mark_read(client: &impl GenericClient, ids: &[Uuid]) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE error_logs SET is_read = true WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db_err("marking error logs read"))?;
    Ok(())
}

/// Marks one log cleared if the caller may see it; how many rows changed (0 or 1).
pub async fn mark_cleared(
    client: &impl GenericClient,
    visibility: &LogVisibility,
    id: Uuid,
) -> Result<u64, QueryError> {
    // Users may clear their own logs, cleared or not (the original's condition).
    let (condition, param): (&str, Option<Box<dyn tokio_postgres::types::ToSql + Sync>>) =
        match visibility {
            LogVisibility::All => ("true", None),
            LogVisibility::Domain(name) => (
                visibility_condition(visibility),
                Some(Box::new(name.clone())),
            ),
            LogVisibility::Own(user) => ("e.\"user\" = $1", Some(Box::new(*user))),
        };
    let (statement, params): (String, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>) =
        match &param {
            None => (
                "UPDATE error_logs e SET is_cleared = true WHERE e.id = $1".to_owned(),
                vec![&id],
            ),
            Some(param) => (
                format!(
                    "UPDATE error_logs e SET is_cleared = true WHERE {condition} AND e.id = $2"
                ),
                vec![param.as_ref(), &id],
            ),
        };
    client
        .execute(&statement, &params)
        .await
        .map_err(db_err("clearing an error log"))
}

/// Deletes the logs filed before `boundary`; how many.
pub async fn delete_before(
    client: &impl GenericClient,
    boundary: DateTime<Utc>,
) -> Result<u64, QueryError> {
    client
        .execute("DELETE FROM error_logs WHERE created_at < $1", &[&boundary])
        .await
        .map_err(db_err("deleting old error logs"))
}
