//! The trainable Llama-architecture language model (RMSNorm, rotary positions, SwiGLU, untied
//! embeddings), written from differentiable primitive candle ops only.
//!
//! candle-nn's fused `softmax_last_dim`, `rms_norm`, `layer_norm`, `sdpa` and `rope*` have no
//! backward and silently cut gradients (reference/dp.md §2.4), so nothing here calls them; a
//! test asserts that every parameter receives a non-zero gradient.
//!
//! Reference: Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models"
//! (arXiv 2302.13971); RoPE: Su et al. 2021 (arXiv 2104.09864); SwiGLU: Shazeer 2020
//! (arXiv 2002.05202); RMSNorm: Zhang & Sennrich 2019 (arXiv 1910.07467). Parameters are named as in
//! Hugging Face's `LlamaForCausalLM`, kept in a name-ordered map, and initialised from
//! phiprobe's own seeded generator (candle's CPU generator cannot be seeded).
//!
//! Three fused operations with analytic backward passes (`ops.rs`: attention softmax, rotary
//! embedding and the log-probability of the target token) replace composites.
//!
//! The forward pass optionally records a [`Tape`] for DP-SGD: weights are then detached (so the
//! backward pass computes activation gradients only) and a zero-valued probe variable is added
//! to the output of every parameterised operation; its gradient is the per-example output
//! gradient that `dp.rs` turns into per-example norms and clipped sums.

use crate::stats::Rng;
use candle_core::{D, DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Architecture of a trainable model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size (rows of the embedding and output matrices).
    pub vocab_size: usize,
    /// Model width.
    pub hidden: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads (key/value heads are the same number).
    pub heads: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Longest training sequence (tokens, including BOS).
    pub max_len: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
}

/// Model size presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// ≈ 60 k parameters: width 32, 2 blocks, vocabulary 512 (tests and fixtures).
    Micro,
    /// ≈ 1.3 M parameters: width 128, 4 blocks, vocabulary 2,048 (the demo's target).
    Tiny,
    /// ≈ 7 M parameters: width 256, 6 blocks, vocabulary 4,096.
    Small,
    /// ≈ 30 M parameters: width 512, 8 blocks, vocabulary 8,192.
    Base,
}

impl Preset {
    /// The default peak learning rate of the preset (smaller for larger models).
    pub fn default_lr(self) -> f64 {
        match self {
            Preset::Micro | Preset::Tiny => 3e-3,
            Preset::Small => 1.5e-3,
            Preset::Base => 6e-4,
        }
    }

    /// The architecture of the preset.
    pub fn config(self) -> LlamaConfig {
        let (vocab_size, hidden, layers, heads, intermediate) = match self {
            Preset::Micro => (512, 32, 2, 2, 88),
            Preset::Tiny => (2048, 128, 4, 4, 352),
            Preset::Small => (4096, 256, 6, 8, 704),
            Preset::Base => (8192, 512, 8, 8, 1376),
        };
        LlamaConfig {
            vocab_size,
            hidden,
            layers,
            heads,
            intermediate,
            max_len: 256,
            rope_theta: 10_000.0,
            rms_eps: 1e-5,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Micro => "micro",
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Base => "base",
        }
    }
}

