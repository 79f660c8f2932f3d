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
