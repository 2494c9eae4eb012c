//! Exact canary rank by best-first search over the format's token tree.
//!
//! The rank of a secret s* among all N secrets of its format is 1 + the number of other secrets
//! the model finds at least as likely (ties count against the secret, as in TF Privacy's
//! `secret_sharer`). Enumerating N = 10⁹ SSNs is out of reach; but log-probabilities only fall
//! as a sequence grows, so every secret below a node of the token tree is at most as likely as
//! the node's prefix. The search therefore expands only the nodes whose prefix is at least as
//! likely as s* — each node's next-token distribution computed once, in batches, and reused for
//! all its children — and counts the complete secrets it reaches. What it counts equals
//! enumeration exactly (a property test checks this against brute force on small spaces).
//!
//! The sentence is split into a fixed token prefix (identical for every secret) and a region:
//! the rest of the context before the secret, the secret, and the context after it. A path
//! through the region counts only if it is the tokenizer's own (canonical) tokenization of its
//! sentence, because that is what scoring the sentence measures; non-canonical splits of the
//! same text are pruned as soon as the secret's characters are all known.

use std::collections::{BinaryHeap, HashMap};

use crate::model::LanguageModel;
use crate::train::canary::{CharClass, Format};
use crate::{Error, Result};

/// Surface text of every token, as it appears inside a longer text.
pub struct Surfaces {
    /// Characters of each token id (empty for special tokens).
    chars: Vec<Vec<char>>,
    /// Token ids by first character.
    by_first: HashMap<char, Vec<u32>>,
}

impl Surfaces {
    /// Decodes every token after an anchor token, so tokenizers that drop a leading space on a
    /// text's first token still report it.
    pub fn of(model: &dyn LanguageModel) -> Result<Self> {
        let vocab = model.card().tokenizer.vocab_size;
        let anchor_ids = model.encode("a")?;
        let anchor = *anchor_ids.last().ok_or_else(|| {
            Error::Compute("the tokenizer encodes \"a\" to no tokens".into())
        })?;
        let base = model.decode(&[anchor])?;
        let mut chars = Vec::with_capacity(vocab);
        let mut by_first: HashMap<char, Vec<u32>> = HashMap::new();
        for id in 0..vocab as u32 {
            let text = model.decode(&[anchor, id])?;
            let surface: Vec<char> = match text.strip_prefix(&base) {
                Some(rest) if !rest.contains('\u{fffd}') => rest.chars().collect(),
                _ => Vec::new(),
            };
            if let Some(&c) = surface.first() {
                by_first.entry(c).or_default().push(id);
            }
            chars.push(surface);
        }
        Ok(Self { chars, by_first })
    }
}

/// One canary to rank.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The secret's format.
    pub format: &'a Format,
    /// Context with `{secret}`.
    pub context: &'a str,
    /// The secret.
    pub secret: &'a str,
}

/// Search limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most node expansions (prefix forward passes) before giving up with a bound.
    pub max_expansions: u64,
    /// Prefixes per model call.
    pub batch: usize,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// 1 + secrets at least as likely as the canary found; exact when `exact`, else a lower bound.
    pub rank: u64,
    /// Whether the search finished (the rank is exact).
    pub exact: bool,
    /// Prefix forward passes (node expansions), the search's cost in model calls.
    pub expansions: u64,
    /// Batched calls to the model.
    pub batches: u64,
    /// Complete secrets scored along the way.
    pub leaves: u64,
    /// Σ log p of the canary's region tokens (natural log), as the search computed it.
    pub logprob: f64,
    /// Tokens in the fixed prefix shared by every secret.
    pub fixed_tokens: usize,
}

#[derive(Debug)]
struct Node {
    lp: f64,
    path: Vec<u32>,
    text: Vec<char>,
}

impl PartialEq for Node {
    fn eq(&self, o: &Self) -> bool {
        self.lp.total_cmp(&o.lp).is_eq() && self.path == o.path
    }
}
impl Eq for Node {}
impl PartialOrd for Node {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Node {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Most likely first; shorter, then smaller paths first among equals (deterministic).
        self.lp
            .total_cmp(&o.lp)
            .then_with(|| o.path.len().cmp(&self.path.len()))
            .then_with(|| o.path.cmp(&self.path))
    }
}

