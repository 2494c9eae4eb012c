//! Model inversion: what the model reveals about a patient's attributes from what an attacker
//! already knows, and what that does to the chance of identifying the patient.
//!
//! - **Attribute inference** — the language-model form of model inversion (Fredrikson, Jha and
//!   Ristenpart, "Model Inversion Attacks that Exploit Confidence Information", CCS 2015; Yeom
//!   et al., "Privacy Risk in Machine Learning", CSF 2018; the candidate-scoring PII inference
//!   of Lukas et al., "Analyzing Leakage of Personally Identifiable Information in Language
//!   Models", IEEE S&P 2023). For a target record and a field, the field's value is masked in
//!   the record's text; every candidate from the field's domain is written the way the text
//!   writes the value ([`surface`]) and scored in the record's context — the shared context
//!   runs once through the model's KV cache and only the candidate spans are scored
//!   ([`LanguageModel::score_continuations`]). Candidates are ranked by total log-probability
//!   (and, reported beside it, by mean log-probability per token).
//! - **Three arms** as Anonymeter defines them (Giomi et al., "A Unified Framework for
//!   Quantifying Privacy Risk in Synthetic Data", PETS 2023): members (the attack),
//!   non-members (the control: what the model knows from generalisation alone) and a prior
//!   baseline (the most frequent value, leave-patient-out, optionally conditioned on
//!   quasi-identifiers). Rates are Wilson centres with their half-widths; the residual risk
//!   (attack − control)/(1 − control) carries Anonymeter's first-order error propagation.
//! - **Reconstruction from quasi-identifiers** (Fredrikson et al.'s inversion setting): a prompt
//!   holding only what the attacker knows (templates over the card's columns) is decoded by
//!   beam search; per field, how often the decode holds the target's value.
//! - **Linkage** (`risk::linkage`): per patient, the identification probability in a
//!   de-identified release given the released quasi-identifiers and the model's answers; the
//!   membership posterior implied by the membership probe's ε lower bound; unconditioned
//!   generations that match a sample-unique patient on identifying quasi-identifiers.
//!
//! Observations hold ranks, counts and record ids; never a value or a generated text.

pub mod surface;

use crate::evidence::metric;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::data::Role;
use crate::data::text::{FieldValues, TextRecords};
use crate::evidence::{
    ArmRate, FieldInference, Finding, InversionDetail, LinkStratum, LinkageDetail, LinkedPatient,
    MemorisedDetail, PosteriorDetail, ReconstructedField, ReconstructionDetail,
};
use crate::model::{Decoding, LanguageModel, Strategy};
use crate::risk::linkage;
use crate::stats::{Rng, bind, clopper_pearson, newcombe_difference, residual_success, wilson};
use crate::{Error, Result};

/// Probe id.
pub const PROBE: &str = "inversion";

/// Settings of the inversion probe (`[[probe]] kind = "inversion"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Fields to infer (columns of the card); empty: the card's sensitive columns.
    pub fields: Vec<String>,
    /// Patients per arm (members, non-members), a seeded sample; 0 = all.
    pub records: usize,
    /// Candidates ranked per target: the whole domain when it is this small, else the truth
    /// and a seeded sample of other values (plus the values of the target's released class
    /// for linkable fields).
    pub max_candidates: usize,
    /// k of the top-k rates.
    pub top_k: usize,
    /// Quasi-identifiers the prior baseline conditions on (empty: the marginal frequency).
    pub prior_qis: Vec<String>,
    /// Fewest other-patient records a prior class needs before the prior conditions on it.
    pub prior_min: usize,
    /// Quasi-identifiers of the de-identified release the linkage attacker matches on.
    pub released: Vec<String>,
    /// Fields matched against the release (None: the fields whose card role is sensitive).
    pub link_fields: Option<Vec<String>>,
    /// Identification-probability thresholds (0.09 and 0.05 are the usual precedents).
    pub thresholds: Vec<f64>,
    /// Size N of the population the training patients were drawn from (None: the dataset's
    /// patients).
    pub population: Option<u64>,
    /// Reconstruction prompt templates: text with `{column}` or `{column:A=x,B=y}`
    /// placeholders filled from the target record (empty: no reconstruction).
    pub prompts: Vec<String>,
    /// Fields checked in reconstructions (empty: the inferred fields and the card's direct
    /// identifiers).
    pub reconstruct: Vec<String>,
    /// Tokens decoded per reconstruction.
    pub reconstruct_tokens: usize,
    /// Beams of the reconstruction decode.
    pub beam_width: usize,
    /// Unconditioned generations matched against the patients (0: none).
    pub generations: usize,
    /// Tokens per generation.
    pub generation_tokens: usize,
    /// Sampling temperature of the generations.
    pub temperature: f32,
    /// Top-k of the generations' sampling.
    pub sample_top_k: Option<usize>,
    /// Quasi-identifier columns matched in generations (empty: the card's quasi-identifiers
    /// that have a Safe Harbor category).
    pub match_qis: Vec<String>,
    /// Values of one patient that must co-occur in a generation.
    pub min_match: usize,
    /// Prompts per generation call.
    pub batch: usize,
    /// Confidence level of every interval.
    pub confidence: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fields: Vec::new(),
            records: 200,
            max_candidates: 128,
            top_k: 5,
            prior_qis: Vec::new(),
            prior_min: 20,
            released: vec!["sex".into(), "birth_year".into(), "zip3".into()],
            link_fields: None,
            thresholds: vec![0.09, 0.05],
            population: None,
            prompts: Vec::new(),
            reconstruct: Vec::new(),
            reconstruct_tokens: 96,
            beam_width: 4,
            generations: 64,
            generation_tokens: 128,
            temperature: 1.0,
            sample_top_k: Some(40),
            match_qis: Vec::new(),
            min_match: 2,
            batch: 32,
            confidence: 0.95,
        }
    }
}

impl Settings {
    /// Checks ranges.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_candidates < 2 {
            return Err("max_candidates must be at least 2".into());
        }
        use crate::probe::{MAX_COUNT, MAX_TOKENS};
        crate::probe::check_counts(&[
            ("records", self.records, MAX_COUNT),
            ("max_candidates", self.max_candidates, MAX_COUNT),
            ("top_k", self.top_k, MAX_COUNT),
            ("prior_min", self.prior_min, MAX_COUNT),
            ("reconstruct_tokens", self.reconstruct_tokens, MAX_TOKENS),
            ("generations", self.generations, MAX_COUNT),
            ("generation_tokens", self.generation_tokens, MAX_TOKENS),
            ("min_match", self.min_match, MAX_TOKENS),
            ("batch", self.batch, MAX_TOKENS),
        ])?;
        if self.beam_width > crate::model::MAX_BEAM {
            return Err(format!(
                "beam_width must be at most {} (got {})",
                crate::model::MAX_BEAM,
                self.beam_width
            ));
        }
        if self.top_k == 0 || self.beam_width == 0 || self.batch == 0 || self.min_match == 0 {
            return Err("top_k, beam_width, batch and min_match must be at least 1".into());
        }
        if self.thresholds.is_empty() || self.thresholds.iter().any(|t| !(*t > 0.0 && *t < 1.0)) {
            return Err("thresholds must list probabilities in (0, 1)".into());
        }
        if self.population == Some(0) {
            return Err("population must be positive".into());
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err("temperature must be positive".into());
        }
        if self.sample_top_k == Some(0) {
            return Err("sample_top_k must be at least 1".into());
        }
        if self.reconstruct_tokens == 0 && !self.prompts.is_empty() {
            return Err("reconstruct_tokens must be at least 1".into());
        }
        for p in &self.prompts {
            parse_template(p)?;
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err("confidence must be in (0, 1)".into());
        }
        Ok(())
    }
}

/// A piece of a prompt template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Column {
        name: String,
        map: Option<Vec<(String, String)>>,
    },
}

/// Parses `text {column} text {column:A=x,B=y}`; `{{` and `}}` are literal braces.
fn parse_template(t: &str) -> std::result::Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => inner.push(ch),
                        None => return Err(format!("prompt {t:?}: '{{' without a closing '}}'")),
                    }
                }
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                let (name, map) = match inner.split_once(':') {
                    Some((n, m)) => {
                        let pairs = m
                            .split(',')
                            .map(|kv| {
                                kv.split_once('=')
                                    .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                                    .ok_or_else(|| {
                                        format!("prompt {t:?}: mapping {kv:?} must read value=text")
                                    })
                            })
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        (n.trim().to_owned(), Some(pairs))
                    }
                    None => (inner.trim().to_owned(), None),
                };
                if name.is_empty() {
                    return Err(format!("prompt {t:?}: an empty {{}} placeholder"));
                }
                out.push(Piece::Column { name, map });
            }
            '}' => return Err(format!("prompt {t:?}: '}}' without an opening '{{'")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Columns a template reads.
fn template_columns(pieces: &[Piece]) -> Vec<String> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Column { name, .. } => Some(name.clone()),
            Piece::Text(_) => None,
        })
        .collect()
}

/// Fills a template from one record; `None` when a value is missing or has no mapping.
fn fill_template(pieces: &[Piece], value: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Column { name, map } => {
                let v = value(name).filter(|v| !v.is_empty())?;
                match map {
                    Some(pairs) => out.push_str(&pairs.iter().find(|(k, _)| *k == v)?.1),
                    None => out.push_str(&v),
                }
            }
        }
    }
    Some(out)
}

