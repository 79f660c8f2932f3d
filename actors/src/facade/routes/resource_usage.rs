//! `/resource/usage/month`, `/resource/usage/period` (superadmin usage reports per project),
//! `/resource/stats/user/month` (the Statistics page), `/resource/stats/admin/month` and
//! `/resource/recalculate-usage`, as the original's `resource.py`. Kernel statistics come from
//! `kernels.last_stat`, or from the agents' live statistics in Redis (`stat`, key = kernel id,
//! msgpack) for a kernel that has none stored yet. Dates are in UTC (the original's default
//! `system.timezone`).

use actix_web::{HttpResponse, web};
use bai_schema::queries::usage as queries;
use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;
use crate::facade::usage_report::{
    MAX_USAGE_PERIOD_DAYS, STAT_PERIOD_DAYS, monthly_bins, usage_report,
};
use crate::wire::msgpack;
use crate::wire::msgpack_json::msgpack_to_json;

/// The most kernel statistics read from Redis in one `MGET`, so a large report does not send
/// one huge command.
pub const STAT_MGET_BATCH: usize = 1000;

pub fn register(cfg: &mut web::ServiceConfig) {
    let superadmin = || Access::superadmin().read_allowed();
    cfg.route(
        "/resource/recalculate-usage",
        web::post().to(recalculate_usage).wrap(superadmin()),
    );
    cfg.route(
        "/resource/usage/month",
        web::get().to(usage_per_month).wrap(superadmin()),
    );
    cfg.route(
        "/resource/usage/period",
        web::get().to(usage_per_period).wrap(superadmin()),
    );
    cfg.route(
        "/resource/stats/user/month",
        web::get()
            .to(user_month_stats)
            .wrap(Access::user().read_allowed()),
    );
    cfg.route(
        "/resource/stats/admin/month",
        web::get().to(admin_month_stats).wrap(superadmin()),
    );
}

/// The live statistics of `ids` in Redis (missing, undecodable or unreachable ones are
/// `None`; the reports then skip or zero them, as the original does).
async fn redis_stats(state: &AppState, ids: &[Uuid]) -> Vec<Option<Value>> {
    let mut stats = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(STAT_MGET_BATCH) {
        let keys: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
        let mut connection = state.redis.stat.clone();
        let raw: Vec<Option<Vec<u8>>> = match redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await
        {
            Ok(raw) => raw,
            Err(e) => {
                slog::warn!(state.log, "cannot read kernel statistics from redis"; "error" => %e);
                vec![None; chunk.len()]
            }
        };
        stats.extend(raw.into_iter().map(|bytes| {
            bytes
                .and_then(|b| msgpack::decode(&b).ok())
                .map(|value| msgpack_to_json(&value))
        }));
    }
    stats
}

fn date_param(params: &ApiParams, key: &str, digits: usize) -> Result<String, Problem> {
    let text = params.string(&[key])?;
    let prefix: String = text.chars().take(digits).collect();
    if prefix.len() != digits || !prefix.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid_param(
            key,
            format!("value does not match the pattern of {digits} digits"),
        ));
    }
    Ok(text)
}

fn invalid_dates() -> Problem {
    Problem::invalid_params("Invalid date values")
}

/// `group_ids`: a list, one id, or absent.
fn group_ids_param(params: &ApiParams) -> Result<Option<Vec<Uuid>>, Problem> {
    let parse = |text: &str| {
        Uuid::parse_str(text).map_err(|_| invalid_param("group_ids", "value is not a valid UUID"))
    };
    match params.raw(&["group_ids"]) {
        None | Some((_, Value::Null)) => Ok(None),
        Some((_, Value::String(text))) => Ok(Some(vec![parse(text)?])),
        Some((_, Value::Array(items))) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| invalid_param("group_ids", "value is not a string"))
                    .and_then(parse)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid_param("group_ids", "value is not a list")),
    }
}

async fn report(
    state: &AppState,
    start: chrono::DateTime<Utc>,
    end: chrono::DateTime<Utc>,
    groups: Option<Vec<Uuid>>,
) -> Result<HttpResponse, Problem> {
    let client = db_client(state).await?;
    let kernels = queries::kernels_in_period(&client, start, end, groups.as_deref())
        .await
        .map_err(query_failed(state, "listing the kernels of a period"))?;
    drop(client);
    let missing: Vec<Uuid> = kernels.iter().map(|k| k.id).collect();
    let stats = redis_stats(state, &missing).await;
    Ok(reply::json(&usage_report(&kernels, &stats)))
}

