//! Fused CPU operations WITH analytic backward passes, replacing composites whose many
//! elementwise (often broadcasting) passes dominated the step time — on the B×T×V logits, the
//! B×H×T×T attention scores and every rotary embedding:
//!
//! - [`token_logprob`]: log p(target) = x_target − logsumexp(x) per row; backward
//!   g · (onehot(target) − softmax(x));
//! - [`softmax`]: s = softmax(x) per row; backward s ⊙ (g − Σ g ⊙ s);
//! - [`rope`]: the rotary embedding; backward is the inverse rotation.
//!
//! The loops are single-threaded on purpose: they are memory-bound, and a second thread pool
//! (rayon) beside candle's own made the whole step slower on 2 cores (measured: backward
//! 231 → 300 ms per tiny-preset step).
//!
//! Unlike candle-nn's fused ops (which have no backward and silently cut gradients,
//! reference/dp.md §2.4), these register their backward with `apply_op1`; the tests compare
//! values and gradients with the composite versions built from primitive ops.

use candle_core::{CpuStorage, CustomOp1, D, Layout, Shape, Tensor};
use std::sync::Arc;

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("expected f32 data");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("expected a contiguous tensor");
    };
    Ok(&data[start..end])
}

/// Row-wise log p(target) of logits (N, V).
struct TokenLogProb {
    targets: Arc<Vec<u32>>,
}

fn row_max_lse(row: &[f32]) -> (f32, f32) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f32 = row.iter().map(|&x| (x - m).exp()).sum();
    (m, m + s.ln())
}

impl CustomOp1 for TokenLogProb {
    fn name(&self) -> &'static str {
        "phiprobe-token-logprob"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = layout.shape().dims2()?;
        if self.targets.len() != n {
            candle_core::bail!("{} targets for {n} rows", self.targets.len());
        }
        let x = contiguous_f32(storage, layout)?;
        let out: Vec<f32> = x
            .chunks(v)
            .zip(self.targets.iter())
            .map(|(row, &t)| {
                let (_, lse) = row_max_lse(row);
                row[t as usize] - lse
            })
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (n, v) = arg.dims2()?;
        let x = arg.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad_res.to_vec1::<f32>()?;
        let mut out = vec![0f32; n * v];
        out.chunks_mut(v)
            .zip(x.chunks(v))
            .zip(g.iter().zip(self.targets.iter()))
            .for_each(|((o, row), (&gi, &t))| {
                let (_, lse) = row_max_lse(row);
                for (oj, &xj) in o.iter_mut().zip(row) {
                    *oj = -gi * (xj - lse).exp();
                }
                o[t as usize] += gi;
            });
        Ok(Some(Tensor::from_vec(out, (n, v), arg.device())?))
    }
}

/// log p(targetᵢ) under softmax(logits row i), for logits (N, V) and N targets; differentiable
/// in the logits.
pub fn token_logprob(logits: &Tensor, targets: Arc<Vec<u32>>) -> candle_core::Result<Tensor> {
    logits.contiguous()?.apply_op1(TokenLogProb { targets })
}

