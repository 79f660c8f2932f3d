//! `GET /events/session`: server-sent events about sessions and their kernels, filtered as
//! the original does (by session name or id, owner, group and scope; users see only their own
//! sessions, admins their domain's).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use bai_schema::enums::UserRole;
use bai_schema::queries::group::find_group_id_by_name;
use futures::stream;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::event_bus::session_feed::SessionEventRecord;
use crate::facade::access::Access;
use crate::facade::auth::{AuthContext, Authenticated};
use crate::facade::event_feed::{self, FeedData};
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;

/// How often an idle event stream gets a comment line, so proxies keep it open and a gone
/// client is noticed (aiohttp-sse's default ping interval).
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/events/session",
        web::get()
            .to(session_events)
            .wrap(Access::user().read_allowed()),
    );
}

/// Which events one stream wants.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFilter {
    pub session_name: String,
    pub session_id: Option<Uuid>,
    pub owner_access_key: String,
    pub group_id: Option<Uuid>,
    /// `*`, `session` or `kernel`.
    pub scope: String,
    pub viewer_role: UserRole,
    pub viewer_domain: String,
    pub viewer_uuid: Uuid,
}

impl EventFilter {
    /// Whether the viewer gets `record`.
    pub fn admits(&self, record: &SessionEventRecord) -> bool {
        let subject = &record.subject;
        if matches!(self.viewer_role, UserRole::User | UserRole::Admin)
            && subject.domain_name != self.viewer_domain
        {
            return false;
        }
        if self.viewer_role == UserRole::User && subject.user_uuid != self.viewer_uuid {
            return false;
        }
        if self.group_id.is_some_and(|group| group != subject.group_id) {
            return false;
        }
        match self.scope.as_str() {
            "session" if !record.name.starts_with("session_") => return false,
            "kernel" if !record.name.starts_with("kernel_") => return false,
            _ => {}
        }
        match self.session_id {
            Some(id) => subject.session_id == id,
            None => {
                self.session_name == "*"
                    || (subject.session_name == self.session_name
                        && subject.access_key.as_deref() == Some(self.owner_access_key.as_str()))
            }
        }
    }
}

/// One server-sent event: `event: <name>` and the JSON `data:` line.
pub fn render_event(record: &SessionEventRecord) -> String {
    let subject = &record.subject;
    let mut data = Map::new();
    data.insert("reason".into(), json!(record.reason));
    data.insert("sessionName".into(), json!(subject.session_name));
    data.insert("ownerAccessKey".into(), json!(subject.access_key));
    data.insert("sessionId".into(), json!(subject.session_id.to_string()));
    data.insert("exitCode".into(), json!(record.exit_code));
    data.insert("kernelId".into(), json!(subject.kernel_id.to_string()));
    if let Some(role) = &subject.cluster_role {
        data.insert("clusterRole".into(), json!(role));
    }
    if let Some(idx) = subject.cluster_idx.filter(|idx| *idx != 0) {
        data.insert("clusterIdx".into(), json!(idx));
    }
    format!(
        "event: {}\r\ndata: {}\r\n\r\n",
        record.name,
        Value::Object(data)
    )
}

