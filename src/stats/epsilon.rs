//! Empirical ε lower bounds from an attack's error rates.
//!
//! A mechanism that is (ε, δ)-differentially private confines every membership test to the
//! hypothesis-testing region of Kairouz, Oh & Viswanath ("The composition theorem for
//! differential privacy", ICML 2015): FPR + e^ε·FNR ≥ 1 − δ and FNR + e^ε·FPR ≥ 1 − δ. An attack
//! with observed error rates therefore shows
//!
//! ε ≥ max{ ln((1 − δ − FNR)/FPR), ln((1 − δ − FPR)/FNR) },
//!
//! and, with upper confidence bounds on both rates in place of the rates (Clopper–Pearson, each
//! two-sided at the stated confidence so the pair holds jointly at one-sided confidence by a
//! union bound, as microsoft/privacy-estimates), a lower bound that holds with that confidence
//! (Jagielski, Ullman & Oprea, "Auditing Differentially Private Machine Learning", NeurIPS 2020).
//! The threshold must not be chosen on the counts it is evaluated on: callers calibrate it on a
//! separate split.

use super::interval::clopper_pearson;
use super::special::normal_quantile;

/// Methods for a one-sided lower confidence bound on a ratio of two binomial proportions
/// (p1 / p0 with p1 = x/m, p0 = y/n), as TensorFlow Privacy's `RatioBound` (whose expected values
/// come from R's asbio `ci.prat`). They give pure-ε bounds (δ ignored): ε ≥ ln(bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatioMethod {
    /// Katz et al. (1978): log-ratio with the delta-method variance.
    KatzLog,
    /// Walter (1975): the same with ½ added to every count.
    AdjustedLog,
    /// Bailey (1987): cube-root transformation.
    Bailey,
    /// Newcombe (2001): inverse hyperbolic sine.
    InvSinh,
    /// Clopper–Pearson bounds of both proportions: p1's lower over p0's upper.
    ClopperPearson,
}

/// Lower bound at level 1 − α on (x/m)/(y/n), with TensorFlow Privacy's handling of zero and
/// full counts (0 where the bound is undefined or vacuous).
pub fn ratio_lower_bound(x: u64, m: u64, y: u64, n: u64, alpha: f64, method: RatioMethod) -> f64 {
    let z = normal_quantile(alpha); // negative: one-sided
    let (mf, nf) = (m as f64, n as f64);
    // Shared adjustment: both proportions at 1 → pull both counts in by ½.
    let both_full = x == m && y == n;
    let (t, f) = if both_full {
        (mf - 0.5, nf - 0.5)
    } else {
        (x as f64, y as f64)
    };
    let v = match method {
        RatioMethod::KatzLog => {
            if t == 0.0 {
                return 0.0;
            }
            let f = if f == 0.0 { 0.5 } else { f };
            let (tpr, fpr) = (t / mf, f / nf);
            (tpr / fpr) * (z * ((1.0 - tpr) / t + (1.0 - fpr) / f).sqrt()).exp()
        }
        RatioMethod::AdjustedLog => {
            if t == 0.0 && f == 0.0 {
                return 0.0;
            }
            let l = ((t + 0.5) / (mf + 0.5)).ln() - ((f + 0.5) / (nf + 0.5)).ln();
            let se =
                (1.0 / (t + 0.5) - 1.0 / (mf + 0.5) + 1.0 / (f + 0.5) - 1.0 / (nf + 0.5)).sqrt();
            (l + z * se).exp()
        }
        RatioMethod::Bailey => {
            if x == 0 {
                return 0.0;
            }
            let t = if x == m { mf - 0.5 } else { x as f64 };
            let f = if y == n { nf - 0.5 } else { y as f64 };
            let f = if f == 0.0 { 0.5 } else { f };
            let (tpr, fpr) = (t / mf, f / nf);
            let (fnr, tnr) = (1.0 - tpr, 1.0 - fpr);
            let num =
                1.0 + (z / 3.0) * (fnr / t + tnr / f - z * z * fnr * tnr / (9.0 * t * f)).sqrt();
            let den = 1.0 - z * z * tnr / (9.0 * f);
            (tpr / fpr) * (num / den).powi(3)
        }
        RatioMethod::InvSinh => {
            if t == 0.0 {
                return 0.0;
            }
            let f = if f == 0.0 { z * z } else { f };
            let r = (t / f) / (mf / nf);
            let s = (z / 2.0) * (1.0 / t - 1.0 / mf + 1.0 / f - 1.0 / nf).sqrt();
            r * (2.0 * s.asinh()).exp()
        }
        RatioMethod::ClopperPearson => {
            let p1 = clopper_pearson(x, m, 1.0 - alpha).0;
            let p0 = clopper_pearson(y, n, 1.0 - alpha).1;
            if p1 <= 0.0 || p0 >= 1.0 {
                return 0.0;
            }
            p1 / p0
        }
    };
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}

