//! `phiprobe train`: from a dataset card to Hugging Face checkpoints — the target model and,
//! optionally, a fleet of reference models on complementary random halves of the audit pool
//! (LiRA, Carlini et al. 2022, arXiv 2112.03570; RMIA, Zarifzadeh et al. 2024, arXiv 2312.03262),
//! split into shards for array jobs and assembled by [`merge`].
//!
//! Every output folder is built in a hidden working folder beside it and renamed into place when
//! complete; the working folder also holds the checkpoints an interrupted run resumes from.

use super::bpe;
use super::canary::{self, Plan, Planted, TextCanaries};
use super::llama::LlamaConfig;
use super::trainer::{self, CheckpointDir, Corpus, TrainConfig, TrainLog};
use super::whitebox::GradientCanaries;
use crate::data::text::TextRecords;
use crate::error::{Error, Result};
use crate::evidence::FileHash;
use crate::stats::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Format tag of `training.json`.
pub const TRAINING_FORMAT: &str = "phiprobe-training-1";
/// Format tag of `fleet.json`.
pub const FLEET_FORMAT: &str = "phiprobe-fleet-1";

/// What to train.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Dataset card.
    pub data: PathBuf,
    /// Text column (default: the card's one text column).
    pub column: Option<String>,
    /// Output folder.
    pub out: PathBuf,
    /// Training settings (the seed is the target's; references derive theirs).
    pub train: TrainConfig,
    /// Canaries planted into the target's training notes.
    pub canaries: Option<Plan>,
    /// Number of reference models (even; 0 for none).
    pub references: usize,
    /// Train only jobs j with j mod n = i (job 0 is the target, job k the k-th reference).
    pub shard: Option<(usize, usize)>,
    /// Canaries and settings for auditing the target's DP-SGD (`phiprobe sweep`).
    pub audit: Option<AuditPlan>,
}

/// Instruments for auditing a DP-SGD target (reference/dp.md §3, (c) 6).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AuditPlan {
    /// Standalone canary records, each included by an independent coin (the black-box
    /// one-run audit of the final model).
    pub text_canaries: usize,
    /// White-box gradient canaries (DP-SGD runs only; see [`super::whitebox`]).
    pub gradient_canaries: usize,
    /// Probability of every coin (½ for the one-run audit).
    pub include_probability: f64,
    /// Train the tokenizer on the whole audit pool (members and held-out records alike), so
    /// that it carries no membership signal and the audit measures the weights only.
    pub pool_tokenizer: bool,
}

impl Default for AuditPlan {
    /// 256 text canaries, 1,000 gradient canaries, fair coins, pool tokenizer.
    fn default() -> Self {
        Self {
            text_canaries: 256,
            gradient_canaries: 1000,
            include_probability: 0.5,
            pool_tokenizer: true,
        }
    }
}

/// The audit instruments of a trained target, as drawn (in `training.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The plan as given.
    pub plan: AuditPlan,
    /// What the tokenizer was trained on.
    pub tokenizer: String,
    /// The standalone canary records and their coins.
    pub text: Option<TextCanaries>,
    /// The gradient canaries and their coins (their observations are in the training log).
    pub gradient: Option<GradientCanaries>,
    /// Why there are no gradient canaries, when asked for and absent.
    #[serde(default)]
    pub gradient_note: Option<String>,
    /// The public dataset size N of the DP normaliser q·N: the data's training records plus
    /// the expected number of included text canaries (independent of the coins).
    pub public_size: usize,
}

/// `training.json`: everything needed to audit how a model was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// [`TRAINING_FORMAT`].
    pub format: String,
    /// phiprobe version.
    pub tool_version: String,
    /// `target` or `reference`.
    pub role: String,
    /// Job name (`target`, `ref-00`, …).
    pub name: String,
    /// Dataset card, text column and SHA-256 of every data file.
    pub data: DataRecord,
    /// How the training split was chosen.
    pub split: String,
    /// Record ids trained on (sorted).
    pub membership: Vec<String>,
    /// Validation records.
    pub validation_records: usize,
    /// Records cut to the context length.
    pub truncated_records: usize,
    /// The run's seed.
    pub seed: u64,
    /// Hyper-parameters and architecture.
    pub config: TrainConfig,
    /// Parameters.
    pub parameters: usize,
    /// Canaries (target only).
    pub canaries: Option<Planted>,
    /// Losses, steps, tokens, time, privacy.
    pub log: TrainLog,
    /// Training throughput of this process (target tokens per second).
    pub tokens_per_second: f64,
    /// Sampler: `poisson` (DP) or `shuffle` (plain).
    pub sampler: String,
    /// For DP runs: why this file must not travel with a released model.
    #[serde(default)]
    pub noise_secrecy: Option<String>,
    /// Audit instruments of a target trained for a DP audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditRecord>,
}

