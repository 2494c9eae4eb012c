//! Evidence: the plain, serialisable records of a run.
//!
//! `findings.json` is the canonical output of every run; Markdown and HTML are views of it and
//! can be re-rendered from it alone (`phiprobe report <run-dir>`). This module is pure data: no
//! I/O, no ML types, no polars (DESIGN.md §2). Bump [`SCHEMA_VERSION`] whenever the meaning of a
//! field changes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod canary;
mod compare;
mod determination;
mod dp;
mod extraction;
mod gate;
mod inversion;
mod membership;
pub mod metric;
pub use metric::Metric;
mod model;
mod reid;

pub use canary::*;
pub use compare::*;
pub use determination::*;
pub use dp::*;
pub use extraction::*;
pub use gate::*;
pub use inversion::*;
pub use membership::*;
pub use model::*;
pub use reid::*;

/// Version of the `findings.json` schema. Bumped whenever a field's meaning changes.
///
/// History: 1 — first release; 2 — verdict `warn`, the `gate` and `determination` sections,
/// `manifest.json` replaces `outputs.json`; the optional `dp` section (DP audits) was added
/// within 2 (older readers ignore it).
pub const SCHEMA_VERSION: u32 = 2;

/// A confidence interval around a point estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interval {
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// How the interval was computed, e.g. `clopper-pearson`.
    pub method: String,
}

/// Raw counts behind a proportion: `k` of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Counts {
    /// Numerator (events, records at risk, uniques…).
    pub k: u64,
    /// Denominator (records, patients, trials…).
    pub n: u64,
}

/// Outcome of comparing a finding with a policy threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No threshold applies: the number is reported for information.
    Info,
    /// Within the policy threshold.
    Pass,
    /// Breaches a threshold of warning severity: reported, does not fail the gate.
    Warn,
    /// Breaches the policy threshold.
    Fail,
}

impl Verdict {
    /// Order of severity: info < pass < warn < fail.
    pub fn rank(self) -> u8 {
        match self {
            Verdict::Info => 0,
            Verdict::Pass => 1,
            Verdict::Warn => 2,
            Verdict::Fail => 3,
        }
    }
}

/// A reported number with its provenance.
///
/// `metric` reads `<area>.<measure>` (e.g. `reid.prosecutor.max`); `params` holds the settings
/// that distinguish several findings with the same metric (e.g. `{estimator: "pitman"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// The probe or analysis that produced it (`risk`, `membership`, …).
    pub probe: String,
    /// What was measured (serialised as its stable id).
    pub metric: Metric,
    /// Parameters that qualify the metric; ordered for stable output.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The point value; `null` when it could not be computed (see caveats).
    pub value: Option<f64>,
    /// Raw counts when the value is a proportion.
    pub counts: Option<Counts>,
    /// Confidence interval where one applies.
    pub interval: Option<Interval>,
    /// Policy threshold compared against, when a policy was given.
    pub threshold: Option<f64>,
    /// Outcome of the comparison with `threshold`.
    pub verdict: Verdict,
    /// Warnings that qualify the number, each with what to do about it.
    pub caveats: Vec<String>,
}

impl Finding {
    /// A finding with only a value; chain the `with_*` methods to add the rest.
    pub fn new(probe: &str, metric: Metric, value: Option<f64>) -> Self {
        Self {
            probe: probe.to_owned(),
            metric,
            params: BTreeMap::new(),
            value: value.filter(|v| v.is_finite()),
            counts: None,
            interval: None,
            threshold: None,
            verdict: Verdict::Info,
            caveats: Vec::new(),
        }
    }

