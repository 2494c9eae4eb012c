//! The runner: the resolved plan, and the pipelines that turn inputs into a run folder.
//!
//! - [`plan`]: `probes/*.toml` and flags → a typed, resolved [`plan::Plan`];
//! - [`audit`]: observe once (cached, resumable), analyse, gate, write the run folder;
//! - [`examples`]: the PHI examples an expert may ask for, sealed in an encrypted bundle.

pub mod audit;
pub mod examples;
pub mod plan;
