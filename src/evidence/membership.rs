//! Membership-inference detail for the report: curves, histograms and the most exposed records.

use serde::{Deserialize, Serialize};

/// Per-attack figures and tables (the headline numbers are findings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttackDetail {
    /// Attack id (`loss`, `lira_online`, …).
    pub attack: String,
    /// One-line description with the definition used.
    pub description: String,
    /// Records scored (members, non-members); records the attack could not score are dropped.
    pub members: u64,
    /// Non-members scored.
    pub non_members: u64,
    /// Records dropped (no score: empty text, too few reference models …).
    pub dropped: u64,
    /// AUC (point).
    pub auc: Option<f64>,
    /// ROC vertices (FPR, TPR), thinned for plotting on log axes.
    pub roc: Vec<(f64, f64)>,
    /// Score histogram: bin edges (len = bins + 1), member and non-member counts per bin.
    pub histogram: Histogram,
    /// The members this attack singles out most confidently.
    pub vulnerable: Vec<VulnerableRecord>,
}

/// A two-class histogram over shared bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Histogram {
    /// Bin edges, ascending.
    pub edges: Vec<f64>,
    /// Members per bin.
    pub members: Vec<u64>,
    /// Non-members per bin.
    pub non_members: Vec<u64>,
}

/// One member record an attack identifies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VulnerableRecord {
    /// The record's salted pseudonym (`rec-…`; never its id or text).
    pub record_id: String,
    /// The attack's score (higher = more member-like).
    pub score: f64,
    /// Non-members scoring at least as high: the false positives an attacker pays to flag it.
    pub non_members_at_or_above: u64,
}

/// A check that members and non-members come from the same distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShiftCheck {
    /// Feature compared (`text_bytes`, `tokens`, a date column…).
    pub feature: String,
    /// AUC of the feature alone as a membership score.
    pub auc: Option<f64>,
    /// Its bootstrap interval.
    pub interval: Option<(f64, f64)>,
    /// Confidence level of the interval.
    #[serde(default)]
    pub level: f64,
    /// Bootstrap resamples behind the interval.
    #[serde(default)]
    pub resamples: usize,
    /// Whether the difference is large enough to explain part of an attack's AUC.
    pub shifted: bool,
    /// Members and non-members with a value of the feature (fewer than
    /// [`SHIFT_MIN_PER_CLASS`] in either: too few to judge); absent in older findings.
    #[serde(default)]
    pub counts: Option<(u64, u64)>,
}

/// Records of each class a shift check needs before its reading means anything.
pub const SHIFT_MIN_PER_CLASS: u64 = 20;

/// Everything the membership section of the report draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MembershipDetail {
    /// Target model (name and weights hash).
    pub target: String,
    /// Reference models used (name, IN count over the audit records).
    pub references: Vec<(String, u64)>,
    /// Audit records with known membership.
    pub records: u64,
    /// Members among them.
    pub members: u64,
    /// The analysis settings as resolved (attacks, k, LiRA/RMIA variants, FPRs…).
    pub settings: serde_json::Value,
    /// One entry per attack run.
    pub attacks: Vec<AttackDetail>,
    /// Distribution-shift checks.
    pub shift: Vec<ShiftCheck>,
}

/// The per-token evidence of one record under the target, **without token order**: the scored
/// log-probabilities and their Min-K%++ standardisations z_t = (log p(x_t) − μ_t)/σ_t, each
/// sorted ascending. Every attack uses them order-free (sums and lowest-k means); dropping the
/// order means a cache of them plus the model's weights cannot be decoded back into the text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenRows {
    /// log p(x_t | x_<t), ascending.
    pub logprob: Vec<f32>,
    /// z_t, ascending (0 where σ_t = 0).
    pub z: Vec<f32>,
}

impl TokenRows {
    /// From the scored positions: log p, and μ_t and σ_t² of log p under the next-token
    /// distribution.
    pub fn from_scores(logprob: &[f32], mean: &[f32], var: &[f32]) -> Self {
        let mut z: Vec<f32> = logprob
            .iter()
            .zip(mean)
            .zip(var)
            .map(|((&lp, &mu), &v)| {
                let sd = f64::from(v).sqrt();
                if sd > 0.0 {
                    ((f64::from(lp) - f64::from(mu)) / sd) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mut logprob = logprob.to_vec();
        logprob.sort_unstable_by(f32::total_cmp);
        z.sort_unstable_by(f32::total_cmp);
        Self { logprob, z }
    }
}

/// A record's score under one model, reduced: scored tokens and Σ log p. This is all the
/// reference-based attacks need, so a fleet's observations cost 12 bytes per record and model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Total {
    /// Scored tokens.
    pub n: u32,
    /// Σ log p over them (nats).
    pub sum: f64,
}

impl Total {
    /// The reduction of one record's per-token scores.
    pub fn of(rows: &TokenRows) -> Self {
        Self {
            n: rows.logprob.len() as u32,
            sum: rows.logprob.iter().map(|&v| f64::from(v)).sum(),
        }
    }
    /// Mean log-probability per token (`NaN` when nothing was scored).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.sum / f64::from(self.n)
        }
    }
}
