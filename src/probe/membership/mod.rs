//! Membership inference: can an attacker tell whether a record was in the training data?
//!
//! Every attack is a pure function of one cached score matrix (per-token log-probabilities of
//! every audit record under the target and under each reference model), so `phiprobe report
//! --reanalyze` can re-derive all of them without a model. Scores are oriented so that **higher
//! means "member"**; the statistics are in [`crate::stats::roc`].
//!
//! Attacks (formulas and pitfalls: `reference/attacks.md`):
//! - `loss` — mean token log-likelihood (Yeom et al., "Privacy Risk in Machine Learning",
//!   CSF 2018).
//! - `zlib` — mean token log-likelihood divided by the zlib-compressed length of the text in
//!   bytes (Carlini et al., "Extracting Training Data from Large Language Models", USENIX
//!   Security 2021; the units of mimir and Min-K%++: nats per token per compressed byte).
//! - `min_k` — mean of the lowest k-fraction of token log-probabilities, at least one token
//!   (Shi et al., "Detecting Pretraining Data from Large Language Models", ICLR 2024).
//! - `min_k_pp` — Min-K%++: the same over z_t = (log p(x_t) − μ_t)/σ_t with μ_t, σ_t² the mean
//!   and variance of log p under the model's next-token distribution (Zhang et al., "Min-K%++",
//!   ICLR 2025).
//! - `reference` — target minus reference log-likelihood: a reference model given with
//!   `--reference-model`, or else the mean over the reference models that did not train on the
//!   record (difficulty calibration, Watson et al., ICLR 2022; Carlini et al. 2021).
//! - `lira_online`, `lira_offline` — the likelihood-ratio attack (Carlini et al., "Membership
//!   Inference Attacks From First Principles", IEEE S&P 2022): per-record Gaussians fitted to the
//!   reference models' signals (mean or median; per-record or pooled variance); offline as the
//!   paper's one-sided test or the reference code's two-sided density.
//! - `rmia`, `rmia_offline` — the robust membership inference attack (Zarifzadeh et al., "Low-Cost
//!   High-Power Membership Inference Attacks", ICML 2024): the fraction of population records z
//!   whose likelihood ratio the record beats by a factor γ, counted by sorting the population
//!   once and binary search (never a records × population matrix).

pub mod fleet;

use crate::evidence::Metric;
use crate::evidence::metric;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::evidence::{
    AttackDetail, Finding, Histogram, MembershipDetail, ShiftCheck, VulnerableRecord,
};
use crate::stats::epsilon::epsilon_lower_bound;
use crate::stats::roc::{
    Confusion, Roc, best_threshold, best_threshold_bounded, bootstrap_auc, split_halves,
};
use crate::stats::cluster::{self, Aggregation};
use crate::stats::{Rng, epsilon};

/// Probe name in findings.
pub const PROBE: &str = "membership";

/// The attacks, by plan name.
pub const ATTACKS: [&str; 9] = [
    "loss",
    "zlib",
    "min_k",
    "min_k_pp",
    "reference",
    "lira_online",
    "lira_offline",
    "rmia",
    "rmia_offline",
];

/// Where LiRA puts the centre of each Gaussian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// Arithmetic mean (the paper's description).
    Mean,
    /// Median (the reference code's choice).
    Median,
}

/// How LiRA estimates the spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Variance {
    /// One σ per record from its own IN (resp. OUT) signals; needs two models on each side.
    PerRecord,
    /// One pooled σ per side: the spread of every signal around its own record's centre.
    Fixed,
}

/// Offline LiRA's test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OfflineTest {
    /// The paper's test: member when the signal is high under the OUT Gaussian (score = z-score).
    OneSided,
    /// The reference code: member when the signal has low density under the OUT Gaussian.
    TwoSided,
}

/// LiRA settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LiraSettings {
    /// Centre of the Gaussians.
    pub location: Location,
    /// Spread of the Gaussians.
    pub variance: Variance,
    /// Offline test.
    pub offline_test: OfflineTest,
}

impl Default for LiraSettings {
    fn default() -> Self {
        Self {
            location: Location::Mean,
            // The paper's advice for fleets under ~64 models: a pooled σ estimates far better
            // than one from a handful of signals per record.
            variance: Variance::Fixed,
            offline_test: OfflineTest::OneSided,
        }
    }
}

/// RMIA settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RmiaSettings {
    /// γ ≥ 1: a record beats z when its likelihood ratio exceeds z's by more than γ.
    pub gamma: f64,
    /// Offline `a` (P_IN ≈ a·P_OUT + 1 − a): a number in [0, 1], or absent to tune it on the
    /// reference models (never on the target's labels).
    pub offline_a: Option<f64>,
}

impl Default for RmiaSettings {
    fn default() -> Self {
        Self {
            gamma: 1.0,
            offline_a: None,
        }
    }
}

/// The `[[probe]] kind = "membership"` table of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Attacks to run, of loss, zlib, min_k, min_k_pp, reference, lira_online, lira_offline,
    /// rmia and rmia_offline; those needing reference models are skipped, with a
    /// note, when none are given.
    pub attacks: Vec<String>,
    /// FPRs at which to report the TPR.
    pub fpr: Vec<f64>,
    /// Min-K%: fraction of lowest tokens.
    pub min_k: f64,
    /// Min-K%++: fraction of lowest tokens.
    pub min_k_pp: f64,
    /// LiRA variants.
    pub lira: LiraSettings,
    /// RMIA variants.
    pub rmia: RmiaSettings,
    /// Bootstrap resamples for the AUC interval.
    pub bootstrap: usize,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// δ of the empirical ε lower bound.
    pub delta: f64,
    /// Member prevalence for PPV (default: the audit's own member fraction).
    pub prevalence: Option<f64>,
    /// Members listed as most exposed, per attack.
    pub vulnerable: usize,
    /// Compare models with different tokenizers on log-likelihood per UTF-8 byte of the text
    /// instead of refusing them.
    pub retokenize: bool,
}

/// Most bootstrap resamples a plan may ask for.
pub const MAX_BOOTSTRAP: usize = 100_000;

impl Default for Settings {
    fn default() -> Self {
        Self {
            attacks: ATTACKS.iter().map(|s| (*s).to_owned()).collect(),
            fpr: vec![0.001, 0.01, 0.05],
            min_k: 0.2,
            min_k_pp: 0.2,
            lira: LiraSettings::default(),
            rmia: RmiaSettings::default(),
            bootstrap: 1000,
            confidence: 0.95,
            delta: 1e-5,
            prevalence: None,
            vulnerable: 10,
            retokenize: false,
        }
    }
}

impl Settings {
    /// Checks ranges and names; the message says which setting is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for a in &self.attacks {
            if !ATTACKS.contains(&a.as_str()) {
                return Err(format!(
                    "unknown attack {} (known: {})",
                    crate::redact::plain_name(a)
                        .map_or_else(|| "(not a plain name)".to_owned(), |n| format!("'{n}'")),
                    ATTACKS.join(", ")
                ));
            }
        }
        if self.attacks.is_empty() {
            return Err("attacks is empty; name at least one".into());
        }
        crate::probe::check_counts(&[
            ("bootstrap", self.bootstrap, MAX_BOOTSTRAP),
            ("vulnerable", self.vulnerable, crate::probe::MAX_TOKENS),
            ("fpr (entries)", self.fpr.len(), 64),
        ])?;
        for &f in &self.fpr {
            if !(f > 0.0 && f < 1.0) {
                return Err(format!("fpr {f} must lie in (0, 1)"));
            }
        }
        for (name, k) in [("min_k", self.min_k), ("min_k_pp", self.min_k_pp)] {
            if !(k > 0.0 && k <= 1.0) {
                return Err(format!("{name} = {k} must lie in (0, 1]"));
            }
        }
        if !(self.rmia.gamma >= 1.0 && self.rmia.gamma.is_finite()) {
            return Err(format!("rmia.gamma = {} must be ≥ 1", self.rmia.gamma));
        }
        if let Some(a) = self.rmia.offline_a
            && !(0.0..=1.0).contains(&a)
        {
            return Err(format!("rmia.offline_a = {a} must lie in [0, 1]"));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(format!(
                "confidence {} must lie in (0.5, 1)",
                self.confidence
            ));
        }
        if !(self.delta >= 0.0 && self.delta < 1.0) {
            return Err(format!("delta {} must lie in [0, 1)", self.delta));
        }
        if let Some(p) = self.prevalence
            && !(p > 0.0 && p < 1.0)
        {
            return Err(format!("prevalence {p} must lie in (0, 1)"));
        }
        Ok(())
    }
}

pub use crate::evidence::{TokenRows, Total};
pub use fleet::Membership;

