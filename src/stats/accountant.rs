//! Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism (DP-SGD).
//!
//! - Per-step RDP at integer and fractional orders: Mironov, Talwar & Zhang, "Rényi Differential
//!   Privacy of the Sampled Gaussian Mechanism" (arXiv 1908.10530), §3.3. Fractional orders use
//!   the signed generalised-binomial series (as Opacus does), which is the exact expansion;
//!   Google's `dp_accounting` adds absolute values instead (a slightly larger upper bound, also
//!   available here through [`Series::Absolute`]).
//! - RDP → (ε, δ): the improved conversion of Balle et al. 2020 (Thm 21) / Canonne, Kamath &
//!   Steinke 2020 (Prop. 12) with `dp_accounting`'s KL shortcut, and the classic one of Mironov
//!   2017 (Prop. 3). δ from ε by the improved bound, min'd with the KL bound.
//! - Noise calibration as Opacus' `get_noise_multiplier`: double σ until ε ≤ target, then bisect.
//!
//! All arithmetic is f64 in log space. Pure maths: no I/O. Formulas and oracles:
//! reference/dp.md §1.3, §1.7 and §(a).

use serde::{Deserialize, Serialize};

/// Which series to use at fractional orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// Signed generalised binomials (exact; Opacus).
    Signed,
    /// Absolute values of every term (upper bound; `dp_accounting`).
    Absolute,
}

/// `dp_accounting`'s `DEFAULT_RDP_ORDERS`: 1.1, 1.2, …, 10.9, 11, …, 63, 128, 256, 512, 1024.
pub fn default_orders() -> Vec<f64> {
    let mut orders: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    orders.extend((11..64).map(f64::from));
    orders.extend([128.0, 256.0, 512.0, 1024.0]);
    orders
}

/// Opacus' `RDPAccountant.DEFAULT_ALPHAS`: 1.1, …, 10.9, 12, …, 63 (for comparisons with Opacus).
pub fn opacus_orders() -> Vec<f64> {
    let mut orders: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    orders.extend((12..64).map(f64::from));
    orders
}

/// log(e^a + e^b).
fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// log(e^a − e^b) for a ≥ b; `None` when the difference is not positive.
fn log_sub(a: f64, b: f64) -> Option<f64> {
    if b == f64::NEG_INFINITY {
        return Some(a);
    }
    if a <= b {
        return None;
    }
    Some(a + (-(b - a).exp()).ln_1p())
}

/// log erfc(x), accurate where erfc underflows (asymptotic series for large x).
pub fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        return libm::erfc(x).ln();
    }
    // erfc(x) = e^{-x²}/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸) …)
    let r = 1.0 / (x * x);
    let series = 1.0 - 0.5 * r + 0.75 * r * r - 1.875 * r * r * r + 6.5625 * r * r * r * r;
    -x * x - x.ln() - 0.5 * std::f64::consts::PI.ln() + series.ln()
}

/// log |C(α, i)| for real α ≥ 0 and integer i ≥ 0 via log-gamma, with its sign.
fn log_binom(alpha: f64, i: u64) -> (f64, f64) {
    let k = i as f64;
    // C(α, i) = Γ(α+1) / (Γ(i+1) Γ(α−i+1)); Γ at non-positive arguments handled by the
    // reflection sign: Γ(x) for x < 0 non-integer has sign (−1)^{ceil(−x)}.
    let x = alpha - k + 1.0;
    let (lg_x, sign_x) = if x > 0.0 {
        (libm::lgamma(x), 1.0)
    } else {
        let (lg, s) = libm::lgamma_r(x);
        (lg, f64::from(s))
    };
    let log_abs = libm::lgamma(alpha + 1.0) - libm::lgamma(k + 1.0) - lg_x;
    (log_abs, sign_x)
}

fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    let lq = q.ln();
    let l1q = (-q).ln_1p();
    let s2 = sigma * sigma;
    for i in 0..=alpha {
        let (lb, _) = log_binom(alpha as f64, i);
        let k = i as f64;
        let term = lb + k * lq + (alpha as f64 - k) * l1q + (k * k - k) / (2.0 * s2);
        log_a = log_add(log_a, term);
    }
    log_a
}

