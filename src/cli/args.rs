//! The command line's definitions: every command and flag, one doc comment each (they are
//! `--help`). No behaviour lives here; `cli` dispatches, `run` and the library do the work.

use super::{AuditArgs, BenchCanaryArgs, BenchInversionArgs, BenchMiaArgs, ProbesArgs, phi, sweep};
use super::{DecryptArgs, GateArgs, KeygenArgs, SignArgs, VerifyArgs};
use crate::data::Format;
use crate::risk::{KRule, MissingPolicy};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

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

pub(super) fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
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
    #[arg(long, value_enum, default_value_t = KRule::Strict)]
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

/// Options of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
