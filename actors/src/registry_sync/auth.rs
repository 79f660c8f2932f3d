//! Registry authentication: reading a `WWW-Authenticate` challenge and choosing between no
//! auth, HTTP Basic, and the bearer-token flow of the Docker token specification. Pure.

/// The authentication a registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`
    Bearer {
        realm: Option<String>,
        service: Option<String>,
        scope: Option<String>,
    },
    Other(String),
}

/// Parses a `WWW-Authenticate` value (one challenge; parameters may be quoted).
pub fn parse_challenge(header: &str) -> Challenge {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic;
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::Other(scheme.to_owned());
    }
    let params = parse_params(rest);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    Challenge::Bearer {
        realm: get("realm"),
        service: get("service"),
        scope: get("scope"),
    }
}

/// `k1="v1",k2=v2` with commas allowed inside quotes (scopes contain them).
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.push((name, value.to_owned()));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

/// The token scope for pulling from a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The token scope for listing the catalog.
pub const CATALOG_SCOPE: &str = "registry:catalog:*";

/// The token in a token-server response: `token`, or the OAuth2 `access_token`.
pub fn token_from_response(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["token", "access_token"]
        .iter()
        .find_map(|key| json.get(key).and_then(|v| v.as_str()))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_carry_realm_service_and_scope() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#
            ),
            Challenge::Bearer {
                realm: Some("https://auth.example.com/token".to_owned()),
                service: Some("registry.example.com".to_owned()),
                scope: Some("repository:a/b:pull,push".to_owned()),
            }
        );
        assert_eq!(
            parse_challenge("bearer realm=http://x/token, service=reg"),
            Challenge::Bearer {
                realm: Some("http://x/token".to_owned()),
                service: Some("reg".to_owned()),
                scope: None,
            }
        );
    }

    #[test]
    fn basic_and_unknown_schemes_are_told_apart() {
        assert_eq!(
            parse_challenge(r#"Basic realm="testkit""#),
            Challenge::Basic
        );
        assert_eq!(
            parse_challenge("Negotiate"),
            Challenge::Other("Negotiate".to_owned())
        );
    }

    #[test]
    fn tokens_come_from_either_field() {
        assert_eq!(
            token_from_response(br#"{"token":"abc","expires_in":60}"#),
            Some("abc".to_owned())
        );
        assert_eq!(
            token_from_response(br#"{"access_token":"xyz"}"#),
            Some("xyz".to_owned())
        );
        assert_eq!(token_from_response(br#"{"token":""}"#), None);
        assert_eq!(token_from_response(b"<html>"), None);
    }
}
