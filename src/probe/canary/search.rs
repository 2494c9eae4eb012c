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
        let anchor = *anchor_ids
            .last()
            .ok_or_else(|| Error::Compute("the tokenizer encodes \"a\" to no tokens".into()))?;
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
    /// Nodes expanded (each one prefix forward pass): the search's cost in model calls.
    pub expansions: u64,
    /// Of those, the ones computed in this search (the rest were cached by an earlier canary
    /// of the same format and context).
    #[serde(default)]
    pub computed: u64,
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

/// A search over one (format, context) group's token tree. Node distributions and canonical
/// tokenizations are cached across the canaries of the group, so ranking several canaries of
/// one kind pays for the shared part of the tree once.
pub struct Searcher<'m> {
    model: &'m dyn LanguageModel,
    surfaces: &'m Surfaces,
    format: Format,
    a: String,
    b: String,
    fixed: Vec<u32>,
    cut: usize,
    classes: Vec<CharClass>,
    secret_start: usize,
    secret_end: usize,
    /// Allowed children of an expanded node, with their log-probabilities.
    rows: HashMap<Vec<u32>, Vec<(u32, f32)>>,
    canonical: HashMap<String, Canon>,
    /// Model forward passes (prefix rows) computed so far.
    pub computed: u64,
}

/// A secret's canonical tokenization, as the search sees it.
#[derive(Debug, Clone)]
enum Canon {
    /// Its region tokens.
    Path(Vec<u32>),
    /// Not a secret of the format, or its tokens do not begin with the fixed prefix.
    Outside,
    /// Its tokens do not spell it back (a token without a usable surface text): its path lies
    /// outside the tree, so a rank that met it can only be a bound.
    Unspellable,
}

impl<'m> Searcher<'m> {
    /// Prepares the tree of `format` in `context` (with `{secret}`); `example` is one secret of
    /// the format, used to find the token prefix every sentence shares.
    pub fn new(
        model: &'m dyn LanguageModel,
        surfaces: &'m Surfaces,
        format: &Format,
        context: &str,
        example: &str,
    ) -> Result<Self> {
        let (a, b) = split(context)?;
        let full = model.encode(&format!("{a}{example}{b}"))?;
        let (fixed, cut) = fixed_prefix(model, a, &full)?;
        let mut classes: Vec<CharClass> = a[cut..].chars().map(CharClass::Lit).collect();
        let secret_start = classes.len();
        classes.extend(format.classes());
        let secret_end = classes.len();
        classes.extend(b.chars().map(CharClass::Lit));
        Ok(Self {
            model,
            surfaces,
            format: format.clone(),
            a: a.to_owned(),
            b: b.to_owned(),
            fixed,
            cut,
            classes,
            secret_start,
            secret_end,
            rows: HashMap::new(),
            canonical: HashMap::new(),
            computed: 0,
        })
    }

    fn sentence(&self, s: &str) -> String {
        format!("{}{s}{}", self.a, self.b)
    }

    /// The canonical region tokens of a secret.
    fn canonical(&mut self, secret: &str) -> Result<Canon> {
        if let Some(c) = self.canonical.get(secret) {
            return Ok(c.clone());
        }
        let c = if !self.format.contains(secret) {
            Canon::Outside
        } else {
            let toks = self.model.encode(&self.sentence(secret))?;
            if !toks.starts_with(&self.fixed) {
                Canon::Outside
            } else {
                let region = toks[self.fixed.len()..].to_vec();
                let spelled: Vec<char> = region
                    .iter()
                    .flat_map(|&t| self.surfaces.chars[t as usize].iter().copied())
                    .collect();
                let want: Vec<char> = self.sentence(secret)[self.cut..].chars().collect();
                if spelled == want {
                    Canon::Path(region)
                } else {
                    Canon::Unspellable
                }
            }
        };
        self.canonical.insert(secret.to_owned(), c.clone());
        Ok(c)
    }