/// `GET /events/session`.
async fn session_events(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
    feed: FeedData,
) -> Result<HttpResponse, Problem> {
    let filter = read_filter(&caller, &params, &state).await?;
    slog::info!(state.log, "PUSH_SESSION_EVENTS";
        "access_key" => &filter.owner_access_key, "session" => &filter.session_name);
    let receiver = event_feed::subscribe(feed, &state.log, "cannot read the event stream").await?;
    let stopping = state.pipeline.stopping.clone();
    let events = stream::unfold((receiver, filter), move |(mut receiver, filter)| {
        let stopping = stopping.clone();
        async move {
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout(PING_INTERVAL, receiver.recv()) => next,
                    // The worker is stopping: end the stream now rather than at the drain timeout.
                    () = stopping.cancelled() => return None,
                };
                let chunk = match next {
                    Err(_) => ": ping\r\n\r\n".to_owned(),
                    Ok(Ok(record)) if filter.admits(&record) => render_event(&record),
                    Ok(Ok(_)) => continue,
                    // A slow reader skipped events; it keeps going with the newest ones.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                };
                return Some((
                    Ok::<Bytes, actix_web::Error>(Bytes::from(chunk)),
                    (receiver, filter),
                ));
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(events))
}

async fn read_filter(
    caller: &AuthContext,
    params: &ApiParams,
    state: &AppState,
) -> Result<EventFilter, Problem> {
    let session_name = params
        .opt_string(&["name", "sessionName"])?
        .unwrap_or_else(|| "*".to_owned());
    let owner_access_key = params
        .opt_string(&["ownerAccessKey"])?
        .unwrap_or_else(|| caller.access_key.clone());
    if caller.role() == UserRole::User && owner_access_key != caller.access_key {
        return Err(Problem::new(ProblemKind::GenericForbidden));
    }
    let session_id = params
        .opt_string(&["sessionId"])?
        .map(|text| {
            Uuid::parse_str(&text).map_err(|_| invalid_param("sessionId", "value is not a UUID"))
        })
        .transpose()?;
    let scope = params
        .opt_string(&["scope"])?
        .unwrap_or_else(|| "*".to_owned());
    if !matches!(scope.as_str(), "*" | "session" | "kernel") {
        return Err(invalid_param("scope", "value is not *, session or kernel"));
    }
    let group_name = params
        .opt_string(&["group", "groupName"])?
        .unwrap_or_else(|| "*".to_owned());
    let group_id = if group_name == "*" {
        None
    } else {
        let client = db_client(state).await?;
        let found = find_group_id_by_name(&client, &group_name, caller.domain_name())
            .await
            .map_err(query_failed(state, "looking up the group"))?;
        Some(found.ok_or_else(|| Problem::not_found("user group (or project)"))?)
    };
    Ok(EventFilter {
        session_name,
        session_id,
        owner_access_key,
        group_id,
        scope,
        viewer_role: caller.role(),
        viewer_domain: caller.domain_name().to_owned(),
        viewer_uuid: caller.user_uuid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bai_schema::queries::session::EventSubject;

    fn record(name: &str, user: Uuid, domain: &str) -> SessionEventRecord {
        SessionEventRecord {
            name: name.into(),
            reason: "user-requested".into(),
            exit_code: None,
            subject: EventSubject {
                session_id: Uuid::nil(),
                session_name: "sess1".into(),
                access_key: Some("AKUSER".into()),
                domain_name: domain.into(),
                group_id: Uuid::nil(),
                user_uuid: user,
                kernel_id: Uuid::max(),
                cluster_role: Some("main".into()),
                cluster_idx: Some(1),
            },
        }
    }

    fn filter(role: UserRole, viewer: Uuid) -> EventFilter {
        EventFilter {
            session_name: "*".into(),
            session_id: None,
            owner_access_key: "AKUSER".into(),
            group_id: None,
            scope: "*".into(),
            viewer_role: role,
            viewer_domain: "default".into(),
            viewer_uuid: viewer,
        }
    }

    #[test]
    fn users_see_their_sessions_and_admins_their_domain() {
        let me = Uuid::new_v4();
        let other = Uuid::new_v4();
        assert!(filter(UserRole::User, me).admits(&record("session_enqueued", me, "default")));
        assert!(!filter(UserRole::User, me).admits(&record("session_enqueued", other, "default")));
        assert!(filter(UserRole::Admin, me).admits(&record("session_enqueued", other, "default")));
        assert!(!filter(UserRole::Admin, me).admits(&record("kernel_started", other, "other")));
        assert!(filter(UserRole::Superadmin, me).admits(&record("kernel_started", other, "other")));
        let mut sessions_only = filter(UserRole::User, me);
        sessions_only.scope = "session".into();
        assert!(!sessions_only.admits(&record("kernel_started", me, "default")));
        let mut by_name = filter(UserRole::User, me);
        by_name.session_name = "other".into();
        assert!(!by_name.admits(&record("session_started", me, "default")));
    }

    #[test]
    fn events_render_as_the_original() {
        let text = render_event(&record("kernel_cancelled", Uuid::nil(), "default"));
        assert_eq!(
            text,
            "event: kernel_cancelled\r\ndata: {\"reason\":\"user-requested\",\"sessionName\":\"sess1\",\"ownerAccessKey\":\"AKUSER\",\"sessionId\":\"00000000-0000-0000-0000-000000000000\",\"exitCode\":null,\"kernelId\":\"ffffffff-ffff-ffff-ffff-ffffffffffff\",\"clusterRole\":\"main\",\"clusterIdx\":1}\r\n\r\n"
        );
    }
}
