//! ed25519 signatures of run manifests (RFC 8032, via `ed25519-dalek`).
//!
//! Key files are one line of text: `phiprobe-ed25519-secret <hex>` (the 32-byte seed, written
//! with owner-only permissions) and `phiprobe-ed25519-public <hex>`. The key id is the first 16
//! hex digits of SHA-256 of the public key. `manifest.sig` is JSON: the key id and public key,
//! the SHA-256 of `manifest.json` and the signature over its exact bytes.

use super::manifest::{self, MANIFEST, Problem, SIGNATURE};
use super::{hex, read, sha256_hex, unhex};
use crate::error::{Error, Result};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const SECRET_TAG: &str = "phiprobe-ed25519-secret";
const PUBLIC_TAG: &str = "phiprobe-ed25519-public";
/// Format tag of `manifest.sig`.
pub const SIGNATURE_FORMAT: &str = "phiprobe-signature-1";

/// The key id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public: &[u8; 32]) -> String {
    sha256_hex(public)[..16].to_owned()
}

fn bad_key(path: &Path, what: &str) -> Error {
    Error::Parse {
        path: path.to_owned(),
        format: what.into(),
        message: format!(
            "expected one line '{what} <64 hex digits>' as written by `phiprobe keygen`"
        ),
    }
}

fn parse_key(path: &Path, tag: &str) -> Result<[u8; 32]> {
    let bytes = read(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad_key(path, tag))?;
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(t), Some(h), None) if t == tag => unhex(h)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad_key(path, tag)),
        (Some(t), _, _) if t == SECRET_TAG || t == PUBLIC_TAG => Err(Error::Usage(format!(
            "{}: this is a {} key; expected a {} key",
            path.display(),
            if t == SECRET_TAG { "secret" } else { "public" },
            if tag == SECRET_TAG {
                "secret"
            } else {
                "public"
            }
        ))),
        _ => Err(bad_key(path, tag)),
    }
}

/// Writes a new key pair: `prefix` (secret, mode 0600) and `prefix.pub`. Refuses to overwrite
/// existing files. Returns the two paths and the key id.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf, String)> {
    let public_path = PathBuf::from(format!("{}.pub", prefix.display()));
    for p in [prefix, public_path.as_path()] {
        if p.exists() {
            return Err(Error::Usage(format!(
                "{} exists; phiprobe never overwrites a key (choose another --out)",
                p.display()
            )));
        }
    }
    let seed: [u8; 32] = super::random()?;
    let sk = SigningKey::from_bytes(&seed);
    let pk = sk.verifying_key().to_bytes();
    write_new(
        prefix,
        format!("{SECRET_TAG} {}\n", hex(&seed)).as_bytes(),
        true,
    )?;
    write_new(
        &public_path,
        format!("{PUBLIC_TAG} {}\n", hex(&pk)).as_bytes(),
        false,
    )?;
    Ok((prefix.to_owned(), public_path, key_id(&pk)))
}

/// Creates a file that must not exist yet (owner-only when `secret`).
pub(crate) fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    use std::io::Write as _;
    let werr = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(werr)?;
    f.write_all(bytes).map_err(werr)?;
    f.sync_all().map_err(werr)
}

/// The run log's last entry when a run was signed; bound into the signature, so a log truncated
/// or rewritten after signing no longer matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogAnchor {
    /// Sequence number of the entry.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// The signed message: the exact bytes of `manifest.json`, then the log anchor if any.
fn message(manifest: &[u8], anchor: Option<&LogAnchor>) -> Vec<u8> {
    let mut m = manifest.to_vec();
    if let Some(a) = anchor {
        m.extend_from_slice(format!("\nphiprobe-runlog-head {} {}", a.seq, a.hash).as_bytes());
    }
    m
}

/// `manifest.sig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureFile {
    /// [`SIGNATURE_FORMAT`].
    pub format: String,
    /// `ed25519`.
    pub algorithm: String,
    /// Key id of the signing key.
    pub key_id: String,
    /// Public key (hex), for information: verification uses the key the verifier supplies.
    pub public_key: String,
    /// SHA-256 of the signed `manifest.json`.
    pub manifest_sha256: String,
    /// The run log's head at signing time (signed with the manifest).
    #[serde(default)]
    pub log: Option<LogAnchor>,
    /// Signature over the exact bytes of `manifest.json` and the log anchor (hex).
    pub signature: String,
    /// UTC time of signing.
    pub signed_at: String,
}

