//! phiprobe's own decoder forward passes (llama family, Qwen2, GPT-2) on candle-core ops.
//!
//! candle-transformers' models return last-position logits only; probes need every position, so the
//! forward pass here returns the final hidden states of every position and leaves the output head to
//! the chunked scorer ([`super::score`]). Weights are looked up by their Hugging Face names; the GGUF
//! loader maps its names onto those. Projections sharing an input are fused at load (q|k|v, gate|up) so
//! each block runs as few large matrix products as possible.

use candle_core::{DType, Device, Tensor};

use super::config::{ArchConfig, Family};

/// Supplies f32 weights by Hugging Face tensor name.
pub trait WeightSource {
    /// The weight's shape and data, or `None` when the checkpoint has no such tensor.
    fn fetch(&mut self, name: &str) -> crate::Result<Option<(Vec<usize>, Vec<f32>)>>;
    /// Whether the checkpoint has the tensor.
    fn has(&self, name: &str) -> bool;
    /// The file or folder named in errors.
    fn path(&self) -> &std::path::Path;
}

pub(crate) fn ce(e: candle_core::Error) -> crate::Error {
    crate::Error::Compute(e.to_string())
}

struct Loader<'a> {
    src: &'a mut dyn WeightSource,
}

impl Loader<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> crate::Result<Tensor> {
        let path = self.src.path().to_path_buf();
        let (got, data) = self.src.fetch(name)?.ok_or_else(|| crate::Error::Model {
            path: path.clone(),
            message: format!(
                "tensor '{name}' is missing; the checkpoint does not match its configuration"
            ),
        })?;
        if got != shape {
            return Err(crate::Error::Model {
                path,
                message: format!(
                    "tensor '{name}' has shape {got:?} but the configuration implies {shape:?}"
                ),
            });
        }
        Tensor::from_vec(data, shape, &Device::Cpu).map_err(ce)
    }
    fn opt(&mut self, name: &str, shape: &[usize]) -> crate::Result<Option<Tensor>> {
        if self.src.has(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
    /// A `[out, in]` linear weight, returned transposed and contiguous as `[in, out]`.
    fn linear_t(&mut self, name: &str, out: usize, inp: usize) -> crate::Result<Tensor> {
        self.get(name, &[out, inp])?
            .t()
            .and_then(|t| t.contiguous())
            .map_err(ce)
    }
}

enum Norm {
    Rms { w: Tensor, eps: f32 },
    Layer { w: Tensor, b: Tensor, eps: f32 },
}

impl Norm {
    fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Norm::Rms { w, eps } => candle_nn::ops::rms_norm(x, w, *eps),
            Norm::Layer { w, b, eps } => candle_nn::ops::layer_norm(x, w, b, *eps),
        }
    }
}

struct Block {
    norm1: Norm,
    /// `[hidden, (heads + 2·kv_heads)·head_dim]`.
    qkv_t: Tensor,
    qkv_b: Option<Tensor>,
    o_t: Tensor,
    o_b: Option<Tensor>,
    norm2: Norm,
    /// Llama: `[hidden, 2·intermediate]` (gate | up); GPT-2: `[hidden, intermediate]`.
    up_t: Tensor,
    up_b: Option<Tensor>,
    down_t: Tensor,
    down_b: Option<Tensor>,
}

/// Key/value cache of one block: `[batch, kv_heads, past, head_dim]` each.
pub type KvCache = Vec<Option<(Tensor, Tensor)>>;

/// A loaded decoder.
pub struct Transformer {
    /// The architecture.
    pub cfg: ArchConfig,
    embed: Tensor,
    positions: Option<Tensor>,
    blocks: Vec<Block>,
    final_norm: Norm,
    /// Output head, `[hidden, vocab]`.
    pub head_t: Tensor,
    cos: Tensor,
    sin: Tensor,
}

