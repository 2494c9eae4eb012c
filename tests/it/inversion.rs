//! Model inversion against a model that memorised its members' notes (the mock model boosts the
//! continuation of every memorised text): members' masked attributes are recovered far more
//! often than non-members', the linkage and membership posterior are reported, and no value
//! reaches the outputs.

use std::process::Output;

use serde_json::Value;

use crate::{phiprobe, stderr, workspace};

const PLAN: &str = r#"
[[probe]]
kind = "membership"
attacks = ["loss"]
bootstrap = 50

[[probe]]
kind = "inversion"
fields = ["diagnosis", "birth_date", "mrn"]
records = 20
max_candidates = 24
released = ["sex", "state"]
prompts = ["{sex:F=She,M=He} is a pleasant {age}-year-old {sex:F=woman,M=man}, "]
reconstruct_tokens = 24
generations = 8
generation_tokens = 48
"#;

fn finding<'a>(f: &'a Value, metric: &str, params: &[(&str, Value)]) -> &'a Value {
    f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["metric"] == metric && params.iter().all(|(k, v)| &x["params"][*k] == v))
        .unwrap_or_else(|| panic!("no {metric} {params:?}"))
}

/// Runs `audit` on the workspace's card with a mock model that memorised `memorised` (boosted
/// by `boost`) under `plan`, into `run/`.
fn audit_mock(
    dir: &std::path::Path,
    memorised: &[&str],
    boost: f64,
    plan: &str,
    extra: &[&str],
) -> Output {
    let fixture = serde_json::json!({
        "format": "phiprobe-mock", "seed": 5, "boost": boost, "memorized": memorised,
    });
    std::fs::write(dir.join("mock.json"), fixture.to_string()).unwrap();
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let mut args = vec![
        "-q",
        "audit",
        "--model",
        "mock:mock.json",
        "--data",
        "d/synthetic-ehr.toml",
        "--plan",
        "plan.toml",
        "--out",
        "run",
    ];
    args.extend_from_slice(extra);
    phiprobe(dir, &args)
}

