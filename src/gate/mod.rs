//! Release gating: a policy file of thresholds turns findings into pass / warn / fail verdicts
//! and the run's exit code (0 pass, 1 a threshold breached, 2 error).
//!
//! ```toml
//! # policy.toml
//! [severity]                       # per-probe severity of a breach (default: "error")
//! extraction = "warning"           # a warning is reported but does not fail the gate
//!
//! [[rule]]
//! metric = "reid.prosecutor.max"   # metric id
//! max = 0.09                       # breach when the compared number > max
//!
//! [[rule]]
//! metric = "reid.k"
//! min = 11                         # breach when the compared number < min
//!
//! [[rule]]
//! metric = "mia.tpr_at_fpr"
//! probe = "membership"             # only findings of this probe
//! params = { attack = "rmia", fpr = 0.01 }   # only findings with these parameters
//! max = 0.05
//! bound = "value"                  # compare the point value (default: "conservative")
//! severity = "warning"             # overrides [severity] for this rule
//! missing = "skip"                 # a finding without a number: not measured (default: fail)
//! ```
//!
//! By default a rule compares the **conservative end of the confidence interval**: the upper
//! bound for a `max` rule, the lower bound for a `min` rule (the point value when a finding has
//! no interval), so a small sample cannot pass a gate by luck. A rule that matches no finding
//! is an error (fail closed), and so is a finding without a value.

use crate::error::{Error, Result};
use crate::evidence::{FileHash, Finding, GateEvaluation as Evaluation, GateRecord, Verdict};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Which number of a finding a rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// The interval's upper bound for `max`, its lower bound for `min` (the value when there
    /// is no interval). A rule with both `max` and `min` compares each with its own end.
    #[default]
    Conservative,
    /// The point value.
    Value,
    /// The upper end of the confidence interval (the value when there is none).
    Upper,
    /// The lower end of the confidence interval (the value when there is none).
    Lower,
}

impl Bound {
    fn name(self) -> &'static str {
        match self {
            Bound::Conservative => "conservative",
            Bound::Value => "value",
            Bound::Upper => "upper",
            Bound::Lower => "lower",
        }
    }
}

/// How a breach counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A breach fails the gate (exit 1).
    #[default]
    Error,
    /// A breach is reported (verdict `warn`) but the gate passes.
    Warning,
}

/// One threshold rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The metric the rule applies to (its id; an unknown id is refused when the policy is read).
    pub metric: crate::evidence::Metric,
    /// Only findings of this probe (`risk`, `membership`, `canary`, `extraction`, `inversion`).
    #[serde(default)]
    pub probe: Option<String>,
    /// Breach when the compared number is greater.
    #[serde(default)]
    pub max: Option<f64>,
    /// Breach when the compared number is smaller.
    #[serde(default)]
    pub min: Option<f64>,
    /// Which number to compare.
    #[serde(default)]
    pub bound: Bound,
    /// Restrict to findings with these parameter values.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// Severity of a breach (default: the probe's entry in `[severity]`, else `error`).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// A matching finding without a number (nothing to measure, e.g. no record holds that
    /// identifier type): `fail` (default, fail closed) or `skip` (reported as not measured).
    #[serde(default)]
    pub missing: Missing,
}

/// What a rule does with a finding that has no number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// The rule fails closed.
    #[default]
    Fail,
    /// The finding is listed as not measured and does not count.
    Skip,
}

/// A release policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Severity of a breach per probe.
    #[serde(default)]
    pub severity: BTreeMap<String, Severity>,
    /// Rules, all of which must pass.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::fsx::read_config(path)?;
        Self::parse(&text).map_err(|message| Error::Policy {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks policy text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        check_metric_ids(text)?;
        let p: Policy = toml::from_str(text).map_err(|e| crate::redact::toml(&e, text))?;
        if p.rules.is_empty() {
            return Err("no [[rule]] tables; a policy must state at least one threshold".into());
        }
        for r in &p.rules {
            if r.max.is_some_and(|v| !v.is_finite()) || r.min.is_some_and(|v| !v.is_finite()) {
                return Err(format!(
                    "rule for '{}' has a non-finite threshold",
                    r.metric
                ));
            }
            if r.max.is_none() && r.min.is_none() {
                return Err(format!(
                    "rule for '{}' has neither `max` nor `min`",
                    r.metric
                ));
            }
            if let (Some(lo), Some(hi)) = (r.min, r.max)
                && lo > hi
            {
                return Err(format!(
                    "rule for '{}' has min {lo} above max {hi}; no value can pass",
                    r.metric
                ));
            }
        }
        Ok(p)
    }

    fn severity_of(&self, rule: &Rule, probe: &str) -> Severity {
        rule.severity
            .or_else(|| self.severity.get(probe).copied())
            .unwrap_or_default()
    }
}

