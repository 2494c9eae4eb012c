//! `phiprobe audit`: observe once (every planned probe, in [`crate::probe::REGISTRY`] order,
//! each caching its observations), then analyse (pure), gate and write the run folder.
//!
//! The run is built in a hidden working folder `.<out>.partial/` beside `--out`. Every probe's
//! observations are written atomically as soon as they exist (the membership probe's per chunk
//! of records), so an interrupted audit resumes where it stopped; the folder is renamed to
//! `--out` only when the report is complete.
//!
//! Layout of a finished run: `findings.json`, `report.md`, `report.html`, `report.pdf`,
//! `manifest.json`, and `observations/` (one file or folder per probe: `audit.json` and one
//! folder of `part-NNNNN.parquet` chunks per model for membership, `canary.json`, …).
//! `phiprobe report RUN --reanalyze` re-derives every finding from `observations/` without a
//! model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::data::text::TextRecords;
use crate::evidence::{FileHash, FindingsFile, ModelCard, RunManifest};
use crate::fsx::{read_json, write_json};
use crate::integrity::folder::RunFolder;
use crate::model::{LanguageModel, LoadOptions};
use crate::probe::REGISTRY;
use crate::probe::api::{Loader, Observe, TrainingCell, Upstream};
use crate::{Error, Result};

pub use crate::probe::membership::fleet::{AUDIT_FORMAT, AuditRecord, CHUNK, ModelSpec};

/// What `audit` runs.
#[derive(Debug, Clone)]
pub struct AuditSpec {
    /// Dataset card (membership split required); needed by the probes that read records.
    pub data: Option<PathBuf>,
    /// Text column (default: the card's one text column).
    pub column: Option<String>,
    /// Target model.
    pub model: String,
    /// LoRA adapter for the target.
    pub adapter: Option<PathBuf>,
    /// Fleet folders (with `fleet.json`) or trained model folders (with `training.json`).
    pub references: Vec<PathBuf>,
    /// A `fleet.json`-format manifest of reference models and their training records.
    pub reference_manifest: Option<PathBuf>,
    /// A reference model without membership (e.g. the public base model).
    pub reference_model: Option<String>,
    /// The probes to run and their settings.
    pub probes: Plan,
    /// A `--canaries` file for a model phiprobe did not train.
    pub canaries: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Seed.
    pub seed: u64,
    /// Scoring threads (0: all cores).
    pub threads: usize,
    /// Padded tokens per scoring batch.
    pub batch_tokens: usize,
    /// The resolved plan, recorded in the manifest.
    pub plan: serde_json::Value,
    /// A release policy and its file: findings get verdicts before the report is written.
    pub policy: Option<(crate::gate::Policy, PathBuf)>,
    /// Facts of the Expert Determination (from a `determination.toml`) and the file's hash.
    pub determination: Option<(crate::evidence::Determination, FileHash)>,
    /// Write PHI examples (the values the model reproduced or inferred, the most exposed
    /// records' texts) into an encrypted bundle with this key.
    pub phi_examples: Option<crate::integrity::bundle::Key>,
}

impl AuditSpec {
    /// Checks the settings of every probe and the options, without reading any input.
    pub fn check(&self) -> Result<()> {
        crate::model::resolve_threads(self.threads)?;
        self.probes.validate()?;
        if self.probes.is_empty() {
            return Err(Error::Usage(
                "the plan has no probe to run; add a [[probe]] (kinds: `phiprobe probes`)".into(),
            ));
        }
        if self.batch_tokens == 0 {
            return Err(Error::Usage("--batch-tokens must be at least 1".into()));
        }
        Ok(())
    }

    /// Every file or folder the audit reads (its card and data, models, references, canaries),
    /// which its output may not overwrite.
    pub fn input_paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(d) = &self.data {
            match crate::data::DatasetCard::load(d) {
                Ok(card) => out.extend(card.files()),
                Err(_) => out.push(d.clone()),
            }
        }
        for m in [Some(&self.model), self.reference_model.as_ref()]
            .into_iter()
            .flatten()
        {
            out.push(PathBuf::from(m.strip_prefix("mock:").unwrap_or(m)));
        }
        out.extend(self.adapter.iter().cloned());
        out.extend(self.references.iter().cloned());
        out.extend(self.reference_manifest.iter().cloned());
        out.extend(self.canaries.iter().cloned());
        out
    }

    /// Whether a planned probe reads the dataset card's records.
    fn needs_data(&self) -> bool {
        self.probes.probes().any(|(p, _)| p.needs_data())
    }
}

/// Progress callback: (stage or model name, done, total).
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

fn werr(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// State that must match for a working folder to be resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ResumeKey {
    format: String,
    data: Vec<FileHash>,
    column: String,
    target: ModelSpec,
    probes: serde_json::Map<String, serde_json::Value>,
}

