//! The pid file of `[manager] pid-file`: written by the supervisor at start, removed at exit.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot write the pid file {path}: {source}")]
pub struct PidFileError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// A written pid file; [`PidFile::remove`] deletes it.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's id to `path`.
    pub fn write(path: &Path) -> Result<PidFile, PidFileError> {
        std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
            PidFileError {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }

    /// Deletes the file if it still holds our pid (a newer manager may have taken it over).
    pub fn remove(self) -> std::io::Result<()> {
        let ours = std::fs::read_to_string(&self.path)
            .map(|text| text.trim() == std::process::id().to_string())
            .unwrap_or(false);
        if ours {
            std::fs::remove_file(&self.path)?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_with_our_pid_and_removed_only_while_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manager.pid");
        let pid_file = PidFile::write(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        pid_file.remove().unwrap();
        assert!(!path.exists());

        let pid_file = PidFile::write(&path).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        pid_file.remove().unwrap();
        assert!(path.exists(), "another manager's pid file was removed");
    }

    #[test]
    fn an_unwritable_path_names_the_file() {
        let error = PidFile::write(Path::new("/nonexistent/dir/manager.pid")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("cannot write the pid file /nonexistent/dir/manager.pid"),
            "{error}"
        );
    }
}