/// `GET /resource/usage/month {month: "YYYYMM", group_ids?}`.
async fn usage_per_month(
    state: web::Data<AppState>,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let month = date_param(&params, "month", 6)?;
    let groups = group_ids_param(&params)?;
    slog::info!(state.log, "USAGE_PER_MONTH"; "month" => &month);
    let year: i32 = month[..4].parse().map_err(|_| invalid_dates())?;
    let month_number: u32 = month[4..6].parse().map_err(|_| invalid_dates())?;
    let start = NaiveDate::from_ymd_opt(year, month_number, 1).ok_or_else(invalid_dates)?;
    let end = start
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(invalid_dates)?;
    let midnight = |date: NaiveDate| Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN));
    report(&state, midnight(start), midnight(end), groups).await
}

/// `GET /resource/usage/period {group_id?, start_date: "YYYYMMDD", end_date: "YYYYMMDD"}`.
async fn usage_per_period(
    state: web::Data<AppState>,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let group = params
        .opt_string(&["group_id"])?
        .map(|text| {
            Uuid::parse_str(&text)
                .map_err(|_| invalid_param("group_id", "value is not a valid UUID"))
        })
        .transpose()?;
    let start_text = date_param(&params, "start_date", 8)?;
    let end_text = date_param(&params, "end_date", 8)?;
    let parse = |text: &str| NaiveDate::parse_from_str(text, "%Y%m%d").map_err(|_| invalid_dates());
    let midnight = |date: NaiveDate| Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN));
    let start = midnight(parse(&start_text)?);
    // The end date is included.
    let end = midnight(parse(&end_text)?) + TimeDelta::days(1);
    if end - start > TimeDelta::days(MAX_USAGE_PERIOD_DAYS) {
        return Err(Problem::invalid_params(format!(
            "Cannot query more than {MAX_USAGE_PERIOD_DAYS} days"
        )));
    }
    if end <= start {
        return Err(Problem::invalid_params(
            "end_date must be later than start_date.",
        ));
    }
    slog::info!(state.log, "USAGE_PER_PERIOD"; "start" => &start_text, "end" => &end_text);
    report(&state, start, end, group.map(|g| vec![g])).await
}

async fn month_stats(state: &AppState, user: Option<Uuid>) -> Result<HttpResponse, Problem> {
    let now = Utc::now();
    let client = db_client(state).await?;
    let kernels =
        queries::kernels_terminated_since(&client, now - TimeDelta::days(STAT_PERIOD_DAYS), user)
            .await
            .map_err(query_failed(state, "listing the kernels of the last month"))?;
    drop(client);
    let ids: Vec<Uuid> = kernels.iter().map(|k| k.id).collect();
    let stats = redis_stats(state, &ids).await;
    let bins = web::block(move || monthly_bins(now, &kernels, &stats))
        .await
        .map_err(|_| Problem::internal("the statistics did not finish"))?;
    Ok(reply::json(&bins))
}

/// `GET /resource/stats/user/month`: the caller's terminated sessions of the last 30 days.
async fn user_month_stats(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "USER_LAST_MONTH_STATS";
        "ak" => &caller.access_key, "u" => %caller.user_uuid());
    month_stats(&state, Some(caller.user_uuid())).await
}

/// `GET /resource/stats/admin/month`: every terminated session of the last 30 days.
async fn admin_month_stats(state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "ADMIN_LAST_MONTH_STATS");
    month_stats(&state, None).await
}

/// `POST /resource/recalculate-usage`: recounts every agent's occupied slots from its kernels.
async fn recalculate_usage(state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "RECALCULATE_USAGE");
    let mut client = db_client(&state).await?;
    let agents = queries::agent_ids(&client)
        .await
        .map_err(query_failed(&state, "listing agents"))?;
    for agent in agents {
        let transaction = client
            .transaction()
            .await
            .map_err(query_failed(&state, "starting a transaction"))?;
        crate::scheduler::lifecycle::recalc_agent_occupancy(&transaction, &agent)
            .await
            .map_err(query_failed(&state, "recounting an agent's occupied slots"))?;
        transaction
            .commit()
            .await
            .map_err(query_failed(&state, "committing an agent's occupied slots"))?;
    }
    Ok(reply::json(&serde_json::json!({})))
}