fn log_a_frac(q: f64, sigma: f64, alpha: f64, series: Series) -> Option<f64> {
    let (mut a0, mut a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let lq = q.ln();
    let l1q = (-q).ln_1p();
    let s2 = sigma * sigma;
    let root2s = std::f64::consts::SQRT_2 * sigma;
    let half = 0.5f64.ln();
    for i in 0..100_000u64 {
        let k = i as f64;
        let (lb, sign) = log_binom(alpha, i);
        let j = alpha - k;
        let t0 = lb + k * lq + j * l1q;
        let t1 = lb + j * lq + k * l1q;
        let e0 = half + log_erfc((k - z0) / root2s);
        let e1 = half + log_erfc((z0 - j) / root2s);
        let s0 = t0 + (k * k - k) / (2.0 * s2) + e0;
        let s1 = t1 + (j * j - j) / (2.0 * s2) + e1;
        if sign > 0.0 || series == Series::Absolute {
            a0 = log_add(a0, s0);
            a1 = log_add(a1, s1);
        } else {
            a0 = log_sub(a0, s0)?;
            a1 = log_sub(a1, s1)?;
        }
        if s0.max(s1) < -30.0 {
            return Some(log_add(a0, a1));
        }
    }
    None
}

/// RDP ε(α) of ONE step of the Poisson-subsampled Gaussian with noise multiplier `sigma`
/// (sensitivity 1) and sampling rate `q`. `None` if the fractional series does not converge
/// (the order should then be dropped, never replaced).
pub fn rdp_step(q: f64, sigma: f64, alpha: f64, series: Series) -> Option<f64> {
    if q == 0.0 {
        return Some(0.0);
    }
    if sigma == 0.0 || alpha.is_infinite() {
        return Some(f64::INFINITY);
    }
    if q == 1.0 {
        return Some(alpha / (2.0 * sigma * sigma));
    }
    let log_a = if alpha.fract() == 0.0 && alpha <= 1e6 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        match log_a_frac(q, sigma, alpha, series) {
            Some(v) => v,
            // The signed series can cancel below zero numerically; the absolute series is a
            // valid upper bound then.
            None if series == Series::Signed => log_a_frac(q, sigma, alpha, Series::Absolute)?,
            None => return None,
        }
    };
    Some(log_a / (alpha - 1.0))
}

/// RDP curve of `steps` identical steps at each order (`None` where an order was dropped).
pub fn rdp(q: f64, sigma: f64, steps: u64, orders: &[f64], series: Series) -> Vec<Option<f64>> {
    orders
        .iter()
        .map(|&a| rdp_step(q, sigma, a, series).map(|r| r * steps as f64))
        .collect()
}

/// Which RDP → (ε, δ) conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conversion {
    /// Balle et al. 2020 / Canonne, Kamath & Steinke 2020 (what Opacus and dp_accounting use).
    Improved,
    /// Mironov 2017, Prop. 3: ε = min_α ε(α) + ln(1/δ)/(α − 1).
    Classic,
}

/// ε at a given δ from an RDP curve, with the order that attains it.
pub fn epsilon(orders: &[f64], rdp: &[Option<f64>], delta: f64, conv: Conversion) -> (f64, f64) {
    let mut best = (f64::INFINITY, f64::NAN);
    for (&a, r) in orders.iter().zip(rdp) {
        let Some(r) = *r else { continue };
        let eps = match conv {
            Conversion::Improved => {
                if delta * delta + (-r).exp_m1() > 0.0 {
                    0.0
                } else if a > 1.01 {
                    r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
                } else {
                    f64::INFINITY
                }
            }
            Conversion::Classic => r + (1.0 / delta).ln() / (a - 1.0),
        };
        if eps < best.0 {
            best = (eps, a);
        }
    }
    (best.0.max(0.0), best.1)
}

/// δ at a given ε from an RDP curve (improved bound min'd with the KL bound), with the order.
pub fn delta(orders: &[f64], rdp: &[Option<f64>], eps: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, f64::NAN);
    for (&a, r) in orders.iter().zip(rdp) {
        let Some(r) = *r else { continue };
        let mut log_delta = if r < 0.0 {
            f64::NEG_INFINITY
        } else {
            0.5 * (-(-r).exp()).ln_1p()
        };
        if a > 1.01 {
            let bound = (a - 1.0) * (r - eps + (-1.0 / a).ln_1p()) - a.ln();
            log_delta = log_delta.min(bound);
        }
        if log_delta < best.0 {
            best = (log_delta, a);
        }
    }
    (best.0.exp().min(1.0), best.1)
}

