//! `phiprobe audit`: observe once (score every audit record under the target and each reference
//! model, cached as Parquet chunks), then analyse (pure) and write the run folder.
//!
//! The run is built in a hidden working folder `.<out>.partial/` beside `--out`. Every chunk of
//! observations is written atomically as soon as it is scored, so an interrupted audit resumes
//! where it stopped; the folder is renamed to `--out` only when the report is complete.
//!
//! Layout of a finished run: `findings.json`, `report.md`, `report.html`, `report.pdf`, `manifest.json`, and
//! `observations/` (`audit.json` with record ids, labels and the models; one folder of
//! `part-NNNNN.parquet` chunks per model). `phiprobe report RUN --reanalyze` re-derives every
//! finding from `observations/` without a model.

use crate::integrity::folder::RunFolder;
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::observations::{read_chunk, write_chunk};
use crate::data::text::TextRecords;
use crate::evidence::{FileHash, FindingsFile, ModelCard, RunManifest};
use crate::model::{LanguageModel, LoadOptions};
use crate::probe::membership::{self, ModelObservations, Observations, Settings, TokenRows, Total};
use crate::train::run::Fleet;
use crate::{Error, Result};

/// Records per observation chunk (the unit of resumption).
pub const CHUNK: usize = 256;
/// Format tag of `observations/audit.json`.
pub const AUDIT_FORMAT: &str = "phiprobe-audit-1";

/// One model to observe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Unique name (`target`, `ref-00`, …); the observation folder's name.
    pub name: String,
    /// `target`, `reference` (membership known) or `reference-model` (a base model).
    pub role: String,
    /// What to load (folder, GGUF file or `mock:` fixture).
    pub spec: String,
    /// A LoRA adapter merged in (the target's `--adapter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Over the audit records: '1' trained on, '0' not (references only).
    pub membership: Option<String>,
}

/// What `audit` runs.
#[derive(Debug, Clone)]
pub struct AuditSpec {
    /// Dataset card (membership split required); needed by the membership probe.
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
    /// Membership settings (None: no membership probe).
    pub settings: Option<Settings>,
    /// Canary settings (None: no canary probe).
    pub canary: Option<crate::probe::canary::Settings>,
    /// A `--canaries` file for a model phiprobe did not train.
    pub canaries: Option<PathBuf>,
    /// Extraction settings (None: no extraction probe).
    pub extraction: Option<crate::probe::extraction::Settings>,
    /// Inversion settings (None: no inversion probe).
    pub inversion: Option<crate::probe::inversion::Settings>,
    /// DP-audit settings (None: no DP audit).
    pub dp_audit: Option<crate::probe::dp_audit::Settings>,
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
        if let Some(s) = &self.settings {
            s.validate()
                .map_err(|m| Error::Usage(format!("plan: membership: {m}")))?;
        }
        if let Some(s) = &self.canary {
            s.validate()
                .map_err(|m| Error::Usage(format!("plan: canary: {m}")))?;
        }
        if let Some(s) = &self.extraction {
            s.validate()
                .map_err(|m| Error::Usage(format!("plan: extraction: {m}")))?;
        }
        if let Some(s) = &self.inversion {
            s.validate()
                .map_err(|m| Error::Usage(format!("plan: inversion: {m}")))?;
        }
        if let Some(s) = &self.dp_audit {
            s.validate()
                .map_err(|m| Error::Usage(format!("plan: dp_audit: {m}")))?;
        }
        if self.settings.is_none()
            && self.canary.is_none()
            && self.extraction.is_none()
            && self.inversion.is_none()
            && self.dp_audit.is_none()
        {
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
}

/// `observations/audit.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// [`AUDIT_FORMAT`].
    pub format: String,
    /// Audit record ids (records of the card with known membership).
    pub records: Vec<String>,
    /// Target membership, one per record.
    pub member: Vec<bool>,
    /// UTF-8 bytes of each text.
    pub text_bytes: Vec<u64>,
    /// zlib-compressed bytes of each text.
    pub zlib_bytes: Vec<u64>,
    /// Models observed, target first.
    pub models: Vec<ObservedModel>,
    /// Distribution checks on data features that are not stored here (dates: PHI), made when
    /// the audit read the data.
    #[serde(default)]
    pub data_shift: Vec<crate::evidence::ShiftCheck>,
}

/// A model whose observations are cached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservedModel {
    /// The spec.
    #[serde(flatten)]
    pub spec: ModelSpec,
    /// Its card (file hashes).
    pub card: ModelCard,
    /// SHA-256 over the token ids of every audit text.
    pub tokenization: String,
    /// Texts cut to the model's context length.
    pub truncated: usize,
}

/// Progress callback: (model name, records done, records total).
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

fn werr(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, format: &str) -> Result<T> {
    let text = crate::fsx::read_text(path, crate::fsx::input::data_limit())?;
    serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.to_owned(),
        format: format.to_owned(),
        message: crate::redact::json(&e),
    })
}