/// One model's observations over the audit records.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelObservations {
    /// Name (`target`, `ref-00`, a folder name…).
    pub name: String,
    /// For reference models of a fleet: whether each audit record was in its training data.
    pub member: Option<Vec<bool>>,
    /// SHA-256 over the token ids of every audit text (equal ⇔ same tokenization).
    pub tokenization: String,
    /// One entry per audit record.
    pub totals: Vec<Total>,
}

/// Everything the attacks need: the score matrix and the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    /// Audit record ids.
    pub records: Vec<String>,
    /// Whether each record is a member of the target's training data.
    pub member: Vec<bool>,
    /// Each record's patient as a number (records of one patient share it): the unit that
    /// patient-level findings resample and aggregate over.
    pub patients: Vec<u32>,
    /// UTF-8 length of each text.
    pub text_bytes: Vec<u64>,
    /// zlib-compressed length of each text (level 6, zlib format).
    pub zlib_bytes: Vec<u64>,
    /// The target.
    pub target: ModelObservations,
    /// The target's per-token scores of every record (Min-K%, Min-K%++).
    pub target_tokens: Vec<TokenRows>,
    /// Reference models with known membership (a fleet or a manifest).
    pub references: Vec<ModelObservations>,
    /// A single reference model (e.g. the public base model) for the `reference` attack.
    pub reference_model: Option<ModelObservations>,
}

/// One attack's scores over the audit records (`NaN` = could not be scored).
#[derive(Debug, Clone, PartialEq)]
pub struct AttackScores {
    /// Attack id.
    pub attack: String,
    /// Definition, one line.
    pub description: String,
    /// Variant settings recorded with every finding.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Scores, higher = member.
    pub scores: Vec<f64>,
    /// Notes on what was dropped or substituted.
    pub notes: Vec<String>,
}

/// Mean of the lowest `max(1, ⌊k·T⌋)` of `sorted` (ascending; `NaN` when empty). ⌊k·T⌋ is what
/// mimir and the Min-K%++ code use; the floor at one token keeps short texts from yielding an
/// empty mean.
pub fn lowest_k_mean(sorted: &[f32], k: f64) -> f64 {
    let t = sorted.len();
    if t == 0 {
        return f64::NAN;
    }
    let m = ((k * t as f64).floor() as usize).clamp(1, t);
    sorted[..m].iter().map(|&v| f64::from(v)).sum::<f64>() / m as f64
}

/// Min-K% score of one record.
pub fn min_k(rows: &TokenRows, k: f64) -> f64 {
    lowest_k_mean(&rows.logprob, k)
}

/// Min-K%++ score of one record.
pub fn min_k_pp(rows: &TokenRows, k: f64) -> f64 {
    lowest_k_mean(&rows.z, k)
}

/// The signal reference-based attacks compare across models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Mean log-probability per scored token (every model tokenizes alike).
    PerToken,
    /// Total log-probability per UTF-8 byte of the text (tokenizers differ).
    PerByte,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::PerToken => "mean log-probability per token",
            Signal::PerByte => "log-probability per UTF-8 byte",
        }
    }
    fn of(self, m: &ModelObservations, bytes: &[u64]) -> Vec<f64> {
        m.totals
            .iter()
            .zip(bytes)
            .map(|(t, &b)| match self {
                Signal::PerToken => t.mean(),
                Signal::PerByte if t.n == 0 || b == 0 => f64::NAN,
                Signal::PerByte => t.sum / b as f64,
            })
            .collect()
    }
}

fn centre(v: &mut [f64], loc: Location) -> f64 {
    match loc {
        Location::Mean => v.iter().sum::<f64>() / v.len() as f64,
        Location::Median => {
            v.sort_unstable_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                0.5 * (v[n / 2 - 1] + v[n / 2])
            }
        }
    }
}

fn log_normal_pdf(x: f64, mu: f64, sd: f64) -> f64 {
    let z = (x - mu) / sd;
    -0.5 * z * z - sd.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// Smallest σ LiRA uses (signals are log-likelihoods; identical reference signals would
/// otherwise give an infinite density).
const MIN_SD: f64 = 1e-9;

/// Per-record Gaussian fit for one side (IN or OUT): (centre, σ) per record, `None` where the
/// record has too few models on that side.
fn fit_side(
    refs: &[(Vec<f64>, &[bool])],
    n: usize,
    side: bool,
    lira: &LiraSettings,
) -> Vec<Option<(f64, f64)>> {
    let need = if lira.variance == Variance::PerRecord {
        2
    } else {
        1
    };
    let mut fits: Vec<Option<(f64, f64)>> = Vec::with_capacity(n);
    let mut pooled = (0.0, 0usize);
    for i in 0..n {
        let mut v: Vec<f64> = refs
            .iter()
            .filter(|(_, m)| m[i] == side)
            .map(|(s, _)| s[i])
            .filter(|x| x.is_finite())
            .collect();
        if v.len() < need {
            fits.push(None);
            continue;
        }
        let c = centre(&mut v, lira.location);
        let ss: f64 = v.iter().map(|x| (x - c) * (x - c)).sum();
        // Pooled within-record variance, one degree of freedom per record spent on its centre
        // (a record with one model on this side adds nothing).
        pooled.0 += ss;
        pooled.1 += v.len() - 1;
        fits.push(Some((c, (ss / v.len() as f64).sqrt())));
    }
    if lira.variance == Variance::Fixed {
        let sd = (pooled.0 / pooled.1.max(1) as f64).sqrt();
        for f in fits.iter_mut().flatten() {
            f.1 = sd;
        }
    }
    for f in fits.iter_mut().flatten() {
        f.1 = f.1.max(MIN_SD);
    }
    fits
}

/// LiRA's per-record log likelihood ratio for signal `x` under the IN and OUT Gaussians
/// (centre, σ): log N(x; μ_in, σ_in) − log N(x; μ_out, σ_out).
pub fn lira_llr(x: f64, fin: (f64, f64), fout: (f64, f64)) -> f64 {
    log_normal_pdf(x, fin.0, fin.1) - log_normal_pdf(x, fout.0, fout.1)
}

/// LiRA online: [`lira_llr`] with per-record Gaussians fitted to the reference models.
pub fn lira_online(target: &[f64], refs: &[(Vec<f64>, &[bool])], lira: &LiraSettings) -> Vec<f64> {
    let n = target.len();
    let fin = fit_side(refs, n, true, lira);
    let fout = fit_side(refs, n, false, lira);
    (0..n)
        .map(|i| match (fin[i], fout[i]) {
            (Some(a), Some(b)) => lira_llr(target[i], a, b),
            _ => f64::NAN,
        })
        .collect()
}

/// LiRA offline against the OUT Gaussian: the z-score (one-sided, ranks as the paper's
/// Φ((φ − μ_out)/σ_out)) or the negative log density (two-sided, the reference code).
pub fn lira_offline(target: &[f64], refs: &[(Vec<f64>, &[bool])], lira: &LiraSettings) -> Vec<f64> {
    let fout = fit_side(refs, target.len(), false, lira);
    target
        .iter()
        .zip(fout)
        .map(|(&x, f)| match f {
            Some((mo, so)) => match lira.offline_test {
                OfflineTest::OneSided => (x - mo) / so,
                OfflineTest::TwoSided => -log_normal_pdf(x, mo, so),
            },
            None => f64::NAN,
        })
        .collect()
}

/// RMIA scores: for each record, the fraction of `population` records z with
/// LR(x) / LR(z) > γ, where LR(·) = p(·|θ) / P(·) and P is the reference marginal. Works on
/// log-ratios: sorts the population's once, then one binary search per record. Every record is
/// scored over the whole population, and a record that is itself in the population counts its
/// comparison with itself as ½ (a tie): otherwise members and population records would be scored
/// over denominators that differ by label, and a perfect attack would tie the best non-member
/// with every member at 1.
pub fn rmia_scores(log_ratio: &[f64], population: &[usize], gamma: f64) -> Vec<f64> {
    let mut z: Vec<f64> = population
        .iter()
        .map(|&j| log_ratio[j])
        .filter(|v| v.is_finite())
        .collect();
    z.sort_unstable_by(f64::total_cmp);
    let mut in_pop = vec![false; log_ratio.len()];
    for &j in population {
        if log_ratio[j].is_finite() {
            in_pop[j] = true;
        }
    }
    let lg = gamma.ln();
    log_ratio
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if !x.is_finite() {
                return f64::NAN;
            }
            if z.is_empty() {
                return f64::NAN;
            }
            // z with x − z > ln γ ⇔ z < x − ln γ (strict); x itself is not below x − ln γ.
            let beaten = z.partition_point(|&v| v < x - lg);
            (beaten as f64 + if in_pop[i] { 0.5 } else { 0.0 }) / z.len() as f64
        })
        .collect()
}

