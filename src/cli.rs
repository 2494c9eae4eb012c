//! The command line: clap definitions (one doc comment per flag) and the glue that runs each
//! command. This is the only module that uses `anyhow`.

use crate::data::{Format, synth};
use crate::evidence::{FileHash, FindingsFile};
use crate::exit;
use crate::report;
use crate::risk::RiskSettings;
use anyhow::Result;
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;

mod args;
mod audit;
mod evidence;
mod model;
mod phi;
mod sweep;
mod train;

pub use args::*;
pub use evidence::{DecryptArgs, GateArgs, KeygenArgs, SignArgs, VerifyArgs};

pub use audit::{AuditArgs, BenchCanaryArgs, BenchInversionArgs, BenchMiaArgs, ProbesArgs};

/// Adds the facts of a determination.toml (loaded and checked before anything is written) to
/// a run folder's findings (its hash joins the inputs) and rewrites the views; the manifest is
/// rewritten and an old signature removed.
fn attach_determination(
    run_dir: &Path,
    mut file: FindingsFile,
    determination: Option<(crate::evidence::Determination, FileHash)>,
) -> Result<FindingsFile> {
    let Some((d, h)) = determination else {
        return Ok(file);
    };
    // The facts replace any attached before: so does their entry among the inputs.
    let old = file.determination.as_ref().and_then(|o| o.source.clone());
    file.manifest
        .inputs
        .retain(|i| i.path != h.path && Some(i) != old.as_ref());
    file.manifest.inputs.push(h);
    file.determination = Some(d);
    report::rewrite(run_dir, &file, &crate::probe::sections)?;
    Ok(file)
}

/// Checks what `report` needs before it rewrites anything, and locks the run folder: the
/// folder exists, the determination and plan parse, the run log takes entries.
fn report_preflight(
    a: &ReportArgs,
) -> Result<(
    crate::integrity::folder::FolderLock,
    Option<(crate::evidence::Determination, FileHash)>,
)> {
    if !a.run_dir.is_dir() {
        anyhow::bail!(crate::Error::Usage(format!(
            "{}: not a folder; give a run folder (it holds findings.json)",
            a.run_dir.display()
        )));
    }
    let determination = match &a.determination {
        Some(p) => Some(crate::run::plan::load_determination(p)?),
        None => None,
    };
    crate::run::folder::preflight_log(&a.run_dir)?;
    let lock = crate::integrity::folder::FolderLock::acquire(&a.run_dir)?;
    Ok((lock, determination))
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHIPROBE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    init_logging(cli.verbose);
    crate::run::folder::set_run_log(cli.run_log.clone());
    match cli.command {
        Command::Gate(a) => evidence::gate_cmd(&a, cli.quiet),
        Command::Schema => {
            let text = serde_json::to_string_pretty(&crate::evidence::json_schema())?;
            write_output(None, &format!("{text}\n"))?;
            Ok(exit::PASS)
        }
        Command::Keygen(a) => evidence::keygen_cmd(&a, cli.quiet),
        Command::Sign(a) => evidence::sign_cmd(&a, cli.quiet),
        Command::Verify(a) => evidence::verify_cmd(&a, cli.quiet),
        Command::Decrypt(a) => evidence::decrypt_cmd(&a, cli.quiet),
        Command::Demo(a) => demo(&a, cli.quiet),
        Command::Data(DataCommand::Synth(a)) => synth_cmd(&a, cli.quiet),
        Command::Data(DataCommand::Detect(a)) => phi::detect_cmd(&a, cli.quiet),
        Command::Risk(a) => risk_cmd(&a, cli.quiet),
        Command::Audit(a) => audit::audit_cmd(&a, cli.quiet),
        Command::Probes(_) => audit::probes_cmd(),
        Command::BenchMia(a) => audit::bench_mia_cmd(&a),
        Command::BenchCanary(a) => audit::bench_canary_cmd(&a),
        Command::BenchInversion(a) => audit::bench_inversion_cmd(&a),
        Command::Report(a) if a.reanalyze => {
            // A plan given for re-analysis changes the membership attacks' settings (the other
            // probes' analyses are fixed by their observations).
            use crate::probe::membership::Membership;
            let mut overrides = crate::run::plan::Plan::empty();
            if let Some(p) = &a.plan {
                overrides.set::<Membership>(
                    crate::run::plan::Plan::load(p)?
                        .get::<Membership>()
                        .cloned(),
                );
            }
            let (_lock, determination) = report_preflight(&a)?;
            let file = crate::run::audit::reanalyze(&a.run_dir, &overrides)?;
            let file = attach_determination(&a.run_dir, file, determination)?;
            crate::run::folder::log_event(
                &a.run_dir,
                &file,
                "reanalyze",
                "re-analysed from observations".into(),
                exit::PASS,
            )?;
            if !cli.quiet {
                crate::report::terminal::membership(&mut std::io::stderr(), &file)?;
                eprintln!("re-analysed {} from its observations", a.run_dir.display());
            }
            Ok(exit::PASS)
        }
        Command::Report(a) => {
            let (_lock, determination) = report_preflight(&a)?;
            let file = report::rerender(&a.run_dir, &crate::probe::sections)?;
            let file = attach_determination(&a.run_dir, file, determination)?;
            crate::run::folder::log_event(
                &a.run_dir,
                &file,
                "report",
                "views re-rendered".into(),
                exit::PASS,
            )?;
            if !cli.quiet {
                eprintln!(
                    "re-rendered {} ({} findings) from findings.json",
                    a.run_dir.display(),
                    file.findings.len()
                );
            }
            Ok(exit::PASS)
        }
        Command::Score(a) => model::score_cmd(&a, cli.quiet),
        Command::Generate(a) => model::generate_cmd(&a),
        Command::BenchScore(a) => model::bench_score_cmd(&a),
        Command::Accountant(a) => train::accountant_cmd(&a),
        Command::BenchTrain(a) => train::bench_train_cmd(&a),
        Command::Train(a) => train::train_cmd(&a, cli.quiet),
        Command::Sweep(a) => sweep::sweep_cmd(&a, cli.quiet),
        Command::Compare(a) => sweep::compare_cmd(&a, cli.quiet),
        Command::Merge(a) => train::merge_cmd(&a, cli.quiet),
        Command::Completions(a) => {
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "phiprobe", &mut std::io::stdout());
            Ok(exit::PASS)
        }
    }
}