fn linear(x: &Tensor, w_t: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let y = x.matmul(w_t)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// Most positions a RoPE table is built for (memory bound independent of the declared context).
pub const ROPE_TABLE_MAX: usize = 1 << 16;

fn rope_tables(cfg: &ArchConfig) -> candle_core::Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let mut inv: Vec<f64> = (0..half)
        .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64))
        .collect();
    if let Some(s) = cfg.rope_scaling {
        let low_wavelen = s.original_max_positions / s.low_freq_factor;
        let high_wavelen = s.original_max_positions / s.high_freq_factor;
        for f in &mut inv {
            let wavelen = 2.0 * std::f64::consts::PI / *f;
            if wavelen > low_wavelen {
                *f /= s.factor;
            } else if wavelen >= high_wavelen {
                let smooth = (s.original_max_positions / wavelen - s.low_freq_factor)
                    / (s.high_freq_factor - s.low_freq_factor);
                *f = (1.0 - smooth) * *f / s.factor + smooth * *f;
            }
        }
    }
    // The declared context comes from the (untrusted) configuration: tables stop at ROPE_TABLE_MAX
    // positions and longer sequences are refused (`Decoder::check_len`).
    let n = cfg.max_positions.min(ROPE_TABLE_MAX);
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for p in 0..n {
        for &f in &inv {
            // Angles in f32 as the reference implementations compute them, then cos/sin.
            let a = (p as f32) * (f as f32);
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (n, half), &Device::Cpu)?,
        Tensor::from_vec(sin, (n, half), &Device::Cpu)?,
    ))
}