#[test]
fn memorised_members_attributes_are_inferred_and_the_control_is_not() {
    let tmp = workspace("40");
    let dir = tmp.path();
    let card = dir.join("d/synthetic-ehr.toml");
    let recs = phiprobe::data::text::TextRecords::load(&card, None).unwrap();
    let members: Vec<&str> = (0..recs.len())
        .filter(|&r| recs.member[r] == Some(true))
        .map(|r| recs.texts[r].as_str())
        .collect();
    // PHI examples need a key, checked before any model work.
    let o = audit_mock(dir, &members, 12.0, PLAN, &["--include-phi-examples"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("PHIPROBE_BUNDLE_KEY"), "{}", stderr(&o));
    assert!(
        phiprobe(dir, &["-q", "keygen", "--bundle", "--out", "bundle.key"])
            .status
            .success()
    );
    let o = audit_mock(
        dir,
        &members,
        12.0,
        PLAN,
        &["--include-phi-examples", "--bundle-key", "bundle.key"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/findings.json")).unwrap())
            .unwrap();
    crate::assert_declared_metrics(&f);
    for field in ["diagnosis", "birth_date"] {
        let top1 = |arm: &str| {
            finding(
                &f,
                "inference.top1",
                &[("field", field.into()), ("arm", arm.into())],
            )
        };
        let (a, c) = (top1("attack"), top1("control"));
        assert!(a["value"].as_f64().unwrap() > 0.8, "{field}: {a}");
        assert!(
            a["value"].as_f64().unwrap() > c["value"].as_f64().unwrap(),
            "{field}: {a} vs {c}"
        );
        let d = finding(&f, "inference.difference", &[("field", field.into())]);
        assert!(d["interval"]["lo"].as_f64().unwrap() > 0.0, "{field}: {d}");
        let r = finding(&f, "inference.residual_risk", &[("field", field.into())]);
        assert!(r["value"].as_f64().unwrap() > 0.5, "{field}: {r}");
        // Wilson interval and counts are carried.
        assert!(a["counts"]["n"].as_u64().unwrap() > 0);
        assert_eq!(a["interval"]["method"], "wilson");
    }
    // Linkage: per-patient identification probabilities, with the release-only baseline.
    let d = &f["inversion"];
    let l = &d["linkage"];
    assert_eq!(l["released"], serde_json::json!(["sex", "state"]));
    assert!(l["member_model"]["n"].as_u64().unwrap() > 0);
    assert!(
        l["member_model"]["mean"].as_f64().unwrap()
            > l["member_baseline"]["mean"].as_f64().unwrap(),
        "{l}"
    );
    finding(
        &f,
        "linkage.identification.above",
        &[
            ("arm", "attack".into()),
            ("basis", "model".into()),
            ("threshold", 0.09.into()),
        ],
    );
    // The membership posterior follows from the loss attack's ε lower bound.
    let p = &d["posterior"];
    let (e, prior) = (p["epsilon"].as_f64().unwrap(), p["prior"].as_f64().unwrap());
    let want = e.exp() * prior / (e.exp() * prior + 1.0 - prior);
    assert!((p["posterior"].as_f64().unwrap() - want).abs() < 1e-12);
    assert!(d["reconstruction"]["fields"].as_array().unwrap().len() > 3);
    assert_eq!(d["memorised"]["generations"], 8);
    // No identifier value reaches any file of the run, the encrypted bundle included.
    assert!(crate::phi_scan::scan_run(&dir.join("run"), &card) >= 8);
    // The expert decrypts the bundle: the values behind the findings, for real records.
    let o = phiprobe(
        dir,
        &[
            "-q",
            "decrypt",
            "run/phi-examples.bundle",
            "--key",
            "bundle.key",
            "--out",
            "ex.json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let ex: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ex.json")).unwrap()).unwrap();
    let inv = ex["inversion"].as_array().unwrap();
    assert!(!inv.is_empty());
    let columns = recs
        .read_columns(&["diagnosis".to_owned(), "birth_date".to_owned()])
        .unwrap();
    for e in inv.iter().filter(|e| e["field"] == "birth_date") {
        let r = recs
            .ids
            .iter()
            .position(|id| id == e["record_id"].as_str().unwrap())
            .unwrap();
        assert_eq!(e["value"], columns[1].as_ref().unwrap().values[r].as_str());
    }
    assert_eq!(ex["run_id"], f["manifest"]["run_id"]);
    // Another key, or none, opens nothing (exit 2); the file is never overwritten.
    assert!(
        phiprobe(dir, &["-q", "keygen", "--bundle", "--out", "other.key"])
            .status
            .success()
    );
    let o = phiprobe(
        dir,
        &[
            "decrypt",
            "run/phi-examples.bundle",
            "--key",
            "other.key",
            "--out",
            "x.json",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("authentication failed"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("x.json").exists());
    let md = std::fs::read_to_string(dir.join("run/report.md")).unwrap();
    assert!(md.contains("## Model inversion and identification"), "{md}");
    insta::assert_snapshot!(
        "inversion_section",
        crate::report_section(
            &md,
            "Model inversion and identification",
            dir,
            crate::Digits::Keep
        )
    );
    // Re-analysis from the observations reproduces the findings.
    let o = phiprobe(dir, &["-q", "report", "run", "--reanalyze"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/findings.json")).unwrap())
            .unwrap();
    assert_eq!(f["findings"], g["findings"]);
}

#[test]
fn unknown_inversion_field_is_a_clear_usage_error() {
    let tmp = workspace("8");
    let dir = tmp.path();
    let o = audit_mock(
        dir,
        &[],
        1.0,
        "[[probe]]\nkind = \"inversion\"\nfields = [\"diagnosys\"]\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("diagnosys") && e.contains("synthetic-ehr.toml"),
        "{e}"
    );
    assert!(!dir.join("run").exists());
}