    /// The allowed children of a node at character `pos` and their log-probabilities.
    fn children(&self, pos: usize, row: &[f32]) -> Vec<(u32, f32)> {
        let mut kids = Vec::new();
        for c in self.classes[pos].chars() {
            if let Some(ids) = self.surfaces.by_first.get(&c) {
                for &id in ids {
                    let s = &self.surfaces.chars[id as usize];
                    if pos + s.len() <= self.classes.len()
                        && s.iter()
                            .zip(&self.classes[pos..])
                            .all(|(&ch, k)| k.allows(ch))
                    {
                        kids.push((id, row[id as usize]));
                    }
                }
            }
        }
        kids.sort_unstable_by_key(|k| k.0);
        kids
    }

    /// Computes (once) the children of every node in `nodes` (paths with their text lengths).
    fn expand(&mut self, nodes: &[(&[u32], usize)], batch: usize) -> Result<u64> {
        let need: Vec<(Vec<u32>, usize)> = nodes
            .iter()
            .filter(|(p, _)| !self.rows.contains_key(*p))
            .map(|(p, pos)| (p.to_vec(), *pos))
            .collect();
        let mut calls = 0;
        for chunk in need.chunks(batch.max(1)) {
            let suffixes: Vec<Vec<u32>> = chunk.iter().map(|(p, _)| p.clone()).collect();
            let rows = self.model.next_logprobs_shared(&self.fixed, &suffixes)?;
            calls += 1;
            for ((p, pos), row) in chunk.iter().zip(rows) {
                let kids = self.children(*pos, &row);
                self.rows.insert(p.clone(), kids);
                self.computed += 1;
            }
        }
        Ok(calls)
    }