/// Summary of one field in the observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldInfo {
    /// Column.
    pub name: String,
    /// Its card role (`sensitive`, `direct`, `quasi`, `unlisted`).
    pub role: String,
    /// Distinct values in the data.
    pub domain: u64,
    /// Sampled patients none of whose texts mention the value: (members, non-members).
    pub not_found: (u64, u64),
    /// Sampled patients whose text is longer than the model can score: (members,
    /// non-members).
    #[serde(default)]
    pub too_long: (u64, u64),
}

/// One attribute-inference target: a (patient, field) through one record that mentions it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Index into [`Observations::fields`].
    pub field: usize,
    /// The record's salted pseudonym (never its id).
    pub record: String,
    /// Member (attack) or non-member (control).
    pub member: bool,
    /// Candidates ranked.
    pub candidates: u32,
    /// Rank of the truth by total log-probability (1 = the model's top guess).
    pub rank: u32,
    /// Rank by mean log-probability per token.
    pub rank_normalised: u32,
    /// Rank under the prior baseline.
    pub prior_rank: u32,
    /// Model probability of the truth among the candidates (softmax of totals).
    pub p_true: f64,
}

/// One target patient of the linkage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkRow {
    /// The salted pseudonym of the patient's first record (never its id or a value).
    #[serde(default)]
    pub record: String,
    /// Member or not.
    pub member: bool,
    /// Patients sharing its released quasi-identifiers (itself included).
    pub class_size: u64,
    /// Linkable fields the model answered for it.
    pub fields: u32,
    /// Identification probability with the model's answers.
    pub p_model: f64,
    /// The extraction probe reproduced one of its direct identifiers.
    pub extracted: bool,
}

/// One reconstruction: a target record, one prompt, which fields the decode holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconRow {
    /// The record's salted pseudonym (never its id).
    pub record: String,
    /// Member or not.
    pub member: bool,
    /// Prompt index.
    pub prompt: usize,
    /// Per [`Observations::reconstruct_fields`]: whether the decode holds the record's value
    /// (`None`: the record has none, or the prompt gives it).
    pub hits: Vec<Option<bool>>,
}

/// `observations/inversion.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// Fields inferred.
    pub fields: Vec<FieldInfo>,
    /// Attribute-inference targets.
    pub targets: Vec<Target>,
    /// Linkage rows (one per target patient).
    pub link: Vec<LinkRow>,
    /// Fields matched against the release.
    pub link_fields: Vec<String>,
    /// Released quasi-identifiers used.
    pub released: Vec<String>,
    /// Patients with known membership in the data: (members, non-members).
    pub patients: (u64, u64),
    /// Fields checked in reconstructions.
    pub reconstruct_fields: Vec<String>,
    /// Columns the prompts give.
    pub given: Vec<String>,
    /// Reconstructions.
    pub reconstruction: Vec<ReconRow>,
    /// Memorised-record matching.
    pub memorised: Option<MemorisedDetail>,
    /// What was skipped and why.
    pub notes: Vec<String>,
    /// Settings.
    pub settings: Settings,
}

/// Progress callback: (stage, done, total).
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

/// Rank of `scores[truth]` (1 = highest); ties are broken by a seeded coin.
fn rank_of(scores: &[f64], truth: usize, rng: &mut Rng) -> u32 {
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    let t = key(scores[truth]);
    let mut greater = 0u32;
    let mut ties = 0u64;
    for (j, &s) in scores.iter().enumerate() {
        if j == truth {
            continue;
        }
        let s = key(s);
        if s > t {
            greater += 1;
        } else if s == t {
            ties += 1;
        }
    }
    1 + greater + rng.below(ties + 1) as u32
}

/// Log-softmax of totals.
fn log_softmax(scores: &[f64]) -> Vec<f64> {
    let clean: Vec<f64> = scores
        .iter()
        .map(|&s| if s.is_finite() { s } else { f64::NEG_INFINITY })
        .collect();
    let max = clean.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        // Nothing scored: no information, a uniform distribution.
        let u = -(scores.len().max(1) as f64).ln();
        return vec![u; scores.len()];
    }
    let z = clean.iter().map(|s| (s - max).exp()).sum::<f64>().ln() + max;
    clean.iter().map(|s| s - z).collect()
}

/// The records of every patient, in data order, and the patients in first-seen order. A
/// patient's membership is known when its records with a known flag agree; `mixed` counts the
/// patients whose records disagree (left out of both arms).
struct Patients {
    ids: Vec<String>,
    records: Vec<Vec<usize>>,
    member: Vec<Option<bool>>,
    mixed: u64,
}

fn group_patients(recs: &TextRecords) -> Patients {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut p = Patients {
        ids: Vec::new(),
        records: Vec::new(),
        member: Vec::new(),
        mixed: 0,
    };
    let mut flags: Vec<(bool, bool)> = Vec::new();
    for r in 0..recs.len() {
        let id = recs.patients[r].as_str();
        let i = *index.entry(id).or_insert_with(|| {
            p.ids.push(id.to_owned());
            p.records.push(Vec::new());
            flags.push((false, false));
            p.ids.len() - 1
        });
        p.records[i].push(r);
        match recs.member[r] {
            Some(true) => flags[i].0 = true,
            Some(false) => flags[i].1 = true,
            None => {}
        }
    }
    p.member = flags
        .iter()
        .map(|&f| match f {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        })
        .collect();
    p.mixed = flags.iter().filter(|f| f.0 && f.1).count() as u64;
    p
}

/// The model's answers about one patient's linkable fields: per field, the log-probability of
/// every candidate value (raw, unrendered).
type Answers = BTreeMap<usize, (HashMap<String, f64>, f64)>;

/// Context and candidate continuations of one target.
struct Scored {
    candidates: u32,
    rank: u32,
    rank_normalised: u32,
    p_true: f64,
    /// Raw value → log q (softmax over the scored candidates); every raw value that writes
    /// the same way as a scored candidate shares its score.
    log_q: HashMap<String, f64>,
    /// log q of a value that could not be scored (not writable in the text's style): the
    /// uniform ln(1/m), so that it neither favours nor penalises its patient.
    neutral: f64,
    /// Raw candidate values scored, truth first.
    values: Vec<String>,
}

/// Candidates set up for scoring: the shared context, each kept candidate's continuation
/// tokens, and which candidates (indices into the input) were kept.
pub struct Continuations {
    /// Shared context tokens.
    pub context: Vec<u32>,
    /// Continuation tokens per kept candidate.
    pub continuations: Vec<Vec<u32>>,
    /// Input indices of the kept candidates (the first candidate is always kept).
    pub kept: Vec<usize>,
}

/// Sets up `prefix ++ candidate ++ term` for every candidate: the longest common token prefix
/// is the shared context (so a tokenizer that merges across the boundary is handled), the rest
/// of each is its continuation. With no terminator text the model's EOS ends every candidate
/// (so a candidate that is a prefix of another cannot win by stopping early). Candidates after
/// the first that add no token of their own are dropped; the oldest context tokens (after any
/// BOS) are dropped to fit `max_len`. `None` when there is no shared token, the first
/// candidate adds none, or the candidates cannot fit.
pub fn candidate_continuations(
    model: &dyn LanguageModel,
    prefix: &str,
    candidates: &[String],
    term: &str,
    max_len: usize,
) -> Result<Option<Continuations>> {
    let eos = model.card().tokenizer.eos.first().copied();
    let mut full: Vec<Vec<u32>> = candidates
        .iter()
        .map(|r| {
            let mut t = model.encode(&format!("{prefix}{r}{term}"))?;
            if term.is_empty()
                && let Some(e) = eos
            {
                t.push(e);
            }
            Ok(t)
        })
        .collect::<Result<_>>()?;
    let mut kept: Vec<usize> = (0..full.len()).collect();
    loop {
        let Some(first) = full.first() else {
            return Ok(None);
        };
        let lcp = full[1..].iter().fold(first.len(), |l, f| {
            l.min(f.iter().zip(first).take_while(|(a, b)| a == b).count())
        });
        if lcp == 0 || first.len() == lcp || full.len() < 2 {
            return Ok(None);
        }
        if let Some(i) = full.iter().position(|f| f.len() == lcp) {
            full.remove(i);
            kept.remove(i);
            continue;
        }
        let mut context = first[..lcp].to_vec();
        let continuations: Vec<Vec<u32>> = full.iter().map(|f| f[lcp..].to_vec()).collect();
        let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
        if max_len > 0 && context.len() + longest > max_len {
            let keep_bos = usize::from(model.card().tokenizer.adds_bos).min(context.len());
            let excess = context.len() + longest - max_len;
            if context.len() <= keep_bos + excess {
                return Ok(None);
            }
            context.drain(keep_bos..keep_bos + excess);
        }
        return Ok(Some(Continuations {
            context,
            continuations,
            kept,
        }));
    }
}

