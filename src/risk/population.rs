//! Population uniqueness estimators: Zayatz (1991), Pitman (Hoshino 2001), SNB (Chen &
//! Keller-McNulty 1998) and the Dankar et al. (2012) selection rule, as in ARX's
//! `RiskModelPopulationUniqueness` (reference/reid.md §1.5).
//!
//! All results are fractions of the *population* N (estimated population uniques / N), with
//! N = round(n / π) and π recomputed as n / N, as ARX does.

use crate::stats::special::{digamma, ln_gamma, trigamma};
use serde::{Deserialize, Serialize};

/// The population model: sample size, population size and sampling fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopulationModel {
    /// Sample size n (persons).
    pub n: u64,
    /// Population size N.
    pub big_n: u64,
}

impl PopulationModel {
    /// From a sampling fraction π in (0, 1]: N = round(n / π).
    pub fn from_fraction(n: u64, pi: f64) -> Self {
        Self {
            n,
            big_n: ((n as f64 / pi).round() as u64).max(n),
        }
    }

    /// π = n / N.
    pub fn fraction(&self) -> f64 {
        if self.big_n == 0 {
            0.0
        } else {
            self.n as f64 / self.big_n as f64
        }
    }
}

/// Which estimator the Dankar rule chose, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    /// No sample uniques: the estimate is 0.
    None,
    /// Zayatz.
    Zayatz,
    /// Pitman.
    Pitman,
    /// Slide negative binomial.
    Snb,
}

impl Estimator {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zayatz => "zayatz",
            Self::Pitman => "pitman",
            Self::Snb => "snb",
        }
    }
}

/// Which formulas the SNB estimator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SnbVariant {
    /// Chen & Keller-McNulty's model with Haas et al.'s D̂_Sh3 for K (derived and checked by
    /// simulation; the default).
    #[default]
    Derived,
    /// ARX 3.9's `ModelSNB` formulas (the K estimator's "−1" once per histogram bucket, E[c2]
    /// multiplied by (1−d)^{α+2}), for reproducing ARX's numbers.
    Arx,
}

impl SnbVariant {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Derived => "derived",
            Self::Arx => "arx",
        }
    }
}

/// Population-uniqueness estimates (fractions of N); `None` where an estimator has no valid
/// solution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopulationUniqueness {
    /// Zayatz.
    pub zayatz: Option<f64>,
    /// Pitman.
    pub pitman: Option<f64>,
    /// Fitted Pitman (θ, α).
    pub pitman_params: Option<(f64, f64)>,
    /// Slide negative binomial.
    pub snb: Option<f64>,
    /// Dankar et al.'s choice.
    pub dankar: f64,
    /// Which estimator the rule chose.
    pub chosen: Estimator,
}

/// All estimators and the Dankar rule for a class-size histogram.
pub fn population_uniqueness(
    hist: &[(u64, u64)],
    model: PopulationModel,
    variant: SnbVariant,
) -> PopulationUniqueness {
    let c1 = hist.iter().find(|h| h.0 == 1).map_or(0, |h| h.1);
    let zayatz = zayatz(hist, model);
    let pitman_fit = pitman_fit(hist);
    let pitman = pitman_fit.and_then(|(t, a)| pitman_fraction(t, a, model.big_n));
    let snb = snb(hist, model, variant);
    let pi = model.fraction();
    let (dankar, chosen) = if c1 == 0 {
        (0.0, Estimator::None)
    } else if pi <= 0.1 {
        match pitman {
            Some(p) if p > 0.0 => (p, Estimator::Pitman),
            _ => (zayatz.unwrap_or(0.0), Estimator::Zayatz),
        }
    } else {
        match (snb, zayatz) {
            (Some(s), Some(z)) if z < s => (z, Estimator::Zayatz),
            (Some(s), _) => (s, Estimator::Snb),
            (None, z) => (z.unwrap_or(0.0), Estimator::Zayatz),
        }
    };
    PopulationUniqueness {
        zayatz,
        pitman,
        pitman_params: pitman_fit,
        snb,
        dankar,
        chosen,
    }
}