/// The data a model was trained from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRecord {
    /// The card as given.
    pub card: String,
    /// Text column.
    pub column: String,
    /// SHA-256 of the data files.
    pub files: Vec<FileHash>,
    /// Records in the data.
    pub records: usize,
}

/// One model of a fleet manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FleetModel {
    /// Name.
    pub name: String,
    /// `target`, `reference` or `external`.
    pub role: String,
    /// Folder, relative to the fleet folder for trained models.
    pub path: String,
    /// SHA-256 of its weights file.
    pub weights_sha256: Option<String>,
    /// Over `records`: '1' trained on, '0' not.
    pub membership: String,
}

/// `fleet.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fleet {
    /// [`FLEET_FORMAT`].
    pub format: String,
    /// The fleet's seed.
    pub seed: u64,
    /// The audit pool (record ids), the columns of every membership string.
    pub records: Vec<String>,
    /// Target first, then references, then external models.
    pub models: Vec<FleetModel>,
}

/// Summary of a `train` invocation.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Folders written (jobs of this shard).
    pub written: Vec<PathBuf>,
    /// Training records of the jobs trained.
    pub records: Vec<TrainingRecord>,
    /// The fleet manifest, when it was assembled.
    pub fleet: Option<PathBuf>,
}

/// Progress callback: (job name, step, total steps, loss).
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64, f64);

struct Job {
    name: String,
    role: &'static str,
    dir: PathBuf,
    seed: u64,
    train_rows: Vec<usize>,
    val_rows: Vec<usize>,
    split: String,
}

/// The complementary-halves plan: job list and which rows each trains on.
fn plan_jobs(spec: &RunSpec, recs: &TextRecords) -> Result<Vec<Job>> {
    let n = recs.len();
    let has_split = recs.member.iter().any(Option::is_some);
    let (train_rows, val_rows, split): (Vec<usize>, Vec<usize>, String) = if has_split {
        (
            (0..n).filter(|&r| recs.member[r] == Some(true)).collect(),
            (0..n).filter(|&r| recs.member[r] == Some(false)).collect(),
            "members of the card's membership split; validation on its non-members".into(),
        )
    } else {
        (
            (0..n).collect(),
            Vec::new(),
            "every record (the card declares no membership split); no validation".into(),
        )
    };
    if train_rows.is_empty() {
        return Err(Error::Usage(format!(
            "{}: the training split is empty (no member records); nothing to train on",
            spec.data.display()
        )));
    }
    let target_dir = if spec.references > 0 {
        spec.out.join("target")
    } else {
        spec.out.clone()
    };
    let mut jobs = vec![Job {
        name: "target".into(),
        role: "target",
        dir: target_dir,
        seed: spec.train.seed,
        train_rows,
        val_rows,
        split,
    }];
    // The audit pool: records whose membership is known (all records without a split).
    let pool: Vec<usize> = if has_split {
        (0..n).filter(|&r| recs.member[r].is_some()).collect()
    } else {
        (0..n).collect()
    };
    if spec.references > 0 {
        let patients: Vec<String> = pool
            .iter()
            .map(|&r| recs.patients[r].clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if patients.len() < 2 {
            return Err(Error::Usage(
                "reference models need at least two patients in the audit pool".into(),
            ));
        }
        for pair in 0..spec.references / 2 {
            let mut order = patients.clone();
            let mut rng = Rng::derive(spec.train.seed, "fleet/halves", pair as u64);
            for i in (1..order.len()).rev() {
                order.swap(i, rng.index(i + 1));
            }
            let half: BTreeSet<&String> = order[..order.len() / 2].iter().collect();
            let (inside, outside): (Vec<usize>, Vec<usize>) = pool
                .iter()
                .partition(|&&r| half.contains(&recs.patients[r]));
            for (k, (tr, va)) in [(inside.clone(), outside.clone()), (outside, inside)]
                .into_iter()
                .enumerate()
            {
                let idx = 2 * pair + k;
                let name = format!("ref-{idx:02}");
                jobs.push(Job {
                    dir: spec.out.join("references").join(&name),
                    seed: Rng::derive(spec.train.seed, "fleet/seed", idx as u64).next_u64(),
                    name,
                    role: "reference",
                    train_rows: tr,
                    val_rows: va,
                    split: format!(
                        "random half of the audit pool by patient (pair {pair}, {} of the pair)",
                        if k == 0 { "first" } else { "complement" }
                    ),
                });
            }
        }
    }
    Ok(jobs)
}

fn working_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.partial"))
}