/// Log likelihood ratios log p(x|θ) − log P(x) for RMIA. The signal is the geometric-mean token
/// probability exp(φ) (ML Privacy Meter's choice for language models). Online, P(x) is the mean
/// over every reference model; offline, P(x) = ((1 + a)/2)·P_OUT(x) + (1 − a)/2.
fn rmia_log_ratio(
    target: &[f64],
    refs: &[(Vec<f64>, &[bool])],
    offline_a: Option<f64>,
) -> Vec<f64> {
    (0..target.len())
        .map(|i| {
            let vals: Vec<f64> = refs
                .iter()
                .filter(|(_, m)| offline_a.is_none() || !m[i])
                .map(|(s, _)| s[i].exp())
                .filter(|v| v.is_finite())
                .collect();
            if vals.is_empty() || !target[i].is_finite() {
                return f64::NAN;
            }
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let p = match offline_a {
                Some(a) => 0.5 * (1.0 + a) * mean + 0.5 * (1.0 - a),
                None => mean,
            };
            target[i] - p.ln()
        })
        .collect()
}

/// Tunes RMIA's offline `a` without the target: one reference model plays the target, the
/// others (minus its complementary pair) are its references, and the `a` of the grid
/// {0, 0.1, …, 1} with the highest AUC on that model's own labels wins (ties: the smaller a).
/// `None` when fewer than two usable reference models remain.
pub fn tune_offline_a(refs: &[(Vec<f64>, &[bool])], gamma: f64) -> Option<(f64, f64)> {
    let (pseudo, pm) = refs.first()?;
    let others: Vec<(Vec<f64>, &[bool])> = refs[1..]
        .iter()
        .filter(|(_, m)| !m.iter().zip(pm.iter()).all(|(a, b)| a != b))
        .cloned()
        .collect();
    if others.len() < 2 {
        return None;
    }
    let population: Vec<usize> = (0..pm.len()).filter(|&i| !pm[i]).collect();
    let mut best: Option<(f64, f64)> = None;
    for step in 0..=10 {
        let a = f64::from(step) / 10.0;
        let lr = rmia_log_ratio(pseudo, &others, Some(a));
        let s = rmia_scores(&lr, &population, gamma);
        let (ss, mm): (Vec<f64>, Vec<bool>) = s
            .iter()
            .zip(pm.iter())
            .filter(|(v, _)| v.is_finite())
            .map(|(&v, &m)| (v, m))
            .unzip();
        let auc = Roc::new(&ss, &mm).auc();
        if auc.is_finite() && best.is_none_or(|b| auc > b.1) {
            best = Some((a, auc));
        }
    }
    best
}

/// One attack's description, parameters and scores (one per record).
type Attack = (String, BTreeMap<String, serde_json::Value>, Vec<f64>);

/// Parameters of a finding from `(key, value)` pairs.
fn param(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The per-record signal the reference-based attacks compare: per token when every model
/// tokenizes the audit texts as the target does, per UTF-8 byte when `retokenize` allows it;
/// an error naming the models otherwise.
fn signal_for(obs: &Observations, s: &Settings) -> Result<Signal, String> {
    let same = |m: &ModelObservations| m.tokenization == obs.target.tokenization;
    let all_same = obs.references.iter().all(same) && obs.reference_model.as_ref().is_none_or(same);
    if all_same {
        return Ok(Signal::PerToken);
    }
    if s.retokenize {
        return Ok(Signal::PerByte);
    }
    let odd: Vec<&str> = obs
        .references
        .iter()
        .chain(obs.reference_model.as_ref())
        .filter(|m| !same(m))
        .map(|m| m.name.as_str())
        .collect();
    Err(format!(
        "reference model(s) {} tokenize the audit texts differently from the target; per-token \
         log-likelihoods are not comparable. Use models sharing the target's tokenizer, or set \
         `retokenize = true` in the plan to compare log-likelihood per UTF-8 byte",
        odd.join(", ")
    ))
}

/// Computes every attack the settings name that the observations allow.
///
/// Kept whole: one arm per attack the plan names, in its order; the reference and RMIA attacks are
/// functions of their own.
pub fn attack_scores(obs: &Observations, s: &Settings) -> Result<Vec<AttackScores>, String> {
    let signal = signal_for(obs, s)?;
    let target_sig = signal.of(&obs.target, &obs.text_bytes);
    let refs: Vec<(Vec<f64>, &[bool])> = obs
        .references
        .iter()
        .filter_map(|m| {
            m.member
                .as_deref()
                .map(|mem| (signal.of(m, &obs.text_bytes), mem))
        })
        .collect();
    let mut out = Vec::new();
    let lira_params = |offline: bool| {
        let mut p = vec![
            (
                "location",
                serde_json::to_value(s.lira.location).unwrap_or_default(),
            ),
            (
                "variance",
                serde_json::to_value(s.lira.variance).unwrap_or_default(),
            ),
        ];
        if offline {
            p.push((
                "test",
                serde_json::to_value(s.lira.offline_test).unwrap_or_default(),
            ));
        }
        param(&p)
    };
    for name in &s.attacks {
        let mut notes = Vec::new();
        let (description, params, scores): Attack = match name.as_str() {
            "loss" => (
                "mean token log-likelihood under the target (−loss)".into(),
                param(&[]),
                obs.target.totals.iter().map(Total::mean).collect(),
            ),
            "zlib" => (
                "mean token log-likelihood / zlib-compressed bytes (nats per token per byte)"
                    .into(),
                param(&[("units", "nats/token/zlib-byte".into())]),
                obs.target
                    .totals
                    .iter()
                    .zip(&obs.zlib_bytes)
                    .map(|(t, &z)| t.mean() / z as f64)
                    .collect(),
            ),
            "min_k" => (
                format!(
                    "mean of the lowest {}% token log-probabilities",
                    s.min_k * 100.0
                ),
                param(&[("k", s.min_k.into())]),
                obs.target_tokens
                    .iter()
                    .map(|r| min_k(r, s.min_k))
                    .collect(),
            ),
            "min_k_pp" => (
                format!(
                    "mean of the lowest {}% standardised token log-probabilities (Min-K%++)",
                    s.min_k_pp * 100.0
                ),
                param(&[("k", s.min_k_pp.into())]),
                obs.target_tokens
                    .iter()
                    .map(|r| min_k_pp(r, s.min_k_pp))
                    .collect(),
            ),
            "reference" => match reference_attack(obs, signal, &target_sig, &refs) {
                Some(a) => a,
                None => {
                    skip(&mut out, name, "no reference model or fleet was given");
                    continue;
                }
            },
            "lira_online" | "lira_offline" | "rmia" | "rmia_offline" if refs.is_empty() => {
                skip(
                    &mut out,
                    name,
                    "needs reference models (--references or --reference-manifest)",
                );
                continue;
            }
            "lira_online" => (
                format!(
                    "log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out) over {} reference models, φ = {}",
                    refs.len(),
                    signal.name()
                ),
                lira_params(false),
                lira_online(&target_sig, &refs, &s.lira),
            ),
            "lira_offline" => (
                match s.lira.offline_test {
                    OfflineTest::OneSided => format!(
                        "(φ − μ_out)/σ_out, the paper's one-sided test, φ = {}",
                        signal.name()
                    ),
                    OfflineTest::TwoSided => format!(
                        "−log N(φ; μ_out, σ_out), the reference code's two-sided density, φ = {}",
                        signal.name()
                    ),
                },
                lira_params(true),
                lira_offline(&target_sig, &refs, &s.lira),
            ),
            "rmia" | "rmia_offline" => {
                rmia_attack(name == "rmia", obs, s, &target_sig, &refs, &mut notes)
            }
            other => return Err(format!("unknown attack '{other}'")),
        };
        if name.starts_with("lira") || name.starts_with("rmia") {
            let names: Vec<&str> = obs
                .references
                .iter()
                .filter(|m| m.member.is_some())
                .map(|m| m.name.as_str())
                .collect();
            notes.extend(fleet_balance(&refs, &names));
        }
        out.push(AttackScores {
            attack: name.clone(),
            description,
            params,
            scores,
            notes,
        });
    }
    Ok(out)
}

/// A warning when the reference models are not interchangeable: LiRA and RMIA pool every
/// reference's signal per record as draws from one IN and one OUT distribution, which holds
/// only when the references were trained alike. Compares the spread (standard deviation) of
/// the references' mean signals with the mean IN − OUT gap per record; a spread above half
/// the gap names the reference furthest from the others.
pub fn fleet_balance(refs: &[(Vec<f64>, &[bool])], names: &[&str]) -> Option<String> {
    if refs.len() < 3 {
        return None;
    }
    let mean = |v: &mut dyn Iterator<Item = f64>| {
        let (mut s, mut n) = (0.0, 0usize);
        for x in v.filter(|x| x.is_finite()) {
            s += x;
            n += 1;
        }
        (n > 0).then(|| s / n as f64)
    };
    let means: Vec<f64> = refs
        .iter()
        .map(|(sig, _)| mean(&mut sig.iter().copied()).unwrap_or(f64::NAN))
        .collect();
    let centre = mean(&mut means.iter().copied())?;
    let spread = (means
        .iter()
        .filter(|m| m.is_finite())
        .map(|m| (m - centre).powi(2))
        .sum::<f64>()
        / (means.len() - 1) as f64)
        .sqrt();
    let records = refs[0].0.len();
    let gap = mean(&mut (0..records).filter_map(|i| {
        let side = |inside: bool| {
            mean(
                &mut refs
                    .iter()
                    .filter(|(_, m)| m.get(i) == Some(&inside))
                    .map(|(sig, _)| sig[i]),
            )
        };
        Some(side(true)? - side(false)?)
    }))?;
    if spread.is_nan() || spread <= 0.5 * gap.abs() {
        return None;
    }
    let (worst, _) = means
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_finite())
        .max_by(|a, b| (a.1 - centre).abs().total_cmp(&(b.1 - centre).abs()))?;
    Some(format!(
        "the reference models are not interchangeable: their mean signals spread by {spread:.3} (standard deviation), against a mean IN − OUT gap of {gap:.3} per record; '{}' is furthest from the others ({:+.3}). Reference models should be trained alike (same size of training set, steps and settings); read this attack with care",
        names.get(worst).copied().unwrap_or("?"),
        means[worst] - centre
    ))
}

