//! Reports: the canonical `findings.json` and its views (Markdown, self-contained HTML with
//! inline SVG figures, PDF written by phiprobe itself, JUnit XML of the gate), written
//! atomically into `reports/<run-id>/` with `manifest.json` last.
//!
//! Figures are data ([`chart::Figure`]); [`chart`] lays them out once and draws them as SVG
//! (HTML) or, through [`pdf`], as PDF vector graphics.

pub mod canary;
pub mod chart;
pub mod compare;
pub mod determination;
pub mod doc;
pub mod dp;
pub mod extraction;
pub mod figures;
pub mod gate;
pub mod inversion;
pub mod membership;
pub mod pdf;
pub mod render;
pub mod summary;
pub mod terminal;

pub use doc::{ReportDoc, Section, build};

use crate::error::{Error, Result};
use crate::evidence::FindingsFile;
use crate::integrity::folder::RunFolder;
use std::path::{Path, PathBuf};

/// Files of a run folder.
pub const FINDINGS: &str = "findings.json";
/// Markdown view.
pub const MARKDOWN: &str = "report.md";
/// HTML view.
pub const HTML: &str = "report.html";
/// PDF view.
pub const PDF: &str = "report.pdf";
/// JUnit XML of the release gate (when a policy was applied during the run).
pub const JUNIT: &str = "gate.junit.xml";
pub use crate::integrity::manifest::MANIFEST;

/// The report sections of probes that render themselves, given by the caller (the runner
/// passes `crate::probe::sections`; the report does not know the probes).
pub type Views<'a> = &'a dyn Fn(&FindingsFile) -> Vec<Section>;

/// Renders every view of `file`: (name, bytes) pairs, findings first.
pub fn render_all(file: &FindingsFile, views: Views<'_>) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let json = serde_json::to_vec_pretty(file).map_err(|e| Error::Report {
        path: PathBuf::from(FINDINGS),
        message: e.to_string(),
    })?;
    let doc = if file.comparison.is_some() {
        compare::build(file)
    } else {
        build(file, views(file))
    };
    let footer = format!(
        "phiprobe {} · run {} · seed {}",
        file.manifest.tool_version, file.manifest.run_id, file.manifest.seed
    );
    let pdf = pdf::render(&doc, &footer).map_err(|message| Error::Report {
        path: PathBuf::from(PDF),
        message,
    })?;
    let mut files = vec![
        (FINDINGS, json),
        (MARKDOWN, render::markdown(&doc).into_bytes()),
        (HTML, render::html(&doc).into_bytes()),
        (PDF, pdf),
    ];
    if let Some(g) = &file.gate {
        files.push((
            JUNIT,
            crate::report::gate::junit(g, &file.manifest.run_id).into_bytes(),
        ));
    }
    Ok(files)
}

/// Writes a complete run folder into the claimed `folder` atomically: everything goes into a
/// temporary sibling folder, `manifest.json` is written last over its content, and the folder
/// is installed in place once complete ([`RunFolder::install`]: a previous run there loses
/// only the files its manifest lists).
pub fn write_run(folder: &RunFolder, file: &FindingsFile, views: Views<'_>) -> Result<()> {
    let files = render_all(file, views)?;
    let tmp = folder.sibling(&format!("tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(werr(&tmp))?;
    }
    let built = (|| -> Result<()> {
        std::fs::create_dir(&tmp).map_err(werr(&tmp))?;
        for (n, bytes) in &files {
            let p = tmp.join(n);
            let mut f = std::fs::File::create(&p).map_err(werr(&p))?;
            std::io::Write::write_all(&mut f, bytes).map_err(werr(&p))?;
            f.sync_all().map_err(werr(&p))?;
        }
        crate::integrity::manifest::write(&tmp, &file.manifest)?;
        folder.install(&tmp)
    })();
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    built
}

fn werr(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// Reads `findings.json` from a run folder.
pub fn read_findings(dir: &Path) -> Result<FindingsFile> {
    let p = dir.join(FINDINGS);
    let text = crate::fsx::read_text(&p, crate::fsx::input::data_limit())?;
    serde_json::from_str(&text).map_err(|e| Error::Report {
        path: p,
        message: format!("not a phiprobe findings file: {}", crate::redact::json(&e)),
    })
}

/// Re-renders the views of a run folder from its `findings.json` without recomputing, and
/// rewrites its manifest (a signature, which no longer matches, is removed).
pub fn rerender(dir: &Path, views: Views<'_>) -> Result<FindingsFile> {
    let mut file = read_findings(dir)?;
    if file.schema_version <= crate::evidence::SCHEMA_VERSION {
        // Rewritten by this version's types: it is now this version's schema.
        file.schema_version = crate::evidence::SCHEMA_VERSION;
    }
    rewrite(dir, &file, views)?;
    Ok(file)
}

/// Rewrites the findings and every view of a run folder in place, one file at a time
/// (atomically), so anything else in it (an audit's observations/) stays; then the manifest.
pub fn rewrite(dir: &Path, file: &FindingsFile, views: Views<'_>) -> Result<()> {
    // Never pin changes nobody made through phiprobe: the folder must still match its manifest.
    if dir.join(MANIFEST).is_file() {
        let (_, m) = crate::integrity::manifest::read_manifest(dir)?;
        // Views are derived from findings.json and rewritten here: a missing or changed view
        // is repaired, not pinned. Everything else must match.
        use crate::integrity::manifest::Problem;
        let views = [MARKDOWN, HTML, PDF, JUNIT];
        let problems: Vec<Problem> = crate::integrity::manifest::check(dir, &m)?
            .into_iter()
            .filter(|p| match p {
                Problem::Missing(f) | Problem::Changed { path: f, .. } => {
                    !views.contains(&f.as_str())
                }
                _ => true,
            })
            .collect();
        if !problems.is_empty() {
            return Err(Error::Report {
                path: dir.to_owned(),
                message: format!(
                    "does not match its manifest ({}); re-rendering would pin these changes. Check it with `phiprobe verify`; to accept the changes deliberately, delete its manifest.json first",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            });
        }
    }
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
    // A gate file of an earlier policy, and schema 1's outputs.json (now manifest.json).
    for (stale, gone) in [(JUNIT, file.gate.is_none()), ("outputs.json", true)] {
        let p = dir.join(stale);
        if gone && p.is_file() {
            std::fs::remove_file(&p).map_err(werr(&p))?;
        }
    }
    for (name, bytes) in render_all(file, views)? {
        crate::fsx::write_atomic(&dir.join(name), &bytes)?;
    }
    crate::integrity::manifest::write(dir, &file.manifest)?;
    Ok(())
}