impl Transformer {
    /// Loads the weights named for `cfg` from `src`.
    ///
    /// Kept whole: weights are loaded tensor by tensor in layer order, each checked against the
    /// configuration (untrusted) before it is used.
    pub fn load(cfg: ArchConfig, src: &mut dyn WeightSource) -> crate::Result<Self> {
        // The layer count comes from the configuration, which is untrusted: before anything is
        // sized by it, the checkpoint must hold the last layer it claims.
        let last = cfg.layers.saturating_sub(1);
        let has_last = match cfg.family {
            Family::Llama | Family::Qwen2 => {
                src.has(&format!("model.layers.{last}.input_layernorm.weight"))
            }
            Family::Gpt2 => ["transformer.", ""]
                .iter()
                .any(|pre| src.has(&format!("{pre}h.{last}.ln_1.weight"))),
        };
        if cfg.layers == 0 || !has_last {
            return Err(crate::Error::Model {
                path: src.path().to_path_buf(),
                message: format!(
                    "the configuration claims {} layers but the weights hold no layer {last}; the configuration does not match the checkpoint",
                    cfg.layers
                ),
            });
        }
        let mut l = Loader { src };
        let (d, v, hd) = (cfg.hidden, cfg.vocab_size, cfg.head_dim);
        let (q_out, kv_out) = (cfg.heads * hd, cfg.kv_heads * hd);
        let eps = cfg.norm_eps as f32;
        let cat = |ts: &[Tensor]| Tensor::cat(ts, 1).map_err(ce);
        let mut blocks = Vec::new();
        let (embed, positions, final_norm, head_t);
        match cfg.family {
            Family::Llama | Family::Qwen2 => {
                embed = l.get("model.embed_tokens.weight", &[v, d])?;
                positions = None;
                for i in 0..cfg.layers {
                    let p = format!("model.layers.{i}");
                    let q = l.linear_t(&format!("{p}.self_attn.q_proj.weight"), q_out, d)?;
                    let k = l.linear_t(&format!("{p}.self_attn.k_proj.weight"), kv_out, d)?;
                    let vv = l.linear_t(&format!("{p}.self_attn.v_proj.weight"), kv_out, d)?;
                    let qkv_b = if cfg.qkv_bias {
                        let qb = l.get(&format!("{p}.self_attn.q_proj.bias"), &[q_out])?;
                        let kb = l.get(&format!("{p}.self_attn.k_proj.bias"), &[kv_out])?;
                        let vb = l.get(&format!("{p}.self_attn.v_proj.bias"), &[kv_out])?;
                        Some(Tensor::cat(&[qb, kb, vb], 0).map_err(ce)?)
                    } else {
                        None
                    };
                    let gate =
                        l.linear_t(&format!("{p}.mlp.gate_proj.weight"), cfg.intermediate, d)?;
                    let up = l.linear_t(&format!("{p}.mlp.up_proj.weight"), cfg.intermediate, d)?;
                    blocks.push(Block {
                        norm1: Norm::Rms {
                            w: l.get(&format!("{p}.input_layernorm.weight"), &[d])?,
                            eps,
                        },
                        qkv_t: cat(&[q, k, vv])?,
                        qkv_b,
                        o_t: l.linear_t(&format!("{p}.self_attn.o_proj.weight"), d, q_out)?,
                        o_b: if cfg.out_bias {
                            Some(l.get(&format!("{p}.self_attn.o_proj.bias"), &[d])?)
                        } else {
                            None
                        },
                        norm2: Norm::Rms {
                            w: l.get(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
                            eps,
                        },
                        up_t: cat(&[gate, up])?,
                        up_b: None,
                        down_t: l.linear_t(
                            &format!("{p}.mlp.down_proj.weight"),
                            d,
                            cfg.intermediate,
                        )?,
                        down_b: None,
                    });
                }
                final_norm = Norm::Rms {
                    w: l.get("model.norm.weight", &[d])?,
                    eps,
                };
                head_t = match (cfg.tied_embeddings, l.src.has("lm_head.weight")) {
                    (false, _) | (true, true) => l.linear_t("lm_head.weight", v, d)?,
                    (true, false) => embed.t().and_then(|t| t.contiguous()).map_err(ce)?,
                };
            }
            Family::Gpt2 => {
                let pre = if l.src.has("transformer.wte.weight") {
                    "transformer."
                } else {
                    ""
                };
                embed = l.get(&format!("{pre}wte.weight"), &[v, d])?;
                positions = Some(l.get(&format!("{pre}wpe.weight"), &[cfg.max_positions, d])?);
                let i_dim = cfg.intermediate;
                for i in 0..cfg.layers {
                    let p = format!("{pre}h.{i}");
                    let ln = |l: &mut Loader, n: &str| -> crate::Result<Norm> {
                        Ok(Norm::Layer {
                            w: l.get(&format!("{p}.{n}.weight"), &[d])?,
                            b: l.get(&format!("{p}.{n}.bias"), &[d])?,
                            eps,
                        })
                    };
                    // GPT-2's Conv1D stores weights as [in, out] already.
                    blocks.push(Block {
                        norm1: ln(&mut l, "ln_1")?,
                        qkv_t: l.get(&format!("{p}.attn.c_attn.weight"), &[d, 3 * d])?,
                        qkv_b: Some(l.get(&format!("{p}.attn.c_attn.bias"), &[3 * d])?),
                        o_t: l.get(&format!("{p}.attn.c_proj.weight"), &[d, d])?,
                        o_b: Some(l.get(&format!("{p}.attn.c_proj.bias"), &[d])?),
                        norm2: ln(&mut l, "ln_2")?,
                        up_t: l.get(&format!("{p}.mlp.c_fc.weight"), &[d, i_dim])?,
                        up_b: Some(l.get(&format!("{p}.mlp.c_fc.bias"), &[i_dim])?),
                        down_t: l.get(&format!("{p}.mlp.c_proj.weight"), &[i_dim, d])?,
                        down_b: Some(l.get(&format!("{p}.mlp.c_proj.bias"), &[d])?),
                    });
                }
                final_norm = Norm::Layer {
                    w: l.get(&format!("{pre}ln_f.weight"), &[d])?,
                    b: l.get(&format!("{pre}ln_f.bias"), &[d])?,
                    eps,
                };
                head_t = match l.opt("lm_head.weight", &[v, d])? {
                    Some(h) => h.t().and_then(|t| t.contiguous()).map_err(ce)?,
                    None => embed.t().and_then(|t| t.contiguous()).map_err(ce)?,
                };
            }
        }
        let (cos, sin) = if cfg.family == Family::Gpt2 {
            let z = Tensor::zeros((1, 1), DType::F32, &Device::Cpu).map_err(ce)?;
            (z.clone(), z)
        } else {
            rope_tables(&cfg).map_err(ce)?
        };
        Ok(Transformer {
            cfg,
            embed,
            positions,
            blocks,
            final_norm,
            head_t,
            cos,
            sin,
        })
    }

    /// Runs the decoder over `ids` (`[batch, t]`) and returns the final-norm hidden states,
    /// `[batch·t, hidden]`.
    ///
    /// `mask` is additive, broadcastable to `[batch, 1, t, past + t]`. Rotary positions run from
    /// `past` for every row (RoPE scores depend only on position differences, so left padding that is
    /// masked out changes nothing); GPT-2's absolute positions come from `abs_pos` (`[batch·t]`).
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        past: usize,
        abs_pos: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let cfg = &self.cfg;
        let (h, kvh, hd) = (cfg.heads, cfg.kv_heads, cfg.head_dim);
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?;
        if let (Some(wpe), Some(pos)) = (&self.positions, abs_pos) {
            x = (x + wpe.index_select(pos, 0)?)?;
        }
        let rope = if cfg.family == Family::Gpt2 {
            None
        } else {
            Some((self.cos.narrow(0, past, t)?, self.sin.narrow(0, past, t)?))
        };
        let scale = 1.0 / (hd as f64).sqrt();
        for (i, blk) in self.blocks.iter().enumerate() {
            let a = blk.norm1.apply(&x)?;
            let qkv = linear(&a, &blk.qkv_t, blk.qkv_b.as_ref())?;
            let split = |start: usize, heads: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(1, start * hd, heads * hd)?
                    .reshape((b, t, heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let mut q = split(0, h)?;
            let mut k = split(h, kvh)?;
            let mut v = split(h + kvh, kvh)?;
            if let Some((cos, sin)) = &rope {
                q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
                k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
            }
            if let Some(cache) = cache.as_deref_mut() {
                if let Some((pk, pv)) = &cache[i] {
                    k = Tensor::cat(&[pk, &k], 2)?;
                    v = Tensor::cat(&[pv, &v], 2)?;
                }
                cache[i] = Some((k.clone(), v.clone()));
            }
            // Grouped-query attention without copying K/V per head: the `rep` query heads that share
            // a key/value head are stacked along the query axis, so one product serves them all.
            let rep = h / kvh;
            let tk = k.dim(2)?;
            let q = (q * scale)?.reshape((b, kvh, rep * t, hd))?;
            let att = q.matmul(&k.t()?)?.reshape((b, kvh, rep, t, tk))?;
            let att = att.broadcast_add(&mask.unsqueeze(2)?)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?.reshape((b, kvh, rep * t, tk))?;
            let o = att
                .matmul(&v)?
                .reshape((b, h, t, hd))?
                .transpose(1, 2)?
                .reshape((b * t, h * hd))?;
            x = (x + linear(&o, &blk.o_t, blk.o_b.as_ref())?)?;
            let m = blk.norm2.apply(&x)?;
            let up = linear(&m, &blk.up_t, blk.up_b.as_ref())?;
            let act = match cfg.family {
                Family::Gpt2 => up.gelu()?,
                _ => {
                    let n = cfg.intermediate;
                    (candle_nn::ops::silu(&up.narrow(1, 0, n)?)? * up.narrow(1, n, n)?)?
                }
            };
            x = (x + linear(&act, &blk.down_t, blk.down_b.as_ref())?)?;
        }
        self.final_norm.apply(&x)
    }

    /// Number of parameters actually held (embedding counted once when tied).
    pub fn parameter_count(&self) -> u64 {
        self.cfg.parameter_count()
    }
}

/// The additive causal mask for right-padded scoring: `[1, 1, t, t]`.
pub fn causal_mask(t: usize) -> candle_core::Result<Tensor> {
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(data, (1, 1, t, t), &Device::Cpu)
}

/// The additive mask for left-padded generation: `[b, 1, t, past + t]`; row `r` ignores its first
/// `pads[r]` key positions, and every query always sees itself (so padded rows stay finite).
pub fn padded_mask(pads: &[usize], past: usize, t: usize) -> candle_core::Result<Tensor> {
    let total = past + t;
    let mut data = Vec::with_capacity(pads.len() * t * total);
    for &pad in pads {
        for i in 0..t {
            let qpos = past + i;
            for j in 0..total {
                let ok = j == qpos || (j <= qpos && j >= pad);
                data.push(if ok { 0.0 } else { f32::NEG_INFINITY });
            }
        }
    }
    Tensor::from_vec(data, (pads.len(), 1, t, total), &Device::Cpu)
}
