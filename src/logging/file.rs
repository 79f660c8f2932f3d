//! The file driver: appends lines to `<path>/<filename>` and rotates by size like Python's
//! `RotatingFileHandler` (`manager.log` → `manager.log.1` → ... → `manager.log.<backup-count>`,
//! the oldest dropped).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    backup_count: u32,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (creating the folder and the file when missing) for appending.
    pub fn open(path: &Path, max_bytes: u64, backup_count: u32) -> std::io::Result<RotatingFile> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            max_bytes,
            backup_count,
            file,
            size,
        })
    }

    /// Writes one line (a newline is added), rotating first when the line would make the file
    /// reach `max_bytes`. A line larger than `max_bytes` still goes out whole, alone in its file.
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let length = line.len() as u64 + 1;
        if self.size > 0 && self.size + length >= self.max_bytes {
            self.rotate()?;
        }
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
        self.file.write_all(&buffer)?;
        self.size += length;
        Ok(())
    }

    fn backup_path(&self, index: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{index}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for index in (1..self.backup_count).rev() {
            let from = self.backup_path(index);
            if from.exists() {
                std::fs::rename(&from, self.backup_path(index + 1))?;
            }
        }
        if self.backup_count > 0 {
            std::fs::rename(&self.path, self.backup_path(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_size_and_keeps_backup_count_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/manager.log");
        let mut file = RotatingFile::open(&path, 100, 2).unwrap();
        // 30 bytes per line (29 + newline): three lines fit below 100 bytes, the fourth rotates.
        let line = |n: usize| format!("{n:029}");
        for n in 0..10 {
            file.write_line(&line(n)).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), format!("{}\n", line(9)));
        assert_eq!(
            read(&dir.path().join("logs/manager.log.1")),
            format!("{}\n{}\n{}\n", line(6), line(7), line(8))
        );
        assert_eq!(
            read(&dir.path().join("logs/manager.log.2")),
            format!("{}\n{}\n{}\n", line(3), line(4), line(5))
        );
        assert!(!dir.path().join("logs/manager.log.3").exists());
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.log");
        std::fs::write(&path, "x".repeat(90)).unwrap();
        let mut file = RotatingFile::open(&path, 100, 1).unwrap();
        file.write_line("0123456789").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0123456789\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("m.log.1"))
                .unwrap()
                .len(),
            90
        );
    }
}
