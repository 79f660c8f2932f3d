//! The usage reports of `/resource/usage/*` (per project, with one entry per container) and
//! the time-binned statistics of `/resource/stats/*/month`, computed from kernel rows and
//! their last statistics exactly as the original shapes them. Pure functions.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use bai_schema::queries::usage::{BinnedKernel, UsageKernel};

use crate::facade::routes::vfolder_reply::python_datetime;

/// The width of one bin of the monthly statistics: 15 minutes.
pub const STAT_BIN_SECONDS: i64 = 900;

/// The number of bins: 30 days of 15 minutes.
pub const STAT_BIN_COUNT: usize = 2880;

/// The period the monthly statistics cover.
pub const STAT_PERIOD_DAYS: i64 = 30;

/// The longest period `/resource/usage/period` answers for (the original's limit).
pub const MAX_USAGE_PERIOD_DAYS: i64 = 100;

/// The original's `nmget`: a value down a path of keys split by `delimiter`.
fn nmget<'a>(value: Option<&'a Value>, path: &str, delimiter: char) -> Option<&'a Value> {
    path.split(delimiter)
        .try_fold(value?, |current, key| current.get(key))
}

/// A statistic as a number (the agents write numbers as strings).
fn number(value: Option<&Value>) -> f64 {
    match value {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn slot(slots: &Value, names: &[&str]) -> f64 {
    names
        .iter()
        .map(|name| number(slots.get(*name)))
        .find(|v| *v != 0.0)
        .unwrap_or(0.0)
}

/// Python's `str(timedelta)`: `H:MM:SS[.ffffff]`, with `N day(s), ` in front when longer.
pub fn python_timedelta(delta: TimeDelta) -> String {
    let total_micros = delta.num_microseconds().unwrap_or(i64::MAX);
    let micros_per_day = 86_400_000_000_i64;
    let days = total_micros.div_euclid(micros_per_day);
    let rest = total_micros.rem_euclid(micros_per_day);
    let seconds = rest / 1_000_000;
    let micros = rest % 1_000_000;
    let mut text = String::new();
    if days != 0 {
        let unit = if days.abs() == 1 { "day" } else { "days" };
        text.push_str(&format!("{days} {unit}, "));
    }
    text.push_str(&format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    ));
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    text
}

fn python_opt_datetime(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "None".to_owned(), python_datetime)
}

/// One container entry (`c_info`) of a usage report.
fn container_info(kernel: &UsageKernel, last_stat: Option<&Value>) -> Value {
    let (used_time, used_days) = match kernel.terminated_at {
        None => (Value::Null, Value::Null),
        Some(terminated) => (
            Value::String(python_timedelta(terminated - kernel.created_at)),
            json!((terminated.date_naive() - kernel.created_at.date_naive()).num_days() + 1),
        ),
    };
    let mut device_types: Vec<String> = Vec::new();
    let mut smp = 0.0;
    let mut gpu_mem_allocated = 0.0;
    if let Some(devices) = kernel
        .attached_devices
        .as_ref()
        .and_then(|d| d.get("cuda"))
        .and_then(Value::as_array)
    {
        for device in devices {
            if let Some(model) = device.get("model_name").and_then(Value::as_str)
                && !device_types.iter().any(|t| t == model)
            {
                device_types.push(model.to_owned());
            }
            smp += number(nmget(Some(device), "data.smp", '.')).trunc();
            gpu_mem_allocated += number(nmget(Some(device), "data.mem", '.')).trunc();
        }
    }
    let nfs = kernel
        .vfolder_mounts
        .as_ref()
        .and_then(Value::as_array)
        .map(|mounts| {
            let mut paths: Vec<String> = Vec::new();
            for mount in mounts {
                if let Some(path) = mount.get("host_path").and_then(Value::as_str)
                    && !paths.iter().any(|p| p == path)
                {
                    paths.push(path.to_owned());
                }
            }
            paths
        });
    let slots = &kernel.occupied_slots;
    json!({
        "id": kernel.id.to_string(),
        "session_id": kernel.session_id.to_string(),
        "container_id": kernel.container_id,
        "domain_name": kernel.domain_name,
        "group_id": kernel.group_id.to_string(),
        "group_name": kernel.group_name,
        "name": kernel.session_name,
        "access_key": kernel.access_key,
        "email": kernel.email,
        "full_name": kernel.full_name,
        "agent": kernel.agent,
        "cpu_allocated": slot(slots, &["cpu"]),
        "cpu_used": number(nmget(last_stat, "cpu_used.current", '.')),
        "mem_allocated": slot(slots, &["mem"]).trunc() as i64,
        "mem_used": number(nmget(last_stat, "mem.capacity", '.')).trunc() as i64,
        "shared_memory": number(kernel.resource_opts.as_ref().and_then(|o| o.get("shmem"))).trunc() as i64,
        "disk_allocated": 0,
        "disk_used": number(nmget(last_stat, "io_scratch_size/stats.max", '/')).trunc() as i64,
        "io_read": number(nmget(last_stat, "io_read.current", '.')).trunc() as i64,
        "io_write": number(nmget(last_stat, "io_write.current", '.')).trunc() as i64,
        "used_time": used_time,
        "used_days": used_days,
        "device_type": device_types,
        "smp": smp,
        "gpu_mem_allocated": gpu_mem_allocated,
        "gpu_allocated": slot(slots, &["cuda.shares", "cuda.devices", "cuda.device"]),
        "nfs": nfs,
        "image_id": kernel.image,
        "image_name": kernel.image,
        "created_at": python_datetime(kernel.created_at),
        "terminated_at": python_opt_datetime(kernel.terminated_at),
        "status": kernel.status,
        "status_info": kernel.status_info,
        "status_changed": python_opt_datetime(kernel.status_changed),
        "status_history": kernel.status_history.clone().unwrap_or_else(|| json!({})),
        "cluster_mode": kernel.cluster_mode,
    })
}