/// The reference attack: the target's signal minus a reference model's, or minus the mean of
/// the fleet's OUT models for each record; `None` without either.
fn reference_attack(
    obs: &Observations,
    signal: Signal,
    target_sig: &[f64],
    refs: &[(Vec<f64>, &[bool])],
) -> Option<Attack> {
    if let Some(rm) = &obs.reference_model {
        let r = signal.of(rm, &obs.text_bytes);
        return Some((
            format!(
                "target minus reference model '{}' ({})",
                rm.name,
                signal.name()
            ),
            param(&[("reference", rm.name.clone().into())]),
            target_sig.iter().zip(&r).map(|(t, r)| t - r).collect(),
        ));
    }
    if refs.is_empty() {
        return None;
    }
    let scores = (0..obs.records.len())
        .map(|i| {
            let v: Vec<f64> = refs
                .iter()
                .filter(|(_, m)| !m[i])
                .map(|(s, _)| s[i])
                .collect();
            if v.is_empty() {
                f64::NAN
            } else {
                target_sig[i] - v.iter().sum::<f64>() / v.len() as f64
            }
        })
        .collect();
    Some((
        format!(
            "target minus the mean of the OUT reference models ({})",
            signal.name()
        ),
        param(&[("reference", "fleet-out-mean".into())]),
        scores,
    ))
}

/// RMIA (online, or offline with `a` given or tuned on reference model 0): the share of
/// population records (the target's non-members) whose likelihood ratio each record beats by
/// more than γ.
fn rmia_attack(
    online: bool,
    obs: &Observations,
    s: &Settings,
    target_sig: &[f64],
    refs: &[(Vec<f64>, &[bool])],
    notes: &mut Vec<String>,
) -> Attack {
    let population: Vec<usize> = (0..obs.records.len()).filter(|&i| !obs.member[i]).collect();
    let (a, lr) = if online {
        (None, rmia_log_ratio(target_sig, refs, None))
    } else {
        let a = match s.rmia.offline_a {
            Some(a) => a,
            None => match tune_offline_a(refs, s.rmia.gamma) {
                Some((a, auc)) => {
                    notes.push(format!(
                        "offline a = {a} tuned on reference model 0 (AUC {auc:.4} there)"
                    ));
                    a
                }
                None => {
                    notes.push(
                        "too few reference models to tune a; a = 1 (P = P_OUT)".into(),
                    );
                    1.0
                }
            },
        };
        (Some(a), rmia_log_ratio(target_sig, refs, Some(a)))
    };
    let mut p = vec![
        ("gamma", s.rmia.gamma.into()),
        ("population", "target non-members".into()),
    ];
    if let Some(a) = a {
        p.push(("offline_a", a.into()));
    }
    (
        format!(
            "share of {} population records whose likelihood ratio is beaten by more than γ = {} (P(x) from {} reference models{})",
            population.len(),
            s.rmia.gamma,
            refs.len(),
            if a.is_some() { ", OUT only" } else { "" }
        ),
        param(&p),
        rmia_scores(&lr, &population, s.rmia.gamma),
    )
}

fn skip(out: &mut Vec<AttackScores>, name: &str, why: &str) {
    out.push(AttackScores {
        attack: name.to_owned(),
        description: String::new(),
        params: BTreeMap::new(),
        scores: Vec::new(),
        notes: vec![format!("not run: {why}")],
    });
}

