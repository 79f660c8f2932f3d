//! One consistent view of the configured storage proxies: the parsed `volumes/` tree and a
//! client per proxy. The broker publishes a new view whenever etcd changes; handlers take the
//! current one and talk to the proxies through it.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::client::{ProxyClient, VolumeInfo};
use super::config::{ConfigProblem, VolumesConfig};
use super::error::StorageError;
use super::ids::VFolderHost;

/// A volume of a proxy, as `GET /folders/_/hosts` and the GraphQL `storage_volume` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyVolume {
    pub proxy: String,
    pub info: VolumeInfo,
}

impl ProxyVolume {
    /// `proxy:volume`.
    pub fn host(&self) -> String {
        format!("{}:{}", self.proxy, self.info.name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProxySet {
    pub config: VolumesConfig,
    /// What was wrong with the configuration this view was built from.
    pub problems: Vec<ConfigProblem>,
    clients: BTreeMap<String, ProxyClient>,
}

impl ProxySet {
    /// Builds clients for every proxy of `config`. A client that cannot be built (bad TLS
    /// setup) is left out and reported like a configuration problem. `previous` clients with
    /// an unchanged configuration are reused, so their connection pools survive a reload.
    pub fn build(
        config: VolumesConfig,
        mut problems: Vec<ConfigProblem>,
        previous: Option<&ProxySet>,
    ) -> ProxySet {
        let mut clients = BTreeMap::new();
        for (name, proxy_config) in &config.proxies {
            if let Some(existing) = previous.and_then(|p| p.clients.get(name))
                && existing.config() == proxy_config
            {
                clients.insert(name.clone(), existing.clone());
                continue;
            }
            match ProxyClient::new(proxy_config.clone()) {
                Ok(client) => {
                    clients.insert(name.clone(), client);
                }
                Err(error) => problems.push(ConfigProblem {
                    key: format!("volumes/proxies/{name}"),
                    reason: format!("cannot build an HTTP client: {error}"),
                }),
            }
        }
        ProxySet {
            config,
            problems,
            clients,
        }
    }

    pub fn proxy_names(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }

    /// The client of the proxy `name` (or of the proxy part of a `proxy:volume` host).
    pub fn client(&self, name_or_host: &str) -> Result<&ProxyClient, StorageError> {
        let proxy = VFolderHost::split(name_or_host).proxy;
        self.clients
            .get(&proxy)
            .ok_or(StorageError::UnknownProxy { proxy })
    }

    /// The client and volume name of a `proxy:volume` host.
    pub fn resolve(&self, host: &str) -> Result<(&ProxyClient, String), StorageError> {
        let host = VFolderHost::split(host);
        let client = self
            .clients
            .get(&host.proxy)
            .ok_or(StorageError::UnknownProxy { proxy: host.proxy })?;
        Ok((client, host.volume))
    }

    /// Every volume of every proxy, asked concurrently, in proxy-name order. One proxy
    /// failing fails the whole list, as in the original (whose callers answer with an error).
    pub async fn all_volumes(&self) -> Result<Vec<ProxyVolume>, StorageError> {
        let replies = join_all(
            self.clients
                .values()
                .map(|client| async move { (client.name().to_owned(), client.volumes().await) }),
        )
        .await;
        let mut volumes = Vec::new();
        for (proxy, reply) in replies {
            for info in reply? {
                volumes.push(ProxyVolume {
                    proxy: proxy.clone(),
                    info,
                });
            }
        }
        Ok(volumes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::keys::unflatten;
    use crate::storage::config::VOLUMES_PREFIX;

    fn set() -> ProxySet {
        let tree = unflatten(
            VOLUMES_PREFIX,
            [
                ("volumes/proxies/local/client_api", "http://127.0.0.1:1"),
                ("volumes/proxies/local/manager_api", "http://127.0.0.1:2"),
                ("volumes/proxies/local/secret", "x"),
            ],
        );
        let (config, problems) = VolumesConfig::parse(&tree);
        ProxySet::build(config, problems, None)
    }

    #[test]
    fn hosts_resolve_to_their_proxy_and_volume() {
        let set = set();
        let (client, volume) = set.resolve("local:volume1").unwrap();
        assert_eq!(client.name(), "local");
        assert_eq!(volume, "volume1");
        assert_eq!(set.client("local").unwrap().name(), "local");
        assert_eq!(client.client_url("download"), "http://127.0.0.1:1/download");
        let err = set.resolve("nfs:volume1").unwrap_err();
        assert!(matches!(err, StorageError::UnknownProxy { ref proxy } if proxy == "nfs"));
    }

    #[test]
    fn unchanged_proxies_keep_their_client() {
        let first = set();
        let second = ProxySet::build(first.config.clone(), vec![], Some(&first));
        assert_eq!(second.proxy_names().collect::<Vec<_>>(), vec!["local"]);
    }
}
