//! Report snapshots (Markdown and the JSON findings), and a contract test that reads
//! findings.json with an independent, test-side schema.

use phiprobe::data::Dataset;
use phiprobe::evidence::{FindingsFile, RunManifest, SCHEMA_VERSION};
use phiprobe::risk::{RiskSettings, analyze};

/// A small fixed analysis with a fixed manifest (no clock, no git, no absolute paths).
fn fixture() -> FindingsFile {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("toy.csv");
    std::fs::write(
        &p,
        "age,sex,zip,dx\n34,F,021,E11\n34,F,021,I10\n34,F,021,E11\n51,M,100,J45\n51,M,100,J45\n67,F,036,I50\n",
    )
    .unwrap();
    let ds = Dataset::open(&p, None, None).unwrap();
    let settings = RiskSettings {
        label: "toy".into(),
        qi: vec!["age".into(), "sex".into(), "zip".into()],
        sensitive: vec!["dx".into()],
        sampling_fraction: Some(0.5),
        ..RiskSettings::default()
    };
    let a = analyze(&ds, &settings).unwrap();
    FindingsFile {
        findings: a.findings,
        reid: vec![a.detail],
        ..FindingsFile::new(RunManifest {
            schema_version: SCHEMA_VERSION,
            tool_version: "0.0.0-test".into(),
            git_commit: None,
            run_id: "risk-test".into(),
            command: "risk".into(),
            seed: 7,
            plan: serde_json::json!({"risk": [settings]}),
            inputs: vec![],
            started_at: "1970-01-01T00:00:00Z".into(),
        })
    }
}

#[test]
fn markdown_report_snapshot() {
    let file = fixture();
    let md = phiprobe::report::render::markdown(&phiprobe::report::build(&file, Vec::new()));
    insta::assert_snapshot!("toy_report_md", md);
}

#[test]
fn findings_json_snapshot() {
    let file = fixture();
    insta::assert_json_snapshot!("toy_findings", file.findings);
}

/// An independent reading of the findings.json contract: if a field is renamed or changes
/// type, this fails loudly.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ContractFinding {
    probe: String,
    metric: String,
    params: serde_json::Map<String, serde_json::Value>,
    value: Option<f64>,
    counts: Option<ContractCounts>,
    interval: Option<ContractInterval>,
    threshold: Option<f64>,
    verdict: String,
    caveats: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ContractCounts {
    k: u64,
    n: u64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ContractInterval {
    level: f64,
    lo: f64,
    hi: f64,
    method: String,
}

#[test]
fn findings_json_contract() {
    let file = fixture();
    let text = serde_json::to_string(&file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    let findings: Vec<ContractFinding> = serde_json::from_value(v["findings"].clone()).unwrap();
    assert!(
        findings
            .iter()
            .all(|f| f.metric.contains('.')
                && ["info", "pass", "fail"].contains(&f.verdict.as_str()))
    );
    // Every proportion has its counts and interval, and the interval contains the value.
    for f in findings
        .iter()
        .filter(|f| f.counts.is_some() && f.interval.is_some())
    {
        let (i, v) = (f.interval.as_ref().unwrap(), f.value.unwrap());
        assert!(i.lo <= v + 1e-12 && v <= i.hi + 1e-12, "{}", f.metric);
    }
    // Round trip.
    let back: FindingsFile = serde_json::from_str(&text).unwrap();
    assert_eq!(back, file);
}

#[test]
fn svg_figures_parse_as_svg() {
    use phiprobe::report::doc::Block;
    let file = fixture();
    let doc = phiprobe::report::build(&file, Vec::new());
    let figures: Vec<(String, &str)> = doc
        .sections
        .iter()
        .flat_map(|s| &s.blocks)
        .filter_map(|b| match b {
            Block::Figure { figure, caption } => {
                Some((phiprobe::report::chart::svg(figure), caption.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        figures.len(),
        3,
        "the summary's forest plot, the class-size histogram and the risk distribution"
    );
    for (svg, caption) in figures {
        // A real XML parser: well-formed, an <svg> root in the SVG namespace, something drawn.
        let xml = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{caption}: {e}"));
        let root = xml.root_element();
        assert_eq!(root.tag_name().name(), "svg", "{caption}");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg"),
            "{caption}"
        );
        assert!(
            root.attribute("viewBox").is_some() || root.attribute("width").is_some(),
            "{caption}: no size"
        );
        let count = |names: &[&str]| {
            xml.descendants()
                .filter(|n| n.is_element() && names.contains(&n.tag_name().name()))
                .count()
        };
        assert!(
            count(&["rect", "path", "polyline", "line", "circle"]) > 0,
            "{caption}: nothing drawn"
        );
        assert!(count(&["text"]) > 0, "{caption}: no labels");
    }
    // The HTML view inlines each figure once.
    let html = phiprobe::report::render::html(&doc);
    assert_eq!(html.matches("<svg").count(), 3);
}
