//! Sharing virtual folders: invitations (sent by a folder's owner to other users by email,
//! accepted, rejected or cancelled), the per-user grants they create in
//! `vfolder_permissions`, direct shares of project folders, and the folder options an owner
//! may change. Invitations name users by email, as the original's `inviter`/`invitee` do.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{QueryError, db_err};
use crate::enums::{VFolderInvitationState, VFolderPermission};

/// One row of `vfolder_invitations` with its folder's name.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: Uuid,
    pub inviter: Option<String>,
    pub invitee: String,
    pub permission: Option<VFolderPermission>,
    pub state: Option<VFolderInvitationState>,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
    pub vfolder_id: Uuid,
    pub vfolder_name: String,
}

const INVITATION_COLUMNS: &str = "i.id, i.inviter, i.invitee, i.permission, i.state, \
     i.created_at, i.modified_at, i.vfolder, v.name";

fn invitation(row: &Row) -> Result<Invitation, QueryError> {
    let read = db_err("reading a vfolder invitation");
    let decode = || -> Result<Invitation, tokio_postgres::Error> {
        Ok(Invitation {
            id: row.try_get(0)?,
            inviter: row.try_get(1)?,
            invitee: row.try_get(2)?,
            permission: row.try_get(3)?,
            state: row.try_get(4)?,
            created_at: row.try_get(5)?,
            modified_at: row.try_get(6)?,
            vfolder_id: row.try_get(7)?,
            vfolder_name: row.try_get(8)?,
        })
    };
    decode().map_err(read)
}

/// Whose pending invitations to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationSide {
    /// Invitations the user received.
    Invitee,
    /// Invitations the user sent.
    Inviter,
}

/// The pending invitations `email` received or sent, oldest first.
pub async fn pending_invitations(
    client: &impl GenericClient,
    email: &str,
    side: InvitationSide,
) -> Result<Vec<Invitation>, QueryError> {
    let column = match side {
        InvitationSide::Invitee => "i.invitee",
        InvitationSide::Inviter => "i.inviter",
    };
    let sql = format!(
        "SELECT {INVITATION_COLUMNS} FROM vfolder_invitations i JOIN vfolders v ON v.id = i.vfolder \
         WHERE {column} = $1 AND i.state = 'pending' ORDER BY i.created_at, i.id"
    );
    let statement = client
        .prepare_cached(&sql)
        .await
        .map_err(db_err("preparing the vfolder invitation list"))?;
    let rows = client
        .query(&statement, &[&email])
        .await
        .map_err(db_err("listing vfolder invitations"))?;
    rows.iter().map(invitation).collect()
}

/// The pending invitation `id`, locked for the rest of the transaction.
pub async fn lock_pending_invitation(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Invitation>, QueryError> {
    let sql = format!(
        "SELECT {INVITATION_COLUMNS} FROM vfolder_invitations i JOIN vfolders v ON v.id = i.vfolder \
         WHERE i.id = $1 AND i.state = 'pending' FOR UPDATE OF i"
    );
    let row = client
        .query_opt(&sql, &[&id])
        .await
        .map_err(db_err("looking up a vfolder invitation"))?;
    row.as_ref().map(invitation).transpose()
}

/// Moves invitation `id` to `state`.
pub async fn set_invitation_state(
    client: &impl GenericClient,
    id: Uuid,
    state: VFolderInvitationState,
) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE vfolder_invitations SET state = $2, modified_at = now() WHERE id = $1",
            &[&id, &state],
        )
        .await
        .map_err(db_err("changing a vfolder invitation's state"))?;
    Ok(())
}

/// Changes the permission of a pending invitation `inviter` sent; how many rows changed.
pub async fn update_invitation_permission(
    client: &impl GenericClient,
    id: Uuid,
    inviter: &str,
    permission: VFolderPermission,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE vfolder_invitations SET permission = $3, modified_at = now() \
             WHERE id = $1 AND inviter = $2 AND state = 'pending'",
            &[&id, &inviter, &permission],
        )
        .await
        .map_err(db_err("changing a vfolder invitation's permission"))
}

/// The folder `owner` owns under `name`: its id.
pub async fn owned_folder_id(
    client: &impl GenericClient,
    owner: Uuid,
    name: &str,
) -> Result<Option<Uuid>, QueryError> {
    let row = client
        .query_opt(
            "SELECT id FROM vfolders WHERE \"user\" = $1 AND name = $2 LIMIT 1",
            &[&owner, &name],
        )
        .await
        .map_err(db_err("looking up an owned vfolder"))?;
    row.map(|row| row.try_get(0))
        .transpose()
        .map_err(db_err("reading an owned vfolder"))
}

