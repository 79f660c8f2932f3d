//! The HMAC request signature of the Backend.AI API (api.md §5.1), as pure functions:
//! parsing the `Authorization` header, building the string to sign, deriving the signing key
//! from the secret key, the date and the host, and comparing signatures in constant time.

use hmac::{EagerHash, Hmac, KeyInit, Mac};

/// Why a request's signature could not be checked. Each maps to the original's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// 400 invalid-auth-params.
    #[error("Malformed authorization header")]
    MalformedHeader,
    /// 400 invalid-auth-params.
    #[error("Invalid authorization type name")]
    InvalidScheme,
    /// 400 invalid-auth-params.
    #[error("Missing or malformed authorization parameters")]
    MissingParameters,
    /// 401 auth-failed: the sign method is not `<mac>-<hash>`.
    #[error("Invalid signature")]
    InvalidSignMethod,
    /// 400 invalid-auth-params.
    #[error("Unsupported request signing method (MAC type)")]
    UnsupportedMac,
    /// 400 invalid-auth-params.
    #[error("Unsupported request signing method (hash type)")]
    UnsupportedHash,
}

/// The parts of `Authorization: BackendAI signMethod=HMAC-SHA256, credential=<AK>:<SIG>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    pub sign_method: String,
    pub access_key: String,
    pub signature: String,
}

impl AuthorizationHeader {
    /// Parses the header value as the original does: scheme `BackendAI` (or legacy `Sorna`),
    /// then comma-separated `key=value` parameters with whitespace stripped.
    pub fn parse(value: &str) -> Result<AuthorizationHeader, SignatureError> {
        let (scheme, params) = value
            .split_once(' ')
            .ok_or(SignatureError::MalformedHeader)?;
        if scheme != "BackendAI" && scheme != "Sorna" {
            return Err(SignatureError::InvalidScheme);
        }
        let mut sign_method = None;
        let mut credential = None;
        for param in params.split(',') {
            let (key, value) = param
                .trim()
                .split_once('=')
                .ok_or(SignatureError::MissingParameters)?;
            match key.trim() {
                "signMethod" => sign_method = Some(value.trim()),
                "credential" => credential = Some(value.trim()),
                _ => {}
            }
        }
        let (access_key, signature) = credential
            .and_then(|c| c.split_once(':'))
            .ok_or(SignatureError::MissingParameters)?;
        let sign_method = sign_method.ok_or(SignatureError::MissingParameters)?;
        Ok(AuthorizationHeader {
            sign_method: sign_method.to_owned(),
            access_key: access_key.to_owned(),
            signature: signature.to_owned(),
        })
    }
}

/// The hash functions a client may name in `signMethod` (`HMAC-<hash>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// Parses `signMethod` (`HMAC-SHA256`, case-insensitive) into its hash.
    pub fn from_sign_method(sign_method: &str) -> Result<HashAlgorithm, SignatureError> {
        let lower = sign_method.to_ascii_lowercase();
        let mut parts = lower.split('-');
        let (Some(mac), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SignatureError::InvalidSignMethod);
        };
        if mac != "hmac" {
            return Err(SignatureError::UnsupportedMac);
        }
        match hash {
            "sha1" => Ok(HashAlgorithm::Sha1),
            "sha224" => Ok(HashAlgorithm::Sha224),
            "sha256" => Ok(HashAlgorithm::Sha256),
            "sha384" => Ok(HashAlgorithm::Sha384),
            "sha512" => Ok(HashAlgorithm::Sha512),
            _ => Err(SignatureError::UnsupportedHash),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha1 => hmac_with::<sha1::Sha1>(key, data),
            HashAlgorithm::Sha224 => hmac_with::<sha2::Sha224>(key, data),
            HashAlgorithm::Sha256 => hmac_with::<sha2::Sha256>(key, data),
            HashAlgorithm::Sha384 => hmac_with::<sha2::Sha384>(key, data),
            HashAlgorithm::Sha512 => hmac_with::<sha2::Sha512>(key, data),
        }
    }

    /// Hex digest of the empty body (the body is not signed since API v4.20181215).
    pub fn empty_body_hash(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            HashAlgorithm::Sha224 => "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f",
            HashAlgorithm::Sha256 => {
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            }
            HashAlgorithm::Sha384 => {
                "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
            }
            HashAlgorithm::Sha512 => {
                "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
            }
        }
    }
}

