//! Reports: the canonical `findings.json` and its views (Markdown, self-contained HTML with
//! inline SVG figures), written atomically into `reports/<run-id>/`.
//!
//! Only this module touches plotters (DESIGN.md §2).

pub mod doc;
pub mod figures;
pub mod render;

pub use doc::{ReportDoc, build};

use crate::error::{Error, Result};
use crate::evidence::{FileHash, FindingsFile};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Files of a run folder.
pub const FINDINGS: &str = "findings.json";
/// Markdown view.
pub const MARKDOWN: &str = "report.md";
/// HTML view.
pub const HTML: &str = "report.html";
/// Output manifest (SHA-256 of each output file).
pub const OUTPUTS: &str = "outputs.json";

fn hash(path: &str, bytes: &[u8]) -> FileHash {
    FileHash {
        path: path.to_owned(),
        bytes: bytes.len() as u64,
        sha256: Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

/// Renders every view of `file`: (name, bytes) pairs, findings first.
pub fn render_all(file: &FindingsFile) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let json = serde_json::to_vec_pretty(file).map_err(|e| Error::Report {
        path: PathBuf::from(FINDINGS),
        message: e.to_string(),
    })?;
    let doc = build(file);
    let mut files = vec![
        (FINDINGS, json),
        (MARKDOWN, render::markdown(&doc).into_bytes()),
        (HTML, render::html(&doc).into_bytes()),
    ];
    let hashes: Vec<FileHash> = files.iter().map(|(n, b)| hash(n, b)).collect();
    let outputs = serde_json::to_vec_pretty(&hashes).map_err(|e| Error::Report {
        path: PathBuf::from(OUTPUTS),
        message: e.to_string(),
    })?;
    files.push((OUTPUTS, outputs));
    Ok(files)
}

/// Writes a complete run folder at `dir` atomically: everything goes into a temporary sibling
/// folder that is renamed into place once complete; an existing folder is replaced only then.
pub fn write_run(dir: &Path, file: &FindingsFile) -> Result<()> {
    let files = render_all(file)?;
    write_files_atomically(dir, &files)
}

fn write_files_atomically(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let werr = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(werr(parent))?;
    let name = dir
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(werr(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(werr(&tmp))?;
    for (n, bytes) in files {
        let p = tmp.join(n);
        std::fs::write(&p, bytes).map_err(werr(&p))?;
    }
    if dir.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(werr(dir))?;
        std::fs::rename(&tmp, dir).map_err(werr(dir))?;
        std::fs::remove_dir_all(&old).map_err(werr(&old))?;
    } else {
        std::fs::rename(&tmp, dir).map_err(werr(dir))?;
    }
    Ok(())
}

/// Reads `findings.json` from a run folder.
pub fn read_findings(dir: &Path) -> Result<FindingsFile> {
    let p = dir.join(FINDINGS);
    let text = std::fs::read_to_string(&p).map_err(|source| Error::Read {
        path: p.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Report {
        path: p,
        message: format!("not a phiprobe findings file: {e}"),
    })
}

/// Re-renders the views of a run folder from its `findings.json` without recomputing.
pub fn rerender(dir: &Path) -> Result<FindingsFile> {
    let file = read_findings(dir)?;
    if file.schema_version > crate::evidence::SCHEMA_VERSION {
        return Err(Error::Report {
            path: dir.join(FINDINGS),
            message: format!(
                "schema version {} is newer than this phiprobe understands ({}); upgrade phiprobe",
                file.schema_version,
                crate::evidence::SCHEMA_VERSION
            ),
        });
    }
    write_run(dir, &file)?;
    Ok(file)
}
