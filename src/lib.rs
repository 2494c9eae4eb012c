//! # phiprobe
//!
//! A privacy-evaluation harness for models trained on protected health information (PHI):
//! re-identification risk of the data; membership inference, canary exposure, extraction and
//! attribute inference against the model; written up as signed evidence for HIPAA Expert
//! Determination and Privacy Impact Assessments, and gated by release policies.
//!
//! ## Map
//!
//! `ARCHITECTURE.md` in the repository is the map: the flow, the layer table (checked by
//! `tests/it/architecture.rs`), the invariants and how to add a probe. In short:
//!
//! ```text
//! plan (probes/*.toml + flags) ──► run::plan::Plan
//! dataset card ──► data ──► risk ─────────────┐
//! HF folder / GGUF ──► model::LanguageModel   │
//!          │                                  ▼
//! run::audit ── each probe in probe::REGISTRY: observe (cached) → analyze (pure) ──► evidence
//!          │
//!          └──► gate (verdicts) ──► report (JSON, Markdown, HTML, PDF, JUnit, terminal)
//!                                    ──► integrity (manifest, run folder, signature, run log)
//! dataset card ──► train (BPE, Llama, DP-SGD, canaries, fleets) ──► HF checkpoint folder
//! ```
//!
//! ## Dependency rules
//!
//! - a module uses only modules of lower layers (ARCHITECTURE.md "Layers"): no cycle, no
//!   upward import;
//! - only `data/` touches polars; only `report/` draws figures (`report::chart`, to SVG and PDF,
//!   PDF objects through pdf-writer); only `model/` and `train/` touch candle and tokenizers (`stats::accountant` is pure maths);
//! - `stats/`, `evidence/` and every probe's `analyze` are pure: no I/O, no ML types, no polars;
//!   only a probe's `observe` runs a model, through the `LanguageModel` trait;
//! - `cli` is the only place that uses `anyhow`; the library returns [`error::Error`];
//! - only `integrity/` touches cryptography (ed25519, AES-GCM); only `report/` embeds fonts.
//!
//! ## Untrusted input and outputs (README "Data handling")
//!
//! - every input file read whole goes through [`fsx::input`]: regular files only, within a
//!   documented size, checked before it is opened;
//! - every run folder is claimed through [`integrity::folder::RunFolder`] (`run::folder::claim` also checks
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
