//! Confidence intervals for proportions.

use super::special::{beta_quantile, normal_quantile};

/// Two-sided standard-normal critical value for a confidence level, e.g. 0.95 → 1.95996…
pub fn probit(confidence: f64) -> f64 {
    normal_quantile(1.0 - (1.0 - confidence) / 2.0)
}

/// Exact Clopper–Pearson interval for `k` successes out of `n` trials (Clopper & Pearson,
/// Biometrika 1934). Returns `(lo, hi)`; `(0, 1)` when `n == 0`.
pub fn clopper_pearson(k: u64, n: u64, confidence: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let alpha = 1.0 - confidence;
    let (k, n) = (k.min(n) as f64, n as f64);
    let lo = if k == 0.0 {
        0.0
    } else {
        beta_quantile(k, n - k + 1.0, alpha / 2.0)
    };
    let hi = if k == n {
        1.0
    } else {
        beta_quantile(k + 1.0, n - k, 1.0 - alpha / 2.0)
    };
    (lo, hi)
}

/// Wilson score interval in Anonymeter's centre ± half-width form (Giomi et al., PETS 2023):
/// centre (k + z²/2)/(n + z²), half-width z/(n + z²)·√(k(n−k)/n + z²/4).
/// Returns `(centre, half_width)`.
pub fn wilson(k: u64, n: u64, confidence: f64) -> (f64, f64) {
    if n == 0 {
        return (0.5, 0.5);
    }
    let z = probit(confidence);
    let z2 = z * z;
    let (k, n) = (k as f64, n as f64);
    let centre = (k + 0.5 * z2) / (n + z2);
    let half = z / (n + z2) * (k * (n - k) / n + 0.25 * z2).sqrt();
    (centre, half)
}

/// Anonymeter's residual risk (Giomi et al., PETS 2023): the attack's success beyond a control
/// (baseline) attack, (a − c)/(1 − c), with first-order error propagation of the two
/// uncertainties: σ² = (σ_a/(1 − c))² + (σ_c·(a − 1)/(1 − c)²)². Returns (risk, error);
/// `(NaN, NaN)` when the control always succeeds.
pub fn residual_success(attack: (f64, f64), control: (f64, f64)) -> (f64, f64) {
    let ((a, sa), (c, sc)) = (attack, control);
    if c >= 1.0 {
        return (f64::NAN, f64::NAN);
    }
    let d = 1.0 - c;
    let risk = (a - c) / d;
    let err = ((sa / d).powi(2) + (sc * (a - 1.0) / (d * d)).powi(2)).sqrt();
    (risk, err)
}

