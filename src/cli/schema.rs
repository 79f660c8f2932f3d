//! `bai-manager schema ...`: create, upgrade and inspect the database schema.
//!
//! Which database: the `sqlalchemy.url` of an alembic.ini when one is given
//! (`--alembic-config FILE`, or `-f FILE` after the verb as the original spells it, which our
//! global `-f` receives and which is recognised by its `[alembic]` section), else `./alembic.ini`
//! when it exists (the original's default), else `[db]` of manager.toml.

use bai_schema::queries::ReadColumn;
use std::path::{Path, PathBuf};

use bai_schema::DbSettings;
use bai_schema::migrate::{self, MigrationReport};
use clap::Subcommand;

use super::GlobalArgs;
use super::common::{fail, load_config, run_command};
use crate::exit;

/// The original's default `--alembic-config`.
const DEFAULT_ALEMBIC_INI: &str = "alembic.ini";

#[derive(Debug, Clone, clap::Args)]
pub struct AlembicArg {
    /// An alembic.ini whose `sqlalchemy.url` names the database (default: ./alembic.ini if it
    /// exists, else [db] of manager.toml). `-f FILE` after the verb works too.
    #[arg(long = "alembic-config", value_name = "FILE")]
    pub alembic_config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Show the current and the head revision.
    Show(AlembicArg),
    /// Create the schema on a fresh database, or upgrade it to the head revision.
    Oneshot(AlembicArg),
}

#[derive(Debug, thiserror::Error)]
pub enum AlembicIniError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no sqlalchemy.url in its [alembic] section")]
    NoUrl { path: PathBuf },
    #[error("{path}: sqlalchemy.url {problem}")]
    BadUrl {
        path: PathBuf,
        #[source]
        problem: DatabaseUrlError,
    },
}

/// What is wrong with a `sqlalchemy.url` (the text follows "sqlalchemy.url").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    #[error("uses {0:?}; bai-manager supports PostgreSQL only")]
    NotPostgres(String),
    #[error("has an unclosed [ in the host")]
    UnclosedBracket,
    #[error("has an invalid port {0:?}")]
    BadPort(String),
    #[error("has no host")]
    NoHost,
    #[error("names no database")]
    NoDatabase,
}

