//! AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", arXiv 1711.05101)
//! with PyTorch's update order, a linear warm-up + cosine learning-rate schedule, and global
//! gradient-norm clipping. The optimizer state is plain named tensors so checkpoints can store it.

use super::llama::{Params, is_gain};
use candle_core::{Tensor, Var};
use std::collections::BTreeMap;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay (not applied to RMSNorm gains).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// AdamW state.
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Steps taken.
    pub step: u64,
    /// First moments by parameter name.
    pub m: BTreeMap<String, Tensor>,
    /// Second moments by parameter name.
    pub v: BTreeMap<String, Tensor>,
}

impl AdamW {
    /// Zero state for `params`.
    pub fn new(config: AdamWConfig, params: &Params) -> candle_core::Result<Self> {
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for (name, var) in &params.vars {
            m.insert(name.clone(), var.as_tensor().zeros_like()?);
            v.insert(name.clone(), var.as_tensor().zeros_like()?);
        }
        Ok(Self {
            config,
            step: 0,
            m,
            v,
        })
    }

    /// One update with learning rate `lr` from gradients by name (a missing gradient counts as
    /// zero).
    pub fn update(
        &mut self,
        params: &Params,
        grads: &BTreeMap<String, Tensor>,
        lr: f64,
    ) -> candle_core::Result<()> {
        self.step += 1;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for (name, var) in &params.vars {
            let Some(g) = grads.get(name) else { continue };
            let m = self.m.get_mut(name).expect("state for every parameter");
            *m = ((&*m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = self.v.get_mut(name).expect("state for every parameter");
            *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let denom = ((&*v / bc2)?.sqrt()? + c.eps)?;
            let stepv = ((&*m / bc1)? / denom)?;
            let decay = if is_gain(name) { 0.0 } else { c.weight_decay };
            let theta = (var.as_tensor() * (1.0 - lr * decay))?;
            set(var, &(theta - (stepv * lr)?)?)?;
        }
        Ok(())
    }
}

fn set(var: &Var, t: &Tensor) -> candle_core::Result<()> {
    var.set(t)
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up over `warmup` steps to `peak`,
/// then cosine decay to `peak · min_ratio`.
pub fn schedule(step: u64, total: u64, warmup: u64, peak: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let floor = peak * min_ratio;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Global L2 norm of a set of gradients.
pub fn global_norm(grads: &BTreeMap<String, Tensor>) -> candle_core::Result<f64> {
    let mut s = 0.0f64;
    for g in grads.values() {
        s += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    Ok(s.sqrt())
}

/// Scales gradients so their global norm is at most `max_norm`; returns the norm before.
pub fn clip_global(
    grads: &mut BTreeMap<String, Tensor>,
    max_norm: f64,
) -> candle_core::Result<f64> {
    let norm = global_norm(grads)?;
    if norm > max_norm {
        let f = max_norm / (norm + 1e-6);
        for g in grads.values_mut() {
            *g = (&*g * f)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::test_util::values;

    #[test]
    fn schedule_shape() {
        assert!((schedule(0, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((schedule(9, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((schedule(10, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((schedule(55, 100, 10, 1.0, 0.1) - 0.55).abs() < 1e-12);
        assert!((schedule(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adamw_first_step_matches_closed_form() {
        // After one step, m̂ = g and v̂ = g², so θ₁ = θ₀(1 − lr·wd) − lr·g/(|g| + ε).
        let cfg = crate::train::test_util::micro(8, 1, 8);
        let params = Params::init(&cfg, 1).unwrap();
        let mut opt = AdamW::new(AdamWConfig::default(), &params).unwrap();
        let name = "model.layers.0.mlp.up_proj.weight";
        let before = values(params.var(name).as_tensor());
        let g = (params.var(name).as_tensor().ones_like().unwrap() * -0.5).unwrap();
        let grads = BTreeMap::from([(name.to_owned(), g)]);
        opt.update(&params, &grads, 0.01).unwrap();
        let after = values(params.var(name).as_tensor());
        for (a, b) in after.iter().zip(&before) {
            let want = b * (1.0 - 0.01 * 0.1) + 0.01 * 0.5 / (0.5 + 1e-8);
            assert!((a - want).abs() < 1e-6, "{a} vs {want}");
        }
    }
}
