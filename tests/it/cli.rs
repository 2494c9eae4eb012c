//! End-to-end tests of the binary: exit codes, and one test per kind of bad input (exit 2 with
//! a message naming the file and the column, never a panic).

use super::{data, phiprobe, stderr, stdout};
use std::path::Path;

fn write(dir: &Path, name: &str, content: &[u8]) {
    std::fs::write(dir.join(name), content).unwrap();
}

/// Asserts exit code 2, no panic, and that stderr mentions every `needle`.
fn assert_input_error(o: &std::process::Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

/// Runs `risk --data d.csv --qi age,sex,zip --sensitive dx --format json --out <out>`.
fn risk_json(dir: &Path, out: &str) -> std::process::Output {
    phiprobe(
        dir,
        &[
            "risk",
            "--data",
            "d.csv",
            "--qi",
            "age,sex,zip",
            "--sensitive",
            "dx",
            "--format",
            "json",
            "--out",
            out,
        ],
    )
}

const CSV: &str = "id,age,sex,zip,dx\n1,34,F,02118,E11\n2,34,F,02118,I10\n3,51,M,10001,E11\n";

#[test]
fn help_lists_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let o = phiprobe(dir.path(), &["--help"]);
    let out = stdout(&o);
    for cmd in ["demo", "data", "risk", "report", "completions"] {
        assert!(out.contains(cmd), "{out}");
    }
    let o = phiprobe(dir.path(), &["completions", "bash"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("phiprobe"));
}

#[test]
fn malformed_parquet_and_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.parquet",
        b"PAR1 this is not really parquet PAR1",
    );
    let o = phiprobe(dir.path(), &["risk", "--data", "x.parquet", "--qi", "a"]);
    assert_input_error(&o, &["x.parquet", "parquet"]);
    write(dir.path(), "x.jsonl", b"{\"a\": 1}\n{not json\n");
    let o = phiprobe(dir.path(), &["risk", "--data", "x.jsonl", "--qi", "a"]);
    assert_input_error(&o, &["x.jsonl", "jsonl"]);
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = phiprobe(dir.path(), &["risk", "--data", "nope.csv", "--qi", "age"]);
    assert_input_error(&o, &["nope.csv"]);
}

#[test]
fn unknown_column() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", CSV.as_bytes());
    let o = phiprobe(
        dir.path(),
        &["risk", "--data", "d.csv", "--qi", "age,zipcode"],
    );
    assert_input_error(&o, &["d.csv", "zipcode", "columns of the header"]);
}

#[test]
fn wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", b"id,age,sex\n1,34,F\n2,thirty,F\n");
    write(
        dir.path(),
        "card.toml",
        b"name='t'\nfiles=['d.csv']\nrecord_id='id'\n[[column]]\nname='age'\nrole='quasi'\ntype='integer'\n[[column]]\nname='sex'\nrole='quasi'\n",
    );
    let o = phiprobe(dir.path(), &["risk", "--data", "card.toml"]);
    assert_input_error(&o, &["d.csv", "'age'", "integer", "row 2"]);
}

#[test]
fn empty_data() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", b"id,age,sex\n");
    let o = phiprobe(dir.path(), &["risk", "--data", "d.csv", "--qi", "age"]);
    assert_input_error(&o, &["d.csv", "no rows"]);
}

#[test]
fn non_utf8_csv() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", b"id,name\n1,Jos\xe9\n");
    let o = phiprobe(dir.path(), &["risk", "--data", "d.csv", "--qi", "name"]);
    assert_input_error(&o, &["d.csv", "UTF-8", "line 2"]);
}

#[test]
fn duplicated_record_ids() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", b"id,age\nr1,34\nr2,35\nr1,36\n");
    write(
        dir.path(),
        "card.toml",
        b"name='t'\nfiles=['d.csv']\nrecord_id='id'\n[[column]]\nname='age'\nrole='quasi'\n",
    );
    let o = phiprobe(dir.path(), &["risk", "--data", "card.toml"]);
    assert_input_error(&o, &["d.csv", "'id'", "rows 1 and 3"]);
}