pub(crate) fn progress_bar(total: u64, quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

pub(crate) fn synthesise(
    out: &Path,
    patients: u64,
    seed: u64,
    format: Format,
    member_fraction: f64,
    quiet: bool,
) -> Result<synth::SynthSummary> {
    let pb = progress_bar(patients, quiet, "patients");
    let opts = synth::SynthOptions {
        patients,
        seed,
        format,
        out: out.to_owned(),
        member_fraction,
    };
    let summary = synth::generate(&opts, &|n| pb.inc(n))?;
    pb.finish_and_clear();
    Ok(summary)
}

fn synth_cmd(a: &SynthArgs, quiet: bool) -> Result<u8> {
    let t0 = std::time::Instant::now();
    let s = synthesise(
        &a.out,
        a.patients,
        a.seed,
        a.format,
        a.member_fraction,
        quiet,
    )?;
    if !quiet {
        eprintln!(
            "wrote {} patients ({} members), {} records, {} identifier spans to {} in {:.2} s",
            s.patients,
            s.members,
            s.records,
            s.spans,
            a.out.display(),
            t0.elapsed().as_secs_f64()
        );
        eprintln!("dataset card: {}", s.card.display());
    }
    Ok(exit::PASS)
}

fn risk_cmd(a: &RiskArgs, quiet: bool) -> Result<u8> {
    let separator = match a.separator {
        Some(c) if c.is_ascii() => Some(c as u8),
        Some(c) => anyhow::bail!(crate::error::Error::Usage(format!(
            "--separator must be one ASCII character, got {c:?}"
        ))),
        None => None,
    };
    let spec = crate::run::risk::RiskSpec {
        data: a.data.clone(),
        separator,
        format: a.input_format,
        qi: a.qi.clone(),
        sensitive: a.sensitive.clone(),
        settings: RiskSettings {
            label: String::new(),
            qi: Vec::new(),
            sensitive: Vec::new(),
            threshold: a.threshold,
            k_rule: a.k_rule,
            missing: a.missing,
            sampling_fraction: a.sampling_fraction,
            population_file: a.population_file.clone(),
            confidence: a.confidence,
            recursive_c: a.recursive_c,
            delta_log_base: a.delta_log_base,
            safe_harbor: !a.no_safe_harbor,
            snb: a.snb,
        },
        policy: a.policy.clone(),
        determination: a.determination.clone(),
        seed: a.seed,
        out: a.out.clone(),
    };
    let crate::run::risk::RiskOutcome {
        file,
        out,
        failed,
        rows,
        seconds: (t_load, t_analyze, t_report),
    } = crate::run::risk::run(&spec)?;
    let printed = (|| -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        match a.format {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut stdout, &file.findings)?;
                writeln!(stdout)?;
            }
            OutputFormat::Md => {
                write!(
                    stdout,
                    "{}",
                    report::render::markdown(&report::build(&file, Vec::new()))
                )?;
            }
            OutputFormat::Text => crate::report::terminal::risk(&mut stdout, &file)?,
        }
        Ok(())
    })();
    // A closed pipe (`| head`) must not turn a policy breach into success.
    if let Err(e) = printed
        && !is_broken_pipe(&e)
    {
        return Err(e);
    }
    if !quiet {
        eprintln!("report: {}", out.join(report::HTML).display());
    }
    if a.timings {
        eprintln!(
            "{}",
            serde_json::json!({ "load_s": t_load, "analyze_s": t_analyze, "report_s": t_report, "rows": rows })
        );
    }
    Ok(if failed > 0 {
        exit::POLICY_BREACHED
    } else {
        exit::PASS
    })
}

