//! Runs the `bai-manager` binary the way an operator does, and captures what it prints.

use std::path::Path;
use std::process::{Command, Output};

/// What one run printed and how it ended.
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    fn from_output(output: Output) -> CliRun {
        CliRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with everything printed unless the run succeeded.
    pub fn assert_ok(self) -> CliRun {
        assert_eq!(
            self.code, 0,
            "bai-manager failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// `bai-manager -f <manager.toml> <args...>`, run in `cwd`.
pub fn bai_manager(config: &Path, cwd: &Path, args: &[&str]) -> CliRun {
    let output = Command::new(env!("CARGO_BIN_EXE_bai-manager"))
        .arg("-f")
        .arg(config)
        .args(args)
        .current_dir(cwd)
        .env_remove("BACKEND_CONFIG_FILE")
        .output()
        .expect("running bai-manager");
    CliRun::from_output(output)
}
