//! The layering rules of docs/architecture.md, checked over the source: actors never reach
//! into the HTTP façade (or its GraphQL half), the wire codecs never touch the database, and
//! the data model (`schema/`) knows no actor. A forbidden path anywhere in a file (a `use`
//! line or an inline `crate::facade::...`) fails the test with the file and line.

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
