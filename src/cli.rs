//! The command line: clap definitions (one doc comment per flag) and the glue that runs each
//! command. This is the only module that uses `anyhow`.

use crate::data::{Format, synth};
use crate::evidence::{FileHash, FindingsFile};
use crate::exit;
use crate::report;
use crate::risk::{KRule, MissingPolicy, RiskSettings};
use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

mod audit;
mod evidence;
mod phi;
mod sweep;
mod train;

pub use evidence::{DecryptArgs, GateArgs, KeygenArgs, SignArgs, VerifyArgs};

pub use audit::{AuditArgs, BenchCanaryArgs, BenchInversionArgs, BenchMiaArgs, ProbesArgs};

/// phiprobe: privacy evaluation of data and models trained on protected health information.
///
/// Exit codes: 0 pass, 1 a policy threshold was breached, 2 usage / input error.
#[derive(Debug, Parser)]
#[command(name = "phiprobe", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars or summaries on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The hash-chained run log to append to and check (default: runs.log.jsonl beside the
    /// run folder).
    #[arg(long, global = true, value_name = "FILE")]
    pub run_log: Option<PathBuf>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Synthesise a dataset and write a re-identification risk report on it (the main job on
    /// the embedded default).
    Demo(DemoArgs),
    /// Dataset utilities.
    #[command(subcommand)]
    Data(DataCommand),
    /// Re-identification risk of a dataset: k-anonymity, prosecutor / journalist / marketer
    /// risk, population uniqueness, l-diversity, t-closeness, δ-disclosure, Safe Harbor.
    Risk(RiskArgs),
    /// Membership inference against a model: loss, zlib, Min-K%, Min-K%++, reference, LiRA and
    /// RMIA from one cached score matrix; writes a run folder (findings, report, observations).
    Audit(AuditArgs),
    /// List the probe kinds a plan can name, with their settings.
    Probes(ProbesArgs),
    /// Membership-statistics timings on a synthetic audit (used by
    /// benches/compare_membership.py).
    #[command(hide = true)]
    BenchMia(BenchMiaArgs),
    /// Exact-rank canary search against enumeration (used for the benchmark figures).
    #[command(hide = true)]
    BenchCanary(BenchCanaryArgs),
    /// Candidate scoring over a shared prefix against full re-scoring (the inversion
    /// benchmark's figures).
    #[command(hide = true)]
    BenchInversion(BenchInversionArgs),
    /// Re-render report.md and report.html of a run folder from its findings.json (or, with
    /// --reanalyze, recompute an audit's findings from its cached observations).
    Report(ReportArgs),
    /// Per-token log-probabilities of texts under a model (teacher-forced, exact).
    Score(ScoreArgs),
    /// Continue a prompt with a model (greedy or seeded sampling).
    Generate(GenerateArgs),
    /// Scoring throughput on fixed-length random token sequences, with the f32 matmul roofline
    /// (used by benches/compare_scoring.py).
    #[command(hide = true)]
    BenchScore(BenchScoreArgs),
    /// Train a target model (and optionally a fleet of reference models) on a dataset card's
    /// text: byte-level BPE tokenizer, Llama-architecture model, optional canaries and DP-SGD.
    Train(TrainArgs),
    /// Check a fleet folder's shards and write its fleet.json (optionally registering
    /// externally trained reference models).
    Merge(MergeArgs),
    /// Privacy accountant for DP-SGD (Poisson-subsampled Gaussian, RDP): ε at δ, δ at ε, or
    /// the noise multiplier for a target ε.
    Accountant(AccountantArgs),
    /// Training-step throughput (plain and DP-SGD) on random token sequences (used by
    /// benches/compare_training.py).
    #[command(hide = true)]
    BenchTrain(BenchTrainArgs),
    /// Train and audit a grid of DP-SGD settings (noise, clipping, epochs, …) with
    /// coin-included canaries, then compare them: accountant ε, empirical ε lower bounds,
    /// attacks, exposure, extraction, utility. Resumable; `--shard i/n` for array jobs.
    Sweep(sweep::SweepArgs),
    /// Compare finished runs (e.g. a sweep's audits, or other tools' findings.json): the
    /// privacy/utility frontier, empirical ε against the accountant's, attacks against ε,
    /// exposure against repetition.
    Compare(sweep::CompareArgs),
    /// Apply a release policy to a finished run: a verdict table, JUnit XML, exit 0 pass /
    /// 1 breached / 2 error.
    Gate(GateArgs),
    /// Make an ed25519 signing key pair (or, with --bundle, a key for encrypted PHI bundles).
    Keygen(KeygenArgs),
    /// Sign a run folder's manifest (ed25519) after checking the folder matches it.
    Sign(SignArgs),
    /// Verify a signed run folder: the signature, every file against the manifest (changed,
    /// missing or added files are named) and the run log's hash chain.
    Verify(VerifyArgs),
    /// Decrypt an encrypted PHI-example bundle (for the expert).
    Decrypt(DecryptArgs),
    /// Print the JSON Schema of findings.json (published as schemas/findings.schema.json).
    Schema,
    /// Print shell completions.
    Completions(CompletionsArgs),
}

