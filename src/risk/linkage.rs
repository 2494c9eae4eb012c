//! Linking model leakage to identity risk: what a model's answers about a patient do to the
//! chance of picking that patient out of a de-identified release.
//!
//! Pure arithmetic; the inversion probe (`probe::inversion`) gathers the inputs.
//!
//! **Identification under a naive-Bayes attacker.** The attacker knows a target's released
//! quasi-identifiers, so the target is one of the `f` patients of its equivalence class in the
//! release (prosecutor risk 1/f). The attacker then asks the model about the target (the
//! attribute-inference prompt) and gets, for each linkable field, a distribution `q` over that
//! field's candidate values. Every patient `j` of the class is weighed by how well its released
//! values fit the model's answers, `L_j = Π_fields max_{v ∈ values_j} q(v)` (fields treated as
//! independent; a patient with several records counts its best-fitting record), and the
//! identification probability of the target is its posterior `L_target / Σ_j L_j`. With a model
//! that says nothing (`q` uniform) this is exactly 1/f.
//!
//! **Membership posterior.** A membership attack achieving privacy loss ε (the empirical lower
//! bound of the membership probe) turns a prior π that a person was trained on into a posterior
//! of at least `e^ε π / (e^ε π + 1 − π)`: Bayes' rule with the attack's likelihood ratio e^ε
//! (pure ε; δ adds at most δ to the attack's success and is ignored here).

pub use crate::evidence::IdSummary;

/// Posterior probability of `target` among patients with log-likelihoods `loglik` (natural
/// log); `NaN` when the target is out of range or every likelihood is zero.
pub fn posterior(target: usize, loglik: &[f64]) -> f64 {
    let Some(&t) = loglik.get(target) else {
        return f64::NAN;
    };
    let max = loglik.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return f64::NAN;
    }
    let z: f64 = loglik.iter().map(|l| (l - max).exp()).sum();
    (t - max).exp() / z
}

/// Lower bound on the posterior that a person was in the training data, from an attack with
/// privacy loss `epsilon` at prior `prior` (see the module docs).
pub fn membership_posterior(epsilon: f64, prior: f64) -> f64 {
    if !(0.0..=1.0).contains(&prior) || epsilon.is_nan() {
        return f64::NAN;
    }
    if prior == 0.0 || prior == 1.0 {
        return prior;
    }
    // Odds form: stays exact at ε = ∞ (posterior 1).
    1.0 / (1.0 + (1.0 - prior) / prior * (-epsilon.max(0.0)).exp())
}

/// Equivalence-class size strata of the report: 1, 2, 3–4, 5–9, 10+.
pub const STRATA: [(u64, u64); 5] = [(1, 1), (2, 2), (3, 4), (5, 9), (10, u64::MAX)];

/// Label of the stratum of class size `f` (`"1"`, `"3–4"`, `"10+"`).
pub fn stratum(f: u64) -> String {
    let (lo, hi) = STRATA
        .iter()
        .copied()
        .find(|&(lo, hi)| (lo..=hi).contains(&f))
        .unwrap_or((0, 0));
    if lo == hi {
        format!("{lo}")
    } else if hi == u64::MAX {
        format!("{lo}+")
    } else {
        format!("{lo}–{hi}")
    }
}

/// Summarises probabilities against `thresholds`.
pub fn summarize(ps: &[f64], thresholds: &[f64]) -> IdSummary {
    let n = ps.len() as u64;
    IdSummary {
        n,
        mean: (n > 0).then(|| ps.iter().sum::<f64>() / n as f64),
        max: ps.iter().copied().reduce(f64::max),
        above: thresholds
            .iter()
            .map(|&t| ps.iter().filter(|&&p| p > t).count() as u64)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uninformative_model_gives_one_over_f() {
        for f in 1..8 {
            let l = vec![(0.25f64).ln(); f];
            assert!((posterior(0, &l) - 1.0 / f as f64).abs() < 1e-12);
        }
    }

    #[test]
    fn posterior_follows_likelihood_ratios() {
        // Target twice as likely as each of two others: 2 / (2 + 1 + 1).
        let l = [2f64.ln(), 0.0, 0.0];
        assert!((posterior(0, &l) - 0.5).abs() < 1e-12);
        assert!((posterior(1, &l) - 0.25).abs() < 1e-12);
        // Large magnitudes stay finite.
        assert!((posterior(0, &[-1000.0, -1000.0]) - 0.5).abs() < 1e-12);
        assert!(posterior(3, &l).is_nan());
        assert!(posterior(0, &[f64::NEG_INFINITY]).is_nan());
    }

    #[test]
    fn membership_posterior_closed_forms() {
        // ε = 0: no information, posterior = prior.
        assert!((membership_posterior(0.0, 0.3) - 0.3).abs() < 1e-12);
        // Prior ½: posterior = e^ε / (1 + e^ε), the logistic of ε.
        let e = 2f64;
        assert!((membership_posterior(e, 0.5) - e.exp() / (1.0 + e.exp())).abs() < 1e-12);
        // ln 3 at prior ¼: odds 1/3 × 3 = 1 → ½.
        assert!((membership_posterior(3f64.ln(), 0.25) - 0.5).abs() < 1e-12);
        assert!(membership_posterior(1.0, 1.5).is_nan());
        assert_eq!(membership_posterior(f64::INFINITY, 0.01), 1.0);
        assert_eq!(membership_posterior(5.0, 0.0), 0.0);
    }

    #[test]
    fn strata_and_summary() {
        assert_eq!(stratum(1), "1");
        assert_eq!(stratum(3), "3–4");
        assert_eq!(stratum(9), "5–9");
        assert_eq!(stratum(250), "10+");
        let s = summarize(&[0.5, 0.04, 0.1, 1.0], &[0.09, 0.05]);
        assert_eq!(s.n, 4);
        assert_eq!(s.above, vec![3, 3]);
        assert!((s.mean.unwrap() - 0.41).abs() < 1e-12);
        assert_eq!(s.max, Some(1.0));
        assert_eq!(summarize(&[], &[0.09]).mean, None);
    }
}
