//! A deterministic mock language model read from a fixture (`--model mock:<file>`), for end-to-end
//! tests of probes and reports without model weights.
//!
//! Tokens are bytes (ids 0–255) plus BOS (256) and EOS (257); a BOS is prepended. The next-byte
//! logits are a fixed pseudo-random table over (previous byte, next byte) derived from the fixture's
//! seed, plus `boost` for the byte that continues any memorised text whose beginning equals the text
//! so far (and for EOS when the text so far equals a memorised text). Memorised texts therefore score
//! higher than other texts, as training members do under a real model that memorised them.
//!
//! ```json
//! { "format": "phiprobe-mock", "seed": 7, "boost": 6.0, "memorized": ["Patient MRN 123..."] }
//! ```

use std::path::Path;

use serde::Deserialize;

use super::{
    Decoding, LanguageModel, SeqScores, TokenScore, pick, score::row_stats, scored_positions,
};
use crate::evidence::{FileHash, ModelCard, TokenizerFacts};
use crate::stats::rng::Rng;

const BOS: u32 = 256;
const EOS: u32 = 257;
const VOCAB: usize = 258;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    format: String,
    seed: u64,
    boost: f32,
    memorized: Vec<String>,
}

/// The mock model.
pub struct MockModel {
    table: Vec<f32>,
    boost: f32,
    memorized: Vec<Vec<u8>>,
    card: ModelCard,
}

impl MockModel {
    /// Reads a mock fixture.
    pub fn open(path: &Path) -> crate::Result<Self> {
        let bytes = crate::fsx::read_bytes(path, crate::fsx::input::MAX_TEXT_BYTES)?;
        let fx: Fixture = serde_json::from_slice(&bytes).map_err(|e| crate::Error::Model {
            path: path.to_path_buf(),
            message: format!("not a mock-model fixture: {}", crate::redact::json(&e)),
        })?;
        if fx.format != "phiprobe-mock" {
            return Err(crate::Error::Model {
                path: path.to_path_buf(),
                message: "format must be \"phiprobe-mock\"".into(),
            });
        }
        if !fx.boost.is_finite() {
            return Err(crate::Error::Model {
                path: path.to_path_buf(),
                message: "boost must be a finite number".into(),
            });
        }
        Ok(Self::new(
            fx.seed,
            fx.boost,
            fx.memorized,
            FileHash::of(&path.display().to_string(), &bytes),
        ))
    }

    /// Builds a mock model directly.
    pub fn new(seed: u64, boost: f32, memorized: Vec<String>, file: FileHash) -> Self {
        let mut rng = Rng::derive(seed, "mock-model", 0);
        let table = (0..VOCAB * VOCAB)
            .map(|_| (rng.unit() * 4.0 - 2.0) as f32)
            .collect();
        let card = ModelCard {
            architecture: "mock".into(),
            format: "mock".into(),
            parameters: (VOCAB * VOCAB) as u64,
            stored_dtype: "F32".into(),
            compute_dtype: "F32".into(),
            layers: 0,
            hidden: 0,
            context_length: 1 << 20,
            files: vec![file],
            tokenizer: TokenizerFacts {
                source: "mock".into(),
                vocab_size: VOCAB,
                adds_bos: true,
                bos: Some(BOS),
                eos: vec![EOS],
                pad: None,
                scored_positions: scored_positions(true),
            },
            adapter: None,
        };
        MockModel {
            table,
            boost,
            memorized: memorized.into_iter().map(String::into_bytes).collect(),
            card,
        }
    }

    /// Next-token logits after `prefix` (which starts with BOS).
    fn logits(&self, prefix: &[u32]) -> Vec<f32> {
        let prev = *prefix.last().expect("non-empty prefix") as usize;
        let mut row = self.table[prev * VOCAB..(prev + 1) * VOCAB].to_vec();
        let text: Vec<u8> = prefix[1..]
            .iter()
            .filter(|&&t| t < 256)
            .map(|&t| t as u8)
            .collect();
        let mut boosted = [false; VOCAB];
        for m in &self.memorized {
            if m.starts_with(&text) {
                let next = m.get(text.len()).map_or(EOS as usize, |&b| usize::from(b));
                if !boosted[next] {
                    row[next] += self.boost;
                    boosted[next] = true;
                }
            }
        }
        row
    }
}

