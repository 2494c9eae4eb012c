//! Privacy auditing with one training run: Steinke, Nasr & Jagielski, "Privacy Auditing with One
//! (1) Training Run", NeurIPS 2023 (arXiv 2305.08846), Appendix D.
//!
//! m canaries are each included in training by an independent fair coin; after one run the
//! auditor guesses "in" or "out" for r of them (abstaining on the rest) and gets v right. Under
//! (ε, δ)-DP, with q = e^ε / (1 + e^ε),
//!
//! - β = P[Binomial(r, q) ≥ v],
//! - α_δ = max over i = 1..v of P[v − i ≤ Binomial(r, q) < v] / i,
//! - p-value(ε, δ) = min(1, β + 2·m·δ·α_δ),
//!
//! and the ε lower bound at confidence 1 − p is the largest ε whose p-value stays below p. The
//! 2mδ term is kept (some copies of the reference code comment it out, which audits pure DP).
//! Pure maths: no I/O.

use super::special::ln_gamma;

/// e^ε / (1 + e^ε), computed without overflow.
fn logistic(eps: f64) -> f64 {
    if eps >= 0.0 {
        1.0 / (1.0 + (-eps).exp())
    } else {
        let e = eps.exp();
        e / (1.0 + e)
    }
}

/// ln P[Binomial(n, p) = k].
fn ln_pmf(k: u64, n: u64, p: f64) -> f64 {
    let (k, n) = (k as f64, n as f64);
    let ln_choose = ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0);
    let a = if k > 0.0 { k * p.ln() } else { 0.0 };
    let b = if n - k > 0.0 {
        (n - k) * (-p).ln_1p()
    } else {
        0.0
    };
    ln_choose + a + b
}

/// P[Binomial(n, p) ≥ k], summed from the mode outward in log space (exact to rounding for
/// the sizes an audit has: n up to millions of guesses).
fn sf_ge(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    // Sum the smaller tail directly; terms fall off geometrically away from the mode.
    let mode = ((n as f64 + 1.0) * p).floor() as u64;
    let sum = |range: &mut dyn Iterator<Item = u64>| {
        let mut s = 0.0;
        for j in range {
            let t = ln_pmf(j, n, p).exp();
            s += t;
            if t < s * 1e-17 && j.abs_diff(mode) > 2 {
                break;
            }
        }
        s
    };
    if k > mode {
        sum(&mut (k..=n)).min(1.0)
    } else {
        (1.0 - sum(&mut (0..k).rev())).max(0.0)
    }
}

/// The p-value of `v` correct guesses out of `r` among `m` canaries under (ε, δ)-DP.
pub fn p_value(m: u64, r: u64, v: u64, eps: f64, delta: f64) -> f64 {
    let q = logistic(eps);
    let beta = sf_ge(v, r, q);
    let mut alpha = 0.0f64;
    if delta > 0.0 && v > 0 {
        // P[v − i ≤ X < v] = Σ_{j = v−i}^{v−1} pmf(j), accumulated as i grows; pmf(j − 1)
        // follows from pmf(j) by the ratio j (1 − q) / ((r − j + 1) q).
        let ratio = (1.0 - q) / q;
        let mut pmf = ln_pmf(v - 1, r, q).exp();
        let mut mass = 0.0;
        for i in 1..=v {
            let j = v - i;
            mass += pmf;
            alpha = alpha.max(mass / i as f64);
            if j > 0 {
                pmf *= j as f64 * ratio / (r - j + 1) as f64;
            }
        }
    }
    (beta + 2.0 * m as f64 * delta * alpha).min(1.0)
}

/// The ε lower bound at confidence 1 − `p`: the largest ε with p-value < `p` (0 when even
/// ε = 0 cannot be rejected). Found by growing an upper end by 1 while it is still rejected
/// (capped at 100), then bisection to 1e-9.
pub fn epsilon_lower_bound(m: u64, r: u64, v: u64, delta: f64, p: f64) -> f64 {
    epsilon_above(0.0, m, r, v, delta, p)
}