/// Zayatz (1991): the share of sample uniques that are population uniques, from
/// hypergeometric probabilities h(m) = m·C(N−m, n−1)/C(N, n), computed as an exact product
/// h(m) = m·(n/N)·Π_{i=1}^{m−1}(N−n+1−i)/(N−i) (no 32-bit clamping, no cancellation).
pub fn zayatz(hist: &[(u64, u64)], model: PopulationModel) -> Option<f64> {
    let (n, big_n) = (model.n as f64, model.big_n as f64);
    let c1 = hist.iter().find(|h| h.0 == 1).map_or(0, |h| h.1) as f64;
    if model.n == 0 || c1 == 0.0 {
        return Some(0.0);
    }
    let mut log_prod = 0.0; // ln Π_{i=1}^{m−1}(…) for the current m
    let mut next_i = 1u64; // next factor index to multiply in
    let mut denom = 0.0;
    let mut h1 = 0.0;
    for &(m, c) in hist {
        while next_i < m {
            let i = next_i as f64;
            let num = big_n - n + 1.0 - i;
            if num <= 0.0 {
                log_prod = f64::NEG_INFINITY;
                break;
            }
            log_prod += (-(n - 1.0) / (big_n - i)).ln_1p();
            next_i += 1;
        }
        let h = m as f64 * (n / big_n) * log_prod.exp();
        if m == 1 {
            h1 = h;
        }
        denom += c as f64 * h;
    }
    if denom <= 0.0 {
        return None;
    }
    let conditional = c1 * h1 / denom;
    let uniques = c1 * conditional / model.fraction();
    Some(uniques / big_n)
}

/// The Pitman likelihood equations (f1, f2) and their Jacobian at (θ, α).
struct PitmanSums {
    f1: f64,
    f2: f64,
    j11: f64,
    j12: f64,
    j22: f64,
}

/// The raw sums at (θ, α), however computed: a1 = Σ_{i<u} 1/(θ+iα), a2 = Σ i/(θ+iα),
/// b1 = Σ_{i<n} 1/(θ+i), h = Σ_k c_k Σ_{j<k} 1/(j−α), and the squared counterparts
/// s1 = Σ 1/(θ+iα)², s5 = Σ i/(θ+iα)², s3 = Σ i²/(θ+iα)², s2 = Σ 1/(θ+i)², h2 = Σ c_k Σ 1/(j−α)².
struct RawSums {
    a1: f64,
    a2: f64,
    b1: f64,
    h: f64,
    s1: f64,
    s2: f64,
    s3: f64,
    s5: f64,
    h2: f64,
}

impl From<RawSums> for PitmanSums {
    fn from(r: RawSums) -> Self {
        Self {
            f1: r.a1 - r.b1,
            f2: r.a2 - r.h,
            j11: r.s2 - r.s1,
            j12: -r.s5,
            j22: -r.s3 - r.h2,
        }
    }
}

/// The equations and Jacobian by explicit sums: O(n + u + largest class) per call. Used to
/// verify a root and whenever α is too small for the closed forms.
fn pitman_sums_explicit(hist: &[(u64, u64)], u: u64, n: u64, theta: f64, alpha: f64) -> PitmanSums {
    let (mut a1, mut a2, mut s1, mut s5, mut s3) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 1..u {
        let i = i as f64;
        let d = theta + i * alpha;
        a1 += 1.0 / d;
        a2 += i / d;
        s1 += 1.0 / (d * d);
        s5 += i / (d * d);
        s3 += i * i / (d * d);
    }
    let (mut b1, mut s2) = (0.0, 0.0);
    for i in 1..n {
        let d = theta + i as f64;
        b1 += 1.0 / d;
        s2 += 1.0 / (d * d);
    }
    // Σ_k c_k Σ_{j=1}^{k−1} 1/(j−α), accumulated over ascending class sizes.
    let (mut h, mut h2, mut c_sum, mut c_sum2) = (0.0, 0.0, 0.0, 0.0);
    let mut j = 1u64;
    for &(k, c) in hist {
        while j < k {
            let d = j as f64 - alpha;
            h += 1.0 / d;
            h2 += 1.0 / (d * d);
            j += 1;
        }
        c_sum += c as f64 * h;
        c_sum2 += c as f64 * h2;
    }
    RawSums {
        a1,
        a2,
        b1,
        h: c_sum,
        s1,
        s2,
        s3,
        s5,
        h2: c_sum2,
    }
    .into()
}