fn werr(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// Checks a run's settings without reading its data or writing anything: the shard, the model
/// configuration, every training number, the DP setting, the fleet size and the canary plan.
/// [`run`] calls it first; a sweep calls it for every setting before it writes `sweep.json`.
pub fn check(spec: &RunSpec) -> Result<()> {
    if let Some((i, n)) = spec.shard
        && (n == 0 || i >= n)
    {
        return Err(Error::Usage(format!("--shard {i}/{n}: need 0 ≤ i < n")));
    }
    spec.train
        .model
        .validate()
        .map_err(|m| Error::Usage(format!("model configuration: {m}")))?;
    spec.train.validate().map_err(Error::Usage)?;
    if !spec.references.is_multiple_of(2) {
        return Err(Error::Usage(format!(
            "--references must be even (complementary pairs); got {}",
            spec.references
        )));
    }
    if spec.references > MAX_REFERENCES {
        return Err(Error::Usage(format!(
            "--references must be at most {MAX_REFERENCES} (got {})",
            spec.references
        )));
    }
    if let Some(plan) = &spec.canaries {
        plan.validate().map_err(Error::Usage)?;
    }
    if let Some(dp) = spec.train.dp {
        // σ = 0 is DP-SGD's clipping and sampling without noise (no guarantee; the baseline
        // of a sweep); a target ε chooses σ later.
        let noise = if dp.target_epsilon.is_some() || dp.noise == 0.0 {
            1.0
        } else {
            dp.noise
        };
        let q = if dp.sample_rate == 0.0 {
            1.0
        } else {
            dp.sample_rate
        };
        crate::stats::accountant::validate(noise, q, Some(dp.delta)).map_err(Error::Usage)?;
        if let Some(e) = dp.target_epsilon
            && !(e.is_finite() && e > 0.0)
        {
            return Err(Error::Usage(format!("the target ε must be > 0 (got {e})")));
        }
        if !dp.clip.is_finite() || dp.clip <= 0.0 {
            return Err(Error::Usage(format!(
                "the clipping norm C must be a finite number > 0 (got {})",
                dp.clip
            )));
        }
    }
    Ok(())
}

/// The files a model folder written by `phiprobe train` holds.
const MODEL_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "training.json",
];

/// Removes a model or fleet folder that `phiprobe train` wrote, deleting only the files such a
/// folder consists of; anything else in it stops the removal (naming the file) before anything
/// is deleted.
pub fn remove_trained(dir: &Path) -> Result<()> {
    fn plan(
        dir: &Path,
        fleet: bool,
        files: &mut Vec<PathBuf>,
        dirs: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let rd = std::fs::read_dir(dir).map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            let ft = e.file_type().map_err(|source| Error::Read {
                path: p.clone(),
                source,
            })?;
            if ft.is_file()
                && (MODEL_FILES.contains(&name.as_str()) || fleet && name == "fleet.json")
            {
                files.push(p);
            } else if ft.is_dir() && fleet && name == "target" {
                plan(&p, false, files, dirs)?;
            } else if ft.is_dir() && fleet && name == "references" {
                for r in std::fs::read_dir(&p)
                    .map_err(|source| Error::Read {
                        path: p.clone(),
                        source,
                    })?
                    .flatten()
                {
                    let rp = r.path();
                    let ok = r.file_type().is_ok_and(|t| t.is_dir())
                        && r.file_name().to_string_lossy().starts_with("ref-");
                    if !ok {
                        return Err(not_ours(&rp));
                    }
                    plan(&rp, false, files, dirs)?;
                }
                dirs.push(p);
            } else {
                return Err(not_ours(&p));
            }
        }
        dirs.push(dir.to_owned());
        Ok(())
    }
    fn not_ours(p: &Path) -> Error {
        Error::Output {
            path: p.to_owned(),
            message: "is not part of a model phiprobe trained, so it is not phiprobe's to delete; move it or choose another --out".into(),
        }
    }
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    plan(dir, true, &mut files, &mut dirs)?;
    for f in files {
        std::fs::remove_file(&f).map_err(werr(&f))?;
    }
    for d in dirs {
        std::fs::remove_dir(&d).map_err(werr(&d))?;
    }
    Ok(())
}

