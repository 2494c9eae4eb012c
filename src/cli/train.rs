//! Glue of the training commands: `accountant`, `train`, `merge`.

use super::{AccountantArgs, OrderGrid, PlainFormat};
use crate::exit;
use crate::run::demo::{DemoPaths, DemoSpec};
use crate::stats::accountant::{self, Setting};
use anyhow::{Result, bail};

/// `phiprobe accountant`.
pub(super) fn accountant_cmd(a: &AccountantArgs) -> Result<u8> {
    let orders = match a.orders {
        OrderGrid::DpAccounting => accountant::default_orders(),
        OrderGrid::Opacus => accountant::opacus_orders(),
    };
    if let Err(m) = accountant::validate(a.noise.unwrap_or(1.0), a.sample_rate, Some(a.delta)) {
        bail!(crate::Error::Usage(m));
    }
    if let Some(e) = a.epsilon
        && !(e.is_finite() && e >= 0.0)
    {
        bail!(crate::Error::Usage(format!(
            "--epsilon must be a finite number ≥ 0 (got {e})"
        )));
    }
    let steps = steps_of(a)?;
    let grid = match a.orders {
        OrderGrid::DpAccounting => "dp_accounting",
        OrderGrid::Opacus => "opacus",
    };
    if let Some(target) = a.target_epsilon {
        return calibrate_cmd(a, target, steps, &orders, grid);
    }
    let noise = a
        .noise
        .expect("clap requires --noise without --target-epsilon");
    let setting = Setting {
        noise,
        sample_rate: a.sample_rate,
        steps,
    };
    let st = accountant::statement(setting, a.delta, &orders);
    // Shuffled fixed batches: each example is used once per epoch, no amplification by sampling.
    let epochs = (steps as f64 * a.sample_rate).ceil().max(1.0) as u64;
    let no_amp = accountant::epsilon_of(
        Setting {
            noise,
            sample_rate: 1.0,
            steps: epochs,
        },
        a.delta,
        &orders,
    );
    let delta_at = a.epsilon.map(|e| {
        let curve = accountant::rdp(
            a.sample_rate,
            noise,
            steps,
            &orders,
            accountant::Series::Signed,
        );
        accountant::delta(&orders, &curve, e)
    });
    match a.format {
        PlainFormat::Json => {
            let mut v = serde_json::json!({
                "accountant": "rdp",
                "mechanism": "poisson-subsampled-gaussian",
                "adjacency": "add-or-remove-one",
                "orders": grid,
                "statement": st,
                "no_amplification": { "epochs": epochs, "epsilon": no_amp },
                "note": "RDP is an upper bound; PLD/PRV accountants are typically 7-12 % lower for the same setting",
            });
            if let (Some(e), Some((d, order))) = (a.epsilon, delta_at) {
                v["delta_at_epsilon"] =
                    serde_json::json!({ "epsilon": e, "delta": d, "order": order });
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        PlainFormat::Text => {
            println!(
                "DP-SGD, Poisson sampling q = {}, σ = {noise}, {steps} steps (add/remove-one adjacency)",
                a.sample_rate
            );
            if let (Some(e), Some((d, order))) = (a.epsilon, delta_at) {
                println!("δ = {d:.6e} at ε = {e} (RDP, order {order})");
            } else {
                println!(
                    "ε = {:.4} at δ = {} (RDP, improved conversion, order {}); classic conversion {:.4}",
                    st.epsilon, a.delta, st.order, st.epsilon_classic
                );
            }
            println!(
                "without sampling amplification (shuffled fixed batches, {epochs} epochs): ε = {no_amp:.4}"
            );
            println!(
                "note: RDP gives an upper bound; a PLD/PRV accountant is typically 7–12 % lower for the same setting"
            );
            if st.optimum_at_grid_edge {
                println!(
                    "warning: the optimal order is at the end of the grid; the bound may be loose"
                );
            }
            if !st.dropped_orders.is_empty() {
                println!(
                    "warning: {} order(s) dropped (series did not converge)",
                    st.dropped_orders.len()
                );
            }
        }
    }
    Ok(exit::PASS)
}

/// The number of DP-SGD steps `accountant` accounts for: `--steps`, or `--epochs` at the
/// sampling rate.
fn steps_of(a: &AccountantArgs) -> Result<u64> {
    let max = crate::train::trainer::MAX_STEPS;
    Ok(match (a.steps, a.epochs) {
        (Some(s), _) if s == 0 || s > max => bail!(crate::Error::Usage(format!(
            "--steps must be in 1..=2^53 (got {s})"
        ))),
        (Some(s), _) => s,
        (None, Some(e)) if e.is_finite() && e > 0.0 => {
            crate::train::trainer::dp_steps(e, a.sample_rate).map_err(crate::Error::Usage)?
        }
        (None, Some(e)) => bail!(crate::Error::Usage(format!(
            "--epochs must be a positive number (got {e})"
        ))),
        (None, None) => unreachable!("clap requires --steps or --epochs"),
    })
}

/// `accountant --target-epsilon`: the smallest noise multiplier that reaches the budget.
fn calibrate_cmd(
    a: &AccountantArgs,
    target: f64,
    steps: u64,
    orders: &[f64],
    grid: &str,
) -> Result<u8> {
    if !(target.is_finite() && target > 0.0) {
        bail!(crate::Error::Usage(format!(
            "--target-epsilon must be a positive number (got {target})"
        )));
    }
    if !(a.tolerance.is_finite() && a.tolerance > 0.0) {
        bail!(crate::Error::Usage(format!(
            "--tolerance must be a positive number (got {})",
            a.tolerance
        )));
    }
    let Some(sigma) =
        accountant::calibrate_noise(target, a.delta, a.sample_rate, steps, orders, a.tolerance)
    else {
        bail!(crate::Error::Usage(format!(
            "no noise multiplier up to 2^20 reaches ε ≤ {target} at δ = {} with q = {} and {steps} steps; \
             raise the budget or lower q / the number of steps",
            a.delta, a.sample_rate
        )));
    };
    let st = accountant::statement(
        Setting {
            noise: sigma,
            sample_rate: a.sample_rate,
            steps,
        },
        a.delta,
        orders,
    );
    match a.format {
        PlainFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "accountant": "rdp", "orders": grid, "target_epsilon": target,
                "tolerance": a.tolerance, "noise": sigma, "statement": st,
            }))?
        ),
        PlainFormat::Text => {
            println!(
                "noise multiplier σ = {sigma:.6} gives ε = {:.4} ≤ {target} at δ = {} (q = {}, {steps} steps, RDP, improved conversion, order {})",
                st.epsilon, a.delta, a.sample_rate, st.order
            );
        }
    }
    Ok(exit::PASS)
}