/// Pure-ε lower bound of one confusion matrix: the largest ln of the four ratio bounds
/// TPR/FPR, TNR/FNR, FPR/TPR and FNR/TNR (TensorFlow Privacy's two-sided variant), or 0.
pub fn ratio_epsilon(tp: u64, fn_: u64, fp: u64, tn: u64, alpha: f64, method: RatioMethod) -> f64 {
    let (p, n) = (tp + fn_, fp + tn);
    [
        ratio_lower_bound(tp, p, fp, n, alpha, method),
        ratio_lower_bound(tn, n, fn_, p, alpha, method),
        ratio_lower_bound(fp, n, tp, p, alpha, method),
        ratio_lower_bound(fn_, p, tn, n, alpha, method),
    ]
    .into_iter()
    .filter(|&b| b > 0.0)
    .map(f64::ln)
    .fold(0.0, f64::max)
}

/// The ε the rates (fpr, fnr) imply at δ (`0` when they imply nothing).
pub fn epsilon_from_rates(fpr: f64, fnr: f64, delta: f64) -> f64 {
    let side = |a: f64, b: f64| {
        let num = 1.0 - delta - a;
        if num <= 0.0 {
            0.0
        } else if b <= 0.0 {
            f64::INFINITY
        } else {
            (num / b).ln().max(0.0)
        }
    };
    side(fnr, fpr).max(side(fpr, fnr))
}

/// A confidence lower bound on ε from a confusion matrix: the rates replaced by their
/// Clopper–Pearson upper bounds (two-sided interval at `confidence` for each rate).
pub fn epsilon_lower_bound(
    tp: u64,
    fn_: u64,
    fp: u64,
    tn: u64,
    delta: f64,
    confidence: f64,
) -> f64 {
    let fpr_hi = clopper_pearson(fp, fp + tn, confidence).1;
    let fnr_hi = clopper_pearson(fn_, tp + fn_, confidence).1;
    epsilon_from_rates(fpr_hi, fnr_hi, delta)
}

