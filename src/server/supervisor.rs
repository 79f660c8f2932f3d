//! The supervising parent of `start-server`: it checks the services, binds the port, writes
//! the pid file, registers the manager in etcd, and keeps `num-proc` worker processes running —
//! restarting one that dies, with a back-off — until SIGTERM/SIGINT; then it stops the workers
//! (they finish their in-flight requests), deregisters, removes the pid file and exits 0.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use slog::{error, info, o, warn};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::pid_file::{PidFile, PidFileError};
use super::preflight::{self, PreflightError};
use super::privileges::{Account, PrivilegeError};
use super::{listener, registration, tls};
use crate::config::LocalConfig;
use crate::logging::{DriverSink, relayed_line};

/// How long a worker may take to stop after SIGTERM before it is killed. Workers drain for
/// [`super::worker::DRAIN_TIMEOUT`]; this plus deregistration stays under the 5 s that
/// systemd (`TimeoutStopSec=5`) allows.
pub const WORKER_STOP_TIMEOUT: Duration = Duration::from_millis(3800);

/// The first restart of a dead worker waits this long; each further failure in a row doubles
/// it up to [`RESTART_DELAY_MAX`].
pub const RESTART_DELAY_INITIAL: Duration = Duration::from_millis(500);
/// The longest wait between restarts, so a worker that keeps failing (e.g. its database is
/// gone) is retried twice a minute without flooding the log.
pub const RESTART_DELAY_MAX: Duration = Duration::from_secs(30);
/// A worker that served this long before dying counts as healthy: it started fine and was
/// killed by something that happened later (e.g. one bad request), so its restart starts the
/// back-off over and costs [`RESTART_DELAY_INITIAL`], not up to [`RESTART_DELAY_MAX`] of
/// capacity. A worker that cannot start (its database is gone) dies well within this, so its
/// restarts still back off. Start-up takes well under a second; ten seconds leaves room for a
/// slow etcd or PostgreSQL while still resetting after a short healthy run.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start: {0}")]
    Preflight(#[from] PreflightError),
    #[error("cannot start: {0}")]
    Privileges(#[from] PrivilegeError),
    #[error("cannot start: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot start: {0}")]
    Listen(#[from] listener::ListenError),
    #[error("cannot start: {0}")]
    PidFile(#[from] PidFileError),
    #[error("cannot start: cannot create the IPC folder {path}: {source}")]
    IpcFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start: cannot register this manager in etcd: {0}")]
    Register(bai_actors::etcd::EtcdError),
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
}

impl StartError {
    pub fn exit_code(&self) -> i32 {
        match self {
            // A user or group the host does not know is a configuration error.
            StartError::Privileges(PrivilegeError::Unknown { .. }) => crate::exit::INVALID_ARGUMENT,
            _ => crate::exit::FAILURE,
        }
    }
}

/// The failures in a row after a worker that had `previous` failures in a row died after
/// running for `ran_for`: a healthy run ([`HEALTHY_RUN`]) ends the streak.
pub fn failures_in_a_row(previous: u32, ran_for: Duration) -> u32 {
    if ran_for >= HEALTHY_RUN {
        1
    } else {
        previous.saturating_add(1)
    }
}

/// The wait before restarting a worker that failed `consecutive_failures` times in a row.
pub fn restart_delay(consecutive_failures: u32) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(16);
    RESTART_DELAY_INITIAL
        .saturating_mul(1 << doublings)
        .min(RESTART_DELAY_MAX)
}

/// How to start a worker process.
#[derive(Debug, Clone)]
struct WorkerCommand {
    program: PathBuf,
    config_path: PathBuf,
    debug: bool,
    secret: String,
}

/// Runs the supervisor until it is told to stop; returns the exit code.
pub async fn run(config: LocalConfig, debug: bool, log: slog::Logger, drivers: DriverSink) -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed first, so a stop request during start-up is not lost.
    let (mut sigterm, mut sigint) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            error!(log, "cannot install the signal handlers: {err}");
            return crate::exit::FAILURE;
        }
    };
    let started = match start(&config, debug, &log).await {
        Ok(started) => started,
        Err(err) => {
            error!(log, "{err}");
            return err.exit_code();
        }
    };
    let Started {
        services,
        sockets,
        pid_file,
        command,
    } = started;
    let manager_id = config.manager_id();

    let (stop_tx, stop_rx) = watch::channel(false);
    let slots: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(position, socket)| {
            tokio::spawn(supervise_worker(
                position + 1,
                socket,
                command.clone(),
                stop_rx.clone(),
                log.new(o!()),
                drivers.clone(),
            ))
        })
        .collect();

    let mut refresh = tokio::time::interval(registration::NODE_KEY_REFRESH);
    let signal_name = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = refresh.tick() => {
                match registration::ensure_registered(&services.etcd, &manager_id).await {
                    Ok(true) => warn!(log, "etcd key {} was gone; put it back", registration::node_key(&manager_id)),
                    Ok(false) => {}
                    Err(err) => warn!(log, "cannot check this manager's etcd registration: {err}"),
                }
            }
        }
    };
    info!(log, "got {signal_name}: stopping the workers");
    let _ = stop_tx.send(true);
    for slot in slots {
        let _ = slot.await;
    }
    match tokio::time::timeout(
        registration::DEREGISTER_TIMEOUT,
        registration::deregister(&services.etcd, &manager_id),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(err)) => warn!(log, "cannot remove this manager's etcd registration: {err}"),
        Err(_) => warn!(log, "etcd did not answer the deregistration in time"),
    }
    if let Some(pid_file) = pid_file {
        let path = pid_file.path().to_owned();
        if let Err(err) = pid_file.remove() {
            warn!(log, "cannot remove the pid file {}: {err}", path.display());
        }
    }
    info!(log, "stopped");
    crate::exit::OK
}

