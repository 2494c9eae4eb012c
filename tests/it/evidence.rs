//! Evidence an expert can sign: the published JSON Schema (checked by an independent validator),
//! the signed manifest and its tamper tests, the hash-chained run log, the release gate's exit
//! codes and JUnit XML, and determination facts (missing ones marked, never invented).

use super::{phiprobe, stderr, stdout};
use serde_json::Value;
use std::path::Path;

const CSV: &str = "id,age,sex,zip,dx\n1,34,F,02118,E11\n2,34,F,02118,I10\n3,51,M,10001,E11\n4,51,M,10001,I10\n5,62,F,60601,J45\n";

fn risk(dir: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "-q",
        "risk",
        "--data",
        "d.csv",
        "--qi",
        "age,sex,zip",
        "--sensitive",
        "dx",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    phiprobe(dir, &args)
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), CSV).unwrap();
    dir
}

/// `verify` output: (exit code, stderr).
fn verify(dir: &Path, run: &str) -> (Option<i32>, String) {
    let o = phiprobe(dir, &["verify", run, "--pubkey", "k.pub"]);
    (o.status.code(), stderr(&o))
}

#[test]
fn findings_follow_the_published_schema() {
    let dir = setup();
    let o = risk(dir.path(), "run", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The published schema is the one this build derives.
    let o = phiprobe(dir.path(), &["schema"]);
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let published: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/findings.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        printed, published,
        "schemas/findings.schema.json is stale: `cargo run -- schema > schemas/findings.schema.json`"
    );
    let findings: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/findings.json")).unwrap(),
    )
    .unwrap();
    let errors = super::schema::validate(&published, &findings);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(findings["schema_version"], 2);
    // The validator is not a rubber stamp: a missing required field and a wrong type fail.
    let mut broken = findings.clone();
    broken["manifest"].as_object_mut().unwrap().remove("seed");
    broken["findings"][0]["verdict"] = "maybe".into();
    broken["findings"][1]["value"] = "0.5".into();
    let errors = super::schema::validate(&published, &broken);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("/manifest") && e.contains("seed")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("/findings/0/verdict")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("/findings/1/value")),
        "{errors:#?}"
    );
}