/// Why `schema show` / `schema oneshot` failed once connected.
#[derive(Debug, thiserror::Error)]
pub enum SchemaCliError {
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    #[error("cannot inspect the database: {0}")]
    Inspect(#[source] tokio_postgres::Error),
    #[error("cannot inspect the database: {0}")]
    InspectColumn(#[source] bai_schema::queries::DecodeError),
    #[error("cannot read alembic_version: {0}")]
    ReadAlembic(#[source] tokio_postgres::Error),
    #[error("cannot read alembic_version: {0}")]
    ReadAlembicColumn(#[source] bai_schema::queries::DecodeError),
    #[error(
        "the database ({origin}) was created by the original Backend.AI Manager (alembic revision {alembic}); bai-manager needs a database of its own: create an empty one and run schema oneshot there"
    )]
    CreatedByAlembic { origin: String, alembic: String },
}

/// Where the database settings came from, for the operator.
struct DbSource {
    settings: DbSettings,
    origin: String,
}

pub fn run(command: SchemaCommand, global: &GlobalArgs) -> i32 {
    let (verb, alembic) = match &command {
        SchemaCommand::Show(arg) => ("schema show", arg),
        SchemaCommand::Oneshot(arg) => ("schema oneshot", arg),
    };
    let source = match resolve_db(verb, alembic, global) {
        Ok(source) => source,
        Err(code) => return code,
    };
    run_command(verb, async move {
        let mut client = match source.settings.connect_one().await {
            Ok(client) => client,
            Err(e) => return fail(verb, format!("{e} (from {})", source.origin)),
        };
        let result = match command {
            SchemaCommand::Show(_) => show(&client).await,
            SchemaCommand::Oneshot(_) => oneshot(&mut client, &source.origin).await,
        };
        match result {
            Ok(()) => exit::OK,
            Err(message) => fail(verb, message),
        }
    })
}

fn resolve_db(verb: &str, alembic: &AlembicArg, global: &GlobalArgs) -> Result<DbSource, i32> {
    let explicit_ini = alembic.alembic_config.clone().or_else(|| {
        global
            .config
            .as_ref()
            .filter(|path| looks_like_alembic_ini(path))
            .cloned()
    });
    let ini = explicit_ini.or_else(|| {
        let default = PathBuf::from(DEFAULT_ALEMBIC_INI);
        default.is_file().then_some(default)
    });
    if let Some(ini) = ini {
        return match db_settings_from_alembic_ini(&ini) {
            Ok(settings) => Ok(DbSource {
                settings,
                origin: format!("sqlalchemy.url of {}", ini.display()),
            }),
            Err(e) => {
                eprintln!("bai-manager {verb}: {e}");
                Err(exit::INVALID_ARGUMENT)
            }
        };
    }
    let config = load_config(verb, global)?;
    Ok(DbSource {
        settings: config.db_settings(),
        origin: format!("[db] of {}", config.source_path.display()),
    })
}

/// An alembic.ini has an `[alembic]` section; a manager.toml does not.
fn looks_like_alembic_ini(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|text| text.lines().any(|line| line.trim() == "[alembic]"))
        .unwrap_or(false)
}

/// Reads `sqlalchemy.url` from the `[alembic]` section, as configparser does (with `%(here)s`
/// and `%%` interpolation).
pub fn db_settings_from_alembic_ini(path: &Path) -> Result<DbSettings, AlembicIniError> {
    let text = std::fs::read_to_string(path).map_err(|source| AlembicIniError::Read {
        path: path.to_owned(),
        source,
    })?;
    let url =
        ini_value(&text, "alembic", "sqlalchemy.url").ok_or_else(|| AlembicIniError::NoUrl {
            path: path.to_owned(),
        })?;
    let here = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_else(|| ".".to_owned());
    let url = url.replace("%(here)s", &here).replace("%%", "%");
    parse_database_url(&url).map_err(|problem| AlembicIniError::BadUrl {
        path: path.to_owned(),
        problem,
    })
}

/// The value of `key` in `[section]` of an INI text (configparser's basic rules: `=` or `:`,
/// case-insensitive keys, `#`/`;` comment lines, indented continuation lines).
pub fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut in_section = false;
    let mut found: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            if found.is_some() {
                break;
            }
            in_section = name.trim() == section;
            continue;
        }
        if !in_section || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(value) = found.as_mut() {
            if line.starts_with(char::is_whitespace) && !trimmed.is_empty() {
                value.push('\n');
                value.push_str(trimmed);
                continue;
            }
            break;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            continue;
        };
        if trimmed[..split].trim().eq_ignore_ascii_case(key) {
            found = Some(trimmed[split + 1..].trim().to_owned());
        }
    }
    found
}

/// `postgresql[+driver]://user:password@host:port/name` → connection settings.
pub fn parse_database_url(url: &str) -> Result<DbSettings, DatabaseUrlError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| DatabaseUrlError::NotAUrl(url.to_owned()))?;
    let dialect = scheme.split('+').next().unwrap_or_default();
    if dialect != "postgresql" && dialect != "postgres" {
        return Err(DatabaseUrlError::NotPostgres(scheme.to_owned()));
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, name) = rest.split_once('/').unwrap_or((rest, ""));
    let (credentials, hostport) = match authority.rsplit_once('@') {
        Some((credentials, hostport)) => (Some(credentials), hostport),
        None => (None, authority),
    };
    let (user, password) = match credentials {
        Some(credentials) => match credentials.split_once(':') {
            Some((user, password)) => (unquote(user), unquote(password)),
            None => (unquote(credentials), String::new()),
        },
        None => ("postgres".to_owned(), String::new()),
    };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or(DatabaseUrlError::UnclosedBracket)?;
        (host.to_owned(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (hostport.to_owned(), None),
        }
    };
    let port = match port {
        None | Some("") => 5432,
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| DatabaseUrlError::BadPort(port.to_owned()))?,
    };
    if host.is_empty() {
        return Err(DatabaseUrlError::NoHost);
    }
    let name = unquote(name);
    if name.is_empty() {
        return Err(DatabaseUrlError::NoDatabase);
    }
    Ok(DbSettings {
        host,
        port,
        name,
        user,
        password,
        pool_size: 1,
    })
}

fn unquote(text: &str) -> String {
    bai_actors::etcd::keys::unquote(text)
}

fn revision_label(version: Option<i32>) -> String {
    match version {
        None => "None".to_owned(),
        Some(v) => migrate::version_name(v)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{v:04} (unknown to this bai-manager)")),
    }
}

