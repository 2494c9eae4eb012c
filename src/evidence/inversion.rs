//! Model-inversion detail for the report: attribute inference per field and arm,
//! reconstruction from quasi-identifiers, and the link from leakage to identification risk.

use serde::{Deserialize, Serialize};

/// A success rate in Anonymeter's form: `k` of `n`, the Wilson centre and half-width, and the
/// interval clamped to [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArmRate {
    /// Successes.
    pub k: u64,
    /// Attempts.
    pub n: u64,
    /// Wilson centre (Anonymeter's point estimate).
    pub rate: f64,
    /// Wilson half-width.
    pub error: f64,
    /// Lower end (clamped).
    pub lo: f64,
    /// Upper end (clamped).
    pub hi: f64,
}

/// One field's attribute inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldInference {
    /// Column.
    pub field: String,
    /// Its role in the card (`sensitive`, `direct`, `quasi`, or `unlisted`).
    pub role: String,
    /// Distinct values in the data.
    pub domain: u64,
    /// Median candidates ranked per target.
    pub candidates: u64,
    /// Top-k of the top-k rates.
    pub k: u64,
    /// Members (the attack): top-1 by total log-probability.
    pub attack: ArmRate,
    /// Non-members (the control): top-1.
    pub control: ArmRate,
    /// The prior baseline on the member targets: the most frequent value (leave-patient-out,
    /// conditioned on the prior quasi-identifiers where the class is large enough).
    pub prior: ArmRate,
    /// Top-k, attack.
    pub attack_topk: ArmRate,
    /// Top-k, control.
    pub control_topk: ArmRate,
    /// Top-k, prior.
    pub prior_topk: ArmRate,
    /// Top-1 ranking by mean log-probability per token, attack.
    pub attack_normalised: ArmRate,
    /// Top-1 ranking by mean log-probability per token, control.
    pub control_normalised: ArmRate,
    /// Attack − control top-1 (k/n each) with Newcombe's interval: (difference, lo, hi).
    pub difference: Option<(f64, f64, f64)>,
    /// Anonymeter's residual risk of the attack over the control: (point, lo, hi).
    pub residual: Option<(f64, f64, f64)>,
    /// Mean model probability of the true value among the candidates: members, non-members.
    pub mean_p_true: (Option<f64>, Option<f64>),
}

/// One field of the reconstruction from quasi-identifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReconstructedField {
    /// Column.
    pub field: String,
    /// Member decodes holding the target's value: (k, n).
    pub members: (u64, u64),
    /// Non-member decodes: (k, n).
    pub control: (u64, u64),
    /// Members − control with Newcombe's interval: (difference, lo, hi).
    pub difference: Option<(f64, f64, f64)>,
}

/// Reconstruction of records from quasi-identifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReconstructionDetail {
    /// The prompt templates (`{column}` placeholders; no data).
    pub prompts: Vec<String>,
    /// Quasi-identifiers the prompts give the model.
    pub given: Vec<String>,
    /// Decoding (e.g. `beam 4, 96 tokens`).
    pub decoding: String,
    /// One entry per field checked.
    pub fields: Vec<ReconstructedField>,
}

/// One class-size stratum of the linkage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LinkStratum {
    /// Label (`1`, `2`, `3–4`, `5–9`, `10+`).
    pub label: String,
    /// Member patients in it.
    pub members: u64,
    /// Non-member patients in it.
    pub control: u64,
    /// Mean release-only probability (1/f) of its members.
    pub baseline_mean: Option<f64>,
    /// Mean identification probability of its members with the model.
    pub member_mean: Option<f64>,
    /// The same for its non-members.
    pub control_mean: Option<f64>,
    /// Members above the first threshold with the model.
    pub member_above: u64,
    /// Non-members above the first threshold with the model.
    pub control_above: u64,
}

