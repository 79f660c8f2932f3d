//! A bounded property run over `manager.toml` loading: arbitrary text, and files built from
//! the real sections and keys with values of every TOML type (deeply nested ones too), with
//! and without `BACKEND_*` overrides. Every input loads or gets a `ConfigError`; none panics.
//! `BAI_FUZZ_CASES` sets the number of cases (default 256).

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;

use super::LocalConfig;
use super::env::OVERRIDES;

/// Cases when `BAI_FUZZ_CASES` is not set: about a second.
const DEFAULT_FUZZ_CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("BAI_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_FUZZ_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const SECTIONS: &[&str] = &[
    "etcd",
    "db",
    "manager",
    "docker-registry",
    "logging",
    "logging.console",
    "logging.file",
    "logging.pkg-ns",
    "debug",
    "unknown",
];

const KEYS: &[&str] = &[
    "addr",
    "namespace",
    "user",
    "password",
    "type",
    "name",
    "pool-size",
    "max-overflow",
    "pool-recycle",
    "pool-pre-ping",
    "conn-timeout",
    "num-proc",
    "service-addr",
    "ssl-enabled",
    "ssl-verify",
    "heartbeat-timeout",
    "id",
    "pid-file",
    "ipc-base-path",
    "distributed-lock",
    "hide-agents",
    "importer-image",
    "max-wsmsg-size",
    "event-loop",
    "enabled",
    "level",
    "drivers",
    "colored",
    "format",
    "path",
    "filename",
    "backup-count",
    "rotation-size",
    "lock-acquire-timeout",
    "allowed-plugins",
    "disabled-plugins",
    "secret",
    "\"\"",
];

fn toml_value() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        "\"[a-zA-Z0-9:./ _-]{0,20}\"",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        proptest::sample::select(
            &[
                "{ host = \"127.0.0.1\", port = 8081 }",
                "{ host = \"::1\", port = 70000 }",
                "\"127.0.0.1:2379\"",
                "[\"console\", \"file\"]",
                "\"10M\"",
                "\"2K\"",
                "\"INFO\"",
                "\"postgresql\"",
                "\"filelock\"",
                "nan",
                "-inf",
                "1979-05-27T07:32:00Z",
                "'''x'''",
            ][..]
        )
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(6, 40, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            vec((proptest::sample::select(KEYS), inner), 0..3).prop_map(|pairs| {
                let fields: Vec<String> = pairs
                    .into_iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }),
        ]
    })
    .boxed()
}

fn manager_toml() -> BoxedStrategy<String> {
    let section = (
        proptest::sample::select(SECTIONS),
        vec((proptest::sample::select(KEYS), toml_value()), 0..8),
    )
        .prop_map(|(name, keys)| {
            let mut text = format!("[{name}]\n");
            for (key, value) in keys {
                text.push_str(&format!("{key} = {value}\n"));
            }
            text
        });
    prop_oneof![
        4 => vec(section, 0..8).prop_map(|sections| sections.concat()),
        1 => "\\PC{0,200}",
        1 => (0usize..3_000).prop_map(|depth| format!("[db]\naddr = {}1{}\n", "[".repeat(depth), "]".repeat(depth))),
        1 => (0usize..3_000).prop_map(|depth| format!("[db]\naddr = {}\n", "{ a = ".repeat(depth))),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_manager_toml(
        text in manager_toml(),
        overrides in vec((proptest::sample::select(OVERRIDES), "\\PC{0,20}"), 0..3),
        log_file in proptest::option::of("\\PC{0,20}"),
    ) {
        let lookup = |name: &str| -> Option<String> {
            if name == "BACKEND_LOG_FILE" {
                return log_file.clone();
            }
            overrides
                .iter()
                .find(|((var, _), _)| *var == name)
                .map(|(_, value)| value.clone())
        };
        if let Err(error) = LocalConfig::parse(Path::new("manager.toml"), &text, &lookup) {
            let _ = error.exit_code();
            prop_assert!(!error.to_string().is_empty());
        }
    }
}