/// A DP-SGD setting: noise multiplier, sampling rate and number of steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// Noise multiplier σ (noise std = σ·C).
    pub noise: f64,
    /// Poisson sampling rate q.
    pub sample_rate: f64,
    /// Number of steps.
    pub steps: u64,
}

/// What the accountant reports for one setting and δ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// The setting.
    pub setting: Setting,
    /// δ.
    pub delta: f64,
    /// ε by the improved conversion (the guarantee reported).
    pub epsilon: f64,
    /// The order attaining it.
    pub order: f64,
    /// ε by the classic conversion (for comparison with older tools).
    pub epsilon_classic: f64,
    /// The order attaining the classic value.
    pub order_classic: f64,
    /// Orders dropped because their series did not converge.
    pub dropped_orders: Vec<f64>,
    /// Whether the optimum sits at an end of the order grid (the grid may be too narrow).
    pub optimum_at_grid_edge: bool,
}

/// Checks a setting: σ > 0, q ∈ (0, 1], δ ∈ (0, 1). Messages say what to pass instead.
pub fn validate(noise: f64, sample_rate: f64, delta: Option<f64>) -> Result<(), String> {
    if !(noise.is_finite() && noise > 0.0) {
        return Err(format!(
            "the noise multiplier must be a finite number > 0 (got {noise})"
        ));
    }
    if !(sample_rate > 0.0 && sample_rate <= 1.0) {
        return Err(format!(
            "the sampling rate q must be in (0, 1] (got {sample_rate})"
        ));
    }
    if let Some(d) = delta
        && !(d > 0.0 && d < 1.0)
    {
        return Err(format!("δ must be in (0, 1) (got {d}); use δ ≪ 1/N"));
    }
    Ok(())
}

/// ε (both conversions) for a setting at δ over `orders`.
pub fn statement(setting: Setting, delta_: f64, orders: &[f64]) -> Statement {
    let curve = rdp(
        setting.sample_rate,
        setting.noise,
        setting.steps,
        orders,
        Series::Signed,
    );
    let (eps, order) = epsilon(orders, &curve, delta_, Conversion::Improved);
    let (eps_c, order_c) = epsilon(orders, &curve, delta_, Conversion::Classic);
    let dropped = orders
        .iter()
        .zip(&curve)
        .filter(|(_, r)| r.is_none())
        .map(|(a, _)| *a)
        .collect();
    let first = orders.iter().copied().fold(f64::INFINITY, f64::min);
    let last = orders.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Statement {
        setting,
        delta: delta_,
        epsilon: eps,
        order,
        epsilon_classic: eps_c,
        order_classic: order_c,
        dropped_orders: dropped,
        optimum_at_grid_edge: eps > 0.0 && (order == first || order == last),
    }
}

/// ε by the improved conversion only.
pub fn epsilon_of(setting: Setting, delta_: f64, orders: &[f64]) -> f64 {
    statement(setting, delta_, orders).epsilon
}