/// Anonymeter's `bind_value`: a point ± error as (point, lo, hi), each clamped to [0, 1] (the
/// interval becomes asymmetric at the edges). NaNs stay NaN.
pub fn bind(point: f64, error: f64) -> (f64, f64, f64) {
    let clamp = |x: f64| if x.is_nan() { x } else { x.clamp(0.0, 1.0) };
    (clamp(point), clamp(point - error), clamp(point + error))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// anonymeter test_confidence.py `bind_value` cases (reference/reid.md §4).
    #[test]
    fn bind_matches_anonymeter() {
        let near = |a: (f64, f64, f64), b: (f64, f64, f64)| {
            (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12 && (a.2 - b.2).abs() < 1e-12
        };
        assert!(near(bind(0.1, 0.3), (0.1, 0.0, 0.4)));
        assert!(near(bind(1.1, 0.5), (1.0, 0.6, 1.0)));
        assert!(near(bind(-0.1, 0.2), (0.0, 0.0, 0.1)));
        assert!(bind(f64::NAN, 0.1).0.is_nan());
    }

    /// anonymeter EvaluationResults(n_attacks 100, 23 successes, 11 baseline, 95 %): the
    /// residual risk of the attack over the baseline, through the same functions the inversion
    /// probe uses.
    #[test]
    fn evaluation_results_fixture() {
        let a = wilson(23, 100, 0.95);
        let b = wilson(11, 100, 0.95);
        assert!(close(a.0, 0.239_988_244_515_886_13, 1e-12));
        assert!(close(a.1, 0.081_555_585_712_851_67, 1e-12));
        assert!(close(b.0, 0.124_427_464_300_724_4, 1e-12));
        assert!(close(b.1, 0.061_885_500_730_078_73, 1e-12));
        let (r, e) = residual_success(a, b);
        // Computed independently (Python, the formulas of reference/reid.md §4).
        assert!(close(r, 0.131_983_103_059_381_77, 1e-9), "{r}");
        assert!(close(e, 0.111_535_083_657_995_69, 1e-9), "{e}");
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    /// Anonymeter tests/test_confidence.py fixtures (reference/reid.md §4).
    #[test]
    fn wilson_matches_anonymeter_fixtures() {
        let cases = [
            (
                100,
                100,
                0.95,
                0.981_503_250_896_507_1,
                0.018_496_749_103_492_84,
            ),
            (
                100,
                100,
                0.68,
                0.995_103_689_483_188_2,
                0.004_896_310_516_811_869,
            ),
            (
                23,
                100,
                0.95,
                0.239_988_244_515_886_13,
                0.081_555_585_712_851_67,
            ),
            (
                11,
                100,
                0.95,
                0.124_427_464_300_724_4,
                0.061_885_500_730_078_73,
            ),
        ];
        for (k, n, cl, c, h) in cases {
            let (cc, hh) = wilson(k, n, cl);
            assert!(close(cc, c, 1e-12), "{k}/{n}@{cl}: {cc} vs {c}");
            assert!(close(hh, h, 1e-12), "{k}/{n}@{cl}: {hh} vs {h}");
        }
        assert!(close(probit(0.95), 1.96, 1e-3));
        // Rates of n = 1000 at 95 % (anonymeter test_confidence.py, to the 3 decimals given).
        for (k, c, h) in [(850, 0.849, 0.022), (0, 0.002, 0.002), (1000, 0.998, 0.002)] {
            let (cc, hh) = wilson(k, 1000, 0.95);
            assert!(
                (cc - c).abs() < 5e-4 && (hh - h).abs() < 5e-4,
                "{k}: {cc} ± {hh}"
            );
        }
    }

    /// anonymeter test_confidence.py residual-success cases (reference/attacks.md §B.5).
    #[test]
    fn residual_success_matches_anonymeter() {
        let (r, _) = residual_success((0.9, 0.0), (0.8, 0.0));
        assert!((r - 0.5).abs() < 1e-12);
        let (r, e) = residual_success((0.9, 0.02), (0.85, 0.02));
        assert!((r - 1.0 / 3.0).abs() < 1e-12);
        assert!((e - 0.16).abs() < 5e-3, "{e}");
        assert!(residual_success((0.5, 0.1), (1.0, 0.0)).0.is_nan());
    }

    #[test]
    fn clopper_pearson_closed_forms() {
        // k = 0: hi = 1 − (α/2)^(1/n); k = n: lo = (α/2)^(1/n).
        let (lo, hi) = clopper_pearson(0, 20, 0.95);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 1.0 - 0.025f64.powf(1.0 / 20.0), 1e-10));
        let (lo, hi) = clopper_pearson(20, 20, 0.95);
        assert!(close(lo, 0.025f64.powf(1.0 / 20.0), 1e-10));
        assert_eq!(hi, 1.0);
        // Published value: 5 of 10 at 95 % → (0.187086, 0.812914).
        let (lo, hi) = clopper_pearson(5, 10, 0.95);
        assert!((lo - 0.187_086).abs() < 1e-6 && (hi - 0.812_914).abs() < 1e-6);
    }
}

/// Difference of two independent proportions k1/n1 − k2/n2 with Newcombe's hybrid score
/// interval (Newcombe 1998, Statistics in Medicine 17:873, method 10: Wilson limits of each
/// proportion combined). Returns (difference, lo, hi); NaNs when either n is 0.
pub fn newcombe_difference(k1: u64, n1: u64, k2: u64, n2: u64, confidence: f64) -> (f64, f64, f64) {
    if n1 == 0 || n2 == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let lim = |k: u64, n: u64| {
        let (c, h) = wilson(k, n, confidence);
        (c - h, c + h)
    };
    let (p1, p2) = (k1 as f64 / n1 as f64, k2 as f64 / n2 as f64);
    let ((l1, u1), (l2, u2)) = (lim(k1, n1), lim(k2, n2));
    let d = p1 - p2;
    (
        d,
        d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
        d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
    )
}

#[cfg(test)]
mod newcombe_tests {
    use super::*;

    /// Newcombe (1998) Table II, method 10: (a) 56/70 − 48/80 → [0.0524, 0.3339];
    /// (e) 9/10 − 3/10 → [0.1705, 0.8090].
    #[test]
    fn matches_newcombe_table_ii() {
        let (d, lo, hi) = newcombe_difference(56, 70, 48, 80, 0.95);
        assert!((d - 0.2).abs() < 1e-12);
        assert!(
            (lo - 0.0524).abs() < 5e-5 && (hi - 0.3339).abs() < 5e-5,
            "{lo} {hi}"
        );
        let (_, lo, hi) = newcombe_difference(9, 10, 3, 10, 0.95);
        assert!(
            (lo - 0.1705).abs() < 5e-5 && (hi - 0.8090).abs() < 5e-5,
            "{lo} {hi}"
        );
    }
}
