//! Opening a model: a Hugging Face checkpoint folder (optionally with a PEFT LoRA adapter), a GGUF
//! file, or a mock fixture (`mock:<file>`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::config::{ArchConfig, Family};
use super::tokenizer::Tok;
use super::transformer::{Transformer, WeightSource};
use super::{Decoder, LanguageModel, gguf, mock, safetensors, scored_positions};
use crate::evidence::{AdapterCard, FileHash, ModelCard, TokenizerFacts};

/// Options for [`load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A PEFT LoRA adapter folder to merge into a Hugging Face base checkpoint.
    pub adapter: Option<PathBuf>,
    /// Worker threads for the per-row scoring statistics (0: all cores).
    pub threads: usize,
}

fn model_err(path: &Path, message: impl Into<String>) -> crate::Error {
    crate::Error::Model {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The worker threads for `--threads n`: 0 means every logical CPU; more threads than this
/// machine has logical CPUs is refused (the count is bounded by the machine, never by the
/// argument alone).
pub fn resolve_threads(n: usize) -> crate::Result<usize> {
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    match n {
        0 => Ok(cpus),
        n if n <= cpus => Ok(n),
        n => Err(crate::Error::Usage(format!(
            "--threads {n} is more than this machine's {cpus} logical CPU(s); use 1 to {cpus}, or 0 for all"
        ))),
    }
}

/// Streams a file through SHA-256 (the path recorded as given).
pub(crate) fn hash_file(path: &Path) -> crate::Result<FileHash> {
    crate::fsx::hash::hash_path(path)
}

fn read_json(path: &Path) -> crate::Result<serde_json::Value> {
    let text = crate::fsx::read_config(path)?;
    serde_json::from_str(&text)
        .map_err(|e| model_err(path, format!("not valid JSON: {}", crate::redact::json(&e))))
}

/// Opens the model at `spec`: `mock:<file>`, a checkpoint folder, or a `.gguf` file.
pub fn load(spec: &str, opts: &LoadOptions) -> crate::Result<Box<dyn LanguageModel>> {
    let threads = resolve_threads(opts.threads)?;
    if let Some(file) = spec.strip_prefix("mock:") {
        if opts.adapter.is_some() {
            return Err(crate::Error::Usage(
                "--adapter applies to Hugging Face checkpoints, not mock models".into(),
            ));
        }
        return Ok(Box::new(mock::MockModel::open(Path::new(file))?));
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(Box::new(load_hf(path, opts.adapter.as_deref(), threads)?));
    }
    if !path.exists() {
        return Err(crate::Error::Read {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        });
    }
    // A device or pipe would block or never end: only folders and regular files are models.
    if !path.is_dir() {
        crate::fsx::input::regular_file(path)?;
    }
    let mut magic = [0u8; 4];
    let is_gguf = File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF";
    if is_gguf || path.extension().is_some_and(|e| e == "gguf") {
        if opts.adapter.is_some() {
            return Err(crate::Error::Usage(
                "--adapter needs a Hugging Face base checkpoint folder, not a GGUF file".into(),
            ));
        }
        return Ok(Box::new(load_gguf(path, threads)?));
    }
    Err(model_err(
        path,
        "not a model: give a Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer.json), a .gguf file, or mock:<file>",
    ))
}

struct Shard {
    path: PathBuf,
    file: File,
    header: safetensors::Header,
}

/// Hugging Face weights from one or more safetensors shards, with an optional LoRA merge.
struct HfSource {
    dir: PathBuf,
    shards: Vec<Shard>,
    index: BTreeMap<String, usize>,
    lora: Option<Lora>,
}

struct Lora {
    path: PathBuf,
    shard: Shard,
    scale: f32,
    fan_in_fan_out: bool,
    used: BTreeSet<String>,
    merged: usize,
    card: AdapterCard,
}

impl Lora {
    fn open(dir: &Path) -> crate::Result<Self> {
        let cfg_path = dir.join("adapter_config.json");
        let cfg = read_json(&cfg_path)?;
        let bad = |m: String| model_err(&cfg_path, m);
        let peft = cfg
            .get("peft_type")
            .and_then(|v| v.as_str())
            .unwrap_or("LORA");
        if peft != "LORA" {
            return Err(bad(format!(
                "adapter type '{peft}' is not supported (LORA is)"
            )));
        }
        if cfg
            .get("use_dora")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
        {
            return Err(bad("DoRA adapters are not supported".into()));
        }
        if cfg
            .get("bias")
            .and_then(|v| v.as_str())
            .is_some_and(|b| b != "none")
        {
            return Err(bad(
                "adapters that train biases are not supported (bias must be \"none\")".into(),
            ));
        }
        for k in ["rank_pattern", "alpha_pattern"] {
            if cfg
                .get(k)
                .and_then(|v| v.as_object())
                .is_some_and(|m| !m.is_empty())
            {
                return Err(bad(format!("per-module '{k}' is not supported")));
            }
        }
        if cfg
            .get("modules_to_save")
            .and_then(|v| v.as_array())
            .is_some_and(|m| !m.is_empty())
        {
            return Err(bad(
                "'modules_to_save' (fully trained extra modules) is not supported".into(),
            ));
        }
        let r = cfg
            .get("r")
            .and_then(|v| v.as_u64())
            .filter(|&r| r > 0)
            .ok_or_else(|| bad("missing or invalid 'r'".into()))? as usize;
        let alpha = match cfg.get("lora_alpha") {
            None => r as f64,
            Some(v) => v
                .as_f64()
                .filter(|a| a.is_finite())
                .ok_or_else(|| bad("'lora_alpha' must be a finite number".into()))?,
        };
        let rs = cfg
            .get("use_rslora")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let scale = if rs {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        };
        let target_modules = match cfg.get("target_modules") {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let wpath = dir.join("adapter_model.safetensors");
        if !wpath.exists() {
            return Err(model_err(
                dir,
                "no adapter_model.safetensors (adapter_model.bin pickles are not read)",
            ));
        }
        let (file, header) = safetensors::read_header(&wpath)?;
        Ok(Lora {
            path: wpath.clone(),
            shard: Shard {
                path: wpath,
                file,
                header,
            },
            scale: scale as f32,
            fan_in_fan_out: cfg
                .get("fan_in_fan_out")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            used: BTreeSet::new(),
            merged: 0,
            card: AdapterCard {
                rank: r,
                scale,
                target_modules,
                merged_matrices: 0,
            },
        })
    }

    fn key(&self, module: &str, which: &str) -> Option<String> {
        [
            format!("base_model.model.{module}.{which}.weight"),
            format!("base_model.model.{module}.{which}.default.weight"),
        ]
        .into_iter()
        .find(|k| self.shard.header.tensors.contains_key(k))
    }

    /// Adds scale · B·A to `w` (shape `shape`) when the adapter has matrices for `module`.
    fn merge(&mut self, module: &str, shape: &[usize], w: &mut [f32]) -> crate::Result<()> {
        let (Some(ka), Some(kb)) = (self.key(module, "lora_A"), self.key(module, "lora_B")) else {
            return Ok(());
        };
        let ea = self.shard.header.tensors[&ka].clone();
        let eb = self.shard.header.tensors[&kb].clone();
        let (out, inp) = match (shape, self.fan_in_fan_out) {
            ([o, i], false) => (*o, *i),
            ([i, o], true) => (*o, *i),
            _ => {
                return Err(model_err(
                    &self.path,
                    format!("'{ka}' targets a weight that is not a matrix"),
                ));
            }
        };
        let r = ea.shape.first().copied().unwrap_or(0);
        if ea.shape != [r, inp] || eb.shape != [out, r] {
            return Err(model_err(
                &self.path,
                format!(
                    "'{ka}' {:?} / '{kb}' {:?} do not fit the base weight {shape:?}",
                    ea.shape, eb.shape
                ),
            ));
        }
        let a = safetensors::read_f32(&mut self.shard.file, &self.shard.path, &ea)?;
        let b = safetensors::read_f32(&mut self.shard.file, &self.shard.path, &eb)?;
        for o in 0..out {
            for k in 0..r {
                let bk = self.scale * b[o * r + k];
                if bk == 0.0 {
                    continue;
                }
                let arow = &a[k * inp..(k + 1) * inp];
                if self.fan_in_fan_out {
                    for (i, &av) in arow.iter().enumerate() {
                        w[i * out + o] += bk * av;
                    }
                } else {
                    for (wv, &av) in w[o * inp..(o + 1) * inp].iter_mut().zip(arow) {
                        *wv += bk * av;
                    }
                }
            }
        }
        self.used.insert(ka);
        self.used.insert(kb);
        self.merged += 1;
        Ok(())
    }

    fn finish(&mut self) -> crate::Result<AdapterCard> {
        if let Some(unused) = self
            .shard
            .header
            .tensors
            .keys()
            .find(|k| !self.used.contains(*k))
        {
            return Err(model_err(
                &self.path,
                format!(
                    "adapter tensor '{unused}' matches no weight of the base model; is this adapter for another base?"
                ),
            ));
        }
        self.card.merged_matrices = self.merged;
        Ok(self.card.clone())
    }
}

impl WeightSource for HfSource {
    fn fetch(&mut self, name: &str) -> crate::Result<Option<(Vec<usize>, Vec<f32>)>> {
        let Some(&i) = self.index.get(name) else {
            return Ok(None);
        };
        let shard = &mut self.shards[i];
        let entry = shard.header.tensors[name].clone();
        let mut data = safetensors::read_f32(&mut shard.file, &shard.path, &entry)?;
        if let (Some(lora), Some(module)) = (self.lora.as_mut(), name.strip_suffix(".weight")) {
            lora.merge(module, &entry.shape, &mut data)?;
        }
        Ok(Some((entry.shape, data)))
    }
    fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
    fn path(&self) -> &Path {
        &self.dir
    }
}

fn load_hf(dir: &Path, adapter: Option<&Path>, threads: usize) -> crate::Result<Decoder> {
    let cfg_path = dir.join("config.json");
    if !cfg_path.exists() {
        return Err(model_err(
            dir,
            "no config.json; not a Hugging Face checkpoint folder",
        ));
    }
    let cfg_json = read_json(&cfg_path)?;
    let cfg = ArchConfig::from_hf(&cfg_json, &cfg_path)?;
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(model_err(
            dir,
            "no tokenizer.json; phiprobe needs the fast tokenizer file saved with the model",
        ));
    }
    let tok = Tok::from_file(&tok_path, cfg.bos, cfg.eos.clone(), cfg.pad)?;
    if tok.vocab_size > cfg.vocab_size {
        return Err(model_err(
            &tok_path,
            format!(
                "the tokenizer has {} tokens but the embedding has only {} rows",
                tok.vocab_size, cfg.vocab_size
            ),
        ));
    }
    let mut files = vec![hash_file(&cfg_path)?, hash_file(&tok_path)?];
    let index_path = dir.join("model.safetensors.index.json");
    let shard_names: Vec<String> = if index_path.exists() {
        files.push(hash_file(&index_path)?);
        let idx = read_json(&index_path)?;
        let map = idx
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| model_err(&index_path, "no 'weight_map' object"))?;
        let mut names = BTreeSet::new();
        for v in map.values() {
            let f = v
                .as_str()
                .ok_or_else(|| model_err(&index_path, "weight_map values must be file names"))?;
            if f.contains('/') || f.contains('\\') || f == ".." || f.is_empty() {
                return Err(model_err(
                    &index_path,
                    format!("shard name '{f}' is not a plain file name in the folder"),
                ));
            }
            names.insert(f.to_string());
        }
        names.into_iter().collect()
    } else if dir.join("model.safetensors").exists() {
        vec!["model.safetensors".into()]
    } else if dir.join("pytorch_model.bin").exists() {
        return Err(model_err(
            dir,
            "only pytorch_model.bin is present; phiprobe does not unpickle PyTorch files (they can run code): convert to safetensors",
        ));
    } else {
        return Err(model_err(
            dir,
            "no model.safetensors or model.safetensors.index.json",
        ));
    };
    let mut shards = Vec::new();
    let mut index = BTreeMap::new();
    let mut dtypes = BTreeSet::new();
    for name in &shard_names {
        let p = dir.join(name);
        let (file, header) = safetensors::read_header(&p)?;
        for (k, e) in &header.tensors {
            dtypes.insert(e.dtype.name());
            if index.insert(k.clone(), shards.len()).is_some() {
                return Err(model_err(
                    &p,
                    format!("tensor '{k}' appears in more than one shard"),
                ));
            }
        }
        files.push(hash_file(&p)?);
        shards.push(Shard {
            path: p,
            file,
            header,
        });
    }
    let lora = match adapter {
        Some(a) => {
            files.push(hash_file(&a.join("adapter_config.json"))?);
            let l = Lora::open(a)?;
            files.push(hash_file(&l.path)?);
            Some(l)
        }
        None => None,
    };
    let mut src = HfSource {
        dir: dir.to_path_buf(),
        shards,
        index,
        lora,
    };
    let net = Transformer::load(cfg, &mut src)?;
    let adapter_card = match src.lora.as_mut() {
        Some(l) => Some(l.finish()?),
        None => None,
    };
    let stored = dtypes.into_iter().collect::<Vec<_>>().join("+");
    Ok(finish(net, tok, "hf", stored, files, adapter_card, threads))
}

fn finish(
    net: Transformer,
    tok: Tok,
    format: &str,
    stored_dtype: String,
    files: Vec<FileHash>,
    adapter: Option<AdapterCard>,
    threads: usize,
) -> Decoder {
    let cfg = &net.cfg;
    let card = ModelCard {
        architecture: cfg.family.name().into(),
        format: format.into(),
        parameters: net.parameter_count(),
        stored_dtype,
        compute_dtype: "F32".into(),
        layers: cfg.layers,
        hidden: cfg.hidden,
        context_length: cfg.max_positions,
        files,
        tokenizer: TokenizerFacts {
            source: tok.source.clone(),
            vocab_size: tok.vocab_size,
            adds_bos: tok.adds_bos,
            bos: tok.bos,
            eos: tok.eos.clone(),
            pad: tok.pad,
            scored_positions: scored_positions(tok.adds_bos),
        },
        adapter,
    };
    Decoder {
        net,
        tok,
        card,
        threads,
    }
}

/// GGUF weights under Hugging Face names.
struct GgufSource {
    path: PathBuf,
    file: File,
    header: gguf::Header,
    family: Family,
    heads: usize,
    kv_heads: usize,
}

fn gguf_name(name: &str) -> Option<String> {
    if name == "model.embed_tokens.weight" {
        return Some("token_embd.weight".into());
    }
    if name == "model.norm.weight" {
        return Some("output_norm.weight".into());
    }
    if name == "lm_head.weight" {
        return Some("output.weight".into());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (i, part) = rest.split_once('.')?;
    let mapped = match part {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{i}.{mapped}"))
}

/// Undoes llama.cpp's row permutation of llama Q/K weights (its RoPE pairs adjacent elements; the
/// Hugging Face layout pairs element j with j + head_dim/2).
fn unpermute(w: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let hd = rows / heads;
    let half = hd / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..heads {
        for s in 0..2 {
            for j in 0..half {
                let dst = h * hd + s * half + j;
                let src = h * hd + 2 * j + s;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

impl WeightSource for GgufSource {
    fn fetch(&mut self, name: &str) -> crate::Result<Option<(Vec<usize>, Vec<f32>)>> {
        let Some(g) = gguf_name(name) else {
            return Ok(None);
        };
        let Some(info) = self.header.tensors.get(&g).cloned() else {
            return Ok(None);
        };
        let mut data = gguf::read_f32(&mut self.file, &self.path, &g, &info)?;
        if self.family == Family::Llama && info.shape.len() == 2 {
            let heads = if g.ends_with("attn_q.weight") {
                Some(self.heads)
            } else if g.ends_with("attn_k.weight") {
                Some(self.kv_heads)
            } else {
                None
            };
            if let Some(h) = heads {
                data = unpermute(&data, info.shape[0], info.shape[1], h);
            }
        }
        Ok(Some((info.shape, data)))
    }
    fn has(&self, name: &str) -> bool {
        gguf_name(name).is_some_and(|g| self.header.tensors.contains_key(&g))
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

fn load_gguf(path: &Path, threads: usize) -> crate::Result<Decoder> {
    let (file, header) = gguf::read_header(path)?;
    let tok = Tok::from_gguf(&header).map_err(|m| model_err(path, m))?;
    let embed_rows = header
        .tensors
        .get("token_embd.weight")
        .map(|t| t.shape[0])
        .ok_or_else(|| model_err(path, "no token_embd.weight tensor"))?;
    if tok.vocab_size > embed_rows {
        return Err(model_err(
            path,
            format!(
                "the tokenizer has {} tokens but the embedding has only {embed_rows} rows",
                tok.vocab_size
            ),
        ));
    }
    let cfg = ArchConfig::from_gguf(&header, embed_rows).map_err(|m| model_err(path, m))?;
    let stored = header
        .tensors
        .values()
        .map(|t| t.ty.name)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join("+");
    let files = vec![hash_file(path)?];
    let mut src = GgufSource {
        path: path.to_path_buf(),
        file,
        family: cfg.family,
        heads: cfg.heads,
        kv_heads: cfg.kv_heads,
        header,
    };
    let net = Transformer::load(cfg, &mut src)?;
    Ok(finish(net, tok, "gguf", stored, files, None, threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_the_llama_cpp_permutation() {
        // One head of width 4, two columns: HF rows r0..r3; llama.cpp stores r0, r2, r1, r3.
        let hf: Vec<f32> = (0..8).map(|x| x as f32).collect();
        let permuted = [0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0];
        assert_eq!(unpermute(&permuted, 4, 2, 1), hf);
    }
}
