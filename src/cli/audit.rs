//! Glue of `audit`, `probes` and `report --reanalyze`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::exit;
use crate::probe::membership;
use crate::run::audit::{self, AuditSpec};
use crate::run::plan::Plan;

/// Options of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The target model: a Hugging Face checkpoint folder, a GGUF file, or `mock:<fixture.json>`.
    #[arg(long)]
    pub model: String,
    /// A PEFT LoRA adapter folder merged into the target.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Dataset card whose [membership] section marks members and non-members of the target
    /// (needed by the membership probe).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Canaries planted in the target's training data (TOML; see `phiprobe probes`). A model
    /// trained by phiprobe carries its own in training.json.
    #[arg(long, value_name = "FILE")]
    pub canaries: Option<PathBuf>,
    /// Text column (default: the card's one text column).
    #[arg(long)]
    pub column: Option<String>,
    /// Reference models with known training records: a fleet folder (fleet.json, from
    /// `train --references K` or `merge`) or a model folder trained by phiprobe (training.json).
    /// Repeat for several.
    #[arg(long = "references", value_name = "DIR")]
    pub references: Vec<PathBuf>,
    /// A fleet.json-format manifest listing model folders and the record ids each trained on.
    #[arg(long, value_name = "FILE")]
    pub reference_manifest: Option<PathBuf>,
    /// A reference model without known membership (e.g. the public base model) for the
    /// `reference` attack.
    #[arg(long, value_name = "MODEL")]
    pub reference_model: Option<String>,
    /// Probe plan (TOML); default: probes/default.toml's settings, built in.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Output run folder (default: reports/audit-<id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of every random stream (bootstrap, calibration split); overrides the plan's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Release policy (TOML): exit 1 when a finding breaches a threshold.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Scoring threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Padded tokens per scoring batch.
    #[arg(long, default_value_t = 8192)]
    pub batch_tokens: usize,
    /// Facts of the Expert Determination (expert, recipient, release, DUA terms).
    #[arg(long, value_name = "FILE")]
    pub determination: Option<PathBuf>,
    /// Also write the PHI behind the findings (values the model reproduced or inferred, texts
    /// of the most exposed records) — only into an AES-256-GCM encrypted bundle,
    /// phi-examples.bundle, with the key of --bundle-key or PHIPROBE_BUNDLE_KEY.
    #[arg(long)]
    pub include_phi_examples: bool,
    /// Key file for the encrypted PHI bundle (64 hex digits; `phiprobe keygen --bundle`).
    #[arg(long, value_name = "FILE", requires = "include_phi_examples")]
    pub bundle_key: Option<PathBuf>,
}

