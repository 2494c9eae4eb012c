//! `phiprobe sweep` and `phiprobe compare`: flags, progress bars and summaries; the pipelines
//! are in `run::sweep`.

use super::args::parse_shard;
use super::exit;
use crate::evidence::FindingsFile;
use crate::run::sweep::{Event, SweepSpec, load_runs, write_comparison};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

/// Options of `sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Dataset card whose [membership] section marks members (trained on) and non-members.
    #[arg(long)]
    pub data: PathBuf,
    /// The grid: `key=v1,v2,…` terms separated by `;` (keys: noise, clip, epochs, batch, lr,
    /// q), every combination; e.g. 'noise=0,0.5,1,2;clip=1;epochs=4'. σ = 0 trains with
    /// clipping and Poisson sampling but no noise (no guarantee: the baseline).
    #[arg(long)]
    pub grid: String,
    /// Reference models per setting (even; trained like the target) for LiRA and RMIA.
    #[arg(long, default_value_t = 0)]
    pub references: usize,
    /// Seed of every setting (initialisation, data order, canaries, coins, noise).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output folder: sweep.json, settings/<setting>/{model,audit}, compare/.
    #[arg(long, default_value = "reports/sweep")]
    pub out: PathBuf,
    /// Run only settings j with j mod n = i (array jobs); the last shard to finish writes
    /// the comparison.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Model size.
    #[arg(long, value_enum, default_value_t = crate::train::llama::Preset::Tiny)]
    pub preset: crate::train::llama::Preset,
    /// Epochs, where the grid does not set them.
    #[arg(long, default_value_t = 4.0)]
    pub epochs: f64,
    /// Expected batch size q·N, where the grid does not set it.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Peak learning rate, where the grid does not set it (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Noise multiplier σ, where the grid does not set it.
    #[arg(long, default_value_t = 1.0)]
    pub noise: f64,
    /// Clipping norm C, where the grid does not set it.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// δ of every ε (accountant and empirical).
    #[arg(long, default_value_t = 1e-5)]
    pub delta: f64,
    /// Standalone text canaries per setting (coin-included; the black-box one-run audit).
    #[arg(long, default_value_t = 256)]
    pub text_canaries: usize,
    /// White-box gradient canaries per setting (coin-included).
    #[arg(long, default_value_t = 1000)]
    pub gradient_canaries: usize,
    /// Probe plan for every setting (default: the sweep's light plan; a DP audit is always added).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Options of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run folders (with findings.json) or findings.json files, e.g. the audits of a sweep or
    /// of other tools writing the same schema.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Labels of the runs, in order (default: each run folder's name).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Output run folder for the comparison report.
    #[arg(long, default_value = "reports/compare")]
    pub out: PathBuf,
}

fn usage(m: String) -> anyhow::Error {
    crate::Error::Usage(m).into()
}

/// `phiprobe sweep`.
pub(super) fn sweep_cmd(a: &SweepArgs, quiet: bool) -> Result<u8> {
    super::set_threads(a.threads)?;
    let spec = SweepSpec {
        data: a.data.clone(),
        grid: a.grid.clone(),
        references: a.references,
        seed: a.seed,
        out: a.out.clone(),
        shard: a.shard,
        preset: a.preset,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        noise: a.noise,
        clip: a.clip,
        delta: a.delta,
        text_canaries: a.text_canaries,
        gradient_canaries: a.gradient_canaries,
        plan: a.plan.clone(),
        threads: a.threads,
    };
    let mut training: Option<indicatif::ProgressBar> = None;
    let mut scoring: Option<(String, indicatif::ProgressBar)> = None;
    let mut printed: std::io::Result<()> = Ok(());
    crate::run::sweep::run(&spec, &mut |e| match e {
        Event::Skipped { index, of, label } if !quiet => {
            eprintln!("[{}/{of}] {label}: done earlier", index + 1);
        }
        Event::Setting { index, of, label } if !quiet => eprintln!("[{}/{of}] {label}", index + 1),
        Event::Training { model, step, total } => {
            let pb = training.get_or_insert_with(|| super::progress_bar(0, quiet, "training"));
            pb.set_message(format!("training {model}"));
            pb.set_length(total);
            pb.set_position(step);
        }
        Event::TrainingDone => {
            if let Some(pb) = training.take() {
                pb.finish_and_clear();
            }
        }
        Event::Scoring { stage, done, total } => {
            super::audit::scoring_progress(&mut scoring, stage, done, total, quiet);
        }
        Event::Audited { file, timing } => {
            if let Some((_, b)) = scoring.take() {
                b.finish_and_clear();
            }
            if !quiet && printed.is_ok() {
                printed = crate::report::terminal::dp(&mut std::io::stderr(), file);
                eprintln!(
                    "  trained in {:.1} s ({} steps), audited in {:.1} s",
                    timing.train_seconds, timing.steps, timing.audit_seconds
                );
            }
        }
        Event::Waiting { missing, of } if !quiet => eprintln!(
            "{missing} of {of} settings still to run (other shards); the comparison is written when all are done"
        ),
        Event::CompareBusy(why) if !quiet => {
            eprintln!("another shard is writing the comparison ({why})");
        }
        Event::Compared { file, seconds, out } if !quiet => {
            print_comparison(file);
            eprintln!(
                "sweep finished in {seconds:.1} s; comparison: {}",
                out.join(crate::report::HTML).display()
            );
        }
        _ => {}
    })?;
    printed?;
    Ok(exit::PASS)
}

