//! The idle checkers' decisions as plain functions of what the actor read (times in seconds
//! since the epoch): the original's `NetworkTimeoutIdleChecker`, `SessionLifetimeChecker` and
//! `UtilizationIdleChecker.check_idleness`, without the I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::config::{SLOT_RESOURCES, ThresholdOperator, UtilizationConfig};

/// The reported remaining time once it has run out (`IDLE_TIMEOUT_VALUE`).
pub const EXPIRED: f64 = -1.0;

/// What one checker decided for one session.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `false`: terminate the session.
    pub keep: bool,
    /// The remaining seconds to report (`EXPIRED` once run out); `None` leaves the report as
    /// it was.
    pub report: Option<f64>,
}

impl Verdict {
    const KEEP: Verdict = Verdict {
        keep: true,
        report: None,
    };
}

fn reported(remaining: f64) -> f64 {
    if remaining > 0.0 { remaining } else { EXPIRED }
}

/// `calculate_remaining_time`: the period counts from the baseline, or from the end of the
/// grace period when that is later.
pub fn remaining_time(now: f64, baseline: f64, period: f64, grace_end: Option<f64>) -> f64 {
    let start = grace_end.map_or(baseline, |end| end.max(baseline));
    start + period - now
}

/// The policy's `idle_timeout` wins when defined (≥ 0); 0 means "never".
fn effective_timeout(policy_idle_timeout: i64, default: f64) -> f64 {
    if policy_idle_timeout >= 0 {
        policy_idle_timeout as f64
    } else {
        default
    }
}

/// What the network-timeout checker reads about a session.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkActivity<'a> {
    pub session_type: &'a str,
    /// Members of `session.{id}.active_app_connections`.
    pub active_app_connections: i64,
    /// `session.{id}.last_access`: `"0"` while code runs, else the time of the last activity.
    pub last_access: Option<&'a str>,
}

/// `NetworkTimeoutIdleChecker`: idle when nothing touched the session for its timeout.
pub fn network_timeout(
    activity: &NetworkActivity<'_>,
    now: f64,
    policy_idle_timeout: i64,
    default_timeout: f64,
    grace_end: Option<f64>,
) -> Verdict {
    if activity.session_type.eq_ignore_ascii_case("batch") || activity.active_app_connections > 0 {
        return Verdict::KEEP;
    }
    let Some(last_access) = activity
        .last_access
        .filter(|raw| *raw != "0")
        .and_then(|raw| raw.trim().parse::<f64>().ok())
    else {
        return Verdict::KEEP;
    };
    let timeout = effective_timeout(policy_idle_timeout, default_timeout);
    if timeout <= 0.0 || timeout.is_infinite() {
        return Verdict::KEEP;
    }
    // The pass reads its clock once and each session's mark later, so a session touched in
    // between looks touched in the future; it was touched "now", not later.
    let last_access = last_access.min(now);
    let remaining = remaining_time(now, last_access, timeout, grace_end);
    Verdict {
        keep: remaining >= 0.0,
        report: Some(reported(remaining)),
    }
}

/// `SessionLifetimeChecker`: ends a session `max_session_lifetime` seconds after it was
/// created (0: no limit).
pub fn session_lifetime(
    max_session_lifetime: i32,
    created_at: f64,
    db_now: f64,
    grace_end: Option<f64>,
) -> Verdict {
    if max_session_lifetime <= 0 {
        return Verdict::KEEP;
    }
    let remaining = remaining_time(
        db_now,
        created_at,
        f64::from(max_session_lifetime),
        grace_end,
    );
    Verdict {
        keep: remaining > 0.0,
        report: Some(reported(remaining)),
    }
}

/// The resources a session holds none of, which the utilization checker does not judge
/// (a session without GPUs is not idle because its `cuda_util` is 0).
pub fn unavailable_resources(occupied_slots: &Value) -> BTreeSet<String> {
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    if let Some(slots) = occupied_slots.as_object() {
        for (slot, amount) in slots {
            let kind = slot.split('.').next().unwrap_or(slot).to_owned();
            *totals.entry(kind).or_default() += number(amount).unwrap_or(0.0);
        }
    }
    let mut unavailable = BTreeSet::new();
    for (kind, total) in totals {
        if total == 0.0
            && let Some((_, resources)) = SLOT_RESOURCES.iter().find(|(k, _)| *k == kind)
        {
            unavailable.extend(resources.iter().map(|r| (*r).to_owned()));
        }
    }
    unavailable
}