/// Options of the hidden `bench-mia` (used by benches/compare_membership.py).
#[derive(Debug, Args)]
pub struct BenchMiaArgs {
    /// What to time: `roc` (ROC + AUC of one score vector), `full` (every attack and metric),
    /// `rmia` (RMIA of `records` against as many population points).
    #[arg(long, default_value = "full")]
    pub mode: String,
    /// Audit records.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// Reference models.
    #[arg(long, default_value_t = 16)]
    pub references: usize,
    /// Scored tokens per record under the target.
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Timed repetitions (the best is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Write the loss attack's scores (f64 LE) and labels (u8) here, for scikit-learn.
    #[arg(long)]
    pub scores_out: Option<PathBuf>,
}

/// `phiprobe bench-mia`: times the membership statistics on a synthetic audit; prints JSON.
pub fn bench_mia_cmd(a: &BenchMiaArgs) -> Result<u8> {
    use crate::probe::membership::{analyze, rmia_scores, synthetic_audit};
    use crate::stats::roc::Roc;
    let best = |f: &mut dyn FnMut() -> f64| -> (f64, f64) {
        let mut t = f64::INFINITY;
        let mut v = 0.0;
        for _ in 0..a.repeat.max(1) {
            let t0 = std::time::Instant::now();
            v = f();
            t = t.min(t0.elapsed().as_secs_f64());
        }
        (t, v)
    };
    let out = match a.mode.as_str() {
        "rmia" => {
            let mut rng = crate::stats::Rng::new(3);
            let lr: Vec<f64> = (0..2 * a.records).map(|_| rng.normal()).collect();
            let population: Vec<usize> = (a.records..2 * a.records).collect();
            let (t, v) = best(&mut || {
                let s = rmia_scores(&lr[..], &population, 1.0);
                s[..a.records].iter().sum::<f64>()
            });
            serde_json::json!({"mode": "rmia", "records": a.records, "population": a.records, "seconds": t, "checksum": v})
        }
        "roc" | "full" => {
            let obs = synthetic_audit(a.records, a.references, a.tokens, 7);
            let scores: Vec<f64> = obs.target.totals.iter().map(|t| t.mean()).collect();
            if let Some(p) = &a.scores_out {
                let mut bytes = Vec::with_capacity(scores.len() * 9);
                for s in &scores {
                    bytes.extend_from_slice(&s.to_le_bytes());
                }
                bytes.extend(obs.member.iter().map(|&m| u8::from(m)));
                crate::fsx::write_atomic(p, &bytes)?;
            }
            if a.mode == "roc" {
                let (t, auc) = best(&mut || Roc::new(&scores, &obs.member).auc());
                serde_json::json!({"mode": "roc", "records": a.records, "seconds": t, "auc": auc})
            } else {
                let settings = membership::Settings::default();
                let (t, n) = best(&mut || {
                    analyze(&obs, &settings, 7, &[], "bench")
                        .map(|(f, _)| f.len() as f64)
                        .unwrap_or(f64::NAN)
                });
                serde_json::json!({"mode": "full", "records": a.records, "references": a.references,
                    "bootstrap": settings.bootstrap, "attacks": settings.attacks.len(), "findings": n, "seconds": t})
            }
        }
        other => anyhow::bail!(crate::Error::Usage(format!(
            "--mode {other}: expected roc, full or rmia"
        ))),
    };
    println!("{out}");
    Ok(exit::PASS)
}

/// Options of `probes`.
#[derive(Debug, Args)]
pub struct ProbesArgs {}

fn load_plan(path: Option<&std::path::Path>) -> Result<Plan> {
    Ok(match path {
        Some(p) => Plan::load(p)?,
        None => Plan::default(),
    })
}

/// `phiprobe audit`.
pub fn audit_cmd(a: &AuditArgs, quiet: bool) -> Result<u8> {
    let mut plan = load_plan(a.plan.as_deref())?;
    // Without --data the probes that read records cannot run; the default plan then runs the
    // rest.
    if a.data.is_none() && a.plan.is_none() {
        for p in crate::probe::REGISTRY.iter().filter(|p| p.needs_data()) {
            plan.set_dyn(p.kind(), None);
        }
    }
    let seed = plan.run.seed(a.seed);
    let policy = match &a.policy {
        Some(p) => Some((crate::gate::Policy::load(p)?, p.clone())),
        None => None,
    };
    let determination = match &a.determination {
        Some(p) => Some(crate::run::plan::load_determination(p)?),
        None => None,
    };
    // The key is checked before any model work, so a missing key fails fast.
    let phi_examples = if a.include_phi_examples {
        Some(crate::integrity::bundle::Key::load(
            a.bundle_key.as_deref(),
        )?)
    } else {
        None
    };
    let mut plan_json = serde_json::json!({
        "model": a.model,
        "adapter": a.adapter,
        "data": a.data,
        "column": a.column,
        "references": a.references,
        "reference_manifest": a.reference_manifest,
        "reference_model": a.reference_model,
        "plan_file": a.plan,
        "canaries": a.canaries,
    });
    if let Some(o) = plan_json.as_object_mut() {
        o.extend(plan.recorded());
    }
    let id = crate::run::audit_id(&plan_json, seed);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&id));
    let spec = AuditSpec {
        data: a.data.clone(),
        column: a.column.clone(),
        model: a.model.clone(),
        adapter: a.adapter.clone(),
        references: a.references.clone(),
        reference_manifest: a.reference_manifest.clone(),
        reference_model: a.reference_model.clone(),
        probes: plan,
        canaries: a.canaries.clone(),
        out: out.clone(),
        seed,
        threads: a.threads,
        batch_tokens: a.batch_tokens,
        plan: plan_json.clone(),
        policy,
        determination,
        phi_examples,
    };
    let manifest = crate::run::manifest(&id, "audit", seed, plan_json, Vec::new());
    let outcome = run_audit(&spec, manifest, quiet)?;
    let (result, code) = crate::run::folder::run_result(&outcome.file);
    crate::run::folder::log_event(&out, &outcome.file, "run", result, code)?;
    if !quiet {
        let mut err = std::io::stderr();
        let models = outcome
            .file
            .membership
            .as_ref()
            .map_or(1, |d| d.references.len() + 1)
            + usize::from(a.reference_model.is_some());
        if outcome.file.membership.is_some() && outcome.scored.len() < models {
            eprintln!(
                "resumed: reused cached observations of {} model(s), scored {}",
                models - outcome.scored.len(),
                outcome.scored.len()
            );
        }
        crate::report::terminal::membership(&mut err, &outcome.file)?;
        crate::report::terminal::canary(&mut err, &outcome.file)?;
        crate::report::terminal::extraction(&mut err, &outcome.file)?;
        crate::report::terminal::inversion(&mut err, &outcome.file)?;
        crate::report::terminal::dp(&mut err, &outcome.file)?;
        if let Some(g) = &outcome.file.gate {
            eprintln!("release gate ({}):", g.policy.path);
            eprint!("{}", crate::report::gate::table(g));
        }
        if spec.phi_examples.is_some() {
            eprintln!(
                "PHI examples: {} (encrypted; `phiprobe decrypt` with the bundle key)",
                out.join(crate::integrity::bundle::BUNDLE).display()
            );
        }
        eprintln!("report: {}", out.join(crate::report::HTML).display());
    }
    if let Some(e) = outcome
        .file
        .dp
        .as_ref()
        .and_then(crate::probe::dp_audit::violation_error)
    {
        return Err(e.into());
    }
    Ok(if outcome.failed > 0 {
        exit::POLICY_BREACHED
    } else {
        exit::PASS
    })
}