struct Started {
    services: preflight::Services,
    sockets: Vec<OwnedFd>,
    pid_file: Option<PidFile>,
    command: WorkerCommand,
}

async fn start(
    config: &LocalConfig,
    debug: bool,
    log: &slog::Logger,
) -> Result<Started, StartError> {
    info!(log, "bai-manager {} starting", env!("CARGO_PKG_VERSION");
        "config" => %config.source_path.display(), "num-proc" => config.manager.num_proc);
    let services = preflight::check_services(config).await?;
    info!(log, "etcd, Redis and PostgreSQL answer";
        "etcd" => %config.etcd.addr, "redis" => services.redis.addr(), "db" => %config.db.addr);

    let account = Account::resolve(&config.manager)?;
    let ipc = &config.manager.ipc_base_path;
    std::fs::create_dir_all(ipc).map_err(|source| StartError::IpcFolder {
        path: ipc.clone(),
        source,
    })?;
    if account.is_switch_needed() {
        nix::unistd::chown(
            ipc,
            Some(nix::unistd::Uid::from_raw(account.uid)),
            Some(nix::unistd::Gid::from_raw(account.gid)),
        )
        .map_err(|errno| StartError::IpcFolder {
            path: ipc.clone(),
            source: errno.into(),
        })?;
    }
    if let (true, Some(cert), Some(key)) = (
        config.manager.ssl_enabled,
        &config.manager.ssl_cert,
        &config.manager.ssl_privkey,
    ) {
        tls::server_config(cert, key)?;
    }
    let addr = listener::resolve(&config.manager.service_addr)?;
    let sockets = listener::bind_shared(addr, config.manager.num_proc)?;
    let pid_file = if config.manager.writes_pid_file() {
        Some(PidFile::write(&config.manager.pid_file)?)
    } else {
        None
    };
    registration::register(&services.etcd, &config.manager_id())
        .await
        .map_err(StartError::Register)?;
    let config_path = std::fs::canonicalize(&config.source_path)?;
    Ok(Started {
        services,
        sockets,
        pid_file,
        command: WorkerCommand {
            program: std::env::current_exe()?,
            config_path,
            debug,
            secret: config.manager.secret.clone(),
        },
    })
}

/// Keeps worker `index` running on `socket` until `stop` turns true, then stops it.
async fn supervise_worker(
    index: usize,
    socket: OwnedFd,
    command: WorkerCommand,
    mut stop: watch::Receiver<bool>,
    log: slog::Logger,
    drivers: DriverSink,
) {
    let mut socket = Some(socket);
    let mut failures: u32 = 0;
    loop {
        let Some(fd) = socket.as_ref().map(listener::raw) else {
            return;
        };
        let started = Instant::now();
        let why = match spawn_worker(index, fd, &command, &drivers) {
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                info!(log, "worker {index} started"; "pid" => pid);
                tokio::select! {
                    status = child.wait() => describe_exit(status),
                    _ = stop.changed() => {
                        // Close our copy first, so nothing queues on it while the worker drains.
                        drop(socket.take());
                        stop_worker(index, pid, &mut child, &log).await;
                        return;
                    }
                }
            }
            Err(err) => format!("could not be started: {err}"),
        };
        if *stop.borrow() {
            return;
        }
        failures = failures_in_a_row(failures, started.elapsed());
        let delay = restart_delay(failures);
        error!(log, "worker {index} {why}; restarting it in {delay:?}";
            "failures-in-a-row" => failures);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

fn describe_exit(status: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => format!("ended ({status})"),
        },
        Err(err) => format!("could not be waited for: {err}"),
    }
}

