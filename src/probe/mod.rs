//! Probes: attacks against a trained model. Each probe kind lives in one file with its paper
//! cited; `observe` runs the model (in [`audit`]), `analyze` is pure statistics.

pub mod canary;
pub mod dp_audit;
pub mod extraction;
pub mod inversion;
pub mod membership;

/// Largest count any plan setting may ask for (resamples, generations, records, candidates,
/// expansions): a count from a plan file sizes work and memory, so each has a documented
/// maximum, checked before anything runs.
pub const MAX_COUNT: usize = 10_000_000;
/// Largest token count (prefix, suffix, generated tokens) and batch a plan may ask for.
pub const MAX_TOKENS: usize = 65_536;

/// Checks plan counts: each `(name, value, max)` must be at most `max`.
pub fn check_counts(counts: &[(&str, usize, usize)]) -> std::result::Result<(), String> {
    for &(name, v, max) in counts {
        if v > max {
            return Err(format!("{name} = {v} is more than the maximum {max}"));
        }
    }
    Ok(())
}