/// Writes `v` as pretty JSON, atomically.
pub(crate) fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Compute(e.to_string()))?;
    crate::fsx::write_atomic(path, s.as_bytes())
}

/// zlib-compressed length (zlib format, level 6 — CPython's default level; miniz_oxide's stream
/// can differ from zlib's by a few bytes).
pub fn zlib_len(text: &str) -> u64 {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(text.as_bytes()).expect("writing to memory");
    e.finish().expect("writing to memory").len() as u64
}

/// Resolves the reference models: fleet folders, trained folders, a manifest.
fn reference_specs(spec: &AuditSpec, ids: &[String]) -> Result<Vec<ModelSpec>> {
    let mut out = Vec::new();
    let fleet_refs = |fleet: &Fleet, base: &Path, out: &mut Vec<ModelSpec>| {
        let pos: HashMap<&str, usize> = fleet
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.as_str(), i))
            .collect();
        for m in fleet.models.iter().filter(|m| m.role != "target") {
            let bits: Vec<u8> = m.membership.bytes().collect();
            // Records outside the fleet's pool were never trained on by its models.
            let membership: String = ids
                .iter()
                .map(|id| match pos.get(id.as_str()) {
                    Some(&i) if bits.get(i) == Some(&b'1') => '1',
                    _ => '0',
                })
                .collect();
            out.push(ModelSpec {
                name: m.name.clone(),
                role: "reference".into(),
                spec: base.join(&m.path).display().to_string(),
                adapter: None,
                membership: Some(membership),
            });
        }
    };
    for r in &spec.references {
        let fleet_json = r.join("fleet.json");
        if fleet_json.is_file() {
            let fleet: Fleet = read_json(&fleet_json, crate::train::run::FLEET_FORMAT)?;
            fleet_refs(&fleet, r, &mut out);
        } else if r.join("training.json").is_file() {
            let tr: crate::train::run::TrainingRecord =
                read_json(&r.join("training.json"), crate::train::run::TRAINING_FORMAT)?;
            let trained: HashSet<&str> = tr.membership.iter().map(String::as_str).collect();
            out.push(ModelSpec {
                name: r
                    .file_name()
                    .map_or_else(|| "reference".into(), |n| n.to_string_lossy().into_owned()),
                role: "reference".into(),
                spec: r.display().to_string(),
                adapter: None,
                membership: Some(
                    ids.iter()
                        .map(|id| {
                            if trained.contains(id.as_str()) {
                                '1'
                            } else {
                                '0'
                            }
                        })
                        .collect(),
                ),
            });
        } else {
            return Err(Error::Usage(format!(
                "{}: --references takes a fleet folder (with fleet.json, from `phiprobe train --references K` or `phiprobe merge`) or a model folder trained by phiprobe (with training.json); for other models use --reference-manifest",
                r.display()
            )));
        }
    }
    if let Some(m) = &spec.reference_manifest {
        let fleet: Fleet = read_json(m, crate::train::run::FLEET_FORMAT)?;
        let base = m.parent().unwrap_or(Path::new("."));
        fleet_refs(&fleet, base, &mut out);
    }
    // Unique names.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in &mut out {
        let n = seen.entry(s.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            s.name = format!("{}-{}", s.name, n);
        }
    }
    Ok(out)
}

/// State that must match for a working folder to be resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ResumeKey {
    format: String,
    data: Vec<FileHash>,
    column: String,
    records: String,
    models: Vec<ModelSpec>,
    /// Settings and inputs of the probes other than membership.
    #[serde(default)]
    probes: serde_json::Value,
}

