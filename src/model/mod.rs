//! Language models under test: the [`LanguageModel`] trait every probe talks to, loaders for Hugging
//! Face checkpoint folders (with optional PEFT LoRA adapters) and GGUF files, phiprobe's own forward
//! passes, and a deterministic mock model for end-to-end tests.
//!
//! Only this module (and `train/`) touches candle and tokenizers.

pub mod config;
pub mod gguf;
mod load;
pub mod mock;
pub mod safetensors;
pub mod score;
pub mod spm;
pub mod tokenizer;
pub mod transformer;

use candle_core::{Device, Tensor};

pub use crate::evidence::ModelCard;
pub(crate) use load::hash_file;
/// Most beams a beam search may keep (each is a row of every forward pass and a cache).
pub const MAX_BEAM: usize = 1024;

/// Checks a beam width against [`MAX_BEAM`] and the vocabulary (more beams than tokens cannot
/// all differ after the first step).
pub fn check_beam(width: usize, vocab: usize) -> crate::Result<()> {
    if width == 0 || width > MAX_BEAM || width > vocab {
        return Err(crate::Error::Usage(format!(
            "a beam width of {width} is out of range: use 1 to {} (at most {MAX_BEAM}, and no more than the {vocab}-token vocabulary)",
            MAX_BEAM.min(vocab)
        )));
    }
    Ok(())
}

pub use load::{LoadOptions, load, resolve_threads};

use transformer::{Transformer, ce};

/// One scored position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenScore {
    /// The actual token at this position.
    pub token: u32,
    /// log p(token | prefix), natural log.
    pub logprob: f32,
    /// μ = Σ_v p(v) log p(v) over the next-token distribution.
    pub mean: f32,
    /// σ² = Σ_v p(v) (log p(v) − μ)².
    pub var: f32,
}

/// The scores of one sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqScores {
    /// Every token id of the sequence (including a prepended BOS).
    pub tokens: Vec<u32>,
    /// Index in `tokens` of the first scored token (1: the first token has no prefix to predict it).
    pub first_scored: usize,
    /// One entry per scored token, `tokens[first_scored..]`.
    pub scores: Vec<TokenScore>,
}

impl SeqScores {
    /// Sum of the scored log-probabilities.
    pub fn total(&self) -> f64 {
        self.scores.iter().map(|s| f64::from(s.logprob)).sum()
    }
    /// Mean scored log-probability (`NaN` when nothing was scored).
    pub fn mean(&self) -> f64 {
        self.total() / self.scores.len() as f64
    }
}

/// How to pick the next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Arg-max (lowest id on ties).
    Greedy,
    /// Sampling from the tempered, truncated distribution.
    Sample {
        /// Temperature (> 0).
        temperature: f32,
        /// Keep the k most likely tokens (None: all).
        top_k: Option<usize>,
        /// Keep the smallest set with cumulative probability ≥ p (None: all).
        top_p: Option<f32>,
    },
    /// Beam search: keep the `width` most likely continuations (sum of log-probabilities, no
    /// length penalty) and return the most likely; ties go to the lower token ids.
    Beam {
        /// Beams per prompt (≥ 1; 1 is greedy).
        width: usize,
    },
}

/// One step of beam search for one prompt: from its beams' scores, their next-token log-prob
/// rows and whether each beam is finished, the surviving (parent beam, token, score); a
/// finished beam survives as itself with token `None`. At the first step only beam 0 expands
/// (all beams are the same prompt).
pub fn beam_step(
    scores: &[f64],
    rows: &[Vec<f32>],
    finished: &[bool],
    first: bool,
    width: usize,
) -> Vec<(usize, Option<u32>, f64)> {
    let mut cands: Vec<(usize, Option<u32>, f64)> = Vec::new();
    for (bi, row) in rows.iter().enumerate() {
        if first && bi > 0 {
            break;
        }
        if finished[bi] {
            cands.push((bi, None, scores[bi]));
            continue;
        }
        // The `width` best tokens of this beam (ascending id on ties).
        let mut idx: Vec<u32> = (0..row.len() as u32).collect();
        let k = width.min(idx.len());
        idx.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
            row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b))
        });
        for &t in &idx[..k] {
            cands.push((bi, Some(t), scores[bi] + f64::from(row[t as usize])));
        }
    }
    cands.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    cands.truncate(width);
    cands
}

