//! SSH keypairs for session containers (`PATCH /auth/ssh-keypair`): a fresh Ed25519 key in
//! OpenSSH formats, the public key as one `ssh-ed25519 AAAA…` line and the private key as an
//! unencrypted `openssh-key-v1` PEM block, which OpenSSH and Dropbear in the kernel images
//! read. The original generates RSA-2048 keys; Ed25519 is what our crates can generate, and
//! both are accepted by the same `authorized_keys` and clients.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

const KEY_TYPE: &[u8] = b"ssh-ed25519";

/// PEM lines of OpenSSH private keys are 70 base64 characters long.
const PEM_LINE_WIDTH: usize = 70;

/// The cipher block size of an unencrypted key: the private section is padded to it.
const PLAIN_BLOCK_SIZE: usize = 8;

#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed while generating an SSH key")]
pub struct SshKeyError;

/// A generated keypair: the OpenSSH public key line and the private key PEM.
pub struct SshKeypair {
    pub public_key: String,
    pub private_key: String,
}

impl std::fmt::Debug for SshKeypair {
    // The private key must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshKeypair")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // SSH strings carry a 32-bit length; every value here is at most a few hundred bytes.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn public_blob(public: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, KEY_TYPE);
    put_string(&mut blob, public);
    blob
}

/// The keypair of a 32-byte Ed25519 seed, with `check` as the private section's check word.
pub fn keypair_from_seed(seed: &[u8; 32], check: u32) -> Result<SshKeypair, SshKeyError> {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| SshKeyError)?;
    let public = pair.public_key().as_ref();
    let public_key = format!(
        "{} {}",
        String::from_utf8_lossy(KEY_TYPE),
        STANDARD.encode(public_blob(public))
    );

    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    put_string(&mut private, KEY_TYPE);
    put_string(&mut private, public);
    let mut secret = seed.to_vec();
    secret.extend_from_slice(public);
    put_string(&mut private, &secret);
    put_string(&mut private, b"");
    let mut pad = 1u8;
    while private.len() % PLAIN_BLOCK_SIZE != 0 {
        private.push(pad);
        pad += 1;
    }

    let mut body = b"openssh-key-v1\0".to_vec();
    put_string(&mut body, b"none");
    put_string(&mut body, b"none");
    put_string(&mut body, b"");
    body.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut body, &public_blob(public));
    put_string(&mut body, &private);

    let encoded = STANDARD.encode(&body);
    let mut private_key = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(PEM_LINE_WIDTH) {
        private_key.push_str(&String::from_utf8_lossy(line));
        private_key.push('\n');
    }
    private_key.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    Ok(SshKeypair {
        public_key,
        private_key,
    })
}

/// A fresh keypair from the system's random generator.
pub fn generate() -> Result<SshKeypair, SshKeyError> {
    let random = SystemRandom::new();
    let mut seed = [0u8; 32];
    random.fill(&mut seed).map_err(|_| SshKeyError)?;
    let mut check = [0u8; 4];
    random.fill(&mut check).map_err(|_| SshKeyError)?;
    keypair_from_seed(&seed, u32::from_be_bytes(check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_openssh_shapes() {
        // RFC 8032 test vector 1: this seed has this public key.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let pair = keypair_from_seed(&seed, 7).unwrap();
        let public =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap();
        assert_eq!(
            pair.public_key,
            format!("ssh-ed25519 {}", STANDARD.encode(public_blob(&public)))
        );
        assert!(
            pair.private_key
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert!(
            pair.private_key
                .ends_with("\n-----END OPENSSH PRIVATE KEY-----\n")
        );
        let body: String = pair
            .private_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(
            pair.private_key
                .lines()
                .all(|l| l.len() <= PEM_LINE_WIDTH + 10)
        );
        let raw = STANDARD.decode(body).unwrap();
        assert!(raw.starts_with(b"openssh-key-v1\0"));
        assert!(!format!("{pair:?}").contains("PRIVATE"));
        let other = generate().unwrap();
        assert_ne!(other.public_key, generate().unwrap().public_key);
    }
}
