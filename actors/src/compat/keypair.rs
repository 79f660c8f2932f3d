//! API keypairs as the original's `generate_keypair()` makes them: `AKIA` + base32 of 10 random
//! bytes (20 characters), and `secrets.token_urlsafe(30)` (40 characters), the widths of
//! `keypairs.access_key` and `keypairs.secret_key`.

use base64::Engine;
use rand::RngCore;

/// Random bytes behind an access key: `"AKIA" + base32(10 bytes)` is 20 characters, the width
/// of `keypairs.access_key`.
const ACCESS_KEY_RANDOM_BYTES: usize = 10;
/// Random bytes behind a secret key: `secrets.token_urlsafe(30)` is 40 characters, the width
/// of `keypairs.secret_key`.
const SECRET_KEY_RANDOM_BYTES: usize = 30;

/// `("AKIA" + base32(10 random bytes), base64url-unpadded(30 random bytes))` from the
/// thread-local CSPRNG.
pub fn generate_keypair() -> (String, String) {
    let mut rng = rand::rng();
    let mut access = [0u8; ACCESS_KEY_RANDOM_BYTES];
    rng.fill_bytes(&mut access);
    let mut secret = [0u8; SECRET_KEY_RANDOM_BYTES];
    rng.fill_bytes(&mut secret);
    (
        format!("AKIA{}", base32(&access)),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    )
}

/// RFC 4648 base32 (what Python's `base64.b32encode` gives), with `=` padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = block.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // Characters that carry input bits; the rest of the 8 are padding.
        let significant = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < significant {
                let index = (bits >> (35 - i * 5)) & 0x1f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648() {
        // The test vectors of RFC 4648 section 10.
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY======");
        assert_eq!(base32(b"fo"), "MZXQ====");
        assert_eq!(base32(b"foo"), "MZXW6===");
        assert_eq!(base32(b"foob"), "MZXW6YQ=");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI======");
        // Keys use whole 5-byte blocks: no padding.
        assert_eq!(base32(&[0u8; 10]), "AAAAAAAAAAAAAAAA");
    }

    #[test]
    fn keys_have_the_originals_shape_and_differ() {
        let (ak, sk) = generate_keypair();
        assert_eq!(ak.len(), 20);
        assert!(ak.starts_with("AKIA"));
        assert!(
            ak[4..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
        assert_eq!(sk.len(), 40);
        assert!(
            sk.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let (ak2, sk2) = generate_keypair();
        assert_ne!(ak, ak2);
        assert_ne!(sk, sk2);
    }
}
