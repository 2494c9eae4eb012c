//! phiprobe's integration tests: one binary, topic modules.

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
