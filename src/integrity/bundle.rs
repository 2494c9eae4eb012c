//! AES-256-GCM encrypted bundles (NIST SP 800-38D, via RustCrypto's `aes-gcm`): the only place
//! raw PHI examples may be written, and only when the user asks (`--include-phi-examples`).
//!
//! Layout: the 16-byte magic `PHIPROBE-BUNDLE1`, a 2-byte big-endian length and that many bytes
//! of associated data (the run id, authenticated but not secret), a random 12-byte nonce, then
//! the ciphertext with its 16-byte tag. The key is 32 bytes, read from a key file or from the
//! `PHIPROBE_BUNDLE_KEY` environment variable as 64 hex digits — never from a flag's value,
//! which would land in shell history and process lists.

use super::{hex, read, unhex};
use crate::error::{Error, Result};
use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::path::Path;

/// File name of the bundle in a run folder.
pub const BUNDLE: &str = "phi-examples.bundle";
/// Environment variable holding a bundle key (64 hex digits).
pub const KEY_ENV: &str = "PHIPROBE_BUNDLE_KEY";
const MAGIC: &[u8; 16] = b"PHIPROBE-BUNDLE1";

/// A 32-byte bundle key.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

fn parse_key(text: &[u8]) -> Option<[u8; 32]> {
    let s = std::str::from_utf8(text).ok()?;
    unhex(s.trim()).and_then(|b| <[u8; 32]>::try_from(b).ok())
}

impl Key {
    /// The key from `file` (64 hex digits), else from [`KEY_ENV`].
    pub fn load(file: Option<&Path>) -> Result<Key> {
        match file {
            Some(p) => {
                let bytes = read(p)?;
                parse_key(&bytes).map(Key).ok_or_else(|| Error::Parse {
                    path: p.to_owned(),
                    format: "bundle key".into(),
                    message: "expected 64 hex digits (32 bytes), as written by `phiprobe keygen --bundle`".into(),
                })
            }
            None => match std::env::var(KEY_ENV) {
                Ok(v) => parse_key(v.as_bytes()).map(Key).ok_or_else(|| {
                    Error::Usage(format!("{KEY_ENV} must hold 64 hex digits (32 bytes)"))
                }),
                Err(_) => Err(Error::Usage(format!(
                    "no bundle key: pass the key file (audit --bundle-key FILE, decrypt --key FILE) or set {KEY_ENV} (make one with `phiprobe keygen --bundle --out FILE`)"
                ))),
            },
        }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Key> {
        Ok(Key(super::random()?))
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// Encrypts `plaintext`, binding `aad` (the run id) to it.
pub fn seal(key: &Key, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
    let nonce: [u8; 12] = super::random()?;
    let aad_len = u16::try_from(aad.len())
        .map_err(|_| Error::Usage("bundle associated data longer than 65,535 bytes".into()))?;
    let cipher = Aes256Gcm::new((&key.0).into());
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| Error::Usage("encryption failed".into()))?;
    let mut out = Vec::with_capacity(16 + 2 + aad.len() + 12 + ct.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&aad_len.to_be_bytes());
    out.extend_from_slice(aad.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts a bundle read from `path`: (associated data, plaintext). A wrong key or any
/// changed byte fails authentication.
pub fn open(key: &Key, path: &Path, bytes: &[u8]) -> Result<(String, Vec<u8>)> {
    let bad = |m: &str| Error::Parse {
        path: path.to_owned(),
        format: "phiprobe encrypted bundle".into(),
        message: m.to_owned(),
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("no PHIPROBE-BUNDLE1 header; not a phiprobe bundle"))?;
    if rest.len() < 2 {
        return Err(bad("truncated"));
    }
    let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    let rest = &rest[2..];
    if rest.len() < n + 12 + 16 {
        return Err(bad("truncated"));
    }
    let aad = std::str::from_utf8(&rest[..n]).map_err(|_| bad("associated data is not UTF-8"))?;
    let nonce = &rest[n..n + 12];
    let ct = &rest[n + 12..];
    let cipher = Aes256Gcm::new((&key.0).into());
    let pt = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| bad("authentication failed: wrong key, or the bundle was altered"))?;
    Ok((aad.to_owned(), pt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nist_gcm_test_case_14() {
        // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 14: AES-256, zero
        // key, zero 96-bit IV, one zero block.
        let cipher = Aes256Gcm::new((&[0u8; 32]).into());
        let ct = cipher
            .encrypt(Nonce::from_slice(&[0u8; 12]), [0u8; 16].as_slice())
            .unwrap();
        assert_eq!(
            hex(&ct),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = Key::generate().unwrap();
        let b = seal(&key, "run-1", b"secret example").unwrap();
        let p = Path::new("x.bundle");
        assert_eq!(
            open(&key, p, &b).unwrap(),
            ("run-1".into(), b"secret example".to_vec())
        );
        assert!(!b.windows(6).any(|w| w == b"secret"), "plaintext visible");
        let mut t = b.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(
            open(&key, p, &t)
                .unwrap_err()
                .to_string()
                .contains("authentication failed")
        );
        let mut t = b.clone();
        t[19] ^= 1; // the associated data (run id)
        assert!(open(&key, p, &t).is_err());
        let other = Key::generate().unwrap();
        assert!(open(&other, p, &b).is_err());
        assert!(
            open(&key, p, b"garbage")
                .unwrap_err()
                .to_string()
                .contains("header")
        );
        assert_eq!(parse_key(key.to_hex().as_bytes()), Some(key.0));
    }
}