/// Moves the scoring bar of stage `name` (a new bar when the stage changes).
pub(crate) fn scoring_progress(
    bar: &mut Option<(String, indicatif::ProgressBar)>,
    name: &str,
    done: usize,
    total: usize,
    quiet: bool,
) {
    if bar.as_ref().is_none_or(|(n, _)| n != name) {
        if let Some((_, b)) = bar.take() {
            b.finish_and_clear();
        }
        *bar = Some((
            name.to_owned(),
            super::progress_bar(total as u64, quiet, &format!("scoring ({name})")),
        ));
    }
    if let Some((_, b)) = bar {
        b.set_position(done as u64);
    }
}

/// Runs an audit with progress bars.
pub(crate) fn run_audit(
    spec: &AuditSpec,
    manifest: crate::evidence::RunManifest,
    quiet: bool,
) -> Result<audit::AuditOutcome> {
    let mut bar: Option<(String, indicatif::ProgressBar)> = None;
    let mut progress = |name: &str, done: usize, total: usize| {
        scoring_progress(&mut bar, name, done, total, quiet);
    };
    spec.check()?;
    let folder = crate::run::folder::claim(&spec.out, &spec.input_paths())?;
    let outcome = audit::run(spec, &folder, manifest, &mut progress)?;
    if let Some((_, b)) = bar {
        b.finish_and_clear();
    }
    Ok(outcome)
}

