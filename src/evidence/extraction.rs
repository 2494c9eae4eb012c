//! Extraction detail for the report: the k-extractability curve, rates per identifier type
//! (members vs the non-member control), untargeted counts and masked examples.

use serde::{Deserialize, Serialize};

/// Successes and trials: `(k, n)`.
pub type KOfN = (u64, u64);

/// One point of the k-extractability curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KPoint {
    /// Prefix length (tokens).
    pub k: usize,
    /// Members extractable by any decode (k of n).
    pub member: (u64, u64),
    /// Non-members (control).
    pub control: (u64, u64),
    /// Per decode: (decode, member k/n, control k/n).
    pub per_decode: Vec<(String, KOfN, KOfN)>,
}

/// Extraction of one identifier type in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TypeRate {
    /// `targeted_prefix`, `targeted_identifier` or `untargeted`.
    pub mode: String,
    /// Safe Harbor category id.
    pub phi_type: String,
    /// Members: extracted, of.
    pub member: (u64, u64),
    /// Non-members: extracted, of.
    pub control: (u64, u64),
    /// Member rate − control rate with its interval (difference, lo, hi); None when either
    /// group has no value of this type.
    pub excess: Option<(f64, f64, f64)>,
}

/// A member extraction, identifiers masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExtractionExample {
    /// The record's salted pseudonym (`rec-…`; never its id).
    pub record_id: String,
    /// What the prompt was.
    pub prompt: String,
    /// Decode.
    pub decode: String,
    /// The generated continuation with every detected identifier replaced by `[CATEGORY]`.
    pub continuation: String,
    /// Whether it matched the true continuation token for token.
    pub exact: bool,
    /// Identifiers of the record it reproduced.
    pub identifiers: u64,
}

/// Everything the extraction section of the report draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExtractionDetail {
    /// Records probed.
    pub records: u64,
    /// Of which members.
    pub members: u64,
    /// The k-extractability curve.
    pub curve: Vec<KPoint>,
    /// Rates per identifier type and mode.
    pub types: Vec<TypeRate>,
    /// Untargeted summary.
    pub untargeted: Option<serde_json::Value>,
    /// Member prefix attempts within the near distance.
    pub near_member_attempts: u64,
    /// Prompts skipped: text shorter than k + suffix tokens.
    pub too_short: u64,
    /// Masked examples.
    pub examples: Vec<ExtractionExample>,
    /// Settings as resolved.
    pub settings: serde_json::Value,
}
