//! What the benches read from /proc about processes: their children and parents, their CPU
//! time, their resident set, and the whole machine's busy time.

// Each bench uses the part it needs.
#![allow(dead_code)]

/// Every process id in /proc.
fn all_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
}

/// The fields of `/proc/{pid}/stat` after the command (state is field 0, ppid 1, utime 11,
/// stime 12, cutime 13, cstime 14); empty when the process is gone.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The parent of `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid).get(1)?.parse().ok()
}

/// The processes whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    all_pids()
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// The processes whose command line holds `needle` (a service's listening address).
pub fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    all_pids()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

/// The stat fields at `indexes` of `pid`, summed, in seconds.
fn stat_seconds(pid: u32, indexes: &[usize]) -> f64 {
    let fields = stat_fields(pid);
    let ticks: f64 = indexes
        .iter()
        .filter_map(|&index| fields.get(index)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf(3) with a valid name has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_seconds(pid, &[11, 12])
}

/// utime + stime of `pid` and of its children that ended (cutime + cstime), plus its living
/// children's: a PostgreSQL server's whole CPU, backends that came and went included.
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    stat_seconds(pid, &[11, 12, 13, 14])
        + children_of(pid).into_iter().map(cpu_seconds).sum::<f64>()
}

/// Busy time of all the machine's CPUs (everything but idle and I/O wait), from /proc/stat.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal ...
    let busy: f64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        .filter(|(index, _)| matches!(index, 0 | 1 | 2 | 5 | 6 | 7))
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum();
    busy / clock_ticks()
}

/// The resident set of `pid` (`"self"` for this process), in KiB; 0 when it is gone.
pub fn rss_kib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// The resident set of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    rss_kib(&pid.to_string()) / 1024.0
}