    /// Ranks `secret` exactly (or bounds it).
    ///
    /// Kept whole: the exact-rank search; its frontier, budget and counts are shared by every
    /// expansion.
    pub fn rank(&mut self, secret: &str, limits: Limits) -> Result<Outcome> {
        if !self.format.contains(secret) {
            return Err(Error::Usage(format!(
                "a canary secret ({} characters) does not fit its format '{}'",
                secret.chars().count(),
                self.format.text
            )));
        }
        let target_path = match self.canonical(secret)? {
            Canon::Path(p) => p,
            Canon::Outside => {
                return Err(Error::Usage(
                    "the canary sentence's tokens do not begin with the context's tokens; exact rank is not available"
                        .into(),
                ));
            }
            Canon::Unspellable => Vec::new(),
        };
        let want: Vec<char> = self.sentence(secret)[self.cut..].chars().collect();
        let spelled: Vec<char> = target_path
            .iter()
            .flat_map(|&t| self.surfaces.chars[t as usize].iter().copied())
            .collect();
        if spelled != want {
            return Err(Error::Usage(
                "the tokenizer's token texts do not spell the canary sentence back (normalisation?); exact rank is not available"
                    .into(),
            ));
        }
        let computed_before = self.computed;
        let mut incomplete = false;
        // The canary's own path first: its log-probability is the threshold.
        let mut pos = Vec::with_capacity(target_path.len());
        let mut at = 0;
        for &t in &target_path {
            pos.push(at);
            at += self.surfaces.chars[t as usize].len();
        }
        let nodes: Vec<(&[u32], usize)> = (0..target_path.len())
            .map(|i| (&target_path[..i], pos[i]))
            .collect();
        let mut batches = self.expand(&nodes, limits.batch)?;
        let mut t_lp = 0.0f64;
        for i in 0..target_path.len() {
            let kids = &self.rows[&target_path[..i]];
            let lp = kids
                .iter()
                .find(|k| k.0 == target_path[i])
                .map(|k| k.1)
                .ok_or_else(|| {
                    Error::Compute("the canary's own token is not a child of its prefix".into())
                })?;
            t_lp += f64::from(lp);
        }
        let mut heap = BinaryHeap::new();
        heap.push(Node {
            lp: 0.0,
            path: Vec::new(),
            text: Vec::new(),
        });
        let (mut count, mut leaves, mut visited) = (0u64, 0u64, 0u64);
        let mut exhausted = false;
        while heap.peek().is_some_and(|n| n.lp >= t_lp) {
            if visited >= limits.max_expansions {
                exhausted = true;
                break;
            }
            let mut take = Vec::new();
            while take.len() < limits.batch.max(1) && heap.peek().is_some_and(|n| n.lp >= t_lp) {
                take.push(heap.pop().expect("peeked"));
            }
            visited += take.len() as u64;
            let nodes: Vec<(&[u32], usize)> = take
                .iter()
                .map(|n| (n.path.as_slice(), n.text.len()))
                .collect();
            batches += self.expand(&nodes, limits.batch)?;
            for node in take {
                let kids = self.rows[&node.path].clone();
                for (id, lp_tok) in kids {
                    let lp = node.lp + f64::from(lp_tok);
                    if lp < t_lp {
                        continue;
                    }
                    let mut path = node.path.clone();
                    path.push(id);
                    let mut text = node.text.clone();
                    text.extend(&self.surfaces.chars[id as usize]);
                    if text.len() >= self.secret_end {
                        // The secret is known: only its canonical tokenization counts.
                        let s: String = text[self.secret_start..self.secret_end].iter().collect();
                        let canon = match self.canonical(&s)? {
                            Canon::Path(p) => p,
                            Canon::Outside => continue,
                            Canon::Unspellable => {
                                incomplete = true;
                                continue;
                            }
                        };
                        if !canon.starts_with(&path) {
                            continue;
                        }
                        if text.len() == self.classes.len() {
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
            exact: !exhausted && !incomplete,
            expansions: visited.max(target_path.len() as u64),
            computed: self.computed - computed_before,
            batches,
            leaves,
            logprob: t_lp,
            fixed_tokens: self.fixed.len(),
        })
    }
}

/// Ranks `q.secret` exactly (or bounds it) under `model`, with a fresh search.
pub fn exact_rank(
    model: &dyn LanguageModel,
    surfaces: &Surfaces,
    q: &Query<'_>,
    limits: Limits,
) -> Result<Outcome> {
    Searcher::new(model, surfaces, q.format, q.context, q.secret)?.rank(q.secret, limits)
}

/// Brute-force enumeration of a small space.
#[derive(Debug, Clone)]
pub struct Enumeration {
    /// 1 + the other secrets at least as likely as the canary.
    pub rank: u64,
    /// Sentences scored.
    pub scored: u64,
    /// The canary's region log-probability.
    pub logprob: f64,
    /// Every other secret's region log-probability.
    pub others: Vec<f64>,
}

/// Brute force, for tests and benchmarks: scores every secret's sentence with
/// [`LanguageModel::score`] (an independent code path from the search's next-token calls) and
/// ranks the canary among them. `None` when the space has more than `limit` secrets.
pub fn brute_rank(
    model: &dyn LanguageModel,
    q: &Query<'_>,
    limit: u64,
    batch: usize,
) -> Result<Option<Enumeration>> {
    let Some(all) = q.format.enumerate(limit) else {
        return Ok(None);
    };
    let (a, b) = split(q.context)?;
    let full = model.encode(&format!("{a}{}{b}", q.secret))?;
    let (fixed, _) = fixed_prefix(model, a, &full)?;
    let mut target = None;
    let mut others = Vec::with_capacity(all.len());
    for chunk in all.chunks(batch.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk
            .iter()
            .map(|s| model.encode(&format!("{a}{s}{b}")))
            .collect::<Result<_>>()?;
        for (s, sc) in chunk.iter().zip(model.score(&seqs)?) {
            // scores[i] predicts tokens[i + 1]; the region starts at tokens[fixed.len()].
            if !sc.tokens.starts_with(&fixed) {
                continue;
            }
            let lp: f64 = sc.scores[fixed.len() - 1..]
                .iter()
                .map(|t| f64::from(t.logprob))
                .sum();
            if s == q.secret {
                target = Some(lp);
            } else {
                others.push(lp);
            }
        }
    }
    let t = target.ok_or_else(|| Error::Compute("the canary was not enumerated".into()))?;
    Ok(Some(Enumeration {
        rank: 1 + others.iter().filter(|&&x| x >= t).count() as u64,
        scored: all.len() as u64,
        logprob: t,
        others,
    }))
}
