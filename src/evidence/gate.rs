//! The release gate's outcome, kept in `findings.json` so every view (report, JUnit XML) can be
//! rendered from it.

use super::{FileHash, Verdict};
use serde::{Deserialize, Serialize};

/// One policy rule applied to one finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateEvaluation {
    /// 1-based number of the rule in the policy file.
    pub rule: usize,
    /// The finding's probe.
    pub probe: String,
    /// The finding's display key (`metric{params}`).
    pub finding: String,
    /// What was compared: `value`, `upper bound`, `lower bound`.
    pub compared: String,
    /// The number compared (`null`: the finding has no value; the rule failed closed).
    pub number: Option<f64>,
    /// The requirement, e.g. `≤ 0.09`.
    pub condition: String,
    /// Severity of a breach: `error` fails the gate, `warning` does not.
    pub severity: String,
    /// Outcome of this comparison.
    pub verdict: Verdict,
}

/// A policy applied to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateRecord {
    /// The policy file and its hash.
    pub policy: FileHash,
    /// True when no comparison of error severity breached.
    pub passed: bool,
    /// Findings whose verdict is `fail`.
    pub failed: u64,
    /// Findings whose verdict is `warn`.
    pub warned: u64,
    /// Every comparison, in policy order.
    pub evaluations: Vec<GateEvaluation>,
}
