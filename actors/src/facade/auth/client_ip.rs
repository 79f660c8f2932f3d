//! `users.allowed_client_ip`: the networks a user may call the API from. The client address is
//! `X-Forwarded-For` when present (as the original; put the manager behind a proxy that sets
//! it), else the peer address.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIpError {
    /// 401 auth-failed.
    #[error("Not allowed IP address")]
    UnknownAddress,
    /// 400 invalid-auth-params.
    #[error("{0} is invalid IP address value")]
    InvalidAddress(String),
    /// 401 auth-failed.
    #[error("'{0}' is not allowed IP address")]
    NotAllowed(IpAddr),
}

/// Checks the caller's address against the allowed networks; an empty list allows any.
/// Stored entries that are not networks are skipped (the column type guarantees CIDRs).
pub fn check_client_ip(
    allowed: &[String],
    forwarded_for: Option<&str>,
    peer: Option<IpAddr>,
) -> Result<(), ClientIpError> {
    if allowed.is_empty() {
        return Ok(());
    }
    let address = match forwarded_for.map(str::trim).filter(|v| !v.is_empty()) {
        Some(raw) => {
            let first = raw.split(',').next().unwrap_or(raw).trim();
            first
                .parse::<IpAddr>()
                .map_err(|_| ClientIpError::InvalidAddress(raw.to_owned()))?
        }
        None => peer.ok_or(ClientIpError::UnknownAddress)?,
    };
    let networks = allowed.iter().filter_map(|cidr| parse_network(cidr));
    for network in networks {
        if network.contains(&address) {
            return Ok(());
        }
    }
    Err(ClientIpError::NotAllowed(address))
}

fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_empty_list_allows_everyone() {
        assert_eq!(check_client_ip(&[], None, None), Ok(()));
    }

    #[test]
    fn the_peer_or_the_forwarded_address_must_be_inside() {
        let allowed = nets(&["10.0.0.0/8", "192.168.1.7/32"]);
        let peer = Some("10.1.2.3".parse().unwrap());
        assert_eq!(check_client_ip(&allowed, None, peer), Ok(()));
        assert_eq!(
            check_client_ip(
                &allowed,
                Some("192.168.1.7"),
                Some("127.0.0.1".parse().unwrap())
            ),
            Ok(())
        );
        assert_eq!(
            check_client_ip(&allowed, None, Some("127.0.0.1".parse().unwrap())),
            Err(ClientIpError::NotAllowed("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            check_client_ip(&allowed, Some("not-an-ip"), peer),
            Err(ClientIpError::InvalidAddress("not-an-ip".into()))
        );
        assert_eq!(
            check_client_ip(&allowed, None, None),
            Err(ClientIpError::UnknownAddress)
        );
    }

    #[test]
    fn single_addresses_and_ipv6_networks_work() {
        let allowed = nets(&["::1/128", "172.16.0.1"]);
        assert_eq!(
            check_client_ip(&allowed, None, Some("::1".parse().unwrap())),
            Ok(())
        );
        assert_eq!(
            check_client_ip(&allowed, Some("172.16.0.1, 10.0.0.1"), None),
            Ok(())
        );
    }
}
