//! White-box gradient canaries: the tight audit of DP-SGD, and a bug detector for its clipping,
//! sampling and noise code.
//!
//! Threat model: the adversary inserts crafted per-example gradients and observes every noisy
//! update (the strongest adversary of Nasr, Song, Thakurta, Papernot & Carlini 2021, "Adversary
//! Instantiation", arXiv 2101.04535; the white-box setting of Nasr et al. 2023, "Tight Auditing
//! of Differentially Private Machine Learning", arXiv 2302.07956, and of Steinke, Nasr &
//! Jagielski 2023, "Privacy Auditing with One (1) Training Run", arXiv 2305.08846).
//!
//! Each canary is a Dirac gradient of norm C on its own coordinate of the embedding matrix, in a
//! row of a token that no training sequence contains, so no real example's gradient touches it
//! (checked at every step: a non-zero data gradient there is an error). A canary is part of the
//! training data when an independent fair coin says so; then, like every example, it enters
//! each step's Poisson batch with probability q and is clipped by the same rule. The auditor
//! reads the canary's coordinate of the noisy update, rescaled by q·N/C to
//! xₜ = bₜ + σ·zₜ (bₜ ∈ {0, 1} whether it was drawn, zₜ standard normal), and scores it with
//! the log-likelihood ratio of the subsampled Gaussian mixture against pure noise,
//! Σₜ ln(1 − q + q·exp((2xₜ − 1)/(2σ²))) (the Neyman–Pearson optimal test for one step).
//!
//! Because the coordinates are disjoint, their noise and their Poisson draws independent, each
//! canary is an independent run of exactly the mechanism the accountant analyses (σ, q, T
//! steps): its score is a trial in the sense of Jagielski et al. 2020 as well as a guess of the
//! one-run audit. The canaries change only their own embedding rows, which no input looks up.

use crate::stats::Rng;
use serde::{Deserialize, Serialize};

/// The planted gradient canaries of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientCanaries {
    /// Parameter holding the canary coordinates.
    pub param: String,
    /// Token rows the coordinates lie in (tokens no training sequence contains).
    pub rows: Vec<u32>,
    /// Flat index of each canary's coordinate in `param` (distinct).
    pub coords: Vec<usize>,
    /// Whether each canary is in the training data (an independent coin with `include_probability`).
    pub included: Vec<bool>,
    /// Probability of each coin.
    pub include_probability: f64,
    /// The public N the auditor uses to undo the update's normaliser q·N: recorded apart from
    /// the trainer's own normaliser, so a trainer that divides by anything else (e.g. the
    /// realised, coin-dependent size) shows up as a wrong noise std and inclusion rate.
    #[serde(default)]
    pub public_size: usize,
}

/// What the auditor observed of each canary over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Observations {
    /// Steps observed.
    pub steps: u64,
    /// Log-likelihood-ratio score per canary (with σ = 0: the number of steps where xₜ > ½).
    pub scores: Vec<f64>,
    /// Σₜ xₜ per canary.
    pub sum: Vec<f64>,
    /// Σₜ xₜ² per canary.
    pub sum_sq: Vec<f64>,
}

impl GradientCanaries {
    /// Plans `count` canaries on the embedding rows of tokens absent from `used`, `width`
    /// coordinates per row, rows taken from the highest id down; coins from `seed`. `used` must
    /// not depend on membership or on any coin (the caller marks every token of the whole audit
    /// pool and of every canary, included or not), or the placement itself would leak. Fewer
    /// canaries when fewer coordinates are free (an error if none are).
    pub fn plan(
        param: &str,
        vocab: usize,
        width: usize,
        used: &[bool],
        count: usize,
        include_probability: f64,
        seed: u64,
    ) -> Result<Self, String> {
        super::canary::coin_probability("gradient canaries'", include_probability)?;
        let free: Vec<u32> = (0..vocab as u32)
            .rev()
            .filter(|&t| !used.get(t as usize).copied().unwrap_or(false))
            .collect();
        if free.is_empty() || width == 0 {
            return Err(format!(
                "no embedding row is free for gradient canaries: all {vocab} tokens occur in the training data"
            ));
        }
        let rows_needed = count.div_ceil(width).min(free.len());
        let rows: Vec<u32> = free[..rows_needed].to_vec();
        let coords: Vec<usize> = rows
            .iter()
            .flat_map(|&r| (0..width).map(move |c| r as usize * width + c))
            .take(count)
            .collect();
        let included = (0..coords.len())
            .map(|j| Rng::derive(seed, "whitebox/coin", j as u64).chance(include_probability))
            .collect();
        Ok(Self {
            param: param.to_owned(),
            rows,
            coords,
            included,
            include_probability,
            public_size: 0,
        })
    }

