//! The folder names a container reserves for its own files (the original's `RESERVED_VFOLDERS`
//! and `RESERVED_VFOLDER_PATTERNS`, checked by `verify_vfolder_name`): no folder may be created,
//! renamed or mounted under them.

/// Folder names the container itself uses (`RESERVED_VFOLDERS`).
pub const RESERVED_FOLDER_NAMES: [&str; 23] = [
    ".terminfo",
    ".jupyter",
    ".tmux.conf",
    ".ssh",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/home",
];

/// `verify_vfolder_name`: the reserved names, and shell dotfiles (`.bashrc`, `.bash_profile`).
pub fn is_reserved_folder_name(name: &str) -> bool {
    if RESERVED_FOLDER_NAMES.contains(&name) {
        return true;
    }
    let Some(stem) = name.strip_prefix('.') else {
        return false;
    };
    let lower_alnum = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    stem.strip_suffix("rc").is_some_and(lower_alnum)
        || stem.strip_suffix("_profile").is_some_and(lower_alnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_reserved_names_and_patterns() {
        for name in [
            ".ssh",
            ".jupyter",
            ".terminfo",
            ".tmux.conf",
            "/home",
            "/tmp",
            "/usr",
        ] {
            assert!(is_reserved_folder_name(name), "{name}");
        }
        // `^\.[a-z0-9]+rc$` and `^\.[a-z0-9]+_profile$`.
        for name in [".bashrc", ".zshrc", ".vimrc", ".bash_profile", ".x11rc"] {
            assert!(is_reserved_folder_name(name), "{name}");
        }
        for name in [
            "data",
            ".rc",
            "._profile",
            ".Bashrc",
            ".bash-rc",
            "bashrc",
            "home",
            ".local",
        ] {
            assert!(!is_reserved_folder_name(name), "{name}");
        }
    }
}