impl LlamaConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Checks the shape rules (head width even and dividing the model width).
    pub fn validate(&self) -> Result<(), String> {
        if self.heads == 0
            || !self.hidden.is_multiple_of(self.heads)
            || !self.head_dim().is_multiple_of(2)
        {
            return Err(format!(
                "width {} must split into {} heads of even width",
                self.hidden, self.heads
            ));
        }
        if self.vocab_size < 260 || self.layers == 0 || self.max_len < 8 {
            return Err("vocabulary ≥ 260, ≥ 1 block and context ≥ 8 are required".into());
        }
        Ok(())
    }

    /// Parameter names and shapes in name order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f, v) = (self.hidden, self.intermediate, self.vocab_size);
        let mut out = vec![
            ("lm_head.weight".to_owned(), vec![v, d]),
            ("model.embed_tokens.weight".to_owned(), vec![v, d]),
            ("model.norm.weight".to_owned(), vec![d]),
        ];
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), vec![d]));
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![d]));
            out.push((format!("{p}.self_attn.q_proj.weight"), vec![d, d]));
            out.push((format!("{p}.self_attn.k_proj.weight"), vec![d, d]));
            out.push((format!("{p}.self_attn.v_proj.weight"), vec![d, d]));
            out.push((format!("{p}.self_attn.o_proj.weight"), vec![d, d]));
            out.push((format!("{p}.mlp.gate_proj.weight"), vec![f, d]));
            out.push((format!("{p}.mlp.up_proj.weight"), vec![f, d]));
            out.push((format!("{p}.mlp.down_proj.weight"), vec![d, f]));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// A Hugging Face `config.json` for `LlamaForCausalLM` with these dimensions.
    pub fn hf_config(&self, bos: u32, eos: u32) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.heads,
            "head_dim": self.head_dim(),
            "hidden_act": "silu",
            "max_position_embeddings": self.max_len,
            "rms_norm_eps": self.rms_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": false,
            "attention_bias": false,
            "mlp_bias": false,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "torch_dtype": "float32",
            "initializer_range": 0.02,
            "use_cache": true,
        })
    }
}

/// Whether a parameter is an RMSNorm gain (no weight decay; per-example gradient Σₜ gₜ ⊙ x̂ₜ).
pub fn is_gain(name: &str) -> bool {
    name.ends_with("norm.weight")
}

/// The trainable parameters, in name order.
pub struct Params {
    /// Variables by Hugging Face name.
    pub vars: BTreeMap<String, Var>,
}

impl Params {
    /// Seeded initialisation: N(0, 0.02²) for matrices (output projections of each block scaled
    /// by 1/√(2·layers)), ones for RMSNorm gains. Each parameter has its own stream derived from
    /// (seed, name), so the draw does not depend on iteration order.
    pub fn init(cfg: &LlamaConfig, seed: u64) -> candle_core::Result<Self> {
        let mut vars = BTreeMap::new();
        let resid = 1.0 / (2.0 * cfg.layers as f64).sqrt();
        for (name, shape) in cfg.shapes() {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if is_gain(&name) {
                vec![1.0; n]
            } else {
                let std = if name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight") {
                    0.02 * resid
                } else {
                    0.02
                };
                let mut rng = Rng::derive(seed, &format!("init/{name}"), 0);
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            };
            let t = Tensor::from_vec(data, shape, &Device::Cpu)?;
            vars.insert(name, Var::from_tensor(&t)?);
        }
        Ok(Self { vars })
    }

    /// Builds parameters from named tensors (a checkpoint), checking names and shapes.
    pub fn from_tensors(
        cfg: &LlamaConfig,
        mut tensors: std::collections::HashMap<String, Tensor>,
    ) -> Result<Self, String> {
        let mut vars = BTreeMap::new();
        for (name, shape) in cfg.shapes() {
            let t = tensors
                .remove(&name)
                .ok_or_else(|| format!("tensor '{name}' is missing"))?;
            if t.dims() != shape.as_slice() {
                return Err(format!(
                    "tensor '{name}' has shape {:?}, expected {shape:?}",
                    t.dims()
                ));
            }
            let t = t.to_dtype(DType::F32).map_err(|e| e.to_string())?;
            vars.insert(name, Var::from_tensor(&t).map_err(|e| e.to_string())?);
        }
        Ok(Self { vars })
    }

    /// The variable of a parameter.
    pub fn var(&self, name: &str) -> &Var {
        &self.vars[name]
    }

    /// Named tensors (for saving).
    pub fn tensors(&self) -> std::collections::HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }
}

/// A padded batch of training sequences.
pub struct Batch {
    /// Input ids, (B, T).
    pub inputs: Tensor,
    /// Next-token targets, (B, T) (0 at padded positions).
    pub targets: Tensor,
    /// 1 where a target is real, 0 at padding, (B, T).
    pub mask: Tensor,
    /// Input ids on the host, row-major (B·T).
    pub host_inputs: Vec<u32>,
    /// Targets on the host, row-major (B·T).
    pub host_targets: std::sync::Arc<Vec<u32>>,
    /// Real targets per row.
    pub counts: Vec<usize>,
    /// Rows.
    pub b: usize,
    /// Padded length.
    pub t: usize,
}

