//! Probes: attacks against a trained model. Each probe kind lives in one file (or folder) with
//! its paper cited and implements [`api::Probe`]: `observe` runs the model, `analyze` is pure
//! statistics. [`REGISTRY`] is the one list of them; plans, `phiprobe probes`, the audit
//! runner, re-analysis and the report all walk it.

pub mod api;
pub use api::{Probe, Registered};

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

/// Declares each probe's module and its [`REGISTRY`] entry from one line `module::Probe`.
macro_rules! registry {
    ($($module:ident :: $probe:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every probe this release runs, in the order they run (a probe comes after those it
        /// consumes). Adding a probe: one file implementing [`api::Probe`], one line in
        /// `registry!`.
        pub static REGISTRY: &[&dyn api::Registered] = &[$(&api::Entry::<$module::$probe>::NEW),*];
    };
}

registry! {
    membership::Membership,
    canary::Canary,
    extraction::Extraction,
    inversion::Inversion,
    dp_audit::DpAudit,
}

/// The registered probe of kind `kind`.
pub fn find(kind: &str) -> Option<&'static dyn api::Registered> {
    REGISTRY.iter().copied().find(|p| p.kind() == kind)
}

/// The report sections the registered probes render themselves (see [`api::Probe::view`]).
pub fn sections(file: &crate::evidence::FindingsFile) -> Vec<crate::report::doc::Section> {
    REGISTRY.iter().filter_map(|p| p.view(file)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_comes_after_the_probes_it_consumes() {
        for (i, p) in REGISTRY.iter().enumerate() {
            for c in p.consumes() {
                let j = REGISTRY.iter().position(|q| q.kind() == *c);
                assert!(
                    j.is_some_and(|j| j < i),
                    "{} consumes {c}, which is not registered before it",
                    p.kind()
                );
            }
        }
        let mut kinds: Vec<&str> = REGISTRY.iter().map(|p| p.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), REGISTRY.len(), "kinds are unique");
    }

    #[test]
    fn every_setting_has_a_doc_comment() {
        for p in REGISTRY {
            let help = p.help();
            assert!(!help.is_empty(), "{} lists no settings", p.kind());
            for h in help {
                assert!(
                    !h.doc.is_empty(),
                    "{}.{} has no doc comment",
                    p.kind(),
                    h.key
                );
            }
        }
    }
}