/// What an audit produced.
#[derive(Debug)]
pub struct AuditOutcome {
    /// The findings written.
    pub file: FindingsFile,
    /// Models scored in this invocation by the membership probe (the rest came from the
    /// cache).
    pub scored: Vec<String>,
    /// Findings that breached the policy.
    pub failed: usize,
}

/// The audit's inputs as the probes see them; `load`, `progress` and `upstream` are lent per
/// probe.
struct Inputs<'a> {
    spec: &'a AuditSpec,
    recs: Option<&'a TextRecords>,
    training: &'a TrainingCell,
    dir: &'a Path,
}

impl<'a> Inputs<'a> {
    fn observe<'b>(
        &'b self,
        load: &'b mut Loader<'b>,
        progress: &'b mut dyn FnMut(&str, usize, usize),
        upstream: &'b Upstream,
    ) -> Observe<'b>
    where
        'a: 'b,
    {
        let s = self.spec;
        Observe {
            records: self.recs,
            target: &s.model,
            adapter: s.adapter.as_deref(),
            card: s.data.as_deref(),
            references: &s.references,
            reference_manifest: s.reference_manifest.as_deref(),
            reference_model: s.reference_model.as_deref(),
            canaries: s.canaries.as_deref(),
            seed: s.seed,
            batch_tokens: s.batch_tokens,
            load,
            dir: self.dir,
            progress,
            upstream,
            training: self.training,
        }
    }
}

