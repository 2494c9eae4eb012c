//! DP sweeps and comparisons: a two-setting micro sweep end to end in two shards (the
//! comparison report with every figure, the white-box audit finding the noise-free setting and
//! staying below the accountant for the noisy one), resumption, a changed grid refused,
//! `compare` on the sweep's audits, and bad grids.

use serde_json::Value;
use std::path::Path;

use crate::{phiprobe, stderr, workspace};

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sweep(dir: &Path, grid: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "-q",
        "sweep",
        "--data",
        "d/synthetic-ehr.toml",
        "--grid",
        grid,
        "--preset",
        "micro",
        "--batch-size",
        "8",
        "--text-canaries",
        "64",
        "--gradient-canaries",
        "300",
        "--out",
        "sw",
    ];
    args.extend_from_slice(extra);
    phiprobe(dir, &args)
}

fn estimate<'a>(run: &'a Value, instrument: &str, method: &str) -> &'a Value {
    run["dp"]["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["instrument"] == instrument && e["method_id"] == method)
        .unwrap_or_else(|| panic!("no {instrument} {method}"))
}

#[test]
fn a_micro_sweep_in_two_shards_compares_its_settings_and_resumes() {
    let tmp = workspace("40");
    let dir = tmp.path();
    let grid = "noise=0,2;epochs=2";
    // Shard 0 trains and audits the first setting only: no comparison yet.
    let o = sweep(dir, grid, &["--shard", "0/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        dir.join("sw/settings/noise-0_epochs-2/audit/findings.json")
            .is_file()
    );
    assert!(!dir.join("sw/settings/noise-2_epochs-2").exists());
    assert!(!dir.join("sw/compare").exists());
    // Shard 1 does the second and, finding every setting done, writes the comparison.
    let o = sweep(dir, grid, &["--shard", "1/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "findings.json",
        "report.md",
        "report.html",
        "report.pdf",
        "manifest.json",
    ] {
        assert!(dir.join("sw/compare").join(f).is_file(), "{f}");
    }
    let c = json(&dir.join("sw/compare/findings.json"));
    crate::assert_declared_metrics(&c);
    let runs = c["comparison"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["label"], "noise=0 epochs=2");
    assert_eq!(runs[1]["label"], "noise=2 epochs=2");
    assert_eq!(c["comparison"]["delta"], 1e-5);
    // σ = 0 has no guarantee; the white-box audit finds its gradient canaries (a one-run bound
    // well above 1, near its ceiling).
    assert!(runs[0]["dp"]["setting"]["epsilon"].is_null());
    let free = estimate(&runs[0], "gradient canaries", "one-run");
    let v = free["value"].as_f64().unwrap();
    assert!(v > 1.0 && v <= free["ceiling"].as_f64().unwrap(), "{free}");
    // σ = 2: every bound below the accountant's ε, the mechanism check consistent.
    let eps = runs[1]["dp"]["setting"]["epsilon"].as_f64().unwrap();
    assert!(eps > 0.0);
    for e in runs[1]["dp"]["estimates"].as_array().unwrap() {
        if e["kind"] == "bound" {
            assert!(e["value"].as_f64().unwrap() <= eps, "{e}");
        }
    }
    assert_eq!(runs[1]["dp"]["mechanism"]["passed"], true);
    assert!(runs[1]["dp"]["violations"].as_array().unwrap().is_empty());
    // Both settings measured utility, attacks and exposure.
    for r in runs {
        assert!(r["dp"]["validation_perplexity"].as_f64().unwrap() > 1.0);
        assert!(!r["attacks"].as_array().unwrap().is_empty());
        assert!(!r["exposure"].as_array().unwrap().is_empty());
    }
    // Every figure was drawn.
    let html = std::fs::read_to_string(dir.join("sw/compare/report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 5, "five figures");
    assert!(!html.contains("figure unavailable"));
    let md = std::fs::read_to_string(dir.join("sw/compare/report.md")).unwrap();
    insta::assert_snapshot!(
        "comparison_settings_section",
        crate::report_section(&md, "Settings compared", dir, crate::Digits::Redact)
    );
    let setting =
        std::fs::read_to_string(dir.join("sw/settings/noise-2_epochs-2/audit/report.md")).unwrap();
    insta::assert_snapshot!(
        "dp_section",
        crate::report_section(
            &setting,
            "Differential privacy: accountant and empirical ε",
            dir,
            crate::Digits::Redact
        )
    );
    for needle in [
        "Privacy / utility frontier",
        "poisson",
        "RDP of the Poisson-subsampled Gaussian",
        "one-run audit (Steinke",
        "white-box: the adversary plants crafted gradients",
        "black-box",
    ] {
        assert!(
            md.contains(needle) || html.contains(needle),
            "report lacks {needle}"
        );
    }

    // No PHI in the comparison or in an audit of the sweep (only synthetic canaries verbatim).
    let card = dir.join("d/synthetic-ehr.toml");
    assert!(crate::phi_scan::scan_run(&dir.join("sw/compare"), &card) >= 5);
    assert!(crate::phi_scan::scan_run(&dir.join("sw/settings/noise-0_epochs-2/audit"), &card) >= 5);

    // Resumed: nothing is retrained or re-audited.
    let audit = dir.join("sw/settings/noise-2_epochs-2/audit/findings.json");
    let before = std::fs::read(&audit).unwrap();
    let o = sweep(dir, grid, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&audit).unwrap(), before);

    // The safety net through the CLI: a model whose training.json misstates its ε fails its
    // DP audit with exit 2, naming both numbers, after writing the report.
    let src = dir.join("sw/settings/noise-2_epochs-2/model");
    let bad = dir.join("tampered");
    std::fs::create_dir_all(&bad).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), bad.join(e.file_name())).unwrap();
    }
    let mut t = json(&bad.join("training.json"));
    t["log"]["privacy"]["epsilon"] = serde_json::json!(0.001);
    std::fs::write(bad.join("training.json"), t.to_string()).unwrap();
    std::fs::write(dir.join("dp.toml"), "[[probe]]\nkind = \"dp_audit\"\n").unwrap();
    let o = phiprobe(
        dir,
        &[
            "-q", "audit", "--model", "tampered", "--plan", "dp.toml", "--out", "bad-run",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("accountant gives ε = {eps:.6}"))
            && stderr(&o).contains("records ε = 0.001000"),
        "{}",
        stderr(&o)
    );
    assert!(dir.join("bad-run/report.html").is_file());

    // Another grid into the same folder is refused.
    let o = sweep(dir, "noise=0,1;epochs=2", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("holds a different sweep"),
        "{}",
        stderr(&o)
    );

    // `compare` on the audits (as other tools' findings would be) with labels.
    let o = phiprobe(
        dir,
        &[
            "-q",
            "compare",
            "sw/settings/noise-0_epochs-2/audit",
            "sw/settings/noise-2_epochs-2/audit/findings.json",
            "--labels",
            "baseline,dp",
            "--out",
            "cmp",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c2 = json(&dir.join("cmp/findings.json"));
    assert_eq!(c2["comparison"]["runs"][1]["label"], "dp");
    assert_eq!(
        c2["comparison"]["runs"][1]["findings_sha256"],
        runs[1]["findings_sha256"]
    );
    // Without labels, a sweep's audits are labelled by their setting.
    let o = phiprobe(
        dir,
        &[
            "-q",
            "compare",
            "sw/settings/noise-2_epochs-2/audit",
            "sw/settings/noise-0_epochs-2/audit",
            "--out",
            "cmp2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c3 = json(&dir.join("cmp2/findings.json"));
    assert_eq!(c3["comparison"]["runs"][0]["label"], "noise=2 epochs=2");
    assert_eq!(c3["comparison"]["runs"][1]["label"], "noise=0 epochs=2");
}

#[test]
fn bad_sweeps_and_comparisons_exit_2_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (args, want) in [
        (
            vec!["sweep", "--data", "x.toml", "--grid", "sigma=1"],
            "unknown grid key 'sigma'",
        ),
        (
            vec!["sweep", "--data", "x.toml", "--grid", "noise=-1"],
            "out of range",
        ),
        (vec!["compare", "nowhere", "--out", "c"], "nowhere"),
        (
            vec!["compare", "a", "b", "--labels", "x", "--out", "c"],
            "--labels gives 1 label(s) for 2 run(s)",
        ),
    ] {
        let o = phiprobe(dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}