/// `data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Generate realistic synthetic PHI-like EHR records with ground-truth identifier spans.
    Synth(SynthArgs),
    /// Run the PHI detector over a dataset's notes; with ground-truth spans (the synthetic
    /// data's phi_spans.jsonl), precision and recall per Safe Harbor category.
    Detect(phi::DetectArgs),
}

/// Options of `data synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of patients (each has one or more encounters).
    #[arg(long, default_value_t = 1000)]
    pub patients: u64,
    /// Seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Format of the records file.
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    pub format: Format,
    /// Share of patients placed in the member (training) split.
    #[arg(long, default_value_t = 0.5)]
    pub member_fraction: f64,
}

/// Where a model comes from (shared by every command that runs one).
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model: a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer.json), a
    /// .gguf file, or mock:<fixture.json>.
    #[arg(long)]
    pub model: String,
    /// A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) merged into a
    /// Hugging Face base checkpoint.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Output format of `score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScoreFormat {
    /// JSON (one object for --text; JSON lines, one per record, for --data).
    Json,
    /// Parquet table (record_id, n_tokens, total_logprob, mean_logprob); needs --data and --out.
    Parquet,
}

/// Options of `score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// One text to score (the output then lists every token and its log-probability).
    #[arg(long, conflicts_with = "data", required_unless_present = "data")]
    pub text: Option<String>,
    /// A dataset card (.toml): every record's text column is scored; output carries record ids only.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The text column to score (default: the card's single text-role column).
    #[arg(long, requires = "data")]
    pub column: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ScoreFormat::Json)]
    pub format: ScoreFormat,
    /// Output file (default: stdout); written under a temporary name and renamed.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Most padded tokens per forward batch (memory vs. speed).
    #[arg(long, default_value_t = 4096)]
    pub batch_tokens: usize,
}

/// Options of the hidden `bench-score`.
#[derive(Debug, Args)]
pub struct BenchScoreArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of sequences.
    #[arg(long, default_value_t = 64)]
    pub sequences: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// Timed repetitions (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Most padded tokens per forward batch.
    #[arg(long, default_value_t = 4096)]
    pub batch_tokens: usize,
}

/// Output format of `generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateFormat {
    /// The continuation text.
    Text,
    /// JSON with prompt and generated token ids and the text.
    Json,
}

/// Options of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt (repeat the flag for a batch of prompts).
    #[arg(long, required = true)]
    pub prompt: Vec<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Greedy decoding (the default unless --temperature is given).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p"])]
    pub greedy: bool,
    /// Beam search with this many beams (returns the most likely continuation).
    #[arg(long, value_name = "WIDTH", conflicts_with_all = ["greedy", "temperature", "top_k", "top_p"])]
    pub beam: Option<usize>,
    /// Sampling temperature (> 0).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Sample from the k most likely tokens only.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample from the smallest set of tokens whose probability reaches p (0 < p ≤ 1).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Seed of the sampling streams.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep generating past an end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GenerateFormat::Text)]
    pub format: GenerateFormat,
}

