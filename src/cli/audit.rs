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
    let plan = load_plan(a.plan.as_deref())?;
    // Without --data the membership and extraction probes cannot run; the default plan then
    // runs the rest.
    let settings = match (&plan.membership, &a.data, &a.plan) {
        (Some(_), None, None) => None,
        (m, _, _) => m.clone(),
    };
    let extraction = match (&plan.extraction, &a.data, &a.plan) {
        (Some(_), None, None) => None,
        (e, _, _) => e.clone(),
    };
    let inversion = match (&plan.inversion, &a.data, &a.plan) {
        (Some(_), None, None) => None,
        (e, _, _) => e.clone(),
    };
    let seed = a.seed.or(plan.run.seed).unwrap_or(7);
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
    let plan_json = serde_json::json!({
        "model": a.model,
        "adapter": a.adapter,
        "data": a.data,
        "column": a.column,
        "references": a.references,
        "reference_manifest": a.reference_manifest,
        "reference_model": a.reference_model,
        "plan_file": a.plan,
        "canaries": a.canaries,
        "membership": settings,
        "canary": plan.canary,
        "extraction": extraction,
        "inversion": inversion,
    });
    let mut plan_json = plan_json;
    if let Some(d) = &plan.dp_audit {
        plan_json["dp_audit"] = serde_json::json!(d);
    }
    let id = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(plan_json.to_string().as_bytes());
        h.update(seed.to_le_bytes());
        let d = h.finalize();
        format!(
            "audit-{}",
            d[..5]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
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
        settings,
        canary: plan.canary.clone(),
        canaries: a.canaries.clone(),
        extraction,
        inversion,
        dp_audit: plan.dp_audit,
        out: out.clone(),
        seed,
        threads: a.threads,
        batch_tokens: a.batch_tokens,
        plan: plan_json.clone(),
        policy,
        determination,
        phi_examples,
    };
    let manifest = super::manifest(&id, "audit", seed, plan_json, Vec::new());
    let outcome = run_audit(&spec, manifest, quiet)?;
    let (result, code) = super::evidence::run_result(&outcome.file);
    super::evidence::log_event(&out, &outcome.file, "run", result, code)?;
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
        print_membership(&mut err, &outcome.file)?;
        print_canary(&mut err, &outcome.file)?;
        print_extraction(&mut err, &outcome.file)?;
        print_inversion(&mut err, &outcome.file)?;
        print_dp(&mut err, &outcome.file)?;
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

/// The DP audit on a terminal: the setting, the accountant's ε and every empirical ε.
pub fn print_dp(w: &mut impl std::io::Write, file: &crate::evidence::FindingsFile) -> Result<()> {
    let Some(d) = &file.dp else {
        return Ok(());
    };
    let s = &d.setting;
    writeln!(
        w,
        "DP audit: σ {}, C {}, q {:.4}, {} steps, δ {}: accountant ε = {}; validation perplexity {}",
        s.noise,
        s.clip,
        s.sample_rate,
        s.steps,
        s.delta,
        s.epsilon
            .map_or("∞ (no noise)".into(), |e| format!("{e:.3}")),
        d.validation_perplexity
            .map_or("n/a".into(), |p| format!("{p:.1}"))
    )?;
    for e in &d.estimates {
        writeln!(
            w,
            "  {:<18} {:<16} {:>8.3}{}  ({} of {} included; {}, ceiling {:.2})",
            e.instrument,
            e.method_id,
            e.value,
            e.interval
                .map_or(String::new(), |(lo, hi)| format!(" [{lo:.3}, {hi:.3}]")),
            e.included,
            e.canaries,
            match e.kind {
                crate::evidence::EpsilonKind::Bound =>
                    format!("bound at {:.0}%", 100.0 * e.confidence),
                crate::evidence::EpsilonKind::Estimate => "estimate".into(),
            },
            e.ceiling
        )?;
    }
    if let Some(m) = &d.mechanism {
        writeln!(
            w,
            "  white-box mechanism check: noise std {:.4} (σ {}), included mean {:.4} (q {:.4}): {}",
            m.out_std,
            s.noise,
            m.in_mean,
            s.sample_rate,
            if m.passed {
                "consistent"
            } else {
                "INCONSISTENT"
            }
        )?;
    }
    for n in &d.notes {
        writeln!(w, "  note: {n}")?;
    }
    Ok(())
}

