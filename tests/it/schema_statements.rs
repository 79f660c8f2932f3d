//! Every SQL statement the query modules (`schema/src/queries/`) write as a literal prepares
//! against the migrated schema: a renamed column, a dropped table or a type that no longer
//! matches fails here, naming the file and the statement, instead of at a request.
//!
//! The statements are collected from the sources themselves (the literal argument of
//! `prepare_cached`, `query`, `query_one`, `query_opt`, `execute`, and `const …: &str` literals
//! that are whole statements), so a new query is covered without being listed twice. Statements
//! a module assembles at compile time from a shared column list (`concat!`) are listed by
//! `bai_schema::queries::assembled_statements()` and prepared too. The list modules' statements,
//! assembled at run time from a scope, a client's filter and ordering (`format!`), are listed by
//! `bai_schema::queries::list_statements()` for each list with no filter and with one filter and
//! one ordering, and prepared too.

use std::path::{Path, PathBuf};

use bai_testkit::TestEnv;

/// The calls whose first argument is a statement.
const STATEMENT_CALLS: [&str; 5] = [
    "prepare_cached(",
    ".query(",
    ".query_one(",
    ".query_opt(",
    ".execute(",
];

/// Where a statement was found, and its text.
#[derive(Debug)]
struct Statement {
    file: PathBuf,
    sql: String,
}

/// The Rust string literal at the start of `text` (after whitespace), unescaped: `"…"` or
/// `r"…"` / `r#"…"#`. `None` when the argument is not a literal.
fn leading_literal(text: &str) -> Option<String> {
    let text = text.trim_start();
    if let Some(raw) = text.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = raw[hashes..].strip_prefix('"')?;
        let closing = format!("\"{}", "#".repeat(hashes));
        return body.find(&closing).map(|end| body[..end].to_owned());
    }
    let body = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                // A line continuation: the newline and the next line's indentation vanish.
                '\n' => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Whether a literal is a whole statement (not a fragment such as a column list).
fn is_statement(sql: &str) -> bool {
    let head = sql.trim_start().to_ascii_uppercase();
    ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"]
        .iter()
        .any(|verb| head.starts_with(verb))
}

fn statements_in(file: &Path) -> Vec<Statement> {
    let source = std::fs::read_to_string(file).unwrap();
    let mut found = Vec::new();
    for call in STATEMENT_CALLS {
        for (at, _) in source.match_indices(call) {
            if let Some(sql) = leading_literal(&source[at + call.len()..]) {
                found.push(sql);
            }
        }
    }
    for (at, _) in source.match_indices(": &str =") {
        if let Some(sql) = leading_literal(&source[at + ": &str =".len()..]) {
            found.push(sql);
        }
    }
    found
        .into_iter()
        .filter(|sql| is_statement(sql))
        .map(|sql| Statement {
            file: file.to_owned(),
            sql,
        })
        .collect()
}

#[test]
fn literals_are_read_as_rust_reads_them() {
    assert_eq!(
        leading_literal(r#" "SELECT 1" , &[]"#).as_deref(),
        Some("SELECT 1")
    );
    assert_eq!(
        leading_literal("r#\"SELECT \"user\" FROM keypairs\"#").as_deref(),
        Some("SELECT \"user\" FROM keypairs")
    );
    assert_eq!(
        leading_literal("\"SELECT a, \\\n     b FROM t\"").as_deref(),
        Some("SELECT a, b FROM t")
    );
    assert_eq!(leading_literal("sql, &[&key]"), None);
    assert!(!is_statement("c.id, c.name"));
}

#[tokio::test]
async fn every_statement_of_the_query_modules_prepares_against_the_migrated_schema() {
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/src/queries");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&queries)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    let mut statements: Vec<Statement> =
        files.iter().flat_map(|file| statements_in(file)).collect();
    statements.extend(
        bai_schema::queries::assembled_statements()
            .into_iter()
            .map(|sql| Statement {
                file: PathBuf::from("bai_schema::queries::assembled_statements()"),
                sql: sql.to_owned(),
            }),
    );
    let lists = bai_schema::queries::list_statements().expect("the sample filters compile");
    assert!(lists.len() >= 4, "only {} list statements", lists.len());
    statements.extend(lists.into_iter().map(|sql| Statement {
        file: PathBuf::from("bai_schema::queries::list_statements()"),
        sql,
    }));
    // A floor, so that a change to how the queries are written cannot make this test vacuous.
    assert!(
        statements.len() >= 60,
        "only {} statements found under {}",
        statements.len(),
        queries.display()
    );

    let env = TestEnv::new().await;
    let client = env.db.connect().await;
    let mut failures = Vec::new();
    for statement in &statements {
        if let Err(error) = client.prepare(&statement.sql).await {
            let reason = error
                .as_db_error()
                .map(|db| db.message().to_owned())
                .unwrap_or_else(|| error.to_string());
            failures.push(format!(
                "{}: {reason}\n{}",
                statement.file.display(),
                statement.sql.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} statements do not prepare:\n\n{}",
        failures.len(),
        statements.len(),
        failures.join("\n\n")
    );
}