/// Options of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset card (.toml) whose text column is the training text.
    #[arg(long)]
    pub data: PathBuf,
    /// Text column (default: the card's one column with role `text`).
    #[arg(long)]
    pub column: Option<String>,
    /// Output folder: a Hugging Face checkpoint (with --references: target/, references/,
    /// fleet.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Model size.
    #[arg(long, value_enum, default_value_t = crate::train::llama::Preset::Tiny)]
    pub preset: crate::train::llama::Preset,
    /// Passes over the training split (under DP: steps = round(epochs / q)).
    #[arg(long, default_value_t = 3.0)]
    pub epochs: f64,
    /// Batch size (under DP: the expected batch size q·N when --dp-sample-rate is not given).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Peak learning rate (default: 3e-3 tiny, 1.5e-3 small, 6e-4 base).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Fraction of steps spent warming up the learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub warmup: f64,
    /// Longest sequence in tokens (longer notes are cut; counted in training.json).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Seed of everything random: initialisation, data order, canaries, Poisson masks, noise.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Canary plan (TOML), or `default` for the built-in plan (six PHI kinds, 1–32 copies).
    #[arg(long)]
    pub canaries: Option<String>,
    /// Train with DP-SGD at this noise multiplier σ.
    #[arg(long, conflicts_with = "dp_epsilon")]
    pub dp_noise: Option<f64>,
    /// Train with DP-SGD, choosing σ so that the run's ε at --dp-delta is at most this.
    #[arg(long)]
    pub dp_epsilon: Option<f64>,
    /// DP-SGD per-example clipping norm C.
    #[arg(long, default_value_t = 1.0)]
    pub dp_clip: f64,
    /// DP-SGD Poisson sampling rate q (default: batch size / training records).
    #[arg(long)]
    pub dp_sample_rate: Option<f64>,
    /// δ of the DP statement.
    #[arg(long, default_value_t = 1e-5)]
    pub dp_delta: f64,
    /// Plant the DP audit's instruments into the target: 256 standalone canary records and
    /// (under DP-SGD) 1,000 white-box gradient canaries, each included by a fair coin, and train
    /// the tokenizer on the whole audit pool; `phiprobe audit` then reports empirical ε lower
    /// bounds next to the accountant's ε.
    #[arg(long)]
    pub dp_audit: bool,
    /// Also train K reference models on complementary random halves of the audit pool (K even).
    #[arg(long, default_value_t = 0)]
    pub references: usize,
    /// Train only slice i of n of the jobs (target = job 0, reference k = job k+1), for array
    /// jobs; `phiprobe merge` assembles the fleet afterwards.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Steps between checkpoints (an interrupted run resumes from the last one).
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: u64,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}' is not of the form i/n"))?;
    let i: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("'{i}' is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("'{n}' is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("need 0 ≤ i < n (got {i}/{n})"));
    }
    Ok((i, n))
}

/// Options of `merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The fleet folder (the --out of `train --references`).
    pub dir: PathBuf,
    /// An externally trained reference model (folder or file) to register; pair each with
    /// --trained-on.
    #[arg(long)]
    pub external: Vec<PathBuf>,
    /// File of the record ids (one per line) the matching --external model was trained on.
    #[arg(long)]
    pub trained_on: Vec<PathBuf>,
}

/// Options of `bench-train`.
#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// Model size.
    #[arg(long, value_enum, default_value_t = crate::train::llama::Preset::Tiny)]
    pub preset: crate::train::llama::Preset,
    /// Sequences per batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// Timed steps per repeat.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Repeats (best is kept).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Options of `accountant`.
