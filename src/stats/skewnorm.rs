//! The skew-normal distribution (Azzalini 1985) and its maximum-likelihood fit, for the
//! extrapolated canary exposure of Carlini et al., "The Secret Sharer" (USENIX Security 2019,
//! §4.2 "approximation"): fit a skew-normal to the reference secrets' scores and read the
//! secret's exposure as −log₂ CDF(secret score).
//!
//! Density with location ξ, scale ω > 0 and shape α: f(x) = (2/ω) φ(z) Φ(αz), z = (x − ξ)/ω.
//! The CDF is computed as F(z) = 2 ∫_{−∞}^{z} φ(t) Φ(αt) dt by Simpson's rule in log space, so
//! far lower tails (a memorised secret lies far below every reference) keep their precision:
//! log F is accurate where F itself underflows. Fit diagnostics: the log-likelihood, the
//! Kolmogorov–Smirnov distance between the fitted CDF and the references, and its asymptotic
//! p-value (conservative: the parameters were fitted on the same data).

use super::special::normal_cdf;
use std::f64::consts::{LN_2, PI};

/// Natural log of the standard normal CDF, accurate in the far lower tail.
pub fn log_normal_cdf(x: f64) -> f64 {
    if x > -20.0 {
        normal_cdf(x).ln()
    } else {
        // Asymptotic series: Φ(x) = φ(x)/(−x) · (1 − 1/x² + 3/x⁴ − 15/x⁶ + …).
        let x2 = x * x;
        -0.5 * x2 - (-x).ln() - 0.5 * (2.0 * PI).ln()
            + (1.0 - 1.0 / x2 + 3.0 / (x2 * x2) - 15.0 / (x2 * x2 * x2)).ln()
    }
}

fn log_phi(x: f64) -> f64 {
    -0.5 * x * x - 0.5 * (2.0 * PI).ln()
}

/// A skew-normal distribution.
#[derive(
    Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct SkewNormal {
    /// Location ξ.
    pub loc: f64,
    /// Scale ω > 0.
    pub scale: f64,
    /// Shape α (0: normal; > 0: right-skewed).
    pub shape: f64,
}

/// log of the integrand 2 φ(t) Φ(αt) of the standardised CDF.
fn log_integrand(t: f64, a: f64) -> f64 {
    LN_2 + log_phi(t) + log_normal_cdf(a * t)
}

fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

impl SkewNormal {
    /// log density at `x`.
    pub fn log_pdf(&self, x: f64) -> f64 {
        let z = (x - self.loc) / self.scale;
        log_integrand(z, self.shape) - self.scale.ln()
    }

    /// log CDF at `x` (natural log).
    pub fn log_cdf(&self, x: f64) -> f64 {
        standard_log_cdf((x - self.loc) / self.scale, self.shape)
    }

    /// CDF at `x`.
    pub fn cdf(&self, x: f64) -> f64 {
        self.log_cdf(x).exp()
    }

    /// Mean ξ + ωδ√(2/π), δ = α/√(1+α²).
    pub fn mean(&self) -> f64 {
        let d = self.shape / (1.0 + self.shape * self.shape).sqrt();
        self.loc + self.scale * d * (2.0 / PI).sqrt()
    }

    /// One draw: ξ + ω(δ|U₀| + √(1−δ²) U₁) with U₀, U₁ standard normal.
    pub fn sample(&self, rng: &mut super::Rng) -> f64 {
        let d = self.shape / (1.0 + self.shape * self.shape).sqrt();
        let (u0, u1) = (rng.normal(), rng.normal());
        self.loc + self.scale * (d * u0.abs() + (1.0 - d * d).sqrt() * u1)
    }
}