/// Generation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    /// Token choice.
    pub strategy: Strategy,
    /// Most tokens to generate per prompt.
    pub max_new_tokens: usize,
    /// Seed of the sampling streams (prompt `i` uses stream `i`, so batching does not change draws).
    pub seed: u64,
    /// Stop a prompt's continuation at its first EOS (the EOS is kept).
    pub stop_at_eos: bool,
}

/// A language model as probes see it.
pub trait LanguageModel: Send + Sync {
    /// What the model is.
    fn card(&self) -> &ModelCard;
    /// Token ids of `text` as the model sees it (with BOS when the tokenizer adds one).
    fn encode(&self, text: &str) -> crate::Result<Vec<u32>>;
    /// Text of generated ids (special tokens dropped).
    fn decode(&self, ids: &[u32]) -> crate::Result<String>;
    /// Surface form of one token.
    fn token_text(&self, id: u32) -> String;
    /// Scores a batch of token sequences (any lengths; padding is handled inside).
    fn score(&self, batch: &[Vec<u32>]) -> crate::Result<Vec<SeqScores>>;
    /// The next-token distribution after each prefix: log p(v | prefix) for every vocabulary id
    /// (natural log, computed like [`score::row_stats`] so the two agree).
    fn next_logprobs(&self, prefixes: &[Vec<u32>]) -> crate::Result<Vec<Vec<f32>>>;
    /// [`LanguageModel::next_logprobs`] of `prefix ++ suffix` for every suffix; models with a
    /// KV cache run the shared prefix once.
    fn next_logprobs_shared(
        &self,
        prefix: &[u32],
        suffixes: &[Vec<u32>],
    ) -> crate::Result<Vec<Vec<f32>>> {
        let full: Vec<Vec<u32>> = suffixes
            .iter()
            .map(|s| prefix.iter().chain(s).copied().collect())
            .collect();
        self.next_logprobs(&full)
    }
    /// Log-probability of every token of each continuation after `prefix`: entry `[j][i]` is
    /// log p(`continuations[j][i]` | `prefix` ++ `continuations[j][..i]`), natural log, computed
    /// like [`LanguageModel::score`]. `prefix` must hold at least one token (a BOS will do).
    /// Models with a KV cache run the shared prefix once; the default re-scores every
    /// `prefix ++ continuation` in full ([`rescore_continuations`]).
    fn score_continuations(
        &self,
        prefix: &[u32],
        continuations: &[Vec<u32>],
    ) -> crate::Result<Vec<Vec<f32>>> {
        rescore_continuations(self, prefix, continuations)
    }
    /// Continues each prompt; returns the new token ids per prompt.
    fn generate(&self, prompts: &[Vec<u32>], decoding: &Decoding) -> crate::Result<Vec<Vec<u32>>>;
}

/// Most continuations scored together per model call by [`rescore_continuations`] and the
/// KV-cache implementation.
pub const CONTINUATION_CHUNK: usize = 64;

/// Most (prefix + continuation) token rows one such call holds, so that a long prefix repeated
/// over the batch stays within memory: the chunk shrinks below [`CONTINUATION_CHUNK`] when the
/// sequences are long.
pub const CONTINUATION_TOKENS: usize = 16_384;

/// Continuations per call for sequences of `len` tokens.
fn continuation_chunk(len: usize) -> usize {
    (CONTINUATION_TOKENS / len.max(1)).clamp(1, CONTINUATION_CHUNK)
}

/// [`LanguageModel::score_continuations`] the plain way: every `prefix ++ continuation` scored in
/// full through [`LanguageModel::score`], [`CONTINUATION_CHUNK`] at a time. The baseline the
/// shared-prefix implementation is measured against (benches, `bench-inversion`).
pub fn rescore_continuations<M: LanguageModel + ?Sized>(
    model: &M,
    prefix: &[u32],
    continuations: &[Vec<u32>],
) -> crate::Result<Vec<Vec<f32>>> {
    if prefix.is_empty() {
        return Err(crate::Error::Usage(
            "a continuation needs a prefix of at least one token to be scored".into(),
        ));
    }
    let mut out = Vec::with_capacity(continuations.len());
    let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
    for chunk in continuations.chunks(continuation_chunk(prefix.len() + longest)) {
        let full: Vec<Vec<u32>> = chunk
            .iter()
            .map(|c| prefix.iter().chain(c).copied().collect())
            .collect();
        for (c, s) in chunk.iter().zip(model.score(&full)?) {
            let skip = s.scores.len().saturating_sub(c.len());
            out.push(s.scores[skip..].iter().map(|t| t.logprob).collect());
        }
    }
    Ok(out)
}