#[derive(Debug, Args)]
pub struct AccountantArgs {
    /// Noise multiplier σ (noise std = σ·C); not needed with --target-epsilon.
    #[arg(long, required_unless_present = "target_epsilon")]
    pub noise: Option<f64>,
    /// Poisson sampling rate q (expected batch size / training-set size), in (0, 1].
    #[arg(long)]
    pub sample_rate: f64,
    /// Number of DP-SGD steps.
    #[arg(long, required_unless_present = "epochs")]
    pub steps: Option<u64>,
    /// Epochs instead of steps: steps = round(epochs / q), as `train` counts them.
    #[arg(long, conflicts_with = "steps")]
    pub epochs: Option<f64>,
    /// δ of the (ε, δ) statement; choose δ well below 1/N.
    #[arg(long, default_value_t = 1e-5)]
    pub delta: f64,
    /// Report δ at this ε instead of ε at δ.
    #[arg(long, conflicts_with = "target_epsilon")]
    pub epsilon: Option<f64>,
    /// Find the smallest noise multiplier whose ε at δ is at most this (within --tolerance).
    #[arg(long, conflicts_with = "noise")]
    pub target_epsilon: Option<f64>,
    /// Tolerance of the noise calibration (ε units).
    #[arg(long, default_value_t = 0.01)]
    pub tolerance: f64,
    /// RDP orders: dp_accounting's default grid, or Opacus' (to compare with Opacus).
    #[arg(long, value_enum, default_value_t = OrderGrid::DpAccounting)]
    pub orders: OrderGrid,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlainFormat::Text)]
    pub format: PlainFormat,
}

/// Text for people or JSON for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlainFormat {
    /// A short human-readable statement.
    Text,
    /// JSON.
    Json,
}

/// Grids of RDP orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderGrid {
    /// 1.1 … 10.9, 11 … 63, 128, 256, 512, 1024 (Google dp_accounting).
    DpAccounting,
    /// 1.1 … 10.9, 12 … 63 (Opacus' RDPAccountant).
    Opacus,
}

/// Output format of `risk` on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A short human summary.
    Text,
    /// The findings as JSON.
    Json,
    /// The Markdown report.
    Md,
}