/// The same by digamma / trigamma closed forms: O(histogram buckets) per call.
/// With r = θ/α: Σ_{i<u} 1/(θ+iα) = (ψ(r+u) − ψ(r+1))/α, Σ_{i<n} 1/(θ+i) = ψ(θ+n) − ψ(θ+1),
/// Σ_{j<k} 1/(j−α) = ψ(k−α) − ψ(1−α), and the squared sums with ψ₁.
fn pitman_sums(hist: &[(u64, u64)], u: u64, n: u64, theta: f64, alpha: f64) -> PitmanSums {
    if alpha < 1e-6 || theta + alpha <= 0.0 {
        return pitman_sums_explicit(hist, u, n, theta, alpha);
    }
    let (uf, nf) = (u as f64, n as f64);
    let r = theta / alpha;
    let a1 = (digamma(r + uf) - digamma(r + 1.0)) / alpha;
    let s1 = (trigamma(r + 1.0) - trigamma(r + uf)) / (alpha * alpha);
    let a2 = (uf - 1.0) / alpha - r * a1;
    let s5 = (a1 - theta * s1) / alpha;
    let s3 = ((uf - 1.0) - 2.0 * theta * a1 + theta * theta * s1) / (alpha * alpha);
    let b1 = digamma(theta + nf) - digamma(theta + 1.0);
    let s2 = trigamma(theta + 1.0) - trigamma(theta + nf);
    let (psi1, tri1) = (digamma(1.0 - alpha), trigamma(1.0 - alpha));
    let (mut c_sum, mut c_sum2) = (0.0, 0.0);
    for &(k, c) in hist {
        if k >= 2 {
            let x = k as f64 - alpha;
            c_sum += c as f64 * (digamma(x) - psi1);
            c_sum2 += c as f64 * (tri1 - trigamma(x));
        }
    }
    RawSums {
        a1,
        a2,
        b1,
        h: c_sum,
        s1,
        s2,
        s3,
        s5,
        h2: c_sum2,
    }
    .into()
}

/// Fits the Pitman sampling formula's (θ, α) by Newton–Raphson on the two likelihood
/// equations (digamma closed forms, the root checked with explicit sums), from Hoshino's
/// moment start and then a grid of starts, keeping θ ≥ 0 and 0 < α < 1. `None` when no start
/// converges.
pub fn pitman_fit(hist: &[(u64, u64)]) -> Option<(f64, f64)> {
    let n: u64 = hist.iter().map(|(s, c)| s * c).sum();
    let u: u64 = hist.iter().map(|(_, c)| c).sum();
    let c1 = hist.iter().find(|h| h.0 == 1).map_or(0, |h| h.1) as f64;
    let c2 = hist.iter().find(|h| h.0 == 2).map_or(0, |h| h.1) as f64;
    if n < 2 || u < 2 || c1 == 0.0 {
        return None;
    }
    let (nf, uf) = (n as f64, u as f64);
    let c2 = if c2 == 0.0 { 1.0 } else { c2 };
    let c = c1 * (c1 - 1.0) / c2;
    let theta0 =
        (nf * uf * c - c1 * (nf - 1.0) * (2.0 * uf + c)) / (2.0 * c1 * uf + c1 * c - nf * c);
    let alpha0 = (theta0 * (c1 - nf) + (nf - 1.0) * c1) / (nf * uf);
    let mut starts = vec![(theta0, alpha0)];
    // ARX's grid of starts, with α = 0 moved inside the admissible (0, 1).
    for a in [0.0, 0.33, 0.66, 0.99] {
        for b in [0.01, 0.33, 0.66, 0.99] {
            starts.push((a, b));
        }
    }
    starts.into_iter().find_map(|(t0, a0)| {
        let (mut theta, mut alpha) = (t0, a0);
        for _ in 0..100 {
            // The fit is kept to 0 < α < 1 (population uniques growing like N^α); a start
            // that leaves it gives no estimate.
            let left = !(alpha > 0.0 && alpha < 1.0);
            if !(theta.is_finite() && alpha.is_finite()) || theta < 0.0 || left {
                return None;
            }
            let s = pitman_sums(hist, u, n, theta, alpha);
            let det = s.j11 * s.j22 - s.j12 * s.j12;
            if det == 0.0 || !det.is_finite() {
                return None;
            }
            let dt = (s.j22 * s.f1 - s.j12 * s.f2) / det;
            let da = (s.j11 * s.f2 - s.j12 * s.f1) / det;
            theta -= dt;
            alpha -= da;
            if dt.abs() <= 1e-13 * theta.abs().max(1.0) && da.abs() <= 1e-15 {
                // Verify the root with the explicit sums, as ARX does.
                let s = pitman_sums_explicit(hist, u, n, theta, alpha);
                let ok = theta >= 0.0 && s.f1.abs() < 1e-6 && s.f2.abs() < 1e-6;
                return ok.then_some((theta, alpha));
            }
        }
        None
    })
}