/// `phiprobe probes`: every registered probe, its settings with their doc comments and
/// defaults, generated from the settings types (never a hand-written copy).
pub fn probes_cmd() -> Result<u8> {
    print!("{}", probes_text());
    Ok(exit::PASS)
}

/// The text of `phiprobe probes`.
pub fn probes_text() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for p in crate::probe::REGISTRY {
        let _ = writeln!(out, "{}", p.title());
        let (about, help) = (p.about(), p.help());
        for para in about.split("\n\n").skip(1) {
            wrap(
                &mut out,
                "  ",
                &para.split_whitespace().collect::<Vec<_>>().join(" "),
            );
        }
        let width = help.iter().map(|h| h.key.len()).max().unwrap_or(0);
        for h in &help {
            let default = if h.default.is_empty() {
                String::new()
            } else {
                format!(" (default {})", h.default)
            };
            let lead = format!("  {:width$}  ", h.key);
            wrap(&mut out, &lead, &format!("{}{default}", h.doc));
        }
        out.push('\n');
    }
    out.push_str("Plans: [[probe]] tables with kind = \"…\" and the settings above; see probes/default.toml.\n");
    out
}

/// Appends `text` after `lead`, wrapped at 100 columns, continuation lines indented to the lead.
fn wrap(out: &mut String, lead: &str, text: &str) {
    let indent = " ".repeat(lead.chars().count());
    let mut line = lead.to_owned();
    let mut empty = true;
    for w in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + w.chars().count() > 100 {
            out.push_str(line.trim_end());
            out.push('\n');
            line.clone_from(&indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(w);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Options of the hidden `bench-canary`: exact-rank search against enumeration.
#[derive(Debug, Args)]
pub struct BenchCanaryArgs {
    /// A model folder trained by phiprobe with canaries (or any model with --format, --context
    /// and --secret).
    #[arg(long)]
    pub model: String,
    /// Canary kind to take from the training record (its most repeated canary).
    #[arg(long, default_value = "ssn")]
    pub kind: String,
    /// Format, context and secret of a canary (instead of the training record's).
    #[arg(long, requires_all = ["context", "secret"])]
    pub format: Option<String>,
    /// Context with {secret}.
    #[arg(long)]
    pub context: Option<String>,
    /// The secret.
    #[arg(long)]
    pub secret: Option<String>,
    /// Most node expansions.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_expansions: u64,
    /// Prefixes per model call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Sentences scored to time enumeration (which is extrapolated to the whole space).
    #[arg(long, default_value_t = 4096)]
    pub enumerate: usize,
    /// Scoring threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `phiprobe bench-canary`: exact-rank search cost against enumerating the canary's space;
/// prints JSON.
pub fn bench_canary_cmd(a: &BenchCanaryArgs) -> Result<u8> {
    use crate::probe::canary::search;
    use crate::train::canary::Format;
    let model = crate::model::load(
        &a.model,
        &crate::model::LoadOptions {
            adapter: None,
            threads: a.threads,
        },
    )?;
    let (format, context, secret, copies) = match (&a.format, &a.context, &a.secret) {
        (Some(f), Some(c), Some(s)) => (f.clone(), c.clone(), s.clone(), None),
        _ => {
            let Some((_, specs, _)) = crate::probe::canary::source(
                None,
                audit::training_record(&a.model)?.as_ref(),
                &a.model,
                2,
                0,
            )?
            else {
                return Err(crate::Error::Usage(format!(
                    "{}: no training record with canaries; give --format, --context and --secret",
                    a.model
                ))
                .into());
            };
            let c = specs
                .iter()
                .filter(|c| c.kind == a.kind)
                .max_by_key(|c| c.repetitions)
                .ok_or_else(|| crate::Error::Usage(format!("no canary of kind '{}'", a.kind)))?;
            (
                c.format.clone(),
                c.context.clone(),
                c.secret.clone(),
                Some(c.repetitions),
            )
        }
    };
    let f = Format::parse(&format).map_err(crate::Error::Usage)?;
    let surfaces = search::Surfaces::of(model.as_ref())?;
    let q = search::Query {
        format: &f,
        context: &context,
        secret: &secret,
    };
    let t0 = std::time::Instant::now();
    let found = search::exact_rank(
        model.as_ref(),
        &surfaces,
        &q,
        search::Limits {
            max_expansions: a.max_expansions,
            batch: a.batch,
        },
    )?;
    let search_s = t0.elapsed().as_secs_f64();
    // Enumeration: score random sentences of the space the way a brute-force ranker would.
    let mut rng = crate::stats::Rng::derive(0, "bench-canary", 0);
    let texts: Vec<String> = (0..a.enumerate)
        .map(|_| context.replace("{secret}", &f.sample(&mut rng)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let _ = crate::model::score_texts(model.as_ref(), &refs[..refs.len().min(64)], 16_384, |_| {})?;
    let t1 = std::time::Instant::now();
    crate::model::score_texts(model.as_ref(), &refs, 16_384, |_| {})?;
    let per_s = a.enumerate as f64 / t1.elapsed().as_secs_f64();
    let space = f.log2_space().exp2();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "format": format,
            "copies": copies,
            "space": space,
            "rank": found.rank,
            "exact": found.exact,
            "exposure_bits": f.log2_space() - (found.rank as f64).log2(),
            "search_model_calls": found.expansions,
            "search_batches": found.batches,
            "search_seconds": search_s,
            "enumeration_model_calls": space,
            "enumeration_sentences_per_second": per_s,
            "enumeration_seconds_extrapolated": space / per_s,
            "calls_ratio": found.expansions as f64 / space,
            "time_ratio": search_s / (space / per_s),
        }))?
    );
    Ok(exit::PASS)
}

/// Options of the hidden `bench-inversion`: candidate scoring over a shared prefix (KV cache)
/// against re-scoring every full text.
#[derive(Debug, Args)]
pub struct BenchInversionArgs {
    /// The model (folder, GGUF file or mock: fixture).
    #[arg(long)]
    pub model: String,
    /// Candidates scored (diagnosis titles of the generator's vocabulary).
    #[arg(long, default_value_t = 128)]
    pub candidates: usize,
    /// Timed repetitions of each method (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `phiprobe bench-inversion`: prints JSON with both timings, their ratio and the largest
/// disagreement between the two methods' log-probabilities.
pub fn bench_inversion_cmd(a: &BenchInversionArgs) -> Result<u8> {
    let model = crate::model::load(
        &a.model,
        &crate::model::LoadOptions {
            adapter: None,
            threads: a.threads,
        },
    )?;
    let (prefix, conts) = crate::probe::inversion::bench_workload(model.as_ref(), a.candidates)?;
    let time = |f: &dyn Fn() -> crate::Result<Vec<Vec<f32>>>| -> Result<(f64, Vec<Vec<f32>>)> {
        let mut best = f64::INFINITY;
        let mut out = Vec::new();
        for _ in 0..a.repeat.max(1) {
            let t0 = std::time::Instant::now();
            out = f()?;
            best = best.min(t0.elapsed().as_secs_f64());
        }
        Ok((best, out))
    };
    let (shared_s, shared) = time(&|| model.score_continuations(&prefix, &conts))?;
    let (full_s, full) =
        time(&|| crate::model::rescore_continuations(model.as_ref(), &prefix, &conts))?;
    let worst = shared
        .iter()
        .flatten()
        .zip(full.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "model": model.card().architecture,
            "parameters": model.card().parameters,
            "prefix_tokens": prefix.len(),
            "candidates": conts.len(),
            "candidate_tokens_mean": conts.iter().map(Vec::len).sum::<usize>() as f64 / conts.len() as f64,
            "shared_prefix_seconds": shared_s,
            "rescore_seconds": full_s,
            "speedup": full_s / shared_s,
            "max_abs_logprob_difference": worst,
        }))?
    );
    Ok(exit::PASS)
}