/// log F(z; α) for the standard skew-normal, by Simpson's rule on the log integrand from where it
/// has fallen 60 nats below its maximum on (−∞, z] up to z.
fn standard_log_cdf(z: f64, a: f64) -> f64 {
    if z.is_nan() || a.is_nan() {
        return f64::NAN;
    }
    if z == f64::INFINITY {
        return 0.0;
    }
    if z == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if a == 0.0 {
        return log_normal_cdf(z);
    }
    // The upper tail: F = 1 − S with S small; compute S = 1 − F(z) through the mirror
    // 1 − F(z; α) = F(−z; −α) when that is the smaller side, for precision near 1.
    if z > 0.0 {
        let upper = standard_log_cdf_lower(-z, -a);
        return (-upper.exp()).ln_1p();
    }
    standard_log_cdf_lower(z, a)
}

/// Integrates the log integrand over (−∞, z]; the integrand is log-concave (log φ has curvature
/// −1 and log Φ is concave), so its mass sits within ~11 units of its maximum on the range.
fn standard_log_cdf_lower(z: f64, a: f64) -> f64 {
    // The maximum of the integrand on (−∞, z]: the mode if it lies below z, else z itself.
    let mode = {
        // Newton on d/dt [log φ(t) + log Φ(at)] = −t + a·λ(at), λ = φ/Φ (inverse Mills ratio).
        let mut t = 0.0f64;
        for _ in 0..60 {
            let u = a * t;
            let lam = (log_phi(u) - log_normal_cdf(u)).exp();
            let g = -t + a * lam;
            // λ'(u) = −λ(u + λ)
            let dg = -1.0 - a * a * lam * (u + lam);
            let step = g / dg;
            t -= step;
            if step.abs() < 1e-12 {
                break;
            }
        }
        t
    };
    let top = mode.min(z);
    let peak = log_integrand(top, a);
    // Left end: step down until the integrand is 60 nats below the peak.
    let width = 1.0 / (1.0 + a * a).sqrt();
    let mut lo = top - width;
    while log_integrand(lo, a) > peak - 60.0 {
        lo -= width.max(0.5 * (top - lo));
    }
    // Where the integrand still rises steeply at `top` (a large shape, far tail), its mass lies
    // within a few 1/slope of it: step and range follow the slope there.
    let slope = {
        let u = a * top;
        let lam = (log_phi(u) - log_normal_cdf(u)).exp();
        (-top + a * lam).abs()
    };
    let h = (0.01 * width.min(1.0)).min(0.02 / slope.max(1e-12));
    let lo = if slope > 1.0 {
        lo.max(top - 80.0 / slope)
    } else {
        lo
    };
    simpson_log(lo, z, a, h).min(0.0)
}

/// log ∫_{lo}^{hi} 2 φ(t) Φ(αt) dt by Simpson's rule with a step of at most `h` (at least 2
/// intervals), summed in log space.
fn simpson_log(lo: f64, hi: f64, a: f64, h: f64) -> f64 {
    if hi <= lo {
        return f64::NEG_INFINITY;
    }
    let span = hi - lo;
    let mut n = ((span / h).ceil() as usize).clamp(2, 2_000_000);
    if n % 2 == 1 {
        n += 1;
    }
    let h = span / n as f64;
    let mut acc = f64::NEG_INFINITY;
    for i in 0..=n {
        let t = lo + i as f64 * h;
        let w: f64 = if i == 0 || i == n {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        acc = log_add(acc, log_integrand(t, a) + w.ln());
    }
    acc + (h / 3.0).ln()
}

impl SkewNormal {
    /// CDF at every value of `sorted` (ascending), by one cumulative pass (for goodness of fit;
    /// absolute precision ≈ 1e−8).
    pub fn cdf_sorted(&self, sorted: &[f64]) -> Vec<f64> {
        let a = self.shape;
        let h = 0.01 / (1.0 + a * a).sqrt().max(1.0);
        let mut out = Vec::with_capacity(sorted.len());
        let mut prev: Option<(f64, f64)> = None;
        for &x in sorted {
            let z = (x - self.loc) / self.scale;
            let f = match prev {
                None => self.log_cdf(x).exp(),
                Some((pz, pf)) => (pf + simpson_log(pz, z, a, h).exp()).min(1.0),
            };
            out.push(f);
            prev = Some((z, f));
        }
        out
    }
}

/// A fitted skew-normal with its diagnostics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Fit {
    /// The maximum-likelihood parameters.
    pub dist: SkewNormal,
    /// Log-likelihood at the optimum.
    pub log_likelihood: f64,
    /// Kolmogorov–Smirnov distance sup |F_fit − F_empirical|.
    pub ks: f64,
    /// Asymptotic Kolmogorov p-value of `ks` (conservative: parameters fitted on the same data).
    pub ks_p: f64,
    /// Number of values fitted.
    pub n: usize,
    /// Whether the shape reached the search bound |α| = 50 (a near half-normal fit).
    pub shape_at_bound: bool,
}

