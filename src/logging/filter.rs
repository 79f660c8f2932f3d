//! `[logging] level` and `[logging.pkg-ns]` applied to Rust module paths.
//!
//! The original names Python packages; the same namespaces are honoured here, mapped to the
//! Rust crates that do the same job (`ai.backend` → our crates, `aiohttp` → actix-web, ...). Any
//! other namespace is read as a module path (`a.b` and `a::b` alike). As in Python, a record
//! passes when it is at or above the level of the most specific matching namespace *and* at or
//! above the global level.

use std::collections::BTreeMap;

use super::LogLevel;

/// Python namespaces of the original and the Rust crates that stand in for them.
const NAMESPACE_ALIASES: &[(&str, &[&str])] = &[
    ("ai.backend", &["bai_manager", "bai_actors", "bai_schema"]),
    (
        "ai.backend.manager",
        &["bai_manager", "bai_actors", "bai_schema"],
    ),
    ("aiohttp", &["actix_web", "actix_http", "actix_server"]),
    ("aiotools", &["actix", "actix_rt"]),
    (
        "sqlalchemy",
        &["tokio_postgres", "deadpool_postgres", "deadpool"],
    ),
    ("alembic", &["bai_schema::migrate"]),
    ("aiopg", &["tokio_postgres", "deadpool_postgres"]),
    ("asyncpg", &["tokio_postgres", "deadpool_postgres"]),
    ("etcetra", &["etcd_client"]),
    ("aioredis", &["redis"]),
];

#[derive(Debug, Clone)]
pub struct NamespaceFilter {
    global: LogLevel,
    root: LogLevel,
    /// (module prefix, level), longest prefix first.
    rules: Vec<(String, LogLevel)>,
}

impl NamespaceFilter {
    pub fn new(global: LogLevel, pkg_ns: &BTreeMap<String, LogLevel>) -> NamespaceFilter {
        // prefix → (level, length of the namespace that set it): a longer namespace is more
        // specific and wins when two map to the same prefix.
        let mut by_prefix: BTreeMap<String, (LogLevel, usize)> = BTreeMap::new();
        let mut root = global;
        for (namespace, level) in pkg_ns {
            if namespace.is_empty() {
                root = *level;
                continue;
            }
            let prefixes: Vec<String> = match NAMESPACE_ALIASES.iter().find(|(n, _)| n == namespace)
            {
                Some((_, crates)) => crates.iter().map(|c| (*c).to_owned()).collect(),
                None => vec![namespace.replace('.', "::")],
            };
            for prefix in prefixes {
                let specificity = namespace.len();
                match by_prefix.get(&prefix) {
                    Some((_, existing)) if *existing > specificity => {}
                    _ => {
                        by_prefix.insert(prefix, (*level, specificity));
                    }
                }
            }
        }
        let mut rules: Vec<(String, LogLevel)> = by_prefix
            .into_iter()
            .map(|(prefix, (level, _))| (prefix, level))
            .collect();
        rules.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        NamespaceFilter {
            global,
            root,
            rules,
        }
    }

    /// The level that applies to `module` by namespace alone.
    pub fn namespace_level(&self, module: &str) -> LogLevel {
        self.rules
            .iter()
            .find(|(prefix, _)| {
                module == prefix
                    || (module.starts_with(prefix.as_str())
                        && module[prefix.len()..].starts_with("::"))
            })
            .map(|(_, level)| *level)
            .unwrap_or(self.root)
    }

    pub fn allows(&self, module: &str, level: LogLevel) -> bool {
        level >= self.global && level >= self.namespace_level(module)
    }

    /// The most verbose level any module can log at, to let the `log` crate skip the rest.
    pub fn most_verbose(&self) -> LogLevel {
        let loosest_namespace = self
            .rules
            .iter()
            .map(|(_, level)| *level)
            .chain(std::iter::once(self.root))
            .min()
            .unwrap_or(self.root);
        loosest_namespace.max(self.global)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_filter() -> NamespaceFilter {
        NamespaceFilter::new(
            LogLevel::Info,
            &BTreeMap::from([
                (String::new(), LogLevel::Warning),
                ("ai.backend".to_owned(), LogLevel::Info),
                ("aiohttp".to_owned(), LogLevel::Info),
                ("bai_actors.scheduler".to_owned(), LogLevel::Error),
            ]),
        )
    }

    #[test]
    fn the_most_specific_namespace_decides() {
        let filter = seed_filter();
        assert!(filter.allows("bai_manager::server", LogLevel::Info));
        assert!(!filter.allows("bai_manager::server", LogLevel::Debug));
        assert!(!filter.allows("bai_actors::scheduler::tick", LogLevel::Warning));
        assert!(filter.allows("bai_actors::scheduler", LogLevel::Error));
        assert!(filter.allows("actix_server::worker", LogLevel::Info));
        assert!(!filter.allows("h2::codec", LogLevel::Info));
        assert!(filter.allows("h2::codec", LogLevel::Warning));
        // A prefix matches whole path segments only.
        assert_eq!(filter.namespace_level("bai_managerx"), LogLevel::Warning);
    }

    #[test]
    fn the_global_level_caps_every_namespace() {
        let filter = NamespaceFilter::new(
            LogLevel::Error,
            &BTreeMap::from([("ai.backend".to_owned(), LogLevel::Debug)]),
        );
        assert!(!filter.allows("bai_manager", LogLevel::Info));
        assert!(filter.allows("bai_manager", LogLevel::Error));
        assert_eq!(filter.most_verbose(), LogLevel::Error);
        assert_eq!(seed_filter().most_verbose(), LogLevel::Info);
    }
}
