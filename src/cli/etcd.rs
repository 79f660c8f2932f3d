//! `bai-manager etcd ...`: the global configuration in etcd, with the original's key layout
//! (`/sorna/<namespace>/<key>`, URL-quoted segments) and output formats.
//!
//! Unlike the original, which logs a failure and still exits 0, every verb here exits non-zero
//! when it could not do what was asked (etcd unreachable, bad file, unknown proxy, ...).

use std::io::Read;
use std::path::{Path, PathBuf};

use bai_actors::etcd::keys::{quote, unquote};
use bai_actors::etcd::{EtcdError, EtcdStore};
use clap::Subcommand;
use serde_json::Value;

use super::GlobalArgs;
use super::common::{fail, load_config, run_command};
use crate::exit;

/// `ConfigScopes` of the original, by name. The CLI configures only the global scope prefix
/// (`""`), as the original does, so every scope reads and writes the same keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scope {
    Merged,
    Global,
    Sgroup,
    Node,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ScopeArg {
    /// The configuration scope (only the global prefix is configured, so all scopes use it).
    #[arg(short = 's', long = "scope", value_enum, default_value = "GLOBAL")]
    pub scope: Scope,
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Put a single key-value pair (the key is used as given: quote segments yourself).
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Put a JSON object from FILE ("-" for stdin) as flattened keys under the KEY prefix, in
    /// one transaction. Files of more than etcd's 128 operations per transaction go into nested
    /// transactions of that one transaction (up to 4096 keys); a bigger file is refused whole.
    PutJson {
        key: String,
        file: PathBuf,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Move a subtree to another key prefix (in one transaction).
    MoveSubtree {
        src_prefix: String,
        dst_prefix: String,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Get the value of a key (exit 1 if missing), or with --prefix every key under it as JSON.
    Get {
        key: String,
        /// Print all key-value pairs prefixed with the key as a nested JSON object.
        #[arg(long)]
        prefix: bool,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Delete a key, or with --prefix every key starting with it.
    Delete {
        key: String,
        /// Delete all keys prefixed with the given key.
        #[arg(long)]
        prefix: bool,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Print VALUE URL-quoted as a key segment (`/` → %2F, `:` → %3A).
    Quote { value: String },
    /// Print VALUE with URL-quoting undone.
    Unquote { value: String },
    /// Set the scaling groups (comma-separated) whose sessions may use SFTP on a storage proxy.
    SetStorageSftpScalingGroup {
        proxy: String,
        scaling_groups: String,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Remove the SFTP scaling groups of a storage proxy.
    RemoveStorageSftpScalingGroup {
        proxy: String,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Deprecated: use `image list`.
    ListImages {
        /// Show only the image references and digests.
        #[arg(short, long)]
        short: bool,
        /// Show only the installed images.
        #[arg(short, long)]
        installed: bool,
    },
    /// Deprecated: use `image inspect`.
    InspectImage {
        canonical_or_alias: String,
        architecture: String,
    },
    /// Deprecated: use `image forget`.
    ForgetImage {
        canonical_or_alias: String,
        architecture: String,
    },
    /// Deprecated: use `image set-resource-limit`.
    SetImageResourceLimit {
        canonical_or_alias: String,
        slot_type: String,
        #[arg(value_name = "MIN:MAX")]
        range_value: String,
        architecture: String,
    },
    /// Deprecated: use `image rescan`.
    RescanImages { registry: String },
    /// Deprecated: use `image alias`.
    Alias {
        alias: String,
        target: String,
        architecture: String,
    },
    /// Deprecated: use `image dealias`.
    Dealias { alias: String },
}

/// The `image` verb and its arguments that a deprecated `etcd` image verb stands for.
fn deprecated_image_verb(
    command: &EtcdCommand,
) -> Option<(&'static str, &'static str, Vec<String>)> {
    let owned = |items: &[&String]| items.iter().map(|s| (*s).clone()).collect::<Vec<_>>();
    Some(match command {
        EtcdCommand::ListImages { short, installed } => {
            let mut args = Vec::new();
            if *short {
                args.push("--short".to_owned());
            }
            if *installed {
                args.push("--installed".to_owned());
            }
            ("list-images", "list", args)
        }
        EtcdCommand::InspectImage {
            canonical_or_alias,
            architecture,
        } => (
            "inspect-image",
            "inspect",
            owned(&[canonical_or_alias, architecture]),
        ),
        EtcdCommand::ForgetImage {
            canonical_or_alias,
            architecture,
        } => (
            "forget-image",
            "forget",
            owned(&[canonical_or_alias, architecture]),
        ),
        EtcdCommand::SetImageResourceLimit {
            canonical_or_alias,
            slot_type,
            range_value,
            architecture,
        } => (
            "set-image-resource-limit",
            "set-resource-limit",
            owned(&[canonical_or_alias, slot_type, range_value, architecture]),
        ),
        EtcdCommand::RescanImages { registry } => ("rescan-images", "rescan", owned(&[registry])),
        EtcdCommand::Alias {
            alias,
            target,
            architecture,
        } => ("alias", "alias", owned(&[alias, target, architecture])),
        EtcdCommand::Dealias { alias } => ("dealias", "dealias", owned(&[alias])),
        _ => return None,
    })
}

/// Warns as the original does, then runs the `image` verb with the same arguments.
fn run_deprecated_image_verb(old: &str, new: &str, args: Vec<String>, global: &GlobalArgs) -> i32 {
    eprintln!("etcd {old} command is deprecated, use image {new} instead");
    let mut argv = vec!["bai-manager".to_owned(), "image".to_owned(), new.to_owned()];
    // `--` keeps image references and ranges such as "-1:2" from being read as options.
    if args
        .iter()
        .any(|a| a.starts_with('-') && !a.starts_with("--"))
    {
        argv.push("--".to_owned());
    }
    argv.extend(args);
    match <super::Cli as clap::Parser>::try_parse_from(argv) {
        Ok(super::Cli {
            command: super::Command::Image(image_command),
            ..
        }) => super::image::run(image_command, global),
        Ok(_) => exit::FAILURE,
        Err(error) => {
            let _ = error.print();
            exit::INVALID_USAGE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum EtcdCliError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    NotJson {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} must hold a JSON object to put under a prefix, not {found}")]
    NotAnObject { path: String, found: &'static str },
    #[error("key {0:?} not found")]
    KeyNotFound(String),
    #[error("nothing to move: no key starts with {0:?}")]
    NothingToMove(String),
    #[error("storage proxy {0:?} does not exist (no key under volumes/proxies/{0}/)")]
    UnknownProxy(String),
}

pub fn run(command: EtcdCommand, global: &GlobalArgs) -> i32 {
    // These two need neither the configuration nor etcd.
    match &command {
        EtcdCommand::Quote { value } => {
            println!("{}", quote(value));
            return exit::OK;
        }
        EtcdCommand::Unquote { value } => {
            println!("{}", unquote(value));
            return exit::OK;
        }
        _ => {}
    }
    if let Some((old, new, args)) = deprecated_image_verb(&command) {
        return run_deprecated_image_verb(old, new, args, global);
    }
    let verb = verb_name(&command);
    let config = match load_config(verb, global) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let settings = config.etcd_settings();
    run_command(verb, async move {
        // Read and check a file before connecting: a bad file needs no etcd to be reported.
        let json = match &command {
            EtcdCommand::PutJson { file, .. } => match read_json_object(file) {
                Ok(value) => Some(value),
                Err(e) => return fail(verb, e),
            },
            _ => None,
        };
        let store = match EtcdStore::connect(&settings).await {
            Ok(store) => store,
            Err(e) => return fail(verb, e),
        };
        match execute(&store, command, json).await {
            Ok(()) => exit::OK,
            Err(EtcdCliError::KeyNotFound(_)) => exit::FAILURE,
            Err(e) => fail(verb, e),
        }
    })
}

fn verb_name(command: &EtcdCommand) -> &'static str {
    match command {
        EtcdCommand::Put { .. } => "etcd put",
        EtcdCommand::PutJson { .. } => "etcd put-json",
        EtcdCommand::MoveSubtree { .. } => "etcd move-subtree",
        EtcdCommand::Get { .. } => "etcd get",
        EtcdCommand::Delete { .. } => "etcd delete",
        EtcdCommand::Quote { .. } => "etcd quote",
        EtcdCommand::Unquote { .. } => "etcd unquote",
        EtcdCommand::SetStorageSftpScalingGroup { .. } => "etcd set-storage-sftp-scaling-group",
        EtcdCommand::RemoveStorageSftpScalingGroup { .. } => {
            "etcd remove-storage-sftp-scaling-group"
        }
        _ => "etcd",
    }
}

/// `json.load(FILE)`, which must give an object for `put_prefix`.
fn read_json_object(path: &Path) -> Result<Value, EtcdCliError> {
    let shown = path.display().to_string();
    let mut text = String::new();
    let read = if shown == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|source| EtcdCliError::ReadFile {
        path: shown.clone(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|source| EtcdCliError::NotJson {
        path: shown.clone(),
        source,
    })?;
    if !value.is_object() {
        return Err(EtcdCliError::NotAnObject {
            path: shown,
            found: json_kind(&value),
        });
    }
    Ok(value)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `sftp_scaling_groups` value: comma-separated names, each stripped.
fn sftp_scaling_groups_value(scaling_groups: &str) -> String {
    scaling_groups
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
}

async fn proxy_exists(store: &EtcdStore, proxy: &str) -> Result<bool, EtcdError> {
    let under = store
        .get_prefix_flat(&format!("volumes/proxies/{proxy}/"))
        .await?;
    Ok(!under.is_empty())
}

async fn execute(
    store: &EtcdStore,
    command: EtcdCommand,
    json: Option<Value>,
) -> Result<(), EtcdCliError> {
    match command {
        EtcdCommand::Put { key, value, .. } => store.put(&key, &value).await?,
        EtcdCommand::PutJson { key, .. } => {
            let value = json.unwrap_or(Value::Null);
            store.put_prefix(&key, &value).await?;
        }
        EtcdCommand::MoveSubtree {
            src_prefix,
            dst_prefix,
            ..
        } => {
            let moved = store.move_prefix(&src_prefix, &dst_prefix).await?;
            if moved == 0 {
                return Err(EtcdCliError::NothingToMove(src_prefix));
            }
        }
        EtcdCommand::Get { key, prefix, .. } => {
            if prefix {
                let tree = store.get_prefix(&key).await?;
                println!(
                    "{}",
                    bai_actors::compat::pyjson::dumps_indent4(&Value::Object(tree))
                );
            } else {
                match store.get(&key).await? {
                    Some(value) => println!("{value}"),
                    None => return Err(EtcdCliError::KeyNotFound(key)),
                }
            }
        }
        EtcdCommand::Delete { key, prefix, .. } => {
            if prefix {
                store.delete_prefix(&key).await?;
            } else {
                store.delete(&key).await?;
            }
        }
        EtcdCommand::SetStorageSftpScalingGroup {
            proxy,
            scaling_groups,
            ..
        } => {
            if !proxy_exists(store, &proxy).await? {
                return Err(EtcdCliError::UnknownProxy(proxy));
            }
            store
                .put(
                    &format!("volumes/proxies/{proxy}/sftp_scaling_groups"),
                    &sftp_scaling_groups_value(&scaling_groups),
                )
                .await?;
        }
        EtcdCommand::RemoveStorageSftpScalingGroup { proxy, .. } => {
            if !proxy_exists(store, &proxy).await? {
                return Err(EtcdCliError::UnknownProxy(proxy));
            }
            store
                .delete(&format!("volumes/proxies/{proxy}/sftp_scaling_groups"))
                .await?;
        }
        EtcdCommand::Quote { value } => println!("{}", quote(&value)),
        EtcdCommand::Unquote { value } => println!("{}", unquote(&value)),
        // Dispatched to `image` before connecting (see `deprecated_image_verb`).
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn sftp_groups_are_stripped_and_comma_joined() {
        assert_eq!(sftp_scaling_groups_value(" a, b ,c"), "a,b,c");
        assert_eq!(sftp_scaling_groups_value("default"), "default");
    }

    #[test]
    fn scopes_take_the_originals_enum_names_case_sensitively() {
        let cli =
            crate::cli::Cli::try_parse_from(["bai-manager", "etcd", "get", "x", "-s", "SGROUP"])
                .unwrap();
        match cli.command {
            crate::cli::Command::Etcd(EtcdCommand::Get { scope, .. }) => {
                assert_eq!(scope.scope, Scope::Sgroup)
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            crate::cli::Cli::try_parse_from(["bai-manager", "etcd", "get", "x", "-s", "global"])
                .is_err()
        );
    }

    #[test]
    fn a_non_object_file_is_refused_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        let err = read_json_object(&path).unwrap_err();
        assert!(err.to_string().contains("an array"), "{err}");
        std::fs::write(&path, "{\"a\": ").unwrap();
        let err = read_json_object(&path).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
    }
}