/// Signs a run folder's manifest after checking the folder still matches it; with a run log,
/// its current head (after checking the chain) is signed with it.
pub fn sign(run: &Path, key: &Path, log: Option<&Path>) -> Result<SignatureFile> {
    let seed = parse_key(key, SECRET_TAG)?;
    let (bytes, m) = manifest::read_manifest(run)?;
    let problems = manifest::check(run, &m)?;
    if !problems.is_empty() {
        return Err(Error::Report {
            path: run.to_owned(),
            message: format!(
                "does not match its manifest, refusing to sign: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    let anchor = match log.filter(|l| l.is_file()) {
        None => None,
        Some(l) => {
            let rep = super::runlog::check(l)?;
            if let Some(p) = rep.problems.first() {
                return Err(Error::Report {
                    path: l.to_owned(),
                    message: format!("the run log is damaged, refusing to sign: {p}"),
                });
            }
            rep.entries.last().map(|e| LogAnchor {
                seq: e.body.seq,
                hash: e.hash.clone(),
            })
        }
    };
    let sk = SigningKey::from_bytes(&seed);
    let pk = sk.verifying_key().to_bytes();
    let sig = SignatureFile {
        format: SIGNATURE_FORMAT.into(),
        algorithm: "ed25519".into(),
        key_id: key_id(&pk),
        public_key: hex(&pk),
        manifest_sha256: sha256_hex(&bytes),
        signature: hex(&sk.sign(&message(&bytes, anchor.as_ref())).to_bytes()),
        log: anchor,
        signed_at: crate::date::now_rfc3339(),
    };
    let out = serde_json::to_vec_pretty(&sig).map_err(|e| Error::Report {
        path: run.join(SIGNATURE),
        message: e.to_string(),
    })?;
    crate::fsx::write_atomic(&run.join(SIGNATURE), &out)?;
    Ok(sig)
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// The signature's key id (None when the folder is unsigned).
    pub key_id: Option<String>,
    /// Signature problems (missing, wrong key, invalid).
    pub signature: Vec<String>,
    /// File problems.
    pub files: Vec<Problem>,
    /// Files checked.
    pub checked: usize,
}

impl Verification {
    /// True when the signature is valid and every file matches.
    pub fn ok(&self) -> bool {
        self.signature.is_empty() && self.files.is_empty()
    }
}

/// Verifies a run folder: the signature over `manifest.json` (and the run-log head it was
/// signed with, which must still be in `log`) with the given public key, then every file
/// against the manifest.
pub fn verify(run: &Path, public: &Path, log: Option<&Path>) -> Result<Verification> {
    let pk_bytes = parse_key(public, PUBLIC_TAG)?;
    let vk = VerifyingKey::from_bytes(&pk_bytes).map_err(|e| Error::Parse {
        path: public.to_owned(),
        format: PUBLIC_TAG.into(),
        message: format!("not a valid ed25519 public key: {e}"),
    })?;
    let (bytes, m) = manifest::read_manifest(run)?;
    let mut signature = Vec::new();
    let mut signed_by = None;
    let sig_path = run.join(SIGNATURE);
    if !sig_path.is_file() {
        signature.push(format!(
            "{SIGNATURE}: missing; the run is not signed (phiprobe sign RUN --key K)"
        ));
    } else {
        let raw = read(&sig_path)?;
        match serde_json::from_slice::<SignatureFile>(&raw) {
            Err(e) => signature.push(format!(
                "{SIGNATURE}: unreadable: {}",
                crate::redact::json(&e)
            )),
            Ok(s) => {
                signed_by = Some(s.key_id.clone());
                // Without the log at hand (a folder sent to the expert alone) the anchor is
                // still signed but cannot be looked up; the caller notes the missing log.
                if let (Some(anchor), Some(l)) = (&s.log, log.filter(|l| l.is_file())) {
                    let found = super::runlog::check(l)?
                        .entries
                        .iter()
                        .any(|e| e.body.seq == anchor.seq && e.hash == anchor.hash);
                    if !found {
                        signature.push(format!(
                            "run log: entry {} that was the log's head when the run was signed is missing or changed (the log was truncated, replaced or rewritten)",
                            anchor.seq
                        ));
                    }
                }
                let want = key_id(&pk_bytes);
                if s.key_id != want {
                    signature.push(format!(
                        "{SIGNATURE}: signed with key {}, not with the given key {want}",
                        s.key_id
                    ));
                }
                if s.manifest_sha256 != sha256_hex(&bytes) {
                    signature.push(format!(
                        "{MANIFEST}: changed since it was signed (sha256 differs from the signature's)"
                    ));
                }
                let sig = unhex(&s.signature)
                    .and_then(|b| <[u8; 64]>::try_from(b).ok())
                    .map(|b| ed25519_dalek::Signature::from_bytes(&b));
                match sig {
                    None => signature.push(format!("{SIGNATURE}: malformed signature")),
                    Some(sig) => {
                        if vk
                            .verify_strict(&message(&bytes, s.log.as_ref()), &sig)
                            .is_err()
                        {
                            signature.push(format!(
                                "{MANIFEST}: the signature does not verify with the given public key"
                            ));
                        }
                    }
                }
            }
        }
    }
    let files = manifest::check(run, &m)?;
    Ok(Verification {
        key_id: signed_by,
        signature,
        files,
        checked: m.outputs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1, TEST 1: empty message.
        let seed: [u8; 32] =
            unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let sk = SigningKey::from_bytes(&seed);
        assert_eq!(
            hex(&sk.verifying_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex(&sk.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn key_files_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let (sk, pk, id) = keygen(&d.path().join("k")).unwrap();
        assert_eq!(id.len(), 16);
        assert!(keygen(&d.path().join("k")).is_err(), "never overwrites");
        assert!(parse_key(&sk, SECRET_TAG).is_ok());
        let e = parse_key(&sk, PUBLIC_TAG).unwrap_err().to_string();
        assert!(e.contains("secret key"), "{e}");
        std::fs::write(d.path().join("bad"), "phiprobe-ed25519-public zz").unwrap();
        assert!(parse_key(&d.path().join("bad"), PUBLIC_TAG).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&sk).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "secret key readable by others: {mode:o}");
        }
        let _ = pk;
    }
}