fn params_match(rule: &Rule, f: &Finding) -> bool {
    rule.params.iter().all(|(k, want)| {
        let Some(got) = f.params.get(k) else {
            return false;
        };
        match (want, got) {
            (toml::Value::String(a), serde_json::Value::String(b)) => a == b,
            (toml::Value::Integer(a), serde_json::Value::Number(b)) => {
                b.as_f64() == Some(*a as f64)
            }
            (toml::Value::Float(a), serde_json::Value::Number(b)) => {
                b.as_f64().is_some_and(|b| (b - a).abs() < 1e-12)
            }
            (toml::Value::Boolean(a), serde_json::Value::Bool(b)) => a == b,
            _ => false,
        }
    })
}

/// The result of applying a policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Every (rule, finding) comparison, in policy order.
    pub evaluations: Vec<Evaluation>,
    /// Findings whose verdict is `fail`.
    pub failed: usize,
    /// Findings whose verdict is `warn`.
    pub warned: usize,
}

impl Outcome {
    /// Whether the gate passes (no error-severity breach).
    pub fn passed(&self) -> bool {
        self.failed == 0
    }

    /// The record kept in `findings.json`.
    pub fn record(&self, policy: FileHash) -> GateRecord {
        GateRecord {
            policy,
            passed: self.passed(),
            failed: self.failed as u64,
            warned: self.warned as u64,
            evaluations: self.evaluations.clone(),
        }
    }
}