fn print_comparison(file: &FindingsFile) {
    let Some(d) = &file.comparison else { return };
    eprintln!(
        "{:<32} {:>10} {:>12} {:>12} {:>12} {:>9} {:>11}",
        "setting", "ε (RDP)", "ε wb 1-run", "ε wb CP", "ε bb 1-run", "best AUC", "perplexity"
    );
    for r in &d.runs {
        let dp = r.dp.as_ref();
        let est = |inst: &str, m: &str| {
            dp.and_then(|d| {
                d.estimates
                    .iter()
                    .find(|e| e.instrument == inst && e.method_id == m)
            })
            .map_or("–".to_owned(), |e| format!("{:.3}", e.value))
        };
        let auc = r
            .attacks
            .iter()
            .filter_map(|a| a.auc)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        eprintln!(
            "{:<32} {:>10} {:>12} {:>12} {:>12} {:>9} {:>11}",
            r.label,
            dp.map_or("–".into(), |d| d
                .setting
                .epsilon
                .map_or("∞".into(), |e| format!("{e:.3}"))),
            est("gradient canaries", "one-run"),
            est("gradient canaries", "clopper-pearson"),
            est("text canaries", "one-run"),
            auc.map_or("–".into(), |v| format!("{v:.3}")),
            dp.and_then(|d| d.validation_perplexity)
                .map_or("–".into(), |p| format!("{p:.1}")),
        );
    }
}

/// `phiprobe compare`.
pub(super) fn compare_cmd(a: &CompareArgs, quiet: bool) -> Result<u8> {
    if !a.labels.is_empty() && a.labels.len() != a.runs.len() {
        bail!(usage(format!(
            "--labels gives {} label(s) for {} run(s)",
            a.labels.len(),
            a.runs.len()
        )));
    }
    let runs: Vec<(Option<String>, PathBuf)> = a
        .runs
        .iter()
        .enumerate()
        .map(|(i, p)| (a.labels.get(i).cloned(), p.clone()))
        .collect();
    let loaded = load_runs(&runs)?;
    let folder = crate::run::folder::claim(&a.out, &a.runs)?;
    let file = write_comparison(loaded, &folder, 0)?;
    drop(folder);
    if !quiet {
        print_comparison(&file);
        eprintln!("comparison: {}", a.out.join(crate::report::HTML).display());
    }
    // A run whose DP audit found an inconsistency fails the comparison too.
    let bad: Vec<String> = file
        .comparison
        .iter()
        .flat_map(|c| &c.runs)
        .filter_map(|r| {
            let v = &r.dp.as_ref()?.violations;
            (!v.is_empty()).then(|| format!("{}: {}", r.label, v.join("; ")))
        })
        .collect();
    if !bad.is_empty() {
        bail!(crate::Error::Inconsistent(format!(
            "the comparison was written, but DP audits of these runs are inconsistent: {}",
            bad.join(" | ")
        )));
    }
    Ok(exit::PASS)
}
