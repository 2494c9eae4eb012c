//! Canary-exposure detail for the report: every estimate per canary and the reference fits.

use serde::{Deserialize, Serialize};

/// One canary's exposures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CanaryRow {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Copies the model saw (0: control).
    pub repetitions: usize,
    /// Copies requested (the ladder's rung).
    #[serde(default)]
    pub rung: usize,
    /// The secret (synthetic).
    pub secret: String,
    /// log₂|space|.
    pub log2_space: f64,
    /// References at least as likely, of how many.
    pub refs_at_least_as_likely: u64,
    /// References in the group.
    pub references: u64,
    /// Interpolated exposure (bits).
    pub exposure_rank: f64,
    /// Its interval (bits).
    pub exposure_rank_interval: (f64, f64),
    /// Extrapolated exposure (bits).
    pub exposure_skewnorm: Option<f64>,
    /// Exact rank (or its lower bound) and whether exact.
    pub exact_rank: Option<(u64, bool)>,
    /// Exposure from the exact rank (bits; an upper bound when the rank is a bound).
    pub exposure_exact: Option<f64>,
    /// Model calls the search spent.
    pub search_expansions: Option<u64>,
    /// Note on the search.
    pub search_note: Option<String>,
    /// The headline exposure: exact when available, else interpolated.
    pub exposure: f64,
}

/// A reference group's skew-normal fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupFit {
    /// Kind.
    pub kind: String,
    /// Format.
    pub format: String,
    /// References.
    pub references: u64,
    /// The fit (None: too few distinct values).
    pub fit: Option<crate::stats::skewnorm::Fit>,
}

/// Everything the canary section of the report draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CanaryDetail {
    /// Where the canaries came from.
    pub source: String,
    /// Per canary.
    pub rows: Vec<CanaryRow>,
    /// Per reference group.
    pub fits: Vec<GroupFit>,
    /// Spearman correlation between copies and exposure over planted canaries.
    pub trend: Option<f64>,
    /// The probe's settings as resolved.
    pub settings: serde_json::Value,
}

impl CanaryRow {
    /// The rung this canary's exposure is averaged under: its ladder rung, or 0 when it was not
    /// planted (a coin left it out: a control).
    pub fn rung_key(&self) -> usize {
        if self.repetitions == 0 {
            0
        } else {
            self.rung.max(1)
        }
    }
}
