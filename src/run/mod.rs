//! The runner: the resolved plan, and the pipelines that turn inputs into a run folder.
//!
//! - [`plan`]: `probes/*.toml` and flags → a typed, resolved [`plan::Plan`];
//! - [`audit`]: observe once (cached, resumable), analyse, gate, write the run folder;
//! - [`examples`]: the PHI examples an expert may ask for, sealed in an encrypted bundle;
//! - [`demo`]: the demo's re-identification report;
//! - [`risk`]: a dataset's re-identification risk as a run folder;
//! - [`sweep`]: a grid of DP-training settings trained, audited and compared;
//! - [`folder`]: claiming a run folder (run log checked first) and logging the run;
//! - run ids and manifests, made here only.

pub mod audit;
pub mod demo;
pub mod examples;
pub mod folder;
pub mod plan;
pub mod risk;
pub mod sweep;

use crate::evidence::{FileHash, RunManifest, SCHEMA_VERSION};
use sha2::{Digest, Sha256};

/// The git commit phiprobe was built from (`PHIPROBE_GIT_COMMIT` at build time).
pub fn git_commit() -> Option<String> {
    option_env!("PHIPROBE_GIT_COMMIT")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The id of a `risk` or `demo` run: its command, plan, input hashes and seed, hashed.
pub fn run_id(command: &str, plan: &serde_json::Value, inputs: &[FileHash], seed: u64) -> String {
    let mut h = Sha256::new();
    h.update(command.as_bytes());
    h.update(plan.to_string().as_bytes());
    for i in inputs {
        h.update(i.sha256.as_bytes());
    }
    h.update(seed.to_le_bytes());
    short_id(command, h)
}

/// `prefix-` and the first 5 bytes of the digest in hex: the form of every run id.
fn short_id(prefix: &str, h: Sha256) -> String {
    format!("{prefix}-{}", crate::fsx::hash::hex(&h.finalize()[..5]))
}

/// The id of a `compare` run: the hashes of the compared findings, hashed.
pub fn compare_id(inputs: &[FileHash]) -> String {
    let mut h = Sha256::new();
    for i in inputs {
        h.update(i.sha256.as_bytes());
    }
    short_id("compare", h)
}

/// The id of an `audit` run: its recorded plan and seed, hashed.
pub fn audit_id(plan: &serde_json::Value, seed: u64) -> String {
    let mut h = Sha256::new();
    h.update(plan.to_string().as_bytes());
    h.update(seed.to_le_bytes());
    short_id("audit", h)
}

/// The manifest of a run about to be made (inputs may be completed as they are hashed).
pub fn manifest(
    id: &str,
    command: &str,
    seed: u64,
    plan: serde_json::Value,
    inputs: Vec<FileHash>,
) -> RunManifest {
    RunManifest {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: git_commit(),
        run_id: id.to_owned(),
        command: command.to_owned(),
        seed,
        plan,
        inputs,
        started_at: crate::date::now_rfc3339(),
    }
}