    /// Adds a parameter.
    pub fn with_param(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// Adds raw counts.
    pub fn with_counts(mut self, k: u64, n: u64) -> Self {
        self.counts = Some(Counts { k, n });
        self
    }

    /// Adds a confidence interval.
    pub fn with_interval(mut self, level: f64, lo: f64, hi: f64, method: &str) -> Self {
        self.interval = Some(Interval {
            level,
            lo,
            hi,
            method: method.to_owned(),
        });
        self
    }

    /// Adds a caveat.
    pub fn with_caveat(mut self, caveat: impl Into<String>) -> Self {
        self.caveats.push(caveat.into());
        self
    }

    /// A display key `metric{k=v,…}` unique within a run.
    pub fn key(&self) -> String {
        if self.params.is_empty() {
            return self.metric.to_string();
        }
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        format!("{}{{{}}}", self.metric, params.join(","))
    }
}

/// SHA-256 of one input or output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileHash {
    /// Path as given by the user (inputs) or relative to the run folder (outputs).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

impl FileHash {
    /// The hash record of `bytes` read from (or written to) `path`. Pure: hashing is not I/O.
    pub fn of(path: &str, bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        Self {
            path: path.to_owned(),
            bytes: bytes.len() as u64,
            sha256: Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }
}

/// What was run, on what, with which settings: enough to reproduce the findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunManifest {
    /// [`SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// phiprobe version.
    pub tool_version: String,
    /// Git commit phiprobe was built from, when known.
    pub git_commit: Option<String>,
    /// Run identifier (the run folder's name).
    pub run_id: String,
    /// The command that produced the run (`risk`, `demo`, …).
    pub command: String,
    /// The one seed every random stream derives from.
    pub seed: u64,
    /// The fully resolved plan (settings after defaults and flags were applied).
    pub plan: serde_json::Value,
    /// SHA-256 of every input file.
    pub inputs: Vec<FileHash>,
    /// UTC time the run started (RFC 3339); informational, not part of the findings.
    pub started_at: String,
}

/// The canonical content of `findings.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FindingsFile {
    /// [`SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// How the run was made.
    pub manifest: RunManifest,
    /// Every headline number.
    pub findings: Vec<Finding>,
    /// Re-identification risk detail (tables and distributions for the report), one per
    /// quasi-identifier set evaluated.
    pub reid: Vec<ReidDetail>,
    /// Membership-inference detail (curves, histograms, exposed records), when probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipDetail>,
    /// Canary-exposure detail, when probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryDetail>,
    /// Extraction detail, when probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extraction: Option<ExtractionDetail>,
    /// Model-inversion detail, when probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inversion: Option<InversionDetail>,
    /// DP audit of a DP-SGD target: the accountant's ε beside empirical lower bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<DpDetail>,
    /// A comparison of runs (`phiprobe compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonDetail>,
    /// The release gate's outcome, when a policy was applied while the run was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateRecord>,
    /// Facts of the Expert Determination supplied in a `determination.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub determination: Option<Determination>,
    /// Detail of probes that keep it in their own format (probes added after the ones above
    /// have a field), by probe kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probes: BTreeMap<String, serde_json::Value>,
}

impl FindingsFile {
    /// A findings file of `manifest` with no findings or detail yet.
    pub fn new(manifest: RunManifest) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            manifest,
            findings: Vec::new(),
            reid: Vec::new(),
            membership: None,
            canary: None,
            extraction: None,
            inversion: None,
            dp: None,
            comparison: None,
            gate: None,
            determination: None,
            probes: BTreeMap::new(),
        }
    }
}

/// The JSON Schema (draft 2020-12) of `findings.json` for this [`SCHEMA_VERSION`], derived from
/// these types; published as `schemas/findings.schema.json` (`phiprobe schema` prints it).
pub fn json_schema() -> serde_json::Value {
    let mut s = serde_json::to_value(schemars::schema_for!(FindingsFile))
        .unwrap_or(serde_json::Value::Null);
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "$id".into(),
            format!("urn:phiprobe:findings:{SCHEMA_VERSION}").into(),
        );
        o.insert(
            "description".into(),
            format!(
                "phiprobe findings.json, schema_version {SCHEMA_VERSION}: the canonical evidence of a run (manifest, findings with intervals and counts, per-probe detail, gate, determination facts)."
            )
            .into(),
        );
    }
    s
}

/// Formats a number for a report's body: integers with thousands separators, others to three
/// significant figures (numbers of 1,000 or more rounded to integers); full precision stays in
/// findings.json and in [`num_full`].
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.fract() == 0.0 || v.abs() >= 999.5 {
        return num_full(v.round());
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (2 - mag).clamp(0, 12) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// Formats a number with up to 6 significant digits (integers with thousands separators): for
/// policy thresholds and gate messages, where a rounded number could read as equal to its limit.
pub fn num_full(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let s = format!("{}", v as i64);
        let neg = s.starts_with('-');
        let digits = s.trim_start_matches('-');
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        return if neg { format!("-{out}") } else { out };
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (5 - mag).clamp(0, 10) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}