/// Most reference models a fleet may have.
pub const MAX_REFERENCES: usize = 1024;

/// Trains the jobs of this shard; assembles `fleet.json` when every job is present.
pub fn run(spec: &RunSpec, progress: Progress<'_>) -> Result<RunSummary> {
    check(spec)?;
    let recs = TextRecords::load(&spec.data, spec.column.as_deref())?;
    if recs.is_empty() {
        return Err(Error::Empty {
            path: recs.source.clone(),
        });
    }
    let jobs = plan_jobs(spec, &recs)?;
    let files = recs
        .files
        .iter()
        .map(|p| crate::model::hash_file(p))
        .collect::<Result<Vec<_>>>()?;
    let data = DataRecord {
        card: spec.data.display().to_string(),
        column: recs.column.clone(),
        files,
        records: recs.len(),
    };
    // The output folder must be creatable before hours of training.
    let parent = spec
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(werr(parent))?;
    probe_writable(parent)?;
    let mut summary = RunSummary {
        written: Vec::new(),
        records: Vec::new(),
        fleet: None,
    };
    // The audit pool: the target's training and validation records.
    let pool_rows: Vec<usize> = {
        let mut rows: Vec<usize> = jobs[0]
            .train_rows
            .iter()
            .chain(&jobs[0].val_rows)
            .copied()
            .collect();
        rows.sort_unstable();
        rows
    };
    // Without an audit plan the tokenizer is the target's (trained on its training notes);
    // an audit plan may train it on the whole audit pool.
    let tok_rows: Vec<usize> = match spec.audit {
        Some(a) if a.pool_tokenizer => pool_rows.clone(),
        _ => jobs[0].train_rows.clone(),
    };
    for (j, job) in jobs.iter().enumerate() {
        if let Some((i, n)) = spec.shard
            && j % n != i
        {
            continue;
        }
        if let Some(p) = job.dir.parent() {
            std::fs::create_dir_all(p).map_err(werr(p))?;
        }
        // One writer per model folder (shards of a fleet train different folders).
        let _lock = crate::integrity::folder::FolderLock::acquire(&job.dir)?;
        if job.dir.join("training.json").exists() {
            if spec.references > 0 {
                // A retried array job: this model of the fleet is already done.
                tracing::info!("{} is already trained; skipping", job.dir.display());
                continue;
            }
            return Err(Error::Usage(format!(
                "{} already holds a trained model; choose another --out or remove it",
                job.dir.display()
            )));
        }
        if job.dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::Usage(format!(
                "{} exists and is not empty; choose another --out",
                job.dir.display()
            )));
        }
        let rec = train_job(spec, &recs, job, &tok_rows, &pool_rows, &data, progress)?;
        summary.written.push(job.dir.clone());
        summary.records.push(rec);
    }
    if spec.references > 0 && jobs.iter().all(|j| j.dir.join("training.json").exists()) {
        summary.fleet = Some(merge(&spec.out, &[])?.0);
    }
    Ok(summary)
}

