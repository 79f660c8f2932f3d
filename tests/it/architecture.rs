//! The layering rules of docs/architecture.md, checked over the source: actors never reach
//! into the HTTP façade (or its GraphQL half), the wire codecs never touch the database, and
//! the data model (`schema/`) knows no actor. A forbidden path anywhere in a file (a `use`
//! line or an inline `crate::facade::...`) fails the test with the file and line. Rows are read
//! without the panicking `Row::get` outside tests, and the façade (`facade/`, `gql/`) holds no
//! SQL statement text.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The lines of `files` that mention any of `forbidden` outside comments, as `file:line: text`.
fn offending_lines(files: &[PathBuf], forbidden: &[&str]) -> Vec<String> {
    let mut offences = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if forbidden.iter().any(|needle| code.contains(needle)) {
                offences.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(repo_root()).unwrap_or(file).display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    offences
}

#[test]
fn actors_never_import_the_facade() {
    let actors = repo_root().join("actors/src");
    // The façade is `facade/` and its GraphQL half `gql/`; everything else is an actor, a
    // service an actor owns, or a codec.
    let files: Vec<PathBuf> = rust_files(&actors)
        .into_iter()
        .filter(|path| {
            let relative = path.strip_prefix(&actors).unwrap_or(path);
            !(relative.starts_with("facade")
                || relative.starts_with("gql")
                || relative == Path::new("lib.rs")
                || relative == Path::new("fuzz.rs"))
        })
        .collect();
    assert!(files.len() > 20, "found only {} actor files", files.len());
    let offences = offending_lines(&files, &["crate::facade", "crate::gql", "super::facade"]);
    assert!(
        offences.is_empty(),
        "actors import the façade (define the message beside the actor, map errors at the \
         façade's edge):\n{}",
        offences.join("\n")
    );
}

#[test]
fn codecs_never_touch_the_database() {
    let files = rust_files(&repo_root().join("actors/src/wire"));
    assert!(!files.is_empty());
    let offences = offending_lines(
        &files,
        &["tokio_postgres", "deadpool_postgres", "bai_schema::queries"],
    );
    assert!(
        offences.is_empty(),
        "wire codecs reach the database:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_data_model_knows_no_actor() {
    let schema = repo_root().join("schema");
    let offences = offending_lines(
        &rust_files(&schema.join("src")),
        &["actix", "bai_actors", "actix_web"],
    );
    assert!(
        offences.is_empty(),
        "schema/ depends on actors:\n{}",
        offences.join("\n")
    );
    let manifest = std::fs::read_to_string(schema.join("Cargo.toml")).expect("schema/Cargo.toml");
    for crate_name in ["actix", "bai-actors"] {
        assert!(
            !manifest
                .lines()
                .any(|line| line.trim_start().starts_with(crate_name)),
            "schema/Cargo.toml depends on {crate_name}"
        );
    }
}

/// `Row::get` panics when a column is missing or of another type, so a drifted schema would
/// kill a worker; non-test code reads rows with `ReadColumn::read`/`decode` or `try_get`.
/// `clippy.toml` bans the method (type-aware); this scan keeps the ban from being dropped or
/// silenced, and spots the usual shapes of a row read by text: `row.get(0)`,
/// `row.get("name")`, `row.get(first + 1)`, `row.get::<_, T>(..)` and a `.get(0)` chained
/// after a query's `?`. A map's `get` (`map.get("key")`, `r.get("min")` on JSON) is not matched.
#[test]
fn rows_are_read_without_panicking() {
    let clippy = std::fs::read_to_string(repo_root().join("clippy.toml")).expect("clippy.toml");
    assert!(
        clippy.contains("\"tokio_postgres::row::Row::get\""),
        "clippy.toml no longer bans tokio_postgres::row::Row::get"
    );
    let mut files = Vec::new();
    for dir in ["actors/src", "schema/src", "src"] {
        files.extend(rust_files(&repo_root().join(dir)));
    }
    assert!(files.len() > 100, "found only {} files", files.len());
    let silenced = offending_lines(&files, &["clippy::disallowed_methods"]);
    assert!(
        silenced.is_empty(),
        "the Row::get ban is silenced in non-test code:\n{}",
        silenced.join("\n")
    );
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let mut previous = "";
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break; // unit tests may panic on a drifted schema
            }
            let code = line.split("//").next().unwrap_or_default();
            if reads_a_row_by_get(code, previous) {
                offences.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(repo_root()).unwrap_or(file).display(),
                    number + 1,
                    line.trim()
                ));
            }
            if !code.trim().is_empty() {
                previous = code;
            }
        }
    }
    assert!(
        offences.is_empty(),
        "rows read with the panicking Row::get (use ReadColumn::read/decode or try_get):\n{}",
        offences.join("\n")
    );
}

