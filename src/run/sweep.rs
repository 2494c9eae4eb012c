//! `phiprobe sweep` and `phiprobe compare`: train and audit a grid of DP-training settings
//! (each setting a resumable run, shardable over processes), then compare them.

use std::path::{Path, PathBuf};

use crate::evidence::FindingsFile;
use crate::integrity::folder::RunFolder;
use crate::sweep::{self, Point, SweepRecord, Timing};
use crate::train::trainer::{DpConfig, TrainConfig};
use crate::{Error, Result};

/// The sweep's built-in probe plan: reference-free membership attacks (plus LiRA and RMIA with
/// `--references`), canary exposure with a small search budget, a light extraction, the DP
/// audit.
pub const SWEEP_PLAN: &str = r#"
[[probe]]
kind = "membership"
attacks = ["loss", "zlib", "min_k", "min_k_pp", "lira_online", "lira_offline", "rmia"]
bootstrap = 200

[[probe]]
kind = "canary"
max_expansions = 2000

[[probe]]
kind = "extraction"
prefix_tokens = [16, 32]
decodes = ["greedy"]
records = 64
identifiers_per_record = 2
generations = 32
sweep = [{ temperature = 1.0, top_k = 40 }]

[[probe]]
kind = "dp_audit"
"#;

/// What `sweep` runs (the flags of `phiprobe sweep`).
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// Dataset card whose [membership] section marks members and non-members.
    pub data: PathBuf,
    /// The grid: `key=v1,v2,…` terms separated by `;`.
    pub grid: String,
    /// Reference models per setting (even).
    pub references: usize,
    /// Seed of every setting.
    pub seed: u64,
    /// Output folder.
    pub out: PathBuf,
    /// Run only settings j with j mod n = i.
    pub shard: Option<(usize, usize)>,
    /// Model size.
    pub preset: crate::train::llama::Preset,
    /// Epochs, where the grid does not set them.
    pub epochs: f64,
    /// Expected batch size q·N, where the grid does not set it.
    pub batch_size: usize,
    /// Peak learning rate, where the grid does not set it (default: the preset's).
    pub lr: Option<f64>,
    /// Noise multiplier σ, where the grid does not set it.
    pub noise: f64,
    /// Clipping norm C, where the grid does not set it.
    pub clip: f64,
    /// δ of every ε.
    pub delta: f64,
    /// Standalone text canaries per setting.
    pub text_canaries: usize,
    /// White-box gradient canaries per setting.
    pub gradient_canaries: usize,
    /// Probe plan for every setting (default: [`SWEEP_PLAN`]; a DP audit is always added).
    pub plan: Option<PathBuf>,
    /// Threads (0: all cores).
    pub threads: usize,
}

/// What a sweep tells its caller as it goes (the CLI draws progress bars and summaries).
#[derive(Debug)]
pub enum Event<'a> {
    /// Setting `index` of `of` was finished by an earlier run.
    Skipped {
        /// 0-based index.
        index: usize,
        /// Settings in all.
        of: usize,
        /// Its label.
        label: &'a str,
    },
    /// Setting `index` of `of` starts.
    Setting {
        /// 0-based index.
        index: usize,
        /// Settings in all.
        of: usize,
        /// Its label.
        label: &'a str,
    },
    /// Training progress of one model of the setting.
    Training {
        /// The model trained.
        model: &'a str,
        /// Steps done.
        step: u64,
        /// Steps in all.
        total: u64,
    },
    /// The setting's models are trained.
    TrainingDone,
    /// Scoring progress of the setting's audit.
    Scoring {
        /// Stage or model.
        stage: &'a str,
        /// Done.
        done: usize,
        /// In all.
        total: usize,
    },
    /// The setting's audit is written.
    Audited {
        /// Its findings.
        file: &'a FindingsFile,
        /// Its timing.
        timing: &'a Timing,
    },
    /// Other shards still have settings to run; the comparison waits for them.
    Waiting {
        /// Settings not done.
        missing: usize,
        /// Settings in all.
        of: usize,
    },
    /// Another shard is writing the comparison.
    CompareBusy(String),
    /// The comparison is written.
    Compared {
        /// Its findings.
        file: &'a FindingsFile,
        /// Seconds the sweep took in this process.
        seconds: f64,
        /// Its folder.
        out: &'a Path,
    },
}