fn digest_ids(ids: &[String]) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Scores one model over the audit texts into `dir`. Chunks already there are reused only when
/// `started.json` shows they were scored by a model with the same files (hashes) as `model`.
#[allow(clippy::too_many_arguments)]
fn observe_model(
    m: &ModelSpec,
    model: &dyn LanguageModel,
    keep_tokens: bool,
    ids: &[String],
    texts: &[&str],
    dir: &Path,
    batch_tokens: usize,
    progress: Progress<'_>,
) -> Result<(String, usize)> {
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    let started = dir.join("started.json");
    let same_model = read_json::<Vec<FileHash>>(&started, "observation state")
        .is_ok_and(|files| files == model.card().files);
    if !same_model {
        // Whatever is there was scored by another model (or nothing says by which): start over.
        std::fs::remove_dir_all(dir).map_err(werr(dir))?;
        std::fs::create_dir_all(dir).map_err(werr(dir))?;
        write_json(&started, &model.card().files)?;
    }
    let ctx = model.card().context_length.max(2);
    let mut tok_hash = Sha256::new();
    let mut truncated = 0usize;
    let chunks = ids.len().div_ceil(CHUNK);
    for c in 0..chunks {
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(ids.len()));
        let mut enc: Vec<Vec<u32>> = texts[lo..hi]
            .iter()
            .map(|t| model.encode(t))
            .collect::<Result<_>>()?;
        for e in &mut enc {
            if e.len() > ctx {
                truncated += 1;
                e.truncate(ctx);
            }
            // What is scored: equal hashes ⇔ the same token spans under every model.
            for t in e.iter() {
                tok_hash.update(t.to_le_bytes());
            }
            tok_hash.update(u32::MAX.to_le_bytes());
        }
        let path = dir.join(format!("part-{c:05}.parquet"));
        if path.is_file()
            && let Ok((got, _, _)) = read_chunk(&path)
            && got.as_slice() == &ids[lo..hi]
        {
            progress(&m.name, hi, ids.len());
            continue;
        }
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| (enc[i].len(), i));
        let mut rows = vec![TokenRows::default(); enc.len()];
        let mut totals = vec![Total::default(); enc.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() && enc[order[end]].len() * (end + 1 - start) <= batch_tokens {
                end += 1;
            }
            // Texts too short to score (fewer than two tokens) keep empty rows.
            let scorable: Vec<usize> = order[start..end]
                .iter()
                .copied()
                .filter(|&i| enc[i].len() >= 2)
                .collect();
            if !scorable.is_empty() {
                let b: Vec<Vec<u32>> = scorable.iter().map(|&i| enc[i].clone()).collect();
                for (&i, sc) in scorable.iter().zip(model.score(&b)?) {
                    let lp: Vec<f32> = sc.scores.iter().map(|t| t.logprob).collect();
                    let mean: Vec<f32> = sc.scores.iter().map(|t| t.mean).collect();
                    let var: Vec<f32> = sc.scores.iter().map(|t| t.var).collect();
                    let r = TokenRows::from_scores(&lp, &mean, &var);
                    totals[i] = Total::of(&r);
                    if keep_tokens {
                        rows[i] = r;
                    }
                }
            }
            progress(&m.name, lo + end, ids.len());
            start = end;
        }
        let rows: &[TokenRows] = if keep_tokens { &rows } else { &[] };
        write_chunk(&path, &ids[lo..hi], &totals, rows)?;
    }
    Ok((hex(&tok_hash.finalize()), truncated))
}

/// Reads every chunk of one model's observations, in order, checking the record ids: the
/// per-record totals, and the per-token rows when `keep_tokens` (the target's).
pub fn read_model(
    dir: &Path,
    ids: &[String],
    keep_tokens: bool,
) -> Result<(Vec<Total>, Vec<TokenRows>)> {
    let mut totals = Vec::with_capacity(ids.len());
    let mut rows = Vec::new();
    for c in 0..ids.len().div_ceil(CHUNK) {
        let path = dir.join(format!("part-{c:05}.parquet"));
        let (got, t, r) = read_chunk(&path)?;
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(ids.len()));
        if got.as_slice() != &ids[lo..hi] {
            return Err(Error::Parse {
                path,
                format: "phiprobe observations".into(),
                message: "record ids do not match observations/audit.json".into(),
            });
        }
        totals.extend(t);
        if keep_tokens {
            rows.extend(r);
        }
    }
    Ok((totals, rows))
}

/// Rebuilds the analysis input from a run folder's `observations/`.
pub fn load_observations(obs_dir: &Path) -> Result<(AuditRecord, Observations)> {
    let rec: AuditRecord = read_json(&obs_dir.join("audit.json"), AUDIT_FORMAT)?;
    if rec.format != AUDIT_FORMAT {
        return Err(Error::Parse {
            path: obs_dir.join("audit.json"),
            format: AUDIT_FORMAT.into(),
            message: format!("format '{}' is not {AUDIT_FORMAT}", rec.format),
        });
    }
    let n = rec.records.len();
    if [rec.member.len(), rec.text_bytes.len(), rec.zlib_bytes.len()]
        .iter()
        .any(|&l| l != n)
    {
        return Err(Error::Parse {
            path: obs_dir.join("audit.json"),
            format: AUDIT_FORMAT.into(),
            message: "records, member, text_bytes and zlib_bytes differ in length".into(),
        });
    }
    let mut target = None;
    let mut target_tokens = Vec::new();
    let mut references = Vec::new();
    let mut reference_model = None;
    for m in &rec.models {
        let member = match &m.spec.membership {
            Some(bits) if bits.len() == n => Some(bits.bytes().map(|b| b == b'1').collect()),
            Some(_) => {
                return Err(Error::Parse {
                    path: obs_dir.join("audit.json"),
                    format: AUDIT_FORMAT.into(),
                    message: format!("membership of '{}' has the wrong length", m.spec.name),
                });
            }
            None => None,
        };
        let is_target = m.spec.role == "target";
        let (totals, rows) = read_model(&obs_dir.join(&m.spec.name), &rec.records, is_target)?;
        let mo = ModelObservations {
            name: m.spec.name.clone(),
            member,
            tokenization: m.tokenization.clone(),
            totals,
        };
        match m.spec.role.as_str() {
            "target" => {
                target = Some(mo);
                target_tokens = rows;
            }
            "reference-model" => reference_model = Some(mo),
            _ => references.push(mo),
        }
    }
    let target = target.ok_or_else(|| Error::Parse {
        path: obs_dir.join("audit.json"),
        format: AUDIT_FORMAT.into(),
        message: "no target model".into(),
    })?;
    let obs = Observations {
        records: rec.records.clone(),
        member: rec.member.clone(),
        text_bytes: rec.text_bytes.clone(),
        zlib_bytes: rec.zlib_bytes.clone(),
        target,
        target_tokens,
        references,
        reference_model,
    };
    Ok((rec, obs))
}