/// Pitman population uniques Γ(θ+1)/Γ(θ+α)·N^α as a fraction of N; `None` unless in [0, N].
pub fn pitman_fraction(theta: f64, alpha: f64, big_n: u64) -> Option<f64> {
    if !(theta.is_finite() && alpha.is_finite()) || alpha == 0.0 || big_n == 0 {
        return None;
    }
    let nf = big_n as f64;
    let uniques = (ln_gamma(theta + 1.0) - ln_gamma(theta + alpha) + alpha * nf.ln()).exp();
    (uniques.is_finite() && (0.0..=nf).contains(&uniques)).then_some(uniques / nf)
}

/// Slide negative binomial (Chen & Keller-McNulty 1998).
///
/// The number K of non-empty population classes is estimated with Haas et al.'s (1995)
/// Shlosser-type estimator D̂_Sh3 = u + c1·(Σ i π²(1−π²)^{i−1} c_i / Σ (1−π)^i((1+π)^i − 1) c_i)
/// ·(Σ (1−π)^i c_i / Σ i π (1−π)^{i−1} c_i)²; then (α, β) of F − 1 ~ NegBin(α, β) thinned
/// binomially by π are solved from the two moment equations E[c1] = c1, E[c2] = c2:
/// E[c1] = K π (β/(1−d))^α (1 + αd/(1−d)), E[c2] = K α β^α π² (1−β)(2 − (1−α)d) / (2(1−d)^{α+2}),
/// d = (1−π)(1−β). Population uniques = K β^α.
///
/// SNB has no solution without classes of size 2 (c2 = 0): `None`.
///
/// Note: ARX's `ModelSNB` applies the "−1" of the K estimator once per histogram bucket and
/// multiplies instead of divides by (1−d)^{α+2} in E[c2]; this implementation follows the
/// derivation, so its SNB values can differ from ARX's.
pub fn snb(hist: &[(u64, u64)], model: PopulationModel, variant: SnbVariant) -> Option<f64> {
    let (k, alpha, beta) = snb_fit(hist, model, variant)?;
    let uniques = k * beta.powf(alpha);
    let big_n = model.big_n as f64;
    (uniques.is_finite() && uniques > 0.0 && uniques <= big_n).then_some(uniques / big_n)
}