/// The sweep's event sink.
pub type Events<'a> = &'a mut dyn FnMut(Event<'_>);

/// The training run of one setting.
fn train_spec(
    a: &SweepSpec,
    p: &Point,
    model_dir: &Path,
    audit_plan: crate::train::run::AuditPlan,
) -> crate::train::run::RunSpec {
    let mut ladder = crate::train::canary::Plan::default_plan();
    ladder.references = 100;
    crate::train::run::RunSpec {
        data: a.data.clone(),
        column: None,
        out: model_dir.to_owned(),
        train: TrainConfig {
            epochs: p.epochs,
            batch_size: p.batch,
            lr: p.lr,
            dp: Some(DpConfig {
                noise: p.noise,
                clip: p.clip,
                sample_rate: p.q.unwrap_or(0.0),
                delta: a.delta,
                target_epsilon: None,
                expected_size: None,
            }),
            checkpoint_every: 10,
            ..TrainConfig::defaults(a.preset.config(), a.seed)
        },
        canaries: Some(ladder),
        references: a.references,
        shard: None,
        audit: Some(audit_plan),
    }
}

/// The audit of a setting, before its model and folders are filled in.
fn plan_spec(plan: &super::plan::Plan, a: &SweepSpec) -> super::audit::AuditSpec {
    super::audit::AuditSpec {
        data: Some(a.data.clone()),
        column: None,
        model: String::new(),
        adapter: None,
        references: Vec::new(),
        reference_manifest: None,
        reference_model: None,
        probes: plan.clone(),
        canaries: None,
        out: a.out.clone(),
        seed: a.seed,
        threads: a.threads,
        batch_tokens: 8192,
        plan: serde_json::Value::Null,
        policy: None,
        determination: None,
        phi_examples: None,
    }
}

/// Audits one setting into its claimed folder, telling the scoring progress.
fn audit(
    spec: &super::audit::AuditSpec,
    manifest: crate::evidence::RunManifest,
    events: Events<'_>,
) -> Result<super::audit::AuditOutcome> {
    spec.check()?;
    let folder = super::folder::claim(&spec.out, &spec.input_paths())?;
    let mut progress = |stage: &str, done: usize, total: usize| {
        events(Event::Scoring { stage, done, total });
    };
    super::audit::run(spec, &folder, manifest, &mut progress)
}

/// Runs (or resumes) a sweep: trains and audits every setting of this shard, then writes the
/// comparison once every setting is done. What happens is told through `events`.
pub fn run(a: &SweepSpec, events: Events<'_>) -> Result<()> {
    let (settings, plan, audit_plan) = prepare(a)?;
    let started = std::time::Instant::now();
    for (j, (label, folder, p)) in settings.iter().enumerate() {
        if let Some((i, n)) = a.shard
            && j % n != i
        {
            continue;
        }
        let at = Setting {
            index: j,
            of: settings.len(),
            label,
            folder,
            point: p,
        };
        run_setting(a, &at, &plan, audit_plan, events)?;
    }
    compare_when_done(a, &settings, started, events)
}

/// One setting of a sweep: its place in the grid, label, folder name and point.
struct Setting<'a> {
    index: usize,
    of: usize,
    label: &'a str,
    folder: &'a str,
    point: &'a Point,
}

