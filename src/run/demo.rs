//! `phiprobe demo`: what it runs, where it writes, and its re-identification report. The demo
//! synthesises a dataset and reports its re-identification risk under two quasi-identifier
//! sets ([`risk`]); then it trains its target model on a second, small synthetic dataset (with
//! reference models, reused when an earlier demo trained the same ones) and audits it with
//! every probe ([`DemoSpec::audit`]). The CLI calls these steps in order and draws their
//! progress; every decision of the demo is here.

use std::path::{Path, PathBuf};

use super::audit::AuditSpec;
use crate::Result;
use crate::data::Dataset;
use crate::evidence::{FindingsFile, RunManifest};
use crate::integrity::folder::RunFolder;
use crate::risk::RiskSettings;
use crate::train::run::TrainingRecord;

/// The QI sets the demo evaluates: the raw identifiers a privacy expert would start from, and
/// what the Safe Harbor transform ([`crate::risk::safe_harbor::transform`]) leaves of every
/// one of the data's quasi-identifiers: years of every date (birth years of anyone over 89 as
/// `90+`), sex, and ZIP3 with the restricted prefixes as `000`.
pub const DEMO_QI_SETS: [(&str, &[&str]); 2] = [
    ("raw", &["birth_date", "sex", "zip", "admission_date"]),
    (
        "safe-harbor",
        &[
            "birth_year_sh",
            "sex",
            "zip3_sh",
            "admission_year_sh",
            "discharge_year_sh",
            "death_year_sh",
        ],
    ),
];

/// Analyses the synthetic dataset at `card` under [`DEMO_QI_SETS`] and writes the report into
/// the claimed `folder`.
pub fn risk(folder: &RunFolder, card: &Path, patients: u64, seed: u64) -> Result<FindingsFile> {
    let (ds, _) = crate::risk::safe_harbor::transform(Dataset::open(card, None, None)?)?;
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
        let mut detail = analysis.detail;
        if *label == "safe-harbor" {
            detail.settings.insert(
                0,
                crate::evidence::Setting {
                    name: "transform".into(),
                    value: "the Safe Harbor transform (45 CFR 164.514(b)(2)(i)(B), (C))".into(),
                    note: "derived columns *_sh: every date reduced to its year, birth years of anyone over 89 as 90+, ZIP codes to ZIP3 with the 17 restricted prefixes as 000 (risk::safe_harbor::transform)".into(),
                },
            );
        }
        details.push(detail);
        plans.push(settings);
    }
    let (determination, dh) = demo_determination();
    let mut inputs = vec![crate::fsx::hash::hash_path(card)?];
    inputs.extend(ds.source.hashes.iter().cloned());
    inputs.push(dh);
    let plan = serde_json::json!({ "data": card.display().to_string(), "patients": patients, "risk": plans });
    let id = super::run_id("demo", &plan, &inputs, seed);
    let file = FindingsFile {
        findings,
        reid: details,
        determination: Some(determination),
        ..FindingsFile::new(super::manifest(&id, "demo", seed, plan, inputs))
    };
    crate::report::write_run(folder, &file, &crate::probe::sections)?;
    Ok(file)
}

/// The demo's filled, illustrative `determination.toml` (`probes/determination.demo.toml`), so
/// that its reports show a complete determination.
pub fn demo_determination() -> (crate::evidence::Determination, crate::evidence::FileHash) {
    const TOML: &[u8] = include_bytes!("../../probes/determination.demo.toml");
    super::plan::parse_determination(TOML, Path::new("embedded:probes/determination.demo.toml"))
        .expect("the embedded demo determination parses (tested)")
}

/// What a demo runs (`phiprobe demo`'s flags).
#[derive(Debug, Clone)]
pub struct DemoSpec {
    /// Run folder of the re-identification report; every other folder is named after it.
    pub out: PathBuf,
    /// Synthetic patients of the re-identification dataset.
    pub patients: u64,
    /// The one seed of every step.
    pub seed: u64,
    /// Patients of the dataset the target is trained on (0: no training, no audit).
    pub train_patients: u64,
    /// Epochs of the target's training.
    pub train_epochs: f64,
    /// Reference models trained beside the target (0: reference-free attacks only).
    pub train_references: usize,
}

/// The folders a demo writes, all beside its report folder.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPaths {
    /// The re-identification report (`--out`).
    pub report: PathBuf,
    /// Its synthetic dataset (`<out>-data`).
    pub data: PathBuf,
    /// The training dataset of the target (`<out>-data-train`).
    pub train_data: PathBuf,
    /// The trained models (`<out>-model`): the target alone, or a fleet.
    pub models: PathBuf,
    /// The target model (`<out>-model`, or `<out>-model/target` beside references).
    pub target: PathBuf,
    /// The audit's run folder (`<out>-audit`).
    pub audit: PathBuf,
}