impl Batch {
    /// Builds a right-padded batch from token sequences (each ≥ 2 tokens; the last token of a
    /// row is only a target).
    pub fn new(seqs: &[&[u32]]) -> candle_core::Result<Self> {
        let b = seqs.len();
        let t = seqs
            .iter()
            .map(|s| s.len().saturating_sub(1))
            .max()
            .unwrap_or(1)
            .max(1);
        let mut inputs = vec![0u32; b * t];
        let mut targets = vec![0u32; b * t];
        let mut mask = vec![0f32; b * t];
        let mut counts = Vec::with_capacity(b);
        for (i, s) in seqs.iter().enumerate() {
            let n = s.len().saturating_sub(1);
            for j in 0..n {
                inputs[i * t + j] = s[j];
                targets[i * t + j] = s[j + 1];
                mask[i * t + j] = 1.0;
            }
            counts.push(n);
        }
        let dev = Device::Cpu;
        Ok(Self {
            inputs: Tensor::from_vec(inputs.clone(), (b, t), &dev)?,
            targets: Tensor::from_vec(targets.clone(), (b, t), &dev)?,
            host_targets: std::sync::Arc::new(targets),
            mask: Tensor::from_vec(mask, (b, t), &dev)?,
            host_inputs: inputs,
            counts,
            b,
            t,
        })
    }

    /// Real target tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// One parameterised operation recorded for per-example gradients.
pub enum Site {
    /// `model.embed_tokens`: the probe sits on the looked-up rows.
    Embedding {
        /// Parameter name.
        name: String,
        /// Probe on the output, (B, T, d).
        probe: Var,
    },
    /// Linear maps sharing one input.
    Linear {
        /// The input activation, (B, T, d_in), detached.
        input: Tensor,
        /// Parameter names and the probes on their outputs, (B, T, d_out).
        outs: Vec<(String, Var)>,
    },
    /// An RMSNorm gain.
    Gain {
        /// Parameter name.
        name: String,
        /// The normalised input x̂, (B, T, d), detached.
        normed: Tensor,
        /// Probe on the output, (B, T, d).
        probe: Var,
    },
}

/// Sites recorded by a forward pass in probe mode.
#[derive(Default)]
pub struct Tape {
    /// In forward order.
    pub sites: Vec<Site>,
}

/// Cosine and sine tables (T, head_dim), row-major, for Hugging Face's non-interleaved RoPE.
fn rope_tables(cfg: &LlamaConfig, t: usize) -> (Arc<Vec<f32>>, Arc<Vec<f32>>) {
    let hd = cfg.head_dim();
    let half = hd / 2;
    let mut cos = Vec::with_capacity(t * hd);
    let mut sin = Vec::with_capacity(t * hd);
    for pos in 0..t {
        let mut c = Vec::with_capacity(half);
        let mut s = Vec::with_capacity(half);
        for i in 0..half {
            let inv = 1.0 / cfg.rope_theta.powf((2 * i) as f64 / hd as f64);
            let a = pos as f64 * inv;
            c.push(a.cos() as f32);
            s.push(a.sin() as f32);
        }
        cos.extend_from_slice(&c);
        cos.extend_from_slice(&c);
        sin.extend_from_slice(&s);
        sin.extend_from_slice(&s);
    }
    (Arc::new(cos), Arc::new(sin))
}

struct Pass<'a> {
    params: &'a Params,
    tape: Option<&'a mut Tape>,
    b: usize,
    t: usize,
}

