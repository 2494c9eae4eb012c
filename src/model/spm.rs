//! llama-style SentencePiece tokenisation from GGUF metadata (`tokenizer.ggml.model = "llama"`), as
//! llama.cpp performs it: spaces become `▁` (with one prepended when `add_space_prefix`), the text is
//! split into characters, and adjacent pieces are merged greedily, highest-scoring vocabulary entry
//! first (leftmost on ties); characters outside the vocabulary fall back to `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// A SentencePiece vocabulary.
pub struct Spm {
    pieces: Vec<String>,
    scores: Vec<f32>,
    /// Control tokens (type 3) are dropped when decoding with `skip_special`.
    control: Vec<bool>,
    index: HashMap<String, u32>,
    bytes: [Option<u32>; 256],
    unk: Option<u32>,
    add_space_prefix: bool,
}

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Highest score first; on equal scores the leftmost pair.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    /// Builds the vocabulary from GGUF token strings, scores and types.
    pub fn new(
        tokens: &[&str],
        scores: Vec<f32>,
        types: &[u64],
        unk: Option<u32>,
        add_space_prefix: bool,
    ) -> Result<Self, String> {
        if scores.len() != tokens.len() {
            return Err("tokenizer.ggml.scores and tokenizer.ggml.tokens differ in length".into());
        }
        let mut index = HashMap::with_capacity(tokens.len());
        let mut bytes = [None; 256];
        for (i, (t, ty)) in tokens.iter().zip(types).enumerate() {
            if *ty == 6
                && let Some(b) = t
                    .strip_prefix("<0x")
                    .and_then(|h| h.strip_suffix('>'))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                bytes[usize::from(b)] = Some(i as u32);
            }
            index.entry(t.to_string()).or_insert(i as u32);
        }
        Ok(Spm {
            pieces: tokens.iter().map(|t| t.to_string()).collect(),
            scores,
            control: types.iter().map(|&t| t == 3).collect(),
            index,
            bytes,
            unk,
            add_space_prefix,
        })
    }

    /// Token ids of `text` (no BOS).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut s = String::with_capacity(text.len() + 3);
        if self.add_space_prefix {
            s.push('▁');
        }
        s.extend(text.chars().map(|c| if c == ' ' { '▁' } else { c }));
        let n = s.chars().count();
        let mut syms: Vec<Sym> = s
            .char_indices()
            .enumerate()
            .map(|(k, (i, c))| Sym {
                start: i,
                len: c.len_utf8(),
                prev: k.checked_sub(1),
                next: (k + 1 < n).then_some(k + 1),
            })
            .collect();
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], left: usize, right: usize| {
            let (a, b) = (syms[left], syms[right]);
            let piece = &s[a.start..b.start + b.len];
            if let Some(&id) = self.index.get(piece) {
                heap.push(Bigram {
                    score: self.scores[id as usize],
                    left,
                    right,
                    len: piece.len(),
                });
            }
        };
        for i in 1..n {
            push(&mut heap, &syms, i - 1, i);
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (syms[bg.left], syms[bg.right]);
            // Skip pairs whose symbols have changed since the pair was queued.
            if l.len == 0 || r.len == 0 || l.len + r.len != bg.len || l.next != Some(bg.right) {
                continue;
            }
            syms[bg.left].len += r.len;
            syms[bg.left].next = r.next;
            syms[bg.right].len = 0;
            if let Some(nx) = r.next {
                syms[nx].prev = Some(bg.left);
            }
            if let Some(pv) = syms[bg.left].prev {
                push(&mut heap, &syms, pv, bg.left);
            }
            if let Some(nx) = syms[bg.left].next {
                push(&mut heap, &syms, bg.left, nx);
            }
        }
        let mut out = Vec::new();
        let mut cur = Some(0);
        while let Some(i) = cur {
            let sym = syms[i];
            let piece = &s[sym.start..sym.start + sym.len];
            match self.index.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.bytes[usize::from(b)].or(self.unk) {
                            out.push(id);
                        }
                    }
                }
            }
            cur = sym.next;
        }
        out
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(piece) = self.pieces.get(id as usize) else {
                continue;
            };
            if skip_special && self.control[id as usize] {
                continue;
            }
            match self.bytes.iter().position(|&b| b == Some(id)) {
                Some(b) => bytes.push(b as u8),
                None => bytes.extend(piece.replace('▁', " ").bytes()),
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match (self.add_space_prefix, text.strip_prefix(' ')) {
            (true, Some(rest)) => rest.to_string(),
            _ => text,
        }
    }

    /// Surface form of one token.
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id], false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        // "▁ab" beats "▁a" + "b"; "c" is unknown and falls back to its byte token.
        let toks = ["<unk>", "▁", "a", "b", "▁a", "ab", "▁ab", "<0x63>"];
        let scores = vec![0.0, -1.0, -1.0, -1.0, -2.0, -3.0, -1.5, 0.0];
        let types = [2, 1, 1, 1, 1, 1, 1, 6];
        let spm = Spm::new(&toks, scores, &types, Some(0), true).unwrap();
        assert_eq!(spm.encode("ab"), vec![6]);
        assert_eq!(spm.encode("abc"), vec![6, 7]);
        assert_eq!(spm.decode(&[6, 7], true), "abc");
    }
}