/// Scores many texts: tokenises, buckets by length so padding stays small, batches up to
/// `max_batch_tokens` padded tokens, and calls `progress` with the number of texts finished.
pub fn score_texts(
    model: &dyn LanguageModel,
    texts: &[&str],
    max_batch_tokens: usize,
    mut progress: impl FnMut(usize),
) -> crate::Result<Vec<SeqScores>> {
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| model.encode(t))
        .collect::<crate::Result<_>>()?;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| (ids[i].len(), i));
    let mut out: Vec<Option<SeqScores>> = vec![None; ids.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len()
            && ids[order[end]].len() * (end + 1 - start) <= max_batch_tokens.max(1)
        {
            end += 1;
        }
        let batch: Vec<Vec<u32>> = order[start..end].iter().map(|&i| ids[i].clone()).collect();
        for (&i, s) in order[start..end].iter().zip(model.score(&batch)?) {
            out[i] = Some(s);
        }
        progress(end - start);
        start = end;
    }
    Ok(out
        .into_iter()
        .map(|s| s.expect("every text scored"))
        .collect())
}

/// A transformer with its tokenizer: the real-model implementation of [`LanguageModel`].
pub struct Decoder {
    net: Transformer,
    tok: tokenizer::Tok,
    card: ModelCard,
    threads: usize,
}

impl Decoder {
    fn check_len(&self, n: usize) -> crate::Result<()> {
        let cfg = &self.net.cfg;
        let limit = cfg.max_positions.min(transformer::ROPE_TABLE_MAX);
        if n > limit {
            return Err(crate::Error::Usage(format!(
                "a sequence of {n} tokens is longer than the model's context ({limit} tokens); shorten the text"
            )));
        }
        if let Some(w) = cfg.sliding_window.filter(|&w| n > w) {
            return Err(crate::Error::Usage(format!(
                "a sequence of {n} tokens exceeds the model's {w}-token sliding window, which phiprobe does not implement; shorten the text"
            )));
        }
        Ok(())
    }

    fn pad_id(&self) -> u32 {
        self.tok.pad.or(self.tok.eos.first().copied()).unwrap_or(0)
    }

