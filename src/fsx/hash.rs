//! Hex and SHA-256: the one place bytes become the hex strings that manifests, run ids and
//! resume keys record.

use crate::error::{Error, Result};
use std::path::Path;

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 16 characters of a (hash) string, safely for any input.
pub fn short(s: &str) -> &str {
    s.char_indices().nth(16).map_or(s, |(i, _)| &s[..i])
}

/// Bytes of a hex string (`None` unless every pair is valid hex).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// SHA-256 of bytes as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// Streams a file through SHA-256; `shown` is the path recorded in the hash.
pub fn hash_file(path: &Path, shown: &str) -> Result<crate::evidence::FileHash> {
    use sha2::{Digest, Sha256};
    use std::io::Read as _;
    let err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    // A device would stream forever and a pipe block: only regular files are hashed.
    crate::fsx::input::regular_file(path)?;
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(err)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok(crate::evidence::FileHash {
        path: shown.to_owned(),
        bytes: n,
        sha256: hex(&h.finalize()),
    })
}

/// [`hash_file`] recording the path as given.
pub fn hash_path(path: &Path) -> Result<crate::evidence::FileHash> {
    hash_file(path, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
        // FIPS 180-2 test vector.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
