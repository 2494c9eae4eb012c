//! `manifest.json`: the SHA-256 of every input of a run and of every file in its folder.
//!
//! The manifest is written last, when the folder is otherwise complete; it lists every file
//! under the run folder (recursively, `/`-separated relative paths, sorted) except itself and
//! its signature `manifest.sig`. [`check`] re-hashes the folder and names every file that
//! changed, went missing or was added.

use super::read;
use crate::error::{Error, Result};
use crate::evidence::{FileHash, RunManifest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the manifest in a run folder.
pub const MANIFEST: &str = "manifest.json";
/// File name of the manifest's detached signature.
pub const SIGNATURE: &str = "manifest.sig";
/// Format tag of `manifest.json`.
pub const FORMAT: &str = "phiprobe-manifest-1";

/// The hash-pinned content of a run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// Run id.
    pub run_id: String,
    /// The command that made the run.
    pub command: String,
    /// phiprobe version and commit that wrote the folder.
    pub tool_version: String,
    /// Git commit of phiprobe, when known.
    pub git_commit: Option<String>,
    /// The run's seed.
    pub seed: u64,
    /// Every input (model files, data, plan, policy, determination), as recorded at run time.
    pub inputs: Vec<FileHash>,
    /// Every file of the run folder, relative, sorted.
    pub outputs: Vec<FileHash>,
}

/// Something [`check`] found wrong with a run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A listed file is gone.
    Missing(String),
    /// A file is in the folder but not in the manifest.
    Added(String),
    /// A listed file's content differs.
    Changed {
        /// Relative path.
        path: String,
        /// SHA-256 in the manifest.
        expected: String,
        /// SHA-256 now.
        found: String,
    },
    /// Something that is not a regular file (a link, a device) is in the folder.
    NotAFile(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing(p) => write!(f, "missing: {p} (listed in the manifest, not found)"),
            Problem::Added(p) => write!(f, "added: {p} (in the folder, not in the manifest)"),
            Problem::Changed {
                path,
                expected,
                found,
            } => write!(
                f,
                "changed: {path} (sha256 {} in the manifest, {} now)",
                super::short(expected),
                super::short(found)
            ),
            Problem::NotAFile(p) => write!(f, "not a regular file: {p}"),
        }
    }
}

fn walk(
    root: &Path,
    rel: &str,
    out: &mut Vec<(String, PathBuf)>,
    odd: &mut Vec<String>,
) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_owned()
    } else {
        root.join(rel)
    };
    let rd = std::fs::read_dir(&dir).map_err(|source| Error::Read {
        path: dir.clone(),
        source,
    })?;
    let mut entries: Vec<_> = rd
        .map(|e| {
            e.map_err(|source| Error::Read {
                path: dir.clone(),
                source,
            })
        })
        .collect::<Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if rel.is_empty() && (name == MANIFEST || name == SIGNATURE) {
            continue;
        }
        let ft = e.file_type().map_err(|source| Error::Read {
            path: e.path(),
            source,
        })?;
        if ft.is_dir() {
            walk(root, &path, out, odd)?;
        } else if ft.is_file() {
            out.push((path, e.path()));
        } else {
            odd.push(path);
        }
    }
    Ok(())
}

/// Hashes every file of a run folder (except the manifest and its signature).
pub fn hash_folder(dir: &Path) -> Result<(Vec<FileHash>, Vec<String>)> {
    let mut files = Vec::new();
    let mut odd = Vec::new();
    walk(dir, "", &mut files, &mut odd)?;
    let hashes = files
        .iter()
        .map(|(rel, p)| super::hash_file(p, rel))
        .collect::<Result<Vec<_>>>()?;
    Ok((hashes, odd))
}

/// Builds the manifest of a complete run folder.
pub fn build(dir: &Path, run: &RunManifest) -> Result<Manifest> {
    let (outputs, odd) = hash_folder(dir)?;
    if let Some(o) = odd.first() {
        return Err(Error::Report {
            path: dir.join(o),
            message: "not a regular file; a run folder holds only files and folders".into(),
        });
    }
    Ok(Manifest {
        format: FORMAT.into(),
        run_id: run.run_id.clone(),
        command: run.command.clone(),
        tool_version: run.tool_version.clone(),
        git_commit: run.git_commit.clone(),
        seed: run.seed,
        inputs: run.inputs.clone(),
        outputs,
    })
}