/// Parses the grid and plan, checks every setting, and writes (or checks against) the sweep's
/// record `sweep.json`: every setting is checked before the first byte is written, so a
/// refused setting leaves nothing that blocks the corrected command.
#[allow(clippy::type_complexity)]
fn prepare(
    a: &SweepSpec,
) -> Result<(
    Vec<(String, String, Point)>,
    super::plan::Plan,
    crate::train::run::AuditPlan,
)> {
    let lr = a.lr.unwrap_or(a.preset.default_lr());
    let base = Point {
        noise: a.noise,
        clip: a.clip,
        epochs: a.epochs,
        batch: a.batch_size,
        lr,
        q: None,
    };
    let grid =
        sweep::parse_grid(&a.grid, base).map_err(|m| Error::Usage(format!("--grid: {m}")))?;
    if !(a.delta > 0.0 && a.delta < 1.0) {
        return Err(Error::Usage(format!(
            "--delta must be in (0, 1) (got {})",
            a.delta
        )));
    }
    let plan_text = match &a.plan {
        Some(p) => crate::fsx::read_config(p)?,
        None => SWEEP_PLAN.to_owned(),
    };
    let mut plan = super::plan::Plan::parse(
        &plan_text,
        a.plan
            .as_deref()
            .unwrap_or(Path::new("<built-in sweep plan>")),
    )?;
    use crate::probe::{dp_audit::DpAudit, membership::Membership};
    if plan.get::<DpAudit>().is_none() {
        plan.set::<DpAudit>(Some(Default::default()));
    }
    if a.references == 0 {
        // Without reference models only the reference-free attacks can run.
        plan.update::<Membership>(|m| {
            m.attacks
                .retain(|x| matches!(x.as_str(), "loss" | "zlib" | "min_k" | "min_k_pp"));
        });
    }
    let audit_plan = crate::train::run::AuditPlan {
        text_canaries: a.text_canaries,
        gradient_canaries: a.gradient_canaries,
        ..Default::default()
    };
    let settings: Vec<(String, String, Point)> = grid
        .points
        .iter()
        .map(|p| (p.label(&grid.keys), p.folder(&grid.keys), *p))
        .collect();
    let record = SweepRecord {
        format: sweep::SWEEP_FORMAT.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        data: a.data.display().to_string(),
        grid: a.grid.clone(),
        seed: a.seed,
        references: a.references,
        preset: format!("{:?}", a.preset).to_lowercase(),
        settings: settings.clone(),
        options: serde_json::json!({
            "data_files": data_hashes(&a.data)?,
            "delta": a.delta,
            "audit": audit_plan,
            "plan": plan,
            "canaries": "built-in ladder (six kinds, 1–32 copies, 100 references), planted into notes",
        }),
    };
    for (label, _, p) in &settings {
        crate::train::run::check(&train_spec(a, p, &a.out.join("check"), audit_plan))
            .map_err(|e| Error::Usage(format!("setting {label}: {e}")))?;
    }
    plan_spec(&plan, a).check()?;
    std::fs::create_dir_all(&a.out).map_err(|source| crate::Error::Write {
        path: a.out.clone(),
        source,
    })?;
    let rec_path = a.out.join("sweep.json");
    if rec_path.is_file() {
        let old: SweepRecord = crate::fsx::read_json(&rec_path, sweep::SWEEP_FORMAT)?;
        if old.settings != record.settings
            || old.data != record.data
            || old.seed != record.seed
            || old.references != record.references
            || old.preset != record.preset
            || old.options != record.options
        {
            return Err(Error::Usage(format!(
                "{} holds a different sweep (grid, data, seed or options changed); choose another --out",
                a.out.display()
            )));
        }
    } else {
        crate::fsx::write_json(&rec_path, &record)?;
    }
    Ok((settings, plan, audit_plan))
}