fn histogram(scores: &[f64], members: &[bool], bins: usize) -> Histogram {
    let mut sorted: Vec<f64> = scores.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    if sorted.is_empty() {
        return Histogram::default();
    }
    // Clip the view to the 0.5–99.5 % range so one extreme score does not flatten the rest.
    let lo = crate::stats::roc::quantile_sorted(&sorted, 0.005);
    let mut hi = crate::stats::roc::quantile_sorted(&sorted, 0.995);
    if hi <= lo {
        hi = lo + 1.0;
    }
    let width = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|b| lo + width * b as f64).collect();
    let mut h = Histogram {
        edges,
        members: vec![0; bins],
        non_members: vec![0; bins],
    };
    for (&s, &m) in scores.iter().zip(members) {
        let b = (((s - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        if m {
            h.members[b] += 1;
        } else {
            h.non_members[b] += 1;
        }
    }
    h
}

/// The result of analysing one attack.
struct Evaluated {
    findings: Vec<Finding>,
    detail: AttackDetail,
}

fn evaluate(
    a: &AttackScores,
    obs: &Observations,
    s: &Settings,
    seed: u64,
    split: &(Vec<usize>, Vec<usize>),
    shift_caveat: Option<&str>,
) -> Evaluated {
    let keep: Vec<usize> = (0..a.scores.len())
        .filter(|&i| a.scores[i].is_finite())
        .collect();
    let scores: Vec<f64> = keep.iter().map(|&i| a.scores[i]).collect();
    let members: Vec<bool> = keep.iter().map(|&i| obs.member[i]).collect();
    let dropped = (obs.records.len() - keep.len()) as u64;
    let roc = Roc::new(&scores, &members);
    let auc = roc.auc();
    let mut caveats: Vec<String> = a.notes.clone();
    if dropped > 0 {
        caveats.push(format!(
            "{dropped} record(s) could not be scored by this attack and were left out (empty text, or too few reference models on one side)"
        ));
    }
    if let Some(c) = shift_caveat {
        caveats.push(c.to_owned());
    }
    let base = |metric: Metric| {
        let mut f = Finding::new(PROBE, metric, None).with_param("attack", a.attack.clone());
        for (k, v) in &a.params {
            f = f.with_param(k, v.clone());
        }
        for c in &caveats {
            f = f.with_caveat(c.clone());
        }
        f
    };
    let mut findings = Vec::new();
    let patients: Vec<u32> = keep.iter().map(|&i| obs.patients[i]).collect();
    // Records of one patient are not independent: when patients have several records, the
    // record-level AUC's interval resamples patients, and patient-level findings follow.
    let clustered = cluster::clustered(&patients);
    let unit = if clustered { "record" } else { "patient" };
    let (ci, method) = auc_interval(&scores, &members, &patients, s, seed, &a.attack);
    let mut f = base(metric::MIA_AUC).with_param("unit", unit);
    f.value = Some(auc).filter(|v| v.is_finite());
    f = f.with_counts(roc.pos, roc.pos + roc.neg);
    if let Some((lo, hi)) = ci {
        f = f.with_interval(s.confidence, lo, hi, &method);
    }
    findings.push(f);
    for &t in &s.fpr {
        let mut f = tpr_finding(
            base(metric::MIA_TPR_AT_FPR).with_param("unit", unit),
            &roc.tpr_at_fpr(t, s.confidence),
            s.confidence,
            if clustered { "non-member records" } else { "non-members" },
        );
        if clustered {
            f = f.with_caveat(
                "counts records, which are not independent (a patient's records share their patient's signal): judge on the patient-level finding",
            );
        }
        findings.push(f);
    }
    // Threshold metrics: calibrate on one half, count on the other (never the oracle threshold).
    let (cal, eval) = split;
    let finite = |rows: &[usize]| -> Vec<usize> {
        rows.iter()
            .copied()
            .filter(|&i| a.scores[i].is_finite())
            .collect()
    };
    let (cal, eval) = (finite(cal), finite(eval));
    findings.extend(calibrated(a, obs, s, &cal, &eval, &base).into_iter().map(|f| {
        if clustered {
            f.with_caveat(
                "counts records, and its calibration split divides patients' records between the halves: for comparison only; the patient-level findings are the ones judged",
            )
        } else {
            f
        }
    }));
    findings.push(epsilon_bound(
        a,
        (&a.scores, &obs.member),
        s,
        (&cal, &eval),
        if clustered { Unit::RecordOfClustered } else { Unit::Patient },
    ));
    if clustered {
        for how in [Aggregation::Max, Aggregation::Mean] {
            findings.extend(patient_level(a, &scores, &members, &patients, how, s, seed, &base));
        }
    }
    let vulnerable = vulnerable(obs, &keep, &scores, &members, s.vulnerable);
    Evaluated {
        findings,
        detail: AttackDetail {
            attack: a.attack.clone(),
            description: a.description.clone(),
            members: roc.pos,
            non_members: roc.neg,
            dropped,
            auc: Some(auc).filter(|v| v.is_finite()),
            roc: roc.downsample(300),
            histogram: histogram(&scores, &members, 30),
            vulnerable,
        },
    }
}

/// A TPR-at-FPR finding from its exact counts, with the caveat when too few `negatives` (what
/// they are, in words) resolve the FPR asked for.
fn tpr_finding(f: Finding, p: &crate::stats::roc::TprAtFpr, confidence: f64, negatives: &str) -> Finding {
    let t = p.target;
    let mut f = f
        .with_param("fpr", t)
        .with_param("achieved_fpr", p.fpr)
        .with_param("false_positives", format!("{} of {}", p.fp, p.neg))
        .with_counts(p.tp, p.pos)
        .with_interval(confidence, p.lo, p.hi, "clopper-pearson");
    f.value = Some(p.tpr).filter(|v| v.is_finite());
    if !p.resolvable {
        f = f.with_caveat(format!(
            "only {} {negatives}: the smallest non-zero FPR is 1/{} > {t}, so this TPR is at FPR 0; audit at least {} {negatives} to resolve FPR {t}",
            p.neg,
            p.neg,
            (1.0 / t).ceil()
        ));
    }
    f
}

/// The AUC's interval: a cluster bootstrap over patients when patients have several records,
/// else the stratified record (= patient) bootstrap; with the method's name.
fn auc_interval(
    scores: &[f64],
    members: &[bool],
    patients: &[u32],
    s: &Settings,
    seed: u64,
    attack: &str,
) -> (Option<(f64, f64)>, String) {
    let label = format!("membership/bootstrap/{attack}");
    if cluster::clustered(patients) {
        (
            cluster::cluster_bootstrap_auc(
                scores,
                members,
                patients,
                s.bootstrap,
                s.confidence,
                seed,
                &label,
            ),
            format!(
                "cluster bootstrap by patient (stratified, {} resamples)",
                s.bootstrap
            ),
        )
    } else {
        (
            bootstrap_auc(scores, members, s.bootstrap, s.confidence, seed, &label),
            format!(
                "bootstrap-percentile (stratified, {} resamples)",
                s.bootstrap
            ),
        )
    }
}

/// The threshold metrics at a threshold chosen on the calibration half (`cal`) and counted on
/// the other (`eval`): balanced accuracy, advantage and PPV at the prevalence.
fn calibrated(
    a: &AttackScores,
    obs: &Observations,
    s: &Settings,
    cal: &[usize],
    eval: &[usize],
    base: &dyn Fn(Metric) -> Finding,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let th = best_threshold(&a.scores, &obs.member, cal, Confusion::advantage);
    let c = Confusion::at(&a.scores, &obs.member, eval, th);
    let (alo, ahi) = c.advantage_interval(s.confidence);
    let cal_note = format!(
        "threshold {th:.6} chosen on a calibration half ({} records), counted on the other ({} records)",
        cal.len(),
        eval.len()
    );
    let mut f = base(metric::MIA_BALANCED_ACCURACY)
        .with_param("threshold", "calibrated")
        .with_counts(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn_)
        .with_interval(
            s.confidence,
            0.5 * (1.0 + alo),
            0.5 * (1.0 + ahi),
            "newcombe-hybrid-score",
        )
        .with_caveat(cal_note.clone());
    f.value = Some(c.balanced_accuracy()).filter(|v| v.is_finite());
    out.push(f);
    let mut f = base(metric::MIA_ADVANTAGE)
        .with_param("threshold", "calibrated")
        .with_param("tpr", format!("{} of {}", c.tp, c.tp + c.fn_))
        .with_param("fpr", format!("{} of {}", c.fp, c.fp + c.tn))
        .with_interval(s.confidence, alo, ahi, "newcombe-hybrid-score")
        .with_caveat(cal_note.clone());
    f.value = Some(c.advantage()).filter(|v| v.is_finite());
    out.push(f);
    let pi = s.prevalence.unwrap_or_else(|| {
        obs.member.iter().filter(|&&m| m).count() as f64 / obs.member.len().max(1) as f64
    });
    let (ppv, plo, phi) = c.ppv_at(pi, s.confidence);
    let mut f = base(metric::MIA_PPV)
        .with_param("threshold", "calibrated")
        .with_param("prevalence", pi)
        .with_counts(c.tp, c.tp + c.fp)
        .with_interval(
            s.confidence,
            plo.min(ppv),
            phi.max(ppv),
            "clopper-pearson-bounds",
        )
        .with_caveat(cal_note);
    f.value = Some(ppv).filter(|v| v.is_finite());
    out.push(f);
    out
}

/// The ε lower bound of the attack: the threshold maximising the bound on the calibration half
/// (`cal`), the bound counted on the other (`eval`).
fn epsilon_bound(
    a: &AttackScores,
    (scores, member): (&[f64], &[bool]),
    s: &Settings,
    (cal, eval): (&[usize], &[usize]),
    unit: Unit,
) -> Finding {
    let eps_obj =
        |c: &Confusion| epsilon_lower_bound(c.tp, c.fn_, c.fp, c.tn, s.delta, s.confidence);
    // The point-estimate ε bounds the confidence bound from above (upper confidence limits of
    // the rates are at least the rates), which lets the search skip most thresholds.
    // Tighter and still valid: an upper limit is at least the one for zero events,
    // 1 − (α/2)^(1/n).
    let floor = |n: u64| 1.0 - ((1.0 - s.confidence) / 2.0).powf(1.0 / n.max(1) as f64);
    let eps_point = |c: &Confusion| {
        epsilon::epsilon_from_rates(
            c.fpr().max(floor(c.fp + c.tn)),
            (1.0 - c.tpr()).max(floor(c.tp + c.fn_)),
            s.delta,
        )
    };
    let th = best_threshold_bounded(scores, member, cal, eps_obj, eps_point);
    let c = Confusion::at(scores, member, eval, th);
    let eps = eps_obj(&c);
    let point = epsilon::epsilon_from_rates(c.fpr(), 1.0 - c.tpr(), s.delta);
    let mut f = Finding::new(PROBE, metric::DP_EPSILON_LB, Some(eps))
        .with_param("attack", a.attack.clone())
        .with_param("delta", s.delta)
        .with_param("confidence", s.confidence)
        .with_param("method", "clopper-pearson (rates' upper bounds), threshold calibrated on a separate half")
        .with_param("tp_fn_fp_tn", format!("{} {} {} {}", c.tp, c.fn_, c.fp, c.tn))
        .with_param("point_estimate", if point.is_finite() { serde_json::json!(point) } else { serde_json::json!("inf") })
        .with_param("unit", unit.id())
        .with_caveat(unit.epsilon_caveat(s.confidence, s.delta));
    for (k, v) in &a.params {
        f = f.with_param(k, v.clone());
    }
    f
}

/// What an ε lower bound is a bound for.
#[derive(Clone, Copy)]
enum Unit {
    /// Patients (one record each, or patient-level scores).
    Patient,
    /// Records of patients with several records each.
    RecordOfClustered,
}

impl Unit {
    fn id(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::RecordOfClustered => "record",
        }
    }

    fn epsilon_caveat(self, confidence: f64, delta: f64) -> String {
        match self {
            Self::Patient => format!(
                "a {confidence}-confidence lower bound on the ε of any patient-level (ε, δ = {delta})-DP guarantee of this training (a patient's records added or removed together), valid when patients were assigned to training independently; it says nothing about an upper bound"
            ),
            Self::RecordOfClustered => format!(
                "not a valid bound at record level: patients' records were included together, so counts of records are not independent trials; use the patient-level bound (this one, at δ = {delta} and {confidence} confidence, is shown for comparison only)"
            ),
        }
    }
}

/// Patient-level findings of one attack: each patient's records aggregated to one score
/// (`how`), then the AUC with a patient bootstrap, TPR at each FPR and the patient-level ε
/// bound, every one tagged `unit = patient` and its aggregation.
#[allow(clippy::too_many_arguments)]
fn patient_level(
    a: &AttackScores,
    scores: &[f64],
    members: &[bool],
    patients: &[u32],
    how: Aggregation,
    s: &Settings,
    seed: u64,
    base: &dyn Fn(Metric) -> Finding,
) -> Vec<Finding> {
    let (ps, pm) = cluster::aggregate(scores, members, patients, how);
    let mixed = cluster::mixed_clusters(members, patients);
    let tag = |f: Finding| {
        let f = f
            .with_param("unit", "patient")
            .with_param("aggregation", how.id());
        if mixed > 0 {
            f.with_caveat(format!(
                "{mixed} patient(s) have both member and non-member records: the split was not made per patient, and each counts with its first record's membership"
            ))
        } else {
            f
        }
    };
    let mut out = Vec::new();
    if !(pm.contains(&true) && pm.contains(&false)) {
        return out;
    }
    let roc = Roc::new(&ps, &pm);
    let mut f = tag(base(metric::MIA_AUC)).with_counts(roc.pos, roc.pos + roc.neg);
    f.value = Some(roc.auc()).filter(|v| v.is_finite());
    if let Some((lo, hi)) = bootstrap_auc(
        &ps,
        &pm,
        s.bootstrap,
        s.confidence,
        seed,
        &format!("membership/bootstrap-patients/{}/{}", a.attack, how.id()),
    ) {
        f = f.with_interval(
            s.confidence,
            lo,
            hi,
            &format!(
                "bootstrap-percentile over patients (stratified, {} resamples)",
                s.bootstrap
            ),
        );
    }
    out.push(f);
    for &t in &s.fpr {
        out.push(tpr_finding(
            tag(base(metric::MIA_TPR_AT_FPR)),
            &roc.tpr_at_fpr(t, s.confidence),
            s.confidence,
            "non-member patients",
        ));
    }
    let mut rng = Rng::derive(seed, &format!("membership/split-patients/{}", how.id()), 0);
    let (cal, eval) = split_halves(&pm, &mut rng);
    out.push(tag(epsilon_bound(
        a,
        (&ps, &pm),
        s,
        (&cal, &eval),
        Unit::Patient,
    )));
    out
}

/// The members the attack singles out most confidently (at most `limit`), by record id, each
/// with the non-members scoring at or above it. `keep` maps the scored rows to records.
fn vulnerable(
    obs: &Observations,
    keep: &[usize],
    scores: &[f64],
    members: &[bool],
    limit: usize,
) -> Vec<VulnerableRecord> {
    let order = crate::stats::roc::descending(scores);
    let mut vulnerable = Vec::new();
    let mut non_members_seen = 0u64;
    let mut j = 0;
    while j < order.len() && vulnerable.len() < limit {
        // Count non-members tied with this score as "at or above".
        let v = scores[order[j] as usize];
        let mut e = j;
        while e < order.len() && scores[order[e] as usize] == v {
            if !members[order[e] as usize] {
                non_members_seen += 1;
            }
            e += 1;
        }
        for &i in &order[j..e] {
            if members[i as usize] && vulnerable.len() < limit {
                vulnerable.push(VulnerableRecord {
                    record_id: obs.records[keep[i as usize]].clone(),
                    score: v,
                    non_members_at_or_above: non_members_seen,
                });
            }
        }
        j = e;
    }
    vulnerable
}

/// AUC of a record feature (length…) as a membership score, with its bootstrap interval: a
/// feature that separates members from non-members on its own means the two sets differ in
/// distribution, which can inflate every attack (Duan et al., "Do Membership Inference Attacks
/// Work on Large Language Models?", COLM 2024).
pub fn shift_check(
    feature: &str,
    values: &[f64],
    members: &[bool],
    s: &Settings,
    seed: u64,
) -> ShiftCheck {
    let keep: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].is_finite())
        .collect();
    let v: Vec<f64> = keep.iter().map(|&i| values[i]).collect();
    let m: Vec<bool> = keep.iter().map(|&i| members[i]).collect();
    let auc = Roc::new(&v, &m).auc();
    let resamples = s.bootstrap.max(200);
    let ci = bootstrap_auc(
        &v,
        &m,
        resamples,
        s.confidence,
        seed,
        &format!("membership/shift/{feature}"),
    );
    // Flag only a material difference (the feature alone at AUC ≥ 0.6 or ≤ 0.4) that is
    // clear of chance, on at least 20 records of each class: records of one patient share
    // patient-level features, so record-level intervals are too narrow for those.
    let counts = (
        m.iter().filter(|&&x| x).count() as u64,
        m.iter().filter(|&&x| !x).count() as u64,
    );
    let min = crate::evidence::SHIFT_MIN_PER_CLASS;
    let shifted = auc.is_finite()
        && (auc - 0.5).abs() >= 0.1
        && counts.0 >= min
        && counts.1 >= min
        && ci.is_some_and(|(lo, hi)| lo > 0.5 || hi < 0.5);
    ShiftCheck {
        feature: feature.to_owned(),
        auc: Some(auc).filter(|v| v.is_finite()),
        interval: ci,
        level: s.confidence,
        resamples,
        shifted,
        counts: Some(counts),
    }
}

