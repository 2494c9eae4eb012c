//! `phiprobe audit`: a memorising micro fleet audited end to end, an interrupted audit that
//! resumes from its cached observations, re-analysis without the model, and bad inputs.

use std::path::Path;

use serde_json::Value;

use crate::{phiprobe, stderr, workspace};

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Audits with a membership-only plan (every attack, default settings): the canary and
/// extraction probes have their own tests.
fn audit(dir: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    std::fs::write(
        dir.join("membership.toml"),
        "[[probe]]\nkind = \"membership\"\n",
    )
    .unwrap();
    let mut args = vec![
        "audit",
        "--plan",
        "membership.toml",
        "--model",
        "fleet/target",
        "--data",
        "d/synthetic-ehr.toml",
        "--references",
        "fleet",
        "--out",
        out,
        "--seed",
        "3",
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    phiprobe(dir, &args)
}

fn auc(f: &Value, attack: &str) -> Option<f64> {
    f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["metric"] == "mia.auc" && x["params"]["attack"] == attack)
        .and_then(|x| x["value"].as_f64())
}

/// The findings without the wall-clock start time.
fn comparable(mut f: Value) -> Value {
    f["manifest"]["started_at"] = Value::Null;
    f
}

#[test]
fn audit_finds_membership_resumes_and_reanalyses() {
    let tmp = workspace("40");
    let dir = tmp.path();
    // A micro target and 4 references, trained long enough to memorise.
    let o = crate::train::train(
        dir,
        &[
            "--epochs",
            "12",
            "--out",
            "fleet",
            "--references",
            "4",
            "--seed",
            "5",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Every model of the fleet shares the target's tokenizer.
    let tok = std::fs::read(dir.join("fleet/target/tokenizer.json")).unwrap();
    for r in ["ref-00", "ref-01", "ref-02", "ref-03"] {
        let other = std::fs::read(dir.join("fleet/references").join(r).join("tokenizer.json"));
        assert_eq!(other.unwrap(), tok, "{r} has its own tokenizer");
    }

    let o = audit(dir, "runs/a", &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = json(&dir.join("runs/a/findings.json"));
    crate::assert_declared_metrics(&a);
    for attack in phiprobe::probe::membership::ATTACKS {
        let v = auc(&a, attack).unwrap_or_else(|| panic!("{attack} has no AUC"));
        eprintln!("{attack}: AUC {v:.3}");
        assert!((0.0..=1.0).contains(&v));
    }
    // The target memorised its training notes: the loss attack and LiRA see it.
    assert!(
        auc(&a, "loss").unwrap() > 0.6,
        "loss AUC {:?}",
        auc(&a, "loss")
    );
    assert!(auc(&a, "lira_online").unwrap() > 0.6);
    let fprs = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["metric"] == "mia.tpr_at_fpr" && x["params"]["attack"] == "loss")
        .map(|x| {
            (
                x["params"]["unit"].as_str().unwrap_or("").to_owned(),
                x["params"]["aggregation"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect::<Vec<_>>();
    // Patients have several records: per record (3 FPRs), and per patient by max and by mean.
    let count = |u: &str, a: &str| fprs.iter().filter(|x| x.0 == u && x.1 == a).count();
    assert_eq!(
        (
            count("record", ""),
            count("patient", "max"),
            count("patient", "mean")
        ),
        (3, 3, 3),
        "{fprs:?}"
    );
    for f in [
        "report.html",
        "report.md",
        "manifest.json",
        "report.pdf",
        "observations/audit.json",
    ] {
        assert!(dir.join("runs/a").join(f).is_file(), "{f}");
    }
    assert!(
        dir.join("runs/a/observations/ref-03/part-00000.parquet")
            .is_file()
    );
    let html = std::fs::read_to_string(dir.join("runs/a/report.html")).unwrap();
    assert!(html.contains("Membership inference") && html.contains("log-log"));
    let md = std::fs::read_to_string(dir.join("runs/a/report.md")).unwrap();
    insta::assert_snapshot!(
        "membership_section",
        crate::report_section(&md, "Membership inference", dir, crate::Digits::Redact)
    );
    // No note text reaches the outputs (the observations hold scores, never tokens or text).
    let recs =
        phiprobe::data::text::TextRecords::load(&dir.join("d/synthetic-ehr.toml"), None).unwrap();
    let mut outputs = String::new();
    for f in [
        "report.html",
        "report.md",
        "findings.json",
        "observations/audit.json",
    ] {
        outputs.push_str(&std::fs::read_to_string(dir.join("runs/a").join(f)).unwrap());
    }
    for t in recs.texts.iter().filter(|t| t.len() > 40) {
        assert!(!outputs.contains(&t[..t.char_indices().nth(40).map_or(t.len(), |c| c.0)]));
    }
    assert!(!dir.join(".a.partial").exists() && !dir.join("runs/.a.partial").exists());

    // An audit interrupted by a broken reference model (ref-02) keeps what it scored.
    let weights = dir.join("fleet/references/ref-02/model.safetensors");
    let saved = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &saved[..100]).unwrap();
    let o = audit(dir, "runs/b", &["-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("ref-02"), "{}", stderr(&o));
    let partial = dir.join("runs/.b.partial");
    assert!(partial.join("observations/ref-01/done.json").is_file());
    assert!(!dir.join("runs/b").exists(), "no half-written run folder");
    // Different inputs cannot reuse the partial folder.
    let o = audit(dir, "runs/b", &["-q", "--reference-model", "fleet/target"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("different inputs"), "{}", stderr(&o));
    // Repaired, the audit resumes: three models come from the cache, and the findings are
    // those of the uninterrupted run.
    std::fs::write(&weights, &saved).unwrap();
    let o = audit(dir, "runs/b", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("reused cached observations of 3 model(s), scored 2"),
        "{}",
        stderr(&o)
    );
    let b = json(&dir.join("runs/b/findings.json"));
    assert_eq!(comparable(b.clone()), comparable(a.clone()));
    assert!(!partial.exists());
    for marker in [
        "resume.json",
        "observations/target/done.json",
        "observations/target/started.json",
    ] {
        assert!(
            !dir.join("runs/b").join(marker).exists(),
            "{marker} left in the run"
        );
    }

    // A model changed in place between the interruption and the resume is scored again, not
    // mixed in from the cache.
    std::fs::write(&weights, &saved[..100]).unwrap();
    let o = audit(dir, "runs/c", &["-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let ref00 = dir.join("fleet/references/ref-00/model.safetensors");
    let ref00_saved = std::fs::read(&ref00).unwrap();
    std::fs::copy(
        dir.join("fleet/references/ref-01/model.safetensors"),
        &ref00,
    )
    .unwrap();
    std::fs::write(&weights, &saved).unwrap();
    let o = audit(dir, "runs/c", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("reused cached observations of 2 model(s), scored 3"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&ref00, &ref00_saved).unwrap();

    // Re-analysis without any model: delete the fleet, change the plan.
    std::fs::remove_dir_all(dir.join("fleet")).unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/quick.toml");
    let o = phiprobe(
        dir,
        &[
            "-q",
            "report",
            "runs/b",
            "--reanalyze",
            "--plan",
            plan.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c = json(&dir.join("runs/b/findings.json"));
    assert!(auc(&c, "rmia").is_none() && auc(&c, "lira_online").is_some());
    assert_eq!(
        auc(&c, "loss"),
        auc(&a, "loss"),
        "same observations, same AUC"
    );
    // Without --plan it re-derives the run's own settings; re-rendering keeps observations/.
    let o = phiprobe(dir, &["-q", "report", "runs/a", "--reanalyze"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        comparable(json(&dir.join("runs/a/findings.json"))),
        comparable(a)
    );
    let o = phiprobe(dir, &["-q", "report", "runs/a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.join("runs/a/observations/audit.json").is_file());
}

#[test]
fn bad_audit_inputs_exit_2() {
    let tmp = workspace("6");
    let dir = tmp.path();
    std::fs::write(
        dir.join("typo.toml"),
        "[[probe]]\nkind = \"membership\"\nfprs = [0.01]\n",
    )
    .unwrap();
    let mock = crate::data("models/mock.json");
    let mock = format!("mock:{}", mock.display());
    for (args, needle) in [
        (vec!["--plan", "typo.toml"], "typo.toml"),
        (vec!["--references", "d"], "fleet folder"),
        (vec!["--reference-manifest", "nope.json"], "nope.json"),
        (
            vec!["--reference-model", mock.as_str()],
            "same weights as the target",
        ),
    ] {
        let mut all = vec![
            "audit",
            "--model",
            mock.as_str(),
            "--data",
            "d/synthetic-ehr.toml",
            "--out",
            "r",
        ];
        all.extend(args);
        let o = phiprobe(dir, &all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{all:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
}

#[test]
fn members_and_non_members_from_different_files_get_a_shift_caveat() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut a = String::from("id,member,text\n");
    let mut b = String::from("id,member,text\n");
    for i in 0..40 {
        a.push_str(&format!(
            "m{i},true,Follow-up visit number {i} for routine review.\n"
        ));
        b.push_str(&format!(
            "n{i},false,Follow-up visit number {i} for routine review.\n"
        ));
    }
    std::fs::write(dir.join("a.csv"), a).unwrap();
    std::fs::write(dir.join("b.csv"), b).unwrap();
    std::fs::write(
        dir.join("two.toml"),
        "name = \"two\"\nfiles = [\"a.csv\", \"b.csv\"]\nrecord_id = \"id\"\n[membership]\ncolumn = \"member\"\n[[column]]\nname = \"text\"\nrole = \"text\"\n",
    )
    .unwrap();
    let mock = format!("mock:{}", crate::data("models/mock.json").display());
    let o = phiprobe(
        dir,
        &[
            "-q", "audit", "--model", &mock, "--data", "two.toml", "--out", "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f = json(&dir.join("r/findings.json"));
    let shift = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["metric"] == "mia.shift_auc" && x["params"]["feature"] == "source_file")
        .expect("a source-file shift check");
    assert!(shift["value"].as_f64().unwrap() > 0.9, "{shift}");
    let loss = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["metric"] == "mia.auc" && x["params"]["attack"] == "loss")
        .unwrap();
    assert!(
        loss["caveats"].to_string().contains("source_file"),
        "{}",
        loss["caveats"]
    );
}