/// Trains (unless trained) and audits one setting into `settings/<folder>/`; a setting already
/// audited is skipped, but a recorded inconsistency keeps failing the sweep.
fn run_setting(
    a: &SweepSpec,
    at: &Setting<'_>,
    plan: &super::plan::Plan,
    audit_plan: crate::train::run::AuditPlan,
    events: Events<'_>,
) -> Result<()> {
    let (j, label, folder, p) = (at.index, at.label, at.folder, at.point);
    let dir = a.out.join("settings").join(folder);
    let audit_dir = dir.join("audit");
    if audit_dir.join(crate::report::FINDINGS).is_file()
        && audit_dir.join(crate::report::MANIFEST).is_file()
    {
        events(Event::Skipped {
            index: j,
            of: at.of,
            label,
        });
        // A recorded inconsistency keeps failing the sweep.
        let done: FindingsFile =
            crate::fsx::read_json(&audit_dir.join(crate::report::FINDINGS), "findings.json")?;
        if let Some(e) = done
            .dp
            .as_ref()
            .and_then(crate::probe::dp_audit::violation_error)
        {
            return Err(e);
        }
        return Ok(());
    }
    events(Event::Setting {
        index: j,
        of: at.of,
        label,
    });
    // One process per setting (a shard run twice by mistake stops here).
    if let Some(p) = dir.parent() {
        std::fs::create_dir_all(p).map_err(|source| crate::Error::Write {
            path: p.to_owned(),
            source,
        })?;
    }
    let _setting_lock = crate::integrity::folder::FolderLock::acquire(&dir)?;
    let mut timing = Timing::default();
    let model_dir = dir.join("model");
    let target_dir = if a.references > 0 {
        model_dir.join("target")
    } else {
        model_dir.clone()
    };
    let trained = if a.references > 0 {
        model_dir.join("fleet.json").is_file()
    } else {
        target_dir.join("training.json").is_file()
    };
    if !trained {
        let t0 = std::time::Instant::now();
        let spec = train_spec(a, p, &model_dir, audit_plan);
        crate::train::run::run(&spec, &mut |name, step, total, _| {
            events(Event::Training {
                model: name,
                step,
                total,
            });
        })?;
        events(Event::TrainingDone);
        timing.train_seconds = t0.elapsed().as_secs_f64();
    }
    let t0 = std::time::Instant::now();
    let run_plan = serde_json::json!({
        "sweep": a.out,
        "setting": label,
        "model": target_dir,
        "data": a.data,
        "references": if a.references > 0 { vec![&model_dir] } else { vec![] },
        "plan": plan,
    });
    let id = format!("sweep-{folder}-{}", a.seed);
    let spec = super::audit::AuditSpec {
        model: target_dir.display().to_string(),
        references: if a.references > 0 {
            vec![model_dir.clone()]
        } else {
            Vec::new()
        },
        out: audit_dir.clone(),
        plan: run_plan.clone(),
        ..plan_spec(plan, a)
    };
    let manifest = super::manifest(&id, "sweep", a.seed, run_plan, Vec::new());
    let outcome = audit(&spec, manifest, events)?;
    let (result, code) = super::folder::run_result(&outcome.file);
    super::folder::log_event(&audit_dir, &outcome.file, "run", result, code)?;
    timing.audit_seconds = t0.elapsed().as_secs_f64();
    if let Some(tr) = super::audit::training_record(&target_dir.display().to_string())? {
        timing.steps = tr.log.steps;
    }
    crate::fsx::write_json(&dir.join("timing.json"), &timing)?;
    events(Event::Audited {
        file: &outcome.file,
        timing: &timing,
    });
    if let Some(e) = outcome
        .file
        .dp
        .as_ref()
        .and_then(crate::probe::dp_audit::violation_error)
    {
        return Err(e);
    }
    Ok(())
}