/// `phiprobe train`.
pub(super) fn train_cmd(a: &super::TrainArgs, quiet: bool) -> Result<u8> {
    use crate::train::trainer::{DpConfig, TrainConfig};
    super::set_threads(a.threads)?;
    if !(a.epochs.is_finite() && a.epochs > 0.0) {
        bail!(crate::Error::Usage(format!(
            "--epochs must be > 0 (got {})",
            a.epochs
        )));
    }
    if a.batch_size == 0 {
        bail!(crate::Error::Usage("--batch-size must be ≥ 1".into()));
    }
    let mut model = a.preset.config();
    if let Some(m) = a.max_len {
        model.max_len = m;
    }
    let lr = a.lr.unwrap_or(a.preset.default_lr());
    let dp = if a.dp_noise.is_some() || a.dp_epsilon.is_some() {
        Some(DpConfig {
            noise: a.dp_noise.unwrap_or(0.0),
            clip: a.dp_clip,
            sample_rate: a.dp_sample_rate.unwrap_or(0.0),
            delta: a.dp_delta,
            target_epsilon: a.dp_epsilon,
            expected_size: None,
        })
    } else {
        None
    };
    if let Some(q) = a.dp_sample_rate
        && !(q > 0.0 && q <= 1.0)
    {
        bail!(crate::Error::Usage(format!(
            "the sampling rate q must be in (0, 1] (got {q})"
        )));
    }
    let canaries = match a.canaries.as_deref() {
        None => None,
        Some("default") => Some(crate::train::canary::Plan::default_plan()),
        Some(p) => {
            let path = std::path::Path::new(p);
            let text = crate::fsx::read_config(path)?;
            Some(
                crate::train::canary::Plan::parse(&text).map_err(|m| crate::Error::Parse {
                    path: path.to_owned(),
                    format: "canary plan (TOML)".into(),
                    message: m,
                })?,
            )
        }
    };
    let spec = crate::train::run::RunSpec {
        data: a.data.clone(),
        column: a.column.clone(),
        out: a.out.clone(),
        train: TrainConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            lr,
            warmup: a.warmup,
            dp,
            checkpoint_every: a.checkpoint_every,
            ..TrainConfig::defaults(model, a.seed)
        },
        canaries,
        references: a.references,
        shard: a.shard,
        audit: a.dp_audit.then(crate::train::run::AuditPlan::default),
    };
    if a.dp_audit && dp.is_none() {
        bail!(crate::Error::Usage(
            "--dp-audit audits DP-SGD: give --dp-noise or --dp-epsilon too".into()
        ));
    }
    if a.dp_noise == Some(0.0) && a.dp_epsilon.is_none() {
        eprintln!(
            "warning: --dp-noise 0 trains with DP-SGD's clipping and Poisson sampling but no noise: no privacy guarantee (ε = ∞)"
        );
    }
    let pb = super::progress_bar(0, quiet, "training");
    let mut current = String::new();
    let summary = crate::train::run::run(&spec, &mut |job, step, total, loss| {
        if job != current {
            current = job.to_owned();
            pb.reset();
            pb.set_length(total);
            pb.set_message(format!("training {job}"));
        }
        pb.set_position(step);
        if loss.is_finite() {
            pb.set_message(format!("training {job} (loss {loss:.3})"));
        }
    })?;
    pb.finish_and_clear();
    if !quiet {
        for (dir, r) in summary.written.iter().zip(&summary.records) {
            let last = r.log.epochs.last();
            eprintln!(
                "{}: {} ({} parameters), {} steps, {:.0} tokens/s, train loss {:.3}{}{}",
                r.name,
                dir.display(),
                r.parameters,
                r.log.steps,
                r.tokens_per_second,
                last.map_or(f64::NAN, |e| e.train_loss),
                last.and_then(|e| e.val_loss)
                    .map_or(String::new(), |v| format!(", validation loss {v:.3}")),
                r.log.privacy.as_ref().map_or(String::new(), |p| format!(
                    ", DP ε = {:.3} at δ = {} (RDP, σ = {:.4})",
                    p.epsilon, p.delta, p.setting.noise
                )),
            );
        }
        if let Some(f) = &summary.fleet {
            eprintln!("fleet manifest: {}", f.display());
        }
    }
    Ok(exit::PASS)
}