fn spawn_worker(
    index: usize,
    socket_fd: std::os::fd::RawFd,
    command: &WorkerCommand,
    drivers: &DriverSink,
) -> std::io::Result<tokio::process::Child> {
    let mut process = std::process::Command::new(&command.program);
    process.arg("--config").arg(&command.config_path);
    if command.debug {
        process.arg("--debug");
    }
    process
        .args(["start-server", "--worker", &index.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let supervisor_pid = std::process::id() as libc::pid_t;
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid, dup2, fcntl).
    unsafe {
        process.pre_exec(move || {
            // A worker must not outlive its supervisor (e.g. after SIGKILL): it gets SIGTERM
            // and drains. The supervisor forks from its only thread, so this follows the
            // process, not a transient thread.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor may have died between fork and prctl.
            if libc::getppid() != supervisor_pid {
                return Err(std::io::Error::other("the supervisor is gone"));
            }
            listener::install_in_child(socket_fd)
        });
    }
    let mut child = tokio::process::Command::from(process).spawn()?;
    let pid = child.id().unwrap_or(0);
    if let Some(mut stdin) = child.stdin.take() {
        let secret = format!("{}\n", command.secret);
        tokio::spawn(async move {
            let _ = stdin.write_all(secret.as_bytes()).await;
        });
    }
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(relay_output(stdout, index, pid, drivers.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(relay_output(stderr, index, pid, drivers.clone()));
    }
    Ok(child)
}

/// Writes a worker's output lines (its relayed log records) to the drivers.
async fn relay_output(output: impl AsyncRead + Unpin, index: usize, pid: u32, drivers: DriverSink) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !line.trim().is_empty() {
            drivers.emit(&relayed_line(&line, index, pid));
        }
    }
}

/// SIGTERM, then SIGKILL after [`WORKER_STOP_TIMEOUT`].
async fn stop_worker(
    index: usize,
    pid: u32,
    child: &mut tokio::process::Child,
    log: &slog::Logger,
) {
    if let Ok(raw_pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(raw_pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    match tokio::time::timeout(WORKER_STOP_TIMEOUT, child.wait()).await {
        Ok(status) => {
            let status = describe_exit(status);
            info!(log, "worker {index} {status}"; "pid" => pid);
        }
        Err(_) => {
            warn!(log, "worker {index} did not stop within {WORKER_STOP_TIMEOUT:?}; killing it"; "pid" => pid);
            let _ = child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_doubles_up_to_the_cap() {
        assert_eq!(restart_delay(1), Duration::from_millis(500));
        assert_eq!(restart_delay(2), Duration::from_secs(1));
        assert_eq!(restart_delay(4), Duration::from_secs(4));
        assert_eq!(restart_delay(7), RESTART_DELAY_MAX);
        assert_eq!(restart_delay(1000), RESTART_DELAY_MAX);
    }

    #[test]
    fn a_healthy_run_ends_the_streak_of_failures() {
        // Start-up failures pile up and back off...
        let mut failures = 0;
        for _ in 0..8 {
            failures = failures_in_a_row(failures, Duration::from_millis(300));
        }
        assert_eq!(failures, 8);
        assert_eq!(restart_delay(failures), RESTART_DELAY_MAX);
        // ...but a worker that served for a while and then died restarts at once.
        failures = failures_in_a_row(failures, HEALTHY_RUN);
        assert_eq!(failures, 1);
        assert_eq!(restart_delay(failures), RESTART_DELAY_INITIAL);
        failures = failures_in_a_row(failures, HEALTHY_RUN * 100);
        assert_eq!(restart_delay(failures), RESTART_DELAY_INITIAL);
        // Just short of a healthy run still counts as a failure in a row.
        failures = failures_in_a_row(failures, HEALTHY_RUN - Duration::from_millis(1));
        assert_eq!(failures, 2);
        assert_eq!(failures_in_a_row(u32::MAX, Duration::ZERO), u32::MAX);
    }
}
