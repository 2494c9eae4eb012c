//! DP-audit detail: the training setting and the accountant's ε, the empirical ε lower bounds
//! and estimates with how each was obtained, utility, and the consistency checks.

use serde::{Deserialize, Serialize};

/// The DP-SGD setting as trained (reference/dp.md (c) 8: what a report must state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DpSetting {
    /// Sampler: `poisson` (each example independently with probability q per step).
    pub sampler: String,
    /// Sampling rate q.
    pub sample_rate: f64,
    /// Noise multiplier σ (0: clipping without noise, no guarantee).
    pub noise: f64,
    /// Per-example clipping norm C.
    pub clip: f64,
    /// Optimisation steps.
    pub steps: u64,
    /// Epochs requested (steps = round(epochs / q)).
    pub epochs: f64,
    /// Expected batch size q·N.
    pub expected_batch: f64,
    /// The public N of the normaliser q·N.
    pub public_size: usize,
    /// Learning rate and optimiser.
    pub optimiser: String,
    /// δ of every ε here.
    pub delta: f64,
    /// The accountant and its conversion.
    pub accountant: String,
    /// ε by the accountant (None: σ = 0, no guarantee).
    pub epsilon: Option<f64>,
    /// ε by the classic conversion, for comparison.
    pub epsilon_classic: Option<f64>,
    /// The optimal Rényi order.
    pub order: Option<f64>,
    /// What the tokenizer was trained on.
    pub tokenizer: String,
}

/// Whether a number is a lower bound at a confidence level or a model-based estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EpsilonKind {
    /// Holds with probability ≥ the confidence: checked against the accountant.
    Bound,
    /// Rests on a model of the trade-off curve (e.g. Gaussian): not a bound.
    Estimate,
}

/// One empirical ε.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EpsilonLb {
    /// Instrument: `gradient canaries`, `text canaries`.
    pub instrument: String,
    /// Threat model.
    pub threat_model: String,
    /// Method and paper.
    pub method: String,
    /// Short method id (`one-run`, `clopper-pearson`, `gdp`).
    pub method_id: String,
    /// Bound or estimate.
    pub kind: EpsilonKind,
    /// The value.
    pub value: f64,
    /// Confidence of a bound (1 − significance).
    pub confidence: f64,
    /// Canaries (trials) in the audit.
    pub canaries: u64,
    /// Of which the coins included.
    pub included: u64,
    /// The largest value this method can report with these counts (a perfect attack).
    pub ceiling: f64,
    /// δ.
    pub delta: f64,
    /// A credible interval (lo, hi) where the method gives one (the Bayesian estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<(f64, f64)>,
}

/// The white-box noise and sampling checks (see `train::whitebox::NoiseCheck`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MechanismCheck {
    /// Observations of left-out canaries (pure noise).
    pub out_observations: u64,
    /// Their measured standard deviation, in units of C (should be σ).
    pub out_std: f64,
    /// Their mean (should be 0).
    pub out_mean: f64,
    /// Observations of included canaries.
    pub in_observations: u64,
    /// Their mean (should be q).
    pub in_mean: f64,
    /// z statistics of the noise std, the noise mean and the included canaries' mean.
    pub z: [f64; 3],
    /// z of the mean realised data batch against q·n (the data sampler).
    #[serde(default)]
    pub batch_z: Option<f64>,
    /// Whether every |z| is below the limit.
    pub passed: bool,
    /// The |z| limit.
    pub limit: f64,
}

/// Everything the DP section of the report draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DpDetail {
    /// The setting and the accountant's ε.
    pub setting: DpSetting,
    /// Validation loss of the final model (nats per token).
    pub validation_loss: Option<f64>,
    /// Validation perplexity e^loss.
    pub validation_perplexity: Option<f64>,
    /// Final training loss.
    pub train_loss: Option<f64>,
    /// Every empirical ε.
    pub estimates: Vec<EpsilonLb>,
    /// Scores of the text canaries (included, excluded) for the histogram.
    pub text_scores: Option<(Vec<f64>, Vec<f64>)>,
    /// Scores of the gradient canaries (included, excluded).
    pub gradient_scores: Option<(Vec<f64>, Vec<f64>)>,
    /// White-box mechanism checks.
    pub mechanism: Option<MechanismCheck>,
    /// Inconsistencies: a bound above the accountant's ε, a failed mechanism check. Empty when
    /// all is well; a non-empty list fails the run.
    pub violations: Vec<String>,
    /// Notes (missing instruments, …).
    pub notes: Vec<String>,
}