/// The benchmark workload of candidate scoring: a clinical-note context of about 60 words and
/// `n` diagnosis titles from the generator's ICD-10-CM vocabulary as candidates, as the probe
/// would set them up. Used by the criterion bench and `phiprobe bench-inversion`.
pub fn bench_workload(model: &dyn LanguageModel, n: usize) -> Result<(Vec<u32>, Vec<Vec<u32>>)> {
    const CONTEXT: &str = "Encounter 3 August 2017 - Henderson, David (MRN 09164376), 82M. PMH: essential (primary) hypertension; paroxysmal atrial fibrillation. Best contact number 707.822.1194. Vitals: BP 143/81, BMI 29.0. INR 1.10 {INR}. Labs notable for Potassium of 4.50 mmol/L. Diagnosis ";
    let titles: Vec<String> = crate::data::synth::vocab::VOCAB
        .icd
        .iter()
        .map(|i| i.title.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(n.max(2))
        .collect();
    let c = candidate_continuations(model, CONTEXT, &titles, " coded", 0)?.ok_or_else(|| {
        Error::Usage("the model's tokenizer shares no context token across the candidates".into())
    })?;
    Ok((c.context, c.continuations))
}

/// Outcome of setting up and scoring one target.
enum Outcome {
    Scored(Scored),
    /// The value is not in the text, or the candidates cannot be set up.
    NotFound,
    /// The model refused the sequences (longer than it can score).
    TooLong,
}

/// Scores the candidates of one target record.
fn score_target(
    model: &dyn LanguageModel,
    text: &str,
    truth: &str,
    others: &[String],
    max_len: usize,
    rng: &mut Rng,
) -> Result<Outcome> {
    let Some(occ) = surface::find(text, truth) else {
        return Ok(Outcome::NotFound);
    };
    let prefix = &text[..occ.start];
    let term = surface::terminator(&text[occ.end..]);
    // Raw values by their written form (truth first); raw values that write the same way share
    // one candidate.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut written: Vec<String> = Vec::new();
    let mut raw_of: Vec<(String, usize)> = Vec::new();
    for v in std::iter::once(truth).chain(others.iter().map(String::as_str)) {
        if v.is_empty() {
            continue;
        }
        let Some(r) = surface::render(v, &occ.style) else {
            continue;
        };
        let next = written.len();
        let i = *index.entry(r.clone()).or_insert_with(|| {
            written.push(r);
            next
        });
        raw_of.push((v.to_owned(), i));
    }
    let Some(c) = candidate_continuations(model, prefix, &written, term, max_len)? else {
        return Ok(Outcome::NotFound);
    };
    if c.kept.len() < 2 {
        return Ok(Outcome::NotFound);
    }
    let rows = match model.score_continuations(&c.context, &c.continuations) {
        Ok(r) => r,
        Err(Error::Usage(_)) => return Ok(Outcome::TooLong),
        Err(e) => return Err(e),
    };
    let totals: Vec<f64> = rows
        .iter()
        .map(|r| r.iter().map(|&x| f64::from(x)).sum())
        .collect();
    let means: Vec<f64> = rows
        .iter()
        .zip(&totals)
        .map(|(r, t)| t / r.len().max(1) as f64)
        .collect();
    let lq = log_softmax(&totals);
    let slot: HashMap<usize, usize> = c.kept.iter().enumerate().map(|(j, &i)| (i, j)).collect();
    let log_q: HashMap<String, f64> = raw_of
        .iter()
        .filter_map(|(v, i)| slot.get(i).map(|&j| (v.clone(), lq[j])))
        .collect();
    let values: Vec<String> = c
        .kept
        .iter()
        .map(|&i| {
            raw_of
                .iter()
                .find(|(_, k)| *k == i)
                .map(|(v, _)| v.clone())
                .unwrap_or_default()
        })
        .collect();
    Ok(Outcome::Scored(Scored {
        candidates: c.kept.len() as u32,
        rank: rank_of(&totals, 0, rng),
        rank_normalised: rank_of(&means, 0, rng),
        p_true: lq[0].exp(),
        log_q,
        neutral: -(c.kept.len() as f64).ln(),
        values,
    }))
}

fn role_name(role: Option<Role>) -> String {
    role.map_or_else(|| "unlisted".into(), |r| r.name().to_owned())
}

/// Runs attribute inference, reconstruction, linkage inputs and generation matching.
/// `extracted`: patients whose direct identifier the extraction probe reproduced.
pub fn observe(
    model: &dyn LanguageModel,
    recs: &TextRecords,
    settings: &Settings,
    seed: u64,
    extracted: &HashSet<String>,
    progress: Progress<'_>,
) -> Result<Observations> {
    settings.validate().map_err(Error::Usage)?;
    let mut notes = Vec::new();
    let c = columns(recs, settings, &mut notes)?;
    let t = choose_targets(recs, settings, seed, &c, &mut notes)?;
    let run = Run {
        model,
        recs,
        settings,
        seed,
        c: &c,
        t: &t,
    };
    let mut inference = Inference::default();
    let total = c.fields.len() * t.chosen.len();
    for fi in 0..c.fields.len() {
        let mut step = |i: usize| {
            progress(
                "inversion: attribute inference",
                fi * t.chosen.len() + i,
                total,
            );
        };
        infer_field(run, fi, &mut inference, &mut step)?;
    }
    let link = link_rows(&c, &t, &inference.answers, extracted, recs);
    let reconstruction = reconstruct(run, &mut notes, progress)?;
    // Memorised-record matching.
    let memorised = if settings.generations > 0 && c.match_qis.len() >= settings.min_match {
        Some(match_generations(
            model,
            settings,
            seed,
            &t.pats,
            &c.cols,
            &c.match_qis,
            progress,
        )?)
    } else {
        if settings.generations > 0 {
            notes.push(format!(
                "memorised-record matching not run: it needs at least {} identifying quasi-identifier columns (match_qis), the data has {}",
                settings.min_match,
                c.match_qis.len()
            ));
        }
        None
    };
    Ok(Observations {
        fields: inference.infos,
        targets: inference.targets,
        link,
        link_fields: c.link_fields,
        released: c.released,
        patients: (t.members_n, t.control_n),
        reconstruct_fields: c.reconstruct_fields,
        given: c.given,
        reconstruction,
        memorised,
        notes,
        settings: settings.clone(),
    })
}

/// The columns an inversion run uses, resolved against the data and read.
struct Columns {
    /// Fields to infer.
    fields: Vec<String>,
    /// Prompt templates.
    templates: Vec<Vec<Piece>>,
    /// Columns the templates give the model.
    given: Vec<String>,
    /// Fields reconstruction looks for (not given by a template).
    reconstruct_fields: Vec<String>,
    /// Identifying quasi-identifiers of memorised-record matching.
    match_qis: Vec<String>,
    /// Inferred fields that enter the linkage posterior.
    link_fields: Vec<String>,
    /// Columns of the prior's classes.
    prior_qis: Vec<String>,
    /// Columns of the release.
    released: Vec<String>,
    /// Every column read, by name.
    cols: HashMap<String, FieldValues>,
}

/// Resolves the settings' columns against the card (defaults from column roles), reads them,
/// and notes the ones the data lacks.
///
/// Kept whole: each setting's columns are resolved in the order later ones depend on (fields,
/// templates, reconstruction, matching, linkage).
fn columns(recs: &TextRecords, settings: &Settings, notes: &mut Vec<String>) -> Result<Columns> {
    let card = recs.card.display().to_string();
    let fields: Vec<String> = if settings.fields.is_empty() {
        recs.columns_with_role(Role::Sensitive)?
    } else {
        settings.fields.clone()
    };
    if fields.is_empty() {
        return Err(Error::Usage(format!(
            "{card}: the inversion probe has no field to infer: the card declares no sensitive column; list fields in the plan (fields = [\"diagnosis\", …])"
        )));
    }
    let direct = recs.columns_with_role(Role::Direct)?;
    let templates: Vec<Vec<Piece>> = settings
        .prompts
        .iter()
        .map(|p| parse_template(p).map_err(Error::Usage))
        .collect::<Result<_>>()?;
    let given: Vec<String> = templates
        .iter()
        .flat_map(|t| template_columns(t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut reconstruct_wanted: Vec<String> = if settings.reconstruct.is_empty() {
        let mut v = fields.clone();
        v.extend(direct.iter().cloned());
        v
    } else {
        settings.reconstruct.clone()
    };
    {
        let mut seen = HashSet::new();
        reconstruct_wanted.retain(|f| seen.insert(f.clone()));
    }
    let match_wanted: Vec<String> = if settings.match_qis.is_empty() {
        use crate::phi::SafeHarbor as S;
        recs.columns_in_categories(Role::Quasi, &[S::Date, S::Geographic])?
    } else {
        settings.match_qis.clone()
    };
    let mut wanted: Vec<String> = Vec::new();
    for names in [
        &fields,
        &settings.prior_qis,
        &settings.released,
        &given,
        &reconstruct_wanted,
    ]
    .into_iter()
    .chain(settings.link_fields.as_ref())
    .chain([&match_wanted])
    {
        for n in names {
            if !wanted.contains(n) {
                wanted.push(n.clone());
            }
        }
    }
    let read = recs.read_columns(&wanted)?;
    let mut cols: HashMap<String, FieldValues> = HashMap::new();
    for (name, c) in wanted.iter().zip(read) {
        if let Some(c) = c {
            cols.insert(name.clone(), c);
        }
    }
    for f in &fields {
        if !cols.contains_key(f) {
            return Err(Error::Usage(format!(
                "{card}: inversion field '{f}' is not a column of the data; fix `fields` in the plan"
            )));
        }
    }
    let present = |names: &[String], what: &str, notes: &mut Vec<String>| -> Vec<String> {
        let (have, missing): (Vec<String>, Vec<String>) =
            names.iter().cloned().partition(|n| cols.contains_key(n));
        if !missing.is_empty() {
            notes.push(format!(
                "{what}: the data has no column {}; left out",
                missing.join(", ")
            ));
        }
        have
    };
    let prior_qis = present(&settings.prior_qis, "prior_qis", notes);
    let released = present(&settings.released, "released", notes);
    let reconstruct_fields: Vec<String> = present(&reconstruct_wanted, "reconstruct", notes)
        .into_iter()
        .filter(|f| !given.contains(f))
        .collect();
    let match_qis = present(&match_wanted, "match_qis", notes);
    let link_fields: Vec<String> = match &settings.link_fields {
        Some(l) => {
            let (inferred, other): (Vec<String>, Vec<String>) = present(l, "link_fields", notes)
                .into_iter()
                .partition(|f| fields.contains(f));
            if !other.is_empty() {
                notes.push(format!(
                    "link_fields: {} not among the inferred fields; left out (add them to `fields`)",
                    other.join(", ")
                ));
            }
            inferred
        }
        None => fields
            .iter()
            .filter(|f| cols[f.as_str()].role == Some(Role::Sensitive))
            .cloned()
            .collect(),
    };
    Ok(Columns {
        fields,
        templates,
        given,
        reconstruct_fields,
        match_qis,
        link_fields,
        prior_qis,
        released,
        cols,
    })
}

/// The patients, the target patients of both arms and the release's classes.
struct Targets {
    pats: Patients,
    /// Target patients (members first, each arm in patient order).
    chosen: Vec<usize>,
    /// Patients per released class key (over every patient of the data: the release).
    classes: HashMap<String, Vec<usize>>,
    members_n: u64,
    control_n: u64,
}

/// What every step of an inversion run reads: the model, the records, the settings and seed,
/// the resolved columns and the chosen targets.
#[derive(Clone, Copy)]
struct Run<'a> {
    model: &'a dyn LanguageModel,
    recs: &'a TextRecords,
    settings: &'a Settings,
    seed: u64,
    c: &'a Columns,
    t: &'a Targets,
}

/// Patient `p`'s released class key (their first record's released values).
fn class_key(pats: &Patients, c: &Columns, p: usize) -> String {
    let r = pats.records[p][0];
    c.released
        .iter()
        .map(|col| c.cols[col.as_str()].values[r].as_str())
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// Groups records by patient, draws each arm's targets (seeded; `records` per arm) and builds
/// the released classes.
fn choose_targets(
    recs: &TextRecords,
    settings: &Settings,
    seed: u64,
    c: &Columns,
    notes: &mut Vec<String>,
) -> Result<Targets> {
    let pats = group_patients(recs);
    let np = pats.ids.len();
    if pats.mixed > 0 {
        notes.push(format!(
            "{} patients have records in both the member and the non-member split; left out of both arms",
            pats.mixed
        ));
    }
    let members_n = pats.member.iter().filter(|m| **m == Some(true)).count() as u64;
    let control_n = pats.member.iter().filter(|m| **m == Some(false)).count() as u64;
    if members_n == 0 || control_n == 0 {
        return Err(Error::Usage(format!(
            "{}: the inversion probe needs members and non-members (the card's [membership] section)",
            recs.card.display()
        )));
    }
    let mut chosen: Vec<usize> = Vec::new();
    for (arm, want) in [(0u64, true), (1, false)] {
        let mut ps: Vec<usize> = (0..np).filter(|&p| pats.member[p] == Some(want)).collect();
        let mut rng = Rng::derive(seed, "inversion/targets", arm);
        for i in (1..ps.len()).rev() {
            let j = rng.index(i + 1);
            ps.swap(i, j);
        }
        if settings.records > 0 {
            ps.truncate(settings.records);
        }
        ps.sort_unstable();
        chosen.extend(ps);
    }
    let mut classes: HashMap<String, Vec<usize>> = HashMap::new();
    for p in 0..np {
        classes.entry(class_key(&pats, c, p)).or_default().push(p);
    }
    Ok(Targets {
        pats,
        chosen,
        classes,
        members_n,
        control_n,
    })
}

/// What attribute inference gathers over the fields.
#[derive(Default)]
struct Inference {
    infos: Vec<FieldInfo>,
    targets: Vec<Target>,
    answers: HashMap<usize, Answers>,
}

/// A field's value frequencies over every record, overall and within prior classes.
struct Frequencies<'a> {
    counts: BTreeMap<&'a str, u64>,
    cond: HashMap<(String, &'a str), u64>,
    cond_total: HashMap<String, u64>,
}

/// The prior class key of record `r`.
fn prior_key(c: &Columns, r: usize) -> String {
    c.prior_qis
        .iter()
        .map(|q| c.cols[q.as_str()].values[r].as_str())
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// Counts a field's values, overall and per prior class.
fn frequencies<'a>(c: &Columns, col: &'a FieldValues) -> Frequencies<'a> {
    let mut fq = Frequencies {
        counts: BTreeMap::new(),
        cond: HashMap::new(),
        cond_total: HashMap::new(),
    };
    for (r, v) in col.values.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        *fq.counts.entry(v.as_str()).or_default() += 1;
        if !c.prior_qis.is_empty() {
            let k = prior_key(c, r);
            *fq.cond.entry((k.clone(), v.as_str())).or_default() += 1;
            *fq.cond_total.entry(k).or_default() += 1;
        }
    }
    fq
}

/// Adds one to the member or the non-member side of a tally.
fn tally(t: &mut (u64, u64), member: bool) {
    if member {
        t.0 += 1;
    } else {
        t.1 += 1;
    }
}

/// Attribute inference of field `fi` for every target patient: the model ranks the true value
/// among candidates in a record's own context; the prior ranks them by frequency without the
/// patient's records.
fn infer_field(
    run: Run<'_>,
    fi: usize,
    out: &mut Inference,
    step: &mut dyn FnMut(usize),
) -> Result<()> {
    let Run {
        model,
        recs,
        seed,
        c,
        t,
        ..
    } = run;
    let f = &c.fields[fi];
    let col = &c.cols[f.as_str()];
    let fq = frequencies(c, col);
    let domain: Vec<&str> = fq.counts.keys().copied().collect();
    let is_link = c.link_fields.contains(f);
    let max_len = model.card().context_length;
    let mut not_found = (0u64, 0u64);
    let mut too_long = (0u64, 0u64);
    for (i, &p) in t.chosen.iter().enumerate() {
        step(i + 1);
        let member = t.pats.member[p] == Some(true);
        let mut rng = Rng::derive(seed, &format!("inversion/{f}"), p as u64);
        // A record of the patient (with the patient's membership) whose text mentions its
        // value, in seeded order.
        let mut rs: Vec<usize> = t.pats.records[p]
            .iter()
            .copied()
            .filter(|&r| recs.member[r] == t.pats.member[p])
            .collect();
        for i in (1..rs.len()).rev() {
            let j = rng.index(i + 1);
            rs.swap(i, j);
        }
        let Some(&r) = rs.iter().find(|&&r| {
            !col.values[r].is_empty() && surface::contains(&recs.texts[r], &col.values[r])
        }) else {
            tally(&mut not_found, member);
            continue;
        };
        let truth = col.values[r].as_str();
        let others = candidates(run, col, &domain, p, truth, is_link, &mut rng);
        let s = match score_target(model, &recs.texts[r], truth, &others, max_len, &mut rng)? {
            Outcome::Scored(s) => s,
            Outcome::NotFound => {
                tally(&mut not_found, member);
                continue;
            }
            Outcome::TooLong => {
                tally(&mut too_long, member);
                continue;
            }
        };
        let prior_rank = prior_rank(run, col, &fq, p, r, &s.values, &mut rng);
        if is_link {
            out.answers
                .entry(p)
                .or_default()
                .insert(fi, (s.log_q.clone(), s.neutral));
        }
        out.targets.push(Target {
            field: fi,
            record: recs.pseudonym(r),
            member,
            candidates: s.candidates,
            rank: s.rank,
            rank_normalised: s.rank_normalised,
            prior_rank,
            p_true: s.p_true,
        });
    }
    out.infos.push(FieldInfo {
        name: f.clone(),
        role: role_name(col.role),
        domain: domain.len() as u64,
        not_found,
        too_long,
    });
    Ok(())
}

/// The wrong candidates for patient `p`: the released class's distinct values (linkable
/// fields; at most 4 × max_candidates), then the domain or a seeded sample of it.
fn candidates(
    run: Run<'_>,
    col: &FieldValues,
    domain: &[&str],
    p: usize,
    truth: &str,
    is_link: bool,
    rng: &mut Rng,
) -> Vec<String> {
    let Run { settings, c, t, .. } = run;
    let mut others: Vec<String> = Vec::new();
    let mut taken: HashSet<&str> = HashSet::from([truth]);
    if is_link {
        'class: for &q in &t.classes[&class_key(&t.pats, c, p)] {
            for &rr in &t.pats.records[q] {
                let v = col.values[rr].as_str();
                if !v.is_empty() && taken.insert(v) {
                    others.push(v.to_owned());
                    if others.len() >= 4 * settings.max_candidates {
                        break 'class;
                    }
                }
            }
        }
    }
    if domain.len() <= settings.max_candidates {
        others.extend(
            domain
                .iter()
                .filter(|v| taken.insert(v))
                .map(|v| (*v).to_owned()),
        );
    } else {
        let mut idx: Vec<usize> = (0..domain.len()).collect();
        let mut i = 0;
        while others.len() + 1 < settings.max_candidates && i < idx.len() {
            let j = i + rng.index(idx.len() - i);
            idx.swap(i, j);
            let v = domain[idx[i]];
            if taken.insert(v) {
                others.push(v.to_owned());
            }
            i += 1;
        }
    }
    others
}