/// Runs an audit with progress bars.
pub(crate) fn run_audit(
    spec: &AuditSpec,
    manifest: crate::evidence::RunManifest,
    quiet: bool,
) -> Result<audit::AuditOutcome> {
    let mut bar: Option<(String, indicatif::ProgressBar)> = None;
    let mut progress = |name: &str, done: usize, total: usize| {
        if bar.as_ref().is_none_or(|(n, _)| n != name) {
            if let Some((_, b)) = bar.take() {
                b.finish_and_clear();
            }
            bar = Some((
                name.to_owned(),
                super::progress_bar(total as u64, quiet, &format!("scoring ({name})")),
            ));
        }
        if let Some((_, b)) = &bar {
            b.set_position(done as u64);
        }
    };
    spec.check()?;
    let folder = super::evidence::claim(&spec.out, &spec.input_paths())?;
    let outcome = audit::run(spec, &folder, manifest, &mut progress)?;
    if let Some((_, b)) = bar {
        b.finish_and_clear();
    }
    Ok(outcome)
}

/// The membership table on a terminal: AUC and TPR at the plan's FPRs, per attack.
pub fn print_membership(
    w: &mut impl std::io::Write,
    file: &crate::evidence::FindingsFile,
) -> Result<()> {
    let Some(d) = &file.membership else {
        return Ok(());
    };
    writeln!(
        w,
        "membership inference: {} audit records ({} members), {} reference model(s)",
        d.records,
        d.members,
        d.references.len()
    )?;
    let fprs: Vec<f64> = d
        .settings
        .get("fpr")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let mut header = format!("  {:<14} {:>22}", "attack", "AUC [95% CI]");
    for f in &fprs {
        header.push_str(&format!(" {:>16}", format!("TPR@{}%FPR", f * 100.0)));
    }
    header.push_str(&format!(" {:>8}", "ε lb"));
    writeln!(w, "{header}")?;
    for a in &d.attacks {
        let get = |metric: &str, fpr: Option<f64>| {
            file.findings.iter().find(|f| {
                f.metric == metric
                    && f.params.get("attack").and_then(|v| v.as_str()) == Some(a.attack.as_str())
                    && fpr.is_none_or(|x| f.params.get("fpr").and_then(|v| v.as_f64()) == Some(x))
            })
        };
        let auc = get("mia.auc", None);
        let mut line = format!(
            "  {:<14} {:>22}",
            a.attack,
            auc.map_or("n/a".into(), |f| match (&f.value, &f.interval) {
                (Some(v), Some(i)) => format!("{v:.3} [{:.3}, {:.3}]", i.lo, i.hi),
                (Some(v), None) => format!("{v:.3}"),
                _ => "n/a".into(),
            })
        );
        for &x in &fprs {
            line.push_str(&format!(
                " {:>16}",
                get("mia.tpr_at_fpr", Some(x))
                    .and_then(|f| f.counts)
                    .map_or("n/a".into(), |c| format!("{} of {}", c.k, c.n))
            ));
        }
        line.push_str(&format!(
            " {:>8}",
            get("dp.epsilon_lb", None)
                .and_then(|f| f.value)
                .map_or("n/a".into(), |v| format!("{v:.2}"))
        ));
        writeln!(w, "{line}")?;
    }
    for f in file
        .findings
        .iter()
        .filter(|f| f.metric == "mia.auc" && f.value.is_none())
    {
        if let (Some(a), Some(c)) = (f.params.get("attack"), f.caveats.first()) {
            writeln!(w, "  {:<14} {c}", a.as_str().unwrap_or(""))?;
        }
    }
    for c in d.shift.iter().filter(|c| c.shifted) {
        writeln!(
            w,
            "  caveat: members and non-members differ in {} (AUC {} on its own)",
            c.feature,
            c.auc.map_or("n/a".into(), |v| format!("{v:.3}"))
        )?;
    }
    Ok(())
}

