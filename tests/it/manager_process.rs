//! Runs the real `bai-manager` binary for a test: its output goes to a file the test can read,
//! and it is killed when the test ends (the workers follow their supervisor).

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a manager may take to listen (connecting to three services and forking workers).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ManagerProcess {
    child: Option<Child>,
    output: PathBuf,
}

/// A `bai-manager` command with `-f <config>` and the given extra environment.
pub fn command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bai-manager"));
    command.arg("-f").arg(config).args(args);
    // No BACKEND_* variables of the developer's shell leak into a test.
    for (name, _) in std::env::vars() {
        if name.starts_with("BACKEND_") {
            command.env_remove(name);
        }
    }
    command
}

impl ManagerProcess {
    /// Starts `command` with its output in `output`.
    pub fn spawn(mut command: Command, output: &Path) -> ManagerProcess {
        let log = std::fs::File::create(output).expect("creating the manager output file");
        let log_err = log.try_clone().expect("cloning a file handle");
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        // SAFETY: prctl only affects the child being started.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("starting bai-manager");
        ManagerProcess {
            child: Some(child),
            output: output.to_owned(),
        }
    }

    /// `bai-manager -f <config> start-server` with `envs`.
    pub fn start_server(config: &Path, envs: &[(&str, &str)], output: &Path) -> ManagerProcess {
        let mut command = command(config, &["start-server"]);
        command.envs(envs.iter().copied());
        ManagerProcess::spawn(command, output)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Waits until `port` on 127.0.0.1 accepts connections; panics with the output otherwise.
    pub fn wait_for_port(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.try_status() {
                panic!(
                    "bai-manager exited with {status} before listening on {addr}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "bai-manager did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the output contains `text`; panics with the output after `timeout`.
    pub fn wait_for_output(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output().contains(text) {
            assert!(
                Instant::now() < deadline,
                "bai-manager did not print {text:?} within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, signal);
        }
    }

    /// Waits for the process to exit (panics with the output after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "bai-manager did not exit within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The worker processes: children of the supervisor.
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Processes whose parent is `parent`, from /proc.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command name (which may hold spaces) start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && state != Some("Z") {
            children.push(pid);
        }
    }
    children.sort_unstable();
    children
}

/// Replaces the `[logging]` sections of a manager.toml written by `TestEnv::manager_toml`.
pub fn replace_logging_sections(config: &Path, logging: &str) {
    let text = std::fs::read_to_string(config).expect("reading manager.toml");
    let start = text.find("[logging]").expect("a [logging] section");
    let end = text.find("[debug]").expect("a [debug] section");
    let edited = format!("{}{logging}\n\n{}", &text[..start], &text[end..]);
    std::fs::write(config, edited).expect("writing manager.toml");
}

/// Runs `bai-manager` to completion in `cwd` with exactly the given `BACKEND_*`/`HOME`
/// environment; returns the exit code and everything it printed.
pub fn run_to_end(args: &[&str], cwd: &Path, envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bai-manager"));
    command.args(args).current_dir(cwd).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("BACKEND_") || name == "HOME" {
            command.env_remove(name);
        }
    }
    command.envs(envs.iter().copied());
    let output = command.output().expect("running bai-manager");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}