/// The prior's rank of the true value (`values[0]`) for patient `p` (record `r`): value
/// frequencies without this patient's records, within its prior class when that class keeps
/// at least `prior_min` records.
fn prior_rank(
    run: Run<'_>,
    col: &FieldValues,
    fq: &Frequencies<'_>,
    p: usize,
    r: usize,
    values: &[String],
    rng: &mut Rng,
) -> u32 {
    let Run { settings, c, t, .. } = run;
    let own = &t.pats.records[p];
    let key = prior_key(c, r);
    let own_in_class = own
        .iter()
        .filter(|&&o| !col.values[o].is_empty() && prior_key(c, o) == key)
        .count() as u64;
    let use_cond = !c.prior_qis.is_empty()
        && fq
            .cond_total
            .get(&key)
            .copied()
            .unwrap_or(0)
            .saturating_sub(own_in_class)
            >= settings.prior_min as u64;
    let scores: Vec<f64> = values
        .iter()
        .map(|v| {
            let own_v = own
                .iter()
                .filter(|&&o| col.values[o] == *v && (!use_cond || prior_key(c, o) == key))
                .count() as u64;
            let n = if use_cond {
                fq.cond.get(&(key.clone(), v.as_str())).copied().unwrap_or(0)
            } else {
                fq.counts.get(v.as_str()).copied().unwrap_or(0)
            };
            n.saturating_sub(own_v) as f64
        })
        .collect();
    rank_of(&scores, 0, rng)
}