/// [`epsilon_lower_bound`] when only values above `floor` matter: `floor` when the claim is
/// not rejected there (a cheap δ = 0 check first, since δ > 0 can only raise the p-value).
fn epsilon_above(floor: f64, m: u64, r: u64, v: u64, delta: f64, p: f64) -> f64 {
    if r == 0 || p_value(m, r, v, floor, 0.0) >= p || p_value(m, r, v, floor, delta) >= p {
        return floor;
    }
    let (mut lo, mut hi) = (floor, floor + 1.0);
    while p_value(m, r, v, hi, delta) < p {
        lo = hi;
        hi += 1.0;
        if hi > 100.0 {
            return 100.0;
        }
    }
    last_true(lo, hi, 1e-9, |e| p_value(m, r, v, e, delta) < p)
}

/// Bisection for a monotone predicate, true at `lo` and false at `hi`: the last x where it
/// holds, to within `tol`.
pub(crate) fn last_true(mut lo: f64, mut hi: f64, tol: f64, holds: impl Fn(f64) -> bool) -> f64 {
    while hi - lo > tol {
        let mid = 0.5 * (lo + hi);
        if holds(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Scores at the normal quantiles Φ⁻¹((j + ½)/n), j < n: the deterministic samples of
/// jax_privacy's auditing tests.
#[cfg(test)]
pub(crate) fn normal_grid(n: usize) -> Vec<f64> {
    (0..n)
        .map(|j| super::special::normal_quantile((j as f64 + 0.5) / n as f64))
        .collect()
}

/// The one-sided (k₋ = 0) one-run bound from attack scores of included (`in_scores`) and
/// excluded (`out_scores`) canaries: guess "in" above a threshold, abstain below. Every
/// threshold on the concave frontier of the ROC staircase is tried, with a Bonferroni
/// correction over their number, as jax_privacy's `epsilon_one_run` does; m is all canaries.
pub fn epsilon_from_scores(
    in_scores: &[f64],
    out_scores: &[f64],
    significance: f64,
    delta: f64,
) -> f64 {
    let Some(roc) = Frontier::new(in_scores, out_scores) else {
        return 0.0;
    };
    let (n_pos, n_neg) = (roc.n_pos, roc.n_neg);
    let m = n_pos + n_neg;
    let sig = significance / roc.counts.len() as f64;
    // (guesses, correct), most precise first, so later thresholds are mostly skipped.
    let mut cands: Vec<(u64, u64)> = roc
        .counts
        .iter()
        .map(|&(fn_, tn)| {
            let tp = n_pos - fn_;
            let fp = n_neg - tn;
            (tp + fp, tp)
        })
        .filter(|&(r, _)| r > 0)
        .collect();
    cands.sort_by(|a, b| (b.1 as f64 / b.0 as f64).total_cmp(&(a.1 as f64 / a.0 as f64)));
    let mut best = 0.0f64;
    for (r, v) in cands {
        // Raw precision at or below the accuracy ε = best implies cannot beat it.
        if v as f64 / r as f64 <= logistic(best) {
            continue;
        }
        best = best.max(epsilon_above(best, m, r, v, delta, sig));
    }
    best
}

/// The thresholds worth testing on two score samples (higher = "in"): every distinct score and
/// +∞, reduced to the vertices of the ROC staircase's concave frontier, as (false negatives,
/// true negatives) counts — the same reduction jax_privacy applies before its Bonferroni
/// corrections.
pub(crate) struct Frontier {
    /// Included canaries (NaN scores dropped).
    pub n_pos: u64,
    /// Excluded canaries.
    pub n_neg: u64,
    /// (in-scores below the threshold, out-scores below it) at each frontier threshold.
    pub counts: Vec<(u64, u64)>,
}

impl Frontier {
    /// `None` when either sample is empty.
    pub fn new(in_scores: &[f64], out_scores: &[f64]) -> Option<Self> {
        let mut ins: Vec<f64> = in_scores.iter().copied().filter(|x| !x.is_nan()).collect();
        let mut outs: Vec<f64> = out_scores.iter().copied().filter(|x| !x.is_nan()).collect();
        if ins.is_empty() || outs.is_empty() {
            return None;
        }
        ins.sort_by(f64::total_cmp);
        outs.sort_by(f64::total_cmp);
        let mut thresholds: Vec<f64> = ins.iter().chain(&outs).copied().collect();
        thresholds.sort_by(f64::total_cmp);
        thresholds.dedup();
        thresholds.push(f64::INFINITY);
        let below = |v: &[f64], t: f64| v.partition_point(|x| *x < t) as f64;
        let points: Vec<(f64, f64)> = thresholds
            .iter()
            .map(|&t| (below(&ins, t), below(&outs, t)))
            .collect();
        let counts = concave_frontier(&points)
            .into_iter()
            .map(|i| (points[i].0 as u64, points[i].1 as u64))
            .collect();
        Some(Self {
            n_pos: ins.len() as u64,
            n_neg: outs.len() as u64,
            counts,
        })
    }
}

/// Indices of the vertices of the upper concave frontier of a staircase sorted by x: points
/// weakly below the chord of their neighbours are dropped, pass after pass, until none is.
fn concave_frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    loop {
        if idx.len() <= 2 {
            return idx;
        }
        let d: Vec<(f64, f64)> = idx
            .windows(2)
            .map(|w| {
                (
                    points[w[1]].0 - points[w[0]].0,
                    points[w[1]].1 - points[w[0]].1,
                )
            })
            .collect();
        let mut keep = vec![true; idx.len()];
        let mut any = false;
        for k in 0..d.len() - 1 {
            let cross = d[k].1 * d[k + 1].0 - d[k + 1].1 * d[k].0;
            if cross <= 0.0 {
                keep[k + 1] = false;
                any = true;
            }
        }
        if !any {
            return idx;
        }
        idx = idx
            .into_iter()
            .zip(keep)
            .filter_map(|(i, k)| k.then_some(i))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64) {
        assert!((got - want).abs() <= tol, "got {got}, want {want}");
    }

    #[test]
    fn binomial_tails() {
        // P[Bin(1000, logistic(2)) ≥ 900] = 3.16704e-2 (reference/dp.md (a) 12, scipy).
        close(sf_ge(900, 1000, logistic(2.0)), 3.16704e-2, 1e-6);
        close(sf_ge(1, 10, 0.5), 1.0 - 0.5f64.powi(10), 1e-15);
        close(sf_ge(10, 10, 0.5), 0.5f64.powi(10), 1e-15);
    }

    #[test]
    fn p_value_oracles() {
        // jax_privacy's `_one_run_p_value`: m = 1000, r = 100, v = 90, ε = 1.
        close(p_value(1000, 100, 90, 1.0, 1e-5), 8.41289e-4, 1e-9);
        close(p_value(1000, 100, 90, 1.0, 0.0), 2.73581e-5, 1e-10);
        // δ = 0 and every guess right: the p-value is q^r.
        close(p_value(7, 20, 20, 1.5, 0.0), logistic(1.5).powi(20), 1e-14);
    }

    #[test]
    fn perfect_guess_table() {
        // δ = 0: ε_LB = logit(p^{1/r}) for any m.
        for (r, want) in [(10u64, 1.052), (100, 3.493), (1000, 5.809), (10_000, 8.113)] {
            let e = epsilon_lower_bound(1, r, r, 0.0, 0.05);
            close(e, want, 5e-4);
            let x = 0.05f64.powf(1.0 / r as f64);
            close(e, (x / (1.0 - x)).ln(), 1e-6);
        }
        // The 2mδ term punishes many canaries with few guesses (reference/dp.md §3.5).
        for (m, r, want) in [
            (1000u64, 10u64, 1.015),
            (1000, 100, 3.465),
            (1000, 1000, 5.782),
            (10_000, 10, 0.614),
            (10_000, 100, 3.202),
            (10_000, 1000, 5.529),
            (10_000, 10_000, 7.834),
            (100_000, 10, 0.0),
            (100_000, 100, 0.809),
            (100_000, 1000, 3.489),
            (1_000_000, 1000, 0.569),
        ] {
            close(epsilon_lower_bound(m, r, r, 1e-5, 0.05), want, 5e-4);
        }
    }

    #[test]
    fn jax_privacy_one_run_oracles() {
        // google-deepmind/jax_privacy tests/auditing_test.py: 10,000 in- and 10,000 out-scores
        // at normal quantiles, in-scores shifted; significance 0.05, δ = 1e-6, Bonferroni.
        let base = normal_grid(10_000);
        for (shift, want) in [(1.0, 1.13346), (2.0, 2.311945), (4.0, 4.395568)] {
            let ins: Vec<f64> = base.iter().map(|x| x + shift).collect();
            close(epsilon_from_scores(&ins, &base, 0.05, 1e-6), want, 2e-5);
        }
    }

    /// The bare subsampled Gaussian mechanism, audited by an adversary who sees every noisy
    /// update along the canary's direction (the strongest, white-box threat model): y_t =
    /// b_t + N(0, σ²), b_t ~ Bernoulli(q) for an included canary and 0 otherwise; the score is
    /// the log-likelihood ratio. Returns (in-scores, out-scores).
    fn simulate(
        sigma: f64,
        q: f64,
        steps: u64,
        canaries: usize,
        seed: u64,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut rng = crate::stats::Rng::new(seed);
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        for _ in 0..canaries {
            let included = rng.chance(0.5);
            let mut score = 0.0;
            for _ in 0..steps {
                let b = if included && rng.chance(q) { 1.0 } else { 0.0 };
                let y = b + sigma * rng.normal();
                score += (1.0 - q + q * ((2.0 * y - 1.0) / (2.0 * sigma * sigma)).exp()).ln();
            }
            if included {
                ins.push(score)
            } else {
                outs.push(score)
            }
        }
        (ins, outs)
    }

    #[test]
    fn lower_bounds_respect_the_accountant_and_catch_a_broken_mechanism() {
        use crate::stats::accountant::{Setting, default_orders, epsilon_of};
        let delta = 1e-5;
        for (seed, (sigma, q, steps)) in [(0.6, 1.0, 1), (0.8, 0.5, 4), (1.0, 0.2, 10)]
            .into_iter()
            .enumerate()
        {
            let theory = epsilon_of(
                Setting {
                    noise: sigma,
                    sample_rate: q,
                    steps,
                },
                delta,
                &default_orders(),
            );
            let (ins, outs) = simulate(sigma, q, steps, 4000, seed as u64);
            let one_run = epsilon_from_scores(&ins, &outs, 0.05, delta);
            let cp = crate::stats::epsilon::epsilon_from_scores(&ins, &outs, 0.05, delta);
            assert!(
                one_run > 0.0 && cp > 0.0,
                "the audit finds something: {one_run} {cp}"
            );
            assert!(
                one_run <= theory && cp <= theory,
                "σ {sigma} q {q} T {steps}: one-run {one_run}, CP {cp} vs accountant {theory}"
            );
        }
        // A mechanism that adds a quarter of the noise it claims: the audit exceeds the claim.
        let claimed = epsilon_of(
            Setting {
                noise: 2.0,
                sample_rate: 1.0,
                steps: 1,
            },
            delta,
            &default_orders(),
        );
        let (ins, outs) = simulate(0.5, 1.0, 1, 4000, 99);
        let cp = crate::stats::epsilon::epsilon_from_scores(&ins, &outs, 0.05, delta);
        assert!(cp > claimed, "CP {cp} vs claimed {claimed}");
    }

    #[test]
    fn accuracy_table() {
        // m = r = 1000 guesses at a given accuracy, p = 0.05 (reference/dp.md §3.5).
        for (acc, d5, d0) in [
            (0.60, 0.297, 0.298),
            (0.70, 0.732, 0.732),
            (0.80, 1.254, 1.254),
            (0.90, 2.021, 2.021),
            (0.95, 2.701, 2.702),
            (0.99, 4.059, 4.063),
        ] {
            let v = (acc * 1000.0f64).round() as u64;
            // The table prints 3 decimals; 0.60 at δ = 0 sits on a rounding edge (0.29747
            // here, printed 0.298), hence 6e-4 rather than half a unit of the last digit.
            let (e5, e0) = (
                epsilon_lower_bound(1000, 1000, v, 1e-5, 0.05),
                epsilon_lower_bound(1000, 1000, v, 0.0, 0.05),
            );
            close(e5, d5, 6e-4);
            close(e0, d0, 6e-4);
            assert!(e0 >= e5, "δ = 0 can only prove more");
        }
        // Chance accuracy proves nothing.
        assert_eq!(epsilon_lower_bound(1000, 1000, 500, 1e-5, 0.05), 0.0);
    }
}