/// Options of `risk`.
#[derive(Debug, Args)]
pub struct RiskArgs {
    /// A dataset card (.toml) or a data file (CSV, Parquet, JSONL).
    #[arg(long)]
    pub data: PathBuf,
    /// CSV separator of a data file (one character; default ',' or tab for .tsv).
    #[arg(long)]
    pub separator: Option<char>,
    /// Format of a data file (default: from its extension).
    #[arg(long, value_enum)]
    pub input_format: Option<Format>,
    /// Quasi-identifiers, comma-separated (default: the card's `quasi` columns).
    #[arg(long, value_delimiter = ',')]
    pub qi: Vec<String>,
    /// Sensitive attributes for l-diversity / t-closeness, comma-separated (default: the card's
    /// `sensitive` columns).
    #[arg(long, value_delimiter = ',')]
    pub sensitive: Vec<String>,
    /// Sampling fraction π = n/N, for journalist / marketer risk and population uniqueness.
    #[arg(long)]
    pub sampling_fraction: Option<f64>,
    /// Population table (same QI columns, one row per person) for exact journalist / marketer
    /// risk.
    #[arg(long)]
    pub population_file: Option<PathBuf>,
    /// Identification-risk threshold t: a person is at risk when 1/(class size) > t.
    #[arg(long, default_value_t = 0.09)]
    pub threshold: f64,
    /// How t maps to a minimum class size k: el-emam (0.09 ↔ 11) or arx (0.09 ↔ 12).
    #[arg(long, value_enum, default_value_t = KRule::ElEmam)]
    pub k_rule: KRule,
    /// Treatment of missing quasi-identifier values.
    #[arg(long, value_enum, default_value_t = MissingPolicy::Conservative)]
    pub missing: MissingPolicy,
    /// Confidence level of intervals.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// c of recursive (c,l)-diversity.
    #[arg(long, default_value_t = 2.0)]
    pub recursive_c: f64,
    /// Log base of δ-disclosure (ARX uses 2, pyCANON e ≈ 2.718281828).
    #[arg(long, default_value_t = 2.0)]
    pub delta_log_base: f64,
    /// Skip the Safe Harbor checklist.
    #[arg(long)]
    pub no_safe_harbor: bool,
    /// SNB population-uniqueness formulas: derived (Chen & Keller-McNulty) or arx (reproduces
    /// ARX 3.9, including its K-estimator and second-moment formulas).
    #[arg(long, value_enum, default_value_t = crate::risk::population::SnbVariant::Derived)]
    pub snb: crate::risk::population::SnbVariant,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Run folder for the report (default: reports/<run-id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Policy file of thresholds; a breach exits with code 1.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Facts of the Expert Determination (expert, recipient, release, DUA terms).
    #[arg(long, value_name = "FILE")]
    pub determination: Option<PathBuf>,
    /// Seed recorded in the manifest (the risk analysis itself draws no random numbers).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print load / analysis / report timings (seconds) as JSON on stderr.
    #[arg(long, hide = true)]
    pub timings: bool,
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run folder of the report.
    #[arg(long, default_value = "reports/demo")]
    pub out: PathBuf,
    /// Number of synthetic patients.
    #[arg(long, default_value_t = 20_000)]
    pub patients: u64,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Patients of the second, small synthetic dataset on whose member notes the demo trains
    /// its target model with planted canaries (0: skip training).
    #[arg(long, default_value_t = 200)]
    pub train_patients: u64,
    /// Epochs of the demo's target training.
    #[arg(long, default_value_t = 4.0)]
    pub train_epochs: f64,
    /// Reference models trained beside the demo's target for the membership audit (even; 0:
    /// reference-free attacks only). A fleet from an earlier run with the same settings is reused.
    #[arg(long, default_value_t = 4)]
    pub train_references: usize,
}

/// Options of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder (containing findings.json).
    pub run_dir: PathBuf,
    /// Recompute the membership findings from observations/ (no model needed).
    #[arg(long)]
    pub reanalyze: bool,
    /// With --reanalyze: a probe plan whose membership settings replace the run's.
    #[arg(long, requires = "reanalyze")]
    pub plan: Option<PathBuf>,
    /// Attach (or replace) the Expert Determination facts: a determination.toml.
    #[arg(long, value_name = "FILE")]
    pub determination: Option<PathBuf>,
}

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