/// Linkage: the naive-Bayes posterior of each target patient within its released class, from
/// the model's answers about its linkable fields (1 for a patient extraction identified).
fn link_rows(
    c: &Columns,
    t: &Targets,
    answers: &HashMap<usize, Answers>,
    extracted: &HashSet<String>,
    recs: &TextRecords,
) -> Vec<LinkRow> {
    let mut link = Vec::new();
    for &p in &t.chosen {
        let class = &t.classes[&class_key(&t.pats, c, p)];
        let f = class.len() as u64;
        let mine = answers.get(&p);
        let used = mine.map_or(0, |a| a.len() as u32);
        let loglik: Vec<f64> = class
            .iter()
            .map(|&q| {
                let Some(a) = mine else { return 0.0 };
                a.iter()
                    .map(|(&fi, (lq, neutral))| {
                        // The best-fitting record; a value the model could not score (or none)
                        // counts as uninformative.
                        let col = &c.cols[c.fields[fi].as_str()];
                        t.pats.records[q]
                            .iter()
                            .map(|&rr| lq.get(&col.values[rr]).copied().unwrap_or(*neutral))
                            .reduce(f64::max)
                            .unwrap_or(*neutral)
                    })
                    .sum()
            })
            .collect();
        let at = class.iter().position(|&q| q == p).expect("own class");
        let was_extracted = extracted.contains(&t.pats.ids[p]);
        // Floored at the release alone's 1/f: an attacker can always ignore the model, so a
        // wrong answer never makes a patient safer than the release leaves them.
        let release = 1.0 / f as f64;
        let p_model = if was_extracted {
            1.0
        } else {
            let p = linkage::posterior(at, &loglik);
            if p.is_finite() { p.max(release) } else { release }
        };
        link.push(LinkRow {
            record: recs.pseudonym(t.pats.records[p][0]),
            member: t.pats.member[p] == Some(true),
            class_size: f,
            fields: used,
            p_model,
            extracted: was_extracted,
        });
    }
    link
}

/// Reconstruction from quasi-identifiers: each prompt template filled from one record of every
/// target patient, beam-decoded, and checked for the record's other values.
fn reconstruct(
    run: Run<'_>,
    notes: &mut Vec<String>,
    progress: Progress<'_>,
) -> Result<Vec<ReconRow>> {
    let Run {
        model,
        recs,
        settings,
        seed,
        c,
        t,
    } = run;
    let mut reconstruction = Vec::new();
    let usable: Vec<(usize, &Vec<Piece>)> = c
        .templates
        .iter()
        .enumerate()
        .filter(|(i, tpl)| {
            let missing: Vec<String> = template_columns(tpl)
                .into_iter()
                .filter(|col| !c.cols.contains_key(col))
                .collect();
            if !missing.is_empty() {
                notes.push(format!(
                    "prompt {}: the data has no column {}; not run",
                    i + 1,
                    missing.join(", ")
                ));
            }
            missing.is_empty()
        })
        .collect();
    if usable.is_empty() || c.reconstruct_fields.is_empty() {
        if c.templates.is_empty() {
            notes.push(
                "reconstruction from quasi-identifiers not run: the plan gives no prompt template (prompts = [\"… {age} …\"])".into(),
            );
        }
        return Ok(reconstruction);
    }
    let mut jobs: Vec<(usize, bool, usize, Vec<u32>)> = Vec::new();
    for &p in &t.chosen {
        let mut rng = Rng::derive(seed, "inversion/reconstruct", p as u64);
        let own: Vec<usize> = t.pats.records[p]
            .iter()
            .copied()
            .filter(|&r| recs.member[r] == t.pats.member[p])
            .collect();
        let r = own[rng.index(own.len())];
        for &(ti, tpl) in &usable {
            let value = |name: &str| c.cols.get(name).map(|col| col.values[r].clone());
            if let Some(prompt) = fill_template(tpl, &value) {
                jobs.push((r, t.pats.member[p] == Some(true), ti, model.encode(&prompt)?));
            }
        }
    }
    let d = Decoding {
        strategy: Strategy::Beam {
            width: settings.beam_width,
        },
        max_new_tokens: settings.reconstruct_tokens,
        seed: Rng::derive_seed(seed, "inversion/reconstruct", 0),
        stop_at_eos: true,
    };
    let total = jobs.len();
    for (ci, chunk) in jobs.chunks(settings.batch).enumerate() {
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|j| j.3.clone()).collect();
        let outs = model.generate(&prompts, &d)?;
        for ((r, member, ti, _), out) in chunk.iter().zip(outs) {
            let text = model.decode(&out)?;
            let hits = c
                .reconstruct_fields
                .iter()
                .map(|f| {
                    let v = &c.cols[f.as_str()].values[*r];
                    (!v.is_empty()).then(|| surface::contains(&text, v))
                })
                .collect();
            reconstruction.push(ReconRow {
                record: recs.pseudonym(*r),
                member: *member,
                prompt: *ti,
                hits,
            });
        }
        progress(
            "inversion: reconstruction",
            ((ci + 1) * settings.batch).min(total),
            total,
        );
    }
    Ok(reconstruction)
}

/// Unconditioned generations checked for patients whose identifying quasi-identifier values
/// co-occur (at least `min_match` of them) and single the patient out among all patients.
fn match_generations(
    model: &dyn LanguageModel,
    settings: &Settings,
    seed: u64,
    pats: &Patients,
    cols: &HashMap<String, FieldValues>,
    qis: &[String],
    progress: Progress<'_>,
) -> Result<MemorisedDetail> {
    let start = crate::probe::extraction::start_tokens(model)?;
    let mut texts = Vec::new();
    let mut done = 0;
    while done < settings.generations {
        let n = settings.batch.min(settings.generations - done);
        let d = Decoding {
            strategy: Strategy::Sample {
                temperature: settings.temperature,
                top_k: settings.sample_top_k,
                top_p: None,
            },
            max_new_tokens: settings.generation_tokens,
            seed: Rng::derive_seed(seed, "inversion/generations", done as u64),
            stop_at_eos: true,
        };
        for g in model.generate(&vec![start.clone(); n], &d)? {
            texts.push(model.decode(&g)?);
        }
        done += n;
        progress("inversion: generations", done, settings.generations);
    }
    // Each patient's distinct values per column.
    let values: Vec<Vec<BTreeSet<&str>>> = (0..pats.ids.len())
        .map(|p| {
            qis.iter()
                .map(|c| {
                    pats.records[p]
                        .iter()
                        .map(|&r| cols[c.as_str()].values[r].as_str())
                        .filter(|v| !v.is_empty())
                        .collect()
                })
                .collect()
        })
        .collect();
    // How many patients hold each (column, value).
    let mut holders: HashMap<(usize, &str), u64> = HashMap::new();
    for pv in &values {
        for (ci, set) in pv.iter().enumerate() {
            for v in set {
                *holders.entry((ci, v)).or_default() += 1;
            }
        }
    }
    let mut member_generations = 0;
    let mut control_generations = 0;
    let mut member_patients = HashSet::new();
    let mut control_patients = HashSet::new();
    let distinct: BTreeSet<(usize, &str)> = holders.keys().copied().collect();
    for text in &texts {
        // Every distinct value is looked for once per generation.
        let present: HashSet<(usize, &str)> = distinct
            .iter()
            .copied()
            .filter(|(_, v)| surface::contains(text, v))
            .collect();
        if present.is_empty() {
            continue;
        }
        let (mut m, mut c) = (false, false);
        for (p, pv) in values.iter().enumerate() {
            let Some(member) = pats.member[p] else {
                continue;
            };
            let found: Vec<(usize, &str)> = pv
                .iter()
                .enumerate()
                .flat_map(|(ci, set)| set.iter().map(move |v| (ci, *v)))
                .filter(|k| present.contains(k))
                .collect();
            let cols_hit: BTreeSet<usize> = found.iter().map(|(ci, _)| *ci).collect();
            if cols_hit.len() < settings.min_match {
                continue;
            }
            // Unique: no other patient holds every found value.
            let unique = found.iter().any(|k| holders.get(k).copied() == Some(1))
                || values
                    .iter()
                    .enumerate()
                    .filter(|(q, _)| *q != p)
                    .all(|(_, qv)| !found.iter().all(|(ci, v)| qv[*ci].contains(v)));
            if unique {
                if member {
                    m = true;
                    member_patients.insert(p);
                } else {
                    c = true;
                    control_patients.insert(p);
                }
            }
        }
        member_generations += u64::from(m);
        control_generations += u64::from(c);
    }
    let count = |want: bool| pats.member.iter().filter(|x| **x == Some(want)).count() as u64;
    Ok(MemorisedDetail {
        generations: texts.len() as u64,
        qis: qis.to_vec(),
        min_match: settings.min_match as u64,
        member_generations,
        control_generations,
        member_patients: member_patients.len() as u64,
        control_patients: control_patients.len() as u64,
        patients: (count(true), count(false)),
    })
}