fn probe_writable(dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".phiprobe-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(werr(dir))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Trains one model of a run (the target or a reference) and installs it with its `training.json`.
///
/// Kept whole: tokenizer, canary planting, encoding, DP calibration and training happen in this
/// order on one job seed; the separable steps (copies seen, gradient canaries, DP calibration,
/// installing) are functions of their own.
fn train_job(
    spec: &RunSpec,
    recs: &TextRecords,
    job: &Job,
    tok_rows: &[usize],
    pool_rows: &[usize],
    data: &DataRecord,
    progress: Progress<'_>,
) -> Result<TrainingRecord> {
    let mut texts: Vec<String> = job
        .train_rows
        .iter()
        .map(|&r| recs.texts[r].clone())
        .collect();
    let ids: Vec<String> = job
        .train_rows
        .iter()
        .map(|&r| recs.ids[r].clone())
        .collect();
    // The tokenizer is trained before canaries are planted, so whether a canary was included
    // cannot change how its secret is tokenised (the one-run audit's coins stay hidden in it).
    // Every model of a fleet uses the target's tokenizer (trained on the target's training
    // notes, or with an audit plan on the whole audit pool; deterministically, so each shard
    // rebuilds the same one): it ships with the target,
    // an attacker has it, and per-token signals are only comparable across models that
    // tokenize alike.
    let tok_texts: Vec<&str> = tok_rows.iter().map(|&r| recs.texts[r].as_str()).collect();
    let tok = bpe::train(&tok_texts, spec.train.model.vocab_size).map_err(Error::Compute)?;
    let mut planted = match (&spec.canaries, job.role) {
        (Some(plan), "target") => Some(
            canary::plant(plan, &ids, &mut texts, job.seed)
                .map_err(|m| Error::Usage(format!("canary plan: {m}")))?,
        ),
        _ => None,
    };
    // Standalone audit canaries join the target's training records after the ladder canaries
    // were planted (they are records of their own, not part of any note).
    let audit_plan = spec.audit.filter(|_| job.role == "target");
    let text_canaries = match audit_plan {
        Some(a) if a.text_canaries > 0 => {
            let t = TextCanaries::draw(
                "account",
                a.text_canaries,
                a.include_probability,
                Rng::derive_seed(job.seed, "audit/text", 0),
            )
            .map_err(|m| Error::Usage(format!("audit canaries: {m}")))?;
            texts.extend(t.included().map(|c| c.sentence.clone()));
            Some(t)
        }
        _ => None,
    };
    let public_size = job.train_rows.len()
        + text_canaries.as_ref().map_or(0, |t| {
            (t.canaries.len() as f64 * t.include_probability).round() as usize
        });
    let (_, bos, eos) = bpe::special_ids(&tok).map_err(Error::Compute)?;
    let max_tokens = spec.train.model.max_len + 1;
    let mut truncated = 0usize;
    let mut encode = |t: &str| -> Result<Vec<u32>> {
        let enc = tok
            .encode(t, false)
            .map_err(|e| Error::Compute(format!("tokenizer failed: {e}")))?;
        let mut s = Vec::with_capacity(enc.get_ids().len() + 2);
        s.push(bos);
        s.extend_from_slice(enc.get_ids());
        s.push(eos);
        if s.len() > max_tokens {
            truncated += 1;
            s.truncate(max_tokens);
        }
        Ok(s)
    };
    let train_seqs = texts
        .iter()
        .map(|t| encode(t))
        .collect::<Result<Vec<_>>>()?;
    if let Some(p) = &mut planted {
        keep_seen_copies(p, &ids, &train_seqs, &tok)?;
    }
    let val_seqs = job
        .val_rows
        .iter()
        .take(256)
        .map(|&r| encode(&recs.texts[r]))
        .collect::<Result<Vec<_>>>()?;
    let mut cfg = spec.train.clone();
    cfg.seed = job.seed;
    let (gradient, gradient_note) = match (audit_plan, cfg.dp) {
        (Some(a), Some(_)) if a.gradient_canaries > 0 => {
            let mut texts_all: Vec<&str> =
                pool_rows.iter().map(|&r| recs.texts[r].as_str()).collect();
            if let Some(p) = &planted {
                texts_all.extend(p.canaries.iter().map(|c| c.sentence.as_str()));
            }
            if let Some(t) = &text_canaries {
                texts_all.extend(t.canaries.iter().map(|c| c.sentence.as_str()));
            }
            let g = gradient_canaries(&a, &cfg, &tok, &[0, bos, eos], &texts_all, public_size)?;
            (Some(g.0), g.1)
        }
        (Some(a), None) if a.gradient_canaries > 0 => (
            None,
            Some("no gradient canaries: the target was not trained with DP-SGD".to_owned()),
        ),
        _ => (None, None),
    };
    let mut corpus = Corpus::new(train_seqs, val_seqs);
    if let Some(g) = &gradient {
        corpus = corpus.with_gradient_canaries(g.clone());
    }
    calibrate_dp(&mut cfg, public_size, audit_plan.is_some())?;
    let work = working_dir(&job.dir);
    let ckpt = CheckpointDir {
        dir: work.join("checkpoints"),
    };
    let name = job.name.clone();
    let (params, log) = trainer::train(&cfg, &corpus, Some(&ckpt), &mut |s, t, l| {
        progress(&name, s, t, l)
    })?;
    let staged = work.join("model");
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(werr(&staged))?;
    }
    std::fs::create_dir_all(&staged).map_err(werr(&staged))?;
    write_checkpoint(&staged, &cfg.model, &params, &tok, bos, eos)?;
    let mut membership = ids.clone();
    membership.sort();
    let tokens_per_second = log.tokens as f64 / log.seconds.max(1e-9);
    let record = TrainingRecord {
        format: TRAINING_FORMAT.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        role: job.role.into(),
        name: job.name.clone(),
        data: data.clone(),
        split: job.split.clone(),
        membership,
        validation_records: job.val_rows.len(),
        truncated_records: truncated,
        seed: job.seed,
        parameters: cfg.model.parameter_count(),
        sampler: if cfg.dp.is_some() {
            "poisson"
        } else {
            "shuffle"
        }
        .into(),
        config: cfg,
        canaries: planted,
        audit: audit_plan.map(|plan| AuditRecord {
            plan,
            tokenizer: if plan.pool_tokenizer {
                "the whole audit pool (members and held-out records alike)".into()
            } else {
                "the target's training notes".into()
            },
            text: text_canaries,
            gradient,
            gradient_note,
            public_size,
        }),
        noise_secrecy: spec.train.dp.map(|_| {
            "the DP guarantee assumes the noise is secret; the seed recorded here regenerates it, so keep training.json with the evidence, not with a released model".to_owned()
        }),
        log,
        tokens_per_second,
    };
    crate::fsx::write_atomic(
        &staged.join("training.json"),
        serde_json::to_string_pretty(&record)
            .expect("serialises")
            .as_bytes(),
    )?;
    install(&staged, &job.dir)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(record)
}

