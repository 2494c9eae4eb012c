//! DP-SGD's per-example clipping, from one forward and one backward pass.
//!
//! Method: Goodfellow 2015 ("Efficient per-example gradient computations", arXiv 1510.01799);
//! Li, Tramèr, Liang & Hashimoto 2022 ("Large Language Models Can Be Strong Differentially
//! Private Learners", ghost clipping, arXiv 2110.05679); the probe + per-layer book-keeping of
//! reference/dp.md §2.3. DP-SGD itself: Abadi et al. 2016 ("Deep Learning with Differential
//! Privacy", arXiv 1607.00133).
//!
//! The forward pass runs in probe mode ([`super::llama::Tape`]): weights detached, a zero probe
//! on every parameterised output. With the loss Σᵢ Lᵢ, the probe's gradient row i is ∂Lᵢ/∂zᵢ
//! (examples do not interact). Per layer:
//! - linear y = x·Wᵀ: ‖∂Lᵢ/∂W‖² = ⟨AᵢAᵢᵀ, GᵢGᵢᵀ⟩ (ghost norm, T×T Gram matrices) or ‖GᵢᵀAᵢ‖²
//!   (materialised), whichever is cheaper; clipped sum (c ⊙ G)ᵀA as one matmul;
//! - embedding: ‖·‖² = Σ_{t,t'} [idₜ = id_t'] ⟨gₜ, g_t'⟩; clipped sum by index-add;
//! - RMSNorm gain: per-example gradient Σₜ gₜ ⊙ x̂ₜ, materialised.
//!
//! Clip factor cᵢ = min(1, C / (nᵢ + 1e-6)) with nᵢ the norm over all parameters (flat
//! clipping, as Opacus).

use super::llama::{Batch, Site, Tape};
use candle_core::{D, DType, Device, Tensor};
use std::collections::BTreeMap;

/// Per-example squared gradient norms, (B), summed over every recorded site.
pub fn per_example_sq_norms(
    tape: &Tape,
    grads: &candle_core::backprop::GradStore,
    batch: &Batch,
) -> candle_core::Result<Tensor> {
    let mut total = Tensor::zeros(batch.b, DType::F32, &Device::Cpu)?;
    for (_, sq) in site_sq_norms(tape, grads, batch)? {
        total = (total + sq)?;
    }
    Ok(total)
}

/// Per-example squared gradient norms of each site's parameters: (names, (B)) in tape order.
pub fn site_sq_norms(
    tape: &Tape,
    grads: &candle_core::backprop::GradStore,
    batch: &Batch,
) -> candle_core::Result<Vec<(Vec<String>, Tensor)>> {
    let b = batch.b;
    let mut out = Vec::with_capacity(tape.sites.len());
    let grad = |v: &candle_core::Var| -> candle_core::Result<Tensor> {
        match grads.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => v.as_tensor().zeros_like(),
        }
    };
    for site in &tape.sites {
        let sq = match site {
            Site::Embedding { probe, .. } => {
                let g = grad(probe)?;
                let gram = g.matmul(&g.t()?)?;
                let same = token_equality(batch)?;
                (gram * same)?.sum((1, 2))?
            }
            Site::Linear { input, outs } => {
                let t = batch.t;
                let din = input.dim(D::Minus1)?;
                let dout: usize = outs
                    .iter()
                    .map(|(_, p)| p.as_tensor().dim(D::Minus1))
                    .sum::<candle_core::Result<usize>>()?;
                if 2 * t * t < din * dout / outs.len().max(1) {
                    let aat = input.matmul(&input.t()?)?;
                    let mut ggt: Option<Tensor> = None;
                    for (_, p) in outs {
                        let g = grad(p)?;
                        let m = g.matmul(&g.t()?)?;
                        ggt = Some(match ggt {
                            Some(acc) => (acc + m)?,
                            None => m,
                        });
                    }
                    (aat * ggt.expect("a linear site has outputs"))?.sum((1, 2))?
                } else {
                    let mut acc = Tensor::zeros(b, DType::F32, &Device::Cpu)?;
                    for (_, p) in outs {
                        let g = grad(p)?;
                        let per = g.t()?.matmul(input)?; // (B, dout, din)
                        acc = (acc + per.sqr()?.sum((1, 2))?)?;
                    }
                    acc
                }
            }
            Site::Gain { normed, probe, .. } => {
                let g = grad(probe)?;
                (g * normed)?.sum(1)?.sqr()?.sum(1)?
            }
        };
        let names = match site {
            Site::Embedding { name, .. } | Site::Gain { name, .. } => vec![name.clone()],
            Site::Linear { outs, .. } => outs.iter().map(|(n, _)| n.clone()).collect(),
        };
        out.push((names, sq));
    }
    Ok(out)
}

