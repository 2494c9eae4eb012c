//! The synthetic generator: determinism, ground-truth spans, plausible correlations, and the
//! committed dataset card.

use super::{phiprobe, stderr};
use phiprobe::data::Dataset;
use std::collections::HashMap;
use std::path::Path;

fn synth(dir: &Path, out: &str, format: &str, seed: &str) {
    let o = phiprobe(
        dir,
        &[
            "--quiet",
            "data",
            "synth",
            "--patients",
            "400",
            "--seed",
            seed,
            "--format",
            format,
            "--out",
            out,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn same_seed_gives_byte_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["csv", "parquet", "jsonl"] {
        synth(dir.path(), &format!("a-{format}"), format, "11");
        synth(dir.path(), &format!("b-{format}"), format, "11");
        for f in [
            format!("encounters.{format}"),
            "phi_spans.jsonl".into(),
            "split.csv".into(),
            "synthetic-ehr.toml".into(),
        ] {
            let a = std::fs::read(dir.path().join(format!("a-{format}")).join(&f)).unwrap();
            let b = std::fs::read(dir.path().join(format!("b-{format}")).join(&f)).unwrap();
            assert!(
                a == b,
                "{format}/{f} differs between runs with the same seed"
            );
        }
    }
    // Every format loads back through its card.
    for format in ["csv", "parquet", "jsonl"] {
        let ds =
            Dataset::open_card(&dir.path().join(format!("a-{format}/synthetic-ehr.toml"))).unwrap();
        assert!(ds.source.rows() > 400, "{format}");
    }
    synth(dir.path(), "c-csv", "csv", "12");
    let a = std::fs::read(dir.path().join("a-csv/encounters.csv")).unwrap();
    let c = std::fs::read(dir.path().join("c-csv/encounters.csv")).unwrap();
    assert_ne!(a, c, "a different seed gives different data");
}

#[test]
fn committed_card_matches_the_generator() {
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/synthetic-ehr.toml"),
    )
    .unwrap();
    assert_eq!(
        committed,
        phiprobe::data::synth::card_text(phiprobe::data::Format::Parquet)
    );
}

#[derive(serde::Deserialize)]
struct SpanRow {
    record_id: String,
    field: String,
    category: String,
    start: usize,
    end: usize,
}

#[test]
fn spans_point_at_the_identifiers_and_the_split_is_by_patient() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), "d", "csv", "5");
    let ds = Dataset::open_card(&dir.path().join("d/synthetic-ehr.toml"))
        .expect("the generated card loads and validates");
    let cols = [
        "record_id",
        "note",
        "ssn",
        "mrn",
        "email",
        "first_name",
        "last_name",
        "zip",
        "city",
        "health_plan_id",
        "patient_id",
        "member",
        "age",
        "icd10_code",
    ];
    let names: Vec<String> = cols.iter().map(|s| (*s).to_owned()).collect();
    let t = ds.source.table(&names, &[]).unwrap();
    let col = |n: &str| t.column(n).unwrap();
    let row_of: HashMap<String, usize> = (0..t.rows)
        .map(|r| (col("record_id").value(r).unwrap().to_owned(), r))
        .collect();
    let spans: Vec<SpanRow> = std::fs::read_to_string(dir.path().join("d/phi_spans.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        spans.len() > t.rows,
        "several identifiers per note on average"
    );
    let mut checked = 0;
    let mut categories = std::collections::BTreeSet::new();
    for s in &spans {
        let r = row_of[&s.record_id];
        let note: Vec<char> = col("note").value(r).unwrap().chars().collect();
        let text: String = note[s.start..s.end].iter().collect();
        categories.insert(s.category.clone());
        if let Some(c) = t.column(&s.field) {
            let v = c.value(r).unwrap_or_default();
            assert!(
                text.eq_ignore_ascii_case(v),
                "{}: span {text:?} vs field {v:?}",
                s.field
            );
            checked += 1;
        }
    }
    assert!(checked > 100);
    for c in ["name", "date", "mrn", "geographic", "phone"] {
        assert!(categories.contains(c), "no {c} spans");
    }
    // Membership is constant per patient.
    let mut member: HashMap<&str, &str> = HashMap::new();
    for r in 0..t.rows {
        let p = col("patient_id").value(r).unwrap();
        let m = col("member").value(r).unwrap();
        assert_eq!(*member.entry(p).or_insert(m), m);
    }
    let members = member.values().filter(|m| **m == "true").count();
    assert!((120..280).contains(&members), "{members} of 400");
}

