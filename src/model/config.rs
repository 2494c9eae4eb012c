//! Architecture hyper-parameters, read from a Hugging Face `config.json` or from GGUF metadata.

use std::path::Path;

use serde_json::Value as Json;

use super::gguf;

/// The architecture families phiprobe carries forward passes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama 2/3, Mistral (no sliding window), SmolLM, TinyLlama: RMSNorm, RoPE, gated SiLU MLP.
    Llama,
    /// Qwen2: the llama block with biases on the q/k/v projections.
    Qwen2,
    /// GPT-2: LayerNorm, learned absolute positions, GELU (tanh) MLP, fused QKV.
    Gpt2,
}

impl Family {
    /// The name used in reports (Hugging Face `model_type`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Gpt2 => "gpt2",
        }
    }
}

/// Llama 3 style RoPE frequency rescaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    /// Overall factor.
    pub factor: f64,
    /// Low-frequency factor.
    pub low_freq_factor: f64,
    /// High-frequency factor.
    pub high_freq_factor: f64,
    /// Context length the base model was trained on.
    pub original_max_positions: f64,
}

/// Everything the forward pass needs to know about the architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchConfig {
    /// Family.
    pub family: Family,
    /// Rows of the embedding matrix.
    pub vocab_size: usize,
    /// Model width.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Normalisation epsilon.
    pub norm_eps: f64,
    /// RoPE base (unused by GPT-2).
    pub rope_theta: f64,
    /// Optional Llama 3 RoPE scaling.
    pub rope_scaling: Option<Llama3Scaling>,
    /// Longest sequence the model supports.
    pub max_positions: usize,
    /// Sliding-window length, when the checkpoint declares one (sequences longer than it are refused).
    pub sliding_window: Option<usize>,
    /// The output head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// Biases on the q/k/v projections.
    pub qkv_bias: bool,
    /// Biases on the attention output and MLP projections.
    pub out_bias: bool,
    /// BOS token id, if the checkpoint names one.
    pub bos: Option<u32>,
    /// EOS token ids.
    pub eos: Vec<u32>,
    /// PAD token id, if any.
    pub pad: Option<u32>,
}

fn field<'a>(cfg: &'a Json, key: &str) -> Option<&'a Json> {
    cfg.get(key).filter(|v| !v.is_null())
}

fn usize_field(cfg: &Json, keys: &[&str], path: &Path) -> crate::Result<usize> {
    for k in keys {
        if let Some(v) = field(cfg, k) {
            return v
                .as_u64()
                .filter(|&v| v > 0 && v < 1 << 31)
                .map(|v| v as usize)
                .ok_or_else(|| crate::Error::Model {
                    path: path.to_path_buf(),
                    message: format!("'{k}' must be a positive integer"),
                });
        }
    }
    Err(crate::Error::Model {
        path: path.to_path_buf(),
        message: format!("missing '{}'; is this a complete config.json?", keys[0]),
    })
}