/// `phiprobe merge`.
pub(super) fn merge_cmd(a: &super::MergeArgs, quiet: bool) -> Result<u8> {
    if a.external.len() != a.trained_on.len() {
        bail!(crate::Error::Usage(
            "give one --trained-on file for each --external model".into()
        ));
    }
    let pairs: Vec<_> = a
        .external
        .iter()
        .cloned()
        .zip(a.trained_on.iter().cloned())
        .collect();
    let (path, fleet) = crate::train::run::merge(&a.dir, &pairs)?;
    if !quiet {
        eprintln!(
            "{}: {} models over {} audit records",
            path.display(),
            fleet.models.len(),
            fleet.records.len()
        );
    }
    Ok(exit::PASS)
}

/// `phiprobe bench-train`: seconds per plain and DP-SGD step on one random batch, as JSON.
pub(super) fn bench_train_cmd(a: &super::BenchTrainArgs) -> Result<u8> {
    use crate::train::trainer::{DpConfig, TrainConfig, seconds_per_step};
    super::set_threads(a.threads)?;
    let mut model = a.preset.config();
    model.max_len = model.max_len.max(a.tokens);
    let cfg = TrainConfig {
        batch_size: a.batch,
        ..TrainConfig::defaults(model, 7)
    };
    let mut rng = crate::stats::Rng::new(7);
    let vocab = cfg.model.vocab_size as u64;
    let seqs: Vec<Vec<u32>> = (0..a.batch)
        .map(|_| (0..=a.tokens).map(|_| rng.below(vocab) as u32).collect())
        .collect();
    let plain = seconds_per_step(&cfg, &seqs, a.steps, a.repeat, None)?;
    let dp = DpConfig {
        noise: 1.0,
        clip: 1.0,
        sample_rate: 0.01,
        delta: 1e-5,
        target_epsilon: None,
        expected_size: None,
    };
    let private = seconds_per_step(&cfg, &seqs, a.steps, a.repeat, Some(dp))?;
    let tokens = (a.batch * a.tokens) as f64;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "preset": a.preset.name(),
            "parameters": cfg.model.parameter_count(),
            "batch": a.batch,
            "tokens": a.tokens,
            "plain_seconds_per_step": plain,
            "plain_tok_per_s": tokens / plain,
            "dp_seconds_per_step": private,
            "dp_tok_per_s": tokens / private,
            "dp_overhead": private / plain,
        }))?
    );
    Ok(exit::PASS)
}