#[test]
fn member_non_member_overlap() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "d.csv",
        b"rid,pid,member,age\n1,p1,true,34\n2,p2,false,35\n3,p1,false,34\n",
    );
    write(
        dir.path(),
        "card.toml",
        b"name='t'\nfiles=['d.csv']\nrecord_id='rid'\npatient_id='pid'\n[membership]\ncolumn='member'\n[[column]]\nname='age'\nrole='quasi'\n",
    );
    let o = phiprobe(dir.path(), &["risk", "--data", "card.toml"]);
    assert_input_error(&o, &["d.csv", "both members and non-members", "row 3"]);
    // The patient id value itself is never echoed.
    assert!(!stderr(&o).contains("p1"));
}

#[test]
fn all_values_of_a_qi_missing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", b"id,age,zip\n1,34,\n2,35,\n");
    let o = phiprobe(dir.path(), &["risk", "--data", "d.csv", "--qi", "age,zip"]);
    assert_input_error(&o, &["d.csv", "'zip'", "missing"]);
}

#[test]
fn malformed_card_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", CSV.as_bytes());
    write(
        dir.path(),
        "card.toml",
        b"name='t'\nfiles=['d.csv']\ncolums=[]\n",
    );
    let o = phiprobe(dir.path(), &["risk", "--data", "card.toml"]);
    assert_input_error(&o, &["card.toml", "colums"]);
    write(dir.path(), "p.toml", b"[[rule]]\nmetric='reid.k'\n");
    let o = phiprobe(
        dir.path(),
        &[
            "risk", "--data", "d.csv", "--qi", "age", "--policy", "p.toml",
        ],
    );
    assert_input_error(&o, &["p.toml", "neither `max` nor `min`"]);
}

