//! # phiprobe
//!
//! A privacy-evaluation harness for models trained on protected health information (PHI):
//! re-identification risk of the data; membership inference, canary exposure, extraction and
//! attribute inference against the model; written up as signed evidence for HIPAA Expert
//! Determination and Privacy Impact Assessments, and gated by release policies.
//!
//! ## Map
//!
//! ```text
//! dataset card / file ──► data (polars → encoded Table) ──► risk (classes, statistics)
//!                                                              │
//!            seed, settings ──► evidence (Finding, RunManifest) ◄┘
//!                                     │
//!                                     ├──► gate (policy → verdicts, JUnit → exit code)
//!                                     └──► report (findings.json → Markdown, HTML + SVG,
//!                                          PDF) ──► integrity (manifest.json last; ed25519
//!                                          sign / verify; hash-chained run log; AES-GCM
//!                                          bundle of PHI examples)
//!
//! dataset card ──► data::text (records, split) ──► train (BPE, Llama, AdamW / DP-SGD, canaries,
//!                                                   fleets, accountant) ──► HF checkpoint folder
//! HF folder / GGUF ──► model (LanguageModel: score, generate, card)
//!
//! plan (config: probes/*.toml) ─┐
//! target + fleet + card ────────┴─► run::audit (observe once: per-token scores, Parquet
//!                                    chunks via data::observations, resumable)
//!                                      └─► probe::membership (pure: attacks → stats::roc,
//!                                          stats::epsilon) ──► evidence ──► report
//! ```
//!
//! ## Dependency rules
//!
//! - only `data/` and `risk/` touch polars; only `report/` touches plotters; only `model/` and
//!   `train/` touch candle and tokenizers (`stats::accountant` is pure maths);
//! - `stats/` and `evidence/` are pure: no I/O, no ML types, no polars;
//! - `probe::membership` (analysis) is pure; `run::audit` does the I/O and talks to models
//!   only through the `LanguageModel` trait;
//! - `cli` is the only place that uses `anyhow`; the library returns [`error::Error`];
//! - only `integrity/` touches cryptography (ed25519, AES-GCM); only `report/` embeds fonts.
//!
//! ## Untrusted input and outputs (README "Data handling")
//!
//! - every input file read whole goes through [`fsx::input`]: regular files only, within a
//!   documented size, checked before it is opened;
//! - every run folder is claimed through [`integrity::folder::RunFolder`] (the CLI's `claim` also checks
//!   the run log): not an input, replaceable only when it is phiprobe's own manifested run, locked
//!   for one writer, installed whole; in-place commands take [`integrity::folder::FolderLock`];
//! - a foreign parser's message (serde, toml, polars) never reaches an error as it is: it goes
//!   through [`redact`], and `main` prints every error through [`redact::final_message`];
//! - every number read from a file, plan or flag is range-checked where it enters (model
//!   configurations, `TrainConfig::validate`, the probes' `Settings::validate`, the accountant),
//!   before anything is allocated or written.

pub mod cli;
pub mod data;
pub mod date;
pub mod error;
pub use error::{Error, Result};
pub mod evidence;
pub mod exit;
pub mod fsx;
pub mod gate;
pub mod integrity;
pub mod model;
pub mod phi;
pub mod probe;
pub mod redact;
pub mod report;
pub mod risk;
pub mod run;
pub mod stats;
pub mod sweep;
pub mod train;