/// `path`'s file name, or `default` when it has none.
fn name_of(path: &Path, default: &str) -> String {
    path.file_name()
        .map_or(default.into(), |n| n.to_string_lossy().into_owned())
}

impl DemoSpec {
    /// Where this demo writes.
    pub fn paths(&self) -> DemoPaths {
        let name = name_of(&self.out, "demo");
        let data = self
            .out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(format!("{name}-data"));
        let train_data = data.with_file_name(format!("{}-train", name_of(&data, "demo-data")));
        let models = self.out.with_file_name(format!("{name}-model"));
        let target = if self.train_references > 0 {
            models.join("target")
        } else {
            models.clone()
        };
        DemoPaths {
            report: self.out.clone(),
            data,
            train_data,
            target,
            audit: self.out.with_file_name(format!("{name}-audit")),
            models,
        }
    }

    /// The training record of a demo target (and fleet) in `paths.models` trained from the same
    /// data (`card`), seed and settings as this demo would train; `None` when anything differs
    /// or is missing.
    pub fn reusable_target(&self, paths: &DemoPaths, card: &Path) -> Option<TrainingRecord> {
        let rec: TrainingRecord = serde_json::from_str(
            &std::fs::read_to_string(paths.target.join("training.json")).ok()?,
        )
        .ok()?;
        let recs = crate::data::text::TextRecords::load(card, None).ok()?;
        let hashes: Vec<String> = recs
            .files
            .iter()
            .map(|p| crate::fsx::hash::hash_path(p).map(|h| h.sha256))
            .collect::<Result<_>>()
            .ok()?;
        let same_data = rec.data.files.iter().map(|f| &f.sha256).eq(hashes.iter());
        let same_run = rec.seed == self.seed
            && rec.config.epochs == self.train_epochs
            && rec.tool_version == env!("CARGO_PKG_VERSION");
        let fleet_ok = if self.train_references > 0 {
            let fleet: crate::train::run::Fleet = serde_json::from_str(
                &std::fs::read_to_string(paths.models.join("fleet.json")).ok()?,
            )
            .ok()?;
            fleet
                .models
                .iter()
                .filter(|m| m.role == "reference")
                .count()
                == self.train_references
        } else {
            !paths.models.join("fleet.json").exists()
        };
        (same_data && same_run && fleet_ok).then_some(rec)
    }

    /// Removes the models of an earlier demo in `paths.models` (only a phiprobe model or fleet:
    /// anything else there is refused, nothing deleted).
    pub fn clear_previous_models(paths: &DemoPaths) -> Result<()> {
        if paths.models.join("training.json").exists()
            || paths.models.join("fleet.json").exists()
            || paths.models.join("target").join("training.json").exists()
        {
            crate::train::run::remove_trained(&paths.models)?;
        }
        Ok(())
    }

    /// The target's training: the tiny preset with the built-in canary plan (100 reference
    /// canaries), and the reference fleet when asked.
    pub fn training(&self, paths: &DemoPaths, card: &Path) -> crate::train::run::RunSpec {
        use crate::train::llama::Preset;
        use crate::train::trainer::TrainConfig;
        let mut plan = crate::train::canary::Plan::default_plan();
        plan.references = 100;
        crate::train::run::RunSpec {
            data: card.to_owned(),
            column: None,
            out: paths.models.clone(),
            train: TrainConfig {
                epochs: self.train_epochs,
                ..TrainConfig::defaults(Preset::Tiny.config(), self.seed)
            },
            canaries: Some(plan),
            references: self.train_references,
            shard: None,
            audit: None,
        }
    }

