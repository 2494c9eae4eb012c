//! Reading untrusted input files: regular files only, within a documented size.
//!
//! Every file phiprobe reads whole goes through [`read_bytes`] or [`read_text`]. A path that is
//! not a regular file (a device such as `/dev/zero`, a FIFO, a socket, a folder) is refused from
//! its metadata, before it is opened, so nothing blocks or reads forever; a file larger than
//! its kind's limit is refused from its size, before anything is allocated.

use crate::error::{Error, Result};
use std::io::Read as _;
use std::path::Path;

/// Largest structured text file read whole (dataset cards, plans, policies, determinations,
/// canary plans, model `config.json` / `tokenizer.json`, JSON state files, member-id lists,
/// findings, manifests, run logs): 256 MiB.
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// Default largest data file (CSV, JSONL, Parquet) read into memory: 32 GiB. Override with the
/// environment variable [`MAX_DATA_ENV`] (bytes).
pub const MAX_DATA_BYTES: u64 = 32 << 30;

/// Environment variable that overrides [`MAX_DATA_BYTES`].
pub const MAX_DATA_ENV: &str = "PHIPROBE_MAX_INPUT_BYTES";

/// The data-file limit in force: [`MAX_DATA_ENV`] when set to a positive integer, else
/// [`MAX_DATA_BYTES`].
pub fn data_limit() -> u64 {
    std::env::var(MAX_DATA_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(MAX_DATA_BYTES)
}

/// Checks that `path` names a regular file (following symbolic links) without opening it;
/// returns its size in bytes.
pub fn regular_file(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        return Err(Error::Usage(format!(
            "{}: is a folder; a file is required here",
            path.display()
        )));
    }
    if !meta.is_file() {
        return Err(Error::Usage(format!(
            "{}: is not a regular file (a device, pipe or socket); phiprobe reads inputs only from regular files",
            path.display()
        )));
    }
    Ok(meta.len())
}

fn too_large(path: &Path, size: u64, limit: u64) -> Error {
    Error::Usage(format!(
        "{}: {size} bytes is more than the {limit}-byte limit for this kind of input{}",
        path.display(),
        if limit == data_limit() {
            format!(" (raise it with {MAX_DATA_ENV})")
        } else {
            String::new()
        }
    ))
}

/// Reads a whole regular file of at most `limit` bytes.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let size = regular_file(path)?;
    if size > limit {
        return Err(too_large(path, size, limit));
    }
    let err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    // The file may have been swapped or grown since the check: read at most one byte more
    // than allowed and look again.
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(err)?;
    if buf.len() as u64 > limit {
        return Err(too_large(path, buf.len() as u64, limit));
    }
    Ok(buf)
}

/// Reads a whole regular UTF-8 text file of at most `limit` bytes; invalid UTF-8 is reported
/// by line and byte offset.
pub fn read_text(path: &Path, limit: u64) -> Result<String> {
    let bytes = read_bytes(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::NotUtf8 {
            path: path.to_owned(),
            line,
            offset,
        }
    })
}

/// Reads a structured text file (card, plan, config, JSON) within [`MAX_TEXT_BYTES`].
pub fn read_config(path: &Path) -> Result<String> {
    read_text(path, MAX_TEXT_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_folders_and_oversized_files_before_reading() {
        let d = tempfile::tempdir().unwrap();
        let e = read_bytes(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_bytes(d.path(), 10).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
        let p = d.path().join("a.txt");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bytes(&p, 10).unwrap().len(), 10);
        let e = read_bytes(&p, 9).unwrap_err();
        assert!(
            e.to_string().contains("10 bytes is more than the 9-byte"),
            "{e}"
        );
        std::fs::write(&p, b"ok\n\xff").unwrap();
        let e = read_text(&p, 100).unwrap_err();
        assert!(e.to_string().contains("line 2, byte offset 3"), "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mkfifo (coreutils) makes the FIFO");
        let e = read_config(&p).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
