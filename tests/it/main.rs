//! phiprobe's integration tests: one binary, topic modules.

mod architecture;
mod audit;
mod canary;
mod cli;
mod evidence;
mod extraction;
mod hostile;
mod inversion;
mod models;
mod oracles;
mod phi_scan;
mod report;
mod schema;
mod sweep;
mod synth;
mod train;

use std::path::{Path, PathBuf};
use std::process::Output;

/// Path of a file under tests/data.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Runs the phiprobe binary with `args` in `dir`.
pub fn phiprobe(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phiprobe"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("PHIPROBE_BUNDLE_KEY")
        .output()
        .expect("the phiprobe binary runs")
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Synthesises `patients` patients into `dir/out` in `format`.
pub fn synth_into(dir: &Path, patients: &str, out: &str, format: &str) {
    let o = phiprobe(
        dir,
        &[
            "-q",
            "data",
            "synth",
            "--patients",
            patients,
            "--seed",
            "4",
            "--out",
            out,
            "--format",
            format,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A temporary folder with `patients` synthetic patients in `d/` (CSV).
pub fn workspace(patients: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    synth_into(tmp.path(), patients, "d", "csv");
    tmp
}

/// Whether a report snapshot keeps the numbers: a model trained by the test may land on other
/// last bits on another CPU (its SIMD kernels), so its sections are snapshotted for wording and
/// layout with every digit redacted; mock models and pure analyses keep their numbers.
#[derive(Clone, Copy, PartialEq)]
pub enum Digits {
    /// Keep numbers.
    Keep,
    /// Every run of digits becomes `#`.
    Redact,
}

/// The `## title` section of a report.md (up to the next `## `), with what differs between
/// runs redacted: the test's folder, SHA-256 digests, times, run ids and the version.
pub fn report_section(md: &str, title: &str, dir: &Path, digits: Digits) -> String {
    let head = format!("## {title}\n");
    let start = md
        .find(&head)
        .unwrap_or_else(|| panic!("no section '{title}' in the report"));
    let body = &md[start..];
    let end = body[head.len()..]
        .find("\n## ")
        .map_or(body.len(), |i| head.len() + i + 1);
    let mut s = body[..end].replace(&dir.display().to_string(), "[DIR]");
    if let Ok(canonical) = dir.canonicalize() {
        s = s.replace(&canonical.display().to_string(), "[DIR]");
    }
    let hex = regex::Regex::new(r"\b[0-9a-f]{12,64}\b").unwrap();
    let s = hex.replace_all(&s, "[HEX]").into_owned();
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
    let s = time.replace_all(&s, "[TIME]").into_owned();
    let id =
        regex::Regex::new(r"\b(risk|audit|demo|compare|sweep)-([0-9a-f]{6,}|[a-z0-9-]+-\d+)\b")
            .unwrap();
    let s = id.replace_all(&s, "$1-[ID]").into_owned();
    let version = regex::Regex::new(r"phiprobe \d+\.\d+\.\d+(-[0-9A-Za-z.]+)?").unwrap();
    let s = version.replace_all(&s, "phiprobe [VERSION]").into_owned();
    match digits {
        Digits::Keep => s,
        Digits::Redact => regex::Regex::new(r"\d+")
            .unwrap()
            .replace_all(&s, "#")
            .into_owned(),
    }
}

/// Every finding's metric is one of the ids phiprobe declares (`evidence::Metric`): the closed
/// list a policy may name.
pub fn assert_declared_metrics(findings: &serde_json::Value) {
    for f in findings["findings"].as_array().expect("findings") {
        let m = f["metric"].as_str().expect("metric");
        assert!(
            m.parse::<phiprobe::evidence::Metric>().is_ok(),
            "{m} is not declared in evidence::metric"
        );
    }
}