/// The smallest noise multiplier whose ε is ≤ `target` (within `tolerance` below it), by
/// Opacus' procedure: start at σ = 20 and double until ε ≤ target, then bisect on [0, σ_high]
/// until target − ε ≤ tolerance (at most 200 halvings). Returns `None` if σ would exceed 2²⁰
/// (budget too low) or the tolerance is not positive.
pub fn calibrate_noise(
    target: f64,
    delta_: f64,
    sample_rate: f64,
    steps: u64,
    orders: &[f64],
    tolerance: f64,
) -> Option<f64> {
    let eps = |s: f64| {
        epsilon_of(
            Setting {
                noise: s,
                sample_rate,
                steps,
            },
            delta_,
            orders,
        )
    };
    if tolerance.is_nan() || tolerance <= 0.0 {
        return None;
    }
    let (mut lo, mut hi) = (0.0f64, 10.0f64);
    let mut eps_hi = f64::INFINITY;
    while eps_hi > target {
        hi *= 2.0;
        if hi > f64::from(1u32 << 20) {
            return None;
        }
        eps_hi = eps(hi);
    }
    for _ in 0..200 {
        if target - eps_hi <= tolerance {
            break;
        }
        let mid = (lo + hi) / 2.0;
        let e = eps(mid);
        if e < target {
            hi = mid;
            eps_hi = e;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// Exact δ(ε) of ONE unsampled Gaussian mechanism with noise multiplier σ (sensitivity 1):
/// Balle & Wang 2018, Thm 8. Used as a closed-form check.
pub fn gaussian_delta(sigma: f64, eps: f64) -> f64 {
    use crate::stats::special::normal_cdf;
    normal_cdf(-eps * sigma + 0.5 / sigma) - eps.exp() * normal_cdf(-eps * sigma - 0.5 / sigma)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        ((a - b) / b).abs() <= rel
    }

    #[test]
    fn opacus_golden_value_and_order() {
        // dp.md §1.7 row 1 (opacus accountants_test.py): σ 1.5, q 0.04, 2250 steps, δ 1e-5.
        let s = Setting {
            noise: 1.5,
            sample_rate: 0.04,
            steps: 2250,
        };
        let st = statement(s, 1e-5, &opacus_orders());
        assert!(close(st.epsilon, 7.32911117143, 1e-10), "{}", st.epsilon);
        assert!((st.order - 3.9).abs() < 1e-12);
        // Same with dp_accounting's grid (the optimum is interior).
        let st = statement(s, 1e-5, &default_orders());
        assert!(close(st.epsilon, 7.32911117143, 1e-10), "{}", st.epsilon);
        // dp_accounting's absolute-value series: 7.329334702 (computed, dp.md row 1).
        let orders = default_orders();
        let curve = rdp(0.04, 1.5, 2250, &orders, Series::Absolute);
        let (e, a) = epsilon(&orders, &curve, 1e-5, Conversion::Improved);
        assert!(close(e, 7.329334702, 1e-9), "{e}");
        assert!((a - 3.9).abs() < 1e-12);
        // Classic conversion: 8.0738 (computed).
        assert!(
            (st.epsilon_classic - 8.0738).abs() < 5e-5,
            "{}",
            st.epsilon_classic
        );
    }

    #[test]
    fn mnist_tutorial_values() {
        // Row 2: Opacus convention T = int(60/q) = 14062, q = 256/60000 → 2.5965559 (α 8.1).
        let q = 256.0 / 60000.0;
        let steps = (60.0 / q) as u64;
        assert_eq!(steps, 14062);
        let st = statement(
            Setting {
                noise: 1.1,
                sample_rate: q,
                steps,
            },
            1e-5,
            &default_orders(),
        );
        assert!(close(st.epsilon, 2.5965559, 1e-7), "{}", st.epsilon);
        assert!((st.order - 8.1).abs() < 1e-12);
        // TF convention T = ceil(60·60000/256) = 14063, TF legacy orders, classic → 3.0092.
        let mut tf: Vec<f64> = vec![1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5];
        tf.extend((5..64).map(f64::from));
        tf.extend([128.0, 256.0, 512.0]);
        let curve = rdp(q, 1.1, 14063, &tf, Series::Signed);
        let (e, _) = epsilon(&tf, &curve, 1e-5, Conversion::Classic);
        assert!((e - 3.0092).abs() < 5e-5, "{e}");
        let (e, a) = epsilon(&tf, &curve, 1e-5, Conversion::Improved);
        assert!((e - 2.5971).abs() < 5e-5 && a == 8.0, "{e} {a}");
        // Rows 3–5 (classic, TF README): σ 1.3 15 epochs → 1.1923; σ 0.7 45 epochs → 7.1229;
        // σ 1.1 1 / 2 epochs → 1.0343 / 1.1090.
        for (sigma, epochs, want) in [
            (1.3, 15.0, 1.1923),
            (0.7, 45.0, 7.1229),
            (1.1, 1.0, 1.0343),
            (1.1, 2.0, 1.1090),
        ] {
            let steps = (epochs * 60000.0f64 / 256.0).ceil() as u64;
            let curve = rdp(q, sigma, steps, &tf, Series::Signed);
            let (e, _) = epsilon(&tf, &curve, 1e-5, Conversion::Classic);
            assert!(
                (e - want).abs() < 5e-5,
                "σ {sigma}, {epochs} epochs: {e} vs {want}"
            );
        }
    }

    #[test]
    fn tf_compute_dp_sgd_privacy_values() {
        // Row 6 (tensorflow_privacy compute_dp_sgd_privacy_test.py): TF's legacy orders through
        // dp_accounting (absolute-value series, improved conversion), q = B/N,
        // steps = ceil(epochs·N/B).
        let mut tf: Vec<f64> = vec![1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5];
        tf.extend((5..64).map(f64::from));
        tf.extend([128.0, 256.0, 512.0]);
        for (n, b, sigma, epochs, d, want, order) in [
            (60000.0, 150.0, 1.3, 15.0, 1e-5, 0.7242234026109595, 19.0),
            (100000.0, 100.0, 1.0, 30.0, 1e-7, 1.4154988495444842, 13.0),
            (1e8, 1024.0, 0.1, 10.0, 1e-7, 5907982.3113984, 1.25),
        ] {
            let q: f64 = b / n;
            let steps = (epochs * n / b).ceil() as u64;
            let curve = rdp(q, sigma, steps, &tf, Series::Absolute);
            let (e, a) = epsilon(&tf, &curve, d, Conversion::Improved);
            assert!(close(e, want, 1e-9), "{e} vs {want}");
            assert_eq!(a, order);
        }
    }

    #[test]
    fn per_step_rdp_values() {
        // Row 8 (dp_accounting rdp_privacy_accountant_test.py): 50 steps, σ 2.5, q 0.01.
        let orders = [1.5, 2.5, 5.0, 50.0, 100.0, f64::INFINITY];
        let want = [
            6.70579741e-4,
            1.08548710e-3,
            2.18075656e-3,
            2.38460375e-2,
            1.67416308e2,
            f64::INFINITY,
        ];
        let got = rdp(0.01, 2.5, 50, &orders, Series::Absolute);
        for (g, w) in got.iter().zip(want) {
            let g = g.unwrap();
            if w.is_infinite() {
                assert!(g.is_infinite());
            } else {
                assert!(close(g, w, 1e-4), "{g} vs {w}");
            }
        }
        // Row 11 (Opacus), one step, q = 256/60000, σ 1.1.
        let q = 256.0 / 60000.0;
        for (a, w) in [
            (1.5, 1.74797845e-5),
            (2.0, 2.33957760e-5),
            (3.5, 4.14257459e-5),
            (8.0, 9.83410618e-5),
            (32.0, 7.59018835),
            (64.0, 20.9027408),
        ] {
            let g = rdp_step(q, 1.1, a, Series::Signed).unwrap();
            assert!(close(g, w, 1e-7), "α {a}: {g} vs {w}");
        }
        // Row 12, q 0.01, σ 1.
        for (a, w) in [
            (2.0, 1.71813422e-4),
            (3.0, 2.64637575e-4),
            (4.0, 3.63154049e-4),
            (10.0, 3.82704189e-2),
        ] {
            let g = rdp_step(0.01, 1.0, a, Series::Signed).unwrap();
            assert!(close(g, w, 1e-7), "α {a}: {g} vs {w}");
        }
    }

    #[test]
    fn closed_forms() {
        // α = 2: log(1 + q²(e^{1/σ²} − 1)); q = 1: α/(2σ²); q = 0: 0; σ = 0: ∞.
        for (q, s) in [(0.01, 1.0), (0.3, 0.7), (0.9, 3.0)] {
            let want: f64 = (q * q * (1.0f64 / (s * s)).exp_m1()).ln_1p();
            assert!(close(
                rdp_step(q, s, 2.0, Series::Signed).unwrap(),
                want,
                1e-12
            ));
        }
        assert_eq!(rdp_step(1.0, 2.0, 3.5, Series::Signed), Some(3.5 / 8.0));
        assert_eq!(rdp_step(0.0, 2.0, 3.5, Series::Signed), Some(0.0));
        assert_eq!(rdp_step(0.1, 0.0, 3.5, Series::Signed), Some(f64::INFINITY));
        // A fractional order between two integers lies between their RDP values (monotone in α).
        let lo = rdp_step(0.05, 1.2, 3.0, Series::Signed).unwrap();
        let mid = rdp_step(0.05, 1.2, 3.5, Series::Signed).unwrap();
        let hi = rdp_step(0.05, 1.2, 4.0, Series::Signed).unwrap();
        assert!(lo < mid && mid < hi);
    }

    #[test]
    fn conversions_only() {
        // Row 9: RDP ≡ 1.1 at orders 2..32 → ε 1.32783806176 at order 32, and back to δ 1e-5.
        let orders: Vec<f64> = (2..33).map(f64::from).collect();
        let curve = vec![Some(1.1); orders.len()];
        let (e, a) = epsilon(&orders, &curve, 1e-5, Conversion::Improved);
        assert!(close(e, 1.32783806176, 1e-10), "{e}");
        assert_eq!(a, 32.0);
        let (d, _) = delta(&orders, &curve, e);
        assert!(close(d, 1e-5, 1e-9), "{d}");
        // Row 10: q = 1, σ = 4.530877117, orders 1.000 … 99.999 step 0.001 → ε = 1 at δ 1e-6.
        let orders: Vec<f64> = (1000..100_000).map(|i| f64::from(i) / 1000.0).collect();
        let curve = rdp(1.0, 4.530877117, 1, &orders, Series::Signed);
        let (e, _) = epsilon(&orders, &curve, 1e-6, Conversion::Improved);
        assert!((e - 1.0).abs() < 1e-6, "{e}");
    }

    #[test]
    fn noise_calibration_matches_opacus() {
        // Row 13 (opacus accountants_test.py): ε 8, δ 1e-5, q 0.04, 90 epochs → σ ≈ 1.416;
        // 2000 steps → 1.3562.
        let orders = opacus_orders();
        let s = calibrate_noise(8.0, 1e-5, 0.04, 2250, &orders, 0.01).unwrap();
        assert!((s - 1.416).abs() < 5e-4, "{s}");
        let s2 = calibrate_noise(8.0, 1e-5, 0.04, 2000, &orders, 0.01).unwrap();
        assert!(calibrate_noise(8.0, 1e-5, 0.04, 2000, &orders, 0.0).is_none());
        assert!((s2 - 1.3562).abs() < 5e-5, "{s2}");
        // The calibrated σ meets the target, and a slightly smaller one does not meet it by more
        // than the tolerance.
        let setting = |n| Setting {
            noise: n,
            sample_rate: 0.04,
            steps: 2250,
        };
        let e = epsilon_of(setting(s), 1e-5, &orders);
        assert!(e <= 8.0 && 8.0 - e <= 0.01, "{e}");
    }

    #[test]
    fn rdp_upper_bounds_exact_gaussian() {
        // Row 14: one unsampled Gaussian, σ 1, δ 1e-5: exact ε 4.377178, RDP 4.72851.
        let orders = default_orders();
        let e = epsilon_of(
            Setting {
                noise: 1.0,
                sample_rate: 1.0,
                steps: 1,
            },
            1e-5,
            &orders,
        );
        assert!((e - 4.72851).abs() < 5e-5, "{e}");
        assert!((gaussian_delta(1.0, 4.377178) - 1e-5).abs() < 1e-10);
    }

    #[test]
    fn log_erfc_is_continuous_across_the_switch() {
        let a = log_erfc(25.0 - 1e-9);
        let b = log_erfc(25.0 + 1e-9);
        assert!((a - b).abs() < 1e-6, "{a} {b}");
        assert!(log_erfc(40.0).is_finite());
    }

    #[test]
    fn validation_messages() {
        assert!(validate(0.0, 0.1, Some(1e-5)).is_err());
        assert!(validate(1.0, 0.0, Some(1e-5)).is_err());
        assert!(validate(1.0, 1.5, Some(1e-5)).is_err());
        assert!(validate(1.0, 0.1, Some(1.0)).is_err());
        assert!(validate(1.0, 1.0, Some(0.5)).is_ok());
    }
}