/// The comparison, once every setting is done (by whichever shard finishes last).
fn compare_when_done(
    a: &SweepSpec,
    settings: &[(String, String, Point)],
    started: std::time::Instant,
    events: Events<'_>,
) -> Result<()> {
    let runs: Vec<(Option<String>, PathBuf)> = settings
        .iter()
        .map(|(l, f, _)| {
            (
                Some(l.clone()),
                a.out.join("settings").join(f).join("audit"),
            )
        })
        .collect();
    let missing: Vec<&str> = runs
        .iter()
        .filter(|(_, d)| !d.join(crate::report::MANIFEST).is_file())
        .map(|(l, _)| l.as_deref().unwrap_or_default())
        .collect();
    if !missing.is_empty() {
        events(Event::Waiting {
            missing: missing.len(),
            of: runs.len(),
        });
        return Ok(());
    }
    let out = a.out.join("compare");
    let loaded = load_runs(&runs)?;
    let inputs: Vec<PathBuf> = runs.iter().map(|(_, p)| p.clone()).collect();
    // Two shards finishing together: one writes the comparison, the other leaves it.
    let folder = match super::folder::claim(&out, &inputs) {
        Ok(f) => f,
        Err(e @ Error::Busy { .. }) => {
            events(Event::CompareBusy(e.to_string()));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let file = write_comparison(loaded, &folder, a.seed)?;
    drop(folder);
    events(Event::Compared {
        file: &file,
        seconds: started.elapsed().as_secs_f64(),
        out: &out,
    });
    Ok(())
}

/// SHA-256 of the data files behind a card (pinned in sweep.json).
fn data_hashes(card: &Path) -> Result<Vec<String>> {
    let recs = crate::data::text::TextRecords::load(card, None)?;
    recs.files
        .iter()
        .map(|p| crate::model::hash_file(p).map(|h| h.sha256))
        .collect()
}

/// The label of a run: its sweep setting when it has one, else the run folder's name (the
/// parent's when the folder is a sweep's `audit`).
pub fn default_label(path: &Path, file: &FindingsFile) -> String {
    if let Some(s) = file.manifest.plan.get("setting").and_then(|v| v.as_str()) {
        return s.to_owned();
    }
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(path)
    };
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    match name(dir) {
        Some(n) if n == "audit" => dir.parent().and_then(name).unwrap_or(n),
        Some(n) => n,
        None => path.display().to_string(),
    }
}

/// Runs read for a comparison: (label, path shown, bytes, findings) and their hashes.
type Loaded = (
    Vec<(String, String, Vec<u8>, FindingsFile)>,
    Vec<crate::evidence::FileHash>,
);

/// Reads and checks every run of a comparison (before anything is written).
pub fn load_runs(runs: &[(Option<String>, PathBuf)]) -> Result<Loaded> {
    let mut loaded: Vec<(String, String, Vec<u8>, FindingsFile)> = Vec::new();
    let mut inputs = Vec::new();
    for (label, path) in runs {
        let file = if path.is_dir() {
            path.join(crate::report::FINDINGS)
        } else {
            path.clone()
        };
        let bytes = crate::fsx::read_bytes(&file, crate::fsx::input::MAX_TEXT_BYTES)?;
        let f: FindingsFile = serde_json::from_slice(&bytes).map_err(|e| crate::Error::Parse {
            path: file.clone(),
            format: "findings.json".into(),
            message: crate::redact::json(&e),
        })?;
        inputs.push(crate::evidence::FileHash::of(
            &file.display().to_string(),
            &bytes,
        ));
        let mut label = label.clone().unwrap_or_else(|| default_label(path, &f));
        // Labels name figure series and sections: keep them distinct.
        if loaded.iter().any(|l| l.0 == label) {
            label = format!("{label} ({})", loaded.len() + 1);
        }
        loaded.push((label, file.display().to_string(), bytes, f));
    }
    Ok((loaded, inputs))
}

/// Writes the comparison of `loaded` runs into the claimed folder and logs it.
pub fn write_comparison(
    (loaded, inputs): Loaded,
    folder: &RunFolder,
    seed: u64,
) -> Result<FindingsFile> {
    let out = folder.path();
    let plan = serde_json::json!({
        "runs": loaded
            .iter()
            .map(|(l, p, _, _)| serde_json::json!({"label": l, "path": p}))
            .collect::<Vec<_>>(),
    });
    let id = super::compare_id(&inputs);
    let manifest = super::manifest(&id, "compare", seed, plan, inputs);
    let file = sweep::compare(&loaded, manifest)?;
    crate::report::write_run(folder, &file, &crate::probe::sections)?;
    super::folder::log_event(
        out,
        &file,
        "run",
        "comparison written".into(),
        crate::exit::PASS,
    )?;
    Ok(file)
}