fn add_number(group: &mut Map<String, Value>, key: &str, amount: &Value) {
    let sum = match (group.get(key), amount) {
        (Some(Value::Number(a)), Value::Number(b)) if a.is_i64() && b.is_i64() => {
            json!(a.as_i64().unwrap_or(0) + b.as_i64().unwrap_or(0))
        }
        (Some(a), b) => json!(number(Some(a)) + number(Some(b))),
        (None, b) => b.clone(),
    };
    group.insert(key.to_owned(), sum);
}

/// The usage report: one entry per project (in the order its first container appears) with
/// the sums and its containers. `redis_stats[i]` is the live statistic of `kernels[i]`, used
/// when the row has no `last_stat`; a kernel with neither is skipped, as the original does.
pub fn usage_report(kernels: &[UsageKernel], redis_stats: &[Option<Value>]) -> Vec<Value> {
    let mut groups: Vec<(String, Map<String, Value>)> = Vec::new();
    for (index, kernel) in kernels.iter().enumerate() {
        let last_stat = kernel
            .last_stat
            .as_ref()
            .filter(|s| !s.is_null() && s.as_object().is_none_or(|o| !o.is_empty()))
            .or_else(|| redis_stats.get(index).and_then(Option::as_ref));
        let Some(last_stat) = last_stat else {
            continue;
        };
        let info = container_info(kernel, Some(last_stat));
        let group_id = kernel.group_id.to_string();
        let position = match groups.iter().position(|(id, _)| *id == group_id) {
            Some(position) => position,
            None => {
                let mut group = Map::new();
                group.insert("domain_name".into(), json!(kernel.domain_name));
                group.insert("g_id".into(), json!(group_id));
                group.insert("g_name".into(), json!(kernel.group_name));
                group.insert("g_device_type".into(), json!([]));
                group.insert("c_infos".into(), json!([]));
                groups.push((group_id.clone(), group));
                groups.len() - 1
            }
        };
        let group = &mut groups[position].1;
        for key in [
            "cpu_allocated",
            "cpu_used",
            "mem_allocated",
            "mem_used",
            "shared_memory",
            "disk_allocated",
            "disk_used",
            "io_read",
            "io_write",
            "smp",
            "gpu_mem_allocated",
            "gpu_allocated",
        ] {
            add_number(group, &format!("g_{key}"), &info[key]);
        }
        if let (Some(Value::Array(types)), Some(new)) = (
            group.get_mut("g_device_type"),
            info["device_type"].as_array(),
        ) {
            for device in new {
                if !types.contains(device) {
                    types.push(device.clone());
                }
            }
        }
        if let Some(Value::Array(infos)) = group.get_mut("c_infos") {
            infos.push(info);
        }
    }
    groups
        .into_iter()
        .map(|(_, group)| Value::Object(group))
        .collect()
}