impl Pass<'_> {
    fn weight(&self, name: &str) -> Tensor {
        let w = self.params.var(name).as_tensor();
        if self.tape.is_some() {
            w.detach()
        } else {
            w.clone()
        }
    }

    fn probe(&self, shape: (usize, usize, usize)) -> candle_core::Result<Var> {
        Var::zeros(shape, DType::F32, &Device::Cpu)
    }

    /// `x` (B, T, d_in) through the linear maps `names`, each y = x·Wᵀ.
    fn linear(&mut self, x: &Tensor, names: &[String]) -> candle_core::Result<Vec<Tensor>> {
        let din = x.dim(D::Minus1)?;
        let flat = x.reshape((self.b * self.t, din))?;
        let mut ys = Vec::with_capacity(names.len());
        let mut outs = Vec::new();
        for name in names {
            let w = self.weight(name);
            let dout = w.dim(0)?;
            let mut y = flat.matmul(&w.t()?)?.reshape((self.b, self.t, dout))?;
            if self.tape.is_some() {
                let p = self.probe((self.b, self.t, dout))?;
                y = (y + p.as_tensor())?;
                outs.push((name.clone(), p));
            }
            ys.push(y);
        }
        if let Some(tape) = self.tape.as_deref_mut() {
            tape.sites.push(Site::Linear {
                input: x.detach(),
                outs,
            });
        }
        Ok(ys)
    }

    fn rms_norm(&mut self, x: &Tensor, name: &str, eps: f64) -> candle_core::Result<Tensor> {
        let inv = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
        let normed = x.broadcast_mul(&inv)?;
        let mut y = normed.broadcast_mul(&self.weight(name))?;
        if self.tape.is_some() {
            let d = x.dim(D::Minus1)?;
            let p = self.probe((self.b, self.t, d))?;
            y = (y + p.as_tensor())?;
            if let Some(tape) = self.tape.as_deref_mut() {
                tape.sites.push(Site::Gain {
                    name: name.to_owned(),
                    normed: normed.detach(),
                    probe: p,
                });
            }
        }
        Ok(y)
    }
}

/// Per-token log-probabilities of the batch's targets, (B, T) (meaningless at padding; multiply
/// by `batch.mask`). With `tape`, weights are detached and probes recorded.
pub fn forward(
    cfg: &LlamaConfig,
    params: &Params,
    batch: &Batch,
    tape: Option<&mut Tape>,
) -> candle_core::Result<Tensor> {
    let (b, t) = (batch.b, batch.t);
    let (d, h, hd) = (cfg.hidden, cfg.heads, cfg.head_dim());
    let mut pass = Pass { params, tape, b, t };
    // Embedding lookup.
    let emb = pass.weight("model.embed_tokens.weight");
    let mut x = emb
        .index_select(&batch.inputs.flatten_all()?, 0)?
        .reshape((b, t, d))?;
    if pass.tape.is_some() {
        let p = pass.probe((b, t, d))?;
        x = (x + p.as_tensor())?;
        if let Some(tape) = pass.tape.as_deref_mut() {
            tape.sites.push(Site::Embedding {
                name: "model.embed_tokens.weight".into(),
                probe: p,
            });
        }
    }
    let (cos, sin) = rope_tables(cfg, t);
    let mut mask = vec![0f32; t * t];
    for i in 0..t {
        for j in i + 1..t {
            mask[i * t + j] = -1e9;
        }
    }
    let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu)?;
    let scale = 1.0 / (hd as f64).sqrt();
    for l in 0..cfg.layers {
        let p = format!("model.layers.{l}");
        let hn = pass.rms_norm(&x, &format!("{p}.input_layernorm.weight"), cfg.rms_eps)?;
        let names: Vec<String> = ["q", "k", "v"]
            .iter()
            .map(|n| format!("{p}.self_attn.{n}_proj.weight"))
            .collect();
        let qkv = pass.linear(&hn, &names)?;
        let heads = |y: &Tensor| -> candle_core::Result<Tensor> {
            y.reshape((b, t, h, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = super::ops::rope(&heads(&qkv[0])?, cos.clone(), sin.clone())?;
        let k = super::ops::rope(&heads(&qkv[1])?, cos.clone(), sin.clone())?;
        let v = heads(&qkv[2])?;
        let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
        let att = super::ops::softmax(&att)?;
        let ctx = att
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, d))?;
        let o = pass.linear(&ctx, &[format!("{p}.self_attn.o_proj.weight")])?;
        x = (x + &o[0])?;
        let hn = pass.rms_norm(
            &x,
            &format!("{p}.post_attention_layernorm.weight"),
            cfg.rms_eps,
        )?;
        let gu = pass.linear(
            &hn,
            &[
                format!("{p}.mlp.gate_proj.weight"),
                format!("{p}.mlp.up_proj.weight"),
            ],
        )?;
        let act = (gu[0].silu()? * &gu[1])?;
        let down = pass.linear(&act, &[format!("{p}.mlp.down_proj.weight")])?;
        x = (x + &down[0])?;
    }
    let hn = pass.rms_norm(&x, "model.norm.weight", cfg.rms_eps)?;
    let logits = pass.linear(&hn, &["lm_head.weight".to_owned()])?.remove(0);
    let flat = logits.reshape((b * t, cfg.vocab_size))?;
    super::ops::token_logprob(&flat, batch.host_targets.clone())?.reshape((b, t))
}