/// Whether `code` (one line, comments cut) reads a row column with `get`.
fn reads_a_row_by_get(code: &str, previous: &str) -> bool {
    let receivers = ["row.get", "r.get"];
    for receiver in receivers {
        let mut rest = code;
        while let Some(at) = rest.find(receiver) {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + receiver.len()..];
            rest = after;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `arrow.get`, `for_r.get`
            }
            if after.starts_with("::<_,") {
                return true;
            }
            let Some(argument) = after.strip_prefix('(') else {
                continue;
            };
            let argument = argument.trim_start();
            if argument.starts_with(|c: char| c.is_ascii_digit())
                || argument.starts_with("first +")
                || (receiver == "row.get" && argument.starts_with('"'))
            {
                return true;
            }
        }
    }
    // `.query_one(..).await.map_err(..)?` then `.get(0)` on the next line.
    let trimmed = code.trim();
    let chained = trimmed.strip_prefix(".get(").or_else(|| {
        trimmed
            .strip_prefix(".get::<_,")
            .and_then(|t| t.split_once(">(").map(|(_, rest)| rest))
    });
    chained.is_some_and(|argument| argument.starts_with(|c: char| c.is_ascii_digit()))
        && previous.trim_end().ends_with('?')
}

#[test]
fn the_row_scan_tells_rows_from_maps() {
    assert!(reads_a_row_by_get("let id: Uuid = row.get(0);", ""));
    assert!(reads_a_row_by_get("name: row.get(\"name\"),", ""));
    assert!(reads_a_row_by_get("x: row.get(first + 2),", ""));
    assert!(reads_a_row_by_get(".filter(|r| r.get::<_, bool>(0))", ""));
    assert!(reads_a_row_by_get(
        "        .get(0);",
        "    .map_err(db_err(\"x\"))?"
    ));
    assert!(reads_a_row_by_get("  .get::<_, i64>(0);", "  .await?"));
    assert!(!reads_a_row_by_get("let v = row.try_get(0)?;", ""));
    assert!(!reads_a_row_by_get("let v = row.decode(0)?;", ""));
    assert!(!reads_a_row_by_get(".and_then(|r| r.get(\"min\"))", ""));
    assert!(!reads_a_row_by_get(
        "let value = row.get(name.as_str());",
        ""
    ));
    assert!(!reads_a_row_by_get("headers.get(\"X-Version\")", ""));
    assert!(!reads_a_row_by_get(
        "        .get(2)",
        "    last_call_time: chunk"
    ));
    assert!(!reads_a_row_by_get(
        "redis.get::<_, Option<Vec<u8>>>(&key)",
        ""
    ));
}

/// The text of every string literal of `source` (comments and doc comments skipped), with the
/// line each starts on. Char literals and lifetimes are told apart; escapes are kept as written.
fn string_literals(source: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut found = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            // `'x'`, `'\n'`, `'\''` are chars; `'a` (no closing quote right after) a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c == '"'
            || (c == 'r'
                && (next == Some('"') || next == Some('#'))
                && !chars
                    .get(i.wrapping_sub(1))
                    .is_some_and(|p| p.is_alphanumeric() || *p == '_'))
        {
            let start_line = line;
            let mut text = String::new();
            if c == 'r' {
                let mut hashes = 0;
                i += 1;
                while chars.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if chars.get(i) != Some(&'"') {
                    continue; // `r#ident`
                }
                i += 1;
                let closing: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                while i < chars.len()
                    && !chars[i..].starts_with(&closing.chars().collect::<Vec<_>>())
                {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                i += closing.len();
            } else {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        text.push(chars[i]);
                        i += 1;
                    }
                    if chars.get(i) == Some(&'\n') {
                        line += 1;
                    }
                    if let Some(ch) = chars.get(i) {
                        text.push(*ch);
                    }
                    i += 1;
                }
                i += 1;
            }
            found.push((start_line, text));
        } else {
            i += 1;
        }
    }
    found
}