/// Softmax over the last dimension.
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "phiprobe-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let v = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let x = contiguous_f32(storage, layout)?;
        let mut out = vec![0f32; x.len()];
        for (o, row) in out.chunks_mut(v).zip(x.chunks(v)) {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut s = 0f32;
            for (oj, &xj) in o.iter_mut().zip(row) {
                *oj = (xj - m).exp();
                s += *oj;
            }
            let inv = 1.0 / s;
            o.iter_mut().for_each(|oj| *oj *= inv);
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // d/dx = s ⊙ (g − Σ g ⊙ s).
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some(grad_res.broadcast_sub(&dot)?.mul(res)?))
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// Hugging Face's (non-interleaved) rotary embedding of x (B, H, T, hd):
/// y = x·cos + rotate_half(x)·sin, rotate_half([x₁, x₂]) = [−x₂, x₁]; backward rotates back.
struct Rope {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    inverse: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "phiprobe-rope"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = layout.shape().dims();
        let &[_, _, t, hd] = dims else {
            candle_core::bail!("rope expects (B, H, T, hd), got {dims:?}");
        };
        if self.cos.len() < t * hd || self.sin.len() < t * hd || hd % 2 != 0 {
            candle_core::bail!("rope tables too short or odd head width");
        }
        let x = contiguous_f32(storage, layout)?;
        let mut out = vec![0f32; x.len()];
        let half = hd / 2;
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let (cos, sin) = (&self.cos, &self.sin);
        out.chunks_mut(hd)
            .zip(x.chunks(hd))
            .enumerate()
            .for_each(|(r, (o, row))| {
                let p = (r % t) * hd;
                let (c, s) = (&cos[p..p + hd], &sin[p..p + hd]);
                for i in 0..half {
                    let (a, b) = (row[i], row[i + half]);
                    o[i] = a * c[i] - sign * b * s[i];
                    o[i + half] = b * c[i + half] + sign * a * s[i + half];
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // Each pair is rotated by θ; the transpose is the rotation by −θ.
        let back = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            inverse: !self.inverse,
        };
        Ok(Some(grad_res.contiguous()?.apply_op1(back)?))
    }
}

/// Rotary position embedding of x (B, H, T, hd) with tables (T, hd) (cos and sin repeated over
/// the two halves), differentiable.
pub fn rope(x: &Tensor, cos: Arc<Vec<f32>>, sin: Arc<Vec<f32>>) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Rope {
        cos,
        sin,
        inverse: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::test_util::max_diff;
    use candle_core::{Device, Var};

    fn random(shape: (usize, usize), seed: u64) -> Var {
        let mut rng = crate::stats::Rng::new(seed);
        let data: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| (rng.normal() * 3.0) as f32)
            .collect();
        Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu).unwrap()).unwrap()
    }

    #[test]
    fn token_logprob_matches_the_composite_with_gradients() {
        let x = random((7, 33), 1);
        let targets: Vec<u32> = vec![0, 5, 32, 7, 7, 1, 20];
        let w = Tensor::from_vec(
            (0..7).map(|i| i as f32 - 2.5).collect::<Vec<_>>(),
            7,
            &Device::Cpu,
        )
        .unwrap();
        let fused = token_logprob(x.as_tensor(), Arc::new(targets.clone())).unwrap();
        let m = x.as_tensor().max_keepdim(1).unwrap().detach();
        let d = x.as_tensor().broadcast_sub(&m).unwrap();
        let lsm = d
            .broadcast_sub(&d.exp().unwrap().sum_keepdim(1).unwrap().log().unwrap())
            .unwrap();
        let idx = Tensor::from_vec(targets, (7, 1), &Device::Cpu).unwrap();
        let comp = lsm.gather(&idx, 1).unwrap().squeeze(1).unwrap();
        assert!(max_diff(&fused, &comp) < 1e-5);
        let g1 = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (comp * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap(),
        );
        assert!(max_diff(a, b) < 1e-5, "{}", max_diff(a, b));
    }

    fn grad_of(x: &Var, y: &Tensor, w: &Tensor) -> Tensor {
        (y * w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(x.as_tensor())
            .unwrap()
            .clone()
    }

    #[test]
    fn rope_matches_the_composite() {
        let (t, hd) = (6, 8);
        let x0 = random((2 * 3 * t, hd), 8);
        let x = Var::from_tensor(&x0.as_tensor().reshape((2, 3, t, hd)).unwrap()).unwrap();
        let w = random((2 * 3 * t, hd), 9)
            .as_tensor()
            .reshape((2, 3, t, hd))
            .unwrap();
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        for p in 0..t {
            let c: Vec<f32> = (0..hd / 2)
                .map(|i| (p as f32 * 0.3 / (i + 1) as f32).cos())
                .collect();
            let s: Vec<f32> = (0..hd / 2)
                .map(|i| (p as f32 * 0.3 / (i + 1) as f32).sin())
                .collect();
            cos.extend_from_slice(&c);
            cos.extend_from_slice(&c);
            sin.extend_from_slice(&s);
            sin.extend_from_slice(&s);
        }
        let fused = rope(x.as_tensor(), Arc::new(cos.clone()), Arc::new(sin.clone())).unwrap();
        let ct = Tensor::from_vec(cos, (t, hd), &Device::Cpu).unwrap();
        let st = Tensor::from_vec(sin, (t, hd), &Device::Cpu).unwrap();
        let x1 = x.as_tensor().narrow(3, 0, hd / 2).unwrap();
        let x2 = x.as_tensor().narrow(3, hd / 2, hd / 2).unwrap();
        let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], 3).unwrap();
        let comp =
            (x.as_tensor().broadcast_mul(&ct).unwrap() + rot.broadcast_mul(&st).unwrap()).unwrap();
        assert!(max_diff(&fused, &comp) < 1e-6);
        let (a, b) = (grad_of(&x, &fused, &w), grad_of(&x, &comp, &w));
        assert!(max_diff(&a, &b) < 1e-5, "{}", max_diff(&a, &b));
    }

    #[test]
    fn softmax_matches_the_composite_with_gradients() {
        let x = random((6, 17), 2);
        let w = random((6, 17), 3);
        let fused = softmax(x.as_tensor()).unwrap();
        let m = x.as_tensor().max_keepdim(1).unwrap().detach();
        let e = x.as_tensor().broadcast_sub(&m).unwrap().exp().unwrap();
        let comp = e.broadcast_div(&e.sum_keepdim(1).unwrap()).unwrap();
        assert!(max_diff(&fused, &comp) < 1e-6);
        let g1 = (fused * w.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (comp * w.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, b) = (
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap(),
        );
        assert!(max_diff(a, b) < 1e-5, "{}", max_diff(a, b));
    }
}
