//! The model card: what model was probed, pinned by file hashes.

use serde::{Deserialize, Serialize};

use super::FileHash;

/// Facts about the tokenizer that decide what is scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenizerFacts {
    /// Where it came from (`tokenizer.json`, `gguf:gpt2/smollm`, `mock`).
    pub source: String,
    /// Vocabulary size including added tokens.
    pub vocab_size: usize,
    /// Whether encoding prepends a BOS token.
    pub adds_bos: bool,
    /// BOS id.
    pub bos: Option<u32>,
    /// EOS ids.
    pub eos: Vec<u32>,
    /// PAD id.
    pub pad: Option<u32>,
    /// Which positions of a text's T tokens get a log-probability.
    pub scored_positions: String,
}

/// A LoRA adapter merged into the base weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AdapterCard {
    /// Rank.
    pub rank: usize,
    /// Scale applied to B·A (alpha / r, or alpha / √r with rsLoRA).
    pub scale: f64,
    /// Modules adapted.
    pub target_modules: Vec<String>,
    /// Number of weight matrices the adapter changed.
    pub merged_matrices: usize,
}

/// The model under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelCard {
    /// Architecture family (`llama`, `qwen2`, `gpt2`, `mock`).
    pub architecture: String,
    /// Container format (`hf`, `gguf`, `mock`).
    pub format: String,
    /// Parameter count.
    pub parameters: u64,
    /// Storage types of the weights as found in the files (e.g. `BF16`, `Q4_1+Q6_K`).
    pub stored_dtype: String,
    /// Type the computation runs in.
    pub compute_dtype: String,
    /// Number of blocks.
    pub layers: usize,
    /// Model width.
    pub hidden: usize,
    /// Longest supported sequence.
    pub context_length: usize,
    /// Every file read, with its SHA-256.
    pub files: Vec<FileHash>,
    /// Tokenizer facts.
    pub tokenizer: TokenizerFacts,
    /// The LoRA adapter merged in, if any.
    pub adapter: Option<AdapterCard>,
}