/// A database that the original Backend.AI Manager created (its alembic revision) cannot be
/// adopted: bai-manager's schema history starts from its own first migration.
async fn alembic_revision(
    client: &tokio_postgres::Client,
) -> Result<Option<String>, SchemaCliError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('public.alembic_version') IS NOT NULL",
            &[],
        )
        .await
        .map_err(SchemaCliError::Inspect)?
        .decode(0)
        .map_err(SchemaCliError::InspectColumn)?;
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt("SELECT version_num::text FROM alembic_version LIMIT 1", &[])
        .await
        .map_err(SchemaCliError::ReadAlembic)?;
    Ok(Some(
        row.map(|r| r.decode::<_, String>(0))
            .transpose()
            .map_err(SchemaCliError::ReadAlembicColumn)?
            .unwrap_or_else(|| "(empty)".to_owned()),
    ))
}

async fn show(client: &tokio_postgres::Client) -> Result<(), SchemaCliError> {
    let current = migrate::current_version(client).await?;
    match (current, alembic_revision(client).await?) {
        (None, Some(alembic)) => println!(
            "Current database revision: {alembic} (an alembic revision of the original Backend.AI Manager)"
        ),
        _ => println!("Current database revision: {}", revision_label(current)),
    }
    println!(
        "The head revision of available migrations: {}",
        revision_label(Some(migrate::head_version()))
    );
    Ok(())
}

async fn oneshot(client: &mut tokio_postgres::Client, origin: &str) -> Result<(), SchemaCliError> {
    if migrate::current_version(client).await?.is_none()
        && let Some(alembic) = alembic_revision(client).await?
    {
        return Err(SchemaCliError::CreatedByAlembic {
            origin: origin.to_owned(),
            alembic,
        });
    }
    let report = migrate::apply_all(client).await?;
    println!("{}", describe(&report));
    Ok(())
}

/// What `oneshot` says it did.
fn describe(report: &MigrationReport) -> String {
    let head = revision_label(Some(report.head));
    match (report.previous, report.applied.is_empty()) {
        (_, true) => format!("The schema is already at the head revision {head}; nothing changed."),
        (None, false) => format!(
            "Detected a fresh new database: created the schema at the head revision {head}."
        ),
        (Some(previous), false) => format!(
            "Upgraded the schema from revision {} to {head} (applied: {}).",
            revision_label(Some(previous)),
            report.applied.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALFSTACK: &str = include_str!("../../configs/manager/halfstack.alembic.ini");

    #[test]
    fn reads_the_halfstack_alembic_ini() {
        let url = ini_value(HALFSTACK, "alembic", "sqlalchemy.url").unwrap();
        assert_eq!(
            url,
            "postgresql+asyncpg://postgres:develove@localhost:8100/backend"
        );
        let settings = parse_database_url(&url).unwrap();
        assert_eq!(
            (
                settings.host.as_str(),
                settings.port,
                settings.name.as_str(),
                settings.user.as_str(),
                settings.password.as_str()
            ),
            ("localhost", 8100, "backend", "postgres", "develove")
        );
        assert_eq!(ini_value(HALFSTACK, "alembic", "nothing"), None);
        assert_eq!(
            ini_value(HALFSTACK, "logger_root", "level").as_deref(),
            Some("WARN")
        );
    }

    #[test]
    fn urls_are_decoded_and_checked() {
        let s =
            parse_database_url("postgresql://us%40er:p%3Ass@[::1]/db%2Dx?sslmode=disable").unwrap();
        assert_eq!(
            (
                s.user.as_str(),
                s.password.as_str(),
                s.host.as_str(),
                s.port,
                s.name.as_str()
            ),
            ("us@er", "p:ss", "::1", 5432, "db-x")
        );
        assert!(parse_database_url("mysql://u@h/db").is_err());
        assert!(parse_database_url("postgresql://u@h:99999/db").is_err());
        assert!(parse_database_url("postgresql://u@h:5432/").is_err());
        assert!(parse_database_url("localhost:5432").is_err());
    }

    #[test]
    fn oneshot_says_whether_anything_changed() {
        let fresh = MigrationReport {
            previous: None,
            applied: vec!["0001_initial"],
            head: 1,
        };
        assert!(describe(&fresh).contains("fresh new database"));
        let unchanged = MigrationReport {
            previous: Some(1),
            applied: vec![],
            head: 1,
        };
        assert!(describe(&unchanged).contains("nothing changed"));
    }
}
