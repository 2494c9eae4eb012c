//! Detail tables of a re-identification risk analysis, kept for the report.

use serde::{Deserialize, Serialize};

/// Everything the report shows about a re-identification analysis beyond the headline findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReidDetail {
    /// Label of the quasi-identifier set (the `qi_set` parameter of its findings).
    pub label: String,
    /// Human-readable name of the dataset (file name or card name).
    pub dataset: String,
    /// Quasi-identifiers the equivalence classes were formed on, in order.
    pub quasi_identifiers: Vec<String>,
    /// Sensitive attributes analysed for attribute disclosure.
    pub sensitive: Vec<String>,
    /// What one person is (`patient` when a patient-id column exists, else `row`).
    pub unit: String,
    /// Settings that shaped the numbers, in words (threshold, k rule, missing policy …).
    pub settings: Vec<Setting>,
    /// Class-size histogram: (class size, number of classes), ascending by size.
    pub class_sizes: Vec<(u64, u64)>,
    /// Distribution of per-person prosecutor risk over fixed bins.
    pub risk_bins: Vec<RiskBin>,
    /// The smallest classes, by salted hash of their key (never raw values).
    pub worst_classes: Vec<ClassSummary>,
    /// The Safe Harbor checklist.
    pub safe_harbor: Vec<SafeHarborItem>,
    /// Per-sensitive-attribute diversity summaries.
    pub diversity: Vec<DiversitySummary>,
    /// Column roles as used (column, role, Safe Harbor category if any).
    pub columns: Vec<ColumnRole>,
}

/// A named setting and its value, as shown in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Setting {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Why it matters / what it means.
    pub note: String,
}

/// Persons whose prosecutor risk falls in `(lo, hi]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RiskBin {
    /// Exclusive lower bound.
    pub lo: f64,
    /// Inclusive upper bound.
    pub hi: f64,
    /// Number of persons in the bin.
    pub persons: u64,
}

/// One equivalence class, identified only by a salted hash of its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClassSummary {
    /// First 12 hex digits of the salted SHA-256 of the class key.
    pub key_hash: String,
    /// Number of persons in the class.
    pub size: u64,
    /// Prosecutor risk 1/size.
    pub risk: f64,
    /// Distinct values of the first sensitive attribute in the class, if any.
    pub distinct_sensitive: Option<u64>,
}

/// Presence of one of the 18 Safe Harbor identifier categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SafeHarborItem {
    /// Category number in 45 CFR 164.514(b)(2)(i), 1–18.
    pub number: u8,
    /// Category name.
    pub category: String,
    /// `present`, `absent`, `not-assessed`.
    pub status: String,
    /// Where it was found (column names, rule names) and how many cells, never the values.
    pub evidence: Vec<String>,
}

/// Attribute-disclosure summary for one sensitive attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiversitySummary {
    /// Sensitive attribute.
    pub attribute: String,
    /// Number of distinct values in the whole table.
    pub distinct_values: u64,
    /// Smallest number of distinct values in a class (distinct l-diversity).
    pub distinct_l: u64,
    /// exp of the smallest class entropy (entropy l-diversity, natural log, not floored).
    pub entropy_l: f64,
    /// Largest l with r1 < c·(r_l + … + r_m) in every class, for the reported c.
    pub recursive_l: u64,
    /// The c used for recursive (c,l)-diversity.
    pub recursive_c: f64,
    /// Largest total-variation distance between a class and the table (equal-distance t).
    pub t_equal: f64,
    /// Largest ordered-distance EMD (numeric attributes only).
    pub t_ordered: Option<f64>,
    /// Largest |log_b(q/p)| over values present in a class (δ-disclosure).
    pub delta_disclosure: f64,
    /// Log base used for δ-disclosure.
    pub delta_log_base: f64,
    /// Classes with a single sensitive value (homogeneity attack).
    pub homogeneous_classes: u64,
    /// Persons in those classes.
    pub homogeneous_persons: u64,
}

/// A column and the role it played.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ColumnRole {
    /// Column name.
    pub column: String,
    /// `direct`, `quasi`, `sensitive`, `text`, `patient-id`, `record-id`, `other`.
    pub role: String,
    /// Safe Harbor category name, for direct identifiers.
    pub category: Option<String>,
}