/// (B, T, T) indicator [idₜ = id_t'] within each row.
fn token_equality(batch: &Batch) -> candle_core::Result<Tensor> {
    let (b, t) = (batch.b, batch.t);
    let mut m = vec![0f32; b * t * t];
    for i in 0..b {
        let ids = &batch.host_inputs[i * t..(i + 1) * t];
        for (x, &a) in ids.iter().enumerate() {
            for (y, &c) in ids.iter().enumerate() {
                if a == c {
                    m[i * t * t + x * t + y] = 1.0;
                }
            }
        }
    }
    Tensor::from_vec(m, (b, t, t), &Device::Cpu)
}

/// Clip factors cᵢ = min(1, C / (nᵢ + 1e-6)) from squared norms (0 for a non-finite norm).
pub fn clip_factors(sq_norms: &Tensor, clip: f64) -> candle_core::Result<Tensor> {
    let n: Vec<f32> = sq_norms.to_vec1::<f32>()?;
    let c: Vec<f32> = n
        .iter()
        .map(|&s| {
            if !s.is_finite() {
                // A non-finite gradient must not pass unclipped: drop the example's contribution.
                return 0.0;
            }
            let norm = f64::from(s.max(0.0)).sqrt();
            (clip / (norm + 1e-6)).min(1.0) as f32
        })
        .collect();
    Tensor::from_vec(c, n.len(), &Device::Cpu)
}