fn target_label(rec: &AuditRecord) -> String {
    let t = &rec.models[0];
    let weights = t
        .card
        .files
        .iter()
        .find(|f| f.path.ends_with(".safetensors") || f.path.ends_with(".gguf"))
        .map_or(String::new(), |f| {
            format!(", weights sha256 {}…", &f.sha256[..12.min(f.sha256.len())])
        });
    format!(
        "{} ({} {}{weights})",
        t.spec.spec, t.card.architecture, t.card.format
    )
}

/// Membership findings and detail from cached observations.
pub fn analyze_membership(
    rec: &AuditRecord,
    obs: &Observations,
    settings: &Settings,
    seed: u64,
) -> Result<(
    Vec<crate::evidence::Finding>,
    crate::evidence::MembershipDetail,
)> {
    let (mut findings, detail) =
        membership::analyze(obs, settings, seed, &rec.data_shift, &target_label(rec))
            .map_err(Error::Usage)?;
    let truncated: usize = rec.models.iter().map(|m| m.truncated).max().unwrap_or(0);
    if truncated > 0 {
        for f in &mut findings {
            f.caveats.push(format!(
                "{truncated} text(s) were longer than a model's context and were scored on their first tokens only"
            ));
        }
    }
    Ok((findings, detail))
}

/// Where a probe's canaries come from: a `--canaries` file, or the training record of a model
/// phiprobe trained (`training.json` beside the weights).
pub fn canary_source(
    model: &str,
    canaries: Option<&Path>,
    references: usize,
    seed: u64,
) -> Result<Option<crate::probe::canary::CanarySet>> {
    if let Some(f) = canaries {
        let (specs, groups) = crate::probe::canary::from_file(f, references, seed)?;
        return Ok(Some((format!("--canaries {}", f.display()), specs, groups)));
    }
    let tr = Path::new(model).join("training.json");
    let Some(rec) = training_record(model)? else {
        return Ok(None);
    };
    Ok(rec.canaries.as_ref().map(|p| {
        let (specs, groups) = crate::probe::canary::from_planted(p);
        (format!("training record {}", tr.display()), specs, groups)
    }))
}