/// The sentence's parts: text before the secret (A), after it (B).
fn split(context: &str) -> Result<(&str, &str)> {
    let at = context
        .find("{secret}")
        .ok_or_else(|| Error::Usage(format!("canary context '{context}' has no {{secret}}")))?;
    Ok((&context[..at], &context[at + "{secret}".len()..]))
}

/// The fixed token prefix and the region's start (byte offset into A): the latest split at a
/// whitespace character of A (or A's start) whose tokens begin the sentence's tokens.
fn fixed_prefix(model: &dyn LanguageModel, a: &str, full: &[u32]) -> Result<(Vec<u32>, usize)> {
    let mut cuts: Vec<usize> = a
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
        .collect();
    cuts.push(0);
    cuts.sort_unstable();
    cuts.dedup();
    for &q in cuts.iter().rev() {
        let fixed = model.encode(&a[..q])?;
        if !fixed.is_empty() && full.starts_with(&fixed) && fixed.len() < full.len() {
            return Ok((fixed, q));
        }
    }
    Err(Error::Usage(
        "cannot isolate the canary's tokens: no token prefix of the context is shared by the sentence (the tokenizer adds no BOS and merges across every word boundary)"
            .into(),
    ))
}

/// Ranks `q.secret` exactly (or bounds it) under `model`.
pub fn exact_rank(
    model: &dyn LanguageModel,
    surfaces: &Surfaces,
    q: &Query<'_>,
    limits: Limits,
) -> Result<Outcome> {
    if !q.format.contains(q.secret) {
        return Err(Error::Usage(format!(
            "canary secret '{}' does not fit its format '{}'",
            q.secret, q.format.text
        )));
    }
    let (a, b) = split(q.context)?;
    let sentence = |s: &str| format!("{a}{s}{b}");
    let full = model.encode(&sentence(q.secret))?;
    let (fixed, cut) = fixed_prefix(model, a, &full)?;
    // Region classes: the rest of A, the secret, B.
    let mut classes: Vec<CharClass> = a[cut..].chars().map(CharClass::Lit).collect();
    let secret_start = classes.len();
    let secret_classes = q.format.classes();
    classes.extend(&secret_classes);
    let secret_end = classes.len();
    classes.extend(b.chars().map(CharClass::Lit));
    let target_path = full[fixed.len()..].to_vec();
    {
        let text: Vec<char> = target_path
            .iter()
            .flat_map(|&t| surfaces.chars[t as usize].iter().copied())
            .collect();
        let want: Vec<char> = sentence(q.secret)[cut..].chars().collect();
        if text != want {
            return Err(Error::Usage(format!(
                "the tokenizer's token texts do not spell the canary sentence back (normalisation?); exact rank is not available for context '{}'",
                q.context
            )));
        }
    }
    let seq = |path: &[u32]| -> Vec<u32> {
        let mut v = fixed.clone();
        v.extend_from_slice(path);
        v
    };
    let mut expansions = 0u64;
    let mut batches = 0u64;
    // The canary's own path, computed first; its rows are reused when the search meets it.
    let mut cached: HashMap<Vec<u32>, Vec<f32>> = HashMap::new();
    let prefixes: Vec<Vec<u32>> = (0..target_path.len())
        .map(|i| seq(&target_path[..i]))
        .collect();
    let mut t_lp = 0.0f64;
    for (i, chunk) in prefixes.chunks(limits.batch.max(1)).enumerate() {
        let rows = model.next_logprobs(chunk)?;
        batches += 1;
        for (j, row) in rows.into_iter().enumerate() {
            let at = i * limits.batch.max(1) + j;
            t_lp += f64::from(row[target_path[at] as usize]);
            cached.insert(target_path[..at].to_vec(), row);
            expansions += 1;
        }
    }
    // Canonical tokenization per completed secret (several paths can spell the same one).
    let mut canonical: HashMap<String, Option<Vec<u32>>> = HashMap::new();
    let region_len = classes.len();
    let mut heap = BinaryHeap::new();
    heap.push(Node {
        lp: 0.0,
        path: Vec::new(),
        text: Vec::new(),
    });
    let mut count = 0u64; // other secrets at least as likely
    let mut leaves = 0u64;
    let mut exhausted = false;
    while let Some(top) = heap.peek() {
        if top.lp < t_lp {
            break;
        }
        if expansions >= limits.max_expansions {
            exhausted = true;
            break;
        }
        let mut take = Vec::new();
        while take.len() < limits.batch.max(1) {
            match heap.peek() {
                Some(n) if n.lp >= t_lp => take.push(heap.pop().expect("peeked")),
                _ => break,
            }
        }
        let need: Vec<Vec<u32>> = take
            .iter()
            .filter(|n| !cached.contains_key(&n.path))
            .map(|n| seq(&n.path))
            .collect();
        let mut fresh = if need.is_empty() {
            Vec::new()
        } else {
            batches += 1;
            model.next_logprobs(&need)?
        }
        .into_iter();
        for node in take {
            let row = match cached.remove(&node.path) {
                Some(r) => r,
                None => {
                    expansions += 1;
                    fresh.next().expect("one row per uncached prefix")
                }
            };
            let pos = node.text.len();
            // Children: tokens whose text fits the classes from `pos` on.
            let first = classes[pos];
            let mut kids: Vec<u32> = Vec::new();
            for c in first.chars() {
                if let Some(ids) = surfaces.by_first.get(&c) {
                    for &id in ids {
                        let s = &surfaces.chars[id as usize];
                        if pos + s.len() <= region_len
                            && s.iter().zip(&classes[pos..]).all(|(&ch, k)| k.allows(ch))
                        {
                            kids.push(id);
                        }
                    }
                }
            }
            kids.sort_unstable();
            for id in kids {
                let lp = node.lp + f64::from(row[id as usize]);
                if lp < t_lp {
                    continue;
                }
                let mut path = node.path.clone();
                path.push(id);
                let mut text = node.text.clone();
                text.extend(&surfaces.chars[id as usize]);
                if text.len() >= secret_end {
                    // The secret is known: only its canonical tokenization counts.
                    let secret: String = text[secret_start..secret_end].iter().collect();
                    let canon = match canonical.get(&secret) {
                        Some(c) => c.clone(),
                        None => {
                            let c = if q.format.contains(&secret) {
                                let toks = model.encode(&sentence(&secret))?;
                                toks.starts_with(&fixed).then(|| toks[fixed.len()..].to_vec())
                            } else {
                                None
                            };
                            canonical.insert(secret.clone(), c.clone());
                            c
                        }
                    };
                    let Some(canon) = canon else { continue };
                    if !canon.starts_with(&path) {
                        continue;
                    }
                    if text.len() == region_len {
                        leaves += 1;
                        if path != target_path {
                            count += 1;
                        }
                        continue;
                    }
                }
                heap.push(Node { lp, path, text });
            }
        }
    }
    Ok(Outcome {
        rank: 1 + count,
        exact: !exhausted,
        expansions,
        batches,
        leaves,
        logprob: t_lp,
        fixed_tokens: fixed.len(),
    })
}