    /// Refuses token ids outside the vocabulary.
    fn check_vocab<'a>(&self, ids: impl IntoIterator<Item = &'a u32>) -> crate::Result<()> {
        let vocab = self.net.cfg.vocab_size as u32;
        match ids.into_iter().find(|&&id| id >= vocab) {
            Some(bad) => Err(crate::Error::Usage(format!(
                "token id {bad} is outside the model's {vocab}-token vocabulary"
            ))),
            None => Ok(()),
        }
    }

    /// Runs `prefix` once (batch 1) into a fresh KV cache; returns its hidden rows (`[p, d]`)
    /// and the cache.
    fn prefix_cache(&self, prefix: &[u32]) -> crate::Result<(Tensor, transformer::KvCache)> {
        let p = prefix.len();
        let mut cache: transformer::KvCache = vec![None; self.net.cfg.layers];
        let ids = id_tensor(prefix.to_vec(), 1, p)?;
        let mask = transformer::causal_mask(p).map_err(ce)?;
        let pos =
            Tensor::from_vec((0..p as u32).collect::<Vec<_>>(), p, &Device::Cpu).map_err(ce)?;
        let hidden = self
            .net
            .forward(&ids, &mask, 0, Some(&pos), Some(&mut cache))
            .map_err(ce)?;
        Ok((hidden, cache))
    }

    /// Runs `b` right-padded rows of `t` tokens (`flat`) after a batch-1 prefix of `p` tokens
    /// whose cache is repeated over the batch; returns the hidden rows (`[b * t, d]`).
    fn after_prefix(
        &self,
        cache: &transformer::KvCache,
        flat: Vec<u32>,
        b: usize,
        p: usize,
        t: usize,
    ) -> crate::Result<Tensor> {
        let mut cache = cache.clone();
        for entry in cache.iter_mut() {
            if let Some((k, v)) = entry.take() {
                let k = k.repeat((b, 1, 1, 1)).map_err(ce)?;
                let v = v.repeat((b, 1, 1, 1)).map_err(ce)?;
                *entry = Some((k, v));
            }
        }
        let ids = id_tensor(flat, b, t)?;
        // Right padding: a causal mask over past + t hides the pads from every real position.
        let mask = transformer::padded_mask(&vec![0; b], p, t).map_err(ce)?;
        let pos: Vec<u32> = (0..b).flat_map(|_| p as u32..(p + t) as u32).collect();
        let pos = Tensor::from_vec(pos, b * t, &Device::Cpu).map_err(ce)?;
        self.net
            .forward(&ids, &mask, p, Some(&pos), Some(&mut cache))
            .map_err(ce)
    }

    /// Output-head logits of the given rows of `hidden` (`[rows, vocab]`).
    fn rows_logits(&self, hidden: &Tensor, rows: Vec<u32>) -> crate::Result<Vec<Vec<f32>>> {
        let n = rows.len();
        let rows = Tensor::from_vec(rows, n, &Device::Cpu).map_err(ce)?;
        let logits: Vec<Vec<f32>> = hidden
            .index_select(&rows, 0)
            .and_then(|h| h.matmul(&self.net.head_t))
            .and_then(|l| l.to_vec2::<f32>())
            .map_err(ce)?;
        if logits.iter().flatten().any(|v| !v.is_finite()) {
            return Err(score::non_finite());
        }
        Ok(logits)
    }

    /// Beam search with a KV cache: every prompt runs `width` rows; after each step the cache
    /// rows are reordered to follow their surviving parents.
    fn beam(
        &self,
        prompts: &[Vec<u32>],
        width: usize,
        d: &Decoding,
    ) -> crate::Result<Vec<Vec<u32>>> {
        let b = prompts.len();
        if let Some(i) = prompts.iter().position(Vec::is_empty) {
            return Err(crate::Error::Usage(format!(
                "prompt {i} has no tokens; give at least one"
            )));
        }
        check_beam(width, self.net.cfg.vocab_size)?;
        let l = prompts.iter().map(Vec::len).max().unwrap_or(0);
        self.check_len(l.saturating_add(d.max_new_tokens))?;
        let rows_n = b * width;
        let pads: Vec<usize> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(l - p.len(), width))
            .collect();
        let pad = self.pad_id();
        let mut flat = Vec::with_capacity(rows_n * l);
        let mut pos = Vec::with_capacity(rows_n * l);
        for (r, &np) in pads.iter().enumerate() {
            let p = &prompts[r / width];
            flat.extend(std::iter::repeat_n(pad, np));
            flat.extend_from_slice(p);
            pos.extend((0..l).map(|j| j.saturating_sub(np) as u32));
        }
        let mut cache: transformer::KvCache = vec![None; self.net.cfg.layers];
        let mut paths: Vec<Vec<u32>> = vec![Vec::new(); rows_n];
        let mut scores = vec![0f64; rows_n];
        let mut finished = vec![false; rows_n];
        let mut ids = id_tensor(flat, rows_n, l)?;
        let (mut past, mut t) = (0, l);
        for step in 0..d.max_new_tokens {
            let mask = transformer::padded_mask(&pads, past, t).map_err(ce)?;
            let pos_t = Tensor::from_vec(pos.clone(), rows_n * t, &Device::Cpu).map_err(ce)?;
            let hidden = self
                .net
                .forward(&ids, &mask, past, Some(&pos_t), Some(&mut cache))
                .map_err(ce)?;
            let logits = self.rows_logits(
                &hidden,
                (0..rows_n).map(|r| (r * t + t - 1) as u32).collect(),
            )?;
            let lp: Vec<Vec<f32>> = logits.iter().map(|r| score::log_softmax(r)).collect();
            let mut parent = Vec::with_capacity(rows_n);
            let mut next = Vec::with_capacity(rows_n);
            let (mut new_paths, mut new_scores, mut new_fin) = (
                Vec::with_capacity(rows_n),
                Vec::with_capacity(rows_n),
                Vec::with_capacity(rows_n),
            );
            for p in 0..b {
                let base = p * width;
                let keep = beam_step(
                    &scores[base..base + width],
                    &lp[base..base + width],
                    &finished[base..base + width],
                    step == 0,
                    width,
                );
                for j in 0..width {
                    // Fewer candidates than beams (a tiny vocabulary): repeat the last.
                    let (bi, tok, sc) = keep[j.min(keep.len() - 1)];
                    let src = base + bi;
                    let mut path = paths[src].clone();
                    let (tok, fin) = match tok {
                        Some(t) => {
                            path.push(t);
                            (t, d.stop_at_eos && self.tok.eos.contains(&t))
                        }
                        None => (pad, true),
                    };
                    parent.push(src as u32);
                    next.push(tok);
                    new_paths.push(path);
                    new_scores.push(if j < keep.len() {
                        sc
                    } else {
                        f64::NEG_INFINITY
                    });
                    new_fin.push(fin);
                }
            }
            paths = new_paths;
            scores = new_scores;
            finished = new_fin;
            if finished.iter().all(|&f| f) || step + 1 == d.max_new_tokens {
                break;
            }
            let parent = Tensor::from_vec(parent, rows_n, &Device::Cpu).map_err(ce)?;
            for entry in cache.iter_mut() {
                if let Some((k, v)) = entry.take() {
                    *entry = Some((
                        k.index_select(&parent, 0).map_err(ce)?,
                        v.index_select(&parent, 0).map_err(ce)?,
                    ));
                }
            }
            past += t;
            t = 1;
            pos = (0..rows_n).map(|r| (past - pads[r]) as u32).collect();
            ids = id_tensor(next, rows_n, 1)?;
        }
        Ok((0..b)
            .map(|p| {
                let base = p * width;
                let best = (base..base + width)
                    .max_by(|&x, &y| scores[x].total_cmp(&scores[y]).then(y.cmp(&x)))
                    .unwrap_or(base);
                paths[best].clone()
            })
            .collect())
    }
}

