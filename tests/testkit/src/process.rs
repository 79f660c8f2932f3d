//! Child processes that die with the test: killed on drop, and by the kernel if the test process
//! dies first (PR_SET_PDEATHSIG).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running service process.
pub struct ServiceProcess {
    name: String,
    child: Option<Child>,
    stop_signal: libc::c_int,
    log_path: std::path::PathBuf,
}

impl ServiceProcess {
    /// Spawns `command` with its output in `log_path`. `stop_signal` is sent on drop and when
    /// the parent dies (SIGQUIT for PostgreSQL: an immediate shutdown).
    pub fn spawn(
        name: &str,
        mut command: Command,
        log_path: &Path,
        stop_signal: libc::c_int,
    ) -> ServiceProcess {
        let log = std::fs::File::create(log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("cloning a log file handle");
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        // SAFETY: prctl is async-signal-safe and touches only this (child) process.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, stop_signal) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({command:?}): {e}"));
        ServiceProcess {
            name: name.to_owned(),
            child: Some(child),
            stop_signal,
            log_path: log_path.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The process's output so far, for failure messages.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Waits until `addr` accepts TCP connections; panics with the log after `timeout`.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited with {status} before listening on {addr}:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not listen on {addr} within {timeout:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the process and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, self.stop_signal);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on a thread that lives as long as the process. PR_SET_PDEATHSIG fires when the
/// *thread* that forked a child exits, so process-wide shared servers must be spawned from here,
/// not from a test's thread.
pub fn on_long_lived_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    static SPAWNER: OnceLock<std::sync::Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
                // Keep the thread (and with it the shared servers) alive until the process exits.
                loop {
                    std::thread::park();
                }
            })
            .expect("starting the testkit spawner thread");
        std::sync::Mutex::new(tx)
    });
    let (result_tx, result_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(Box::new(move || {
            let _ = result_tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
        }))
        .expect("the testkit spawner thread is gone");
    match result_rx.recv().expect("the testkit spawner dropped a job") {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The uid/gid to run PostgreSQL as: `postgres` when we are root (initdb refuses root).
pub fn postgres_user() -> Option<(u32, u32)> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres").ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// A scratch directory for this test process, removed again by the next run if it leaks.
pub fn scratch_root() -> std::path::PathBuf {
    static ROOT: OnceLock<std::path::PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir().join("bai-testkit");
        let _ = std::fs::create_dir_all(&base);
        // Remove directories of test processes that are gone (statics are never dropped).
        if let Ok(entries) = std::fs::read_dir(&base) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name
                    .strip_prefix("pid-")
                    .and_then(|p| p.parse::<i32>().ok())
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let root = base.join(format!("pid-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("creating the testkit scratch directory");
        root
    })
    .clone()
}