fn hmac_with<D: EagerHash>(key: &[u8], data: &[u8]) -> Vec<u8>
where
    Hmac<D>: KeyInit + Mac,
{
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Everything of a request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    /// The request method, upper case.
    pub method: &'a str,
    /// The raw path and query as received (`/auth?echo=test`).
    pub path_and_query: &'a str,
    /// The date header exactly as sent.
    pub raw_date: &'a str,
    /// The `Host` header exactly as sent, port included.
    pub host: &'a str,
    /// The media type of `Content-Type` without parameters (`application/octet-stream` if
    /// the header is absent).
    pub content_type: &'a str,
    /// `true` when the version came in `X-BackendAI-Version`, `false` for `X-Sorna-Version`.
    pub modern_version_header: bool,
    pub version: &'a str,
    /// The date of `raw_date` as `YYYYMMDD`, in the time zone written in the header.
    pub key_date: &'a str,
}

/// The string to sign, exactly as client and server build it.
pub fn string_to_sign(parts: &SignedParts<'_>, hash: HashAlgorithm) -> String {
    let label = if parts.modern_version_header {
        "backendai"
    } else {
        "sorna"
    };
    format!(
        "{}\n{}\n{}\nhost:{}\ncontent-type:{}\nx-{label}-version:{}\n{}",
        parts.method,
        parts.path_and_query,
        parts.raw_date,
        parts.host,
        parts.content_type,
        parts.version,
        hash.empty_body_hash(),
    )
}

/// The hex signature of a request: `HMAC(HMAC(HMAC(secret, date), host), string_to_sign)`.
pub fn compute_signature(secret_key: &str, parts: &SignedParts<'_>, hash: HashAlgorithm) -> String {
    let date_key = hash.hmac(secret_key.as_bytes(), parts.key_date.as_bytes());
    let host_key = hash.hmac(&date_key, parts.host.as_bytes());
    hex::encode(hash.hmac(&host_key, string_to_sign(parts, hash).as_bytes()))
}