/// Keeps in each canary's `planted_in` only the copies the model sees: a copy planted late in
/// a long note may be cut off with the note's tail (`truncated_in` lists those).
fn keep_seen_copies(
    planted: &mut canary::Planted,
    ids: &[String],
    train_seqs: &[Vec<u32>],
    tok: &tokenizers::Tokenizer,
) -> Result<()> {
    let row_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for c in &mut planted.canaries {
        let mut kept = Vec::new();
        for id in std::mem::take(&mut c.planted_in) {
            let seq = &train_seqs[row_of[id.as_str()]];
            let seen = tok
                .decode(seq, true)
                .map_err(|e| Error::Compute(format!("tokenizer failed to decode: {e}")))?;
            if seen.contains(&c.sentence) {
                kept.push(id);
            } else {
                c.truncated_in.push(id);
            }
        }
        c.planted_in = kept;
    }
    Ok(())
}

/// Plans the audit's gradient canaries. They sit in embedding rows of tokens that neither any
/// of `texts` (every record of the audit pool, members and held-out alike, and every canary,
/// included or not) nor a `special` token contains: a placement that membership and coins
/// cannot change. The note says when fewer rows were free than canaries asked for.
fn gradient_canaries(
    a: &AuditPlan,
    cfg: &TrainConfig,
    tok: &tokenizers::Tokenizer,
    special: &[u32],
    texts: &[&str],
    public_size: usize,
) -> Result<(GradientCanaries, Option<String>)> {
    let mut used = vec![false; cfg.model.vocab_size];
    let mut mark = |ids: &[u32]| {
        for &t in ids {
            if let Some(u) = used.get_mut(t as usize) {
                *u = true;
            }
        }
    };
    mark(special);
    for t in texts {
        let enc = tok
            .encode(*t, false)
            .map_err(|e| Error::Compute(format!("tokenizer failed: {e}")))?;
        mark(enc.get_ids());
    }
    let g = GradientCanaries::plan(
        "model.embed_tokens.weight",
        cfg.model.vocab_size,
        cfg.model.hidden,
        &used,
        a.gradient_canaries,
        a.include_probability,
        Rng::derive_seed(cfg.seed, "audit/gradient", 0),
    )
    .map_err(|m| Error::Usage(format!("gradient canaries: {m}")))?;
    let g = GradientCanaries { public_size, ..g };
    let note = (g.coords.len() < a.gradient_canaries).then(|| {
        format!(
            "{} of {} gradient canaries: only {} embedding rows are free of training tokens",
            g.coords.len(),
            a.gradient_canaries,
            g.rows.len()
        )
    });
    Ok((g, note))
}

