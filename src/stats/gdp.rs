//! The Gaussian-DP estimate of ε from attack scores: Nasr, Hayes, Steinke, Balle, Tramèr,
//! Jagielski, Carlini & Terzis, "Tight Auditing of Differentially Private Machine Learning",
//! USENIX Security 2023 (arXiv 2302.07956), as described in arXiv 2406.04827.
//!
//! At every threshold of the ROC frontier the false-positive and false-negative rates are
//! replaced by one-sided Clopper–Pearson upper bounds (Bonferroni over 2n hypotheses); the
//! largest μ = Φ⁻¹(1 − FPR_ub) − Φ⁻¹(FNR_ub) (Dong, Roth & Su 2019, Eq. 6; in absolute value,
//! the reversed test counts too) is converted to (ε, δ) by the μ-GDP duality
//! δ = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2). It assumes the trade-off curve is Gaussian, so it is
//! an **estimate**, not a bound. Pure maths.

use super::one_run::Frontier;
use super::special::{normal_cdf, normal_quantile};

/// One-sided Clopper–Pearson upper bound on k/n at significance `alpha`: the upper end of the
/// two-sided interval at confidence 1 − 2α.
fn cp_upper(k: u64, n: u64, alpha: f64) -> f64 {
    super::clopper_pearson(k, n, 1.0 - 2.0 * alpha).1
}

/// δ(ε) of μ-GDP.
pub fn gdp_delta(eps: f64, mu: f64) -> f64 {
    normal_cdf(-eps / mu + mu / 2.0) - eps.exp() * normal_cdf(-eps / mu - mu / 2.0)
}

/// ε of μ-GDP at `delta`: the root of δ(ε) = `delta` in [0, 100] (0 when δ(0) ≤ `delta`).
pub fn gdp_epsilon(mu: f64, delta: f64) -> f64 {
    if mu <= 0.0 || gdp_delta(0.0, mu) <= delta {
        return 0.0;
    }
    let (lo, hi) = (0.0f64, 100.0f64);
    if gdp_delta(hi, mu) >= delta {
        return hi;
    }
    super::one_run::last_true(lo, hi, 1e-10, |e| gdp_delta(e, mu) > delta)
}

/// The GDP estimate of ε from the scores of included and excluded canaries (higher = "in").
pub fn epsilon_estimate(
    in_scores: &[f64],
    out_scores: &[f64],
    significance: f64,
    delta: f64,
) -> f64 {
    let Some(roc) = Frontier::new(in_scores, out_scores) else {
        return 0.0;
    };
    let alpha = significance / (2 * roc.counts.len()) as f64;
    let mut mu = 0.0f64;
    for &(fn_, tn) in &roc.counts {
        let fnr = cp_upper(fn_, roc.n_pos, alpha);
        let fpr = cp_upper(roc.n_neg - tn, roc.n_neg, alpha);
        if fnr.max(fpr) >= 1.0 - delta {
            continue;
        }
        // Only thresholds where the attack beats guessing count (μ ≤ 0 → ε = 0): a corner far
        // below the diagonal is the attack reversed, not evidence for it.
        mu = mu.max(normal_quantile(1.0 - fpr) - normal_quantile(fnr));
    }
    gdp_epsilon(mu, delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdp_duality_oracles() {
        // reference/dp.md (a) 7: MNIST μ = 0.5736 → ε = 2.3243 at δ = 1e-5.
        assert!((gdp_epsilon(0.5736, 1e-5) - 2.3243).abs() < 5e-4);
        // §3.7: the true ε of μ-GDP at δ = 1e-6 for μ = 1, 2, 4.
        for (mu, want) in [(1.0, 4.887), (2.0, 10.997), (4.0, 26.357)] {
            assert!((gdp_epsilon(mu, 1e-6) - want).abs() < 5e-4, "μ {mu}");
        }
    }

    #[test]
    fn jax_privacy_gdp_estimates() {
        // §3.7: 10,000 + 10,000 scores at normal quantiles, significance 0.05, δ = 1e-6.
        let base = super::super::one_run::normal_grid(10_000);
        for (shift, want) in [(1.0, 4.335), (2.0, 10.241), (4.0, 24.691)] {
            let ins: Vec<f64> = base.iter().map(|x| x + shift).collect();
            let got = epsilon_estimate(&ins, &base, 0.05, 1e-6);
            assert!((got - want).abs() < 5e-4, "shift {shift}: {got} vs {want}");
        }
    }

    #[test]
    fn no_signal_gives_no_estimate() {
        // Identical in- and out-distributions: the extreme corners (FNR upper bound near 1)
        // have Φ⁻¹(1 − FPR_ub) − Φ⁻¹(FNR_ub) far below 0 and must not count.
        let base = super::super::one_run::normal_grid(500);
        let got = epsilon_estimate(&base, &base, 0.05, 1e-5);
        assert_eq!(got, 0.0);
        let mut rng = crate::stats::Rng::new(3);
        let ins: Vec<f64> = (0..483).map(|_| rng.normal()).collect();
        let outs: Vec<f64> = (0..517).map(|_| rng.normal()).collect();
        assert!(epsilon_estimate(&ins, &outs, 0.05, 1e-5) < 0.5);
    }
}