/// The demo's second half: train the embedded default target (tiny preset) with the built-in
/// canary plan on a small synthetic dataset (with reference models when asked; an earlier
/// demo's identical fleet is reused), then audit it with every probe (`run::demo`).
pub(super) fn demo_target(spec: &DemoSpec, paths: &DemoPaths, quiet: bool) -> Result<()> {
    let t0 = std::time::Instant::now();
    let s = super::synthesise(
        &paths.train_data,
        spec.train_patients,
        spec.seed,
        super::Format::Csv,
        0.5,
        true,
    )?;
    let k = spec.train_references;
    let reused = spec.reusable_target(paths, &s.card);
    let reused_any = reused.is_some();
    let rec = if let Some(rec) = reused {
        if !quiet {
            eprintln!(
                "\nreusing the demo target and {k} reference model(s) in {} (same data, seed and settings)",
                paths.models.display()
            );
        }
        rec
    } else {
        // Re-running the demo replaces its own previous models (and nothing else).
        DemoSpec::clear_previous_models(paths)?;
        if !quiet {
            eprintln!(
                "\ntraining the demo target ({} patients, tiny preset, built-in canaries){} into {} …",
                spec.train_patients,
                if k > 0 {
                    format!(" and {k} reference models on random halves of its audit records")
                } else {
                    String::new()
                },
                paths.models.display()
            );
        }
        let pb = super::progress_bar(0, quiet, "training");
        let summary = crate::train::run::run(
            &spec.training(paths, &s.card),
            &mut |name, step, total, _| {
                pb.set_message(format!("training {name}"));
                pb.set_length(total);
                pb.set_position(step);
            },
        )?;
        pb.finish_and_clear();
        summary.records[0].clone()
    };
    let train_s = t0.elapsed().as_secs_f64();
    if !quiet {
        let last = rec.log.epochs.last();
        eprintln!(
            "target{} {} in {train_s:.1} s (target: {} parameters, {} steps, {:.0} tokens/s; train loss {:.3}, validation loss {:.3})",
            if k > 0 {
                format!(" and {k} reference models")
            } else {
                String::new()
            },
            if reused_any { "loaded" } else { "trained" },
            rec.parameters,
            rec.log.steps,
            rec.tokens_per_second,
            last.map_or(f64::NAN, |e| e.train_loss),
            last.and_then(|e| e.val_loss).unwrap_or(f64::NAN),
        );
        eprintln!("model: {}", paths.target.display());
    }
    demo_audit(spec, paths, &s.card, quiet)
}

/// The demo's audit of its target, with its terminal summary.
fn demo_audit(
    spec: &DemoSpec,
    paths: &DemoPaths,
    card: &std::path::Path,
    quiet: bool,
) -> Result<()> {
    let t0 = std::time::Instant::now();
    let (audit, manifest) = spec.audit(paths, card);
    let partial = DemoSpec::audit_work_folder(paths);
    let outcome = match super::audit::run_audit(&audit, manifest.clone(), quiet) {
        // A stale working folder of an interrupted demo audit on other inputs is the demo's own.
        Err(e) if partial.exists() && e.to_string().contains("different inputs") => {
            std::fs::remove_dir_all(&partial).map_err(|source| crate::Error::Write {
                path: partial.clone(),
                source,
            })?;
            super::audit::run_audit(&audit, manifest, quiet)?
        }
        other => other?,
    };
    crate::run::folder::log_event(
        &paths.audit,
        &outcome.file,
        "run",
        "completed (no policy)".into(),
        crate::exit::PASS,
    )?;
    if !quiet {
        eprintln!("\naudited in {:.1} s", t0.elapsed().as_secs_f64());
        crate::report::terminal::membership(&mut std::io::stderr(), &outcome.file)?;
        crate::report::terminal::canary(&mut std::io::stderr(), &outcome.file)?;
        crate::report::terminal::extraction(&mut std::io::stderr(), &outcome.file)?;
        crate::report::terminal::inversion(&mut std::io::stderr(), &outcome.file)?;
        eprintln!(
            "audit report: {}",
            paths.audit.join(crate::report::HTML).display()
        );
    }
    Ok(())
}
