//! The file system at phiprobe's edges.
//!
//! - Atomic file writes (this module): a temporary sibling with a process-unique name, flushed
//!   and fsynced, then renamed over the target, so a reader never sees a half-written file and
//!   a failed write leaves nothing behind.
//! - [`input`]: untrusted input files are read only when regular and within a documented size.
//! - [`hash`]: hex and SHA-256 of bytes and files.
//!
//! Which output folders may be replaced and the lock on a run folder are in
//! the integrity layer (`integrity::folder`): a run folder is recognised by its manifest.

pub mod hash;
pub mod input;

pub use input::{read_bytes, read_config, read_text};

use crate::error::{Error, Result};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `path` with `fill` through a temporary file in the same folder and a rename.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| {
        let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
        fill(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(source) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Write {
            path: path.to_owned(),
            source,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// The names of a folder's entries, sorted.
pub fn entry_names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Reads a JSON file (regular, within the data size limit); `format` names it in errors, which
/// never quote the file's text.
pub fn read_json<T: for<'de> serde::Deserialize<'de>>(path: &Path, format: &str) -> Result<T> {
    let text = read_text(path, input::data_limit())?;
    serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.to_owned(),
        format: format.to_owned(),
        message: crate::redact::json(&e),
    })
}

/// Writes `v` as pretty JSON, atomically.
pub fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Compute(e.to_string()))?;
    write_atomic(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_cleans_up_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let e = write_with(&p, |_| Err(std::io::Error::other("disk full"))).unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"two", "the old file survives");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
    }
}