    /// Which included canaries enter this step's Poisson batch: the canaries are records
    /// n, n + 1, … of the data sampler's own stream `rng` (drawn after the n data records, one
    /// draw per canary whether its coin included it or not), so a sampler bug shows in them.
    pub fn drawn(&self, rng: &mut Rng, q: f64) -> Vec<bool> {
        self.included
            .iter()
            .map(|&inc| {
                let heads = rng.chance(q);
                inc && heads
            })
            .collect()
    }
}

/// Log-likelihood ratio of one observation xₜ (in units of C) of the subsampled Gaussian with
/// rate `q` and noise multiplier `sigma` (> 0) against N(0, σ²): ln(1 − q + q·e^a),
/// a = (2x − 1)/(2σ²), computed without overflow.
pub fn step_llr(x: f64, q: f64, sigma: f64) -> f64 {
    let a = (2.0 * x - 1.0) / (2.0 * sigma * sigma);
    if q >= 1.0 {
        return a;
    }
    if a > 0.0 {
        a + (q + (1.0 - q) * (-a).exp()).ln()
    } else {
        (q * a.exp_m1()).ln_1p()
    }
}

impl Observations {
    /// Empty accumulators for `m` canaries.
    pub fn new(m: usize) -> Self {
        Self {
            steps: 0,
            scores: vec![0.0; m],
            sum: vec![0.0; m],
            sum_sq: vec![0.0; m],
        }
    }

    /// Adds one step's observations `x` (one per canary; as many as the accumulators).
    pub fn add(&mut self, x: &[f64], q: f64, sigma: f64) {
        self.steps += 1;
        for (j, &v) in x.iter().enumerate() {
            self.scores[j] += if sigma > 0.0 {
                step_llr(v, q, sigma)
            } else if v > 0.5 {
                1.0
            } else {
                0.0
            };
            self.sum[j] += v;
            self.sum_sq[j] += v * v;
        }
    }
}

/// Sanity checks of the observations against the mechanism the accountant assumes: over the
/// canaries the coins left out, xₜ is pure noise N(0, σ²); over the included ones its mean is q.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseCheck {
    /// Observations of left-out canaries.
    pub out_observations: u64,
    /// Their measured standard deviation (should be σ).
    pub out_std: f64,
    /// Their measured mean (should be 0).
    pub out_mean: f64,
    /// Measured mean of included canaries' observations (should be q).
    pub in_mean: f64,
    /// Observations of included canaries.
    pub in_observations: u64,
    /// z of the std test (Σx²/σ² against χ² with n degrees of freedom, normal approximation).
    pub z_std: f64,
    /// z of the out mean against 0.
    pub z_out_mean: f64,
    /// z of the in mean against q.
    pub z_in_mean: f64,
}

/// The checks of [`NoiseCheck`] (None without observations of both kinds).
pub fn noise_check(
    obs: &Observations,
    included: &[bool],
    q: f64,
    sigma: f64,
) -> Option<NoiseCheck> {
    if obs.sum.len() != included.len() || obs.sum_sq.len() != included.len() {
        return None;
    }
    let t = obs.steps as f64;
    let (mut n_out, mut s_out, mut ss_out, mut n_in, mut s_in) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (j, &inc) in included.iter().enumerate() {
        if inc {
            n_in += t;
            s_in += obs.sum[j];
        } else {
            n_out += t;
            s_out += obs.sum[j];
            ss_out += obs.sum_sq[j];
        }
    }
    if n_out == 0.0 || n_in == 0.0 {
        return None;
    }
    let out_mean = s_out / n_out;
    // σ known under H0: Σx² / σ² ~ χ²(n) ≈ N(n, 2n).
    let out_var = ss_out / n_out;
    let z_std = if sigma > 0.0 {
        (ss_out / (sigma * sigma) - n_out) / (2.0 * n_out).sqrt()
    } else if ss_out == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    let z_out_mean = if sigma > 0.0 {
        out_mean / (sigma / n_out.sqrt())
    } else if s_out == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    let in_mean = s_in / n_in;
    // Per observation: variance q(1 − q) + σ².
    let sd_in = ((q * (1.0 - q) + sigma * sigma) / n_in).sqrt();
    let z_in_mean = if sd_in > 0.0 {
        (in_mean - q) / sd_in
    } else {
        0.0
    };
    Some(NoiseCheck {
        out_observations: n_out as u64,
        out_std: out_var.sqrt(),
        out_mean,
        in_mean,
        in_observations: n_in as u64,
        z_std,
        z_out_mean,
        z_in_mean,
    })
}

