//! `/resource`: the resource presets (`GET /resource/presets`) and what the caller could still
//! allocate with each (`POST /resource/check-presets`).

use actix_web::{HttpResponse, web};
use bai_schema::enums::DefaultForUnspecified;
use bai_schema::queries::resource::{
    OccupancyScope, alive_agent_capacity, domain_total_slots, find_member_group, list_presets,
    occupied_slots, user_usage_by_scaling_group,
};
use bai_schema::queries::scaling_group::{GroupRef, allowed_scaling_groups};
use serde_json::{Value, json};

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::preset_check::{PresetCheckInput, check_presets};
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::routes::{db_client, etcd_failed, query_failed};
use crate::facade::state::AppState;

/// The etcd key that makes group numbers visible in `check-presets`.
pub const GROUP_VISIBILITY_KEY: &str = "config/api/resources/group_resource_visibility";

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/resource/presets",
        web::get().to(list).wrap(Access::user()),
    );
    cfg.route(
        "/resource/check-presets",
        web::post().to(check).wrap(Access::user().read_allowed()),
    );
}

/// `GET /resource/presets`: every preset, slots limited to the known slot types.
async fn list(_caller: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let known = state
        .pipeline
        .slot_types
        .current(&state.etcd)
        .await
        .map_err(etcd_failed(&state, "reading the resource slot types"))?;
    let client = db_client(&state).await?;
    let presets = list_presets(&client)
        .await
        .map_err(query_failed(&state, "listing resource presets"))?;
    let presets: Vec<Value> = presets
        .into_iter()
        .map(|preset| {
            json!({
                "name": preset.name,
                "shared_memory": preset.shared_memory.filter(|b| *b != 0).map(|b| b.to_string()),
                "resource_slots": preset.resource_slots.normalized_to(known.keys()).to_json(),
            })
        })
        .collect();
    Ok(reply::json(&json!({ "presets": presets })))
}

/// `POST /resource/check-presets {scaling_group, group}`.
async fn check(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let scaling_group = params.opt_string(&["scaling_group"])?;
    let group = params
        .opt_string(&["group"])?
        .unwrap_or_else(|| "default".to_owned());
    slog::info!(state.log, "CHECK_PRESETS";
        "access_key" => &caller.access_key, "group" => &group, "scaling_group" => ?scaling_group);
    let known = state
        .pipeline
        .slot_types
        .current(&state.etcd)
        .await
        .map_err(etcd_failed(&state, "reading the resource slot types"))?;
    let group_visible = state
        .etcd
        .get(GROUP_VISIBILITY_KEY)
        .await
        .map_err(etcd_failed(&state, "reading the group resource visibility"))?
        .is_some_and(|text| is_truthy(&text));
    let domain = caller.domain_name().to_owned();
    let client = db_client(&state).await?;
    let failed = |doing| query_failed(&state, doing);

    let member_group = find_member_group(&client, caller.user_uuid(), &group, &domain)
        .await
        .map_err(failed("looking up the group"))?
        .ok_or_else(|| Problem::invalid_params("Unknown user group"))?;
    let keypair_occupied = occupied_slots(&client, OccupancyScope::AccessKey(&caller.access_key))
        .await
        .map_err(failed("summing the keypair's usage"))?;
    let group_occupied = occupied_slots(&client, OccupancyScope::Group(member_group.id))
        .await
        .map_err(failed("summing the group's usage"))?;
    let domain_slots = domain_total_slots(&client, &domain)
        .await
        .map_err(failed("reading the domain limits"))?
        .unwrap_or_default();
    let domain_occupied = occupied_slots(&client, OccupancyScope::Domain(&domain))
        .await
        .map_err(failed("summing the domain's usage"))?;
    let mut scaling_groups: Vec<String> = allowed_scaling_groups(
        &client,
        &domain,
        &GroupRef::Id(member_group.id),
        &caller.access_key,
    )
    .await
    .map_err(failed("listing the allowed scaling groups"))?
    .into_iter()
    .map(|group| group.name)
    .collect();
    if let Some(wanted) = scaling_group {
        if !scaling_groups.contains(&wanted) {
            return Err(Problem::invalid_params("Unknown scaling group"));
        }
        scaling_groups = vec![wanted];
    }
    let usage_by_scaling_group =
        user_usage_by_scaling_group(&client, caller.user_uuid(), &scaling_groups)
            .await
            .map_err(failed("summing usage per scaling group"))?;
    let agents = alive_agent_capacity(&client, &scaling_groups)
        .await
        .map_err(failed("reading agent capacity"))?;
    let presets = list_presets(&client)
        .await
        .map_err(failed("listing resource presets"))?;

    let input = PresetCheckInput {
        known: (*known).clone(),
        keypair_policy_slots: caller.resource_policy.total_resource_slots.clone(),
        keypair_unspecified_unlimited: caller.resource_policy.default_for_unspecified
            == DefaultForUnspecified::Unlimited,
        keypair_occupied,
        group_slots: member_group.total_resource_slots,
        group_occupied,
        domain_slots,
        domain_occupied,
        scaling_groups,
        usage_by_scaling_group,
        agents,
        presets,
        group_visible,
    };
    Ok(reply::json(&check_presets(&input)))
}

/// trafaret's `ToBool` on a stored string.
fn is_truthy(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "t" | "true" | "y" | "yes" | "on" | "1"
    )
}