/// Scores of sequences with no position to score (every sequence shorter than two tokens).
fn unscored(batch: &[Vec<u32>]) -> Vec<SeqScores> {
    batch
        .iter()
        .map(|s| SeqScores {
            tokens: s.clone(),
            first_scored: 1,
            scores: vec![],
        })
        .collect()
}

/// Sequences right-padded with `pad` to `t` tokens, flattened, and the flat index of each
/// sequence's last real token.
fn right_padded(seqs: &[Vec<u32>], t: usize, pad: u32) -> (Vec<u32>, Vec<u32>) {
    let mut flat = Vec::with_capacity(seqs.len() * t);
    let mut last = Vec::with_capacity(seqs.len());
    for (r, s) in seqs.iter().enumerate() {
        flat.extend_from_slice(s);
        flat.extend(std::iter::repeat_n(pad, t - s.len()));
        last.push((r * t + s.len() - 1) as u32);
    }
    (flat, last)
}

fn id_tensor(ids: Vec<u32>, b: usize, t: usize) -> crate::Result<Tensor> {
    Tensor::from_vec(ids, (b, t), &Device::Cpu).map_err(ce)
}

impl LanguageModel for Decoder {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn encode(&self, text: &str) -> crate::Result<Vec<u32>> {
        self.tok.encode(text)
    }

    fn decode(&self, ids: &[u32]) -> crate::Result<String> {
        self.tok.decode(ids, true)
    }

    fn token_text(&self, id: u32) -> String {
        self.tok.token_text(id)
    }

    fn score(&self, batch: &[Vec<u32>]) -> crate::Result<Vec<SeqScores>> {
        let t = batch.iter().map(Vec::len).max().unwrap_or(0);
        if t == 0 {
            return Ok(unscored(batch));
        }
        self.check_len(t)?;
        let b = batch.len();
        let pad = self.pad_id();
        let mut flat = Vec::with_capacity(b * t);
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        self.check_vocab(batch.iter().flatten())?;
        for (r, seq) in batch.iter().enumerate() {
            flat.extend_from_slice(seq);
            flat.extend(std::iter::repeat_n(pad, t - seq.len()));
            for (p, &tok) in seq.iter().enumerate().skip(1) {
                rows.push((r * t + p - 1) as u32);
                targets.push(tok);
            }
        }
        if targets.is_empty() {
            return Ok(unscored(batch));
        }
        let ids = id_tensor(flat, b, t)?;
        let mask = transformer::causal_mask(t).map_err(ce)?;
        let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let pos = Tensor::from_vec(pos, b * t, &Device::Cpu).map_err(ce)?;
        let hidden = self
            .net
            .forward(&ids, &mask, 0, Some(&pos), None)
            .map_err(ce)?;
        let rows_t = Tensor::from_vec(rows, targets.len(), &Device::Cpu).map_err(ce)?;
        let picked = hidden.index_select(&rows_t, 0).map_err(ce)?;
        let mut scores =
            score::head_scores(&picked, &self.net.head_t, &targets, self.threads)?.into_iter();
        Ok(batch
            .iter()
            .map(|seq| SeqScores {
                tokens: seq.clone(),
                first_scored: 1,
                scores: scores.by_ref().take(seq.len().saturating_sub(1)).collect(),
            })
            .collect())
    }