#[test]
fn plain_analysis_exits_0_and_policy_gates_with_1() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", CSV.as_bytes());
    let o = risk_json(dir.path(), "run");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let findings: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    crate::assert_declared_metrics(&serde_json::json!({ "findings": findings.clone() }));
    let k = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["metric"] == "reid.k")
        .unwrap();
    assert_eq!(k["value"], 1.0);
    for f in [
        "findings.json",
        "report.md",
        "report.html",
        "report.pdf",
        "manifest.json",
    ] {
        assert!(dir.path().join("run").join(f).is_file(), "{f}");
    }
    // Same inputs and seed → the same findings, byte for byte.
    let again = risk_json(dir.path(), "run-again");
    assert_eq!(again.stdout, o.stdout);
    write(
        dir.path(),
        "policy.toml",
        b"[[rule]]\nmetric='reid.prosecutor.max'\nmax=0.09\n",
    );
    let o = phiprobe(
        dir.path(),
        &[
            "risk",
            "--data",
            "d.csv",
            "--qi",
            "age,sex,zip",
            "--policy",
            "policy.toml",
            "--out",
            "run2",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("POLICY BREACH"));
    write(
        dir.path(),
        "lenient.toml",
        b"[[rule]]\nmetric='reid.prosecutor.max'\nmax=1.0\n",
    );
    let o = phiprobe(
        dir.path(),
        &[
            "risk",
            "--data",
            "d.csv",
            "--qi",
            "age,sex,zip",
            "--policy",
            "lenient.toml",
            "--out",
            "run3",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn separator_and_report_rerender() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data("adult.csv"), dir.path().join("adult.csv")).unwrap();
    let o = phiprobe(
        dir.path(),
        &[
            "risk",
            "--data",
            "adult.csv",
            "--separator",
            ";",
            "--qi",
            "sex,age,race",
            "--out",
            "run",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = dir.path().join("run");
    let before = std::fs::read_to_string(run.join("report.md")).unwrap();
    std::fs::remove_file(run.join("report.md")).unwrap();
    std::fs::remove_file(run.join("report.html")).unwrap();
    let o = phiprobe(dir.path(), &["report", "run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(run.join("report.md")).unwrap(),
        before
    );
    assert!(run.join("report.html").is_file());
    // No temporary folders are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Not a run folder.
    let o = phiprobe(dir.path(), &["report", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A small demo: 1,500 patients for the risk report, a 40-patient fleet of 2 references.
const DEMO_ARGS: &[&str] = &[
    "demo",
    "--patients",
    "1500",
    "--out",
    "reports/demo",
    "--train-patients",
    "40",
    "--train-epochs",
    "0.3",
    "--train-references",
    "2",
];

#[test]
fn demo_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let o = phiprobe(dir.path(), DEMO_ARGS);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The demo's target model: a checkpoint with canaries, and the exposure table.
    let model = dir.path().join("reports/demo-model/target");
    assert!(model.join("model.safetensors").is_file());
    assert!(model.join("training.json").is_file());
    assert!(
        stderr(&o).contains("canary exposure in bits"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("        32  "), "{}", stderr(&o));
    // The membership audit of the target against its two reference models.
    assert!(dir.path().join("reports/demo-model/fleet.json").is_file());
    let audit = dir.path().join("reports/demo-audit");
    let amd = std::fs::read_to_string(audit.join("report.md")).unwrap();
    assert!(
        amd.contains("Membership inference") && amd.contains("lira_online"),
        "{amd}"
    );
    assert!(
        amd.contains("## Canary exposure") && amd.contains("ssn-r32-0"),
        "{amd}"
    );
    assert!(
        stderr(&o).contains("membership inference:"),
        "{}",
        stderr(&o)
    );
    let run = dir.path().join("reports/demo");
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("Safe Harbor checklist"));
    assert!(md.contains("[raw]") && md.contains("[safe-harbor]"));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "figures are inlined");
    assert!(stderr(&o).contains("report.html"));
    // The report shows no raw identifier values: no SSN, phone or email from the data.
    let records = dir.path().join("reports/demo-data/encounters.parquet");
    assert!(records.is_file());
    let spans =
        std::fs::read_to_string(dir.path().join("reports/demo-data/phi_spans.jsonl")).unwrap();
    assert!(!spans.is_empty());
    for text in [&md, &html] {
        assert!(
            !regex_like_ssn(text),
            "an SSN-shaped value reached the report"
        );
        assert!(!text.contains("@example."), "an email reached the report");
    }
    // Every file both demo runs wrote: no identifier value of either dataset (the PHI detector
    // over each file's text, and every identifier value looked up directly); the findings follow
    // the published schema; signed, they verify.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/findings.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let o = phiprobe(dir.path(), &["-q", "keygen", "--out", "k"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (run, data) in [
        ("reports/demo", "reports/demo-data"),
        ("reports/demo-audit", "reports/demo-data-train"),
    ] {
        let run = dir.path().join(run);
        let card = dir.path().join(data).join("synthetic-ehr.toml");
        let scanned = super::phi_scan::scan_run(&run, &card);
        assert!(
            scanned >= 5,
            "{}: only {scanned} files scanned",
            run.display()
        );
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("findings.json")).unwrap())
                .unwrap();
        let errors = super::schema::validate(&schema, &f);
        assert!(errors.is_empty(), "{}: {errors:#?}", run.display());
        let r = run.to_str().unwrap();
        assert_eq!(
            phiprobe(dir.path(), &["-q", "sign", r, "--key", "k"])
                .status
                .code(),
            Some(0)
        );
        let o = phiprobe(dir.path(), &["verify", r, "--pubkey", "k.pub"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert!(dir.path().join("reports/demo-audit/report.pdf").is_file());
    // A second demo reuses the fleet instead of training it again.
    let o = phiprobe(dir.path(), DEMO_ARGS);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("reusing the demo target"),
        "{}",
        stderr(&o)
    );
}

/// True when `text` contains ddd-dd-dddd.
fn regex_like_ssn(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(11).any(|w| {
        w.iter().enumerate().all(|(i, c)| {
            if i == 3 || i == 6 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
    })
}

#[test]
fn journalist_and_marketer_with_a_population_table() {
    // Sample classes A (1 person) and B (2 persons); the population has A ×4 and B ×2, plus
    // a class C the sample does not contain.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sample.csv", b"q\nA\nB\nB\n");
    write(dir.path(), "pop.csv", b"q\nA\nA\nA\nA\nB\nB\nC\n");
    let o = phiprobe(
        dir.path(),
        &[
            "risk",
            "--data",
            "sample.csv",
            "--qi",
            "q",
            "--population-file",
            "pop.csv",
            "--format",
            "json",
            "--out",
            "run",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let get = |m: &str| {
        findings.iter().find(|f| f["metric"] == m).unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    let marketer = (1.0 / 4.0 + 2.0 / 2.0) / 3.0;
    assert!((get("reid.marketer.avg") - marketer).abs() < 1e-12);
    assert!((get("reid.journalist.avg") - marketer.max(2.0 / 6.0)).abs() < 1e-12);
    assert_eq!(get("reid.journalist.max"), 0.5);
    // A population that does not contain the sample is an input error.
    write(dir.path(), "small.csv", b"q\nA\nB\n");
    let o = phiprobe(
        dir.path(),
        &[
            "risk",
            "--data",
            "sample.csv",
            "--qi",
            "q",
            "--population-file",
            "small.csv",
            "--out",
            "run2",
        ],
    );
    assert_input_error(&o, &["small.csv", "population must contain the sample"]);
}

#[test]
fn out_never_replaces_an_unrelated_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", CSV.as_bytes());
    std::fs::create_dir(dir.path().join("precious")).unwrap();
    write(&dir.path().join("precious"), "thesis.tex", b"important");
    let o = phiprobe(
        dir.path(),
        &[
            "risk", "--data", "d.csv", "--qi", "age", "--out", "precious",
        ],
    );
    assert_input_error(&o, &["precious/thesis.tex", "not part of a phiprobe run"]);
    assert!(dir.path().join("precious/thesis.tex").is_file());
    // A previous run folder is replaced.
    for _ in 0..2 {
        let o = phiprobe(
            dir.path(),
            &["risk", "--data", "d.csv", "--qi", "age", "--out", "run"],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
}

#[test]
fn nothing_left_to_analyse_and_non_finite_settings() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", b"a,b\n1,\n,2\n");
    let o = phiprobe(
        dir.path(),
        &[
            "risk",
            "--data",
            "d.csv",
            "--qi",
            "a,b",
            "--missing",
            "exclude",
        ],
    );
    assert_input_error(&o, &["no person is left to analyse"]);
    write(
        dir.path(),
        "p.toml",
        b"[[rule]]\nmetric='reid.k'\nmax=nan\n",
    );
    let o = phiprobe(
        dir.path(),
        &["risk", "--data", "d.csv", "--qi", "a", "--policy", "p.toml"],
    );
    assert_input_error(&o, &["p.toml", "non-finite"]);
    let o = phiprobe(
        dir.path(),
        &[
            "risk",
            "--data",
            "d.csv",
            "--qi",
            "a",
            "--recursive-c",
            "NaN",
        ],
    );
    assert_input_error(&o, &["recursive c"]);
}

/// Issue 21: names and SSNs in columns block "very small", however large every class is.
#[test]
fn direct_identifiers_in_columns_are_never_very_small() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,name,ssn,sex,zip3,dx\n");
    for i in 0..36 {
        // Three classes of 12 on (sex, zip3): k = 12 > 1/0.09.
        let (sex, zip) = [("F", "021"), ("M", "021"), ("F", "100")][i % 3];
        csv.push_str(&format!(
            "{i},Person{i} Surname{i},{:03}-{:02}-{:04},{sex},{zip},E11\n",
            100 + i,
            10 + i,
            1000 + i
        ));
    }
    write(dir.path(), "d.csv", csv.as_bytes());
    let o = phiprobe(
        dir.path(),
        &[
            "risk", "--data", "d.csv", "--qi", "sex,zip3", "--format", "json", "--out", "out",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(!md.contains("risk VERY SMALL"), "{md}");
    assert!(
        md.contains("No direct identifier in the released data"),
        "a criterion of its own"
    );
    // In the summary (status), the statement's criteria (met) and the PIA's risks.
    let lines: Vec<&str> = md
        .lines()
        .filter(|l| l.contains("No direct identifier in the released data") && l.starts_with('|'))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("| NOT MET |"), "{}", lines[0]);
    assert!(lines[1].contains("FAIL"), "{}", lines[1]);
    // Without the determination's facts the report is a draft; its measurements still fail.
    assert!(md.starts_with("# DRAFT"), "{md}");
    assert!(
        md.contains("What the measurements alone say: NOT VERY SMALL"),
        "{md}"
    );
    assert!(!md.contains("say: VERY SMALL"), "{md}");
}