/// A categorical feature (the data file a record came from, …) as a membership score, fitted
/// honestly: each category's member share is estimated on a seeded half of the records and used
/// as the score of the other half, whose AUC (with its bootstrap interval) is reported. Records
/// from sources with different member shares make attacks look better than they are.
pub fn categorical_shift_check(
    feature: &str,
    categories: &[u32],
    members: &[bool],
    s: &Settings,
    seed: u64,
) -> ShiftCheck {
    let mut rng = Rng::derive(seed, &format!("membership/shift-split/{feature}"), 0);
    let (cal, eval) = split_halves(members, &mut rng);
    let mut counts: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    for &i in &cal {
        let e = counts.entry(categories[i]).or_default();
        e.0 += f64::from(u8::from(members[i]));
        e.1 += 1.0;
    }
    let overall = cal.iter().filter(|&&i| members[i]).count() as f64 / cal.len().max(1) as f64;
    let share = |c: u32| counts.get(&c).map_or(overall, |&(m, n)| m / n);
    let values: Vec<f64> = eval.iter().map(|&i| share(categories[i])).collect();
    let labels: Vec<bool> = eval.iter().map(|&i| members[i]).collect();
    shift_check(feature, &values, &labels, s, seed)
}

/// Analyses the observations: every attack's findings, plus the report detail.
pub fn analyze(
    obs: &Observations,
    s: &Settings,
    seed: u64,
    data_shift: &[ShiftCheck],
    target_label: &str,
) -> Result<(Vec<Finding>, MembershipDetail), String> {
    s.validate()?;
    let n = obs.records.len();
    let members = obs.member.iter().filter(|&&m| m).count();
    if members == 0 || members == n {
        return Err(format!(
            "the audit needs both members and non-members with known membership; found {members} members of {n} records"
        ));
    }
    // Distribution shift between members and non-members, on features of the data only (token
    // counts are not one: a tokenizer trained on the members tokenizes them more compactly,
    // which is leakage, not shift).
    let mut shift = vec![shift_check(
        "text_bytes",
        &obs.text_bytes.iter().map(|&b| b as f64).collect::<Vec<_>>(),
        &obs.member,
        s,
        seed,
    )];
    // Checks on data features that are not kept with the observations (dates are PHI), made
    // when the audit observed the data.
    shift.extend(data_shift.iter().cloned());
    let shifted: Vec<String> = shift
        .iter()
        .filter(|c| c.shifted)
        .map(|c| {
            format!(
                "{} (AUC {} on its own)",
                c.feature,
                c.auc.map_or("n/a".into(), |a| format!("{a:.3}"))
            )
        })
        .collect();
    let shift_caveat = (!shifted.is_empty()).then(|| {
        format!(
            "members and non-members differ in {}: part of this AUC may reflect distribution shift rather than memorisation; compare against these AUCs",
            shifted.join(", ")
        )
    });
    let mut split_rng = Rng::derive(seed, "membership/split", 0);
    let split = split_halves(&obs.member, &mut split_rng);
    let mut findings = Vec::new();
    let mut details = Vec::new();
    for a in attack_scores(obs, s)? {
        if a.scores.is_empty() {
            let mut f = Finding::new(PROBE, metric::MIA_AUC, None).with_param("attack", a.attack.clone());
            for c in &a.notes {
                f = f.with_caveat(c.clone());
            }
            findings.push(f);
            continue;
        }
        let e = evaluate(&a, obs, s, seed, &split, shift_caveat.as_deref());
        findings.extend(e.findings);
        details.push(e.detail);
    }
    for c in &shift {
        let mut f =
            Finding::new(PROBE, metric::MIA_SHIFT_AUC, c.auc).with_param("feature", c.feature.clone());
        if let Some((lo, hi)) = c.interval {
            f = f.with_interval(
                c.level,
                lo,
                hi,
                &format!(
                    "bootstrap-percentile (stratified, {} resamples)",
                    c.resamples
                ),
            );
        }
        if c.shifted {
            f = f.with_caveat(
                "this feature alone separates members from non-members: the member and held-out sets are not identically distributed",
            );
        }
        findings.push(f);
    }
    let detail = MembershipDetail {
        target: target_label.to_owned(),
        references: obs
            .references
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.member
                        .as_ref()
                        .map_or(0, |v| v.iter().filter(|&&x| x).count() as u64),
                )
            })
            .collect(),
        records: n as u64,
        members: members as u64,
        settings: serde_json::to_value(s).unwrap_or_default(),
        attacks: details,
        shift,
    };
    Ok((findings, detail))
}

