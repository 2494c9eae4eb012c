//! The append-only, hash-chained log of runs.
//!
//! One JSON object per line. Each entry records who ran what, when, on which inputs and with
//! which result, and carries `prev` (the previous entry's hash; 64 zeros for the first) and
//! `hash` = SHA-256 of the entry's JSON without `hash`. Editing, removing or reordering any
//! entry breaks the chain from that line on, which [`check`] reports by line. Appends hold an
//! exclusive lock on the file, so concurrent runs do not fork the chain. The chain alone does
//! not reveal a log truncated after its last entry or rewritten wholesale with fresh hashes;
//! `phiprobe sign` therefore signs the log's head with the manifest, and `verify` checks that
//! the signed head is still in the log.
//!
//! The log lives beside the run folders (`<parent of the run folder>/runs.log.jsonl`) unless
//! `--run-log` names another file.

use super::sha256_hex;
use crate::error::{Error, Result};
use crate::evidence::FileHash;
use serde::{Deserialize, Serialize};
use std::io::{BufRead as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// Default file name of the log, beside the run folders.
pub const LOG: &str = "runs.log.jsonl";
/// Format tag of entries.
pub const FORMAT: &str = "phiprobe-runlog-1";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry without its hash (what the hash is computed over).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// [`FORMAT`].
    pub format: String,
    /// 0-based position in the log.
    pub seq: u64,
    /// UTC time (RFC 3339).
    pub time: String,
    /// Operating-system user who ran it.
    pub user: String,
    /// Host name.
    pub host: String,
    /// phiprobe version.
    pub tool_version: String,
    /// The command line (arguments only; values of secrets never appear on a command line).
    pub command: Vec<String>,
    /// What happened: `run`, `report`, `sign`, `gate`.
    pub event: String,
    /// The run folder.
    pub run_dir: String,
    /// The run id.
    pub run_id: String,
    /// The run's inputs.
    pub inputs: Vec<FileHash>,
    /// SHA-256 of the run's `manifest.json` after this event (None when it has none).
    pub manifest_sha256: Option<String>,
    /// Result in words (`pass`, `policy breached: 2 finding(s)`, `signed by …`).
    pub result: String,
    /// Exit code of the command.
    pub exit_code: u8,
    /// Hash of the previous entry.
    pub prev: String,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The content.
    #[serde(flatten)]
    pub body: Body,
    /// SHA-256 of the body's JSON.
    pub hash: String,
}

fn body_hash(b: &Body) -> String {
    sha256_hex(&serde_json::to_vec(b).unwrap_or_default())
}

/// What a new entry says (the log fills in sequence, time, user, host and chain).
#[derive(Debug, Clone)]
pub struct Event {
    /// `run`, `report`, `sign`, `gate`.
    pub event: String,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The run id.
    pub run_id: String,
    /// Inputs.
    pub inputs: Vec<FileHash>,
    /// SHA-256 of the manifest.
    pub manifest_sha256: Option<String>,
    /// Result in words.
    pub result: String,
    /// Exit code.
    pub exit_code: u8,
}

/// The log file for a run folder: `explicit`, else beside the folder.
pub fn path_for(run_dir: &Path, explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    // `.` or `run/` must not put the log inside the run folder (the manifest would no longer
    // match it): resolve the folder first.
    let dir = std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_owned());
    dir.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(LOG)
}

fn user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Reads every entry line of an open log: the last entry and the number of entries. A line
/// that is not an entry is an error naming it (the log is damaged; nothing may be appended).
fn last_entry(f: &std::fs::File, log: &Path) -> Result<(Option<Entry>, u64)> {
    let mut last: Option<Entry> = None;
    let mut lines = 0u64;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| Error::Read {
            path: log.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        last = Some(serde_json::from_str(&line).map_err(|e| Error::Parse {
            path: log.to_owned(),
            format: "phiprobe run log".into(),
            message: format!(
                "line {}: not a log entry ({}); the log is damaged, run `phiprobe verify` on it, or name another file with --run-log",
                i + 1,
                crate::redact::json(&e)
            ),
        })?);
    }
    Ok((last, lines))
}

/// Checks, before a run writes anything, that an entry could be appended to `log`: it is
/// absent, or a regular file within the size limit whose every line is a log entry.
pub fn preflight(log: &Path) -> Result<()> {
    match std::fs::symlink_metadata(log) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        _ => {}
    }
    let size = crate::fsx::input::regular_file(log)?;
    if size > crate::fsx::input::MAX_TEXT_BYTES {
        return Err(Error::Usage(format!(
            "{}: the run log is larger than {} bytes; start a new one with --run-log",
            log.display(),
            crate::fsx::input::MAX_TEXT_BYTES
        )));
    }
    let f = std::fs::File::open(log).map_err(|source| Error::Read {
        path: log.to_owned(),
        source,
    })?;
    last_entry(&f, log).map(|_| ())
}