/// A JSON number, or a string holding one (the agents write Decimals as strings).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn stat_field(stat: &Value, metric: &str, field: &str) -> f64 {
    stat.get(metric)
        .and_then(|m| m.get(field))
        .and_then(number)
        .unwrap_or(0.0)
}

/// The session's current utilization in percent per judged resource, averaged over its
/// kernels' live statistics; `None` when a kernel has none (nothing is judged then). `mem` is
/// the last kernel's current memory over the session's `mem` slot, as the original computes it.
pub fn current_utilization(
    stats: &[Option<Value>],
    resources: &[String],
    occupied_slots: &Value,
) -> Option<BTreeMap<String, f64>> {
    if stats.is_empty() {
        return None;
    }
    let mut sums: BTreeMap<String, f64> = resources.iter().map(|r| (r.clone(), 0.0)).collect();
    let mut last = &Value::Null;
    for stat in stats {
        let stat = stat.as_ref()?;
        for resource in resources {
            *sums.entry(resource.clone()).or_default() += stat_field(stat, resource, "pct");
        }
        last = stat;
    }
    let count = stats.len() as f64;
    let mut utilization: BTreeMap<String, f64> =
        sums.into_iter().map(|(k, v)| (k, v / count)).collect();
    let mem_slot = occupied_slots.get("mem").and_then(number).unwrap_or(0.0);
    let mem_current = stat_field(last, "mem", "current");
    utilization.insert(
        "mem".to_owned(),
        if mem_slot > 0.0 {
            mem_current / mem_slot * 100.0
        } else {
            0.0
        },
    );
    Some(utilization)
}

/// The window over which utilization is averaged: the policy's `idle_timeout` when defined,
/// else `time-window`; and how many samples of `interval` seconds fill it.
pub fn utilization_window(
    config: &UtilizationConfig,
    policy_idle_timeout: i64,
    interval: f64,
) -> (f64, usize) {
    let window = effective_timeout(policy_idle_timeout, config.time_window);
    let samples = if interval > 0.0 && window.is_finite() {
        (window / interval).floor().max(0.0) as usize
    } else {
        0
    };
    (window, samples)
}

/// When the utilization checker may first judge a session: its initial grace period counted
/// from its creation or from the end of its owner's grace period, whichever is later.
pub fn utilization_grace_end(
    config: &UtilizationConfig,
    created_at: f64,
    user_grace_end: Option<f64>,
) -> f64 {
    let start = user_grace_end.map_or(created_at, |end| end.max(created_at));
    start + config.initial_grace_period
}

/// Appends the current sample to each series, keeping the last `window_size` samples;
/// `true` when some series is not full yet (no judgement then).
pub fn push_samples(
    series: &mut BTreeMap<String, Vec<f64>>,
    current: &BTreeMap<String, f64>,
    window_size: usize,
) -> bool {
    let mut not_enough_data = false;
    for (resource, samples) in series.iter_mut() {
        samples.push(current.get(resource).copied().unwrap_or(0.0));
        if samples.len() > window_size {
            samples.remove(0);
        } else {
            not_enough_data = true;
        }
    }
    not_enough_data
}