/// The many-trials Clopper–Pearson bound from attack scores (Nasr et al. 2021, "Adversary
/// Instantiation"), one-sided (guess "in" above a threshold): at every threshold of the ROC
/// frontier, ε ≥ ln(TPR_lb − δ) − ln(FPR_ub), with one-sided Clopper–Pearson bounds at
/// significance / 2 each, Bonferroni-corrected over the thresholds; the largest. Each score is
/// treated as an independent trial (as in a many-run audit).
pub fn epsilon_from_scores(
    in_scores: &[f64],
    out_scores: &[f64],
    significance: f64,
    delta: f64,
) -> f64 {
    let Some(roc) = super::one_run::Frontier::new(in_scores, out_scores) else {
        return 0.0;
    };
    let alpha = significance / roc.counts.len() as f64 / 2.0;
    // One-sided upper bounds at α: the two-sided interval at confidence 1 − 2α.
    let upper = |k: u64, n: u64| clopper_pearson(k, n, 1.0 - 2.0 * alpha).1;
    let mut best = 0.0f64;
    for &(fn_, tn) in &roc.counts {
        let tpr_lb = 1.0 - upper(fn_, roc.n_pos);
        let fpr_ub = upper(roc.n_neg - tn, roc.n_neg);
        if tpr_lb > delta && fpr_ub > 0.0 {
            best = best.max((tpr_lb - delta).ln() - fpr_ub.ln());
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// privacy-estimates README (reference/attacks.md §B.7): TP 487, TN 1, FP 512, FN 0,
    /// δ = 1e-5, α = 0.1 → the Clopper–Pearson lower bound is 0.
    #[test]
    fn privacy_estimates_readme_case() {
        assert_eq!(epsilon_lower_bound(487, 0, 512, 1, 1e-5, 0.9), 0.0);
    }

    /// TF Privacy epsilon_lower_bound_test.py (reference/attacks.md §B.1); arguments are
    /// (tp, fn, fp, tn), α = 0.05, bounds on TPR/FPR; values from R asbio `ci.prat`.
    #[test]
    fn ratio_bounds_match_tf_privacy() {
        use RatioMethod::*;
        type Case = ((u64, u64, u64, u64), [f64; 4]);
        let cases: [Case; 9] = [
            (
                (473, 511, 755, 950),
                [1.01166194, 1.01189079, 1.01148934, 1.01167669],
            ),
            (
                (2, 697, 213, 313),
                [0.00220470, 0.00310880, 0.00162322, 0.00233503],
            ),
            (
                (1000, 10, 10, 10000),
                [589.27335593, 568.32659563, 613.58766147, 592.63264572],
            ),
            ((0, 511, 755, 950), [0.0, 0.00021568, 0.0, 0.0]),
            (
                (2, 697, 0, 313),
                [0.13325535, 0.17571862, 0.18481008, 0.08081083],
            ),
            ((0, 10, 0, 10000), [0.0, 0.0, 0.0, 0.0]),
            (
                (473, 0, 755, 950),
                [2.15959024, 2.15883995, 2.15787013, 2.15959827],
            ),
            (
                (2, 697, 213, 0),
                [0.00089568, 0.00126522, 0.00066016, 0.00094821],
            ),
            (
                (1000, 0, 10, 0),
                [0.93375356, 0.93686007, 0.93591485, 0.93381958],
            ),
        ];
        for ((tp, fn_, fp, tn), want) in cases {
            for (method, w) in [KatzLog, AdjustedLog, Bailey, InvSinh]
                .into_iter()
                .zip(want)
            {
                let got = ratio_lower_bound(tp, tp + fn_, fp, fp + tn, 0.05, method);
                assert!(
                    (got - w).abs() < 5e-8,
                    "{method:?} {tp} {fn_} {fp} {tn}: {got} vs {w}"
                );
            }
        }
        // Array case: P = 1000, N = 1200.
        let tps = [900, 0, 10, 1000];
        let fps = [600, 14, 0, 1200];
        let want = [
            (KatzLog, [1.71127264, 0.0, 2.21549347, 0.99840355]),
            (
                AdjustedLog,
                [1.71070821, 0.00388765, 2.33237436, 0.99840433],
            ),
            (Bailey, [1.71182320, 0.0, 3.86813751, 0.99840348]),
            (InvSinh, [1.71128185, 0.0, 1.51711034, 0.99840355]),
        ];
        for (method, w) in want {
            for i in 0..4 {
                let got = ratio_lower_bound(tps[i], 1000, fps[i], 1200, 0.05, method);
                assert!(
                    (got - w[i]).abs() < 1e-7,
                    "{method:?} [{i}]: {got} vs {}",
                    w[i]
                );
            }
        }
        // Docstring: tp [100, 90], fp [10, 5], P 110, N 80.
        for (i, (tp, fp)) in [(100, 10), (90, 5)].into_iter().enumerate() {
            let b = ratio_lower_bound(tp, 110, fp, 80, 0.05, Bailey);
            let k = ratio_lower_bound(tp, 110, fp, 80, 0.05, KatzLog);
            assert!((b - [4.61953896, 6.87647915][i]).abs() < 1e-7);
            assert!((k - [4.45958661, 6.39712581][i]).abs() < 1e-7);
        }
        // α = 0.01, (500, 0, 500, 500): Bailey's negative denominator still cubes positive.
        let at01 = |m| ratio_lower_bound(500, 500, 0, 500, 0.01, m);
        assert!((at01(KatzLog) - 37.31696140).abs() < 1e-7);
        assert!((at01(AdjustedLog) - 37.35421695).abs() < 1e-7);
        assert!((at01(Bailey) - 108.47420518).abs() < 1e-6);
        assert!((at01(InvSinh) - 35.46128691).abs() < 1e-7);
        assert!((at01(ClopperPearson).ln() - 4.541_915_810_224_077).abs() < 1e-9);
        // The ε of a perfect separation of 500 + 500 scores at α = 0.01 (CP): 4.54.
        assert!((ratio_epsilon(500, 0, 0, 500, 0.01, ClopperPearson) - 4.5419).abs() < 1e-4);
    }

    /// TF Privacy EpsilonLowerBound test: pos [9, 4, 5, 0], neg [3, 8, 6, 1, 2, 7], thresholds
    /// [9.5, 8.5, 5.5, 0.5] give tp [0, 1, 1, 3], fp [0, 0, 3, 6] (P = 4, N = 6); the logs of the
    /// four ratio bounds per threshold, bounds of 0 dropped.
    #[test]
    fn per_threshold_ratio_logs_match_tf_privacy() {
        use RatioMethod::*;
        let (tp, fp) = ([0u64, 1, 1, 3], [0u64, 0, 3, 6]);
        let logs = |m: RatioMethod, which: usize| -> Vec<f64> {
            (0..4)
                .map(|i| {
                    let (t, f) = (tp[i], fp[i]);
                    let (fn_, tn) = (4 - t, 6 - f);
                    match which {
                        0 => ratio_lower_bound(t, 4, f, 6, 0.05, m),
                        1 => ratio_lower_bound(tn, 6, fn_, 4, 0.05, m),
                        2 => ratio_lower_bound(f, 6, t, 4, 0.05, m),
                        _ => ratio_lower_bound(fn_, 4, tn, 6, 0.05, m),
                    }
                })
                .filter(|&b| b > 0.0)
                .map(f64::ln)
                .collect()
        };
        let want: [(RatioMethod, usize, &[f64]); 6] = [
            (AdjustedLog, 0, &[-1.02310327, -1.72826789, -0.66577858]),
            (
                AdjustedLog,
                1,
                &[-0.29368152, -0.16314973, -1.09474300, -3.95577741],
            ),
            (AdjustedLog, 2, &[-3.95577741, -0.76912173, -0.16314973]),
            (
                AdjustedLog,
                3,
                &[-0.36916217, -0.66577858, -0.35929344, -1.02310327],
            ),
            (InvSinh, 0, &[-2.05961264, -2.13876684, -0.75815925]),
            (InvSinh, 1, &[-0.32235626, -0.18279510, -1.20631805]),
        ];
        for (m, which, w) in want {
            let got = logs(m, which);
            assert_eq!(got.len(), w.len(), "{m:?} ratio {which}: {got:?}");
            for (g, w) in got.iter().zip(w) {
                assert!((g - w).abs() < 1e-7, "{m:?} ratio {which}: {g} vs {w}");
            }
        }
    }

    /// reference/dp.md §3.2: counts examples (privacy-estimates' "beta" method) and the
    /// ceilings of a perfect attack with n trials per side, α = 0.05 (α/2 per rate), δ = 1e-5.
    #[test]
    fn dp_reference_counts_and_ceilings() {
        let close = |got: f64, want: f64| assert!((got - want).abs() < 5e-4, "{got} vs {want}");
        close(epsilon_lower_bound(900, 100, 100, 900, 1e-5, 0.95), 1.9897);
        close(epsilon_lower_bound(990, 10, 10, 990, 1e-5, 0.95), 3.9816);
        for (n, want) in [
            (100u64, 3.281),
            (500, 4.906),
            (1000, 5.601),
            (10_000, 7.905),
            (100_000, 10.208),
        ] {
            close(epsilon_lower_bound(n, 0, 0, n, 1e-5, 0.95), want);
        }
    }

    #[test]
    fn closed_forms() {
        // Perfect separation of n = 1000 per class at 95 %: both upper bounds are
        // 1 − 0.025^(1/1000), so ε ≥ ln((1 − δ − u)/u).
        let u = 1.0 - 0.025f64.powf(1.0 / 1000.0);
        let want = ((1.0 - 1e-5 - u) / u).ln();
        let got = epsilon_lower_bound(1000, 0, 0, 1000, 1e-5, 0.95);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // Chance: nothing.
        assert_eq!(epsilon_lower_bound(500, 500, 500, 500, 1e-5, 0.95), 0.0);
        // Point rates: FPR 0.01, FNR 0.5 → ln(0.49999/0.01).
        assert!((epsilon_from_rates(0.01, 0.5, 1e-5) - (0.49999f64 / 0.01).ln()).abs() < 1e-12);
        // More data can only tighten (raise) the bound at the same rates.
        assert!(
            epsilon_lower_bound(100, 900, 1, 999, 1e-5, 0.95)
                < epsilon_lower_bound(1000, 9000, 10, 9990, 1e-5, 0.95)
        );
    }

    #[test]
    fn jax_privacy_clopper_pearson_bonferroni() {
        // reference/dp.md §3.7: 10,000 + 10,000 scores at normal quantiles, significance 0.05,
        // δ = 1e-6, Bonferroni over thresholds.
        let base = crate::stats::one_run::normal_grid(10_000);
        for (shift, want) in [(1.0, 1.787), (2.0, 3.828), (4.0, 6.413)] {
            let ins: Vec<f64> = base.iter().map(|x| x + shift).collect();
            let got = epsilon_from_scores(&ins, &base, 0.05, 1e-6);
            assert!((got - want).abs() < 5e-4, "shift {shift}: {got} vs {want}");
        }
    }
}