/// Whether an error is a closed stdout pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

fn demo(a: &DemoArgs, quiet: bool) -> Result<u8> {
    let t0 = std::time::Instant::now();
    let spec = crate::run::demo::DemoSpec {
        out: a.out.clone(),
        patients: a.patients,
        seed: a.seed,
        train_patients: a.train_patients,
        train_epochs: a.train_epochs,
        train_references: a.train_references,
    };
    let paths = spec.paths();
    // The report folder is checked (and locked) before the data is synthesised.
    let folder = crate::run::folder::claim(&paths.report, &[])?;
    if !quiet {
        eprintln!(
            "synthesising {} patients (seed {}) into {} …",
            a.patients,
            a.seed,
            paths.data.display()
        );
    }
    let s = synthesise(&paths.data, a.patients, a.seed, Format::Parquet, 0.5, quiet)?;
    let file = crate::run::demo::risk(&folder, &s.card, a.patients, a.seed)?;
    drop(folder);
    crate::run::folder::log_event(
        &paths.report,
        &file,
        "run",
        "completed (no policy)".into(),
        exit::PASS,
    )?;
    if !quiet {
        let mut err = std::io::stderr().lock();
        crate::report::terminal::risk(&mut err, &file)?;
        eprintln!(
            "\n{} records of {} patients analysed in {:.1} s.\nreport: {}\n        {}\n        {}",
            s.records,
            s.patients,
            t0.elapsed().as_secs_f64(),
            paths.report.join(report::HTML).display(),
            paths.report.join(report::MARKDOWN).display(),
            paths.report.join(report::FINDINGS).display()
        );
    }
    if a.train_patients > 0 {
        train::demo_target(&spec, &paths, quiet)?;
    }
    Ok(exit::PASS)
}

/// Applies `--threads` to the worker pools (checked against the machine first).
pub(crate) fn set_threads(n: usize) -> Result<()> {
    if crate::model::resolve_threads(n)? == 0 || n == 0 {
        // All cores: the pools' own default (or the user's RAYON_NUM_THREADS).
        return Ok(());
    }
    // SAFETY: called at a command's start, before any worker pool exists; the process has no
    // other threads that read the environment at this point.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    Ok(())
}

pub(crate) fn write_output(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
        Some(path) => crate::fsx::write_atomic(path, text.as_bytes())?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