const SHAPE_BOUND: f64 = 50.0;

fn neg_log_lik(xs: &[f64], p: [f64; 3]) -> f64 {
    let (loc, log_scale, shape) = (p[0], p[1], p[2].clamp(-SHAPE_BOUND, SHAPE_BOUND));
    let scale = log_scale.exp();
    if !scale.is_finite() || scale <= 0.0 {
        return f64::INFINITY;
    }
    let mut s = 0.0;
    for &x in xs {
        let z = (x - loc) / scale;
        s += log_integrand(z, shape);
    }
    -(s - xs.len() as f64 * log_scale)
}

/// Nelder–Mead minimisation (standard coefficients 1, 2, ½, ½) from `start` with initial steps
/// `step`; stops when the simplex's function values agree to `tol` or after `max_iter`.
fn nelder_mead(f: impl Fn([f64; 3]) -> f64, start: [f64; 3], step: [f64; 3]) -> [f64; 3] {
    let mut simplex: Vec<([f64; 3], f64)> = Vec::with_capacity(4);
    simplex.push((start, f(start)));
    for i in 0..3 {
        let mut p = start;
        p[i] += step[i];
        simplex.push((p, f(p)));
    }
    for _ in 0..4000 {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[3].1);
        if (worst - best).abs() <= 1e-10 * (1.0 + best.abs()) {
            break;
        }
        let mut centroid = [0.0; 3];
        for (p, _) in &simplex[..3] {
            for k in 0..3 {
                centroid[k] += p[k] / 3.0;
            }
        }
        let towards = |t: f64| -> [f64; 3] {
            let w = simplex[3].0;
            [
                centroid[0] + t * (w[0] - centroid[0]),
                centroid[1] + t * (w[1] - centroid[1]),
                centroid[2] + t * (w[2] - centroid[2]),
            ]
        };
        let r = towards(-1.0);
        let fr = f(r);
        if fr < simplex[0].1 {
            let e = towards(-2.0);
            let fe = f(e);
            simplex[3] = if fe < fr { (e, fe) } else { (r, fr) };
        } else if fr < simplex[2].1 {
            simplex[3] = (r, fr);
        } else {
            let c = if fr < simplex[3].1 {
                towards(-0.5)
            } else {
                towards(0.5)
            };
            let fc = f(c);
            if fc < simplex[3].1.min(fr) {
                simplex[3] = (c, fc);
            } else {
                let b = simplex[0].0;
                for s in simplex.iter_mut().skip(1) {
                    for (x, &bk) in s.0.iter_mut().zip(&b) {
                        *x = bk + 0.5 * (*x - bk);
                    }
                    s.1 = f(s.0);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex[0].0
}

/// Asymptotic Kolmogorov distribution survival function Q(λ) = 2 Σ (−1)^{k−1} e^{−2k²λ²}.
fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut s = 0.0;
    for k in 1..=100 {
        let kf = f64::from(k);
        let term = (-2.0 * kf * kf * lambda * lambda).exp();
        s += if k % 2 == 1 { term } else { -term };
        if term < 1e-16 {
            break;
        }
    }
    (2.0 * s).clamp(0.0, 1.0)
}

/// Fits a skew-normal to `xs` by maximum likelihood (Nelder–Mead on ξ, ln ω, α from a
/// method-of-moments start, restarted once from the optimum). `None` with fewer than 3 finite
/// values or no spread.
pub fn fit(xs: &[f64]) -> Option<Fit> {
    let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    let n = xs.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mean = xs.iter().sum::<f64>() / nf;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / nf;
    if var <= 0.0 {
        return None;
    }
    let sd = var.sqrt();
    let skew = xs.iter().map(|x| ((x - mean) / sd).powi(3)).sum::<f64>() / nf;
    // Method of moments: |γ₁| < 0.995 keeps δ inside (−1, 1).
    let g = skew.clamp(-0.99, 0.99);
    let c = (2.0 * g.abs() / (4.0 - PI)).powf(2.0 / 3.0);
    let delta = (g.signum() * (PI / 2.0 * c / (1.0 + c)).sqrt()).clamp(-0.99, 0.99);
    let shape0 = delta / (1.0 - delta * delta).sqrt();
    let scale0 = sd / (1.0 - 2.0 * delta * delta / PI).sqrt();
    let loc0 = mean - scale0 * delta * (2.0 / PI).sqrt();
    let f = |p: [f64; 3]| neg_log_lik(&xs, p);
    let mut p = nelder_mead(f, [loc0, scale0.ln(), shape0], [0.3 * sd, 0.2, 0.5]);
    p = nelder_mead(f, p, [0.05 * sd, 0.05, 0.2]);
    let shape = p[2].clamp(-SHAPE_BOUND, SHAPE_BOUND);
    let dist = SkewNormal {
        loc: p[0],
        scale: p[1].exp(),
        shape,
    };
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    let mut ks = 0.0f64;
    for (i, fx) in dist.cdf_sorted(&sorted).into_iter().enumerate() {
        ks = ks
            .max((fx - i as f64 / nf).abs())
            .max(((i + 1) as f64 / nf - fx).abs());
    }
    let lambda = (nf.sqrt() + 0.12 + 0.11 / nf.sqrt()) * ks;
    Some(Fit {
        dist,
        log_likelihood: -f(p),
        ks,
        ks_p: kolmogorov_q(lambda),
        n,
        shape_at_bound: shape.abs() >= SHAPE_BOUND * 0.999,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Rng;

    fn sn(a: f64) -> SkewNormal {
        SkewNormal {
            loc: 0.0,
            scale: 1.0,
            shape: a,
        }
    }

    #[test]
    fn closed_form_cdfs() {
        // α = 0 is the normal; α = 1 gives F = Φ(x)² (Azzalini 1985); and the mirror
        // F(x; −α) = 1 − F(−x; α).
        for &x in &[-6.0, -2.5, -0.3, 0.0, 0.7, 2.0, 4.0] {
            let phi = normal_cdf(x);
            assert!((sn(0.0).cdf(x) - phi).abs() < 1e-12, "{x}");
            let got = sn(1.0).log_cdf(x);
            let want = 2.0 * phi.ln();
            assert!(
                (got - want).abs() < 1e-6 * (1.0 + want.abs()),
                "{x}: {got} vs {want}"
            );
            let m = 1.0 - sn(3.0).cdf(-x);
            assert!((sn(-3.0).cdf(x) - m).abs() < 1e-7, "{x}");
        }
        // Far tail: log Φ(x)² at x = −40 (F ≈ 1e−700, below f64's range).
        let got = sn(1.0).log_cdf(-40.0);
        let want = 2.0 * log_normal_cdf(-40.0);
        assert!((got - want).abs() < 1e-5 * want.abs(), "{got} vs {want}");
        // Scipy: skewnorm.cdf(0.5, 4) = 0.30975... computed independently as
        // Φ(0.5) − 2·T(0.5, 4) with Owen's T by quadrature below.
        let owen = |h: f64, a: f64| {
            let n = 20000;
            let dx = a / n as f64;
            (0..n)
                .map(|i| {
                    let x = (i as f64 + 0.5) * dx;
                    (-0.5 * h * h * (1.0 + x * x)).exp() / (1.0 + x * x)
                })
                .sum::<f64>()
                * dx
                / (2.0 * PI)
        };
        for &(x, a) in &[(0.5, 4.0), (-0.5, 4.0), (1.3, -2.0), (-1.0, 10.0)] {
            let want = normal_cdf(x) - 2.0 * owen(x, a);
            assert!((sn(a).cdf(x) - want).abs() < 1e-7, "{x},{a}");
        }
    }

    /// A steep far tail (α = 50, z = −12): the integrand decays by ≈ 30,000 nats per unit at
    /// z; halving and quartering the step must not move log F.
    #[test]
    fn steep_tails_are_resolved() {
        let a = 50.0;
        let z = -12.0;
        let got = standard_log_cdf(z, a);
        let fine = |h: f64| simpson_log(z - 0.01, z, a, h);
        let reference = fine(1e-7);
        assert!((got - reference).abs() < 1e-3, "{got} vs {reference}");
        // Also against α = 1's closed form deep in the tail.
        assert!((standard_log_cdf(-30.0, 1.0) - 2.0 * log_normal_cdf(-30.0)).abs() < 1e-4);
    }

    #[test]
    fn log_normal_cdf_is_continuous_across_its_switch() {
        let a = log_normal_cdf(-20.0 + 1e-9);
        let b = log_normal_cdf(-20.0 - 1e-9);
        assert!((a - b).abs() < 1e-6, "{a} {b}");
    }

    /// TF Privacy exposures_test (reference/attacks.md §B.2): fit a skew-normal to 10,000 draws
    /// of skewnorm(4, 0, 1); the extrapolated exposure −log₂ CDF must match the true one.
    #[test]
    fn fit_recovers_skewnorm_4_0_1() {
        let truth = sn(4.0);
        let mut rng = Rng::new(11);
        let xs: Vec<f64> = (0..10_000).map(|_| truth.sample(&mut rng)).collect();
        let f = fit(&xs).unwrap();
        assert!((f.dist.shape - 4.0).abs() < 0.8, "{:?}", f.dist);
        assert!(f.dist.loc.abs() < 0.08, "{:?}", f.dist);
        assert!((f.dist.scale - 1.0).abs() < 0.08, "{:?}", f.dist);
        assert!(f.ks < 0.02 && f.ks_p > 0.01, "{f:?}");
        for &x in &[0.0, 0.3, 1.0, 2.0] {
            let want = -truth.log_cdf(x) / LN_2;
            let got = -f.dist.log_cdf(x) / LN_2;
            assert!(
                (got - want).abs() < 0.15 * want.max(1.0),
                "{x}: {got} vs {want}"
            );
        }
        // A normal sample fits with a small shape and a good KS.
        let ys: Vec<f64> = (0..5000).map(|_| 3.0 + 2.0 * rng.normal()).collect();
        let g = fit(&ys).unwrap();
        assert!(g.dist.shape.abs() < 1.5 && g.ks < 0.03, "{g:?}");
        assert!((g.dist.mean() - 3.0).abs() < 0.1);
        assert!(fit(&[1.0, 1.0, 1.0]).is_none());
        assert!(fit(&[1.0, 2.0]).is_none());
    }

    #[test]
    fn kolmogorov_tail() {
        // Q(1.36) ≈ 0.0494 (the 5 % critical value of the Kolmogorov distribution).
        assert!((kolmogorov_q(1.358) - 0.05).abs() < 1e-3);
    }
}