/// The canary table on a terminal: exposure per kind and copies.
pub fn print_canary(
    w: &mut impl std::io::Write,
    file: &crate::evidence::FindingsFile,
) -> Result<()> {
    let Some(d) = &file.canary else {
        if let Some(f) = file
            .findings
            .iter()
            .find(|f| f.probe == "canary" && f.value.is_none())
        {
            writeln!(w, "canary exposure: {}", f.caveats.join("; "))?;
        }
        return Ok(());
    };
    let mut kinds: Vec<&str> = d.rows.iter().map(|r| r.kind.as_str()).collect();
    kinds.dedup();
    let mut reps: Vec<usize> = d
        .rows
        .iter()
        .map(crate::evidence::CanaryRow::rung_key)
        .collect();
    reps.sort_unstable();
    reps.dedup();
    writeln!(
        w,
        "canary exposure in bits (exact rank where searched, ≤ a bound where the search stopped; else rank among references):"
    )?;
    write!(w, "  {:>8}", "planted")?;
    for k in &kinds {
        write!(w, "  {k:>9}")?;
    }
    writeln!(w)?;
    for r in reps {
        write!(w, "  {r:>8}")?;
        for k in &kinds {
            let cell = d
                .rows
                .iter()
                .filter(|x| x.kind == *k && x.rung_key() == r)
                .map(|x| match x.exact_rank {
                    Some((_, false)) => format!("≤{:.1}", x.exposure_exact.unwrap_or(f64::NAN)),
                    _ => format!("{:.1}", x.exposure),
                })
                .collect::<Vec<_>>()
                .join("/");
            write!(w, "  {cell:>9}")?;
        }
        writeln!(w)?;
    }
    if let Some(t) = d.trend {
        writeln!(w, "  Spearman ρ(copies, exposure) = {t:.3}")?;
    }
    Ok(())
}

/// The extraction summary on a terminal.
pub fn print_extraction(
    w: &mut impl std::io::Write,
    file: &crate::evidence::FindingsFile,
) -> Result<()> {
    let Some(d) = &file.extraction else {
        return Ok(());
    };
    let pct = |(k, n): (u64, u64)| {
        if n == 0 {
            "n/a".to_owned()
        } else {
            format!("{k}/{n}")
        }
    };
    writeln!(
        w,
        "extraction: {} records ({} members); continuation reproduced exactly (members vs non-members):",
        d.records, d.members
    )?;
    for p in &d.curve {
        writeln!(
            w,
            "  k = {:>3}  {:>9} vs {:>9}",
            p.k,
            pct(p.member),
            pct(p.control)
        )?;
    }
    let flagged: Vec<String> = d
        .types
        .iter()
        .filter(|t| t.member.0 + t.control.0 > 0)
        .map(|t| {
            format!(
                "{} {} {} vs {}",
                t.mode.replace('_', " "),
                t.phi_type,
                pct(t.member),
                pct(t.control)
            )
        })
        .collect();
    if flagged.is_empty() {
        writeln!(w, "  no identifier reproduced, for members or non-members")?;
    } else {
        writeln!(w, "  identifiers reproduced: {}", flagged.join("; "))?;
    }
    Ok(())
}

/// The inversion summary on a terminal.
pub fn print_inversion(
    w: &mut impl std::io::Write,
    file: &crate::evidence::FindingsFile,
) -> Result<()> {
    let Some(d) = &file.inversion else {
        return Ok(());
    };
    writeln!(
        w,
        "inversion: top-1 attribute inference, members vs non-members vs prior (residual risk, {:.0}% CI):",
        d.confidence * 100.0
    )?;
    for f in &d.fields {
        let r = f.residual.map_or_else(
            || "n/a".to_owned(),
            |(p, lo, hi)| format!("{p:+.3} [{lo:.3}, {hi:.3}]"),
        );
        writeln!(
            w,
            "  {:<16} {:>7} vs {:>7} vs {:>7}   residual {r}",
            f.field,
            format!("{}/{}", f.attack.k, f.attack.n),
            format!("{}/{}", f.control.k, f.control.n),
            format!("{}/{}", f.prior.k, f.prior.n),
        )?;
    }
    if let Some(l) = &d.linkage {
        let t = l.thresholds.first().copied().unwrap_or(f64::NAN);
        let above = |s: &crate::evidence::IdSummary| s.above.first().copied().unwrap_or(0);
        let mean = |s: &crate::evidence::IdSummary| s.mean.unwrap_or(f64::NAN);
        writeln!(
            w,
            "  identification of member patients (release de-identified to {}): mean {:.3} with the model's answers vs {:.3} from the release alone; above {t}: {}/{} vs {}/{}; max {:.3}",
            l.released.join(", "),
            mean(&l.member_model),
            mean(&l.member_baseline),
            above(&l.member_model),
            l.member_model.n,
            above(&l.member_baseline),
            l.member_baseline.n,
            l.member_model.max.unwrap_or(f64::NAN)
        )?;
    }
    if let Some(p) = &d.posterior {
        writeln!(
            w,
            "  membership posterior ≥ {:.3} at prior {:.3} (ε ≥ {:.3}, {})",
            p.posterior, p.prior, p.epsilon, p.attack
        )?;
    }
    Ok(())
}