/// A user an invitation may go to: the email of a keypair and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitee {
    pub email: String,
    pub user: Uuid,
}

/// The users with a keypair under one of `emails`, except `inviter` (the original looks the
/// invitees up through `keypairs.user_id`).
pub async fn invitees(
    client: &impl GenericClient,
    emails: &[String],
    inviter: &str,
) -> Result<Vec<Invitee>, QueryError> {
    let rows = client
        .query(
            "SELECT DISTINCT user_id, \"user\" FROM keypairs \
             WHERE user_id = ANY($1) AND user_id <> $2 AND \"user\" IS NOT NULL \
             ORDER BY user_id",
            &[&emails, &inviter],
        )
        .await
        .map_err(db_err("looking up the invited users"))?;
    rows.iter()
        .map(|row| {
            Ok(Invitee {
                email: row.try_get(0)?,
                user: row.try_get(1)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db_err("reading the invited users"))
}

/// How many of `users` already reach a folder named `name` (owned, or shared with them):
/// such a user cannot take another folder of that name.
pub async fn count_name_holders(
    client: &impl GenericClient,
    users: &[Uuid],
    name: &str,
) -> Result<i64, QueryError> {
    let row = client
        .query_one(
            "SELECT count(*) FROM vfolders v LEFT JOIN vfolder_permissions p ON p.vfolder = v.id \
             WHERE v.name = $2 AND (v.\"user\" = ANY($1) OR p.\"user\" = ANY($1))",
            &[&users, &name],
        )
        .await
        .map_err(db_err("checking the invitees' folder names"))?;
    row.try_get(0)
        .map_err(db_err("reading the invitees' folder names"))
}

/// Creates a pending invitation unless `inviter` already has one pending for `invitee` and
/// this folder; whether one was created.
pub async fn insert_invitation(
    client: &impl GenericClient,
    folder: Uuid,
    inviter: &str,
    invitee: &str,
    permission: VFolderPermission,
) -> Result<bool, QueryError> {
    let inserted = client
        .execute(
            "INSERT INTO vfolder_invitations (id, permission, vfolder, inviter, invitee, state) \
             SELECT uuid_generate_v4(), $4::vfolderpermission, $1::uuid, $2::varchar, $3::varchar, \
                 'pending' \
             WHERE NOT EXISTS (SELECT 1 FROM vfolder_invitations WHERE vfolder = $1::uuid \
                 AND inviter = $2::varchar AND invitee = $3::varchar AND state = 'pending')",
            &[&folder, &inviter, &invitee, &permission],
        )
        .await
        .map_err(db_err("creating a vfolder invitation"))?;
    Ok(inserted > 0)
}

/// Grants `user` `permission` on `folder`, or changes an existing grant.
pub async fn upsert_permission(
    client: &impl GenericClient,
    folder: Uuid,
    user: Uuid,
    permission: VFolderPermission,
) -> Result<(), QueryError> {
    let updated = client
        .execute(
            "UPDATE vfolder_permissions SET permission = $3 WHERE vfolder = $1 AND \"user\" = $2",
            &[&folder, &user, &permission],
        )
        .await
        .map_err(db_err("changing a vfolder grant"))?;
    if updated == 0 {
        client
            .execute(
                "INSERT INTO vfolder_permissions (permission, vfolder, \"user\") VALUES ($3, $1, $2)",
                &[&folder, &user, &permission],
            )
            .await
            .map_err(db_err("granting a vfolder"))?;
    }
    Ok(())
}

/// Removes the grants of `users` on `folder`; how many were removed.
pub async fn delete_permissions(
    client: &impl GenericClient,
    folder: Uuid,
    users: &[Uuid],
) -> Result<u64, QueryError> {
    client
        .execute(
            "DELETE FROM vfolder_permissions WHERE vfolder = $1 AND \"user\" = ANY($2)",
            &[&folder, &users],
        )
        .await
        .map_err(db_err("removing vfolder grants"))
}

/// A project folder named `name`, found for a direct share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFolder {
    pub id: Uuid,
    pub group: Uuid,
}

/// The project folders named `name`, in `domain` (every domain when `None`).
pub async fn project_folders_named(
    client: &impl GenericClient,
    name: &str,
    domain: Option<&str>,
) -> Result<Vec<ProjectFolder>, QueryError> {
    let rows = client
        .query(
            "SELECT v.id, v.\"group\" FROM vfolders v JOIN groups g ON g.id = v.\"group\" \
             WHERE v.ownership_type = 'group' AND v.name = $1 \
               AND ($2::text IS NULL OR g.domain_name = $2) ORDER BY v.id",
            &[&name, &domain],
        )
        .await
        .map_err(db_err("looking up a project folder"))?;
    rows.iter()
        .map(|row| {
            Ok(ProjectFolder {
                id: row.try_get(0)?,
                group: row.try_get(1)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db_err("reading a project folder"))
}

/// A user named by email: id and email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub uuid: Uuid,
    pub email: String,
}

fn user_refs(rows: &[Row]) -> Result<Vec<UserRef>, QueryError> {
    rows.iter()
        .map(|row| {
            Ok(UserRef {
                uuid: row.try_get(0)?,
                email: row.try_get(1)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db_err("reading users"))
}

/// The members of `group` among `emails`, except `except`.
pub async fn group_members_by_email(
    client: &impl GenericClient,
    group: Uuid,
    emails: &[String],
    except: &str,
) -> Result<Vec<UserRef>, QueryError> {
    let rows = client
        .query(
            "SELECT u.uuid, u.email FROM users u \
             JOIN association_groups_users a ON a.user_id = u.uuid \
             WHERE a.group_id = $1 AND u.email = ANY($2) AND u.email <> $3 ORDER BY u.email",
            &[&group, &emails, &except],
        )
        .await
        .map_err(db_err("looking up the project's members"))?;
    user_refs(&rows)
}

/// The users among `emails`.
pub async fn users_by_email(
    client: &impl GenericClient,
    emails: &[String],
) -> Result<Vec<UserRef>, QueryError> {
    let rows = client
        .query(
            "SELECT uuid, email FROM users WHERE email = ANY($1) ORDER BY email",
            &[&emails],
        )
        .await
        .map_err(db_err("looking up users"))?;
    user_refs(&rows)
}

/// One grant of a folder to a user, as `GET /folders/_/shared` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedGrant {
    pub vfolder_id: Uuid,
    pub vfolder_name: String,
    pub status: String,
    pub owner_user: Option<Uuid>,
    pub owner_group: Option<Uuid>,
    pub shared_to: Uuid,
    pub shared_to_email: String,
    pub permission: Option<VFolderPermission>,
}

/// The grants of every folder (`visible_to` = `None`), or of the folders `visible_to` owns or
/// was granted; only folder `folder` when given.
pub async fn shared_grants(
    client: &impl GenericClient,
    visible_to: Option<Uuid>,
    folder: Option<Uuid>,
) -> Result<Vec<SharedGrant>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT v.id, v.name, v.status, v.\"user\", v.\"group\", p.\"user\", u.email, p.permission \
             FROM vfolder_permissions p JOIN vfolders v ON v.id = p.vfolder \
             JOIN users u ON u.uuid = p.\"user\" \
             WHERE ($1::uuid IS NULL OR v.\"user\" = $1 OR p.\"user\" = $1) \
               AND ($2::uuid IS NULL OR v.id = $2) \
             ORDER BY v.name, u.email",
        )
        .await
        .map_err(db_err("preparing the shared vfolder list"))?;
    let rows = client
        .query(&statement, &[&visible_to, &folder])
        .await
        .map_err(db_err("listing shared vfolders"))?;
    rows.iter()
        .map(|row| {
            Ok(SharedGrant {
                vfolder_id: row.try_get(0)?,
                vfolder_name: row.try_get(1)?,
                status: row.try_get(2)?,
                owner_user: row.try_get(3)?,
                owner_group: row.try_get(4)?,
                shared_to: row.try_get(5)?,
                shared_to_email: row.try_get(6)?,
                permission: row.try_get(7)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db_err("reading shared vfolders"))
}

/// The owner of folder `id`: its user (for user folders).
pub async fn folder_owner(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Option<Uuid>>, QueryError> {
    let row = client
        .query_opt("SELECT \"user\" FROM vfolders WHERE id = $1", &[&id])
        .await
        .map_err(db_err("looking up a vfolder's owner"))?;
    row.map(|row| row.try_get(0))
        .transpose()
        .map_err(db_err("reading a vfolder's owner"))
}

/// Sets the options an owner may change (`None` leaves one as it is).
pub async fn update_folder_options(
    client: &impl GenericClient,
    id: Uuid,
    cloneable: Option<bool>,
    permission: Option<VFolderPermission>,
) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE vfolders SET cloneable = coalesce($2, cloneable), \
                 permission = coalesce($3, permission) WHERE id = $1",
            &[&id, &cloneable, &permission],
        )
        .await
        .map_err(db_err("changing a vfolder's options"))?;
    Ok(())
}