/// What an audit produced.
#[derive(Debug)]
pub struct AuditOutcome {
    /// The findings written.
    pub file: FindingsFile,
    /// Models observed in this invocation (the rest came from the cache).
    pub scored: Vec<String>,
    /// Findings that breached the policy.
    pub failed: usize,
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
    let needs_data =
        spec.settings.is_some() || spec.extraction.is_some() || spec.inversion.is_some();
    let recs = match (&spec.data, needs_data) {
        (Some(d), _) => Some(TextRecords::load(d, spec.column.as_deref())?),
        (None, true) => {
            return Err(Error::Usage(
                "the membership, extraction and inversion probes need --data (a dataset card whose [membership] section marks members and non-members)".into(),
            ));
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
    let canaries = match &spec.canary {
        Some(cs) => canary_source(
            &spec.model,
            spec.canaries.as_deref(),
            cs.references,
            spec.seed,
        )?,
        None => None,
    };
    if spec.canaries.is_some() && spec.canary.is_none() {
        return Err(Error::Usage(
            "--canaries was given but the plan has no canary probe; add [[probe]] kind = \"canary\"".into(),
        ));
    }
    let work = folder.sibling("partial");
    let obs_dir = work.join("observations");
    if work.exists() && !work.join("resume.json").is_file() {
        // A working folder that does not say what it holds cannot be trusted: start over.
        std::fs::remove_dir_all(&work).map_err(werr(&work))?;
    }
    let fresh = !work.exists();
    std::fs::create_dir_all(&obs_dir).map_err(werr(&obs_dir))?;
    let outcome = observe_and_finish(
        spec,
        folder,
        &work,
        manifest,
        canaries,
        recs,
        data_hashes,
        progress,
    );
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

#[allow(clippy::too_many_arguments)]
fn observe_and_finish(
    spec: &AuditSpec,
    folder: &RunFolder,
    work: &Path,
    mut manifest: RunManifest,
    canaries: Option<crate::probe::canary::CanarySet>,
    recs: Option<TextRecords>,
    data_hashes: Vec<FileHash>,
    progress: Progress<'_>,
) -> Result<AuditOutcome> {
    let obs_dir = work.join("observations");
    let target_spec = ModelSpec {
        name: "target".into(),
        role: "target".into(),
        spec: spec.model.clone(),
        adapter: spec.adapter.as_ref().map(|a| a.display().to_string()),
        membership: None,
    };
    let mut file = FindingsFile::new(manifest.clone());
    let mut inputs = data_hashes.clone();
    let mut scored = Vec::new();
    let mut key = ResumeKey {
        format: AUDIT_FORMAT.into(),
        data: data_hashes.clone(),
        column: recs.as_ref().map_or_else(String::new, |r| r.column.clone()),
        records: String::new(),
        models: vec![target_spec.clone()],
        probes: serde_json::json!({
            "extraction": spec.extraction,
            "inversion": spec.inversion,
            "reference_model": spec.reference_model,
            "canary": spec.canary,
            "dp_audit": spec.dp_audit,
            "training_record": spec.dp_audit.and_then(|_| {
                crate::model::hash_file(&Path::new(&spec.model).join("training.json"))
                    .ok()
                    .map(|h| h.sha256)
            }),
            "canaries": canaries.as_ref().map(|(src, specs, groups)| {
                serde_json::json!({"source": src, "digest": digest_json(&(specs, groups))})
            }),
        }),
    };
    // The membership probe decides the models and records of the key.
    let membership_input = match (&spec.settings, &recs) {
        (Some(_), Some(recs)) => {
            let rows: Vec<usize> = (0..recs.len())
                .filter(|&r| recs.member[r].is_some())
                .collect();
            if rows.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: no record has a known membership; the card's [membership] section must mark members and non-members",
                    spec.data.as_deref().unwrap_or(Path::new("data")).display()
                )));
            }
            let ids: Vec<String> = rows.iter().map(|&r| recs.ids[r].clone()).collect();
            {
                let mut seen = HashSet::new();
                if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
                    return Err(Error::Usage(format!(
                        "{}: a record id occurs twice among the audit records (records {} and {}); audit records need unique ids",
                        spec.data.as_deref().unwrap_or(Path::new("data")).display(),
                        ids.iter().position(|i| i == dup).map_or(0, |p| rows[p] + 1),
                        ids.iter()
                            .rposition(|i| i == dup)
                            .map_or(0, |p| rows[p] + 1)
                    )));
                }
            }
            let mut models = vec![target_spec.clone()];
            models.extend(reference_specs(spec, &ids)?);
            if let Some(r) = &spec.reference_model {
                models.push(ModelSpec {
                    name: "reference-model".into(),
                    role: "reference-model".into(),
                    spec: r.clone(),
                    adapter: None,
                    membership: None,
                });
            }
            key.records = digest_ids(&ids);
            key.models = models.clone();
            Some((rows, ids, models))
        }
        _ => None,
    };
    let key_path = work.join("resume.json");
    if key_path.is_file() {
        let old: ResumeKey = read_json(&key_path, "phiprobe audit resume state")?;
        if old != key {
            return Err(Error::Usage(format!(
                "{} holds an interrupted audit of different inputs (data, records, models or probe settings changed); delete it or choose another --out",
                work.display()
            )));
        }
    } else {
        write_json(&key_path, &key)?;
    }
    let mut target_card: Option<ModelCard> = None;
    if let (Some(settings), Some(recs), Some((rows, ids, models))) =
        (&spec.settings, &recs, membership_input)
    {
        let texts: Vec<&str> = rows.iter().map(|&r| recs.texts[r].as_str()).collect();
        let member: Vec<bool> = rows.iter().map(|&r| recs.member[r] == Some(true)).collect();
        let mut observed = Vec::new();
        for m in &models {
            let dir = obs_dir.join(&m.name);
            let done = dir.join("done.json");
            let opts = LoadOptions {
                adapter: if m.role == "target" {
                    spec.adapter.clone()
                } else {
                    None
                },
                threads: spec.threads,
            };
            if done.is_file()
                && let Ok(o) = read_json::<ObservedModel>(&done, "observation state")
                && o.spec == *m
                // The model files must still be the ones observed.
                && o.card.files.iter().all(|f| {
                    crate::model::hash_file(Path::new(&f.path)).is_ok_and(|h| h.sha256 == f.sha256)
                })
            {
                progress(&m.name, ids.len(), ids.len());
                observed.push(o);
                continue;
            }
            let model = crate::model::load(&m.spec, &opts)?;
            let (tokenization, truncated) = observe_model(
                m,
                model.as_ref(),
                m.role == "target",
                &ids,
                &texts,
                &dir,
                spec.batch_tokens,
                progress,
            )?;
            let o = ObservedModel {
                spec: m.clone(),
                card: model.card().clone(),
                tokenization,
                truncated,
            };
            write_json(&done, &o)?;
            observed.push(o);
            scored.push(m.name.clone());
        }
        // A reference that is the target itself would hand LiRA and RMIA the target's own signal.
        let weights = |o: &ObservedModel| -> Vec<String> {
            let mut w: Vec<String> = o
                .card
                .files
                .iter()
                .filter(|f| !f.path.ends_with(".json"))
                .map(|f| f.sha256.clone())
                .collect();
            w.sort();
            w
        };
        let target_weights = weights(&observed[0]);
        if let Some(twin) = observed[1..].iter().find(|o| {
            o.spec.adapter.is_none() && spec.adapter.is_none() && weights(o) == target_weights
        }) {
            return Err(Error::Usage(format!(
                "reference model '{}' ({}) has the same weights as the target; a reference model must be a different model",
                twin.spec.name, twin.spec.spec
            )));
        }
        target_card = Some(observed[0].card.clone());
        let rec = AuditRecord {
            format: AUDIT_FORMAT.into(),
            records: ids.clone(),
            member: member.clone(),
            text_bytes: texts.iter().map(|t| t.len() as u64).collect(),
            zlib_bytes: texts.iter().map(|t| zlib_len(t)).collect(),
            models: observed,
            data_shift: recs
                .dates
                .iter()
                .map(|(name, days)| {
                    let v: Vec<f64> = rows
                        .iter()
                        .map(|&r| days[r].map_or(f64::NAN, |d| d as f64))
                        .collect();
                    membership::shift_check(name, &v, &member, settings, spec.seed)
                })
                .chain((recs.files.len() > 1).then(|| {
                    let files: Vec<u32> = rows.iter().map(|&r| recs.file_of[r]).collect();
                    membership::categorical_shift_check(
                        "source_file",
                        &files,
                        &member,
                        settings,
                        spec.seed,
                    )
                }))
                .collect(),
        };
        write_json(&obs_dir.join("audit.json"), &rec)?;
        let (rec, obs) = load_observations(&obs_dir)?;
        for m in &rec.models {
            inputs.extend(m.card.files.iter().cloned());
        }
        let (findings, detail) = analyze_membership(&rec, &obs, settings, spec.seed)?;
        file.findings.extend(findings);
        file.membership = Some(detail);
    }
    // Probes that need the target model loaded.
    if let Some(cs) = &spec.canary {
        let path = obs_dir.join(CANARY_FILE);
        let obs = match &canaries {
            None => None,
            Some(_) if path.is_file() => Some(read_json::<crate::probe::canary::Observations>(
                &path,
                "canary observations",
            )?),
            Some((source, specs, groups)) => {
                let model = load_target(spec, &mut target_card)?;
                let mut p = |done: usize, total: usize| progress("canaries", done, total);
                let o = crate::probe::canary::observe(
                    model.as_ref(),
                    specs,
                    groups,
                    source,
                    cs,
                    spec.batch_tokens,
                    &mut p,
                )?;
                write_json(&path, &o)?;
                Some(o)
            }
        };
        match obs {
            Some(o) => {
                let (findings, detail) = crate::probe::canary::analyze(&o);
                file.findings.extend(findings);
                file.canary = Some(detail);
            }
            None => file.findings.push(
                crate::evidence::Finding::new("canary", "canary.exposure", None).with_caveat(
                    "not measured: the target has no canaries (it was not trained by phiprobe with a canary plan, and no --canaries file was given)",
                ),
            ),
        }
    }
    let mut extraction_obs: Option<crate::probe::extraction::Observations> = None;
    if let (Some(es), Some(recs)) = (&spec.extraction, &recs) {
        let path = obs_dir.join(EXTRACTION_FILE);
        let obs = if path.is_file() {
            read_json::<crate::probe::extraction::Observations>(&path, "extraction observations")?
        } else {
            let model = load_target(spec, &mut target_card)?;
            let reference = match &spec.reference_model {
                Some(r) => Some(crate::model::load(
                    r,
                    &LoadOptions {
                        adapter: None,
                        threads: spec.threads,
                    },
                )?),
                None => None,
            };
            let mut p = |stage: &str, done: usize, total: usize| progress(stage, done, total);
            let o = crate::probe::extraction::observe(
                model.as_ref(),
                spec.reference_model.as_deref().zip(reference.as_deref()),
                recs,
                es,
                spec.seed,
                &mut p,
            )?;
            write_json(&path, &o)?;
            o
        };
        let (findings, detail) = crate::probe::extraction::analyze(&obs);
        file.findings.extend(findings);
        file.extraction = Some(detail);
        extraction_obs = Some(obs);
    }
    let inversion_runs = match (&spec.inversion, &recs) {
        (Some(is), Some(recs)) if is.fields.is_empty() => {
            let none = recs
                .columns_with_role(crate::data::Role::Sensitive)?
                .is_empty();
            if none {
                file.findings.push(
                    crate::evidence::Finding::new("inversion", "inference.residual_risk", None)
                        .with_caveat(
                            "not measured: the card declares no sensitive column; list the fields to infer in the plan's inversion probe (fields = [\"diagnosis\", …])",
                        ),
                );
            }
            !none
        }
        (Some(_), Some(_)) => true,
        _ => false,
    };
    if let (Some(is), Some(recs), true) = (&spec.inversion, &recs, inversion_runs) {
        let path = obs_dir.join(INVERSION_FILE);
        let obs = if path.is_file() {
            read_json::<crate::probe::inversion::Observations>(&path, "inversion observations")?
        } else {
            let model = load_target(spec, &mut target_card)?;
            let extracted = extracted_patients(extraction_obs.as_ref(), recs);
            let mut p = |stage: &str, done: usize, total: usize| progress(stage, done, total);
            let o = crate::probe::inversion::observe(
                model.as_ref(),
                recs,
                is,
                spec.seed,
                &extracted,
                &mut p,
            )?;
            write_json(&path, &o)?;
            o
        };
        let (findings, detail) =
            crate::probe::inversion::analyze(&obs, membership_epsilon(&file.findings));
        file.findings.extend(findings);
        file.inversion = Some(detail);
    }
    if let Some(ds) = &spec.dp_audit {
        let rec = training_record(&spec.model)?;
        let text = rec
            .as_ref()
            .filter(|r| r.config.dp.is_some())
            .and_then(|r| r.audit.as_ref())
            .and_then(|a| a.text.as_ref());
        let obs = match text {
            None => None,
            Some(t) => {
                let path = obs_dir.join(DP_AUDIT_FILE);
                if path.is_file() {
                    Some(read_json::<crate::probe::dp_audit::Observations>(
                        &path,
                        "DP-audit observations",
                    )?)
                } else {
                    let model = load_target(spec, &mut target_card)?;
                    progress("dp-audit canaries", 0, t.canaries.len());
                    let o = crate::probe::dp_audit::observe(model.as_ref(), t, spec.batch_tokens)?;
                    progress("dp-audit canaries", t.canaries.len(), t.canaries.len());
                    write_json(&path, &o)?;
                    Some(o)
                }
            }
        };
        let (findings, detail) = crate::probe::dp_audit::analyze(rec.as_ref(), obs.as_ref(), ds);
        file.findings.extend(findings);
        file.dp = detail;
    }
    if target_card.is_none() {
        load_target(spec, &mut target_card)?;
    }
    if file.membership.is_none()
        && let Some(c) = &target_card
    {
        inputs.extend(c.files.iter().cloned());
    }
    if let Some(f) = &spec.canaries {
        inputs.push(crate::model::hash_file(f)?);
    }
    // The dataset card and the plan file say what the numbers mean: pinned like the data.
    if let Some(card) = &spec.data {
        inputs.push(crate::model::hash_file(card)?);
    }
    if let Some(plan) = spec
        .plan
        .get("plan_file")
        .and_then(serde_json::Value::as_str)
    {
        inputs.push(crate::model::hash_file(Path::new(plan))?);
    }
    if let Some((d, h)) = &spec.determination {
        inputs.push(h.clone());
        file.determination = Some(d.clone());
    }
    let failed = match &spec.policy {
        Some((p, path)) => {
            let outcome = crate::gate::apply(p, path, &mut file.findings)?;
            let h = crate::model::hash_file(path)?;
            inputs.push(h.clone());
            file.gate = Some(outcome.record(h));
            outcome.failed
        }
        None => 0,
    };
    manifest.inputs = inputs;
    file.manifest = manifest;
    let mut extra = Vec::new();
    if let Some(key) = &spec.phi_examples {
        let examples = super::examples::collect(recs.as_ref(), &obs_dir, &file)?;
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

/// Loads the audit's target (with its adapter) and records its card the first time.
fn load_target(spec: &AuditSpec, card: &mut Option<ModelCard>) -> Result<Box<dyn LanguageModel>> {
    let model = crate::model::load(
        &spec.model,
        &LoadOptions {
            adapter: spec.adapter.clone(),
            threads: spec.threads,
        },
    )?;
    if card.is_none() {
        *card = Some(model.card().clone());
    }
    Ok(model)
}

/// The training record beside a model phiprobe trained (`training.json`), if there is one.
pub fn training_record(model: &str) -> Result<Option<crate::train::run::TrainingRecord>> {
    let tr = Path::new(model).join("training.json");
    if !tr.is_file() {
        return Ok(None);
    }
    read_json(&tr, crate::train::run::TRAINING_FORMAT).map(Some)
}

/// Canary observations in a run folder.
pub const CANARY_FILE: &str = "canary.json";
/// DP-audit observations (text-canary scores) in a run folder.
pub const DP_AUDIT_FILE: &str = "dp_audit.json";
/// Extraction observations in a run folder.
pub const EXTRACTION_FILE: &str = "extraction.json";
/// Inversion observations in a run folder.
pub const INVERSION_FILE: &str = "inversion.json";

/// Patients one of whose direct identifiers (not a date or a place) an extraction attempt
/// reproduced exactly.
fn extracted_patients(
    obs: Option<&crate::probe::extraction::Observations>,
    recs: &TextRecords,
) -> HashSet<String> {
    use crate::phi::SafeHarbor as S;
    let Some(o) = obs else {
        return HashSet::new();
    };
    let index = recs.index();
    o.attempts
        .iter()
        .filter(|a| {
            a.fields
                .iter()
                .any(|f| f.exact && !matches!(f.category, S::Date | S::Geographic))
        })
        .filter_map(|a| index.get(o.records.get(a.record)?.as_str()))
        .map(|&r| recs.patients[r].clone())
        .collect()
}

/// The membership probe's largest finite ε lower bound, its attack, how many attacks' bounds
/// it was chosen from and their confidence level.
fn membership_epsilon(
    findings: &[crate::evidence::Finding],
) -> Option<crate::probe::inversion::EpsilonBound> {
    let bounds: Vec<(String, f64, f64)> = findings
        .iter()
        .filter(|f| f.probe == "membership" && f.metric == "dp.epsilon_lb")
        .filter_map(|f| {
            let e = f.value.filter(|v| v.is_finite())?;
            let attack = f
                .params
                .get("attack")
                .and_then(|a| a.as_str())
                .unwrap_or("membership")
                .to_owned();
            let confidence = f
                .params
                .get("confidence")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.95);
            Some((attack, e, confidence))
        })
        .collect();
    let attacks = bounds.len() as u64;
    bounds
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(
            |(attack, epsilon, confidence)| crate::probe::inversion::EpsilonBound {
                attack,
                epsilon,
                attacks,
                confidence,
            },
        )
}