impl LanguageModel for MockModel {
    fn card(&self) -> &ModelCard {
        &self.card
    }
    fn encode(&self, text: &str) -> crate::Result<Vec<u32>> {
        Ok(std::iter::once(BOS)
            .chain(text.bytes().map(u32::from))
            .collect())
    }
    fn decode(&self, ids: &[u32]) -> crate::Result<String> {
        let bytes: Vec<u8> = ids.iter().filter(|&&t| t < 256).map(|&t| t as u8).collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
    fn token_text(&self, id: u32) -> String {
        match id {
            BOS => "<bos>".into(),
            EOS => "<eos>".into(),
            b => String::from_utf8_lossy(&[b as u8]).into_owned(),
        }
    }
    fn score(&self, batch: &[Vec<u32>]) -> crate::Result<Vec<SeqScores>> {
        batch
            .iter()
            .map(|seq| {
                if seq.first() != Some(&BOS) || seq.iter().any(|&t| t as usize >= VOCAB) {
                    return Err(crate::Error::Usage(
                        "mock model sequences start with BOS and hold byte tokens".into(),
                    ));
                }
                let scores: Vec<TokenScore> = (1..seq.len())
                    .map(|p| row_stats(&self.logits(&seq[..p]), seq[p]))
                    .collect();
                Ok(SeqScores {
                    tokens: seq.clone(),
                    first_scored: 1,
                    scores,
                })
            })
            .collect()
    }
    fn next_logprobs(&self, prefixes: &[Vec<u32>]) -> crate::Result<Vec<Vec<f32>>> {
        prefixes
            .iter()
            .map(|seq| {
                if seq.first() != Some(&BOS) || seq.iter().any(|&t| t as usize >= VOCAB) {
                    return Err(crate::Error::Usage(
                        "mock model sequences start with BOS and hold byte tokens".into(),
                    ));
                }
                Ok(super::score::log_softmax(&self.logits(seq)))
            })
            .collect()
    }
    fn generate(&self, prompts: &[Vec<u32>], d: &Decoding) -> crate::Result<Vec<Vec<u32>>> {
        if let super::Strategy::Beam { width } = d.strategy {
            super::check_beam(width, VOCAB)?;
            return Ok(prompts
                .iter()
                .map(|p| {
                    let mut beams: Vec<(Vec<u32>, f64, bool)> =
                        vec![(Vec::new(), 0.0, false); width];
                    for step in 0..d.max_new_tokens {
                        let rows: Vec<Vec<f32>> = beams
                            .iter()
                            .map(|(path, _, _)| {
                                let seq: Vec<u32> = p.iter().chain(path).copied().collect();
                                super::score::log_softmax(&self.logits(&seq))
                            })
                            .collect();
                        let scores: Vec<f64> = beams.iter().map(|b| b.1).collect();
                        let fin: Vec<bool> = beams.iter().map(|b| b.2).collect();
                        let keep = super::beam_step(&scores, &rows, &fin, step == 0, width);
                        beams = (0..width)
                            .map(|j| {
                                let (bi, tok, sc) = keep[j.min(keep.len() - 1)];
                                let mut path = beams[bi].0.clone();
                                let fin = match tok {
                                    Some(t) => {
                                        path.push(t);
                                        d.stop_at_eos && t == EOS
                                    }
                                    None => true,
                                };
                                (
                                    path,
                                    if j < keep.len() {
                                        sc
                                    } else {
                                        f64::NEG_INFINITY
                                    },
                                    fin,
                                )
                            })
                            .collect();
                        if beams.iter().all(|b| b.2) {
                            break;
                        }
                    }
                    beams
                        .into_iter()
                        .enumerate()
                        .max_by(|x, y| x.1.1.total_cmp(&y.1.1).then(y.0.cmp(&x.0)))
                        .map(|(_, b)| b.0)
                        .unwrap_or_default()
                })
                .collect());
        }
        Ok(prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut rng = Rng::derive(d.seed, "generate", i as u64);
                let mut seq = p.clone();
                let mut out = Vec::new();
                for _ in 0..d.max_new_tokens {
                    let t = pick(&self.logits(&seq), &d.strategy, &mut rng);
                    out.push(t);
                    seq.push(t);
                    if d.stop_at_eos && t == EOS {
                        break;
                    }
                }
                out
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Strategy;

    fn model() -> MockModel {
        MockModel::new(7, 6.0, vec!["MRN 12345".into()], FileHash::of("x", b""))
    }

    #[test]
    fn memorised_text_scores_higher_and_is_regurgitated() {
        let m = model();
        let s = m
            .score(&[
                m.encode("MRN 12345").unwrap(),
                m.encode("MRN 99999").unwrap(),
            ])
            .unwrap();
        assert!(
            s[0].mean() > s[1].mean() + 1.0,
            "{} vs {}",
            s[0].mean(),
            s[1].mean()
        );
        let d = Decoding {
            strategy: Strategy::Greedy,
            max_new_tokens: 20,
            seed: 1,
            stop_at_eos: true,
        };
        let out = m.generate(&[m.encode("MRN").unwrap()], &d).unwrap();
        assert_eq!(m.decode(&out[0]).unwrap(), " 12345");
        assert_eq!(out[0].last(), Some(&EOS));
    }

    #[test]
    fn beam_search_is_exhaustive_when_as_wide_as_the_vocabulary() {
        let m = model();
        let p = m.encode("Pat").unwrap();
        let d = |w| Decoding {
            strategy: Strategy::Beam { width: w },
            max_new_tokens: 2,
            seed: 0,
            stop_at_eos: false,
        };
        let got = m.generate(std::slice::from_ref(&p), &d(VOCAB)).unwrap()[0].clone();
        let first = crate::model::score::log_softmax(&m.logits(&p));
        let mut best = (f64::NEG_INFINITY, vec![]);
        for a in 0..VOCAB as u32 {
            let mut seq = p.clone();
            seq.push(a);
            let second = crate::model::score::log_softmax(&m.logits(&seq));
            for b in 0..VOCAB as u32 {
                let s = f64::from(first[a as usize]) + f64::from(second[b as usize]);
                if s > best.0 {
                    best = (s, vec![a, b]);
                }
            }
        }
        assert_eq!(got, best.1);
        let greedy = Decoding {
            strategy: Strategy::Greedy,
            ..d(1)
        };
        assert_eq!(
            m.generate(std::slice::from_ref(&p), &d(1)).unwrap(),
            m.generate(std::slice::from_ref(&p), &greedy).unwrap()
        );
    }
}