/// The judgement over full series: the averages against the thresholds of the resources the
/// session holds, and the report the original keeps for the UI (`utilization_extra`).
pub fn judge_utilization(
    config: &UtilizationConfig,
    series: &BTreeMap<String, Vec<f64>>,
    unavailable: &BTreeSet<String>,
) -> (bool, Value) {
    let average = |samples: &Vec<f64>| {
        if samples.is_empty() {
            0.0
        } else {
            samples.iter().sum::<f64>() / samples.len() as f64
        }
    };
    let mut judged: Vec<(String, f64, f64)> = Vec::new();
    for (resource, threshold) in &config.thresholds {
        if let Some(threshold) = threshold
            && !unavailable.contains(resource)
        {
            let avg = series.get(resource).map_or(0.0, average);
            judged.push((resource.clone(), avg, *threshold));
        }
    }
    let sufficient: Vec<bool> = judged.iter().map(|(_, avg, th)| avg >= th).collect();
    let keep = if sufficient.is_empty() {
        true
    } else {
        match config.operator {
            ThresholdOperator::Or => sufficient.iter().all(|ok| *ok),
            ThresholdOperator::And => sufficient.iter().any(|ok| *ok),
        }
    };
    // `parse_unit`: memory figures are reported as whole numbers.
    let shown = |resource: &str, value: f64| {
        if resource.contains("mem") {
            json!(value.trunc() as i64)
        } else {
            json!(value)
        }
    };
    let resources: serde_json::Map<String, Value> = judged
        .iter()
        .map(|(resource, avg, threshold)| {
            (
                resource.clone(),
                json!([shown(resource, *avg), shown(resource, *threshold)]),
            )
        })
        .collect();
    let extra = json!({
        "thresholds_check_operator": config.operator.as_str(),
        "resources": resources,
    });
    (keep, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity<'a>(last_access: Option<&'a str>) -> NetworkActivity<'a> {
        NetworkActivity {
            session_type: "INTERACTIVE",
            active_app_connections: 0,
            last_access,
        }
    }

    #[test]
    fn network_timeout_ends_a_session_untouched_past_its_timeout() {
        let v = network_timeout(&activity(Some("1000.0")), 1005.0, 10, 600.0, None);
        assert_eq!(
            v,
            Verdict {
                keep: true,
                report: Some(5.0)
            }
        );
        let v = network_timeout(&activity(Some("1000.0")), 1011.0, 10, 600.0, None);
        assert_eq!(
            v,
            Verdict {
                keep: false,
                report: Some(EXPIRED)
            }
        );
        // Undefined policy timeout: the checker's threshold.
        let v = network_timeout(&activity(Some("1000.0")), 1011.0, -1, 600.0, None);
        assert!(v.keep);
        assert_eq!(v.report, Some(589.0));
    }

    #[test]
    fn a_session_touched_after_the_pass_read_its_clock_reports_at_most_its_timeout() {
        let v = network_timeout(&activity(Some("1000.05")), 1000.0, 4, 600.0, None);
        assert_eq!(
            v,
            Verdict {
                keep: true,
                report: Some(4.0)
            }
        );
    }

    #[test]
    fn network_timeout_spares_running_code_batch_sessions_streams_and_zero_timeouts() {
        assert_eq!(
            network_timeout(&activity(Some("0")), 9e9, 10, 600.0, None),
            Verdict::KEEP
        );
        assert_eq!(
            network_timeout(&activity(None), 9e9, 10, 600.0, None),
            Verdict::KEEP
        );
        assert_eq!(
            network_timeout(&activity(Some("1")), 9e9, 0, 600.0, None),
            Verdict::KEEP
        );
        let batch = NetworkActivity {
            session_type: "BATCH",
            ..activity(Some("1"))
        };
        assert_eq!(network_timeout(&batch, 9e9, 10, 600.0, None), Verdict::KEEP);
        let streaming = NetworkActivity {
            active_app_connections: 1,
            ..activity(Some("1"))
        };
        assert_eq!(
            network_timeout(&streaming, 9e9, 10, 600.0, None),
            Verdict::KEEP
        );
    }

    #[test]
    fn a_user_grace_period_postpones_the_timeout() {
        let v = network_timeout(&activity(Some("1000.0")), 1011.0, 10, 600.0, Some(1005.0));
        assert_eq!(
            v,
            Verdict {
                keep: true,
                report: Some(4.0)
            }
        );
    }

    #[test]
    fn session_lifetime_counts_from_creation() {
        assert_eq!(session_lifetime(0, 0.0, 9e9, None), Verdict::KEEP);
        assert_eq!(
            session_lifetime(60, 1000.0, 1030.0, None),
            Verdict {
                keep: true,
                report: Some(30.0)
            }
        );
        assert_eq!(
            session_lifetime(60, 1000.0, 1060.0, None),
            Verdict {
                keep: false,
                report: Some(EXPIRED)
            }
        );
    }

    fn util_config(operator: ThresholdOperator) -> UtilizationConfig {
        let mut thresholds = BTreeMap::new();
        thresholds.insert("cpu_util".to_owned(), Some(30.0));
        thresholds.insert("mem".to_owned(), Some(50.0));
        thresholds.insert("cuda_util".to_owned(), Some(10.0));
        thresholds.insert("cuda_mem".to_owned(), None);
        UtilizationConfig {
            time_window: 30.0,
            initial_grace_period: 0.0,
            operator,
            thresholds,
        }
    }

    #[test]
    fn unheld_resources_are_not_judged() {
        let slots = json!({"cpu": "1", "mem": "1073741824", "cuda.shares": "0"});
        let unavailable = unavailable_resources(&slots);
        assert_eq!(
            unavailable.into_iter().collect::<Vec<_>>(),
            vec!["cuda_mem".to_owned(), "cuda_util".to_owned()]
        );
    }

    #[test]
    fn utilization_averages_kernels_and_takes_memory_from_the_slot() {
        let resources: Vec<String> = ["cpu_util", "mem"].iter().map(|s| s.to_string()).collect();
        let stats = vec![
            Some(json!({"cpu_util": {"pct": "10"}, "mem": {"current": "100"}})),
            Some(json!({"cpu_util": {"pct": 30.0}, "mem": {"current": "512"}})),
        ];
        let current = current_utilization(&stats, &resources, &json!({"mem": "1024"})).unwrap();
        assert_eq!(current["cpu_util"], 20.0);
        assert_eq!(current["mem"], 50.0);
        assert_eq!(current_utilization(&[None], &resources, &json!({})), None);
    }

    #[test]
    fn series_fill_up_before_any_judgement() {
        let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        series.insert("cpu_util".into(), vec![]);
        let current: BTreeMap<String, f64> = [("cpu_util".to_owned(), 5.0)].into();
        assert!(push_samples(&mut series, &current, 2));
        assert!(push_samples(&mut series, &current, 2));
        assert!(!push_samples(&mut series, &current, 2));
        assert_eq!(series["cpu_util"], vec![5.0, 5.0]);
    }

    #[test]
    fn the_operator_decides_how_thresholds_combine() {
        let unavailable: BTreeSet<String> = ["cuda_util".to_owned()].into();
        let series: BTreeMap<String, Vec<f64>> = [
            ("cpu_util".to_owned(), vec![10.0, 20.0]),
            ("mem".to_owned(), vec![60.0]),
        ]
        .into();
        // and: idle only when every resource is under → memory is used, keep.
        let (keep, extra) =
            judge_utilization(&util_config(ThresholdOperator::And), &series, &unavailable);
        assert!(keep);
        assert_eq!(extra["thresholds_check_operator"], "and");
        assert_eq!(extra["resources"]["cpu_util"], json!([15.0, 30.0]));
        assert_eq!(extra["resources"]["mem"], json!([60, 50]));
        // or: idle when any resource is under → cpu is idle, terminate.
        let (keep, _) =
            judge_utilization(&util_config(ThresholdOperator::Or), &series, &unavailable);
        assert!(!keep);
        let busy: BTreeMap<String, Vec<f64>> = [
            ("cpu_util".to_owned(), vec![90.0]),
            ("mem".to_owned(), vec![10.0]),
        ]
        .into();
        let (keep, _) =
            judge_utilization(&util_config(ThresholdOperator::And), &busy, &unavailable);
        assert!(keep);
        let idle: BTreeMap<String, Vec<f64>> = [
            ("cpu_util".to_owned(), vec![1.0]),
            ("mem".to_owned(), vec![1.0]),
        ]
        .into();
        let (keep, _) =
            judge_utilization(&util_config(ThresholdOperator::And), &idle, &unavailable);
        assert!(!keep);
    }

    #[test]
    fn the_window_follows_the_policy_timeout_when_defined() {
        let config = util_config(ThresholdOperator::And);
        assert_eq!(utilization_window(&config, -1, 15.0), (30.0, 2));
        assert_eq!(utilization_window(&config, 0, 15.0), (0.0, 0));
        assert_eq!(utilization_window(&config, 60, 15.0), (60.0, 4));
        assert_eq!(utilization_grace_end(&config, 100.0, Some(200.0)), 200.0);
    }
}