/// Runs an audit end to end; `manifest` is completed with the input hashes.
pub fn run(
    spec: &AuditSpec,
    folder: &RunFolder,
    manifest: RunManifest,
    progress: Progress<'_>,
) -> Result<AuditOutcome> {
    spec.check()?;
    if folder.path() != spec.out {
        return Err(Error::Usage(format!(
            "internal: the claimed folder {} is not the audit's --out {}",
            folder.path().display(),
            spec.out.display()
        )));
    }
    let recs = match (&spec.data, spec.needs_data()) {
        (Some(d), _) => Some(TextRecords::load(d, spec.column.as_deref())?),
        (None, true) => {
            return Err(Error::Usage(format!(
                "the {} probes need --data (a dataset card whose [membership] section marks members and non-members)",
                spec.probes
                    .probes()
                    .filter(|(p, _)| p.needs_data())
                    .map(|(p, _)| p.kind())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        (None, false) => None,
    };
    let data_hashes = match &recs {
        Some(r) => r
            .files
            .iter()
            .map(|p| crate::model::hash_file(p))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let training = TrainingCell::new(&spec.model);
    let work = folder.sibling("partial");
    let obs_dir = work.join("observations");
    let inputs = Inputs {
        spec,
        recs: recs.as_ref(),
        training: &training,
        dir: &obs_dir,
    };
    // Every probe checks its inputs before anything is written or loaded.
    {
        let mut no_load = |_: &str, _: bool| -> Result<Box<dyn LanguageModel>> {
            Err(Error::Compute(
                "internal: a model was loaded in preflight".into(),
            ))
        };
        let mut no_progress = |_: &str, _: usize, _: usize| {};
        let upstream = Upstream::default();
        let cx = inputs.observe(&mut no_load, &mut no_progress, &upstream);
        for p in REGISTRY {
            p.preflight(spec.probes.get_dyn(p.kind()), &cx)?;
        }
    }
    if work.exists() && !work.join("resume.json").is_file() {
        // A working folder that does not say what it holds cannot be trusted: start over.
        std::fs::remove_dir_all(&work).map_err(werr(&work))?;
    }
    let fresh = !work.exists();
    std::fs::create_dir_all(&obs_dir).map_err(werr(&obs_dir))?;
    let outcome = observe_and_finish(&inputs, folder, &work, manifest, data_hashes, progress);
    // A working folder this run created and that holds no finished observation is not worth
    // resuming: a refused model or a bad input leaves nothing behind.
    if outcome.is_err() && fresh && !holds_finished_observation(&work) {
        let _ = std::fs::remove_dir_all(&work);
    }
    outcome
}

/// Whether a working folder holds an observation worth resuming (a model scored to the end).
fn holds_finished_observation(work: &Path) -> bool {
    std::fs::read_dir(work.join("observations")).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.path().join("done.json").is_file() || e.path().is_file())
    })
}

/// Checks (or records) what the working folder holds: resuming it with other inputs would mix
/// observations of different audits.
fn check_resume(inputs: &Inputs<'_>, work: &Path, data: &[FileHash]) -> Result<()> {
    let spec = inputs.spec;
    let mut no_load = |_: &str, _: bool| -> Result<Box<dyn LanguageModel>> {
        Err(Error::Compute(
            "internal: a model was loaded for a resume key".into(),
        ))
    };
    let mut no_progress = |_: &str, _: usize, _: usize| {};
    let upstream = Upstream::default();
    let cx = inputs.observe(&mut no_load, &mut no_progress, &upstream);
    let mut probes = serde_json::Map::new();
    for (p, s) in spec.probes.probes() {
        if p.needs_data() && inputs.recs.is_none() {
            continue;
        }
        probes.insert(p.kind().to_owned(), p.resume_key(s, &cx)?);
    }
    probes.insert(
        "reference_model".into(),
        serde_json::json!(spec.reference_model),
    );
    let key = ResumeKey {
        format: AUDIT_FORMAT.into(),
        data: data.to_vec(),
        column: inputs.recs.map_or_else(String::new, |r| r.column.clone()),
        target: ModelSpec {
            name: "target".into(),
            role: "target".into(),
            spec: spec.model.clone(),
            adapter: spec.adapter.as_ref().map(|a| a.display().to_string()),
            membership: None,
        },
        probes,
    };
    let key_path = work.join("resume.json");
    if key_path.is_file() {
        // A state this release cannot read (an older release's) is as different as another
        // audit's: refused, never resumed.
        let old = read_json::<ResumeKey>(&key_path, "phiprobe audit resume state").ok();
        if old.as_ref() != Some(&key) {
            return Err(Error::Usage(format!(
                "{} holds an interrupted audit of different inputs (data, records, models or probe settings changed); delete it or choose another --out",
                work.display()
            )));
        }
        Ok(())
    } else {
        write_json(&key_path, &key)
    }
}

fn observe_and_finish(
    inputs: &Inputs<'_>,
    folder: &RunFolder,
    work: &Path,
    mut manifest: RunManifest,
    data_hashes: Vec<FileHash>,
    progress: Progress<'_>,
) -> Result<AuditOutcome> {
    let spec = inputs.spec;
    check_resume(inputs, work, &data_hashes)?;
    let mut file = FindingsFile::new(manifest.clone());
    let target_card: std::cell::RefCell<Option<ModelCard>> = std::cell::RefCell::new(None);
    let mut load = |m: &str, as_target: bool| -> Result<Box<dyn LanguageModel>> {
        let model = crate::model::load(
            m,
            &LoadOptions {
                adapter: if as_target {
                    spec.adapter.clone()
                } else {
                    None
                },
                threads: spec.threads,
            },
        )?;
        if as_target && target_card.borrow().is_none() {
            *target_card.borrow_mut() = Some(model.card().clone());
        }
        Ok(model)
    };
    let mut upstream = Upstream::default();
    let mut model_inputs = Vec::new();
    let mut scored = Vec::new();
    for (p, s) in spec.probes.probes() {
        if p.needs_data() && inputs.recs.is_none() {
            continue;
        }
        let obs = {
            let mut cx = inputs.observe(&mut load, &mut *progress, &upstream);
            p.run(s, inputs.dir, &mut cx, &mut file)?
        };
        if let Some(o) = obs {
            model_inputs.extend(p.inputs(o.as_ref()));
            if let Some(m) = o.downcast_ref::<crate::probe::membership::fleet::Observed>() {
                scored.clone_from(&m.scored);
            }
            upstream.insert(p.kind(), o);
        }
    }
    let mut hashes = data_hashes;
    if model_inputs.is_empty() {
        // No probe pinned the models it scored: pin the target (loading it if no probe did).
        if target_card.borrow().is_none() {
            load(&spec.model, true)?;
        }
        hashes.extend(
            target_card
                .borrow()
                .iter()
                .flat_map(|c| c.files.iter().cloned()),
        );
    } else {
        hashes.extend(model_inputs);
    }
    if let Some(f) = &spec.canaries {
        hashes.push(crate::model::hash_file(f)?);
    }
    // The dataset card and the plan file say what the numbers mean: pinned like the data.
    if let Some(card) = &spec.data {
        hashes.push(crate::model::hash_file(card)?);
    }
    if let Some(plan) = spec
        .plan
        .get("plan_file")
        .and_then(serde_json::Value::as_str)
    {
        hashes.push(crate::model::hash_file(Path::new(plan))?);
    }
    if let Some((d, h)) = &spec.determination {
        hashes.push(h.clone());
        file.determination = Some(d.clone());
    }
    let failed = match &spec.policy {
        Some((p, path)) => {
            let outcome = crate::gate::apply(p, path, &mut file.findings)?;
            let h = crate::model::hash_file(path)?;
            hashes.push(h.clone());
            file.gate = Some(outcome.record(h));
            outcome.failed
        }
        None => 0,
    };
    manifest.inputs = hashes;
    file.manifest = manifest;
    let mut extra = Vec::new();
    if let Some(key) = &spec.phi_examples {
        let examples = super::examples::collect(inputs.recs, inputs.dir, &file)?;
        let bytes = serde_json::to_vec_pretty(&examples).map_err(|e| Error::Report {
            path: spec.out.join(crate::integrity::bundle::BUNDLE),
            message: e.to_string(),
        })?;
        extra.push((
            crate::integrity::bundle::BUNDLE,
            crate::integrity::bundle::seal(key, &file.manifest.run_id, &bytes)?,
        ));
    }
    finish(work, folder, &file, &extra)?;
    Ok(AuditOutcome {
        file,
        scored,
        failed,
    })
}

/// The training record beside a model phiprobe trained (`training.json`), if there is one.
pub fn training_record(model: &str) -> Result<Option<crate::train::run::TrainingRecord>> {
    TrainingCell::new(model).get().map(|r| r.cloned())
}

/// Writes the report files into the working folder, renames it to `out`, then drops the resume
/// markers (after the rename, so a crash before it leaves a working folder that still says what
/// it holds).
fn finish(
    work: &Path,
    folder: &RunFolder,
    file: &FindingsFile,
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    for (name, bytes) in crate::report::render_all(file, &crate::probe::sections)? {
        crate::fsx::write_atomic(&work.join(name), &bytes)?;
    }
    for (name, bytes) in extra {
        crate::fsx::write_atomic(&work.join(name), bytes)?;
    }
    // Resume markers and temporary files of killed writers are not part of a finished run.
    let _ = std::fs::remove_file(work.join("resume.json"));
    if let Ok(entries) = std::fs::read_dir(work.join("observations")) {
        for e in entries.flatten() {
            for marker in ["done.json", "started.json"] {
                let _ = std::fs::remove_file(e.path().join(marker));
            }
            if let Ok(files) = std::fs::read_dir(e.path()) {
                for f in files.flatten() {
                    if f.file_name().to_string_lossy().ends_with(".tmp") {
                        let _ = std::fs::remove_file(f.path());
                    }
                }
            }
        }
    }
    crate::integrity::manifest::write(work, &file.manifest)?;
    folder.install(work)
}

/// Re-analyses a finished audit run from its observations and rewrites its findings and views
/// in place, each file atomically. `overrides` replaces the recorded settings of the probes it
/// plans (e.g. other membership attacks); every other probe keeps the settings it ran with.
pub fn reanalyze(run: &Path, overrides: &Plan) -> Result<FindingsFile> {
    let old = crate::report::read_findings(run)?;
    let obs_dir = run.join("observations");
    if !REGISTRY.iter().any(|p| p.observed(&obs_dir)) {
        return Err(Error::Usage(format!(
            "{}: no observations (observations/audit.json, canary.json, …); only `phiprobe audit` runs can be re-analysed",
            run.display()
        )));
    }
    let mut manifest = old.manifest.clone();
    let mut file = FindingsFile::new(manifest.clone());
    let mut upstream = Upstream::default();
    for p in REGISTRY {
        let recorded = p.recorded(&old).map_err(|message| Error::Parse {
            path: run.join(crate::report::FINDINGS),
            format: format!("{} settings", p.kind()),
            message,
        })?;
        let overridden = overrides.get_dyn(p.kind()).map(|s| s.clone_box());
        let given = overridden.is_some() || recorded.is_some();
        let s = overridden
            .or(recorded)
            .unwrap_or_else(|| p.default_settings());
        // The manifest records the settings the findings were analysed with.
        if p.observed(&obs_dir)
            && given
            && let Some(plan) = manifest.plan.as_object_mut()
            && plan.get(p.kind()) != Some(&s.to_json())
        {
            plan.insert(p.kind().into(), s.to_json());
        }
        p.reanalyse(
            s.as_ref(),
            &obs_dir,
            &old,
            &mut upstream,
            &mut file,
            manifest.seed,
        )?;
    }
    file.manifest = manifest;
    file.determination = old.determination.clone();
    // The run's gate is re-applied to the new findings when its policy file is still there,
    // unchanged; otherwise it no longer describes them and is dropped, loudly.
    if let Some(g) = &old.gate {
        let p = Path::new(&g.policy.path);
        match crate::model::hash_file(p) {
            Ok(h) if h.sha256 == g.policy.sha256 => {
                let policy = crate::gate::Policy::load(p)?;
                let outcome = crate::gate::apply(&policy, p, &mut file.findings)?;
                file.gate = Some(outcome.record(h));
            }
            _ => tracing::warn!(
                "the run's release gate ({}) was dropped: its policy file is missing or changed; gate the re-analysed run with `phiprobe gate`",
                g.policy.path
            ),
        }
    }
    crate::report::rewrite(run, &file, &crate::probe::sections)?;
    Ok(file)
}