/// Fills in DP-SGD's sample rate (batch / records when not given), the expected batch size of
/// an audited run (the realised size depends on the coins; the normaliser must not) and the
/// noise multiplier that reaches a target ε.
fn calibrate_dp(cfg: &mut TrainConfig, public_size: usize, audited: bool) -> Result<()> {
    let (epochs, batch) = (cfg.epochs, cfg.batch_size);
    let Some(dp) = &mut cfg.dp else {
        return Ok(());
    };
    if dp.sample_rate <= 0.0 {
        dp.sample_rate = (batch as f64 / public_size as f64).min(1.0);
    }
    if audited {
        dp.expected_size = Some(public_size);
    }
    if let Some(target) = dp.target_epsilon {
        let steps = trainer::dp_steps(epochs, dp.sample_rate).map_err(Error::Usage)?;
        dp.noise = crate::stats::accountant::calibrate_noise(
            target,
            dp.delta,
            dp.sample_rate,
            steps,
            &crate::stats::accountant::default_orders(),
            0.01,
        )
        .ok_or_else(|| {
            Error::Usage(format!(
                "no noise multiplier reaches ε ≤ {target} at δ = {} in {steps} steps; raise ε or train fewer epochs",
                dp.delta
            ))
        })?;
    }
    Ok(())
}

/// Moves the staged model folder to `dir` (only an absent or empty folder is replaced).
fn install(staged: &Path, dir: &Path) -> Result<()> {
    if let Some(p) = dir.parent() {
        std::fs::create_dir_all(p).map_err(werr(p))?;
    }
    if dir.exists() {
        // Only an empty folder may be replaced.
        std::fs::remove_dir(dir).map_err(|_| {
            Error::Usage(format!(
                "{} exists and is not empty; choose another --out",
                dir.display()
            ))
        })?;
    }
    std::fs::rename(staged, dir).map_err(werr(dir))?;
    Ok(())
}

/// Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json and
/// generation_config.json into `dir`.
fn write_checkpoint(
    dir: &Path,
    cfg: &LlamaConfig,
    params: &super::llama::Params,
    tok: &tokenizers::Tokenizer,
    bos: u32,
    eos: u32,
) -> Result<()> {
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("serialises");
    crate::fsx::write_atomic(
        &dir.join("config.json"),
        json(cfg.hf_config(bos, eos)).as_bytes(),
    )?;
    crate::fsx::write_atomic(
        &dir.join("generation_config.json"),
        json(serde_json::json!({"bos_token_id": bos, "eos_token_id": eos})).as_bytes(),
    )?;
    crate::fsx::write_atomic(
        &dir.join("tokenizer_config.json"),
        json(bpe::tokenizer_config(cfg.max_len)).as_bytes(),
    )?;
    let tok_json = tok
        .to_string(true)
        .map_err(|e| Error::Compute(format!("cannot serialise the tokenizer: {e}")))?;
    crate::fsx::write_atomic(&dir.join("tokenizer.json"), tok_json.as_bytes())?;
    let path = dir.join("model.safetensors");
    let tensors: HashMap<String, candle_core::Tensor> = params.tensors();
    candle_core::safetensors::save(&tensors, &path).map_err(|e| match e {
        candle_core::Error::Io(io) => Error::Write {
            path: path.clone(),
            source: io,
        },
        other => Error::Write {
            path: path.clone(),
            source: std::io::Error::other(other.to_string()),
        },
    })?;
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(werr(&path))?;
    Ok(())
}

