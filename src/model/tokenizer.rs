//! Tokenizer glue: a Hugging Face `tokenizer.json`, or a tokenizer rebuilt from GGUF metadata.

use std::path::Path;

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::gguf;

/// A tokenizer plus the facts about it that decide which positions are scored.
pub struct Tok {
    inner: Engine,
    /// Whether the tokenizer's own encoding (or the GGUF `add_bos_token` flag) prepends a BOS token.
    pub adds_bos: bool,
    /// BOS id, if known.
    pub bos: Option<u32>,
    /// EOS ids.
    pub eos: Vec<u32>,
    /// PAD id, if known.
    pub pad: Option<u32>,
    /// Vocabulary size including added tokens.
    pub vocab_size: usize,
    /// What the tokenizer was built from (`tokenizer.json`, `gguf:gpt2/smollm`, …).
    pub source: String,
}

enum Engine {
    /// A `tokenizers` pipeline (tokenizer.json, or byte-level BPE rebuilt from GGUF).
    Hf(Box<Tokenizer>),
    /// llama-style SentencePiece from GGUF.
    Spm(Box<super::spm::Spm>),
}

/// Llama-3 / GPT-4 style split (three-digit number groups).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2 split (single digits).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl Tok {
    /// Loads `tokenizer.json`. `bos`/`eos`/`pad` come from the model configuration.
    pub fn from_file(
        path: &Path,
        bos: Option<u32>,
        eos: Vec<u32>,
        pad: Option<u32>,
    ) -> crate::Result<Self> {
        let bytes = crate::fsx::read_bytes(path, crate::fsx::input::MAX_TEXT_BYTES)?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| crate::Error::Model {
            path: path.to_path_buf(),
            // The tokenizers crate passes serde's words on, which quote the file's values.
            message: format!(
                "cannot load the tokenizer: {}",
                e.downcast_ref::<serde_json::Error>().map_or_else(
                    || crate::redact::detail(&e.to_string()),
                    crate::redact::json
                )
            ),
        })?;
        let with = inner.encode("a", true).map(|e| e.get_ids().to_vec());
        let without = inner.encode("a", false).map(|e| e.get_ids().to_vec());
        let adds_bos = match (with, without) {
            (Ok(w), Ok(wo)) => {
                w.len() > wo.len()
                    && w.ends_with(&wo)
                    && (bos.is_none() || w.first() == bos.as_ref())
            }
            _ => false,
        };
        let bos = bos.or_else(|| {
            ["<s>", "<|begin_of_text|>", "<|endoftext|>"]
                .iter()
                .find_map(|t| inner.token_to_id(t))
        });
        let vocab_size = inner.get_vocab_size(true);
        Ok(Tok {
            inner: Engine::Hf(Box::new(inner)),
            adds_bos,
            bos,
            eos,
            pad,
            vocab_size,
            source: "tokenizer.json".into(),
        })
    }

    /// Rebuilds the tokenizer stored in GGUF metadata (`tokenizer.ggml.*`).
    ///
    /// Kept whole: reads the `tokenizer.ggml.*` keys in the order the format defines, each checked
    /// before a later one depends on it.
    pub fn from_gguf(h: &gguf::Header) -> Result<Self, String> {
        let model = h
            .get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .ok_or("no tokenizer.ggml.model")?;
        let tokens: Vec<&str> = h
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .ok_or("no tokenizer.ggml.tokens")?
            .iter()
            .map(|t| t.as_str().ok_or("tokenizer.ggml.tokens holds a non-string"))
            .collect::<Result<_, _>>()?;
        let types: Vec<u64> = match h
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
        {
            Some(a) => a.iter().map(|t| t.as_u64().unwrap_or(1)).collect(),
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(
                "tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length".into(),
            );
        }
        let id = |k: &str| {
            h.get(k)
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
        };
        let bos = id("tokenizer.ggml.bos_token_id");
        let eos: Vec<u32> = id("tokenizer.ggml.eos_token_id").into_iter().collect();
        let pad = id("tokenizer.ggml.padding_token_id");
        let vocab_size = tokens.len();
        for t in bos.iter().chain(&eos).chain(&pad) {
            if *t as usize >= vocab_size {
                return Err(format!(
                    "special token id {t} is outside the {vocab_size}-token vocabulary"
                ));
            }
        }
        let pre = h
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let mut inner = match model {
            "gpt2" => {
                let merges: Vec<(String, String)> = h
                    .get("tokenizer.ggml.merges")
                    .and_then(|v| v.as_array())
                    .ok_or("no tokenizer.ggml.merges for a gpt2 tokenizer")?
                    .iter()
                    .map(|m| {
                        let s = m
                            .as_str()
                            .ok_or("tokenizer.ggml.merges holds a non-string")?;
                        let (a, b) = s.split_once(' ').ok_or("a merge is not 'left right'")?;
                        Ok((a.to_string(), b.to_string()))
                    })
                    .collect::<Result<_, String>>()?;
                let vocab: tokenizers::models::bpe::Vocab = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.to_string(), i as u32))
                    .collect();
                if vocab.len() != tokens.len() {
                    return Err("tokenizer.ggml.tokens has duplicate entries".into());
                }
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .build()
                    .map_err(|e| format!("cannot build the BPE model: {e}"))?;
                let byte_level = ByteLevel::new(false, true, true);
                let pre_tok: PreTokenizerWrapper = match pre {
                    "default" | "gpt2" | "gpt-2" => byte_level.into(),
                    "smollm" | "starcoder" | "refact" => {
                        Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
                    }
                    "llama-bpe" | "llama3" | "qwen2" | "deepseek-r1-qwen" => {
                        let re = if pre.starts_with("llama") {
                            LLAMA3_SPLIT
                        } else {
                            QWEN2_SPLIT
                        };
                        let split = Split::new(
                            SplitPattern::Regex(re.into()),
                            SplitDelimiterBehavior::Isolated,
                            false,
                        )
                        .map_err(|e| format!("cannot build the split pattern: {e}"))?;
                        Sequence::new(vec![
                            split.into(),
                            ByteLevel::new(false, true, false).into(),
                        ])
                        .into()
                    }
                    other => {
                        return Err(format!(
                            "GGUF pre-tokenizer '{other}' is not supported (default, gpt2, smollm, starcoder, llama-bpe, qwen2 are); use the Hugging Face checkpoint folder"
                        ));
                    }
                };
                let mut t = Tokenizer::new(bpe);
                t.with_pre_tokenizer(Some(pre_tok));
                t.with_decoder(Some(byte_level));
                t
            }
            "llama" => {
                let scores: Vec<f32> = h
                    .get("tokenizer.ggml.scores")
                    .and_then(|v| v.as_array())
                    .ok_or("no tokenizer.ggml.scores for a SentencePiece tokenizer")?
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .map(|f| f as f32)
                            .ok_or("tokenizer.ggml.scores holds a non-number")
                    })
                    .collect::<Result<_, _>>()?;
                let unk =
                    id("tokenizer.ggml.unknown_token_id").filter(|&u| (u as usize) < vocab_size);
                let prefix = h
                    .get("tokenizer.ggml.add_space_prefix")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true);
                let spm = super::spm::Spm::new(&tokens, scores, &types, unk, prefix)?;
                let adds_bos = h
                    .get("tokenizer.ggml.add_bos_token")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true)
                    && bos.is_some();
                return Ok(Tok {
                    inner: Engine::Spm(Box::new(spm)),
                    adds_bos,
                    bos,
                    eos,
                    pad,
                    vocab_size,
                    source: "gguf:llama-spm".into(),
                });
            }
            other => {
                return Err(format!(
                    "GGUF tokenizer model '{other}' is not supported (gpt2-style byte-level BPE and llama SentencePiece are); use the Hugging Face checkpoint folder"
                ));
            }
        };
        // Control (3) and user-defined (4) tokens match as whole tokens, as in llama.cpp.
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, ty)| matches!(**ty, 3 | 4))
            .map(|(t, ty)| AddedToken::from(t.to_string(), *ty == 3))
            .collect();
        inner
            .add_special_tokens(special)
            .map_err(|e| format!("cannot register the special tokens: {e}"))?;
        let inner = Engine::Hf(Box::new(inner));
        let adds_bos = h
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
            && bos.is_some();
        Ok(Tok {
            inner,
            adds_bos,
            bos,
            eos,
            pad,
            vocab_size,
            source: format!("gguf:{model}/{pre}"),
        })
    }

    /// Token ids of `text` as the model sees it (BOS prepended when the tokenizer adds one).
    pub fn encode(&self, text: &str) -> crate::Result<Vec<u32>> {
        let from_json = self.source == "tokenizer.json";
        let mut ids = match &self.inner {
            Engine::Hf(t) => t
                .encode(text, from_json)
                .map_err(|e| crate::Error::Compute(format!("tokenizer failed: {e}")))?
                .get_ids()
                .to_vec(),
            Engine::Spm(s) => s.encode(text),
        };
        if !from_json && self.adds_bos {
            ids.insert(0, self.bos.expect("adds_bos implies a BOS id"));
        }
        Ok(ids)
    }

    /// Text of `ids` (special tokens dropped when `skip_special`).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> crate::Result<String> {
        match &self.inner {
            Engine::Hf(t) => t
                .decode(ids, skip_special)
                .map_err(|e| crate::Error::Compute(format!("tokenizer failed to decode: {e}"))),
            Engine::Spm(s) => Ok(s.decode(ids, skip_special)),
        }
    }

    /// The surface form of one token (byte-level marks turned back into text where possible).
    pub fn token_text(&self, id: u32) -> String {
        match &self.inner {
            Engine::Hf(t) => t
                .decode(&[id], false)
                .unwrap_or_else(|_| t.id_to_token(id).unwrap_or_default()),
            Engine::Spm(s) => s.token_text(id),
        }
    }
}
