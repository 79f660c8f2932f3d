//! Python's `secrets.token_urlsafe(n)`: `n` random bytes in URL-safe base64 without padding,
//! as the original names sessions' creation ids and its import sessions.

use base64::Engine;

/// `secrets.token_urlsafe(N)`.
pub fn token_urlsafe<const N: usize>() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; N]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_pythons() {
        // len(secrets.token_urlsafe(8)) == 11, len(secrets.token_urlsafe(16)) == 22
        let short = token_urlsafe::<8>();
        assert_eq!(short.len(), 11);
        assert_eq!(token_urlsafe::<16>().len(), 22);
        assert!(
            short
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
