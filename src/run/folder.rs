//! The run folder's life: claimed (run log checked, folder locked), and logged once written.

use crate::Result;
use crate::evidence::FindingsFile;
use crate::exit;
use crate::integrity::folder::RunFolder;
use crate::integrity::{manifest, runlog};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static RUN_LOG: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Sets the `--run-log` of this invocation (once, at start).
pub fn set_run_log(p: Option<PathBuf>) {
    let _ = RUN_LOG.set(p);
}

/// The run log of a run folder (`--run-log`, else beside the folder).
pub fn log_path(run_dir: &Path) -> PathBuf {
    runlog::path_for(run_dir, RUN_LOG.get().and_then(|p| p.as_deref()))
}

/// Claims `out` as the run folder of a command reading `inputs`, after checking that the run
/// could be logged: the run log must be readable as a log, and may be neither an input nor
/// inside the folder. Every run-writing command calls this after validating its arguments and
/// inputs and before writing its first byte.
pub fn claim(out: &Path, inputs: &[PathBuf]) -> Result<RunFolder> {
    let log = log_path(out);
    runlog::preflight(&log)?;
    let l = crate::integrity::folder::resolve(&log);
    if l.starts_with(crate::integrity::folder::resolve(out)) {
        return Err(crate::Error::Usage(format!(
            "--run-log {} lies inside the run folder {}; the log must live outside it",
            log.display(),
            out.display()
        )));
    }
    if inputs
        .iter()
        .any(|i| crate::integrity::folder::resolve(i) == l)
    {
        return Err(crate::Error::Usage(format!(
            "--run-log {} is also an input of this run",
            log.display()
        )));
    }
    RunFolder::claim(out, inputs)
}

/// Checks, before an in-place command (report, sign) writes, that the run log could take its
/// entry.
pub fn preflight_log(run_dir: &Path) -> Result<()> {
    runlog::preflight(&log_path(run_dir))
}

/// Appends an entry for `run_dir` to the run log; returns the log's path.
pub fn log_event(
    run_dir: &Path,
    file: &FindingsFile,
    event: &str,
    result: String,
    exit_code: u8,
) -> Result<PathBuf> {
    let log = runlog::path_for(run_dir, RUN_LOG.get().and_then(|p| p.as_deref()));
    let manifest_sha256 = std::fs::read(run_dir.join(manifest::MANIFEST))
        .ok()
        .map(|b| crate::integrity::sha256_hex(&b));
    runlog::append(
        &log,
        runlog::Event {
            event: event.into(),
            run_dir: run_dir.to_owned(),
            run_id: file.manifest.run_id.clone(),
            inputs: file.manifest.inputs.clone(),
            manifest_sha256,
            result,
            exit_code,
        },
    )?;
    Ok(log)
}

/// The result words of a run for the log.
pub fn run_result(file: &FindingsFile) -> (String, u8) {
    if let Some(d) = file.dp.as_ref().filter(|d| !d.violations.is_empty()) {
        return (
            format!("DP audit inconsistent: {}", d.violations.join("; ")),
            exit::ERROR,
        );
    }
    match &file.gate {
        Some(g) if !g.passed => (
            format!(
                "policy breached: {} finding(s) fail, {} warn ({})",
                g.failed, g.warned, g.policy.path
            ),
            exit::POLICY_BREACHED,
        ),
        Some(g) => (
            format!("policy passed: {} warning(s) ({})", g.warned, g.policy.path),
            exit::PASS,
        ),
        None => ("completed (no policy)".into(), exit::PASS),
    }
}