/// Options of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
        Command::Score(a) => score_cmd(&a, cli.quiet),
        Command::Generate(a) => generate_cmd(&a),
        Command::BenchScore(a) => bench_score_cmd(&a),
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
    let data_dir = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(format!(
            "{}-data",
            a.out
                .file_name()
                .map_or("demo".into(), |n| n.to_string_lossy().into_owned())
        ));
    // The report folder is checked (and locked) before the data is synthesised.
    let folder = crate::run::folder::claim(&a.out, &[])?;
    if !quiet {
        eprintln!(
            "synthesising {} patients (seed {}) into {} …",
            a.patients,
            a.seed,
            data_dir.display()
        );
    }
    let s = synthesise(&data_dir, a.patients, a.seed, Format::Parquet, 0.5, quiet)?;
    let file = crate::run::demo::risk(&folder, &s.card, a.patients, a.seed)?;
    drop(folder);
    crate::run::folder::log_event(
        &a.out,
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
            a.out.join(report::HTML).display(),
            a.out.join(report::MARKDOWN).display(),
            a.out.join(report::FINDINGS).display()
        );
    }
    if a.train_patients > 0 {
        train::demo_target(a, &data_dir, quiet)?;
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

fn open_model(a: &ModelArgs) -> Result<Box<dyn crate::model::LanguageModel>> {
    set_threads(a.threads)?;
    let opts = crate::model::LoadOptions {
        adapter: a.adapter.clone(),
        threads: a.threads,
    };
    Ok(crate::model::load(&a.model, &opts)?)
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

fn score_cmd(a: &ScoreArgs, quiet: bool) -> Result<u8> {
    if a.format == ScoreFormat::Parquet && (a.data.is_none() || a.out.is_none()) {
        return Err(crate::Error::Usage("--format parquet needs --data and --out".into()).into());
    }
    if a.batch_tokens == 0 {
        return Err(crate::Error::Usage("--batch-tokens must be at least 1".into()).into());
    }
    if let Some(out) = &a.out {
        let mut inputs: Vec<PathBuf> = a.data.iter().cloned().collect();
        if let Some(card) = &a.data
            && let Ok(c) = crate::data::DatasetCard::load(card)
        {
            inputs.extend(c.files());
        }
        let m = &a.model.model;
        inputs.push(PathBuf::from(m.strip_prefix("mock:").unwrap_or(m)));
        inputs.extend(a.model.adapter.iter().cloned());
        crate::integrity::folder::check_file_output(out, &inputs)?;
    }
    // Read the data first: a bad card fails before a model is loaded.
    let records = match &a.data {
        Some(card) => Some(score_records(card, a.column.as_deref())?),
        None => None,
    };
    let model = open_model(&a.model)?;
    if let Some(text) = &a.text {
        let s = model.score(&[model.encode(text)?])?.remove(0);
        let value = serde_json::json!({
            "model": model.card().architecture,
            "n_tokens": s.scores.len(),
            "total_logprob": s.total(),
            "mean_logprob": if s.scores.is_empty() { None } else { Some(s.mean()) },
            "adds_bos": model.card().tokenizer.adds_bos,
            "token_ids": s.tokens,
            "tokens": s.tokens.iter().map(|&t| model.token_text(t)).collect::<Vec<_>>(),
            "token_logprobs": std::iter::repeat_n(None, s.first_scored)
                .chain(s.scores.iter().map(|x| Some(f64::from(x.logprob))))
                .collect::<Vec<_>>(),
            "token_mean_logprob": std::iter::repeat_n(None, s.first_scored)
                .chain(s.scores.iter().map(|x| Some(f64::from(x.mean))))
                .collect::<Vec<_>>(),
            "token_var_logprob": std::iter::repeat_n(None, s.first_scored)
                .chain(s.scores.iter().map(|x| Some(f64::from(x.var))))
                .collect::<Vec<_>>(),
        });
        write_output(
            a.out.as_deref(),
            &(serde_json::to_string_pretty(&value)? + "\n"),
        )?;
        return Ok(exit::PASS);
    }
    let (ids, texts) = records.expect("clap requires --text or --data");
    let pb = progress_bar(texts.len() as u64, quiet, "scoring");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let scores =
        crate::model::score_texts(model.as_ref(), &refs, a.batch_tokens, |n| pb.inc(n as u64))?;
    pb.finish_and_clear();
    let rows: Vec<crate::data::scores::ScoreRow> = ids
        .into_iter()
        .zip(&scores)
        .map(|(record_id, s)| crate::data::scores::ScoreRow {
            record_id,
            n_tokens: s.scores.len(),
            total_logprob: s.total(),
            mean_logprob: s.mean(),
        })
        .collect();
    match a.format {
        ScoreFormat::Parquet => {
            crate::data::scores::write_parquet(&rows, a.out.as_deref().expect("checked"))?
        }
        ScoreFormat::Json => {
            let mut text = String::new();
            for r in &rows {
                text += &serde_json::to_string(r)?;
                text.push('\n');
            }
            write_output(a.out.as_deref(), &text)?;
        }
    }
    if !quiet {
        let tokens: usize = rows.iter().map(|r| r.n_tokens).sum();
        eprintln!("scored {} records ({tokens} tokens)", rows.len());
    }
    Ok(exit::PASS)
}

/// Record ids and texts of a dataset card's text column.
fn score_records(card: &Path, column: Option<&str>) -> Result<(Vec<String>, Vec<String>)> {
    let r = crate::data::text::TextRecords::load(card, column)?;
    Ok((r.ids, r.texts))
}

fn generate_cmd(a: &GenerateArgs) -> Result<u8> {
    use crate::model::{Decoding, Strategy};
    let strategy = match (a.greedy, a.temperature) {
        _ if a.beam.is_some() => {
            let width = a.beam.unwrap_or(1);
            if width == 0 {
                return Err(crate::Error::Usage("--beam must be at least 1".into()).into());
            }
            Strategy::Beam { width }
        }
        (true, _) | (false, None) if a.top_k.is_none() && a.top_p.is_none() => Strategy::Greedy,
        _ => {
            let temperature = a.temperature.unwrap_or(1.0);
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(
                    crate::Error::Usage("--temperature must be a positive number".into()).into(),
                );
            }
            if let Some(p) = a.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
                return Err(crate::Error::Usage(format!("--top-p {p} is not in (0, 1]")).into());
            }
            if a.top_k == Some(0) {
                return Err(crate::Error::Usage("--top-k must be at least 1".into()).into());
            }
            Strategy::Sample {
                temperature,
                top_k: a.top_k,
                top_p: a.top_p,
            }
        }
    };
    let model = open_model(&a.model)?;
    let prompts: Vec<Vec<u32>> = a
        .prompt
        .iter()
        .map(|p| model.encode(p))
        .collect::<crate::Result<_>>()?;
    let d = Decoding {
        strategy,
        max_new_tokens: a.max_new_tokens,
        seed: a.seed,
        stop_at_eos: !a.ignore_eos,
    };
    let outs = model.generate(&prompts, &d)?;
    let mut text = String::new();
    let mut items = Vec::new();
    for ((prompt, ids), out) in a.prompt.iter().zip(&prompts).zip(&outs) {
        let generated = model.decode(out)?;
        match a.format {
            GenerateFormat::Text => {
                text += &generated;
                text.push('\n');
            }
            GenerateFormat::Json => items.push(serde_json::json!({
                "prompt": prompt,
                "prompt_ids": ids,
                "generated_ids": out,
                "text": generated,
            })),
        }
    }
    if a.format == GenerateFormat::Json {
        let value = serde_json::json!({
            "model": model.card().architecture,
            "decoding": match strategy {
                Strategy::Greedy => serde_json::json!({"greedy": true}),
                Strategy::Beam { width } => serde_json::json!({"beam": width}),
                Strategy::Sample { temperature, top_k, top_p } =>
                    serde_json::json!({"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": a.seed}),
            },
            "max_new_tokens": a.max_new_tokens,
            "outputs": items,
        });
        text = serde_json::to_string_pretty(&value)? + "\n";
    }
    write_output(None, &text)?;
    Ok(exit::PASS)
}