#[test]
fn signed_runs_verify_and_every_tampering_is_named() {
    let dir = setup();
    let d = dir.path();
    assert_eq!(risk(d, "run", &[]).status.code(), Some(0));
    let o = phiprobe(d, &["keygen", "--out", "k"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        phiprobe(d, &["keygen", "--out", "k"]).status.code(),
        Some(2),
        "never overwrites"
    );
    // Unsigned: verify fails and says so.
    let (code, err) = verify(d, "run");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not signed"), "{err}");
    let o = phiprobe(d, &["sign", "run", "--key", "k"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (code, err) = verify(d, "run");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("run log chain intact"), "{err}");
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/manifest.json")).unwrap())
            .unwrap();
    let listed: Vec<&str> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["findings.json", "report.html", "report.md", "report.pdf"]
    );
    assert!(
        m["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["path"] == "d.csv")
    );

    let report = d.join("run/report.md");
    let original = std::fs::read(&report).unwrap();
    // One changed byte.
    let mut changed = original.clone();
    changed[10] ^= 0x20;
    std::fs::write(&report, &changed).unwrap();
    let (code, err) = verify(d, "run");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("changed: report.md"), "{err}");
    std::fs::write(&report, &original).unwrap();
    assert_eq!(verify(d, "run").0, Some(0));
    // A missing file, and an added one.
    std::fs::rename(d.join("run/report.pdf"), d.join("report.pdf")).unwrap();
    std::fs::write(d.join("run/extra.txt"), "x").unwrap();
    let (code, err) = verify(d, "run");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("missing: report.pdf") && err.contains("added: extra.txt"),
        "{err}"
    );
    std::fs::rename(d.join("report.pdf"), d.join("run/report.pdf")).unwrap();
    std::fs::remove_file(d.join("run/extra.txt")).unwrap();
    // An edited manifest that still matches every file (another seed), with the signature file's
    // manifest hash updated to it: only the ed25519 check can catch it.
    let mtext = std::fs::read_to_string(d.join("run/manifest.json")).unwrap();
    let stext = std::fs::read_to_string(d.join("run/manifest.sig")).unwrap();
    let forged = mtext.replacen("\"seed\": 7", "\"seed\": 8", 1);
    assert_ne!(forged, mtext);
    let mut sig: Value = serde_json::from_str(&stext).unwrap();
    sig["manifest_sha256"] = phiprobe::integrity::sha256_hex(forged.as_bytes()).into();
    std::fs::write(d.join("run/manifest.json"), &forged).unwrap();
    std::fs::write(d.join("run/manifest.sig"), sig.to_string()).unwrap();
    let (code, err) = verify(d, "run");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("does not verify") && !err.contains("changed:"),
        "{err}"
    );
    std::fs::write(d.join("run/manifest.json"), &mtext).unwrap();
    std::fs::write(d.join("run/manifest.sig"), &stext).unwrap();
    assert_eq!(verify(d, "run").0, Some(0));
    // Another key does not verify it.
    assert_eq!(
        phiprobe(d, &["keygen", "--out", "other"]).status.code(),
        Some(0)
    );
    let o = phiprobe(d, &["verify", "run", "--pubkey", "other.pub"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not with the given key"),
        "{}",
        stderr(&o)
    );
    // A secret key where the public key belongs is a usage error.
    let o = phiprobe(d, &["verify", "run", "--pubkey", "k"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The run log: an edited entry is found, by line.
    let log = d.join("runs.log.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2, "run and sign: {text}");
    std::fs::write(
        &log,
        text.replacen("\"event\":\"run\"", "\"event\":\"rerun\"", 1),
    )
    .unwrap();
    let (code, err) = verify(d, "run");
    assert_eq!(code, Some(1));
    assert!(err.contains("line 1") && err.contains("altered"), "{err}");
    std::fs::write(&log, &text).unwrap();
    assert_eq!(verify(d, "run").0, Some(0));
    // A log cut back before the head it had when the run was signed (or replaced) fails.
    std::fs::write(&log, "").unwrap();
    let (code, err) = verify(d, "run");
    assert_eq!(code, Some(1));
    assert!(err.contains("truncated"), "{err}");
    std::fs::write(&log, &text).unwrap();
    // Re-rendering a folder whose findings were edited is refused: it would pin the change.
    let findings = d.join("run/findings.json");
    let kept = std::fs::read(&findings).unwrap();
    std::fs::write(
        &findings,
        String::from_utf8(kept.clone())
            .unwrap()
            .replacen("\"value\": 1", "\"value\": 0", 1),
    )
    .unwrap();
    let o = phiprobe(d, &["report", "run"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("changed: findings.json"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&findings, &kept).unwrap();
    // Re-rendering rewrites the manifest and drops the stale signature.
    assert_eq!(phiprobe(d, &["-q", "report", "run"]).status.code(), Some(0));
    assert!(!d.join("run/manifest.sig").exists());
    let (code, err) = verify(d, "run");
    assert_eq!(code, Some(1));
    assert!(err.contains("not signed"), "{err}");
}

#[test]
fn the_gate_exits_0_1_2_and_writes_junit() {
    let dir = setup();
    let d = dir.path();
    assert_eq!(risk(d, "run", &[]).status.code(), Some(0));
    let policy = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    policy(
        "pass.toml",
        "[[rule]]\nmetric = 'reid.prosecutor.max'\nmax = 1.0\n",
    );
    policy(
        "fail.toml",
        "[severity]\nrisk = 'error'\n[[rule]]\nmetric = 'reid.prosecutor.max'\nmax = 0.09\n[[rule]]\nmetric = 'reid.k'\nmin = 11\nseverity = 'warning'\n",
    );
    policy(
        "warn.toml",
        "[[rule]]\nmetric = 'reid.k'\nmin = 11\nseverity = 'warning'\n",
    );
    policy("nomatch.toml", "[[rule]]\nmetric = 'mia.auc'\nmax = 0.6\n");
    policy("bad.toml", "[[rule]]\nmetric = 'reid.k'\nmax = 'x'\n");

    let manifest_before = std::fs::read(d.join("run/manifest.json")).unwrap();
    let o = phiprobe(d, &["gate", "run", "--policy", "pass.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("gate: PASS"), "{}", stdout(&o));

    let o = phiprobe(
        d,
        &[
            "gate",
            "run",
            "--policy",
            "fail.toml",
            "--junit",
            "gate.xml",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.contains("reid.prosecutor.max") && table.contains("FAIL") && table.contains("WARN"),
        "{table}"
    );
    let xml = std::fs::read_to_string(d.join("gate.xml")).unwrap();
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<failure type=\"threshold\""), "{xml}");

    let o = phiprobe(d, &["gate", "run", "--policy", "warn.toml"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a warning does not fail: {}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("WARN"));

    for (p, needle) in [
        ("nomatch.toml", "matches no finding"),
        ("bad.toml", "bad.toml"),
        ("absent.toml", "absent.toml"),
    ] {
        let o = phiprobe(d, &["gate", "run", "--policy", p]);
        assert_eq!(o.status.code(), Some(2), "{p}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{p}: {}", stderr(&o));
    }
    // The gate does not touch the run folder; the log records each decision.
    assert_eq!(
        std::fs::read(d.join("run/manifest.json")).unwrap(),
        manifest_before
    );
    let log = std::fs::read_to_string(d.join("runs.log.jsonl")).unwrap();
    assert_eq!(log.matches("\"event\":\"gate\"").count(), 3, "{log}");
    // Gating while the run is made records the gate in the findings and the views.
    let o = risk(d, "gated", &["--policy", "fail.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("gated/findings.json")).unwrap())
            .unwrap();
    assert_eq!(f["gate"]["passed"], false);
    assert!(d.join("gated/gate.junit.xml").is_file());
    let md = std::fs::read_to_string(d.join("gated/report.md")).unwrap();
    assert!(md.contains("## Release gate"), "{md}");
    assert!(super::schema::validate(&published_schema(), &f).is_empty());
    // `gated` and `run` share a run id (same data and seed); each verifies against its own
    // logged manifest.
    assert_eq!(
        f["manifest"]["run_id"],
        serde_json::from_str::<Value>(
            &std::fs::read_to_string(d.join("run/findings.json")).unwrap()
        )
        .unwrap()["manifest"]["run_id"]
    );
    assert_eq!(
        phiprobe(d, &["-q", "keygen", "--out", "k"]).status.code(),
        Some(0)
    );
    for run in ["run", "gated"] {
        assert_eq!(
            phiprobe(d, &["-q", "sign", run, "--key", "k"])
                .status
                .code(),
            Some(0)
        );
        let (code, err) = verify(d, run);
        assert_eq!(code, Some(0), "{run}: {err}");
    }
    // A tampered folder is not gated.
    std::fs::write(d.join("run/findings.json"), b"{}").unwrap();
    let o = phiprobe(d, &["gate", "run", "--policy", "pass.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("changed: findings.json"),
        "{}",
        stderr(&o)
    );
}

fn published_schema() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/findings.schema.json"),
        )
        .unwrap(),
    )
    .unwrap()
}

#[test]
fn determination_facts_are_shown_and_missing_ones_marked() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("determination.toml"),
        "[expert]\nname = \"Dr. Ada Example\"\n[release]\nmodel = \"dua\"\ndate = \"2026-11-01\"\n[threat]\nattempt_probability = 0.3\ndua_terms = [\"no re-identification\"]\n",
    )
    .unwrap();
    let o = risk(d, "run", &["--determination", "determination.toml"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "dua_terms belongs at the top level: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("determination.toml") && stderr(&o).contains("dua_terms"),
        "{}",
        stderr(&o)
    );
    std::fs::write(
        d.join("determination.toml"),
        "dua_terms = [\"no re-identification\"]\n[expert]\nname = \"Dr. Ada Example\"\n[release]\nmodel = \"dua\"\ndate = \"2026-11-01\"\n[threat]\nattempt_probability = 0.3\n",
    )
    .unwrap();
    let o = risk(d, "run", &["--determination", "determination.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::read_to_string(d.join("run/report.md")).unwrap();
    for section in [
        "## Determination statement",
        "## Executive summary",
        "## Limitations and qualifications",
        "## Data description and variable classification",
        "## Threat model and threshold",
        "## Methodology",
        "## Conditions of the determination",
        "## Re-evaluation triggers",
        "## Conclusion and certification",
        "## Appendix B. Reproduction",
        "## Annex: Privacy Impact Assessment",
    ] {
        assert!(md.contains(section), "{section}");
    }
    assert!(md.contains("Dr. Ada Example"));
    for (name, title) in [
        ("determination_statement", "Determination statement"),
        ("determination_conclusion", "Conclusion and certification"),
    ] {
        insta::assert_snapshot!(
            name,
            crate::report_section(&md, title, d, crate::Digits::Keep)
        );
    }
    assert!(md.contains("DUA: no re-identification"));
    assert!(
        md.contains("not supplied (determination.toml: release.recipients)"),
        "{md}"
    );
    // Expiry defaults to a year after the determination date, and says so.
    assert!(md.contains("2027-11-01 (default"), "{md}");
    // Average risk × Pr(attempt) for a DUA release: 5 persons in 3 classes → 3/5 × 0.3 = 0.18.
    assert!(md.contains("0.6 × 0.3 = 0.18"), "{md}");
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/findings.json")).unwrap())
            .unwrap();
    assert!(
        f["manifest"]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["path"] == "determination.toml")
    );
    let errors = super::schema::validate(&published_schema(), &f);
    assert!(errors.is_empty(), "{errors:#?}");
    // Without one, nothing is invented.
    assert_eq!(risk(d, "bare", &[]).status.code(), Some(0));
    let md = std::fs::read_to_string(d.join("bare/report.md")).unwrap();
    assert!(md.contains("not supplied (determination.toml: expert.name)"));
    assert!(!md.contains("Dr. "));
    // Attached later to the run folder.
    let o = phiprobe(
        d,
        &[
            "-q",
            "report",
            "bare",
            "--determination",
            "determination.toml",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(d.join("bare/report.md"))
            .unwrap()
            .contains("Dr. Ada Example")
    );
}