fn digest_json(v: &impl Serialize) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(v).unwrap_or_default());
    hex(&h.finalize())
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
    for (name, bytes) in crate::report::render_all(file)? {
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

/// Re-analyses a finished audit run from its observations (new membership settings optional)
/// and rewrites its findings and views in place, each file atomically.
pub fn reanalyze(run: &Path, settings: Option<&Settings>) -> Result<FindingsFile> {
    let old = crate::report::read_findings(run)?;
    let obs_dir = run.join("observations");
    let has_membership = obs_dir.join("audit.json").is_file();
    let canary_path = obs_dir.join(CANARY_FILE);
    let extraction_path = obs_dir.join(EXTRACTION_FILE);
    let inversion_path = obs_dir.join(INVERSION_FILE);
    if !has_membership
        && !canary_path.is_file()
        && !extraction_path.is_file()
        && !inversion_path.is_file()
    {
        return Err(Error::Usage(format!(
            "{}: no observations (observations/audit.json or {CANARY_FILE}); only `phiprobe audit` runs can be re-analysed",
            run.display()
        )));
    }
    let mut manifest = old.manifest.clone();
    let mut file = FindingsFile::new(manifest.clone());
    if has_membership {
        let (rec, obs) = load_observations(&obs_dir)?;
        let settings = match settings {
            Some(s) => s.clone(),
            None => old
                .membership
                .as_ref()
                .map(|d| serde_json::from_value::<Settings>(d.settings.clone()))
                .transpose()
                .map_err(|e| Error::Parse {
                    path: run.join(crate::report::FINDINGS),
                    format: "membership settings".into(),
                    message: crate::redact::json(&e),
                })?
                .unwrap_or_default(),
        };
        if let Some(plan) = manifest.plan.as_object_mut() {
            plan.insert(
                "membership".into(),
                serde_json::to_value(&settings).unwrap_or_default(),
            );
        }
        let (findings, detail) = analyze_membership(&rec, &obs, &settings, manifest.seed)?;
        file.findings.extend(findings);
        file.membership = Some(detail);
    }
    if canary_path.is_file() {
        let o: crate::probe::canary::Observations = read_json(&canary_path, "canary observations")?;
        let (findings, detail) = crate::probe::canary::analyze(&o);
        file.findings.extend(findings);
        file.canary = Some(detail);
    } else {
        // Keep a recorded "not measured" canary finding.
        file.findings
            .extend(old.findings.iter().filter(|f| f.probe == "canary").cloned());
    }
    if extraction_path.is_file() {
        let o: crate::probe::extraction::Observations =
            read_json(&extraction_path, "extraction observations")?;
        let (findings, detail) = crate::probe::extraction::analyze(&o);
        file.findings.extend(findings);
        file.extraction = Some(detail);
    }
    if inversion_path.is_file() {
        let o: crate::probe::inversion::Observations =
            read_json(&inversion_path, "inversion observations")?;
        let (findings, detail) =
            crate::probe::inversion::analyze(&o, membership_epsilon(&file.findings));
        file.findings.extend(findings);
        file.inversion = Some(detail);
    } else {
        // Keep a recorded "not measured" inversion finding.
        file.findings.extend(
            old.findings
                .iter()
                .filter(|f| f.probe == "inversion")
                .cloned(),
        );
    }
    // The DP audit depends on the target's training record, not on the membership settings:
    // kept as recorded (violations included).
    file.findings.extend(
        old.findings
            .iter()
            .filter(|f| f.probe == "dp_audit")
            .cloned(),
    );
    file.dp = old.dp.clone();
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
    crate::report::rewrite(run, &file)?;
    Ok(file)
}