/// The SNB fit: (K, α, β).
pub fn snb_fit(
    hist: &[(u64, u64)],
    model: PopulationModel,
    variant: SnbVariant,
) -> Option<(f64, f64, f64)> {
    let arx = variant == SnbVariant::Arx;
    let pi = model.fraction();
    let c1 = hist.iter().find(|h| h.0 == 1).map_or(0, |h| h.1) as f64;
    let c2 = hist.iter().find(|h| h.0 == 2).map_or(0, |h| h.1) as f64;
    let u: f64 = hist.iter().map(|h| h.1 as f64).sum();
    // The second moment equation needs at least one class of size 2.
    if c1 == 0.0 || c2 == 0.0 || pi <= 0.0 || pi >= 1.0 {
        return None;
    }
    let (mut v1, mut v2, mut v3, mut v4) = (0.0, 0.0, 0.0, 0.0);
    for &(i, c) in hist {
        let (i, c) = (i as f64, c as f64);
        v1 += i * pi * pi * (1.0 - pi * pi).powf(i - 1.0) * c;
        v2 += if arx {
            c * (1.0 - pi * pi).powf(i) - 1.0
        } else {
            ((1.0 - pi * pi).powf(i) - (1.0 - pi).powf(i)) * c
        };
        v3 += (1.0 - pi).powf(i) * c;
        v4 += i * pi * (1.0 - pi).powf(i - 1.0) * c;
    }
    let k = u + c1 * (v1 / v2) * (v3 / v4).powi(2);
    if !k.is_finite() || k <= 0.0 {
        return None;
    }
    let (alpha, beta) = snb_moments(k, c1, c2, pi, variant)?;
    Some((k, alpha, beta))
}