    fn next_logprobs(&self, prefixes: &[Vec<u32>]) -> crate::Result<Vec<Vec<f32>>> {
        let b = prefixes.len();
        let t = prefixes.iter().map(Vec::len).max().unwrap_or(0);
        if b == 0 {
            return Ok(Vec::new());
        }
        if let Some(i) = prefixes.iter().position(Vec::is_empty) {
            return Err(crate::Error::Usage(format!(
                "prefix {i} has no tokens; give at least one"
            )));
        }
        self.check_len(t)?;
        self.check_vocab(prefixes.iter().flatten())?;
        let pad = self.pad_id();
        let (flat, last) = right_padded(prefixes, t, pad);
        let ids = id_tensor(flat, b, t)?;
        let mask = transformer::causal_mask(t).map_err(ce)?;
        let pos: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let pos = Tensor::from_vec(pos, b * t, &Device::Cpu).map_err(ce)?;
        let hidden = self
            .net
            .forward(&ids, &mask, 0, Some(&pos), None)
            .map_err(ce)?;
        Ok(self
            .rows_logits(&hidden, last)?
            .iter()
            .map(|row| score::log_softmax(row))
            .collect())
    }

    fn next_logprobs_shared(
        &self,
        prefix: &[u32],
        suffixes: &[Vec<u32>],
    ) -> crate::Result<Vec<Vec<f32>>> {
        let b = suffixes.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        if prefix.is_empty() || suffixes.iter().any(Vec::is_empty) {
            let full: Vec<Vec<u32>> = suffixes
                .iter()
                .map(|s| prefix.iter().chain(s).copied().collect())
                .collect();
            return self.next_logprobs(&full);
        }
        let p = prefix.len();
        let t = suffixes.iter().map(Vec::len).max().unwrap_or(0);
        self.check_len(p + t)?;
        self.check_vocab(prefix.iter().chain(suffixes.iter().flatten()))?;
        // The prefix once, batch 1, into a KV cache; then broadcast to the batch.
        let (_, cache) = self.prefix_cache(prefix)?;
        let (flat, last) = right_padded(suffixes, t, self.pad_id());
        let hidden = self.after_prefix(&cache, flat, b, p, t)?;
        Ok(self
            .rows_logits(&hidden, last)?
            .iter()
            .map(|row| score::log_softmax(row))
            .collect())
    }

    fn score_continuations(
        &self,
        prefix: &[u32],
        continuations: &[Vec<u32>],
    ) -> crate::Result<Vec<Vec<f32>>> {
        if prefix.is_empty() {
            return rescore_continuations(self, prefix, continuations);
        }
        let p = prefix.len();
        let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
        self.check_len(p + longest)?;
        self.check_vocab(prefix.iter().chain(continuations.iter().flatten()))?;
        // The prefix once, batch 1, into a KV cache; its last row predicts every first token.
        let (prefix_hidden, cache) = self.prefix_cache(prefix)?;
        let last = prefix_hidden.narrow(0, p - 1, 1).map_err(ce)?;
        let pad = self.pad_id();
        let mut out = Vec::with_capacity(continuations.len());
        for chunk in continuations.chunks(continuation_chunk(p + longest)) {
            let b = chunk.len();
            let t = chunk.iter().map(Vec::len).max().unwrap_or(0);
            // First tokens: the prefix's last row, once per continuation.
            let firsts: Vec<u32> = chunk.iter().filter_map(|c| c.first().copied()).collect();
            let mut first_scores = Vec::new().into_iter();
            if !firsts.is_empty() {
                let zeros = Tensor::from_vec(vec![0u32; firsts.len()], firsts.len(), &Device::Cpu)
                    .map_err(ce)?;
                let first_rows = last.index_select(&zeros, 0).map_err(ce)?;
                first_scores =
                    score::head_scores(&first_rows, &self.net.head_t, &firsts, self.threads)?
                        .into_iter();
            }
            // Later tokens: each continuation but its last token runs over the repeated cache,
            // right-padded to `t - 1`.
            let mut rest_scores = Vec::new().into_iter();
            if t > 1 {
                let t = t - 1;
                let mut flat = Vec::with_capacity(b * t);
                let mut rows = Vec::new();
                let mut targets = Vec::new();
                for (r, c) in chunk.iter().enumerate() {
                    let input = &c[..c.len().saturating_sub(1)];
                    flat.extend_from_slice(input);
                    flat.extend(std::iter::repeat_n(pad, t - input.len()));
                    for (i, &tok) in c.iter().enumerate().skip(1) {
                        rows.push((r * t + i - 1) as u32);
                        targets.push(tok);
                    }
                }
                if !targets.is_empty() {
                    let hidden = self.after_prefix(&cache, flat, b, p, t)?;
                    let n = rows.len();
                    let rows = Tensor::from_vec(rows, n, &Device::Cpu).map_err(ce)?;
                    let picked = hidden.index_select(&rows, 0).map_err(ce)?;
                    rest_scores =
                        score::head_scores(&picked, &self.net.head_t, &targets, self.threads)?
                            .into_iter();
                }
            }
            for c in chunk {
                let mut row = Vec::with_capacity(c.len());
                if !c.is_empty() {
                    row.extend(first_scores.next().map(|s| s.logprob));
                    row.extend(rest_scores.by_ref().take(c.len() - 1).map(|s| s.logprob));
                }
                out.push(row);
            }
        }
        Ok(out)
    }