fn arm_rate(k: u64, n: u64, confidence: f64) -> ArmRate {
    let (rate, error) = wilson(k, n, confidence);
    let (_, lo, hi) = bind(rate, error);
    ArmRate {
        k,
        n,
        rate,
        error,
        lo,
        hi,
    }
}

fn finite3(t: (f64, f64, f64)) -> Option<(f64, f64, f64)> {
    (t.0.is_finite() && t.1.is_finite() && t.2.is_finite()).then_some(t)
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = xs.fold((0.0, 0u64), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// The membership probe's ε lower bound the posterior is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct EpsilonBound {
    /// The attack with the largest bound.
    pub attack: String,
    /// Its bound.
    pub epsilon: f64,
    /// Attacks whose bounds it is the largest of.
    pub attacks: u64,
    /// Confidence level of each bound.
    pub confidence: f64,
}

/// Findings and report detail from the observations; `epsilon` is the membership probe's
/// largest ε lower bound, when it ran.
///
/// Kept whole: the findings in the order `findings.json` lists them, per field and arm from the
/// same counts; reconstruction, linkage and the posterior are functions of their own.
pub fn analyze(
    obs: &Observations,
    epsilon: Option<EpsilonBound>,
    seed: u64,
) -> (Vec<Finding>, InversionDetail) {
    let s = &obs.settings;
    let conf = s.confidence;
    let mut findings = Vec::new();
    let mut fields = Vec::new();
    for (fi, info) in obs.fields.iter().enumerate() {
        let ts: Vec<&Target> = obs.targets.iter().filter(|t| t.field == fi).collect();
        if ts.is_empty() {
            continue;
        }
        let count = |member: bool, hit: &dyn Fn(&Target) -> bool| -> (u64, u64) {
            let arm: Vec<&&Target> = ts.iter().filter(|t| t.member == member).collect();
            (
                arm.iter().filter(|t| hit(t)).count() as u64,
                arm.len() as u64,
            )
        };
        let k = s.top_k as u32;
        let top1 = |t: &Target| t.rank == 1;
        let topk = |t: &Target| t.rank <= k;
        let (a1, an) = count(true, &top1);
        let (c1, cn) = count(false, &top1);
        let (p1, _) = count(true, &|t: &Target| t.prior_rank == 1);
        let (ak, _) = count(true, &topk);
        let (ck, _) = count(false, &topk);
        let (pk, _) = count(true, &|t: &Target| t.prior_rank <= k);
        let (an1, _) = count(true, &|t: &Target| t.rank_normalised == 1);
        let (cn1, _) = count(false, &|t: &Target| t.rank_normalised == 1);
        let attack = arm_rate(a1, an, conf);
        let control = arm_rate(c1, cn, conf);
        let residual = if an > 0 && cn > 0 {
            let (r, e) =
                residual_success((attack.rate, attack.error), (control.rate, control.error));
            finite3(bind(r, e))
        } else {
            None
        };
        let difference = finite3(newcombe_difference(a1, an, c1, cn, conf));
        let mut cands: Vec<u32> = ts.iter().map(|t| t.candidates).collect();
        cands.sort_unstable();
        let field = FieldInference {
            field: info.name.clone(),
            role: info.role.clone(),
            domain: info.domain,
            candidates: u64::from(cands[cands.len() / 2]),
            k: u64::from(k),
            attack: attack.clone(),
            control: control.clone(),
            prior: arm_rate(p1, an, conf),
            attack_topk: arm_rate(ak, an, conf),
            control_topk: arm_rate(ck, cn, conf),
            prior_topk: arm_rate(pk, an, conf),
            attack_normalised: arm_rate(an1, an, conf),
            control_normalised: arm_rate(cn1, cn, conf),
            difference,
            residual,
            mean_p_true: (
                mean(ts.iter().filter(|t| t.member).map(|t| t.p_true)),
                mean(ts.iter().filter(|t| !t.member).map(|t| t.p_true)),
            ),
        };
        for (arm, r) in [
            ("attack", &field.attack),
            ("control", &field.control),
            ("prior", &field.prior),
        ] {
            findings.push(
                Finding::new(
                    PROBE,
                    metric::INFERENCE_TOP1,
                    (r.n > 0).then_some(r.k as f64 / r.n.max(1) as f64),
                )
                .with_param("field", info.name.as_str())
                .with_param("arm", arm)
                .with_counts(r.k, r.n)
                .with_interval(conf, r.lo, r.hi, "wilson"),
            );
        }
        for (arm, r) in [
            ("attack", &field.attack_topk),
            ("control", &field.control_topk),
            ("prior", &field.prior_topk),
        ] {
            findings.push(
                Finding::new(
                    PROBE,
                    metric::INFERENCE_TOPK,
                    (r.n > 0).then_some(r.k as f64 / r.n.max(1) as f64),
                )
                .with_param("field", info.name.as_str())
                .with_param("arm", arm)
                .with_param("k", u64::from(k))
                .with_counts(r.k, r.n)
                .with_interval(conf, r.lo, r.hi, "wilson"),
            );
        }
        let mut d = Finding::new(PROBE, metric::INFERENCE_DIFFERENCE, difference.map(|d| d.0))
            .with_param("field", info.name.as_str());
        if let Some((_, lo, hi)) = difference {
            d = d.with_interval(conf, lo, hi, "newcombe");
        }
        findings.push(d);
        let mut r = Finding::new(PROBE, metric::INFERENCE_RESIDUAL_RISK, residual.map(|r| r.0))
            .with_param("field", info.name.as_str());
        match residual {
            Some((_, lo, hi)) => {
                r = r.with_interval(conf, lo, hi, "anonymeter (wilson, error propagation)");
            }
            None => {
                r = r.with_caveat(
                    "not computable: an arm has no targets, or the control always succeeds",
                );
            }
        }
        if field.prior.rate >= field.attack.rate && an > 0 {
            r = r.with_caveat(
                "the prior baseline does at least as well as the attack: the model adds nothing measurable over frequencies for this field",
            );
        }
        findings.push(r);
        fields.push(field);
    }

    let reconstruction = (!obs.reconstruction.is_empty())
        .then(|| reconstruction(obs, conf, &mut findings));

    let linkage = (!obs.link.is_empty()).then(|| linkage_detail(obs, conf, seed, &mut findings));

    let posterior = epsilon
        .filter(|b| b.epsilon.is_finite())
        .map(|b| posterior(obs, b, &mut findings));

    let memorised = obs.memorised.clone();
    if let Some(m) = &memorised {
        for (arm, k, n) in [
            ("attack", m.member_patients, m.patients.0),
            ("control", m.control_patients, m.patients.1),
        ] {
            findings.push(
                Finding::new(PROBE, metric::LINKAGE_MEMORISED_PATIENTS, Some(k as f64))
                    .with_param("arm", arm)
                    .with_counts(k, n),
            );
        }
    }

    let detail = InversionDetail {
        fields,
        reconstruction,
        linkage,
        posterior,
        memorised,
        confidence: conf,
        notes: obs.notes.clone(),
        settings: serde_json::to_value(s).unwrap_or_default(),
    };
    (findings, detail)
}

/// Reconstruction rates per field, attack vs control arm (Carlini et al. 2021's targeted
/// reconstruction, scored per field).
fn reconstruction(
    obs: &Observations,
    conf: f64,
    findings: &mut Vec<Finding>,
) -> ReconstructionDetail {
    let s = &obs.settings;
    let fields = obs
        .reconstruct_fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let tally = |member: bool| -> (u64, u64) {
                let hits: Vec<bool> = obs
                    .reconstruction
                    .iter()
                    .filter(|r| r.member == member)
                    .filter_map(|r| r.hits.get(i).copied().flatten())
                    .collect();
                (
                    hits.iter().filter(|h| **h).count() as u64,
                    hits.len() as u64,
                )
            };
            let (m, c) = (tally(true), tally(false));
            let difference = finite3(newcombe_difference(m.0, m.1, c.0, c.1, conf));
            ReconstructedField {
                field: f.clone(),
                members: m,
                control: c,
                difference,
            }
        })
        .collect::<Vec<_>>();
    for f in &fields {
        for (arm, (k, n)) in [("attack", f.members), ("control", f.control)] {
            if n == 0 {
                continue;
            }
            let (lo, hi) = clopper_pearson(k, n, conf);
            findings.push(
                Finding::new(PROBE, metric::RECONSTRUCTION_RATE, Some(k as f64 / n as f64))
                    .with_param("field", f.field.as_str())
                    .with_param("arm", arm)
                    .with_counts(k, n)
                    .with_interval(conf, lo, hi, "clopper-pearson"),
            );
        }
    }
    ReconstructionDetail {
        prompts: s.prompts.clone(),
        given: obs.given.clone(),
        decoding: format!("beam {}, {} tokens", s.beam_width, s.reconstruct_tokens),
        fields,
    }
}