/// `phiprobe probes`: the probe kinds and their settings.
pub fn probes_cmd() -> Result<u8> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let d = membership::Settings::default();
    let _ = writeln!(
        out,
        "membership — can an attacker tell whether a record was in the training data?"
    );
    let _ = writeln!(out, "  attacks      {}", membership::ATTACKS.join(", "));
    let _ = writeln!(
        out,
        "  fpr          TPR reported at these FPRs, exact counts (default {:?})",
        d.fpr
    );
    let _ = writeln!(out, "  min_k        Min-K% fraction (default {})", d.min_k);
    let _ = writeln!(
        out,
        "  min_k_pp     Min-K%++ fraction (default {})",
        d.min_k_pp
    );
    let _ = writeln!(
        out,
        "  lira         location = mean|median, variance = per_record|fixed, offline_test = one-sided|two-sided"
    );
    let _ = writeln!(
        out,
        "  rmia         gamma ≥ 1 (default 1), offline_a in [0, 1] (default: tuned on the reference models)"
    );
    let _ = writeln!(
        out,
        "  bootstrap    AUC bootstrap resamples (default {})",
        d.bootstrap
    );
    let _ = writeln!(
        out,
        "  confidence   interval level (default {})",
        d.confidence
    );
    let _ = writeln!(
        out,
        "  delta        δ of the empirical ε lower bound (default {})",
        d.delta
    );
    let _ = writeln!(
        out,
        "  prevalence   member prevalence for PPV (default: the audit's own share)"
    );
    let _ = writeln!(
        out,
        "  vulnerable   members listed as most exposed per attack (default {})",
        d.vulnerable
    );
    let _ = writeln!(
        out,
        "  retokenize   compare models with different tokenizers per UTF-8 byte (default false)"
    );
    let c = crate::probe::canary::Settings::default();
    out.push('\n');
    let _ = writeln!(
        out,
        "canary — how many bits of a planted secret does the model give away? (exposure, Carlini et al. 2019)"
    );
    let _ = writeln!(
        out,
        "  canaries come from the target's training.json (phiprobe train) or `audit --canaries FILE`:"
    );
    let _ = writeln!(
        out,
        "    [[canary]] id, kind (optional), secret, format ({{dN}} {{uN}} {{lN}} {{date}}), context with {{secret}}, repetitions"
    );
    let _ = writeln!(
        out,
        "  references      reference secrets drawn per format for --canaries (default {})",
        c.references
    );
    let _ = writeln!(
        out,
        "  search          exact rank by token-tree search: saturated (default) | always | never"
    );
    let _ = writeln!(
        out,
        "  max_expansions  prefix forward passes per canary before stopping with a bound (default {})",
        c.max_expansions
    );
    let _ = writeln!(
        out,
        "  batch           prefixes per model call (default {})",
        c.batch
    );
    let _ = writeln!(
        out,
        "  confidence      interval level (default {})",
        c.confidence
    );
    let e = crate::probe::extraction::Settings::default();
    out.push('\n');
    let _ = writeln!(
        out,
        "extraction — can the model be made to say what it was trained on? (members vs non-member control)"
    );
    let _ = writeln!(
        out,
        "  prefix_tokens          k of the k-extractability curve (default {:?})",
        e.prefix_tokens
    );
    let _ = writeln!(
        out,
        "  suffix_tokens          continuation generated and compared (default {})",
        e.suffix_tokens
    );
    let _ = writeln!(
        out,
        "  decodes                greedy, beam, sample (default all)"
    );
    let _ = writeln!(
        out,
        "  beam_width, samples    beams; seeded samples per prompt (default {}, {})",
        e.beam_width, e.samples
    );
    let _ = writeln!(
        out,
        "  temperature, top_k     of the targeted sampling decode (default {}, {})",
        e.temperature,
        e.top_k.map_or_else(|| "all".to_owned(), |k| k.to_string())
    );
    let _ = writeln!(
        out,
        "  records                records probed per group, seeded sample; 0 = all (default {})",
        e.records
    );
    let _ = writeln!(
        out,
        "  identifiers_per_record identifier prompts (text up to one identifier) per record (default {})",
        e.identifiers_per_record
    );
    let _ = writeln!(
        out,
        "  near                   normalised edit distance of a near match (default {})",
        e.near
    );
    let _ = writeln!(
        out,
        "  generations            untargeted generations per sweep point; 0 = none (default {})",
        e.generations
    );
    let _ = writeln!(
        out,
        "  generation_tokens      tokens per untargeted generation (default {})",
        e.generation_tokens
    );
    let _ = writeln!(
        out,
        "  sweep                  [{{temperature, top_k, top_p}}, …] of the untargeted attack"
    );
    let _ = writeln!(
        out,
        "  batch, examples        prompts per generation call; masked examples in the report"
    );
    let _ = writeln!(
        out,
        "  --reference-model      identifiers it also emits are subtracted"
    );
    let v = crate::probe::inversion::Settings::default();
    out.push('\n');
    let _ = writeln!(
        out,
        "inversion — what does the model reveal about a patient from what an attacker knows, and how identifiable does that make them?"
    );
    let rows: [(&str, String); 20] = [
        (
            "fields",
            "fields to infer (default: the card's sensitive columns)".into(),
        ),
        (
            "records",
            format!(
                "patients per arm (members, non-members), seeded sample; 0 = all (default {})",
                v.records
            ),
        ),
        (
            "max_candidates",
            format!(
                "candidate values ranked per target (default {})",
                v.max_candidates
            ),
        ),
        (
            "top_k",
            format!("k of the top-k rates (default {})", v.top_k),
        ),
        (
            "prior_qis",
            "quasi-identifiers the prior baseline conditions on (default: none, the marginal)"
                .into(),
        ),
        (
            "prior_min",
            format!(
                "other-patient records a prior class needs (default {})",
                v.prior_min
            ),
        ),
        (
            "released",
            format!(
                "quasi-identifiers of the de-identified release (default {:?})",
                v.released
            ),
        ),
        (
            "link_fields",
            "fields matched against the release (default: the sensitive fields)".into(),
        ),
        (
            "thresholds",
            format!(
                "identification-probability thresholds (default {:?})",
                v.thresholds
            ),
        ),
        (
            "population",
            "population N of the membership prior n/N (default: the dataset's patients)".into(),
        ),
        (
            "prompts",
            "reconstruction templates, {column} or {column:A=x,B=y} (default: none)".into(),
        ),
        (
            "reconstruct",
            "fields checked in reconstructions (default: the fields and direct identifiers)".into(),
        ),
        (
            "reconstruct_tokens",
            format!(
                "tokens decoded per reconstruction (default {})",
                v.reconstruct_tokens
            ),
        ),
        (
            "beam_width",
            format!(
                "beams of the reconstruction decode (default {})",
                v.beam_width
            ),
        ),
        (
            "generations",
            format!(
                "unconditioned generations matched to patients; 0 = none (default {})",
                v.generations
            ),
        ),
        (
            "generation_tokens",
            format!("tokens per generation (default {})", v.generation_tokens),
        ),
        (
            "temperature, sample_top_k",
            format!(
                "sampling of the generations (default {}, {})",
                v.temperature,
                v.sample_top_k
                    .map_or_else(|| "all".to_owned(), |k| k.to_string())
            ),
        ),
        (
            "match_qis",
            "columns matched in generations (default: the dated / geographic quasi-identifiers)"
                .into(),
        ),
        (
            "min_match",
            format!(
                "values of one patient that must co-occur (default {})",
                v.min_match
            ),
        ),
        (
            "batch, confidence",
            format!(
                "prompts per generation call; interval level (default {}, {})",
                v.batch, v.confidence
            ),
        ),
    ];
    for (k, d) in rows {
        let _ = writeln!(out, "  {k:<26} {d}");
    }
    let p = crate::probe::dp_audit::Settings::default();
    out.push('\n');
    let _ = writeln!(
        out,
        "dp_audit — does the DP-SGD target leak more than its accountant's ε allows? (empirical ε lower bounds)"
    );
    let _ = writeln!(
        out,
        "  needs a target trained by `phiprobe train --dp-noise … --dp-audit` or by `phiprobe sweep` (audit canaries in training.json)"
    );
    let _ = writeln!(
        out,
        "  confidence   of every lower bound (default {})",
        p.confidence
    );
    let _ = writeln!(
        out,
        "  check_limit  |z| at which a white-box mechanism check fails (default {})",
        p.check_limit
    );
    let _ = writeln!(
        out,
        "  net_significance  the safety net's level, split over the bounds it re-checks (default {})",
        p.net_significance
    );
    out.push('\n');
    let _ = writeln!(out, "See probes/default.toml for a commented plan.");
    super::write_output(None, &out)?;
    Ok(exit::PASS)
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
            let Some((_, specs, _)) = audit::canary_source(&a.model, None, 2, 0)? else {
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