#[test]
fn clinical_content_is_correlated_with_age() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), "d", "parquet", "3");
    let ds = Dataset::open_card(&dir.path().join("d/synthetic-ehr.toml")).unwrap();
    let t = ds
        .source
        .table(&["age".into(), "icd10_code".into()], &[])
        .unwrap();
    let (age, icd) = (t.column("age").unwrap(), t.column("icd10_code").unwrap());
    let mean = |pred: &dyn Fn(&str) -> bool| {
        let ages: Vec<f64> = (0..t.rows)
            .filter(|&r| pred(icd.value(r).unwrap()))
            .map(|r| age.value(r).unwrap().parse::<f64>().unwrap())
            .collect();
        ages.iter().sum::<f64>() / ages.len().max(1) as f64
    };
    let htn = mean(&|c| c.starts_with("I10"));
    let asthma = mean(&|c| c.starts_with("J45"));
    assert!(
        htn > asthma + 10.0,
        "hypertension mean age {htn} vs asthma {asthma}"
    );
}

#[test]
fn detector_recall_on_shaped_identifiers() {
    // The first PHI detector should find nearly every SSN, email and MRN the notes mention.
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), "d", "csv", "9");
    let ds = Dataset::open_card(&dir.path().join("d/synthetic-ehr.toml")).unwrap();
    let t = ds
        .source
        .table(&["record_id".into(), "note".into()], &[])
        .unwrap();
    let notes: HashMap<&str, Vec<char>> = (0..t.rows)
        .map(|r| {
            (
                t.columns[0].value(r).unwrap(),
                t.columns[1].value(r).unwrap().chars().collect(),
            )
        })
        .collect();
    let spans: Vec<SpanRow> = std::fs::read_to_string(dir.path().join("d/phi_spans.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for cat in ["ssn", "email", "mrn", "phone"] {
        let (mut found, mut total) = (0, 0);
        for s in spans.iter().filter(|s| s.category == cat) {
            total += 1;
            let note: String = notes[s.record_id.as_str()].iter().collect();
            let byte_start: usize = notes[s.record_id.as_str()][..s.start]
                .iter()
                .map(|c| c.len_utf8())
                .sum();
            let byte_end: usize = byte_start
                + notes[s.record_id.as_str()][s.start..s.end]
                    .iter()
                    .map(|c| c.len_utf8())
                    .sum::<usize>();
            if phiprobe::phi::detect(&note)
                .iter()
                .any(|m| m.start <= byte_start && m.end >= byte_end)
            {
                found += 1;
            }
        }
        assert!(total > 0, "{cat}");
        let recall = f64::from(found) / f64::from(total);
        assert!(recall >= 0.95, "{cat}: recall {recall} ({found}/{total})");
    }
}

/// The PHI detector against the generator's ground-truth spans: every category that occurs at
/// least 20 times is found with recall and precision of at least 95 % (measured: ≥ 99 % on
/// 2,000 patients, see the issue note), with the vocabulary learned from the card; the built-in
/// rules alone find no names.
#[test]
fn phi_detector_precision_and_recall_on_ground_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    synth(dir, "d", "csv", "12");
    let run = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec![
            "-q",
            "data",
            "detect",
            "--data",
            "d/synthetic-ehr.toml",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = phiprobe(dir, &args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let scores = run(&[]);
    let mut seen = 0;
    for s in &scores {
        let (truth, found) = (s["truth"].as_u64().unwrap(), s["found"].as_u64().unwrap());
        let (det, correct) = (
            s["detections"].as_u64().unwrap(),
            s["correct"].as_u64().unwrap(),
        );
        if truth < 20 {
            continue;
        }
        seen += 1;
        let recall = found as f64 / truth as f64;
        let precision = correct as f64 / det.max(1) as f64;
        assert!(
            recall >= 0.95 && precision >= 0.95,
            "{}: recall {recall:.3}, precision {precision:.3}",
            s["category"]
        );
    }
    assert!(seen >= 10, "{scores:?}");
    let builtin = run(&["--builtin"]);
    let names = builtin.iter().find(|s| s["category"] == "name").unwrap();
    assert_eq!(names["found"], 0);
}