    fn generate(&self, prompts: &[Vec<u32>], d: &Decoding) -> crate::Result<Vec<Vec<u32>>> {
        let b = prompts.len();
        if b == 0 || d.max_new_tokens == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        if let Strategy::Beam { width } = d.strategy {
            return self.beam(prompts, width.max(1), d);
        }
        if let Some(i) = prompts.iter().position(Vec::is_empty) {
            return Err(crate::Error::Usage(format!(
                "prompt {i} has no tokens; give at least one"
            )));
        }
        let l = prompts.iter().map(Vec::len).max().unwrap_or(0);
        self.check_len(l.saturating_add(d.max_new_tokens))?;
        let pads: Vec<usize> = prompts.iter().map(|p| l - p.len()).collect();
        let pad = self.pad_id();
        let mut flat = Vec::with_capacity(b * l);
        let mut pos = Vec::with_capacity(b * l);
        for (p, &np) in prompts.iter().zip(&pads) {
            flat.extend(std::iter::repeat_n(pad, np));
            flat.extend_from_slice(p);
            pos.extend((0..l).map(|j| j.saturating_sub(np) as u32));
        }
        let mut cache: transformer::KvCache = vec![None; self.net.cfg.layers];
        let mut rngs: Vec<crate::stats::rng::Rng> = (0..b)
            .map(|i| crate::stats::rng::Rng::derive(d.seed, "generate", i as u64))
            .collect();
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut done = vec![false; b];
        let mut ids = id_tensor(flat, b, l)?;
        let mut past = 0;
        let mut t = l;
        for step in 0..d.max_new_tokens {
            let mask = transformer::padded_mask(&pads, past, t).map_err(ce)?;
            let pos_t = Tensor::from_vec(pos.clone(), b * t, &Device::Cpu).map_err(ce)?;
            let hidden = self
                .net
                .forward(&ids, &mask, past, Some(&pos_t), Some(&mut cache))
                .map_err(ce)?;
            let logits =
                self.rows_logits(&hidden, (0..b).map(|r| (r * t + t - 1) as u32).collect())?;
            let mut next = Vec::with_capacity(b);
            for (r, row) in logits.iter().enumerate() {
                let tok = if done[r] {
                    pad
                } else {
                    pick(row, &d.strategy, &mut rngs[r])
                };
                if !done[r] {
                    out[r].push(tok);
                    if d.stop_at_eos && self.tok.eos.contains(&tok) {
                        done[r] = true;
                    }
                }
                next.push(tok);
            }
            if done.iter().all(|&x| x) || step + 1 == d.max_new_tokens {
                break;
            }
            past += t;
            t = 1;
            pos = (0..b).map(|r| (past - pads[r]) as u32).collect();
            ids = id_tensor(next, b, 1)?;
        }
        Ok(out)
    }
}