    /// The audit of the trained target: every probe, with settings lighter than the default
    /// plan's to keep the demo short, and the manifest it records.
    pub fn audit(&self, paths: &DemoPaths, card: &Path) -> (AuditSpec, RunManifest) {
        use crate::probe::{
            canary::Canary, extraction::Extraction, inversion::Inversion, membership::Membership,
        };
        // The demo's canary searches stop at 10,000 model calls each (the default is 20,000).
        let canary = crate::probe::canary::Settings {
            max_expansions: 10_000,
            ..Default::default()
        };
        let extraction = crate::probe::extraction::Settings {
            prefix_tokens: vec![8, 16, 32],
            records: 64,
            samples: 2,
            identifiers_per_record: 4,
            generations: 64,
            ..Default::default()
        };
        // Inversion on the demo's 200 patients: classes on (sex, state) range from 1 to about
        // 10 patients, which is what the linkage figure needs; the prompt gives age and sex
        // only. 64 candidates per target (the default is 128) keep it under a minute.
        let inversion = crate::probe::inversion::Settings {
            fields: ["diagnosis", "lab_name", "birth_date", "mrn", "ssn"]
                .map(String::from)
                .to_vec(),
            max_candidates: 64,
            released: vec!["sex".into(), "state".into()],
            prompts: vec![
                "{sex:F=She,M=He} is a pleasant {age}-year-old {sex:F=woman,M=man}, ".into(),
            ],
            ..Default::default()
        };
        let mut probes = super::plan::Plan::empty();
        probes.set::<Membership>(Some(crate::probe::membership::Settings::default()));
        probes.set::<Canary>(Some(canary));
        probes.set::<Extraction>(Some(extraction));
        probes.set::<Inversion>(Some(inversion));
        let references = if self.train_references > 0 {
            vec![paths.models.clone()]
        } else {
            Vec::new()
        };
        let mut plan = serde_json::json!({
            "model": paths.target,
            "data": card,
            "references": references,
        });
        if let Some(o) = plan.as_object_mut() {
            o.extend(probes.recorded());
        }
        let id = format!("demo-audit-{}", self.seed);
        let manifest = super::manifest(&id, "demo", self.seed, plan.clone(), Vec::new());
        let spec = AuditSpec {
            data: Some(card.to_owned()),
            column: None,
            model: paths.target.display().to_string(),
            adapter: None,
            references,
            reference_manifest: None,
            reference_model: None,
            probes,
            canaries: None,
            out: paths.audit.clone(),
            seed: self.seed,
            threads: 0,
            batch_tokens: 8192,
            plan,
            policy: None,
            determination: Some(demo_determination()),
            phi_examples: None,
        };
        (spec, manifest)
    }

    /// The audit's working folder, which a demo interrupted on other inputs may have left: the
    /// demo's own, so a rerun may remove it.
    pub fn audit_work_folder(paths: &DemoPaths) -> PathBuf {
        paths
            .audit
            .with_file_name(format!(".{}.partial", name_of(&paths.audit, "demo-audit")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_determination_parses_and_supplies_every_fact() {
        let (d, h) = demo_determination();
        assert!(h.path.starts_with("embedded:"));
        let file = FindingsFile {
            determination: Some(d),
            ..FindingsFile::new(crate::evidence::RunManifest {
                schema_version: crate::evidence::SCHEMA_VERSION,
                tool_version: "t".into(),
                git_commit: None,
                run_id: "r".into(),
                command: "demo".into(),
                seed: 7,
                plan: serde_json::Value::Null,
                inputs: Vec::new(),
                started_at: String::new(),
            })
        };
        assert_eq!(
            crate::report::determination::missing_facts(&file),
            Vec::<&str>::new()
        );
    }

    fn spec(out: &str, references: usize) -> DemoSpec {
        DemoSpec {
            out: out.into(),
            patients: 10,
            seed: 7,
            train_patients: 10,
            train_epochs: 1.0,
            train_references: references,
        }
    }

    #[test]
    fn every_folder_is_named_after_the_report_folder() {
        let p = spec("reports/demo", 4).paths();
        assert_eq!(p.data, Path::new("reports/demo-data"));
        assert_eq!(p.train_data, Path::new("reports/demo-data-train"));
        assert_eq!(p.models, Path::new("reports/demo-model"));
        assert_eq!(p.target, Path::new("reports/demo-model/target"));
        assert_eq!(p.audit, Path::new("reports/demo-audit"));
        assert_eq!(
            DemoSpec::audit_work_folder(&p),
            Path::new("reports/.demo-audit.partial")
        );
        let p = spec("x", 0).paths();
        assert_eq!(p.data, Path::new("./x-data"));
        assert_eq!(p.target, Path::new("x-model"), "no fleet: the target alone");
    }

    #[test]
    fn the_audit_records_its_probes_and_references() {
        let s = spec("r/demo", 2);
        let p = s.paths();
        let (audit, manifest) = s.audit(&p, Path::new("card.toml"));
        assert_eq!(manifest.run_id, "demo-audit-7");
        assert_eq!(audit.references, vec![PathBuf::from("r/demo-model")]);
        for kind in ["membership", "canary", "extraction", "inversion"] {
            assert!(manifest.plan.get(kind).is_some(), "{kind} recorded");
        }
    }
}