/// Brute force, for tests and benchmarks: scores every secret's sentence with
/// [`LanguageModel::score`] and returns 1 + the other secrets at least as likely, and the
/// number of sentences scored. `None` when the space has more than `limit` secrets.
pub fn brute_rank(
    model: &dyn LanguageModel,
    q: &Query<'_>,
    limit: u64,
    batch: usize,
) -> Result<Option<(u64, u64)>> {
    let Some(all) = q.format.enumerate(limit) else {
        return Ok(None);
    };
    let (a, b) = split(q.context)?;
    let full = model.encode(&format!("{a}{}{b}", q.secret))?;
    let (fixed, _) = fixed_prefix(model, a, &full)?;
    let region_lp = |toks: &[u32], scores: &[crate::model::TokenScore]| -> Option<f64> {
        // scores[i] predicts toks[i + 1]; the region starts at toks[fixed.len()].
        toks.starts_with(&fixed).then(|| {
            scores[fixed.len() - 1..]
                .iter()
                .map(|s| f64::from(s.logprob))
                .sum()
        })
    };
    let mut target = None;
    let mut others = Vec::with_capacity(all.len());
    for chunk in all.chunks(batch.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk
            .iter()
            .map(|s| model.encode(&format!("{a}{s}{b}")))
            .collect::<Result<_>>()?;
        for (s, sc) in chunk.iter().zip(model.score(&seqs)?) {
            let Some(lp) = region_lp(&sc.tokens, &sc.scores) else {
                continue;
            };
            if s == q.secret {
                target = Some(lp);
            } else {
                others.push(lp);
            }
        }
    }
    let t = target.ok_or_else(|| Error::Compute("the canary was not enumerated".into()))?;
    let count = others.iter().filter(|&&x| x >= t).count() as u64;
    Ok(Some((1 + count, all.len() as u64)))
}