/// Chooses a token from one row of logits.
pub fn pick(logits: &[f32], strategy: &Strategy, rng: &mut crate::stats::rng::Rng) -> u32 {
    let argmax = || {
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    match *strategy {
        Strategy::Greedy | Strategy::Beam { .. } => argmax(),
        Strategy::Sample {
            temperature,
            top_k,
            top_p,
        } => {
            if temperature <= 0.0 {
                return argmax();
            }
            let mut idx: Vec<usize> = (0..logits.len()).collect();
            // Descending by logit, ascending id on ties: a total, deterministic order.
            idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
            if let Some(k) = top_k.filter(|&k| k > 0) {
                idx.truncate(k);
            }
            let m = logits[idx[0]];
            let mut w: Vec<f64> = idx
                .iter()
                .map(|&i| f64::from((logits[i] - m) / temperature).exp())
                .collect();
            let z: f64 = w.iter().sum();
            if let Some(p) = top_p.filter(|&p| p < 1.0) {
                let mut cum = 0.0;
                let mut keep = w.len();
                for (j, x) in w.iter().enumerate() {
                    cum += x / z;
                    if cum >= f64::from(p) {
                        keep = j + 1;
                        break;
                    }
                }
                w.truncate(keep);
                idx.truncate(keep);
            }
            let z: f64 = w.iter().sum();
            let mut u = rng.unit() * z;
            for (j, x) in w.iter().enumerate() {
                if u < *x {
                    return idx[j] as u32;
                }
                u -= x;
            }
            idx[w.len() - 1] as u32
        }
    }
}

/// Describes which positions are scored, for the model card.
pub fn scored_positions(adds_bos: bool) -> String {
    if adds_bos {
        "all T tokens of the text (a BOS is prepended and predicts the first)".into()
    } else {
        "T−1 tokens: every token of the text but the first (no BOS is prepended)".into()
    }
}

/// The CPU f32 matmul rate this machine reaches (GFLOP/s, measured on a `[4096, hidden] ×
/// [hidden, 4·hidden]` product) and the forward FLOPs per token of the model described by `card`
/// for sequences of `t` tokens (weights, output head, and causal attention).
pub fn roofline(card: &ModelCard, t: usize) -> crate::Result<(f64, f64)> {
    let d = card.hidden.max(64);
    let a = Tensor::ones((4096, d), candle_core::DType::F32, &Device::Cpu).map_err(ce)?;
    let b = Tensor::ones((d, 4 * d), candle_core::DType::F32, &Device::Cpu).map_err(ce)?;
    let _ = a.matmul(&b).map_err(ce)?;
    let reps = 5;
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        let _ = a.matmul(&b).map_err(ce)?;
    }
    let gflops =
        2.0 * 4096.0 * d as f64 * 4.0 * d as f64 * reps as f64 / t0.elapsed().as_secs_f64() / 1e9;
    // Parameters are all matmul weights except embeddings (a gather) and norms; the head is a matmul.
    let flops =
        2.0 * card.parameters as f64 + 2.0 * card.layers as f64 * t as f64 * card.hidden as f64;
    Ok((gflops, flops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::rng::Rng;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut r = Rng::new(1);
        assert_eq!(pick(&[0.0, 2.0, 2.0, 1.0], &Strategy::Greedy, &mut r), 1);
    }

    #[test]
    fn sampling_respects_top_k_and_top_p_and_is_seeded() {
        let logits = [3.0, 2.0, 1.0, 0.0, -1.0];
        let s = Strategy::Sample {
            temperature: 1.0,
            top_k: Some(2),
            top_p: None,
        };
        let mut r = Rng::new(5);
        let draws: Vec<u32> = (0..400).map(|_| pick(&logits, &s, &mut r)).collect();
        assert!(draws.iter().all(|&d| d < 2));
        // P(0 | top-2) = e / (e + 1) ≈ 0.731; 400 draws put the count well inside [250, 335].
        let zeros = draws.iter().filter(|&&d| d == 0).count();
        assert!((250..=335).contains(&zeros), "{zeros}");
        let p = Strategy::Sample {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.5),
        };
        // p(0) ≈ 0.636 ≥ 0.5, so top-p keeps token 0 alone.
        assert!((0..50).all(|_| pick(&logits, &p, &mut r) == 0));
        let again: Vec<u32> = {
            let mut r = Rng::new(5);
            (0..400).map(|_| pick(&logits, &s, &mut r)).collect()
        };
        assert_eq!(draws, again);
    }
}
