//! Extraction against a model that memorised its members' notes (the mock model boosts the
//! continuation of every memorised text): members' continuations and identifiers come out,
//! non-members' do not, and the report shows it without raw identifiers.

use serde_json::Value;

use crate::{phiprobe, stderr, workspace};

const PLAN: &str = r#"
[[probe]]
kind = "extraction"
prefix_tokens = [32, 64]
suffix_tokens = 24
records = 24
samples = 2
identifiers_per_record = 3
generations = 16
generation_tokens = 64
sweep = [{ temperature = 1.0, top_k = 40 }]
"#;

fn finding<'a>(f: &'a Value, metric: &str, params: &[(&str, Value)]) -> &'a Value {
    f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["metric"] == metric && params.iter().all(|(k, v)| &x["params"][*k] == v))
        .unwrap_or_else(|| panic!("no {metric} {params:?}"))
}

#[test]
fn memorised_members_are_extracted_and_the_control_is_not() {
    let tmp = workspace("30");
    let dir = tmp.path();
    let recs =
        phiprobe::data::text::TextRecords::load(&dir.join("d/synthetic-ehr.toml"), None).unwrap();
    let members: Vec<&str> = (0..recs.len())
        .filter(|&r| recs.member[r] == Some(true))
        .map(|r| recs.texts[r].as_str())
        .collect();
    let fixture = serde_json::json!({
        "format": "phiprobe-mock", "seed": 5, "boost": 12.0, "memorized": members,
    });
    std::fs::write(dir.join("mock.json"), fixture.to_string()).unwrap();
    std::fs::write(dir.join("plan.toml"), PLAN).unwrap();
    let o = phiprobe(
        dir,
        &[
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
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/findings.json")).unwrap())
            .unwrap();
    crate::assert_declared_metrics(&f);
    let k64 = |group: &str| {
        finding(
            &f,
            "extraction.k_extractable",
            &[("k", 64.into()), ("group", group.into())],
        )["value"]
            .as_f64()
            .unwrap()
    };
    assert!(k64("member") > 0.5, "members: {}", k64("member"));
    assert_eq!(k64("control"), 0.0);
    // Dates in the members' continuations come out; the excess over the control is significant.
    let ex = finding(
        &f,
        "extraction.excess",
        &[
            ("phi_type", "date".into()),
            ("mode", "targeted_prefix".into()),
        ],
    );
    assert!(ex["interval"]["lo"].as_f64().unwrap() > 0.0, "{ex}");
    let d = &f["extraction"];
    // One record per patient: the 30 patients, not their 48 records.
    assert_eq!(d["records"], 30);
    assert!(!d["examples"].as_array().unwrap().is_empty());
    // Outputs carry no raw identifier of any record: every example is masked.
    let mut outputs = String::new();
    for file in [
        "report.md",
        "report.html",
        "findings.json",
        "observations/extraction.json",
    ] {
        outputs.push_str(&std::fs::read_to_string(dir.join("run").join(file)).unwrap());
    }
    for id in &recs.identifiers {
        if matches!(
            id.category,
            phiprobe::phi::SafeHarbor::Ssn
                | phiprobe::phi::SafeHarbor::Mrn
                | phiprobe::phi::SafeHarbor::Phone
                | phiprobe::phi::SafeHarbor::Email
        ) {
            for v in id.values.iter().filter(|v| v.len() >= 6) {
                assert!(!outputs.contains(v.as_str()), "{} value leaked", id.name);
            }
        }
    }
    let md = std::fs::read_to_string(dir.join("run/report.md")).unwrap();
    assert!(md.contains("## Extraction") && md.contains("k-extractability"));
    insta::assert_snapshot!(
        "extraction_section",
        crate::report_section(&md, "Extraction", dir, crate::Digits::Keep)
    );
    // Re-analysis from the observations reproduces the findings.
    let o = phiprobe(dir, &["-q", "report", "run", "--reanalyze"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/findings.json")).unwrap())
            .unwrap();
    assert_eq!(f["findings"], g["findings"]);
}