/// A synthetic audit for benchmarks: `n` records (half members), `k` reference models on
/// complementary halves, `tokens` scored positions per record under the target; member signals
/// sit a little higher and every record has its own difficulty.
pub fn synthetic_audit(n: usize, k: usize, tokens: usize, seed: u64) -> Observations {
    let mut rng = Rng::new(seed);
    let difficulty: Vec<f64> = (0..n).map(|_| -3.0 + rng.normal()).collect();
    let member: Vec<bool> = (0..n).map(|_| rng.chance(0.5)).collect();
    let mut target_tokens = Vec::with_capacity(n);
    let mut totals = Vec::with_capacity(n);
    for i in 0..n {
        let shift = if member[i] { 0.2 } else { 0.0 };
        let lp: Vec<f32> = (0..tokens)
            .map(|_| (difficulty[i] + shift + 1.5 * rng.normal()).min(0.0) as f32)
            .collect();
        let r = TokenRows::from_scores(
            &lp,
            &vec![(difficulty[i] - 0.5) as f32; tokens],
            &vec![2.0; tokens],
        );
        totals.push(Total::of(&r));
        target_tokens.push(r);
    }
    let references = (0..k)
        .map(|j| {
            let m: Vec<bool> = if j % 2 == 0 {
                (0..n).map(|_| rng.chance(0.5)).collect()
            } else {
                Vec::new()
            };
            (j, m)
        })
        .collect::<Vec<_>>();
    let mut refs: Vec<ModelObservations> = Vec::with_capacity(k);
    let mut last: Vec<bool> = Vec::new();
    for (j, m) in references {
        let m = if j % 2 == 0 {
            last = m.clone();
            m
        } else {
            last.iter().map(|&x| !x).collect()
        };
        let totals = (0..n)
            .map(|i| {
                let shift = if m[i] { 0.2 } else { 0.0 };
                Total {
                    n: tokens as u32,
                    sum: tokens as f64 * (difficulty[i] + shift + 0.2 * rng.normal()),
                }
            })
            .collect();
        refs.push(ModelObservations {
            name: format!("ref-{j:02}"),
            member: Some(m),
            tokenization: "t".into(),
            totals,
        });
    }
    Observations {
        records: (0..n).map(|i| format!("r{i}")).collect(),
        member,
        patients: (0..n as u32).collect(),
        text_bytes: vec![4 * tokens as u64; n],
        zlib_bytes: vec![2 * tokens as u64; n],
        target: ModelObservations {
            name: "target".into(),
            member: None,
            tokenization: "t".into(),
            totals,
        },
        target_tokens,
        references: refs,
        reference_model: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::special::{normal_cdf, normal_quantile};

    fn rows(lp: &[f32]) -> TokenRows {
        TokenRows::from_scores(lp, &vec![-2.0; lp.len()], &vec![1.0; lp.len()])
    }

    #[test]
    fn min_k_uses_at_least_one_token() {
        let r = rows(&[-1.0, -5.0, -3.0, -0.5]);
        assert_eq!(min_k(&r, 0.2), -5.0); // ⌊0.8⌋ = 0 → one token
        assert_eq!(min_k(&r, 0.5), -4.0);
        assert_eq!(min_k(&r, 1.0), -2.375);
        assert!(min_k(&rows(&[]), 0.2).is_nan());
        // z = (lp + 2)/1: lowest is −3.
        assert_eq!(min_k_pp(&r, 0.2), -3.0);
    }

    #[test]
    fn rmia_sorting_matches_the_pairwise_definition() {
        let mut rng = Rng::new(5);
        let lr: Vec<f64> = (0..300).map(|_| (rng.index(40) as f64) / 7.0).collect();
        let pop: Vec<usize> = (0..300).filter(|i| i % 3 != 0).collect();
        for gamma in [1.0, 1.5, 2.0] {
            let got = rmia_scores(&lr, &pop, gamma);
            for i in 0..lr.len() {
                let mut beaten = 0.0;
                for &j in &pop {
                    if j == i {
                        beaten += 0.5;
                    } else if (lr[i] - lr[j]).exp() > gamma {
                        beaten += 1.0;
                    }
                }
                let want = beaten / pop.len() as f64;
                assert!((got[i] - want).abs() < 1e-12, "i {i} γ {gamma}");
            }
        }
    }

    /// Synthetic audit: member signals are shifted up by `delta` under the target and under the
    /// IN reference models; every record has its own difficulty μ_i.
    #[test]
    fn an_unbalanced_fleet_is_flagged_and_a_balanced_one_is_not() {
        let mut rng = Rng::new(9);
        let n = 200;
        let k = 8;
        let memberships: Vec<Vec<bool>> = (0..k)
            .map(|j| (0..n).map(|i| (i + j) % 2 == 0).collect())
            .collect();
        let difficulty: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let signals = |offset_of_last: f64, rng: &mut Rng| -> Vec<Vec<f64>> {
            (0..k)
                .map(|j| {
                    (0..n)
                        .map(|i| {
                            let inside = if memberships[j][i] { 0.5 } else { 0.0 };
                            let off = if j == k - 1 { offset_of_last } else { 0.0 };
                            difficulty[i] + inside + off + 0.1 * rng.normal()
                        })
                        .collect()
                })
                .collect()
        };
        let names: Vec<String> = (0..k).map(|j| format!("ref-{j:02}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let balanced = signals(0.0, &mut rng);
        let refs: Vec<(Vec<f64>, &[bool])> = balanced
            .into_iter()
            .zip(&memberships)
            .map(|(s, m)| (s, m.as_slice()))
            .collect();
        assert_eq!(fleet_balance(&refs, &names), None);
        // One reference trained on far fewer records scores far lower everywhere.
        let skewed = signals(-2.0, &mut rng);
        let refs: Vec<(Vec<f64>, &[bool])> = skewed
            .into_iter()
            .zip(&memberships)
            .map(|(s, m)| (s, m.as_slice()))
            .collect();
        let w = fleet_balance(&refs, &names).expect("flagged");
        assert!(w.contains("'ref-07'"), "{w}");
    }

    fn synthetic(n: usize, k: usize, delta: f64, seed: u64) -> Observations {
        let mut rng = Rng::new(seed);
        let mu: Vec<f64> = (0..n).map(|_| -3.0 + 1.5 * rng.normal()).collect();
        let member: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let mk = |name: &str, m: &[bool], rng: &mut Rng| {
            let rows: Vec<TokenRows> = (0..n)
                .map(|i| {
                    let phi = mu[i] + if m[i] { delta } else { 0.0 } + 0.1 * rng.normal();
                    // Four tokens averaging to φ.
                    let lp = [phi - 0.3, phi + 0.3, phi - 0.1, phi + 0.1].map(|v| v as f32);
                    TokenRows::from_scores(&lp, &[(mu[i] - 0.5) as f32; 4], &[1.0; 4])
                })
                .collect();
            (
                ModelObservations {
                    name: name.into(),
                    member: None,
                    tokenization: "same".into(),
                    totals: rows.iter().map(Total::of).collect(),
                },
                rows,
            )
        };
        let (target, target_tokens) = mk("target", &member, &mut rng);
        let references = (0..k)
            .map(|j| {
                let m: Vec<bool> = (0..n).map(|i| (i / 2 + j) % 2 == 0).collect();
                let mut r = mk(&format!("ref-{j:02}"), &m, &mut rng).0;
                r.member = Some(m);
                r
            })
            .collect();
        Observations {
            records: (0..n).map(|i| format!("r{i}")).collect(),
            member,
            patients: (0..n as u32).collect(),
            text_bytes: vec![100; n],
            zlib_bytes: vec![80; n],
            target,
            target_tokens,
            references,
            reference_model: None,
        }
    }

    /// A model that memorises perfectly is caught by every attack (sign conventions).
    #[test]
    fn perfect_memorisation_gives_auc_one_everywhere() {
        let obs = synthetic(200, 4, 40.0, 1);
        let s = Settings {
            bootstrap: 50,
            ..Settings::default()
        };
        let (findings, detail) = analyze(&obs, &s, 7, &[], "t").unwrap();
        assert_eq!(detail.attacks.len(), ATTACKS.len());
        for a in &detail.attacks {
            assert_eq!(a.auc, Some(1.0), "{}", a.attack);
        }
        // Perfect separation is found at the lowest FPR too (no member tied with a non-member).
        for f in findings.iter().filter(|f| f.metric == metric::MIA_TPR_AT_FPR) {
            assert_eq!(f.value, Some(1.0), "{}", f.key());
        }
        let eps: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.metric == metric::DP_EPSILON_LB)
            .collect();
        assert!(eps.iter().all(|f| f.value.unwrap() > 2.0));
    }

    /// Reference-calibrated attacks beat the loss attack when records differ in difficulty.
    #[test]
    fn calibration_beats_loss_under_heterogeneous_difficulty() {
        let obs = synthetic(2000, 8, 0.3, 2);
        let s = Settings {
            bootstrap: 10,
            ..Settings::default()
        };
        let scores = attack_scores(&obs, &s).unwrap();
        let auc = |name: &str| {
            let a = scores.iter().find(|a| a.attack == name).unwrap();
            Roc::new(&a.scores, &obs.member).auc()
        };
        assert!(auc("loss") < 0.65, "loss {}", auc("loss"));
        for a in [
            "reference",
            "lira_online",
            "lira_offline",
            "rmia",
            "rmia_offline",
        ] {
            assert!(auc(a) > 0.9, "{a} {}", auc(a));
        }
    }

    /// reference/attacks.md §B.8: with the true Gaussians, LiRA's ROC is the optimal
    /// TPR = Φ(Φ⁻¹(FPR) + Δ/σ), within binomial error at each FPR.
    #[test]
    fn lira_with_true_parameters_reaches_the_analytic_roc() {
        let (n, delta, sd) = (40_000usize, 1.0, 1.0);
        let mut rng = Rng::new(8);
        let mu: Vec<f64> = (0..n).map(|_| 5.0 * rng.normal()).collect();
        let member: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let x: Vec<f64> = (0..n)
            .map(|i| mu[i] + if member[i] { delta } else { 0.0 } + sd * rng.normal())
            .collect();
        // Reference signals: many IN and OUT draws per record, so the fits converge on the truth.
        let k = 64;
        let refs: Vec<(Vec<f64>, Vec<bool>)> = (0..k)
            .map(|j| {
                let m: Vec<bool> = (0..n).map(|i| (i + j) % 2 == 0).collect();
                let s: Vec<f64> = (0..n)
                    .map(|i| mu[i] + if m[i] { delta } else { 0.0 } + sd * rng.normal())
                    .collect();
                (s, m)
            })
            .collect();
        let refs: Vec<(Vec<f64>, &[bool])> = refs
            .iter()
            .map(|(s, m)| (s.clone(), m.as_slice()))
            .collect();
        let lira = LiraSettings {
            variance: Variance::Fixed,
            ..LiraSettings::default()
        };
        // The true parameters: the optimal test, within binomial error.
        let exact: Vec<f64> = (0..n)
            .map(|i| lira_llr(x[i], (mu[i] + delta, sd), (mu[i], sd)))
            .collect();
        let roc = Roc::new(&exact, &member);
        for fpr in [0.001, 0.01, 0.05, 0.2] {
            let p = roc.tpr_at_fpr(fpr, 0.95);
            let want = normal_cdf(normal_quantile(p.fpr.max(1e-9)) + delta / sd);
            let se = (want * (1.0 - want) / p.pos as f64).sqrt();
            assert!(
                (p.tpr - want).abs() < 4.0 * se,
                "fpr {fpr}: {} vs {want}",
                p.tpr
            );
        }
        let want = normal_cdf(delta / (sd * 2f64.sqrt()));
        assert!(
            (roc.auc() - want).abs() < 0.01,
            "auc {} vs {want}",
            roc.auc()
        );
        // Fitted from a 64-model fleet: close to the optimum (estimation noise in μ costs a
        // little power).
        let scores = lira_online(&x, &refs, &lira);
        let roc = Roc::new(&scores, &member);
        for fpr in [0.01, 0.05, 0.2] {
            let p = roc.tpr_at_fpr(fpr, 0.95);
            // Evaluate the analytic curve at the FPR actually achieved.
            let want = normal_cdf(normal_quantile(p.fpr.max(1e-9)) + delta / sd);
            let se = (want * (1.0 - want) / p.pos as f64).sqrt();
            assert!(
                (p.tpr - want).abs() < 4.0 * se + 0.02,
                "fpr {fpr}: tpr {} vs analytic {want}",
                p.tpr
            );
        }
        let auc = roc.auc();
        assert!((auc - want).abs() < 0.02, "auc {auc} vs {want}");
    }

    #[test]
    fn different_tokenizers_are_refused_unless_retokenizing() {
        let mut obs = synthetic(40, 2, 1.0, 3);
        obs.references[1].tokenization = "other".into();
        let s = Settings::default();
        let e = attack_scores(&obs, &s).unwrap_err();
        assert!(e.contains("ref-01") && e.contains("retokenize"), "{e}");
        let s = Settings {
            retokenize: true,
            ..Settings::default()
        };
        assert!(attack_scores(&obs, &s).is_ok());
    }

    #[test]
    fn shift_is_detected_and_reported_as_a_caveat() {
        let mut obs = synthetic(400, 0, 0.0, 4);
        obs.text_bytes = obs
            .member
            .iter()
            .map(|&m| if m { 150 } else { 100 })
            .collect();
        let s = Settings {
            attacks: vec!["loss".into()],
            bootstrap: 100,
            ..Settings::default()
        };
        let (findings, detail) = analyze(&obs, &s, 1, &[], "t").unwrap();
        assert!(
            detail
                .shift
                .iter()
                .any(|c| c.feature == "text_bytes" && c.shifted)
        );
        let auc = findings.iter().find(|f| f.metric == metric::MIA_AUC).unwrap();
        assert!(auc.caveats.iter().any(|c| c.contains("distribution shift")));
    }

    #[test]
    fn source_shift_is_detected_only_when_sources_differ_in_membership() {
        let s = Settings {
            bootstrap: 200,
            ..Settings::default()
        };
        let members: Vec<bool> = (0..600).map(|i| i % 2 == 0).collect();
        // Members mostly from file 0, non-members mostly from file 1.
        let skewed: Vec<u32> = (0..600)
            .map(|i| u32::from((i % 2 == 1) != (i % 10 == 0)))
            .collect();
        let c = categorical_shift_check("source_file", &skewed, &members, &s, 1);
        assert!(c.shifted && c.auc.unwrap() > 0.8, "{c:?}");
        // Files independent of membership.
        let mut rng = Rng::new(2);
        let random: Vec<u32> = (0..600).map(|_| rng.index(3) as u32).collect();
        let c = categorical_shift_check("source_file", &random, &members, &s, 1);
        assert!(!c.shifted, "{c:?}");
    }

    #[test]
    fn attacks_needing_references_are_skipped_with_a_note() {
        let obs = synthetic(40, 0, 1.0, 5);
        let s = Settings {
            bootstrap: 10,
            ..Settings::default()
        };
        let (findings, detail) = analyze(&obs, &s, 1, &[], "t").unwrap();
        assert_eq!(detail.attacks.len(), 4);
        let skipped: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.metric == metric::MIA_AUC && f.value.is_none())
            .collect();
        assert_eq!(skipped.len(), 5);
        assert!(skipped.iter().all(|f| f.caveats[0].starts_with("not run")));
    }
}