/// Solves the two SNB moment equations E[c1] = c1, E[c2] = c2 for (α, β) given K and π.
pub fn snb_moments(k: f64, c1: f64, c2: f64, pi: f64, variant: SnbVariant) -> Option<(f64, f64)> {
    let arx = variant == SnbVariant::Arx;
    let g = |a: f64, b: f64| -> (f64, f64) {
        let d = (1.0 - pi) * (1.0 - b);
        let e1 = k * pi * (b / (1.0 - d)).powf(a) * (1.0 + a * d / (1.0 - d));
        let front = k * a * b.powf(a) * pi * pi * (1.0 - b) * (2.0 - (1.0 - a) * d) / 2.0;
        let e2 = if arx {
            front * (1.0 - d).powf(a + 2.0)
        } else {
            front / (1.0 - d).powf(a + 2.0)
        };
        (e1 / c1 - 1.0, e2 / c2 - 1.0)
    };
    let mut starts = vec![(1.0, 0.5)];
    for a in [0.1, 0.5, 1.0, 2.0, 5.0] {
        for b in [0.01, 0.1, 0.5, 0.9] {
            starts.push((a, b));
        }
    }
    starts.into_iter().find_map(|(mut a, mut b): (f64, f64)| {
        for _ in 0..200 {
            let (f1, f2) = g(a, b);
            if !(f1.is_finite() && f2.is_finite()) {
                return None;
            }
            if f1.abs() < 1e-12 && f2.abs() < 1e-12 {
                return Some((a, b));
            }
            let ha = 1e-7 * a.abs().max(1e-3);
            let hb = 1e-7 * b.abs().max(1e-3);
            let (fa1, fa2) = g(a + ha, b);
            let (fb1, fb2) = g(a, b + hb);
            let (j11, j21) = ((fa1 - f1) / ha, (fa2 - f2) / ha);
            let (j12, j22) = ((fb1 - f1) / hb, (fb2 - f2) / hb);
            let det = j11 * j22 - j12 * j21;
            if det == 0.0 || !det.is_finite() {
                return None;
            }
            a -= (j22 * f1 - j12 * f2) / det;
            b -= (j11 * f2 - j21 * f1) / det;
            if a <= 0.0 || b <= 0.0 || b >= 1.0 {
                return None;
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zayatz_at_full_sampling_is_sample_uniqueness() {
        let hist = [(1, 5), (2, 3), (4, 1)];
        let z = zayatz(&hist, PopulationModel::from_fraction(15, 1.0)).unwrap();
        assert!((z - 5.0 / 15.0).abs() < 1e-15);
    }

    #[test]
    fn no_uniques_means_zero() {
        let pu = population_uniqueness(
            &[(2, 4), (3, 2)],
            PopulationModel::from_fraction(14, 0.1),
            SnbVariant::Derived,
        );
        assert_eq!(pu.dankar, 0.0);
        assert_eq!(pu.chosen, Estimator::None);
    }

    fn gamma(rng: &mut crate::stats::Rng, shape: f64) -> f64 {
        // Marsaglia & Tsang (2000), with the shape < 1 boost.
        if shape < 1.0 {
            return gamma(rng, shape + 1.0) * rng.unit().max(1e-300).powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = rng.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = rng.unit();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    fn poisson(rng: &mut crate::stats::Rng, lambda: f64) -> u64 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= rng.unit();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }

    /// The derived SNB recovers the population uniques of a population drawn from its own
    /// model: F − 1 ~ NegBin(α, β) (a gamma–Poisson mixture), sampled binomially with π.
    #[test]
    fn snb_recovers_population_uniques_by_simulation() {
        let mut rng = crate::stats::Rng::new(2024);
        let (alpha, beta, pi) = (0.6, 0.35, 0.3);
        let classes = 60_000;
        let mut big_n = 0u64;
        let mut pop_uniques = 0u64;
        let mut sample_sizes: std::collections::BTreeMap<u64, u64> = Default::default();
        for _ in 0..classes {
            let lambda = gamma(&mut rng, alpha) * (1.0 - beta) / beta;
            let f_pop = 1 + poisson(&mut rng, lambda);
            big_n += f_pop;
            pop_uniques += u64::from(f_pop == 1);
            let f = (0..f_pop).filter(|_| rng.chance(pi)).count() as u64;
            if f > 0 {
                *sample_sizes.entry(f).or_default() += 1;
            }
        }
        let hist: Vec<(u64, u64)> = sample_sizes.into_iter().collect();
        let n: u64 = hist.iter().map(|h| h.0 * h.1).sum();
        let model = PopulationModel { n, big_n };
        let truth = pop_uniques as f64 / big_n as f64;
        let est = snb(&hist, model, SnbVariant::Derived).expect("SNB solves on its own model");
        // The Shlosser-type K estimator is biased (here +3.6 %), so SNB is checked to 15 %.
        assert!(
            (est - truth).abs() / truth < 0.15,
            "SNB {est} vs true {truth}"
        );
        // ARX's formulas do not recover it.
        let arx = snb(&hist, model, SnbVariant::Arx);
        assert!(
            arx.is_none_or(|a| (a - truth).abs() / truth > 0.05),
            "{arx:?} vs {truth}"
        );
    }

    /// Closed form: c1 and c2 computed from the model at known (K, α, β, π) give back α, β.
    #[test]
    fn snb_moment_equations_recover_known_parameters() {
        for (k, alpha, beta, pi) in [
            (60_000.0, 0.6, 0.35, 0.3),
            (1e6, 1.7, 0.05, 0.15),
            (5e4, 0.2, 0.6, 0.5),
        ] {
            let d: f64 = (1.0 - pi) * (1.0 - beta);
            let c1 = k * pi * (beta / (1.0 - d)).powf(alpha) * (1.0 + alpha * d / (1.0 - d));
            let c2 =
                k * alpha * beta.powf(alpha) * pi * pi * (1.0 - beta) * (2.0 - (1.0 - alpha) * d)
                    / (2.0 * (1.0 - d).powf(alpha + 2.0));
            let (a, b) = snb_moments(k, c1, c2, pi, SnbVariant::Derived).unwrap();
            assert!(
                (a - alpha).abs() < 1e-6 && (b - beta).abs() < 1e-6,
                "{a} {b} vs {alpha} {beta}"
            );
        }
    }

    /// ARX `TestRiskMetrics`: 7 unique records at π = 0.2 → Dankar estimate 1.0.
    #[test]
    fn arx_toy_all_unique() {
        let pu = population_uniqueness(
            &[(1, 7)],
            PopulationModel::from_fraction(7, 0.2),
            SnbVariant::Derived,
        );
        assert!((pu.dankar - 1.0).abs() < 1e-9, "{pu:?}");
    }
}