/// Mean negative log-likelihood over the batch's real target tokens (non-DP training loss).
pub fn mean_loss(token_logp: &Tensor, batch: &Batch) -> candle_core::Result<Tensor> {
    let total = (token_logp * &batch.mask)?.sum_all()?;
    total.affine(-1.0 / batch.tokens().max(1) as f64, 0.0)
}

/// Per-example losses Lᵢ = mean NLL over the tokens of row i, (B). DP-SGD clips their gradients.
pub fn example_losses(token_logp: &Tensor, batch: &Batch) -> candle_core::Result<Tensor> {
    let inv: Vec<f32> = batch
        .counts
        .iter()
        .map(|&c| -1.0 / c.max(1) as f32)
        .collect();
    let inv = Tensor::from_vec(inv, batch.b, &Device::Cpu)?;
    (token_logp * &batch.mask)?.sum(1)?.mul(&inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro() -> LlamaConfig {
        crate::train::test_util::micro(16, 2, 16)
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        let cfg = micro();
        let params = Params::init(&cfg, 3).unwrap();
        let seqs: Vec<Vec<u32>> = vec![vec![1, 5, 9, 200, 7, 3], vec![2, 8, 8, 299]];
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let batch = Batch::new(&refs).unwrap();
        let logp = forward(&cfg, &params, &batch, None).unwrap();
        let loss = mean_loss(&logp, &batch).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in &params.vars {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{name}: gradient norm {norm}"
            );
        }
    }

    #[test]
    fn shapes_are_name_ordered_and_counted() {
        let cfg = Preset::Tiny.config();
        let names: Vec<String> = cfg.shapes().into_iter().map(|(n, _)| n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let n = cfg.parameter_count();
        assert!((1_000_000..2_000_000).contains(&n), "{n}");
        let base = Preset::Base.config().parameter_count();
        assert!((25_000_000..40_000_000).contains(&base), "{base}");
    }

    #[test]
    fn initialisation_is_seeded() {
        let cfg = micro();
        let a = Params::init(&cfg, 5).unwrap();
        let b = Params::init(&cfg, 5).unwrap();
        let c = Params::init(&cfg, 6).unwrap();
        let w = |p: &Params| {
            p.var("model.layers.1.mlp.up_proj.weight")
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
    }

    #[test]
    fn padding_does_not_change_a_row() {
        let cfg = micro();
        let params = Params::init(&cfg, 3).unwrap();
        let long: Vec<u32> = vec![1, 5, 9, 200, 7, 3, 4, 4, 11];
        let short: Vec<u32> = vec![2, 8, 8, 299];
        let alone = Batch::new(&[&short]).unwrap();
        let both = Batch::new(&[&long, &short]).unwrap();
        let a = forward(&cfg, &params, &alone, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let b = forward(&cfg, &params, &both, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for j in 0..3 {
            assert!((a[0][j] - b[1][j]).abs() < 1e-5);
        }
    }
}