/// Statement text in a string literal: what a query module owns.
/// A bare ` FROM ` is not one: a Dockerfile's `FROM` lives in the façade.
const SQL_MARKERS: [&str; 6] = [
    "SELECT ",
    "INSERT INTO",
    "UPDATE ",
    "DELETE FROM",
    " JOIN ",
    "WHERE ",
];

/// The façade's string literals that hold SQL statement text, as `file:line: literal`.
fn sql_in_literals(files: &[PathBuf]) -> Vec<String> {
    let mut offences = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for (line, literal) in string_literals(&text) {
            if SQL_MARKERS.iter().any(|marker| literal.contains(marker)) {
                offences.push(format!(
                    "{}:{line}: {:?}",
                    file.strip_prefix(repo_root()).unwrap_or(file).display(),
                    literal.chars().take(80).collect::<String>()
                ));
            }
        }
    }
    offences
}

/// The GraphQL resolvers and the HTTP façade translate; the SQL they run lives in the query
/// modules of `schema/src/queries/` (docs/architecture.md, issue 18), which the
/// prepare-every-statement test checks against the migrated schema.
#[test]
fn the_facade_writes_no_sql() {
    let mut files = rust_files(&repo_root().join("actors/src/gql"));
    files.extend(rust_files(&repo_root().join("actors/src/facade")));
    assert!(files.len() > 50, "found only {} façade files", files.len());
    let offences = sql_in_literals(&files);
    assert!(
        offences.is_empty(),
        "SQL statement text in the façade (move it to a query module of schema/src/queries/):\n{}",
        offences.join("\n")
    );
}

/// The heartbeat tracker and the scheduler's loaders, reservation and reconciler decide; their
/// statements live in `schema/src/queries/` (`agent_heartbeat`, `scheduler_load`,
/// `scheduler_reserve`, `scheduler_reconcile`). The scheduler's other files still write theirs.
#[test]
fn the_actors_write_no_sql_but_the_lock_backends() {
    // The lock backends speak PostgreSQL's advisory-lock and fencing functions themselves.
    let allowed = ["lock/fence.rs", "lock/pg_advisory.rs"];
    let root = repo_root().join("actors/src");
    let files: Vec<std::path::PathBuf> = rust_files(&root)
        .into_iter()
        .filter(|file| {
            let relative = file.strip_prefix(&root).unwrap_or(file);
            !allowed
                .iter()
                .any(|name| relative == std::path::Path::new(name))
        })
        .collect();
    for must_be_scanned in [
        "scheduler/events.rs",
        "scheduler/kernel_events.rs",
        "heartbeat/store.rs",
    ] {
        assert!(
            files.contains(&root.join(must_be_scanned)),
            "{must_be_scanned} is not scanned"
        );
    }
    let offences = sql_in_literals(&files);
    assert!(
        offences.is_empty(),
        "SQL statement text in an actor (move it to a query module of schema/src/queries/):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_sql_scan_reads_literals_not_comments() {
    let source = "// SELECT id FROM t\n/// UPDATE x\nlet a = 'x'; fn f<'a>() {}\n\
                  let s = \"SELECT id \\\" FROM t\";\nlet r = r#\"DELETE FROM \"t\"\"#;\n\
                  /* INSERT INTO t */ let c = '\"'; let d = \"plain\";";
    let literals = string_literals(source);
    let texts: Vec<&str> = literals.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["SELECT id \\\" FROM t", "DELETE FROM \"t\"", "plain"],
        "{literals:?}"
    );
    assert_eq!(literals[0].0, 4);
}
