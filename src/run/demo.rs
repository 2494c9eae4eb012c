//! The demo's re-identification report: the synthetic dataset's risk under two
//! quasi-identifier sets, as a run folder (the CLI synthesises the data and trains the demo's
//! target; this writes the report).

use std::path::Path;

use crate::Result;
use crate::data::Dataset;
use crate::evidence::FindingsFile;
use crate::integrity::folder::RunFolder;
use crate::risk::RiskSettings;

/// The QI sets the demo evaluates: the raw identifiers a privacy expert would start from, and
/// their Safe Harbor generalisation.
pub const DEMO_QI_SETS: [(&str, &[&str]); 2] = [
    ("raw", &["birth_date", "sex", "zip", "admission_date"]),
    ("safe-harbor", &["birth_year", "sex", "zip3"]),
];

/// Analyses the synthetic dataset at `card` under [`DEMO_QI_SETS`] and writes the report into
/// the claimed `folder`.
pub fn risk(folder: &RunFolder, card: &Path, patients: u64, seed: u64) -> Result<FindingsFile> {
    let ds = Dataset::open(card, None, None)?;
    let mut findings = Vec::new();
    let mut details = Vec::new();
    let mut plans = Vec::new();
    for (i, (label, qis)) in DEMO_QI_SETS.iter().enumerate() {
        let settings = RiskSettings {
            label: (*label).to_owned(),
            qi: qis.iter().map(|q| (*q).to_owned()).collect(),
            sensitive: vec!["icd10_code".into()],
            sampling_fraction: Some(0.01),
            safe_harbor: i == 0,
            ..RiskSettings::default()
        };
        let analysis = crate::risk::analyze(&ds, &settings)?;
        findings.extend(analysis.findings);
        details.push(analysis.detail);
        plans.push(settings);
    }
    let mut inputs = vec![crate::fsx::hash::hash_path(card)?];
    inputs.extend(ds.source.hashes.iter().cloned());
    let plan = serde_json::json!({ "data": card.display().to_string(), "patients": patients, "risk": plans });
    let id = super::run_id("demo", &plan, &inputs, seed);
    let file = FindingsFile {
        findings,
        reid: details,
        ..FindingsFile::new(super::manifest(&id, "demo", seed, plan, inputs))
    };
    crate::report::write_run(folder, &file, &crate::probe::sections)?;
    Ok(file)
}