impl Severity {
    fn word(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

fn pick(bound: Bound, is_max: bool, f: &Finding) -> (Option<f64>, &'static str) {
    let (n, what) = pick_raw(bound, is_max, f);
    // A non-finite number is no number: the rule fails closed.
    (n.filter(|v| v.is_finite()), what)
}

fn pick_raw(bound: Bound, is_max: bool, f: &Finding) -> (Option<f64>, &'static str) {
    let interval = f.interval.as_ref();
    match (bound, interval) {
        (Bound::Value, _) | (_, None) => (f.value, "value"),
        (Bound::Upper, Some(i)) => (Some(i.hi), "upper bound"),
        (Bound::Lower, Some(i)) => (Some(i.lo), "lower bound"),
        (Bound::Conservative, Some(i)) if is_max => (Some(i.hi), "upper bound"),
        (Bound::Conservative, Some(i)) => (Some(i.lo), "lower bound"),
    }
}

/// Clears earlier policy results (thresholds, verdicts and the policy's caveats) so a run can be
/// gated again under another policy.
pub fn reset(findings: &mut [Finding]) {
    for f in findings {
        f.threshold = None;
        f.verdict = Verdict::Info;
        f.caveats.retain(|c| !c.starts_with(NO_VALUE));
    }
}

const NO_VALUE: &str = "no value to compare with the policy threshold";

/// Names a rule whose metric is not a known id, with the ids a policy may use (the typed parse
/// would say the same, but its message is redacted and cut short).
fn check_metric_ids(text: &str) -> std::result::Result<(), String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Ok(()); // the typed parse reports the syntax error
    };
    let rules = table.get("rule").and_then(toml::Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let Some(id) = rule.get("metric").and_then(toml::Value::as_str) else {
            continue;
        };
        if id.parse::<crate::evidence::Metric>().is_err() {
            // An id is configuration, not data; echo it only when it looks like one.
            let plain = id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            let shown = if plain {
                format!(" '{id}'")
            } else {
                String::new()
            };
            return Err(format!(
                "rule {}: unknown metric id{shown}; a policy may name: {}",
                i + 1,
                crate::evidence::metric::ids()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// Applies the policy to the findings, setting thresholds and verdicts (a finding breached by
/// several rules keeps its worst verdict). A rule that matches no finding is an error (fail
/// closed).
pub fn apply(policy: &Policy, path: &Path, findings: &mut [Finding]) -> Result<Outcome> {
    let mut out = Outcome::default();
    for (ri, rule) in policy.rules.iter().enumerate() {
        let mut matched = 0;
        for f in findings.iter_mut().filter(|f| {
            f.metric == rule.metric
                && rule.probe.as_ref().is_none_or(|p| *p == f.probe)
                && params_match(rule, f)
        }) {
            matched += 1;
            let severity = policy.severity_of(rule, &f.probe);
            let mut conditions = Vec::new();
            let mut breach = false;
            let mut shown = (None, "value");
            if let Some(m) = rule.max {
                let (n, what) = pick(rule.bound, true, f);
                breach |= n.is_none_or(|v| v > m);
                conditions.push(format!("≤ {}", crate::evidence::num_full(m)));
                shown = (n, what);
            }
            if let Some(m) = rule.min {
                let (n, what) = pick(rule.bound, false, f);
                breach |= n.is_none_or(|v| v < m);
                conditions.push(format!("≥ {}", crate::evidence::num_full(m)));
                if rule.max.is_none() || n.is_some_and(|v| v < m) {
                    shown = (n, what);
                }
            }
            let skipped = shown.0.is_none() && rule.missing == Missing::Skip;
            if shown.0.is_none() && !skipped && !f.caveats.iter().any(|c| c.starts_with(NO_VALUE)) {
                f.caveats.push(format!("{NO_VALUE}: failed closed"));
            }
            let verdict = match (breach && !skipped, severity) {
                _ if skipped => Verdict::Info,
                (false, _) => Verdict::Pass,
                (true, Severity::Error) => Verdict::Fail,
                (true, Severity::Warning) => Verdict::Warn,
            };
            // The finding shows the threshold of the rule behind its worst verdict.
            if !skipped && verdict.rank() >= f.verdict.rank() {
                f.verdict = verdict;
                f.threshold = if breach && rule.min.is_some_and(|m| shown.0.is_none_or(|v| v < m)) {
                    rule.min
                } else {
                    rule.max.or(rule.min)
                };
            }
            out.evaluations.push(Evaluation {
                rule: ri + 1,
                probe: f.probe.clone(),
                finding: f.key(),
                compared: match (rule.bound, shown.1) {
                    _ if shown.0.is_none() => "no value".to_owned(),
                    (Bound::Upper | Bound::Lower, "value") => {
                        format!("value (no interval for the {} bound)", rule.bound.name())
                    }
                    _ => shown.1.to_owned(),
                },
                number: shown.0,
                condition: conditions.join(" and "),
                severity: severity.word().to_owned(),
                verdict,
            });
        }
        if matched == 0 {
            return Err(Error::Policy {
                path: path.to_owned(),
                message: format!(
                    "rule {} for '{}' matches no finding of this run (check the metric id, probe and params against findings.json)",
                    ri + 1,
                    rule.metric
                ),
            });
        }
    }
    out.failed = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fail)
        .count();
    out.warned = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Warn)
        .count();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::metric;

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    #[test]
    fn a_mistyped_metric_id_is_refused_with_the_known_ids() {
        let err = Policy::parse(
            "[[rule]]\nmetric='mia.auc'\nmax=0.6\n[[rule]]\nmetric='mia.acu'\nmax=0.6\n",
        )
        .unwrap_err();
        assert!(err.contains("rule 2: unknown metric id 'mia.acu'"), "{err}");
        assert!(
            err.contains("mia.auc") && err.contains("utility.validation_perplexity"),
            "{err}"
        );
        let err = Policy::parse("[[rule]]\nmetric='<script>'\nmax=0.6\n").unwrap_err();
        assert!(
            err.starts_with("rule 1: unknown metric id;"),
            "not echoed: {err}"
        );
    }

    #[test]
    fn max_min_and_params() {
        let p = policy(
            "[[rule]]\nmetric='mia.auc'\nmax=0.5\n[[rule]]\nmetric='reid.k'\nmin=11\n[[rule]]\nmetric='reid.prosecutor.records_at_risk'\nmax=0.1\nparams={t=0.09}\n",
        );
        let mut fs = vec![
            Finding::new("x", metric::MIA_AUC, Some(0.6)),
            Finding::new("x", metric::REID_K, Some(12.0)),
            Finding::new("x", metric::REID_PROSECUTOR_RECORDS_AT_RISK, Some(0.2))
                .with_param("t", 0.09),
            Finding::new("x", metric::REID_PROSECUTOR_RECORDS_AT_RISK, Some(0.2))
                .with_param("t", 0.2),
        ];
        let out = apply(&p, Path::new("p"), &mut fs).unwrap();
        assert_eq!(out.failed, 2);
        assert_eq!(out.evaluations.len(), 3);
        assert_eq!(fs[0].verdict, Verdict::Fail);
        assert_eq!(fs[1].verdict, Verdict::Pass);
        assert_eq!(fs[2].verdict, Verdict::Fail);
        assert_eq!(fs[3].verdict, Verdict::Info);
    }

    #[test]
    fn the_default_compares_the_conservative_end_of_the_interval() {
        // Point 0.04 passes `max = 0.05`, but the upper bound 0.08 does not.
        let f = Finding::new("membership", metric::MIA_TPR_AT_FPR, Some(0.04)).with_interval(
            0.95,
            0.01,
            0.08,
            "clopper-pearson",
        );
        let mut fs = vec![f.clone()];
        let out = apply(
            &policy("[[rule]]\nmetric='mia.tpr_at_fpr'\nmax=0.05\n"),
            Path::new("p"),
            &mut fs,
        )
        .unwrap();
        assert_eq!(fs[0].verdict, Verdict::Fail);
        assert_eq!(out.evaluations[0].compared, "upper bound");
        assert_eq!(out.evaluations[0].number, Some(0.08));
        let mut fs = vec![f.clone()];
        apply(
            &policy("[[rule]]\nmetric='mia.tpr_at_fpr'\nmax=0.05\nbound='value'\n"),
            Path::new("p"),
            &mut fs,
        )
        .unwrap();
        assert_eq!(fs[0].verdict, Verdict::Pass);
        // For a `min` rule the conservative end is the lower bound: 0.01 < 0.02.
        let mut fs = vec![f];
        apply(
            &policy("[[rule]]\nmetric='mia.tpr_at_fpr'\nmin=0.02\n"),
            Path::new("p"),
            &mut fs,
        )
        .unwrap();
        assert_eq!(fs[0].verdict, Verdict::Fail);
    }

    #[test]
    fn severity_per_probe_and_per_rule() {
        let p = policy(
            "[severity]\nextraction='warning'\n[[rule]]\nmetric='extraction.rate'\nmax=0\n[[rule]]\nmetric='mia.auc'\nmax=0\n[[rule]]\nmetric='mia.ppv'\nmax=0\nseverity='warning'\n",
        );
        let mut fs = vec![
            Finding::new("extraction", metric::EXTRACTION_RATE, Some(1.0)),
            Finding::new("membership", metric::MIA_AUC, Some(1.0)),
            Finding::new("membership", metric::MIA_PPV, Some(1.0)),
        ];
        let out = apply(&p, Path::new("p"), &mut fs).unwrap();
        assert_eq!(
            fs.iter().map(|f| f.verdict).collect::<Vec<_>>(),
            [Verdict::Warn, Verdict::Fail, Verdict::Warn]
        );
        assert_eq!((out.failed, out.warned), (1, 2));
        assert!(!out.passed());
    }

    #[test]
    fn probe_filter_missing_values_and_reset() {
        let p = policy("[[rule]]\nmetric='mia.auc'\nprobe='risk'\nmax=1\n");
        let mut fs = vec![
            Finding::new("risk", metric::MIA_AUC, None),
            Finding::new("membership", metric::MIA_AUC, Some(5.0)),
        ];
        let out = apply(&p, Path::new("p"), &mut fs).unwrap();
        assert_eq!(out.evaluations.len(), 1);
        assert_eq!(fs[0].verdict, Verdict::Fail, "no value fails closed");
        assert_eq!(fs[1].verdict, Verdict::Info);
        assert!(fs[0].caveats[0].contains("failed closed"));
        reset(&mut fs);
        assert_eq!(fs[0].verdict, Verdict::Info);
        assert!(fs[0].caveats.is_empty() && fs[0].threshold.is_none());
    }

    #[test]
    fn missing_values_fail_closed_unless_skipped() {
        let mut fs = vec![
            Finding::new("extraction", metric::EXTRACTION_RATE, None),
            Finding::new("extraction", metric::EXTRACTION_RATE, Some(0.5)),
        ];
        let out = apply(
            &policy("[[rule]]\nmetric='extraction.rate'\nmax=1\nmissing='skip'\n"),
            Path::new("p"),
            &mut fs,
        )
        .unwrap();
        assert_eq!(fs[0].verdict, Verdict::Info);
        assert!(fs[0].caveats.is_empty());
        assert_eq!(fs[1].verdict, Verdict::Pass);
        assert!(out.passed());
        assert_eq!(
            out.record(FileHash::of("p", b"")).evaluations[0].verdict,
            Verdict::Info
        );
        let out = apply(
            &policy("[[rule]]\nmetric='extraction.rate'\nmax=1\n"),
            Path::new("p"),
            &mut fs,
        )
        .unwrap();
        assert!(!out.passed());
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(Policy::parse("").unwrap_err().contains("no [[rule]]"));
        assert!(
            Policy::parse("[[rule]]\nmetric='mia.auc'\n")
                .unwrap_err()
                .contains("neither")
        );
        assert!(
            Policy::parse("[[rule]]\nmetric='mia.auc'\nmin=2\nmax=1\n")
                .unwrap_err()
                .contains("above max")
        );
        assert!(Policy::parse("[[rule]]\nmetric='mia.auc'\nmax=1\nsevrity='x'\n").is_err());
        let mut fs = vec![Finding::new("x", metric::MIA_AUC, Some(0.6))];
        let e = apply(
            &policy("[[rule]]\nmetric='reid.k'\nmax=1\n"),
            Path::new("p"),
            &mut fs,
        )
        .unwrap_err();
        assert!(e.to_string().contains("matches no finding"), "{e}");
    }
}