/// `phiprobe merge`: checks the fleet folder's models against their `training.json` files,
/// registers external reference models with the record ids they were trained on, and writes
/// `fleet.json`.
///
/// Kept whole: every model of the fleet is checked in turn against its record before anything is
/// written.
pub fn merge(dir: &Path, external: &[(PathBuf, PathBuf)]) -> Result<(PathBuf, Fleet)> {
    let read = |p: &Path| -> Result<TrainingRecord> {
        let text = crate::fsx::read_text(p, crate::fsx::input::data_limit())?;
        serde_json::from_str(&text).map_err(|e| Error::Parse {
            path: p.to_owned(),
            format: TRAINING_FORMAT.into(),
            message: crate::redact::json(&e),
        })
    };
    let target = read(&dir.join("target").join("training.json"))?;
    let refs_dir = dir.join("references");
    let mut names: Vec<String> = std::fs::read_dir(&refs_dir)
        .map_err(|source| Error::Read {
            path: refs_dir.clone(),
            source,
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ref-"))
        .collect();
    names.sort();
    let mut refs = Vec::new();
    for n in &names {
        refs.push((n.clone(), read(&refs_dir.join(n).join("training.json"))?));
    }
    if refs.is_empty() || refs.len() % 2 != 0 {
        return Err(Error::Report {
            path: refs_dir,
            message: format!(
                "{} reference model(s) found; a fleet needs complementary pairs — train the missing shards first",
                refs.len()
            ),
        });
    }
    // Pool = union of what the references trained on (complementary halves cover it).
    let pool: BTreeSet<String> = refs
        .iter()
        .flat_map(|(_, r)| r.membership.iter().cloned())
        .collect();
    let records: Vec<String> = pool.into_iter().collect();
    let bits = |set: &BTreeSet<&String>| -> String {
        records
            .iter()
            .map(|r| if set.contains(r) { '1' } else { '0' })
            .collect()
    };
    let mut models = Vec::new();
    let mut push = |name: String, role: &str, path: String, rec: &TrainingRecord| -> Result<()> {
        let w = crate::model::hash_file(&dir.join(&path).join("model.safetensors"))?;
        let set: BTreeSet<&String> = rec.membership.iter().collect();
        models.push(FleetModel {
            name,
            role: role.into(),
            path,
            weights_sha256: Some(w.sha256),
            membership: bits(&set),
        });
        Ok(())
    };
    push("target".into(), "target", "target".into(), &target)?;
    for (n, r) in &refs {
        // Shards may run on machines that mount the data elsewhere: compare contents only.
        let digests = |d: &DataRecord| d.files.iter().map(|f| f.sha256.clone()).collect::<Vec<_>>();
        if digests(&r.data) != digests(&target.data) {
            return Err(Error::Report {
                path: refs_dir.join(n),
                message: "this reference model was trained from other data than the target".into(),
            });
        }
        push(n.clone(), "reference", format!("references/{n}"), r)?;
    }
    // Balance: every pool record is IN for exactly half of the references.
    let k = refs.len();
    for i in 0..records.len() {
        let ins = models
            .iter()
            .filter(|m| m.role == "reference" && m.membership.as_bytes()[i] == b'1')
            .count();
        if ins * 2 != k {
            return Err(Error::Report {
                path: dir.to_owned(),
                message: format!(
                    "audit record {} (of {}) is trained on by {ins} of {k} reference models; the fleet is not balanced (mixed runs?)",
                    i + 1,
                    records.len()
                ),
            });
        }
    }
    for (model, ids_file) in external {
        let text = crate::fsx::read_text(ids_file, crate::fsx::input::data_limit())?;
        let ids: BTreeSet<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let set: BTreeSet<&String> = ids.iter().collect();
        let name = model
            .file_name()
            .map_or_else(|| "external".into(), |n| n.to_string_lossy().into_owned());
        models.push(FleetModel {
            name: format!("external-{name}"),
            role: "external".into(),
            path: std::path::absolute(model)
                .unwrap_or_else(|_| model.clone())
                .display()
                .to_string(),
            weights_sha256: None,
            membership: bits(&set),
        });
    }
    let fleet = Fleet {
        format: FLEET_FORMAT.into(),
        seed: target.seed,
        records,
        models,
    };
    let path = dir.join("fleet.json");
    crate::fsx::write_atomic(
        &path,
        serde_json::to_string_pretty(&fleet)
            .expect("serialises")
            .as_bytes(),
    )?;
    Ok((path, fleet))
}

/// Counts of a fleet: for each pool record, how many references train on it.
pub fn in_counts(fleet: &Fleet) -> BTreeMap<String, usize> {
    fleet
        .records
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let n = fleet
                .models
                .iter()
                .filter(|m| m.role == "reference" && m.membership.as_bytes()[i] == b'1')
                .count();
            (id.clone(), n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(dir: &Path) {
        for sub in ["target", "references/ref-00", "references/ref-01"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            for f in MODEL_FILES {
                std::fs::write(dir.join(sub).join(f), b"x").unwrap();
            }
        }
        std::fs::write(dir.join("fleet.json"), b"{}").unwrap();
    }

    #[test]
    fn remove_trained_deletes_a_fleet_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("model");
        fleet(&m);
        std::fs::write(m.join("references/ref-01/notes.txt"), b"mine").unwrap();
        let e = remove_trained(&m).unwrap_err().to_string();
        assert!(
            e.contains("ref-01/notes.txt") && e.contains("not phiprobe's"),
            "{e}"
        );
        assert!(
            m.join("target/model.safetensors").is_file(),
            "nothing deleted"
        );
        std::fs::remove_file(m.join("references/ref-01/notes.txt")).unwrap();
        remove_trained(&m).unwrap();
        assert!(!m.exists());
        let single = d.path().join("single");
        std::fs::create_dir(&single).unwrap();
        for f in MODEL_FILES {
            std::fs::write(single.join(f), b"x").unwrap();
        }
        remove_trained(&single).unwrap();
        assert!(!single.exists());
    }
}