fn ids(v: Option<&Json>) -> Vec<u32> {
    match v {
        Some(Json::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .into_iter()
            .collect(),
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect(),
        _ => Vec::new(),
    }
}

impl ArchConfig {
    /// Reads a Hugging Face `config.json` (already parsed) found at `path`.
    ///
    /// Kept whole: one field of `config.json` after another, each checked and named in its error
    /// before any size is derived from it.
    pub fn from_hf(cfg: &Json, path: &Path) -> crate::Result<Self> {
        let bad = |message: String| crate::Error::Model {
            path: path.to_path_buf(),
            message,
        };
        let model_type = field(cfg, "model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let family = match model_type {
            "llama" | "mistral" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "gpt2" => Family::Gpt2,
            "" => return Err(bad("no 'model_type'; cannot tell the architecture".into())),
            other => {
                return Err(bad(format!(
                    "architecture '{other}' is not supported (llama, mistral, qwen2 and gpt2 are)"
                )));
            }
        };
        // Absent: the default; present but not a number: NaN, which `check` refuses by name.
        let f64_field = |k: &str, default: f64| {
            field(cfg, k).map_or(default, |v| v.as_f64().unwrap_or(f64::NAN))
        };
        let bool_field =
            |k: &str, default: bool| field(cfg, k).and_then(|v| v.as_bool()).unwrap_or(default);
        let vocab_size = usize_field(cfg, &["vocab_size"], path)?;
        let (hidden, layers, heads) = if family == Family::Gpt2 {
            (
                usize_field(cfg, &["n_embd", "hidden_size"], path)?,
                usize_field(cfg, &["n_layer", "num_hidden_layers"], path)?,
                usize_field(cfg, &["n_head", "num_attention_heads"], path)?,
            )
        } else {
            (
                usize_field(cfg, &["hidden_size"], path)?,
                usize_field(cfg, &["num_hidden_layers"], path)?,
                usize_field(cfg, &["num_attention_heads"], path)?,
            )
        };
        let mut c = ArchConfig {
            family,
            vocab_size,
            hidden,
            intermediate: 4 * hidden,
            layers,
            heads,
            kv_heads: heads,
            head_dim: hidden / heads,
            norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_positions: 2048,
            sliding_window: None,
            tied_embeddings: true,
            qkv_bias: false,
            out_bias: false,
            bos: ids(field(cfg, "bos_token_id")).first().copied(),
            eos: ids(field(cfg, "eos_token_id")),
            pad: ids(field(cfg, "pad_token_id")).first().copied(),
        };
        match family {
            Family::Gpt2 => {
                if let Some(n) = field(cfg, "n_inner") {
                    c.intermediate = n
                        .as_u64()
                        .filter(|&n| n > 0 && n < 1 << 31)
                        .ok_or_else(|| bad("'n_inner' must be a positive integer".into()))?
                        as usize;
                }
                c.norm_eps = f64_field("layer_norm_epsilon", 1e-5);
                c.max_positions = usize_field(cfg, &["n_positions", "n_ctx"], path)?;
                c.qkv_bias = true;
                c.out_bias = true;
                let act = field(cfg, "activation_function")
                    .and_then(|v| v.as_str())
                    .unwrap_or("gelu_new");
                if !matches!(act, "gelu_new" | "gelu_pytorch_tanh") {
                    return Err(bad(format!(
                        "GPT-2 activation '{act}' is not supported (gelu_new is)"
                    )));
                }
            }
            Family::Llama | Family::Qwen2 => {
                c.intermediate = usize_field(cfg, &["intermediate_size"], path)?;
                c.kv_heads = match field(cfg, "num_key_value_heads") {
                    Some(_) => usize_field(cfg, &["num_key_value_heads"], path)?,
                    None => heads,
                };
                if field(cfg, "head_dim").is_some() {
                    c.head_dim = usize_field(cfg, &["head_dim"], path)?;
                }
                c.norm_eps = f64_field("rms_norm_eps", 1e-6);
                // transformers ≥ 5 writes RoPE settings under `rope_parameters`.
                let rope_params = field(cfg, "rope_parameters");
                c.rope_theta = field(cfg, "rope_theta")
                    .or_else(|| rope_params.and_then(|r| r.get("rope_theta")))
                    .map_or(10_000.0, |v| v.as_f64().unwrap_or(f64::NAN));
                // Absent: 4096; present, it must be valid (a bad value is never replaced).
                c.max_positions = match field(cfg, "max_position_embeddings") {
                    Some(_) => usize_field(cfg, &["max_position_embeddings"], path)?,
                    None => 4096,
                };
                c.tied_embeddings = bool_field("tie_word_embeddings", false);
                c.qkv_bias = family == Family::Qwen2 || bool_field("attention_bias", false);
                c.out_bias = bool_field("attention_bias", false) && family == Family::Llama;
                if bool_field("mlp_bias", false) {
                    return Err(bad("'mlp_bias' = true is not supported".into()));
                }
                let act = field(cfg, "hidden_act")
                    .and_then(|v| v.as_str())
                    .unwrap_or("silu");
                if act != "silu" {
                    return Err(bad(format!(
                        "activation '{act}' is not supported (silu is)"
                    )));
                }
                let uses_window =
                    family == Family::Llama || bool_field("use_sliding_window", false);
                if uses_window {
                    c.sliding_window = match field(cfg, "sliding_window") {
                        Some(_) => Some(usize_field(cfg, &["sliding_window"], path)?),
                        None => None,
                    };
                }
                if let Some(rs) = field(cfg, "rope_scaling").or(rope_params) {
                    let kind = rs
                        .get("rope_type")
                        .or_else(|| rs.get("type"))
                        .and_then(|v| v.as_str())
                        .unwrap_or("");
                    match kind {
                        "llama3" => {
                            let g = |k: &str| {
                                rs.get(k)
                                    .and_then(|v| v.as_f64())
                                    .ok_or_else(|| bad(format!("rope_scaling: missing '{k}'")))
                            };
                            c.rope_scaling = Some(Llama3Scaling {
                                factor: g("factor")?,
                                low_freq_factor: g("low_freq_factor")?,
                                high_freq_factor: g("high_freq_factor")?,
                                original_max_positions: g("original_max_position_embeddings")?,
                            });
                        }
                        "default" | "" => {}
                        other => {
                            return Err(bad(format!(
                                "rope_scaling type '{other}' is not supported (llama3 is)"
                            )));
                        }
                    }
                }
            }
        }
        c.check().map_err(bad)?;
        Ok(c)
    }

    /// Reads GGUF metadata (`llama` and `qwen2` architectures).
    pub fn from_gguf(h: &gguf::Header, vocab_size: usize) -> Result<Self, String> {
        let arch = h
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .ok_or("no general.architecture")?;
        let family = match arch {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            other => {
                return Err(format!(
                    "GGUF architecture '{other}' is not supported (llama and qwen2 are)"
                ));
            }
        };
        let u = |k: &str| -> Result<usize, String> {
            h.get(&format!("{arch}.{k}"))
                .and_then(|v| v.as_u64())
                .filter(|&v| v > 0 && v < 1 << 31)
                .map(|v| v as usize)
                .ok_or_else(|| {
                    format!("metadata '{arch}.{k}' is missing or not a positive integer")
                })
        };
        // Optional keys: absent gives the default, present must be valid.
        let opt = |k: &str, default: usize| -> Result<usize, String> {
            if h.get(&format!("{arch}.{k}")).is_some() {
                u(k)
            } else {
                Ok(default)
            }
        };
        let float = |k: &str, default: f64| -> Result<f64, String> {
            match h.get(&format!("{arch}.{k}")) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| format!("metadata '{arch}.{k}' is not a number")),
            }
        };
        let token = |k: &str| -> Result<Option<u32>, String> {
            match h.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .filter(|&v| (v as usize) < vocab_size)
                    .map(Some)
                    .ok_or_else(|| format!("metadata '{k}' is not a token id below the vocabulary size {vocab_size}")),
            }
        };
        let hidden = u("embedding_length")?;
        let heads = u("attention.head_count")?;
        let c = ArchConfig {
            family,
            vocab_size,
            hidden,
            intermediate: u("feed_forward_length")?,
            layers: u("block_count")?,
            heads,
            kv_heads: opt("attention.head_count_kv", heads)?,
            head_dim: opt("attention.key_length", hidden / heads)?,
            norm_eps: float("attention.layer_norm_rms_epsilon", 1e-5)?,
            rope_theta: float("rope.freq_base", 10_000.0)?,
            rope_scaling: None,
            max_positions: opt("context_length", 2048)?,
            sliding_window: None,
            tied_embeddings: !h.tensors.contains_key("output.weight"),
            qkv_bias: family == Family::Qwen2,
            out_bias: false,
            bos: token("tokenizer.ggml.bos_token_id")?,
            eos: token("tokenizer.ggml.eos_token_id")?.into_iter().collect(),
            pad: token("tokenizer.ggml.padding_token_id")?,
        };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        // Every number is checked here, at the boundary: a zero RoPE base or a NaN epsilon
        // would otherwise turn every log-probability into NaN without an error.
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0 && self.norm_eps < 1.0) {
            return Err(format!(
                "the normalisation epsilon {} must be a number in (0, 1)",
                self.norm_eps
            ));
        }
        if self.family != Family::Gpt2 && !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return Err(format!(
                "the RoPE base (rope_theta) {} must be a finite number > 1",
                self.rope_theta
            ));
        }
        if let Some(s) = &self.rope_scaling {
            let all = [
                s.factor,
                s.low_freq_factor,
                s.high_freq_factor,
                s.original_max_positions,
            ];
            if all.iter().any(|x| !(x.is_finite() && *x > 0.0))
                || s.high_freq_factor <= s.low_freq_factor
            {
                return Err(
                    "rope_scaling needs finite positive factors with high_freq_factor > low_freq_factor"
                        .into(),
                );
            }
        }
        if self.kv_heads == 0 || self.heads == 0 || self.head_dim == 0 {
            return Err("head counts and head width must be positive".into());
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.heads, self.kv_heads
            ));
        }
        if self.family != Family::Gpt2 && !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head width {} is odd; RoPE needs an even width",
                self.head_dim
            ));
        }
        if self.family == Family::Gpt2 && !self.hidden.is_multiple_of(self.heads) {
            return Err(format!(
                "width {} is not a multiple of {} heads",
                self.hidden, self.heads
            ));
        }
        Ok(())
    }

    /// Number of parameters implied by the configuration (embedding counted once when tied).
    pub fn parameter_count(&self) -> u64 {
        let (d, i, v) = (
            self.hidden as u64,
            self.intermediate as u64,
            self.vocab_size as u64,
        );
        let hd = self.head_dim as u64;
        let q = self.heads as u64 * hd;
        let kv = self.kv_heads as u64 * hd;
        let attn = d * (q + 2 * kv)
            + q * d
            + if self.qkv_bias { q + 2 * kv } else { 0 }
            + if self.out_bias { d } else { 0 };
        let (mlp, norms) = match self.family {
            Family::Gpt2 => (2 * d * i + i + d, 4 * d),
            _ => (3 * d * i, 2 * d),
        };
        let block = attn + mlp + norms;
        let extra = match self.family {
            Family::Gpt2 => self.max_positions as u64 * d + 2 * d,
            _ => d,
        };
        v * d * if self.tied_embeddings { 1 } else { 2 } + self.layers as u64 * block + extra
    }
}
