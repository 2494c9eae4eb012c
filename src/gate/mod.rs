//! Release gating: a policy file of thresholds turns findings into pass / fail verdicts and the
//! run's exit code (0 pass, 1 a threshold breached).
//!
//! ```toml
//! # policy.toml
//! [[rule]]
//! metric = "reid.prosecutor.max"   # metric id
//! max = 0.09                       # fail when value > max
//!
//! [[rule]]
//! metric = "reid.k"
//! min = 11                         # fail when value < min
//!
//! [[rule]]
//! metric = "reid.prosecutor.records_at_risk"
//! max = 0.05
//! bound = "upper"                  # compare the interval's upper bound (default: the value)
//! params = { threshold = 0.09 }    # only findings with these parameters
//! ```

use crate::error::{Error, Result};
use crate::evidence::{Finding, Verdict};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Which number of a finding a rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// The point value.
    #[default]
    Value,
    /// The upper end of the confidence interval (the value when there is none).
    Upper,
    /// The lower end of the confidence interval (the value when there is none).
    Lower,
}

/// One threshold rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Metric id the rule applies to.
    pub metric: String,
    /// Fail when the compared number is greater.
    #[serde(default)]
    pub max: Option<f64>,
    /// Fail when the compared number is smaller.
    #[serde(default)]
    pub min: Option<f64>,
    /// Which number to compare.
    #[serde(default)]
    pub bound: Bound,
    /// Restrict to findings with these parameter values.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
}

/// A release policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Rules, all of which must pass.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let p: Policy = toml::from_str(&text).map_err(|e| Error::Policy {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if p.rules.is_empty() {
            return Err(Error::Policy {
                path: path.to_owned(),
                message: "no [[rule]] tables; a policy must state at least one threshold".into(),
            });
        }
        for r in &p.rules {
            if r.max.is_some_and(|v| !v.is_finite()) || r.min.is_some_and(|v| !v.is_finite()) {
                return Err(Error::Policy {
                    path: path.to_owned(),
                    message: format!("rule for '{}' has a non-finite threshold", r.metric),
                });
            }
            if r.max.is_none() && r.min.is_none() {
                return Err(Error::Policy {
                    path: path.to_owned(),
                    message: format!("rule for '{}' has neither `max` nor `min`", r.metric),
                });
            }
        }
        Ok(p)
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

/// Applies the policy to the findings, setting thresholds and verdicts. Returns the number of
/// findings that failed. A rule that matches no finding is an error (fail closed).
pub fn apply(policy: &Policy, path: &Path, findings: &mut [Finding]) -> Result<usize> {
    let mut failed = 0;
    for rule in &policy.rules {
        let mut matched = 0;
        for f in findings
            .iter_mut()
            .filter(|f| f.metric == rule.metric && params_match(rule, f))
        {
            matched += 1;
            let number = match (rule.bound, &f.interval) {
                (Bound::Upper, Some(i)) => Some(i.hi),
                (Bound::Lower, Some(i)) => Some(i.lo),
                _ => f.value,
            };
            let fail = match number {
                None => true,
                Some(v) => rule.max.is_some_and(|m| v > m) || rule.min.is_some_and(|m| v < m),
            };
            f.threshold = rule.max.or(rule.min);
            if number.is_none() {
                f.caveats
                    .push("no value to compare with the policy threshold: failed closed".into());
            }
            if fail {
                failed += 1;
                f.verdict = Verdict::Fail;
            } else if f.verdict != Verdict::Fail {
                f.verdict = Verdict::Pass;
            }
        }
        if matched == 0 {
            return Err(Error::Policy {
                path: path.to_owned(),
                message: format!("rule for '{}' matches no finding of this run", rule.metric),
            });
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_min_and_params() {
        let policy: Policy = toml::from_str(
            "[[rule]]\nmetric='a'\nmax=0.5\n[[rule]]\nmetric='k'\nmin=11\n[[rule]]\nmetric='r'\nmax=0.1\nparams={t=0.09}\n",
        )
        .unwrap();
        let mut fs = vec![
            Finding::new("x", "a", Some(0.6)),
            Finding::new("x", "k", Some(12.0)),
            Finding::new("x", "r", Some(0.2)).with_param("t", 0.09),
            Finding::new("x", "r", Some(0.2)).with_param("t", 0.2),
        ];
        let failed = apply(&policy, Path::new("p"), &mut fs).unwrap();
        assert_eq!(failed, 2);
        assert_eq!(fs[0].verdict, Verdict::Fail);
        assert_eq!(fs[1].verdict, Verdict::Pass);
        assert_eq!(fs[2].verdict, Verdict::Fail);
        assert_eq!(fs[3].verdict, Verdict::Info);
    }

    #[test]
    fn unmatched_rule_is_an_error() {
        let policy: Policy = toml::from_str("[[rule]]\nmetric='nope'\nmax=1\n").unwrap();
        let mut fs = vec![Finding::new("x", "a", Some(0.6))];
        assert!(apply(&policy, Path::new("p"), &mut fs).is_err());
    }
}
