//! Session and cluster templates (`session_templates`, `type` TASK or CLUSTER): create, list
//! what a user may see, read, replace and deactivate, and the project a template belongs to.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, db_err};
use crate::enums::TemplateType;

/// A template row with its owner's email and its project's name.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub domain_name: String,
    pub group_id: Option<Uuid>,
    pub user_uuid: Uuid,
    pub kind: TemplateType,
    pub name: Option<String>,
    pub template: Value,
    pub user_email: Option<String>,
    pub group_name: Option<String>,
}

const COLUMNS: &str = "t.id, t.created_at, t.domain_name, t.group_id, t.user_uuid, t.type, \
     t.name, t.template, u.email, g.name";

const FROM: &str = "session_templates t LEFT JOIN users u ON u.uuid = t.user_uuid \
     LEFT JOIN groups g ON g.id = t.group_id";

fn template_row(row: &tokio_postgres::Row) -> Result<TemplateRow, tokio_postgres::Error> {
    Ok(TemplateRow {
        id: row.try_get(0)?,
        created_at: row.try_get(1)?,
        domain_name: row.try_get(2)?,
        group_id: row.try_get(3)?,
        user_uuid: row.try_get(4)?,
        kind: row.try_get(5)?,
        name: row.try_get(6)?,
        template: row.try_get(7)?,
        user_email: row.try_get(8)?,
        group_name: row.try_get(9)?,
    })
}

/// A new template.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTemplate {
    pub id: Uuid,
    pub domain_name: String,
    pub group_id: Option<Uuid>,
    pub user_uuid: Uuid,
    pub kind: TemplateType,
    pub name: String,
    pub template: Value,
}

pub async fn insert_template(
    client: &impl GenericClient,
    new: &NewTemplate,
) -> Result<(), QueryError> {
    client
        .execute(
            "INSERT INTO session_templates (id, domain_name, group_id, user_uuid, type, name, template) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &new.id,
                &new.domain_name,
                &new.group_id,
                &new.user_uuid,
                &new.kind,
                &new.name,
                &new.template,
            ],
        )
        .await
        .map_err(db_err("creating a template"))?;
    Ok(())
}

/// The active templates of `kind` that `visible_to` owns or shares a project with (every one
/// when `None`), oldest first.
pub async fn list_templates(
    client: &impl GenericClient,
    kind: TemplateType,
    visible_to: Option<Uuid>,
) -> Result<Vec<TemplateRow>, QueryError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE t.is_active AND t.type = $1 \
           AND ($2::uuid IS NULL OR t.user_uuid = $2 OR t.group_id IN \
                (SELECT group_id FROM association_groups_users WHERE user_id = $2)) \
         ORDER BY t.created_at, t.id"
    );
    let rows = client
        .query(&sql, &[&kind, &visible_to])
        .await
        .map_err(db_err("listing templates"))?;
    rows.iter()
        .map(template_row)
        .collect::<Result<_, _>>()
        .map_err(db_err("reading templates"))
}

/// The active template `id` of `kind`.
pub async fn find_template(
    client: &impl GenericClient,
    id: Uuid,
    kind: TemplateType,
) -> Result<Option<TemplateRow>, QueryError> {
    let sql =
        format!("SELECT {COLUMNS} FROM {FROM} WHERE t.id = $1 AND t.is_active AND t.type = $2");
    let row = client
        .query_opt(&sql, &[&id, &kind])
        .await
        .map_err(db_err("looking up a template"))?;
    row.as_ref()
        .map(template_row)
        .transpose()
        .map_err(db_err("reading a template"))
}

/// Replaces the active template `id` of `kind`; whether it existed.
pub async fn update_template(
    client: &impl GenericClient,
    id: Uuid,
    kind: TemplateType,
    group_id: Option<Uuid>,
    user_uuid: Uuid,
    name: &str,
    template: &Value,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE session_templates SET group_id = $3, user_uuid = $4, name = $5, template = $6 \
             WHERE id = $1 AND is_active AND type = $2",
            &[&id, &kind, &group_id, &user_uuid, &name, &template],
        )
        .await
        .map_err(db_err("replacing a template"))?;
    Ok(updated > 0)
}

/// Deactivates the template `id` of `kind` (the original keeps the row); whether it existed.
pub async fn deactivate_template(
    client: &impl GenericClient,
    id: Uuid,
    kind: TemplateType,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE session_templates SET is_active = false \
             WHERE id = $1 AND is_active AND type = $2",
            &[&id, &kind],
        )
        .await
        .map_err(db_err("deleting a template"))?;
    Ok(updated > 0)
}

/// The active project `name` in `domain`, if `member` belongs to it (any member when `None`).
pub async fn project_for_template(
    client: &impl GenericClient,
    domain: &str,
    name: &str,
    member: Option<Uuid>,
) -> Result<Option<Uuid>, QueryError> {
    let row = client
        .query_opt(
            "SELECT g.id FROM groups g WHERE g.domain_name = $1 AND g.name = $2 AND g.is_active \
               AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM association_groups_users a \
                    WHERE a.group_id = g.id AND a.user_id = $3))",
            &[&domain, &name, &member],
        )
        .await
        .map_err(db_err("looking up a template's project"))?;
    row.map(|row| row.try_get(0))
        .transpose()
        .map_err(db_err("reading a template's project"))
}