/// Σᵢ cᵢ·∂Lᵢ/∂θ for every parameter, by name.
pub fn clipped_sums(
    tape: &Tape,
    grads: &candle_core::backprop::GradStore,
    batch: &Batch,
    factors: &Tensor,
    vocab: usize,
) -> candle_core::Result<BTreeMap<String, Tensor>> {
    let (b, t) = (batch.b, batch.t);
    let c3 = factors.reshape((b, 1, 1))?;
    let mut out = BTreeMap::new();
    let grad = |v: &candle_core::Var| -> candle_core::Result<Tensor> {
        match grads.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => v.as_tensor().zeros_like(),
        }
    };
    for site in &tape.sites {
        match site {
            Site::Embedding { name, probe } => {
                let g = grad(probe)?.broadcast_mul(&c3)?;
                let d = g.dim(D::Minus1)?;
                let table = Tensor::zeros((vocab, d), DType::F32, &Device::Cpu)?;
                let sum =
                    table.index_add(&batch.inputs.flatten_all()?, &g.reshape((b * t, d))?, 0)?;
                out.insert(name.clone(), sum);
            }
            Site::Linear { input, outs } => {
                let din = input.dim(D::Minus1)?;
                let a = input.reshape((b * t, din))?;
                for (name, p) in outs {
                    let g = grad(p)?.broadcast_mul(&c3)?;
                    let dout = g.dim(D::Minus1)?;
                    let sum = g.reshape((b * t, dout))?.t()?.matmul(&a)?;
                    out.insert(name.clone(), sum);
                }
            }
            Site::Gain {
                name,
                normed,
                probe,
            } => {
                let per = (grad(probe)? * normed)?.sum(1)?; // (B, d)
                let sum = per.broadcast_mul(&factors.unsqueeze(1)?)?.sum(0)?;
                out.insert(name.clone(), sum);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::llama::{self, Batch, LlamaConfig, Params, Tape};
    use super::*;

    fn micro(hidden: usize, t: usize) -> LlamaConfig {
        crate::train::test_util::micro(hidden, 2, t)
    }

    fn sq_norm(t: &Tensor) -> f64 {
        f64::from(
            t.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
    }

    fn seqs() -> Vec<Vec<u32>> {
        vec![
            vec![1, 5, 9, 200, 7, 3, 5, 5, 9],
            vec![2, 8, 8, 299],
            vec![4, 4, 4, 4, 4, 4],
            vec![7, 100, 101, 102, 103, 104, 105, 106, 1, 2],
        ]
    }

    /// The oracle: one forward + backward per example, gradients read from the weights.
    fn per_example_loop(
        cfg: &LlamaConfig,
        params: &Params,
        seqs: &[Vec<u32>],
        pad_to: usize,
    ) -> Vec<BTreeMap<String, Tensor>> {
        seqs.iter()
            .map(|s| {
                // Pad to the batch's length with a dummy row so shapes match the batched pass.
                let dummy: Vec<u32> = vec![0; pad_to + 1];
                let batch = Batch::new(&[s.as_slice(), dummy.as_slice()]).unwrap();
                let logp = llama::forward(cfg, params, &batch, None).unwrap();
                let l = llama::example_losses(&logp, &batch)
                    .unwrap()
                    .get(0)
                    .unwrap();
                let grads = l.backward().unwrap();
                params
                    .vars
                    .iter()
                    .map(|(n, v)| (n.clone(), grads.get(v.as_tensor()).unwrap().clone()))
                    .collect()
            })
            .collect()
    }

    fn check(cfg: &LlamaConfig, clip: f64) {
        let params = Params::init(cfg, 11).unwrap();
        let seqs = seqs();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let batch = Batch::new(&refs).unwrap();
        let mut tape = Tape::default();
        let logp = llama::forward(cfg, &params, &batch, Some(&mut tape)).unwrap();
        let loss = llama::example_losses(&logp, &batch)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        // No weight gradient is computed in probe mode.
        for v in params.vars.values() {
            assert!(grads.get(v.as_tensor()).is_none());
        }
        let sq = per_example_sq_norms(&tape, &grads, &batch)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let oracle = per_example_loop(cfg, &params, &seqs, batch.t);
        // Layer by layer: embedding, every linear group, every RMSNorm gain.
        let sites = site_sq_norms(&tape, &grads, &batch).unwrap();
        assert_eq!(
            sites.iter().map(|(n, _)| n.len()).sum::<usize>(),
            params.vars.len()
        );
        for (names, got) in &sites {
            let got = got.to_vec1::<f32>().unwrap();
            for (i, g) in oracle.iter().enumerate() {
                let want: f64 = names.iter().map(|n| sq_norm(&g[n])).sum();
                let rel = (f64::from(got[i]) - want).abs() / want.max(1e-30);
                assert!(
                    rel < 1e-5,
                    "{names:?}, example {i}: {} vs {want} (rel {rel})",
                    got[i]
                );
            }
        }
        let mut want_sums: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let mut factors = Vec::new();
        for (i, g) in oracle.iter().enumerate() {
            let n2: f64 = g.values().map(sq_norm).sum();
            let rel = (f64::from(sq[i]) - n2).abs() / n2;
            assert!(
                rel < 1e-5,
                "example {i}: norm² {} vs oracle {n2} (rel {rel})",
                sq[i]
            );
            let c = (clip / (n2.sqrt() + 1e-6)).min(1.0);
            factors.push(c as f32);
            for (name, t) in g {
                let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                let e = want_sums
                    .entry(name.clone())
                    .or_insert_with(|| vec![0.0; v.len()]);
                for (a, x) in e.iter_mut().zip(v) {
                    *a += c as f32 * x;
                }
            }
        }
        let f = clip_factors(&Tensor::new(sq.as_slice(), &Device::Cpu).unwrap(), clip).unwrap();
        let sums = clipped_sums(&tape, &grads, &batch, &f, cfg.vocab_size).unwrap();
        assert_eq!(
            sums.len(),
            params.vars.len(),
            "every parameter has a clipped sum"
        );
        for (name, want) in &want_sums {
            let got: Vec<f32> = sums[name].flatten_all().unwrap().to_vec1().unwrap();
            let scale = want
                .iter()
                .map(|x| x.abs())
                .fold(0.0f32, f32::max)
                .max(1e-12);
            let worst = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs() / scale)
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-5,
                "{name}: clipped sum differs by {worst} (relative to max)"
            );
        }
    }

    #[test]
    fn non_finite_norms_are_dropped_not_passed() {
        let sq = Tensor::new(&[4.0f32, f32::NAN, f32::INFINITY, 0.25], &Device::Cpu).unwrap();
        let c = clip_factors(&sq, 1.0).unwrap().to_vec1::<f32>().unwrap();
        assert!(
            (c[0] - 0.5).abs() < 1e-6 && c[1] == 0.0 && c[2] == 0.0 && c[3] == 1.0,
            "{c:?}"
        );
    }

    #[test]
    fn ghost_norms_match_the_per_example_loop() {
        // T small against d_in·d_out → ghost (Gram) norms for the linear maps.
        check(&micro(32, 16), 0.05);
    }

    #[test]
    fn materialised_norms_match_the_per_example_loop() {
        // d tiny → materialised per-example gradients.
        check(&micro(8, 16), 1e9);
    }
}