/// Appends an entry under an exclusive lock; returns it.
pub fn append(log: &Path, ev: Event) -> Result<Entry> {
    let werr = |source| Error::Write {
        path: log.to_owned(),
        source,
    };
    preflight(log)?;
    if let Some(parent) = log.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(werr)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(log)
        .map_err(werr)?;
    f.lock().map_err(werr)?;
    let res = (|| {
        f.rewind().map_err(werr)?;
        let (last, lines) = last_entry(&f, log)?;
        let body = Body {
            format: FORMAT.into(),
            seq: last.as_ref().map_or(lines, |e| e.body.seq + 1),
            time: crate::date::now_rfc3339(),
            user: user(),
            host: host(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            command: std::env::args().skip(1).collect(),
            event: ev.event,
            run_dir: ev.run_dir.display().to_string(),
            run_id: ev.run_id,
            inputs: ev.inputs,
            manifest_sha256: ev.manifest_sha256,
            result: ev.result,
            exit_code: ev.exit_code,
            prev: last.map_or_else(|| GENESIS.to_owned(), |e| e.hash),
        };
        let entry = Entry {
            hash: body_hash(&body),
            body,
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| Error::Report {
            path: log.to_owned(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        f.write_all(&line).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        Ok(entry)
    })();
    let _ = f.unlock();
    res
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainReport {
    /// Entries read.
    pub entries: Vec<Entry>,
    /// Problems, each naming its line.
    pub problems: Vec<String>,
}

/// Reads the log and checks every link of the chain.
pub fn check(log: &Path) -> Result<ChainReport> {
    let text = crate::fsx::read_config(log)?;
    let mut rep = ChainReport::default();
    let mut prev = GENESIS.to_owned();
    let mut seq = 0u64;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let e: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                rep.problems.push(format!(
                    "line {n}: not a log entry ({})",
                    crate::redact::json(&e)
                ));
                // The chain cannot be followed past an unreadable line.
                return Ok(rep);
            }
        };
        if body_hash(&e.body) != e.hash {
            rep.problems.push(format!(
                "line {n}: entry {} was altered (its hash does not match its content)",
                e.body.seq
            ));
        }
        if e.body.prev != prev {
            rep.problems.push(format!(
                "line {n}: entry {} does not follow the previous entry (removed, inserted or reordered entries)",
                e.body.seq
            ));
        }
        if e.body.seq != seq {
            rep.problems.push(format!(
                "line {n}: sequence number {} where {seq} was expected",
                e.body.seq
            ));
        }
        prev = e.hash.clone();
        seq = e.body.seq + 1;
        rep.entries.push(e);
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> Event {
        Event {
            event: "run".into(),
            run_dir: PathBuf::from("reports").join(id),
            run_id: id.into(),
            inputs: vec![FileHash::of("d.csv", b"x")],
            manifest_sha256: Some("ab".into()),
            result: "pass".into(),
            exit_code: 0,
        }
    }

    #[test]
    fn chain_detects_edits_removals_and_reorders() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join(LOG);
        for id in ["a", "b", "c"] {
            append(&log, ev(id)).unwrap();
        }
        let rep = check(&log).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        assert_eq!(rep.entries.len(), 3);
        assert_eq!(rep.entries[2].body.seq, 2);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // An edited result.
        std::fs::write(
            &log,
            text.replace("\"result\":\"pass\"", "\"result\":\"PASS\""),
        )
        .unwrap();
        let rep = check(&log).unwrap();
        assert!(
            rep.problems
                .iter()
                .any(|p| p.starts_with("line 1:") && p.contains("altered")),
            "{:?}",
            rep.problems
        );
        // A removed entry.
        std::fs::write(&log, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let rep = check(&log).unwrap();
        assert!(
            rep.problems
                .iter()
                .any(|p| p.starts_with("line 2:") && p.contains("does not follow")),
            "{:?}",
            rep.problems
        );
        // Reordered entries.
        std::fs::write(&log, format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2])).unwrap();
        assert!(!check(&log).unwrap().problems.is_empty());
        // Restored, it checks again and appends continue the chain.
        std::fs::write(&log, &text).unwrap();
        append(&log, ev("d")).unwrap();
        let rep = check(&log).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        assert_eq!(rep.entries[3].body.prev, rep.entries[2].hash);
    }
}