/// Writes `manifest.json` into a complete run folder and removes a signature that no longer
/// matches it. Returns the manifest's bytes.
pub fn write(dir: &Path, run: &RunManifest) -> Result<Vec<u8>> {
    let m = build(dir, run)?;
    let bytes = serde_json::to_vec_pretty(&m).map_err(|e| Error::Report {
        path: dir.join(MANIFEST),
        message: e.to_string(),
    })?;
    let sig = dir.join(SIGNATURE);
    if sig.exists() {
        std::fs::remove_file(&sig).map_err(|source| Error::Write { path: sig, source })?;
    }
    crate::fsx::write_atomic(&dir.join(MANIFEST), &bytes)?;
    Ok(bytes)
}

/// Reads `manifest.json` of a run folder: its bytes and content.
pub fn read_manifest(dir: &Path) -> Result<(Vec<u8>, Manifest)> {
    let p = dir.join(MANIFEST);
    let bytes = read(&p)?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Report {
        path: p.clone(),
        message: format!("not a phiprobe manifest: {}", crate::redact::json(&e)),
    })?;
    if m.format != FORMAT {
        return Err(Error::Report {
            path: p,
            message: format!("format '{}' is not {FORMAT}", m.format),
        });
    }
    Ok((bytes, m))
}

/// Compares a run folder with its manifest: every problem, in path order.
pub fn check(dir: &Path, m: &Manifest) -> Result<Vec<Problem>> {
    let (now, odd) = hash_folder(dir)?;
    let mut problems: Vec<Problem> = odd.into_iter().map(Problem::NotAFile).collect();
    let listed: std::collections::BTreeMap<&str, &FileHash> =
        m.outputs.iter().map(|h| (h.path.as_str(), h)).collect();
    let present: std::collections::BTreeMap<&str, &FileHash> =
        now.iter().map(|h| (h.path.as_str(), h)).collect();
    for (p, want) in &listed {
        match present.get(p) {
            None => problems.push(Problem::Missing((*p).to_owned())),
            Some(got) if got.sha256 != want.sha256 || got.bytes != want.bytes => {
                problems.push(Problem::Changed {
                    path: (*p).to_owned(),
                    expected: want.sha256.clone(),
                    found: got.sha256.clone(),
                })
            }
            Some(_) => {}
        }
    }
    for p in present.keys() {
        if !listed.contains_key(p) {
            problems.push(Problem::Added((*p).to_owned()));
        }
    }
    Ok(problems)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run manifest for tests.
    pub(crate) fn run() -> RunManifest {
        RunManifest {
            schema_version: 2,
            tool_version: "t".into(),
            git_commit: None,
            run_id: "r".into(),
            command: "risk".into(),
            seed: 1,
            plan: serde_json::Value::Null,
            inputs: vec![],
            started_at: String::new(),
        }
    }

    #[test]
    fn names_changed_missing_and_added_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.json"), b"{}").unwrap();
        std::fs::create_dir(d.path().join("obs")).unwrap();
        std::fs::write(d.path().join("obs/x.parquet"), b"xx").unwrap();
        write(d.path(), &run()).unwrap();
        let (_, m) = read_manifest(d.path()).unwrap();
        assert_eq!(
            m.outputs
                .iter()
                .map(|h| h.path.as_str())
                .collect::<Vec<_>>(),
            ["a.json", "obs/x.parquet"]
        );
        assert!(check(d.path(), &m).unwrap().is_empty());
        std::fs::write(d.path().join("obs/x.parquet"), b"xy").unwrap();
        std::fs::remove_file(d.path().join("a.json")).unwrap();
        std::fs::write(d.path().join("new.txt"), b"").unwrap();
        let p = check(d.path(), &m).unwrap();
        let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(p.len(), 3, "{shown:?}");
        assert!(shown[0].starts_with("missing: a.json"), "{shown:?}");
        assert!(shown[1].starts_with("changed: obs/x.parquet"), "{shown:?}");
        assert!(shown[2].starts_with("added: new.txt"), "{shown:?}");
    }
}