/// The time-binned statistics of the last 30 days (2880 bins of 15 minutes) ending at `now`.
pub fn monthly_bins(
    now: DateTime<Utc>,
    kernels: &[BinnedKernel],
    redis_stats: &[Option<Value>],
) -> Vec<Value> {
    let start = now - TimeDelta::days(STAT_PERIOD_DAYS);
    let start_ts = start.timestamp_micros() as f64 / 1e6;
    #[derive(Default, Clone, Copy)]
    struct Bin {
        sessions: i64,
        cpu: i64,
        mem: i64,
        gpu: f64,
        io_read: i64,
        io_write: i64,
        disk: i64,
    }
    let mut bins = vec![Bin::default(); STAT_BIN_COUNT];
    for (index, kernel) in kernels.iter().enumerate() {
        let stat = kernel
            .last_stat
            .as_ref()
            .filter(|s| !s.is_null())
            .or_else(|| redis_stats.get(index).and_then(Option::as_ref));
        let io_read = number(nmget(stat, "io_read.current", '.')).trunc() as i64;
        let io_write = number(nmget(stat, "io_write.current", '.')).trunc() as i64;
        let disk = number(nmget(stat, "io_scratch_size/stats.max", '/')).trunc() as i64;
        let slots = &kernel.occupied_slots;
        let cpu = slot(slots, &["cpu"]).trunc() as i64;
        let mem = slot(slots, &["mem"]).trunc() as i64;
        let gpu =
            slot(slots, &["cuda.devices", "cuda.device"]).trunc() + slot(slots, &["cuda.shares"]);
        let seconds = |at: DateTime<Utc>| at.timestamp_micros() as f64 / 1e6;
        let first = ((seconds(kernel.created_at) - start_ts) / STAT_BIN_SECONDS as f64).floor();
        let last =
            ((seconds(kernel.terminated_at) - start_ts) / STAT_BIN_SECONDS as f64).floor() + 1.0;
        let first = first.max(0.0) as usize;
        let last = (last.max(0.0) as usize).min(STAT_BIN_COUNT);
        for bin in bins.iter_mut().take(last).skip(first) {
            bin.sessions += 1;
            bin.cpu += cpu;
            bin.mem += mem;
            bin.gpu += gpu;
            bin.io_read += io_read;
            bin.io_write += io_write;
            bin.disk += disk;
        }
    }
    bins.iter()
        .enumerate()
        .map(|(index, bin)| {
            json!({
                "date": start_ts + (index as i64 * STAT_BIN_SECONDS) as f64,
                "num_sessions": {"value": bin.sessions, "unit_hint": "count"},
                "cpu_allocated": {"value": bin.cpu, "unit_hint": "count"},
                "mem_allocated": {"value": bin.mem, "unit_hint": "bytes"},
                "gpu_allocated": {"value": bin.gpu, "unit_hint": "count"},
                "io_read_bytes": {"value": bin.io_read, "unit_hint": "bytes"},
                "io_write_bytes": {"value": bin.io_write, "unit_hint": "bytes"},
                "disk_used": {"value": bin.disk, "unit_hint": "bytes"},
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedeltas_render_like_python() {
        assert_eq!(python_timedelta(TimeDelta::seconds(3723)), "1:02:03");
        assert_eq!(
            python_timedelta(TimeDelta::microseconds(90_061_000_500)),
            "1 day, 1:01:01.000500"
        );
        assert_eq!(python_timedelta(TimeDelta::days(3)), "3 days, 0:00:00");
    }

    #[test]
    fn kernels_fill_the_bins_they_lived_in() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let created = now - TimeDelta::minutes(40);
        let kernel = BinnedKernel {
            id: uuid::Uuid::nil(),
            created_at: created,
            terminated_at: now - TimeDelta::minutes(10),
            occupied_slots: json!({"cpu": "2", "mem": "1073741824", "cuda.shares": "0.5"}),
            last_stat: Some(json!({"io_read": {"current": "100"}})),
        };
        let bins = monthly_bins(now, &[kernel], &[None]);
        assert_eq!(bins.len(), STAT_BIN_COUNT);
        let busy: Vec<usize> = bins
            .iter()
            .enumerate()
            .filter(|(_, b)| b["num_sessions"]["value"] == 1)
            .map(|(i, _)| i)
            .collect();
        // 40 to 10 minutes before the end: the last three bins.
        assert_eq!(busy, [2877, 2878, 2879]);
        assert_eq!(bins[2879]["cpu_allocated"]["value"], 2);
        assert_eq!(bins[2879]["gpu_allocated"]["value"], 0.5);
        assert_eq!(bins[2879]["io_read_bytes"]["value"], 100);
        assert_eq!(bins[0]["num_sessions"]["value"], 0);
    }
}