fn bench_score_cmd(a: &BenchScoreArgs) -> Result<u8> {
    use std::time::Instant;
    let model = open_model(&a.model)?;
    let vocab = model.card().tokenizer.vocab_size as u64;
    let mut rng = crate::stats::rng::Rng::new(7);
    let seqs: Vec<Vec<u32>> = (0..a.sequences)
        .map(|_| (0..a.tokens).map(|_| rng.below(vocab) as u32).collect())
        .collect();
    let per_batch = (a.batch_tokens / a.tokens.max(1)).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..a.repeat.max(1) {
        let t0 = Instant::now();
        for chunk in seqs.chunks(per_batch) {
            model.score(chunk)?;
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let scored = (a.sequences * a.tokens.saturating_sub(1)) as f64;
    let card = model.card();
    let (gflops, flops_per_token) = crate::model::roofline(card, a.tokens)?;
    let tok_s = scored / best;
    let roof = gflops * 1e9 / flops_per_token;
    let value = serde_json::json!({
        "sequences": a.sequences,
        "tokens": a.tokens,
        "seconds": best,
        "tok_per_s": tok_s,
        "matmul_gflops": gflops,
        "flops_per_token": flops_per_token,
        "roofline_tok_per_s": roof,
        "roofline_fraction": tok_s / roof,
    });
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(exit::PASS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
