//! Pagination of registry listings: the RFC 8288 `Link: <…>; rel="next"` header that the
//! Registry API (`_catalog`, `tags/list`) and Harbor's API send. Pure functions.

use url::Url;

/// The target of the `rel="next"` link in a `Link` header value, if any.
pub fn next_link(header: &str) -> Option<&str> {
    split_links(header).find_map(|link| {
        let (target, params) = link.trim().split_once('>')?;
        let target = target.trim().strip_prefix('<')?;
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        is_next.then_some(target)
    })
}

/// Splits a `Link` value into links at commas that are outside `<…>` and quotes.
fn split_links(header: &str) -> impl Iterator<Item = &str> {
    let mut pieces = Vec::new();
    let (mut in_target, mut in_quotes, mut start) = (false, false, 0);
    for (i, c) in header.char_indices() {
        match c {
            '<' if !in_quotes => in_target = true,
            '>' if !in_quotes => in_target = false,
            '"' if !in_target => in_quotes = !in_quotes,
            ',' if !in_target && !in_quotes => {
                pieces.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&header[start..]);
    pieces.into_iter()
}

/// The URL of the next page: the link's path and query on the registry's own scheme, host and
/// port, as the original does (registries behind proxies often link to an internal host).
pub fn resolve_next(base: &Url, link: &str) -> Option<Url> {
    let absolute = base.join(link).ok()?;
    let mut next = base.clone();
    next.set_path(absolute.path());
    next.set_query(absolute.query());
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_found_among_others() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(
            next_link(
                r#"</api/v2.0/projects/p/repositories?page=1&page_size=2>; rel="prev" , </api/v2.0/projects/p/repositories?page=3&page_size=2>; rel="next""#
            ),
            Some("/api/v2.0/projects/p/repositories?page=3&page_size=2")
        );
        assert_eq!(
            next_link(r#"<http://x/a,b>; rel=next"#),
            Some("http://x/a,b")
        );
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn next_pages_stay_on_the_registry_host() {
        let base = Url::parse("https://cr.example.com:8443/").unwrap();
        let next = resolve_next(&base, "/v2/_catalog?last=b&n=30").unwrap();
        assert_eq!(
            next.as_str(),
            "https://cr.example.com:8443/v2/_catalog?last=b&n=30"
        );
        let next = resolve_next(&base, "http://internal:5000/v2/x/tags/list?n=10&last=a").unwrap();
        assert_eq!(
            next.as_str(),
            "https://cr.example.com:8443/v2/x/tags/list?n=10&last=a"
        );
    }
}
