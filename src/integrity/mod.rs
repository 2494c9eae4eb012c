//! Integrity and audit trail of run folders.
//!
//! - [`manifest`]: `manifest.json` pins the SHA-256 of every input and every file of a run
//!   folder; [`manifest::check`] names each changed, missing or added file.
//! - [`sign`]: ed25519 keys (`phiprobe keygen`), a detached signature of the manifest
//!   (`manifest.sig`, `phiprobe sign`) and its verification (`phiprobe verify`).
//! - [`runlog`]: an append-only, hash-chained log of runs (who ran what, when, on which
//!   inputs, with which result), checked by `verify`.
//! - [`bundle`]: AES-256-GCM encrypted bundles for the PHI examples an expert may ask for.

pub mod bundle;
pub mod folder;
pub mod manifest;
pub mod runlog;
pub mod sign;

use crate::error::{Error, Result};
use std::path::Path;

pub use crate::fsx::hash::{hash_file, hex, sha256_hex, short, unhex};

/// Reads a whole file, naming it on error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    crate::fsx::read_bytes(path, crate::fsx::input::MAX_TEXT_BYTES)
}

/// Random bytes from the operating system (keys and nonces; never used for findings, which
/// derive from `--seed`).
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| Error::Usage(format!("the operating system gave no random bytes: {e}")))?;
    Ok(b)
}