/// Per-patient identification probabilities with and without the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LinkageDetail {
    /// Quasi-identifiers of the release the attacker matches on.
    pub released: Vec<String>,
    /// Fields whose model answers are matched against the release.
    pub link_fields: Vec<String>,
    /// Thresholds (e.g. 0.09, 0.05).
    pub thresholds: Vec<f64>,
    /// Patients in the release.
    pub patients: u64,
    /// Members: release only (1/f).
    pub member_baseline: IdSummary,
    /// Members: with the model.
    pub member_model: IdSummary,
    /// Non-members: release only.
    pub control_baseline: IdSummary,
    /// Non-members: with the model.
    pub control_model: IdSummary,
    /// Target patients whose direct identifier the extraction probe got out of the model
    /// (probability 1): (members, non-members).
    pub extracted: (u64, u64),
    /// By class size.
    pub strata: Vec<LinkStratum>,
    /// Every member's (release-only, with-model) probability, for the figure.
    pub member_points: Vec<(f64, f64)>,
    /// The same for non-members.
    pub control_points: Vec<(f64, f64)>,
    /// The member patients whose identification probability the model's answers raise most
    /// over the release alone (at most 10).
    #[serde(default)]
    pub top: Vec<LinkedPatient>,
}

/// One patient of the linkage table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LinkedPatient {
    /// The salted pseudonym of the patient's first record (never its id).
    pub record: String,
    /// Released class size.
    pub class_size: u64,
    /// Release-only probability 1/f.
    pub release: f64,
    /// With the model's answers.
    pub model: f64,
    /// Linkable fields the model answered.
    pub fields: u32,
    /// Identified through an extracted direct identifier.
    pub extracted: bool,
}

/// The membership posterior implied by the membership probe's ε lower bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PosteriorDetail {
    /// The attack whose bound is largest.
    pub attack: String,
    /// Attacks whose bounds it is the largest of.
    pub attacks: u64,
    /// Joint confidence of the bound (Bonferroni over the attacks).
    pub confidence: f64,
    /// Its ε lower bound.
    pub epsilon: f64,
    /// Prior n/N.
    pub prior: f64,
    /// Training patients n.
    pub trained: u64,
    /// Population N.
    pub population: u64,
    /// Whether N was given (`population`) or is the dataset's patient count.
    pub population_given: bool,
    /// The posterior lower bound.
    pub posterior: f64,
}

/// Generations matching a sample-unique patient on identifying quasi-identifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemorisedDetail {
    /// Unconditioned generations made.
    pub generations: u64,
    /// Quasi-identifier columns matched.
    pub qis: Vec<String>,
    /// Values that must co-occur.
    pub min_match: u64,
    /// Generations matching a member patient uniquely.
    pub member_generations: u64,
    /// Generations matching a non-member patient uniquely.
    pub control_generations: u64,
    /// Distinct member patients matched.
    pub member_patients: u64,
    /// Distinct non-member patients matched.
    pub control_patients: u64,
    /// Member and non-member patients in the data.
    pub patients: (u64, u64),
}

/// Everything the inversion section of the report draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InversionDetail {
    /// Attribute inference, one entry per field with targets.
    pub fields: Vec<FieldInference>,
    /// Reconstruction from quasi-identifiers, when prompts were given.
    pub reconstruction: Option<ReconstructionDetail>,
    /// Identification probabilities.
    pub linkage: Option<LinkageDetail>,
    /// Membership posterior (needs the membership probe).
    pub posterior: Option<PosteriorDetail>,
    /// Memorised-record matching.
    pub memorised: Option<MemorisedDetail>,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// What was skipped and why.
    pub notes: Vec<String>,
    /// The settings as resolved.
    pub settings: serde_json::Value,
}

/// Summary of identification probabilities of one group of patients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdSummary {
    /// Patients.
    pub n: u64,
    /// Mean probability (the expected share identified by an attacker who samples from the
    /// posterior).
    pub mean: Option<f64>,
    /// Largest probability.
    pub max: Option<f64>,
    /// Patients strictly above each threshold, in threshold order.
    pub above: Vec<u64>,
}