/// Identification after linking the model's inferences to the de-identified release.
fn linkage_detail(
    obs: &Observations,
    conf: f64,
    seed: u64,
    findings: &mut Vec<Finding>,
) -> LinkageDetail {
    let s = &obs.settings;
    let th = &s.thresholds;
    let group = |member: bool| -> Vec<&LinkRow> {
        obs.link.iter().filter(|l| l.member == member).collect()
    };
    let (mem, ctl) = (group(true), group(false));
    let base =
        |g: &[&LinkRow]| -> Vec<f64> { g.iter().map(|l| 1.0 / l.class_size as f64).collect() };
    let with = |g: &[&LinkRow]| -> Vec<f64> { g.iter().map(|l| l.p_model).collect() };
    let strata = linkage::STRATA
        .iter()
        .filter_map(|&(lo, hi)| {
            let inside = |l: &&&LinkRow| (lo..=hi).contains(&l.class_size);
            let m: Vec<&LinkRow> = mem.iter().filter(inside).copied().collect();
            let c: Vec<&LinkRow> = ctl.iter().filter(inside).copied().collect();
            if m.is_empty() && c.is_empty() {
                return None;
            }
            let first = th.first().copied().unwrap_or(0.09);
            Some(LinkStratum {
                label: linkage::stratum(lo),
                members: m.len() as u64,
                control: c.len() as u64,
                baseline_mean: mean(base(&m).into_iter()),
                member_mean: mean(with(&m).into_iter()),
                control_mean: mean(with(&c).into_iter()),
                member_above: m.iter().filter(|l| l.p_model > first).count() as u64,
                control_above: c.iter().filter(|l| l.p_model > first).count() as u64,
            })
        })
        .collect();
    let d = LinkageDetail {
        released: obs.released.clone(),
        link_fields: obs.link_fields.clone(),
        thresholds: th.clone(),
        patients: obs.patients.0 + obs.patients.1,
        member_baseline: linkage::summarize(&base(&mem), th),
        member_model: linkage::summarize(&with(&mem), th),
        control_baseline: linkage::summarize(&base(&ctl), th),
        control_model: linkage::summarize(&with(&ctl), th),
        extracted: (
            mem.iter().filter(|l| l.extracted).count() as u64,
            ctl.iter().filter(|l| l.extracted).count() as u64,
        ),
        strata,
        member_points: mem
            .iter()
            .map(|l| (1.0 / l.class_size as f64, l.p_model))
            .collect(),
        control_points: ctl
            .iter()
            .map(|l| (1.0 / l.class_size as f64, l.p_model))
            .collect(),
        top: {
            let mut m: Vec<&&LinkRow> = mem.iter().collect();
            // The largest gains over the release alone first (a class of one is
            // identified with or without the model).
            let gain = |l: &LinkRow| l.p_model - 1.0 / l.class_size as f64;
            m.sort_by(|a, b| {
                gain(b)
                    .total_cmp(&gain(a))
                    .then(b.p_model.total_cmp(&a.p_model))
                    .then(a.record.cmp(&b.record))
            });
            m.iter()
                .take(10)
                .map(|l| LinkedPatient {
                    record: l.record.clone(),
                    class_size: l.class_size,
                    release: 1.0 / l.class_size as f64,
                    model: l.p_model,
                    fields: l.fields,
                    extracted: l.extracted,
                })
                .collect()
        },
    };
    added_risk(&mem, &ctl, th, conf, seed, findings);
    for (arm, sum, basis) in [
        ("attack", &d.member_model, "model"),
        ("attack", &d.member_baseline, "release"),
        ("control", &d.control_model, "model"),
        ("control", &d.control_baseline, "release"),
    ] {
        findings.push(
            Finding::new(PROBE, metric::LINKAGE_IDENTIFICATION_MAX, sum.max)
                .with_param("arm", arm)
                .with_param("basis", basis)
                .with_counts(sum.n, sum.n),
        );
        findings.push(
            Finding::new(PROBE, metric::LINKAGE_IDENTIFICATION_MEAN, sum.mean)
                .with_param("arm", arm)
                .with_param("basis", basis),
        );
        for (t, &k) in th.iter().zip(&sum.above) {
            let (lo, hi) = clopper_pearson(k, sum.n, conf);
            findings.push(
                Finding::new(
                    PROBE,
                    metric::LINKAGE_IDENTIFICATION_ABOVE,
                    (sum.n > 0).then(|| k as f64 / sum.n as f64),
                )
                .with_param("arm", arm)
                .with_param("basis", basis)
                .with_param("threshold", *t)
                .with_counts(k, sum.n)
                .with_interval(conf, lo, hi, "clopper-pearson"),
            );
        }
    }
    d
}

/// The model's added identification risk over the release alone, per patient
/// (`p_model − 1/f`, never negative: see [`link_rows`]): its mean for members and for
/// non-members and their difference, with patient-bootstrap intervals; and the patients the
/// model raises above each threshold that the release alone keeps them under.
fn added_risk(
    mem: &[&LinkRow],
    ctl: &[&LinkRow],
    thresholds: &[f64],
    conf: f64,
    seed: u64,
    findings: &mut Vec<Finding>,
) {
    const RESAMPLES: usize = 2000;
    let gains = |g: &[&LinkRow]| -> Vec<f64> {
        g.iter()
            .map(|l| (l.p_model - 1.0 / l.class_size as f64).max(0.0))
            .collect()
    };
    let (gm, gc) = (gains(mem), gains(ctl));
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let method = format!("bootstrap-percentile over patients ({RESAMPLES} resamples)");
    for (arm, xs, ys) in [
        ("attack", &gm, &Vec::new()),
        ("control", &gc, &Vec::new()),
        ("difference", &gm, &gc),
    ] {
        let value = match arm {
            "difference" => mean(xs).zip(mean(ys)).map(|(a, b)| a - b),
            _ => mean(xs),
        };
        let ci = if arm == "difference" && ys.is_empty() {
            None
        } else {
            crate::stats::cluster::bootstrap_mean_difference(
                xs,
                ys,
                RESAMPLES,
                conf,
                seed,
                &format!("inversion/added-risk/{arm}"),
            )
        };
        let mut f = Finding::new(PROBE, metric::LINKAGE_ADDED_RISK, value)
            .with_param("arm", arm)
            .with_param("unit", "patient")
            .with_counts(xs.len() as u64, (xs.len() + ys.len()) as u64);
        if let Some((lo, hi)) = ci.filter(|_| value.is_some()) {
            f = f.with_interval(conf, lo, hi, &method);
        }
        findings.push(f);
    }
    for (arm, g) in [("attack", mem), ("control", ctl)] {
        for &t in thresholds {
            let n = g.len() as u64;
            let k = g
                .iter()
                .filter(|l| l.p_model > t && 1.0 / l.class_size as f64 <= t)
                .count() as u64;
            let (lo, hi) = clopper_pearson(k, n, conf);
            findings.push(
                Finding::new(
                    PROBE,
                    metric::LINKAGE_RAISED_ABOVE,
                    (n > 0).then(|| k as f64 / n as f64),
                )
                .with_param("arm", arm)
                .with_param("threshold", t)
                .with_counts(k, n)
                .with_interval(conf, lo, hi, "clopper-pearson"),
            );
        }
    }
}

/// The membership posterior from the membership probe's ε lower bound and the prior n/N.
fn posterior(obs: &Observations, b: EpsilonBound, findings: &mut Vec<Finding>) -> PosteriorDetail {
    let s = &obs.settings;
    let e = b.epsilon;
    // The largest of several attacks' bounds holds jointly at 1 − attacks·(1 − level)
    // (Bonferroni).
    let joint = (1.0 - b.attacks.max(1) as f64 * (1.0 - b.confidence)).max(0.0);
    let (trained, population, given) = match s.population {
        Some(n) => (obs.patients.0, n.max(obs.patients.0), true),
        None => (obs.patients.0, obs.patients.0 + obs.patients.1, false),
    };
    let prior = trained as f64 / population as f64;
    let post = linkage::membership_posterior(e, prior);
    let mut f = Finding::new(PROBE, metric::INFERENCE_MEMBERSHIP_POSTERIOR, Some(post))
        .with_param("attack", b.attack.as_str())
        .with_param("epsilon_lb", e)
        .with_param("prior", prior)
        .with_param("confidence", joint);
    if b.attacks > 1 {
        f = f.with_caveat(format!(
            "ε is the largest of {} attacks' {}-confidence lower bounds: jointly a {:.3}-confidence bound (Bonferroni)",
            b.attacks, b.confidence, joint
        ));
    }
    if !given {
        f = f.with_caveat(
            "prior n/N uses the dataset's patients as the population; set `population` in the inversion probe to the size of the population the training patients were drawn from",
        );
    }
    findings.push(f);
    PosteriorDetail {
        attack: b.attack,
        attacks: b.attacks,
        confidence: joint,
        epsilon: e,
        prior,
        trained,
        population,
        population_given: given,
        posterior: post,
    }
}

