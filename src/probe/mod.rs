//! Probes: attacks against a trained model. Each probe kind lives in one file with its paper
//! cited; `observe` runs the model (in [`audit`]), `analyze` is pure statistics.

pub mod audit;
pub mod canary;
pub mod dp_audit;
pub mod examples;
pub mod extraction;
pub mod inversion;
pub mod membership;
