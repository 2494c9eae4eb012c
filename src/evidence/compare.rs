//! Comparison of DP-training settings (`phiprobe compare`): one row per run, drawn from each
//! run's findings.json.

use serde::{Deserialize, Serialize};

/// One attack's headline numbers in a compared run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComparedAttack {
    /// Attack name.
    pub attack: String,
    /// AUC.
    pub auc: Option<f64>,
    /// Its interval (lo, hi).
    pub auc_interval: Option<(f64, f64)>,
    /// TPR at the lowest FPR the run reported.
    pub tpr_low: Option<f64>,
    /// That FPR.
    pub low_fpr: Option<f64>,
}

/// One compared run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComparedRun {
    /// Label (the sweep setting, or the run id).
    pub label: String,
    /// Run id.
    pub run_id: String,
    /// Where its findings.json was read.
    pub source: String,
    /// SHA-256 of that findings.json.
    pub findings_sha256: String,
    /// The run's DP detail (scores dropped).
    pub dp: Option<super::DpDetail>,
    /// Membership attacks.
    pub attacks: Vec<ComparedAttack>,
    /// Mean canary exposure (bits) per rung of the repetition ladder: (copies, mean).
    pub exposure: Vec<(u64, f64)>,
    /// Identifier values reproduced from member records by extraction: (reproduced, attempted).
    pub extraction_members: Option<(u64, u64)>,
    /// The same for non-member records (the control).
    pub extraction_nonmembers: Option<(u64, u64)>,
    /// Member records whose continuation was reproduced at the longest prefix: (k, n).
    pub extractable: Option<(u64, u64)>,
}

/// Everything the comparison report draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComparisonDetail {
    /// Runs in the order given.
    pub runs: Vec<ComparedRun>,
    /// δ shared by every ε (None when the runs differ: the report says so).
    pub delta: Option<f64>,
    /// Problems found while comparing (different δ, missing sections).
    pub notes: Vec<String>,
}