impl NoiseCheck {
    /// Whether every |z| is below `limit` (5: a two-sided false alarm about once in 1.7 million
    /// per test).
    pub fn passes(&self, limit: f64) -> bool {
        self.z_std.abs() < limit && self.z_out_mean.abs() < limit && self.z_in_mean.abs() < limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llr_matches_the_direct_formula_and_does_not_overflow() {
        for &(x, q, s) in &[
            (0.3, 0.1, 1.0),
            (-2.0, 0.5, 0.7),
            (1.7, 0.02, 0.5),
            (0.9, 1.0, 2.0),
        ] {
            let a: f64 = (2.0 * x - 1.0) / (2.0 * s * s);
            let direct = (1.0 - q + q * a.exp()).ln();
            assert!((step_llr(x, q, s) - direct).abs() < 1e-12, "{x} {q} {s}");
        }
        // x = 400 at σ = 0.1: a ≈ 39 950 and e^a overflows f64; the LLR is a + ln q.
        let v = step_llr(400.0, 0.01, 0.1);
        assert!(v.is_finite() && (v - (39_950.0 + 0.01f64.ln())).abs() < 1e-6);
        assert!(step_llr(-400.0, 0.01, 0.1).is_finite());
    }

    #[test]
    fn plan_uses_only_free_rows_and_coins_are_fair() {
        let mut used = vec![true; 50];
        used[3] = false;
        used[40] = false;
        let p = GradientCanaries::plan("e", 50, 8, &used, 12, 0.5, 1).unwrap();
        assert_eq!(p.rows, vec![40, 3]);
        assert_eq!(p.coords.len(), 12);
        assert!(p.coords[..8].iter().all(|&c| c / 8 == 40));
        assert!(p.coords[8..].iter().all(|&c| c / 8 == 3));
        // Too few free coordinates: as many as there are.
        let q = GradientCanaries::plan("e", 50, 8, &used, 100, 0.5, 1).unwrap();
        assert_eq!(q.coords.len(), 16);
        assert!(GradientCanaries::plan("e", 50, 8, &[true; 50], 10, 0.5, 1).is_err());
        let many = GradientCanaries::plan("e", 400, 16, &[false; 400], 6400, 0.5, 3).unwrap();
        let heads = many.included.iter().filter(|&&b| b).count() as f64;
        // 6400 fair coins: within ±5 sd of 3200.
        assert!((heads - 3200.0).abs() < 5.0 * 40.0, "{heads}");
    }

    #[test]
    fn noise_check_accepts_the_right_mechanism_and_flags_a_wrong_one() {
        let (q, sigma, steps, m) = (0.1, 0.8, 200u64, 400);
        let included: Vec<bool> = (0..m).map(|j| j % 2 == 0).collect();
        let run = |true_sigma: f64, seed: u64| {
            let mut obs = Observations::new(m);
            let mut rng = Rng::new(seed);
            for _ in 0..steps {
                let x: Vec<f64> = included
                    .iter()
                    .map(|&inc| {
                        let b = if inc && rng.chance(q) { 1.0 } else { 0.0 };
                        b + true_sigma * rng.normal()
                    })
                    .collect();
                obs.add(&x, q, sigma);
            }
            noise_check(&obs, &included, q, sigma).unwrap()
        };
        let good = run(sigma, 5);
        assert!(good.passes(5.0), "{good:?}");
        assert!((good.out_std - sigma).abs() < 0.02);
        // Half the claimed noise: the std test fails by a wide margin.
        let bad = run(sigma / 2.0, 5);
        assert!(!bad.passes(5.0) && bad.z_std < -50.0, "{bad:?}");
    }
}
