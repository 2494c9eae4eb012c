//! Two fused CPU operations WITH analytic backward passes, replacing the composite versions on
//! the two largest tensors of a training step (the B×T×V logits and the B×H×T×T attention
//! scores), where the ~10 elementwise passes of the composites dominated the step time:
//!
//! - [`token_logprob`]: log p(target) = x_target − logsumexp(x) per row; backward
//!   g · (onehot(target) − softmax(x));
//! - [`softmax`]: s = softmax(x) per row; backward s ⊙ (g − Σ g ⊙ s).
//!
//! Unlike candle-nn's fused ops (which have no backward and silently cut gradients,
//! reference/dp.md §2.4), these register their backward with `apply_op1`; the tests compare
//! values and gradients with the composite versions built from primitive ops.

use candle_core::{CpuStorage, CustomOp1, D, Layout, Shape, Tensor};
use rayon::prelude::*;
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
            .par_chunks(v)
            .zip(self.targets.par_iter())
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
        out.par_chunks_mut(v)
            .zip(x.par_chunks(v))
            .zip(g.par_iter().zip(self.targets.par_iter()))
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
        out.par_chunks_mut(v)
            .zip(x.par_chunks(v))
            .for_each(|(o, row)| {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut s = 0f32;
                for (oj, &xj) in o.iter_mut().zip(row) {
                    *oj = (xj - m).exp();
                    s += *oj;
                }
                let inv = 1.0 / s;
                o.iter_mut().for_each(|oj| *oj *= inv);
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some(grad_res.broadcast_sub(&dot)?.mul(res)?))
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn random(shape: (usize, usize), seed: u64) -> Var {
        let mut rng = crate::stats::Rng::new(seed);
        let data: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| (rng.normal() * 3.0) as f32)
            .collect();
        Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
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