crate::stored_as_json!(Observations);

impl crate::probe::api::Settings for Settings {
    fn validate(&self) -> std::result::Result<(), String> {
        Settings::validate(self)
    }
}

/// Patients one of whose direct identifiers (not a date or a place) an extraction attempt
/// reproduced exactly.
fn extracted_patients(
    obs: Option<&crate::probe::extraction::Observations>,
    recs: &TextRecords,
) -> HashSet<String> {
    use crate::phi::SafeHarbor as S;
    let Some(o) = obs else {
        return HashSet::new();
    };
    let index = recs.pseudonym_index();
    o.attempts
        .iter()
        .filter(|a| {
            a.fields
                .iter()
                .any(|f| f.exact && !matches!(f.category, S::Date | S::Geographic))
        })
        .filter_map(|a| index.get(o.records.get(a.record)?.as_str()))
        .map(|&r| recs.patients[r].clone())
        .collect()
}

/// The membership probe's largest finite ε lower bound, its attack, how many attacks' bounds
/// it was chosen from and their confidence level.
fn membership_epsilon(findings: &[crate::evidence::Finding]) -> Option<EpsilonBound> {
    let all: Vec<&crate::evidence::Finding> = findings
        .iter()
        .filter(|f| f.probe == "membership" && f.metric == metric::DP_EPSILON_LB)
        .collect();
    // The patient is the unit: a record-level bound of clustered records is not a valid bound.
    let is_patient = |f: &&crate::evidence::Finding| {
        f.params.get("unit").and_then(|u| u.as_str()) != Some("record")
    };
    let bounds: Vec<(String, f64, f64)> = all
        .into_iter()
        .filter(is_patient)
        .filter_map(|f| {
            let e = f.value.filter(|v| v.is_finite())?;
            let attack = f
                .params
                .get("attack")
                .and_then(|a| a.as_str())
                .unwrap_or("membership")
                .to_owned();
            let confidence = f
                .params
                .get("confidence")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.95);
            Some((attack, e, confidence))
        })
        .collect();
    let attacks = bounds.len() as u64;
    bounds
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(attack, epsilon, confidence)| EpsilonBound {
            attack,
            epsilon,
            attacks,
            confidence,
        })
}

/// The inversion probe: attribute inference and reconstruction against baselines, linked to
/// re-identification risk (Fredrikson et al. 2014; Jayaraman & Evans 2022).
pub struct Inversion;

impl crate::probe::api::Probe for Inversion {
    const KIND: &'static str = "inversion";
    const TITLE: &'static str = "inversion — does the model let an attacker infer a patient's sensitive fields beyond what the population already tells? (Fredrikson et al. 2014; Jayaraman & Evans 2022)";
    const FILE: &'static str = "inversion.json";
    const CONSUMES: &'static [&'static str] = &["membership", "extraction"];
    const NEEDS_DATA: bool = true;
    const RECORDED_WHEN_ABSENT: bool = true;
    type Settings = Settings;
    type Observations = Observations;

    fn observe(
        s: &Settings,
        cx: &mut crate::probe::api::Observe<'_>,
    ) -> Result<Option<Observations>> {
        let Some(recs) = cx.records else {
            return Ok(None);
        };
        if s.fields.is_empty() && recs.columns_with_role(Role::Sensitive)?.is_empty() {
            return Ok(None);
        }
        let model = cx.target_model()?;
        let extracted = extracted_patients(
            cx.upstream.get::<crate::probe::extraction::Extraction>(),
            recs,
        );
        let progress = &mut *cx.progress;
        let mut p = |stage: &str, done: usize, total: usize| progress(stage, done, total);
        observe(model.as_ref(), recs, s, cx.seed, &extracted, &mut p).map(Some)
    }

    fn analyze(
        _s: &Settings,
        obs: Option<&Observations>,
        cx: &crate::probe::api::Analyze<'_>,
        out: &mut crate::evidence::FindingsFile,
    ) -> Result<()> {
        match obs {
            Some(o) => {
                let (findings, detail) = analyze(o, membership_epsilon(cx.findings), cx.seed);
                out.findings.extend(findings);
                out.inversion = Some(detail);
            }
            None => out.findings.push(
                Finding::new("inversion", metric::INFERENCE_RESIDUAL_RISK, None).with_caveat(
                    "not measured: the card declares no sensitive column; list the fields to infer in the plan's inversion probe (fields = [\"diagnosis\", …])",
                ),
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_fill_and_refuse() {
        let t = parse_template("{sex:F=She,M=He} is a {age}-year-old {{x}}").unwrap();
        assert_eq!(template_columns(&t), vec!["sex", "age"]);
        let v = |c: &str| match c {
            "sex" => Some("F".to_owned()),
            "age" => Some("67".to_owned()),
            _ => None,
        };
        assert_eq!(
            fill_template(&t, &v).as_deref(),
            Some("She is a 67-year-old {x}")
        );
        let u = |c: &str| (c == "age").then(|| "5".to_owned()).or(Some("X".into()));
        assert_eq!(fill_template(&t, &u), None, "unmapped value");
        assert!(parse_template("{age").is_err());
        assert!(parse_template("age}").is_err());
        assert!(parse_template("{}").is_err());
        assert!(parse_template("{sex:F}").is_err());
    }

    #[test]
    fn ranks_break_ties_with_a_seeded_coin() {
        let mut rng = Rng::new(1);
        assert_eq!(rank_of(&[3.0, 1.0, 2.0], 0, &mut rng), 1);
        assert_eq!(rank_of(&[1.0, 3.0, 2.0], 0, &mut rng), 3);
        assert_eq!(rank_of(&[f64::NAN, 3.0], 0, &mut rng), 2);
        // Four-way tie: ranks 1..=4, each about a quarter of the time.
        let mut seen = [0u32; 5];
        for _ in 0..4000 {
            seen[rank_of(&[0.0; 4], 0, &mut rng) as usize] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(
            seen[1..].iter().all(|&c| (850..1150).contains(&c)),
            "{seen:?}"
        );
    }

    #[test]
    fn settings_validate() {
        assert!(Settings::default().validate().is_ok());
        let bad = Settings {
            thresholds: vec![1.5],
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = Settings {
            prompts: vec!["{oops".into()],
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    /// Analysis on hand-made observations: counts, Wilson rates and the residual risk agree with
    /// the Anonymeter formulas computed directly.
    #[test]
    fn analysis_matches_the_formulas() {
        let mut targets = Vec::new();
        for i in 0..100 {
            targets.push(Target {
                field: 0,
                record: format!("m{i}"),
                member: true,
                candidates: 10,
                rank: if i < 23 { 1 } else { 3 },
                rank_normalised: 2,
                prior_rank: if i < 5 { 1 } else { 4 },
                p_true: 0.2,
            });
            targets.push(Target {
                field: 0,
                record: format!("c{i}"),
                member: false,
                candidates: 10,
                rank: if i < 11 { 1 } else { 7 },
                rank_normalised: 2,
                prior_rank: 4,
                p_true: 0.1,
            });
        }
        let obs = Observations {
            fields: vec![FieldInfo {
                name: "diagnosis".into(),
                role: "sensitive".into(),
                domain: 10,
                not_found: (0, 0),
                too_long: (0, 0),
            }],
            targets,
            link: vec![
                LinkRow {
                    record: "m0".into(),
                    member: true,
                    class_size: 4,
                    fields: 1,
                    p_model: 0.5,
                    extracted: false,
                },
                LinkRow {
                    record: "c0".into(),
                    member: false,
                    class_size: 1,
                    fields: 1,
                    p_model: 1.0,
                    extracted: false,
                },
            ],
            link_fields: vec!["diagnosis".into()],
            released: vec!["sex".into()],
            patients: (100, 100),
            reconstruct_fields: vec![],
            given: vec![],
            reconstruction: vec![],
            memorised: None,
            notes: vec![],
            settings: Settings::default(),
        };
        let bound = EpsilonBound {
            attack: "loss".into(),
            epsilon: 3f64.ln(),
            attacks: 1,
            confidence: 0.95,
        };
        let (findings, d) = analyze(&obs, Some(bound), 7);
        let f = &d.fields[0];
        assert_eq!((f.attack.k, f.attack.n), (23, 100));
        assert_eq!((f.control.k, f.control.n), (11, 100));
        assert_eq!(f.prior.k, 5);
        assert!((f.attack.rate - 0.239_988_244_515_886_13).abs() < 1e-12);
        assert!((f.control.rate - 0.124_427_464_300_724_4).abs() < 1e-12);
        let (r, lo, hi) = f.residual.unwrap();
        assert!((r - 0.131_983_103_059_381_77).abs() < 1e-9);
        assert!((r - lo - 0.111_535_083_657_995_69).abs() < 1e-9 && hi > r);
        let l = d.linkage.as_ref().unwrap();
        assert_eq!(l.member_baseline.max, Some(0.25));
        assert_eq!(l.member_model.above, vec![1, 1]);
        // Prior ½ and ε = ln 3: posterior ¾.
        let p = d.posterior.as_ref().unwrap();
        assert!((p.posterior - 0.75).abs() < 1e-12);
        assert!(
            findings
                .iter()
                .any(|f| f.metric == metric::INFERENCE_RESIDUAL_RISK && f.value.is_some())
        );
    }
}