/// Compares two signatures without leaking where they differ.
pub fn signatures_match(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    if expected.len() != given.len() {
        return false;
    }
    expected
        .iter()
        .zip(given)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn worked_example(
        method: &'static str,
        path: &'static str,
        ct: &'static str,
    ) -> SignedParts<'static> {
        SignedParts {
            method,
            path_and_query: path,
            raw_date: "2022-09-01T12:00:00+00:00",
            host: "127.0.0.1:8081",
            content_type: ct,
            modern_version_header: true,
            version: "v6.20220615",
            key_date: "20220901",
        }
    }

    #[test]
    fn the_worked_example_of_the_spec_gives_its_signature() {
        let parts = worked_example("GET", "/auth?echo=test", "text/plain");
        assert_eq!(
            string_to_sign(&parts, HashAlgorithm::Sha256),
            "GET\n/auth?echo=test\n2022-09-01T12:00:00+00:00\nhost:127.0.0.1:8081\ncontent-type:text/plain\nx-backendai-version:v6.20220615\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(HashAlgorithm::Sha256.hmac(SECRET.as_bytes(), b"20220901")),
            "72a226aa9c0543608c06387611119525f9b05792af3e733622cc9eea5205dc4d"
        );
        assert_eq!(
            compute_signature(SECRET, &parts, HashAlgorithm::Sha256),
            "5a5ae6db08f8d36382e7df3bb330bee827ec9a83787e72e24747303bcf7dbec5"
        );
        let parts = worked_example("POST", "/session", "application/json");
        assert_eq!(
            compute_signature(SECRET, &parts, HashAlgorithm::Sha256),
            "35ab6386173cc53c6c2a95eb028d54676b9b4c040073f16e12fc4c40a3f57a23"
        );
    }

    /// Requests the official client 23.09.10 signed against the real manager
    /// (captures/real-manager.http #3, #38 and #62).
    #[test]
    fn signatures_from_the_captures_verify() {
        let cases = [
            (
                "GET",
                "/manager/announcement",
                "2026-11-28T02:15:15.618248+00:00",
                "text/plain",
                "4ebc2f6da35eb8849db3d90c1c11164e3d234fc031de1130cab00e852ce06783",
            ),
            (
                "POST",
                "/session",
                "2026-11-28T02:15:31.538814+00:00",
                "application/json",
                "70dd99f9da8e0b7d764643625c9e6547b14074699f879972dccda706419b3073",
            ),
            (
                "GET",
                "/auth/role",
                "2026-11-28T02:15:47.630280+00:00",
                "text/plain",
                "f0813400bcba4b0c3f48dd7cf5991d354709552b5a62160eb07959d0c223545b",
            ),
            (
                "DELETE",
                "/session/sess1?forced=true",
                "2026-11-28T02:15:23.308921+00:00",
                "text/plain",
                "6de2c446915388e880d2c00fcb64b9752eed8379aff4b51f110422ffb627efef",
            ),
        ];
        for (method, path, date, ct, expected) in cases {
            let parts = SignedParts {
                method,
                path_and_query: path,
                raw_date: date,
                host: "127.0.0.1:28092",
                content_type: ct,
                modern_version_header: true,
                version: "v7.20230615",
                key_date: "20261128",
            };
            assert_eq!(
                compute_signature(SECRET, &parts, HashAlgorithm::Sha256),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_header_is_parsed_like_the_original() {
        let header = AuthorizationHeader::parse(
            "BackendAI signMethod=HMAC-SHA256, credential=AKIAIOSFODNN7EXAMPLE:abc:def",
        )
        .unwrap();
        assert_eq!(header.sign_method, "HMAC-SHA256");
        assert_eq!(header.access_key, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(header.signature, "abc:def");
        assert!(AuthorizationHeader::parse("Sorna credential=a:b , signMethod=HMAC-SHA1").is_ok());
        assert_eq!(
            AuthorizationHeader::parse("Bearer xyz"),
            Err(SignatureError::InvalidScheme)
        );
        assert_eq!(
            AuthorizationHeader::parse("BackendAI"),
            Err(SignatureError::MalformedHeader)
        );
        assert_eq!(
            AuthorizationHeader::parse("BackendAI signMethod=HMAC-SHA256"),
            Err(SignatureError::MissingParameters)
        );
        assert_eq!(
            AuthorizationHeader::parse("BackendAI signMethod=HMAC-SHA256, credential=nocolon"),
            Err(SignatureError::MissingParameters)
        );
        assert_eq!(
            AuthorizationHeader::parse("BackendAI garbage"),
            Err(SignatureError::MissingParameters)
        );
    }

    #[test]
    fn sign_methods_name_a_mac_and_a_hash() {
        assert_eq!(
            HashAlgorithm::from_sign_method("HMAC-SHA256"),
            Ok(HashAlgorithm::Sha256)
        );
        assert_eq!(
            HashAlgorithm::from_sign_method("hmac-sha1"),
            Ok(HashAlgorithm::Sha1)
        );
        assert_eq!(
            HashAlgorithm::from_sign_method("HMAC"),
            Err(SignatureError::InvalidSignMethod)
        );
        assert_eq!(
            HashAlgorithm::from_sign_method("CMAC-SHA256"),
            Err(SignatureError::UnsupportedMac)
        );
        assert_eq!(
            HashAlgorithm::from_sign_method("HMAC-ROT13"),
            Err(SignatureError::UnsupportedHash)
        );
    }

    #[test]
    fn empty_body_hashes_are_the_digests_of_nothing() {
        use sha2::Digest;
        assert_eq!(
            HashAlgorithm::Sha512.empty_body_hash(),
            hex::encode(sha2::Sha512::digest(b""))
        );
        assert_eq!(
            HashAlgorithm::Sha384.empty_body_hash(),
            hex::encode(sha2::Sha384::digest(b""))
        );
        assert_eq!(
            HashAlgorithm::Sha224.empty_body_hash(),
            hex::encode(sha2::Sha224::digest(b""))
        );
        assert_eq!(
            HashAlgorithm::Sha1.empty_body_hash(),
            hex::encode(sha1::Sha1::digest(b""))
        );
    }

    #[test]
    fn comparison_needs_the_same_bytes() {
        assert!(signatures_match("abcd", "abcd"));
        assert!(!signatures_match("abcd", "abce"));
        assert!(!signatures_match("abcd", "abc"));
        assert!(!signatures_match("abcd", "ABCD"));
    }
}
