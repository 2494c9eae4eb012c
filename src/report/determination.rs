//! The Expert Determination frame around the results (reference/reid.md §10): determination
//! statement, executive summary, limitations, background, sources, definitions, assumptions,
//! data description, threat model and threshold, methodology; then conditions, re-evaluation
//! triggers, certification, appendices and the Privacy Impact Assessment annex.
//!
//! Measured facts come from the findings; facts only the expert or the organisation can supply
//! come from `determination.toml` and are shown as "not supplied" when missing — never
//! invented.

use super::doc::{Block, Section, num};
use crate::evidence::Metric;
use crate::evidence::metric;
use crate::evidence::{Determination, Finding, FindingsFile, Verdict};
use crate::stats::clopper_pearson;

/// One criterion of the measured conclusion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Criterion {
    /// What is tested.
    pub name: String,
    /// The measured number(s), with interval and counts.
    pub measured: String,
    /// The requirement.
    pub requirement: String,
    /// Met, not met, or not measured in this run.
    pub met: Option<bool>,
    /// What would resolve it when it is inconclusive (e.g. the sample size), or what drives
    /// it when it fails.
    pub resolve: Option<String>,
    /// The headline number against its limit, for the forest plot.
    pub forest: Option<Forest>,
}

/// One row of the forest plot: a criterion's headline number, its interval and its limit, on
/// a scale where "at or below the limit" is safe.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    /// Short label.
    pub label: String,
    /// Point value.
    pub value: f64,
    /// Interval, when the measure has one.
    pub interval: Option<(f64, f64)>,
    /// The limit the criterion requires the value (or the interval's upper end) to stay under.
    pub limit: f64,
}

fn missing(key: &str) -> String {
    format!("not supplied (determination.toml: {key})")
}

fn given(v: &Option<String>, key: &str) -> String {
    v.as_ref()
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| missing(key))
}

fn det(file: &FindingsFile) -> Determination {
    file.determination.clone().unwrap_or_default()
}

/// The identification-risk threshold: the determination's, else the run's (0.09 by default).
pub fn threshold(file: &FindingsFile) -> (f64, &'static str) {
    if let Some(t) = file.determination.as_ref().and_then(|d| d.threat.threshold) {
        return (t, "determination.toml");
    }
    let run = file
        .findings
        .iter()
        .find(|f| f.metric == metric::REID_PROSECUTOR_RECORDS_AT_RISK)
        .and_then(|f| f.params.get("threshold"))
        .and_then(serde_json::Value::as_f64);
    match run {
        Some(t) => (t, "the run's risk settings"),
        None => (
            0.09,
            "phiprobe's default (El Emam's public-release precedent)",
        ),
    }
}

fn find<'a>(
    file: &'a FindingsFile,
    metric: Metric,
    params: &[(&str, &str)],
) -> Option<&'a Finding> {
    file.findings.iter().find(|f| {
        f.metric == metric
            && params.iter().all(|(k, v)| {
                f.params
                    .get(*k)
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|s| s == *v)
            })
    })
}

fn num3(x: f64) -> String {
    num((x * 1000.0).round() / 1000.0)
}

/// Margin within which a leakage measure counts as negligible: an AUC within 0.5 ± 0.1, a
/// member − non-member difference or residual risk up to 0.05.
pub const AUC_MARGIN: f64 = 0.1;
/// See [`AUC_MARGIN`].
pub const RATE_MARGIN: f64 = 0.05;

/// Met when the whole interval is within the margin, not met when it excludes "no leakage",
/// otherwise inconclusive (`None`: the sample cannot tell).
fn three_way(lo: f64, hi: f64, leak: bool, within: bool) -> Option<bool> {
    if !(lo.is_finite() && hi.is_finite()) {
        None
    } else if leak {
        Some(false)
    } else if within {
        Some(true)
    } else {
        None
    }
}

/// The criteria the measured conclusion rests on. A leakage criterion is met only when its
/// whole confidence interval lies within the stated margin: a wide interval from a small
/// sample is inconclusive, never evidence of safety.
pub fn criteria(file: &FindingsFile) -> Vec<Criterion> {
    let (t, _) = threshold(file);
    let d = det(file);
    let e = Exposure::of(&d);
    let mut out = reid_criteria(file, &d, e, t);
    out.push(direct_identifier_criterion(file));
    out.extend(linkage_criterion(file, e, t));
    out.extend(added_risk_criterion(file, t));
    out.extend(canary_criterion(file));
    out.extend(membership_criterion(file));
    out.extend(difference_criteria(file));
    if let Some(g) = &file.gate {
        out.push(Criterion {
            name: format!("Release policy {}", g.policy.path),
            measured: format!(
                "{} breach(es) of error severity, {} warning(s)",
                g.failed, g.warned
            ),
            requirement: "no breach of error severity".into(),
            met: Some(g.passed),
            ..Criterion::default()
        });
    }
    out
}

/// How the threat model weighs a risk: a public release is judged on the maximum at face value;
/// a non-public one on the average times the probability of an attempt.
#[derive(Clone, Copy)]
struct Exposure {
    public: bool,
    attempt: f64,
}

impl Exposure {
    fn of(d: &Determination) -> Self {
        let public = d.release.model.as_deref().is_none_or(|m| m == "public");
        let attempt = if public {
            1.0
        } else {
            d.threat.attempt_probability.unwrap_or(1.0)
        };
        Self { public, attempt }
    }

    /// A measured risk as the criterion weighs it.
    fn scaled(self, v: f64) -> String {
        if self.public {
            num3(v)
        } else {
            format!(
                "{} × {} = {}",
                num3(v),
                num(self.attempt),
                num3(v * self.attempt)
            )
        }
    }

    /// What a criterion's name adds for a non-public release.
    fn suffix(self) -> String {
        if self.public {
            String::new()
        } else {
            format!(" × Pr(attempt) {}", num(self.attempt))
        }
    }
}

/// The data's re-identification risk on each QI set the determination names (or a criterion
/// saying it was not measured).
fn reid_criteria(file: &FindingsFile, d: &Determination, e: Exposure, t: f64) -> Vec<Criterion> {
    let mut out = Vec::new();
    let sets: Vec<_> = file
        .reid
        .iter()
        .filter(|r| d.release.qi_set.as_ref().is_none_or(|q| *q == r.label))
        .collect();
    if sets.is_empty() {
        out.push(Criterion {
            name: match &d.release.qi_set {
                Some(q) if !file.reid.is_empty() => format!(
                    "Re-identification risk of the released data on QI set [{q}] (named in determination.toml, not evaluated by this run)"
                ),
                _ => "Re-identification risk of the released data".into(),
            },
            measured: "not measured in this run (run `phiprobe risk` on the release and attach both runs to the determination)".into(),
            requirement: format!("≤ {}", num(t)),
            met: None,
            resolve: Some("run `phiprobe risk` on the release".into()),
            forest: None,
        });
    }
    for r in sets {
        let label = r.label.as_str();
        let metric = if e.public {
            metric::REID_PROSECUTOR_MAX
        } else {
            metric::REID_PROSECUTOR_AVG
        };
        let value = find(file, metric, &[("qi_set", label)]).and_then(|f| f.value);
        out.push(Criterion {
            name: format!(
                "{} prosecutor re-identification risk of the data on ({}){}",
                if e.public { "Maximum" } else { "Average" },
                r.quasi_identifiers.join(", "),
                e.suffix()
            ),
            measured: value.map_or_else(|| "not computed".into(), |v| e.scaled(v)),
            requirement: format!("≤ {}", num(t)),
            met: value.map(|v| v * e.attempt <= t),
            resolve: value.filter(|v| v * e.attempt > t).map(|_| {
                format!(
                    "the released data alone: its smallest equivalence classes on ({}) are below k = {} — generalise or suppress those quasi-identifiers (Safe Harbor: ZIP3, year only, ages over 89 as 90+), or restrict the release",
                    r.quasi_identifiers.join(", "),
                    (1.0 / t).ceil()
                )
            }),
            forest: value.map(|v| Forest {
                label: format!("prosecutor risk [{label}]"),
                value: v * e.attempt,
                interval: None,
                limit: t,
            }),
        });
    }
    out
}

/// Member patients' identification probability with the model's answers, against the release
/// alone.
fn linkage_criterion(file: &FindingsFile, e: Exposure, t: f64) -> Option<Criterion> {
    let linkage_metric = if e.public {
        metric::LINKAGE_IDENTIFICATION_MAX
    } else {
        metric::LINKAGE_IDENTIFICATION_MEAN
    };
    let f = find(
        file,
        linkage_metric,
        &[("arm", "attack"), ("basis", "model")],
    )?;
    let base = find(
        file,
        linkage_metric,
        &[("arm", "attack"), ("basis", "release")],
    )
    .and_then(|b| b.value);
    Some(Criterion {
        name: format!(
            "{} identification probability of member patients with the model's answers (release quasi-identifiers + attribute inference){}",
            if e.public { "Maximum" } else { "Mean" },
            e.suffix()
        ),
        measured: format!(
            "{}{}",
            f.value
                .map_or_else(|| "not computed".into(), |v| e.scaled(v)),
            base.map_or_else(String::new, |b| format!(" (release alone: {})", num3(b)))
        ),
        requirement: format!("≤ {}", num(t)),
        met: f.value.map(|v| v * e.attempt <= t),
        resolve: f.value.filter(|v| v * e.attempt > t).map(|_| match base {
            Some(b) if b * e.attempt > t => "driven by the release alone (its own identification probability is over the threshold): generalise the release's quasi-identifiers first; the model's share is the added-risk criterion".into(),
            _ => "driven by the model's answers: see the added-risk criterion".into(),
        }),
        forest: f.value.map(|v| Forest {
            label: "identification with the model".into(),
            value: v * e.attempt,
            interval: None,
            limit: t,
        }),
    })
}

/// The FPR membership is judged at: an attacker who may accuse one innocent patient in a
/// thousand (Carlini et al. 2022, "Membership inference attacks from first principles").
pub const LOW_FPR: f64 = 1e-3;
/// The largest TPR at [`LOW_FPR`] that counts as negligible: at most 1 % of member patients
/// singled out at one false accusation in a thousand.
pub const LOW_FPR_TPR_MARGIN: f64 = 0.01;

/// A two-sided interval around `value` widened from `conf` to the Bonferroni level for `tests`
/// simultaneous tests, by the ratio of the normal critical values (exact for normal-theory
/// intervals, a close approximation for bootstrap and score intervals).
pub fn bonferroni_widen(value: f64, lo: f64, hi: f64, conf: f64, tests: usize) -> (f64, f64) {
    if tests <= 1 {
        return (lo, hi);
    }
    let r = crate::stats::probit(1.0 - (1.0 - conf) / tests as f64) / crate::stats::probit(conf);
    (value - (value - lo) * r, value + (hi - value) * r)
}

/// The confidence level each of `tests` simultaneous tests is held to (Bonferroni).
fn per_test(conf: f64, tests: usize) -> f64 {
    1.0 - (1.0 - conf) / tests.max(1) as f64
}

/// The smallest `n` whose Clopper–Pearson upper bound on a rate observed at `rate` is at most
/// `margin` (None when `rate` is not clearly under the margin: more data would not help).
pub fn members_needed(rate: f64, margin: f64, conf: f64) -> Option<u64> {
    if rate.is_nan() || rate >= margin * 0.8 {
        return None;
    }
    let ok = |n: u64| clopper_pearson((rate * n as f64).round() as u64, n, conf).1 <= margin;
    let mut hi = 16u64;
    while !ok(hi) {
        hi *= 2;
        if hi > 1 << 30 {
            return None;
        }
    }
    let mut lo = hi / 2;
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if ok(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// How many records a normal-theory interval of half-width `half` on `n` needs to shrink to
/// `target` (None when no sample can: the point is at or beyond the margin).
fn n_for_half_width(n: u64, half: f64, target: f64) -> Option<u64> {
    (target > 0.0 && half > 0.0 && n > 0)
        .then(|| (n as f64 * (half / target).powi(2)).ceil() as u64)
}

fn param_str<'a>(f: &'a Finding, key: &str) -> Option<&'a str> {
    f.params.get(key).and_then(serde_json::Value::as_str)
}

/// "a of b" → (a, b).
fn of_counts(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(" of ")?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The membership findings the criterion rests on: the patient-level ones when the run has
/// them (the patient is the unit of privacy), else every one (one record per patient, or a
/// findings file from before patient-level findings).
fn membership_findings(file: &FindingsFile, metric: Metric) -> Vec<&Finding> {
    let all: Vec<&Finding> = file
        .findings
        .iter()
        .filter(|f| f.probe == "membership" && f.metric == metric)
        .collect();
    if all.iter().any(|f| param_str(f, "unit") == Some("patient")) {
        all.into_iter()
            .filter(|f| param_str(f, "unit") == Some("patient"))
            .collect()
    } else {
        all
    }
}

fn test_label(f: &Finding) -> String {
    let attack = param_str(f, "attack").unwrap_or("?");
    match param_str(f, "aggregation") {
        Some(a) => format!("{attack} ({a} per patient)"),
        None => attack.to_owned(),
    }
}

/// Membership inference, judged where it matters: the TPR at FPR ≤ [`LOW_FPR`] of every attack
/// (per patient), plus every AUC, all held to one Bonferroni-corrected level. Not met when an
/// attack catches members at a rate that exceeds its false-positive rate (the lower TPR bound
/// above the upper FPR bound); met only when enough non-members resolve FPR 10⁻³ and every
/// TPR's upper bound is within [`LOW_FPR_TPR_MARGIN`] and every AUC within 0.5 ± 0.1.
///
/// Kept whole: one criterion's tests, their correction, verdict and the sample size that
/// would resolve it, read top to bottom.
fn membership_criterion(file: &FindingsFile) -> Option<Criterion> {
    let aucs: Vec<&Finding> = membership_findings(file, metric::MIA_AUC)
        .into_iter()
        .filter(|f| f.value.is_some())
        .collect();
    if aucs.is_empty() {
        return None;
    }
    let tprs: Vec<&Finding> = membership_findings(file, metric::MIA_TPR_AT_FPR)
        .into_iter()
        .filter(|f| {
            f.params.get("fpr").and_then(serde_json::Value::as_f64) == Some(LOW_FPR)
                && f.counts.is_some()
        })
        .collect();
    let conf = aucs
        .iter()
        .find_map(|f| f.interval.as_ref().map(|i| i.level))
        .unwrap_or(0.95);
    let tests = aucs.len() + tprs.len();
    let level = per_test(conf, tests);
    let mut states = Vec::new();
    let mut caught: Vec<String> = Vec::new();
    let mut worst_tpr: Option<(f64, f64, f64, String)> = None;
    let mut need_neg = 0u64;
    let mut need_pos = 0u64;
    let mut beyond = false;
    for f in &tprs {
        let c = f.counts.expect("filtered");
        let (fp, neg) = param_str(f, "false_positives")
            .and_then(of_counts)
            .unwrap_or((0, 0));
        let (tlo, thi) = clopper_pearson(c.k, c.n, level);
        let (_, fhi) = clopper_pearson(fp, neg, level);
        let leak = neg > 0 && tlo > fhi;
        let resolvable = neg as f64 * LOW_FPR >= 1.0;
        if !resolvable {
            need_neg = need_neg.max((1.0 / LOW_FPR).ceil() as u64);
        }
        if thi > LOW_FPR_TPR_MARGIN {
            let rate = c.k as f64 / c.n.max(1) as f64;
            match members_needed(rate, LOW_FPR_TPR_MARGIN, level) {
                Some(n) => need_pos = need_pos.max(n),
                None => beyond = true,
            }
        }
        if leak {
            caught.push(format!(
                "{}: {} of {} members at {} of {} false positives",
                test_label(f),
                c.k,
                c.n,
                fp,
                neg
            ));
        }
        let v = c.k as f64 / c.n.max(1) as f64;
        if worst_tpr.as_ref().is_none_or(|w| thi > w.2) {
            worst_tpr = Some((v, tlo, thi, test_label(f)));
        }
        states.push(if leak {
            Some(false)
        } else if resolvable && thi <= LOW_FPR_TPR_MARGIN {
            Some(true)
        } else {
            None
        });
    }
    if tprs.is_empty() {
        states.push(None);
    }
    let mut worst_auc: Option<(f64, f64, f64, String)> = None;
    for f in &aucs {
        let v = f.value.expect("filtered");
        let Some(i) = &f.interval else {
            states.push(None);
            continue;
        };
        let (lo, hi) = bonferroni_widen(v, i.lo, i.hi, i.level, tests);
        let state = three_way(
            lo,
            hi,
            lo > 0.5 || hi < 0.5,
            lo >= 0.5 - AUC_MARGIN && hi <= 0.5 + AUC_MARGIN,
        );
        if state == Some(false) {
            caught.push(format!(
                "{}: AUC {} [{}, {}]",
                test_label(f),
                num3(v),
                num3(lo),
                num3(hi)
            ));
        }
        let gap = (lo - 0.5).max(0.5 - hi).max((hi - 0.5).max(0.5 - lo));
        if worst_auc
            .as_ref()
            .is_none_or(|w| gap > (w.1 - 0.5).max(0.5 - w.2).max((w.2 - 0.5).max(0.5 - w.1)))
        {
            worst_auc = Some((v, lo, hi, test_label(f)));
        }
        states.push(state);
    }
    let met = combine(&states);
    let mut measured = String::new();
    if let Some((v, lo, hi, who)) = &worst_tpr {
        measured.push_str(&format!(
            "highest TPR at FPR ≤ {}: {} [{}, {}] ({who})",
            num(LOW_FPR),
            pct(*v),
            pct(*lo),
            pct(*hi)
        ));
    } else {
        measured.push_str(&format!(
            "TPR at FPR {} not measured (add it to the membership probe's fpr)",
            num(LOW_FPR)
        ));
    }
    if let Some((v, lo, hi, who)) = &worst_auc {
        measured.push_str(&format!(
            "; AUC furthest from chance {} [{}, {}] ({who})",
            num3(*v),
            num3(*lo),
            num3(*hi)
        ));
    }
    measured.push_str(&format!(
        "; {tests} tests at {} % confidence each (Bonferroni for {} % jointly)",
        num(100.0 * level),
        num(100.0 * conf)
    ));
    if !caught.is_empty() {
        measured.push_str(&format!(
            "; detected by {}: {}",
            caught.len(),
            shortlist(&caught)
        ));
    }
    let resolve = match met {
        Some(false) => Some(format!(
            "attacks single out member patients beyond their false positives ({}): retrain with differential privacy or fewer epochs, deduplicate patients' records, and re-audit",
            shortlist(&caught)
        )),
        None => {
            let mut needs = Vec::new();
            if need_neg > 0 {
                needs.push(format!(
                    "≥ {need_neg} non-member patients (to resolve FPR {})",
                    num(LOW_FPR)
                ));
            }
            if need_pos > 0 {
                needs.push(format!("≥ {need_pos} member patients (so that the TPR's upper bound can fall under {})", pct(LOW_FPR_TPR_MARGIN)));
            }
            if beyond {
                needs.push(format!("an attack TPR under {} (more data alone cannot show this model's TPR is negligible)", pct(LOW_FPR_TPR_MARGIN)));
            }
            if needs.is_empty() {
                needs.push(
                    "more patients on both sides (the AUC intervals are wider than the margin)"
                        .into(),
                );
            }
            Some(format!("inconclusive: needs {}", needs.join(" and ")))
        }
        Some(true) => None,
    };
    Some(Criterion {
        name: format!(
            "Membership inference (per patient): no attack singles out members at a low false-positive rate ({} attack test(s))",
            tprs.len().max(aucs.len())
        ),
        measured,
        requirement: format!(
            "every TPR at FPR ≤ {} at most {} with ≥ {} non-members, and every AUC within [{}, {}], jointly at {} %",
            num(LOW_FPR),
            pct(LOW_FPR_TPR_MARGIN),
            (1.0 / LOW_FPR) as u64,
            num(0.5 - AUC_MARGIN),
            num(0.5 + AUC_MARGIN),
            num(100.0 * conf)
        ),
        met,
        resolve,
        forest: worst_tpr.map(|(v, lo, hi, _)| Forest {
            label: format!("membership TPR at FPR {}", num(LOW_FPR)),
            value: v,
            interval: Some((lo, hi)),
            limit: LOW_FPR_TPR_MARGIN,
        }),
    })
}

/// The first three items and how many more.
fn shortlist(items: &[String]) -> String {
    if items.len() <= 3 {
        items.join("; ")
    } else {
        format!("{}; and {} more", items[..3].join("; "), items.len() - 3)
    }
}

/// A signed number to three significant figures ("+0.0123", "−0.004").
pub fn signed3(x: f64) -> String {
    format!("{}{}", if x < 0.0 { "−" } else { "+" }, sig3(x.abs()))
}

/// A rate as a percentage to three significant figures ("14.8 %").
pub fn pct(x: f64) -> String {
    format!("{} %", sig3(100.0 * x))
}

/// A number to three significant figures, without trailing zeros (full precision stays in
/// findings.json).
pub fn sig3(x: f64) -> String {
    num(x)
}

/// Extraction and attribute inference: no member/non-member difference above the margin, every
/// interval widened for the number of comparisons (Bonferroni over identifier types or
/// fields).
///
/// Kept whole: the two difference criteria share their tests, correction and wording.
fn difference_criteria(file: &FindingsFile) -> Vec<Criterion> {
    let mut out = Vec::new();
    for (metric, name, key, short) in [
        (
            metric::EXTRACTION_EXCESS,
            "Extraction: no identifier type is reproduced more often for members than for non-members",
            "phi_type",
            "extraction excess",
        ),
        (
            metric::INFERENCE_RESIDUAL_RISK,
            "Attribute inference: the model infers no field of members better than of non-members (Anonymeter residual risk)",
            "field",
            "inference residual risk",
        ),
    ] {
        let fs: Vec<&Finding> = file
            .findings
            .iter()
            .filter(|f| f.metric == metric)
            .collect();
        if fs.is_empty() {
            continue;
        }
        let tests = fs.len();
        let widened: Vec<Option<(f64, f64, f64, f64)>> = fs
            .iter()
            .map(|f| {
                let i = f.interval.as_ref()?;
                let v = f.value.unwrap_or((i.lo + i.hi) / 2.0);
                let (lo, hi) = bonferroni_widen(v, i.lo, i.hi, i.level, tests);
                Some((v, lo, hi, i.level))
            })
            .collect();
        let states: Vec<Option<bool>> = widened
            .iter()
            .map(|w| match w {
                Some((_, lo, hi, _)) => three_way(*lo, *hi, *lo > 0.0, *hi <= RATE_MARGIN),
                None => None,
            })
            .collect();
        let label = |f: &Finding, w: &Option<(f64, f64, f64, f64)>| {
            let v = f.value.map_or_else(|| "not computed".into(), sig3);
            format!(
                "{} {}",
                param_str(f, key).unwrap_or("?"),
                match w {
                    Some((_, lo, hi, _)) => format!("{v} [{}, {}]", sig3(*lo), sig3(*hi)),
                    None => v,
                }
            )
        };
        let leaks: Vec<String> = fs
            .iter()
            .zip(&widened)
            .zip(&states)
            .filter(|(_, s)| **s == Some(false))
            .map(|((f, w), _)| label(f, w))
            .collect();
        let open = states.iter().filter(|s| s.is_none()).count();
        let level = widened.iter().flatten().map(|w| w.3).next().unwrap_or(0.95);
        // The widest open interval: how many more records would bring it under the margin.
        // How many times the current sample the widest open interval needs for its upper end
        // to fall under the margin (intervals shrink as 1/√n); None when the point estimate is
        // itself at or above the margin.
        let factors: Vec<Option<f64>> = widened
            .iter()
            .zip(&states)
            .filter(|(_, s)| s.is_none())
            .filter_map(|(w, _)| {
                let (v, _, hi, _) = (*w)?;
                let v = v.max(0.0);
                Some((v < RATE_MARGIN).then(|| ((hi - v) / (RATE_MARGIN - v)).powi(2).max(1.0)))
            })
            .collect();
        let resolve = if !leaks.is_empty() {
            Some(format!(
                "members' {} differ from non-members' ({}): retrain with differential privacy or remove the memorised records, and re-audit",
                short,
                leaks.join("; ")
            ))
        } else if open > 0 {
            let beyond = factors.iter().filter(|f| f.is_none()).count();
            let most = factors.iter().flatten().copied().fold(0.0, f64::max);
            let mut parts = Vec::new();
            if most > 0.0 {
                parts.push(format!(
                    "needs about {}× as many targets per arm (the widest open interval shrinks as 1/√n)",
                    num(most.ceil())
                ));
            }
            if beyond > 0 {
                parts.push(format!(
                    "{beyond} comparison(s) have a point estimate at or above the margin: more data alone will not make them met"
                ));
            }
            if parts.is_empty() {
                parts.push("an interval is missing: the comparison could not be computed".into());
            }
            Some(format!("inconclusive: {}", parts.join("; ")))
        } else {
            None
        };
        let worst = fs
            .iter()
            .zip(&widened)
            .filter_map(|(_, w)| *w)
            .max_by(|a, b| a.2.total_cmp(&b.2));
        out.push(Criterion {
            name: name.into(),
            measured: format!(
                "{} comparison(s) at {} % confidence each (Bonferroni): {} above 0{}{}",
                fs.len(),
                num(100.0 * per_test(level, tests)),
                leaks.len(),
                if leaks.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", leaks.join("; "))
                },
                if open > 0 {
                    format!(", {open} inconclusive (interval wider than the margin)")
                } else {
                    String::new()
                }
            ),
            requirement: format!(
                "every interval within [−∞, {}]: lower bound ≤ 0 and upper bound ≤ {}",
                num(RATE_MARGIN),
                num(RATE_MARGIN)
            ),
            met: combine(&states),
            resolve,
            forest: worst.map(|(v, lo, hi, _)| Forest {
                label: short.into(),
                value: v,
                interval: Some((lo, hi)),
                limit: RATE_MARGIN,
            }),
        });
    }
    out
}

/// The model's added identification risk over the release alone: member patients' mean gain
/// (with the model − release alone), the same beyond non-members, and the patients the model
/// raises above the threshold. Its own criterion, so a release that fails on its own is not
/// blamed on the model and a model that adds risk is not hidden by the release's.
fn added_risk_criterion(file: &FindingsFile, t: f64) -> Option<Criterion> {
    let get = |arm: &str| find(file, metric::LINKAGE_ADDED_RISK, &[("arm", arm)]);
    let mem = get("attack")?;
    let diff = get("difference");
    let ctl = get("control");
    let raised = |arm: &str| {
        file.findings.iter().find(|f| {
            f.metric == metric::LINKAGE_RAISED_ABOVE
                && param_str(f, "arm") == Some(arm)
                && f.params
                    .get("threshold")
                    .and_then(serde_json::Value::as_f64)
                    == Some(t)
        })
    };
    let tests = 2;
    let ci = |f: &Finding| {
        let i = f.interval.as_ref()?;
        let v = f.value?;
        let (lo, hi) = bonferroni_widen(v, i.lo, i.hi, i.level, tests);
        Some((v, lo, hi))
    };
    let m = ci(mem);
    let d = diff.and_then(ci);
    let mut states = vec![
        m.and_then(|(_, lo, hi)| three_way(lo, hi, lo > RATE_MARGIN, hi <= RATE_MARGIN)),
        d.and_then(|(_, lo, hi)| three_way(lo, hi, lo > 0.0, hi <= RATE_MARGIN)),
    ];
    let rm = raised("attack");
    let raised_text = match rm.and_then(|f| f.counts) {
        Some(c) => {
            states.push(Some(c.k == 0));
            format!(
                "; members raised above {} by the model: {} of {}{}",
                num(t),
                c.k,
                c.n,
                raised("control")
                    .and_then(|f| f.counts)
                    .map_or(String::new(), |c| format!(
                        " (non-members: {} of {})",
                        c.k, c.n
                    ))
            )
        }
        None => {
            // Unchecked is not clear: without this count the criterion cannot be met.
            states.push(None);
            format!(
                "; patients raised above {} not computed (add it to the inversion probe's thresholds)",
                num(t)
            )
        }
    };
    let fmt = |x: Option<(f64, f64, f64)>| {
        x.map_or("not computed".into(), |(v, lo, hi)| {
            format!("{} [{}, {}]", signed3(v), signed3(lo), signed3(hi))
        })
    };
    let met = combine(&states);
    let n = mem.counts.map_or(0, |c| c.k);
    let resolve = match met {
        Some(false) => Some(
            "the model's answers identify member patients beyond what the release alone allows: retrain with differential privacy, or withhold the fields the model infers best from the release".into(),
        ),
        None => {
            let open = m.filter(|(v, _, _)| *v < RATE_MARGIN).map(|(v, lo, hi)| n_for_half_width(n, (hi - lo) / 2.0, RATE_MARGIN - v));
            Some(match open.flatten() {
                Some(k) => format!("inconclusive: needs about {k} member patients (and as many non-members) in the linkage"),
                None => "inconclusive: the added risk's point estimate is at the margin; more data alone may not resolve it".into(),
            })
        }
        Some(true) => None,
    };
    Some(Criterion {
        name: "The model's added identification risk over the release alone (member patients, and beyond non-members)".into(),
        measured: format!(
            "mean added probability per member patient {}; per non-member {}; members − non-members {}{raised_text}",
            fmt(m),
            fmt(ctl.and_then(ci)),
            fmt(d)
        ),
        requirement: format!(
            "added risk ≤ {} per patient and ≤ {} beyond non-members (upper bounds, Bonferroni over 2), and no member raised above {}",
            num(RATE_MARGIN),
            num(RATE_MARGIN),
            num(t)
        ),
        met,
        resolve,
        forest: m.map(|(v, lo, hi)| Forest {
            label: "model's added identification risk".into(),
            value: v,
            interval: Some((lo, hi)),
            limit: RATE_MARGIN,
        }),
    })
}

/// Safe Harbor categories that identify a person on their own (45 CFR 164.514(b)(2)(i)): every
/// category but geographic subdivisions (2) and dates (3), which are quasi-identifiers the
/// re-identification analysis weighs.
const DIRECT: [u8; 16] = [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];

/// No direct identifier in the released data, in a column or in free text (where the Safe
/// Harbor check's detector looks). Always present: a run without the check cannot meet it, so
/// class sizes alone never make a dataset with names or SSNs "very small".
fn direct_identifier_criterion(file: &FindingsFile) -> Criterion {
    let name = "No direct identifier in the released data (Safe Harbor categories 1 and 4–18, in columns or free text)".to_owned();
    let requirement = "none present".to_owned();
    let Some(items) = file
        .reid
        .iter()
        .map(|r| &r.safe_harbor)
        .find(|items| !items.is_empty())
    else {
        return Criterion {
            name,
            measured: "not checked in this run (run `phiprobe risk` with the Safe Harbor check on the release and attach both runs)".into(),
            requirement,
            met: None,
            resolve: Some("run `phiprobe risk` with the Safe Harbor check on the release".into()),
            forest: None,
        };
    };
    let direct = |i: &&crate::evidence::SafeHarborItem| DIRECT.contains(&i.number);
    let present: Vec<String> = items
        .iter()
        .filter(direct)
        .filter(|i| i.status == "present")
        .map(|i| format!("{} {}", i.number, i.category))
        .collect();
    let unassessed: Vec<String> = items
        .iter()
        .filter(direct)
        .filter(|i| i.status != "present" && i.status != "absent")
        .map(|i| i.number.to_string())
        .collect();
    let note = if unassessed.is_empty() {
        String::new()
    } else {
        format!(
            "; categories {} cannot be checked automatically: the expert attests to them",
            unassessed.join(", ")
        )
    };
    Criterion {
        name,
        measured: if present.is_empty() {
            format!("none found{note}")
        } else {
            format!("present: {}{note}", present.join("; "))
        },
        requirement,
        met: Some(present.is_empty()),
        resolve: (!present.is_empty()).then(|| {
            format!(
                "remove or mask the direct identifiers ({}) before release",
                present.join("; ")
            )
        }),
        forest: None,
    }
}

/// No planted canary is the model's first choice among all secrets of its format: a canary at
/// exact rank 1 is reproduced verbatim, which no margin on the other criteria can excuse.
fn canary_criterion(file: &FindingsFile) -> Option<Criterion> {
    let d = file.canary.as_ref()?;
    let planted: Vec<_> = d.rows.iter().filter(|r| r.repetitions > 0).collect();
    if planted.is_empty() {
        return None;
    }
    let first: Vec<&str> = planted
        .iter()
        .filter(|r| r.exact_rank == Some((1, true)))
        .map(|r| r.id.as_str())
        .collect();
    Some(Criterion {
        name: "Memorisation: no planted canary is the model's first choice among every secret of its format".into(),
        measured: if first.is_empty() {
            format!("none of {} planted canaries ranked first", planted.len())
        } else {
            format!(
                "{} of {} planted canaries ranked first (reproduced verbatim): {}",
                first.len(),
                planted.len(),
                first.join(", ")
            )
        },
        requirement: "no canary at exact rank 1".into(),
        met: Some(first.is_empty()),
        resolve: (!first.is_empty()).then(|| {
            "the model reproduces planted secrets verbatim: train fewer epochs or with differential privacy, deduplicate repeated records".into()
        }),
        forest: None,
    })
}

/// The facts without which a report is a draft: who receives the release and how, why the
/// threshold, which external sources an intruder could link, when the determination expires,
/// and who makes it (their `determination.toml` keys).
pub fn missing_facts(file: &FindingsFile) -> Vec<&'static str> {
    let d = det(file);
    // A template's placeholder (`<name of the expert>`) is not a fact.
    let placeholder = |s: &str| {
        let s = s.trim();
        s.is_empty() || (s.starts_with('<') && s.ends_with('>'))
    };
    let blank = |v: &Option<String>| v.as_deref().is_none_or(placeholder);
    let mut out = Vec::new();
    for (missing, key) in [
        (blank(&d.release.recipients), "release.recipients"),
        (blank(&d.release.model), "release.model"),
        (
            blank(&d.threat.threshold_rationale),
            "threat.threshold_rationale",
        ),
        (
            d.threat.external_sources.iter().all(|x| placeholder(x)),
            "threat.external_sources",
        ),
        (blank(&d.release.expires), "release.expires"),
        (blank(&d.expert.name), "expert.name"),
    ] {
        if missing {
            out.push(key);
        }
    }
    out
}

/// The report's verdict: the measured conclusion when every fact of a determination is
/// supplied, else DRAFT: the measurements are given, but no conclusion is drawn from them.
pub fn verdict(file: &FindingsFile, c: &[Criterion]) -> (&'static str, String) {
    let (word, text) = conclusion(c);
    let missing = missing_facts(file);
    if missing.is_empty() {
        return (word, text);
    }
    (
        "DRAFT",
        format!(
            "This report is a DRAFT: {} not supplied (determination.toml), so it gives measurements, not a conclusion. What the measurements alone say: {word}. {text} Supply the missing facts and re-render (`phiprobe report RUN --determination determination.toml`) for a determination.",
            missing.join(", ")
        ),
    )
}

/// Not met if any is not met; met if all are met; otherwise inconclusive.
fn combine(states: &[Option<bool>]) -> Option<bool> {
    if states.contains(&Some(false)) {
        Some(false)
    } else if states.iter().all(|s| *s == Some(true)) {
        Some(true)
    } else {
        None
    }
}

/// The measured conclusion in words.
pub fn conclusion(c: &[Criterion]) -> (&'static str, String) {
    let not_met = c.iter().filter(|c| c.met == Some(false)).count();
    let unknown = c.iter().filter(|c| c.met.is_none()).count();
    if c.is_empty() {
        (
            "NOT ASSESSED",
            "This run measured nothing the conclusion can rest on.".into(),
        )
    } else if not_met > 0 {
        (
            "NOT VERY SMALL",
            format!(
                "{not_met} of {} criteria are not met: on these measurements the risk is not very small, and the release cannot be determined de-identified as it stands. Mitigate (generalise or suppress quasi-identifiers, retrain with differential privacy, restrict the release) and re-evaluate.",
                c.len()
            ),
        )
    } else if unknown > 0 {
        (
            "INCOMPLETE",
            format!(
                "{unknown} of {} criteria were not measured or are inconclusive (their intervals are too wide to show the risk is negligible); no conclusion can be drawn until they are measured with enough data.",
                c.len()
            ),
        )
    } else {
        (
            "VERY SMALL",
            format!(
                "All {} criteria are met: on these measurements, and under the conditions of this determination, the risk that the anticipated recipient could identify an individual is very small.",
                c.len()
            ),
        )
    }
}

/// The criteria as the statement cites them: number, requirement and whether it is met (their
/// measurements and drivers are in the Summary, under the same numbers).
fn criteria_table(c: &[Criterion]) -> Block {
    Block::Table {
        header: ["#", "criterion", "required", "met"]
            .map(String::from)
            .to_vec(),
        rows: c
            .iter()
            .enumerate()
            .map(|(i, c)| {
                vec![
                    format!("C{}", i + 1),
                    c.name.clone(),
                    c.requirement.clone(),
                    match c.met {
                        Some(true) => "yes".into(),
                        Some(false) => "FAIL: no".into(),
                        None => "not shown (not measured or inconclusive)".into(),
                    },
                ]
            })
            .collect(),
    }
}

fn kv(rows: Vec<(&str, String)>) -> Block {
    Block::Table {
        header: vec!["item".into(), "value".into()],
        rows: rows
            .into_iter()
            .map(|(k, v)| vec![k.to_owned(), v])
            .collect(),
    }
}

fn expiry(d: &Determination) -> String {
    match (&d.release.expires, &d.release.date) {
        (Some(e), _) => e.clone(),
        (None, Some(date)) => match crate::date::parse_iso(date) {
            Some(days) => format!(
                "{} (default: one year after the determination date; set release.expires)",
                crate::date::iso(days + 365)
            ),
            None => missing("release.expires"),
        },
        (None, None) => missing("release.expires"),
    }
}

/// The data and target-model inputs (reference models and the rest are listed in "Information
/// sources").
fn data_hashes(file: &FindingsFile) -> String {
    let inputs = &file.manifest.inputs;
    let main: Vec<String> = inputs
        .iter()
        .filter(|i| !i.path.contains("/references/") && !i.path.contains("/ref-"))
        .take(6)
        .map(|i| {
            format!(
                "{} (sha256 {}…)",
                i.path,
                crate::integrity::short(&i.sha256)
            )
        })
        .collect();
    let rest = inputs.len() - main.len();
    match (main.is_empty(), rest) {
        (true, 0) => "none recorded".into(),
        (_, 0) => main.join("; "),
        _ => format!(
            "{}{}{rest} more (reference models, plan, policy…) in \"Information sources\"",
            main.join("; "),
            if main.is_empty() { "" } else { "; " }
        ),
    }
}

/// The sections before the results.
///
/// Kept whole: the front matter, one section after another in the order an Expert Determination is
/// read; each is a few lines of text from the facts.
pub fn front(file: &FindingsFile) -> Vec<Section> {
    let d = det(file);
    let m = &file.manifest;
    let c = criteria(file);
    let (word, text) = verdict(file, &c);
    let (t, t_source) = threshold(file);
    let mut out = Vec::new();

    out.push(Section {
        title: "Determination statement".into(),
        blocks: vec![
            kv(vec![
                ("release", given(&d.release.title, "release.title")),
                ("anticipated recipient(s)", given(&d.release.recipients, "release.recipients")),
                ("release model", given(&d.release.model, "release.model")),
                ("run", format!("{} (phiprobe {}, seed {})", m.run_id, m.tool_version, m.seed)),
                ("inputs (SHA-256)", data_hashes(file)),
                ("threshold", format!("{} (from {t_source})", num(t))),
                (
                    "measured conclusion",
                    if word == "DRAFT" {
                        "none: DRAFT (facts of the determination not supplied)".into()
                    } else {
                        format!("risk {word}")
                    },
                ),
                ("expert", given(&d.expert.name, "expert.name")),
                ("qualifications", given(&d.expert.qualifications, "expert.qualifications")),
                ("determination date", given(&d.release.date, "release.date")),
                ("expires", expiry(&d)),
            ]),
            Block::Para(format!(
                "Statement. Applying generally accepted statistical and scientific principles and methods, the risk that the information described here could be used, alone or in combination with other reasonably available information, by the anticipated recipient to identify an individual who is a subject of the information was measured against the threshold {}. {} The expert's determination rests on these measurements together with the conditions in \"Conditions of the determination\"; it is made only by the expert's signature below, not by this software.",
                num(t),
                if word == "DRAFT" {
                    text.clone()
                } else {
                    format!("Measured conclusion: {text}")
                }
            )),
            criteria_table(&c),
        ],
    });

    let mut exec = vec![Block::Para(format!(
        "Purpose: {}. Release model: {}. Recipient(s): {}.",
        given(&d.release.purpose, "release.purpose"),
        given(&d.release.model, "release.model"),
        given(&d.release.recipients, "release.recipients"),
    ))];
    exec.push(Block::Para(format!(
        "Headline numbers (each with its interval and counts in the results): {}",
        c.iter()
            .map(|c| format!("{}: {}", c.name, c.measured))
            .collect::<Vec<_>>()
            .join("; ")
    )));
    exec.push(Block::Para(format!(
        "Conclusion on the measurements: {text}"
    )));
    out.push(Section {
        title: "Executive summary".into(),
        blocks: exec,
    });

    let mut limits = vec![
        "The measurements describe the data and model given to this run (hashes in the appendix); any other extract, vintage or model version needs its own evaluation.".to_owned(),
        "Free text is assessed for the 18 Safe Harbor categories by phiprobe's rule-based PHI detector, whose recall is below 1: a clean scan is evidence, not proof, of absence.".to_owned(),
        "Images, genomic data and other modalities are not assessed.".to_owned(),
        "Model-leakage probes measure specific, published attacks with the stated budgets; a stronger or differently informed adversary may do better. Lower bounds on ε are bounds, not the model's privacy loss.".to_owned(),
        "Re-identification risk assumes the adversary knows the stated quasi-identifiers and no linkage key; population estimates rest on the stated sampling fraction or population table.".to_owned(),
        "Facts marked \"not supplied\" were not given to phiprobe; the determination relies on the expert to supply or confirm them.".to_owned(),
    ];
    limits.extend(d.limitations.iter().cloned());
    out.push(Section {
        title: "Limitations and qualifications".into(),
        blocks: vec![Block::List(limits)],
    });

    out.push(Section {
        title: "Background and intended use".into(),
        blocks: vec![kv(vec![
            ("purpose", given(&d.release.purpose, "release.purpose")),
            (
                "intended use",
                given(&d.release.intended_use, "release.intended_use"),
            ),
            (
                "data flow",
                given(&d.release.data_flow, "release.data_flow"),
            ),
            (
                "anticipated recipient(s)",
                given(&d.release.recipients, "release.recipients"),
            ),
        ])],
    });

    let mut sources: Vec<(&str, String)> = m
        .inputs
        .iter()
        .map(|i| {
            (
                "input",
                format!(
                    "{} ({} bytes, sha256 {})",
                    i.path,
                    num(i.bytes as f64),
                    i.sha256
                ),
            )
        })
        .collect();
    sources.push((
        "external data considered available to the recipient",
        if d.threat.external_sources.is_empty() {
            missing("threat.external_sources")
        } else {
            d.threat.external_sources.join("; ")
        },
    ));
    sources.push((
        "extraction and sources",
        given(&d.pia.sources, "pia.sources"),
    ));
    out.push(Section {
        title: "Information sources".into(),
        blocks: vec![kv(sources)],
    });

    out.push(Section {
        title: "Definitions".into(),
        blocks: vec![Block::List(vec![
            "Direct identifier: a field that identifies a person on its own (name, SSN, MRN, …; Safe Harbor categories 1–18).".into(),
            "Quasi-identifier (QI): a field an adversary can know from other sources and combine to single a person out (dates, ZIP, sex, …).".into(),
            "Sensitive attribute: a field whose disclosure harms the person (diagnosis, lab result).".into(),
            "Equivalence class: the persons sharing one combination of QI values; f is its size in the data, F in the population.".into(),
            "Prosecutor risk: 1/f for a person known to be in the data; journalist risk: 1/F for a target known only to be in the population; marketer risk: the expected share of the data re-identified by linking everyone.".into(),
            "Population uniqueness: the share of the population unique on the QIs (Zayatz, Pitman, SNB estimators).".into(),
            "k-anonymity: every class has at least k persons; l-diversity, t-closeness, δ-disclosure: how much a class reveals about a sensitive attribute.".into(),
            "Membership inference: telling whether a record was in a model's training data; AUC 0.5 is chance. Canary exposure: log2 of the candidates divided by a planted secret's rank. Residual risk: the attack's success on members beyond its success on non-members (Anonymeter).".into(),
            "Identification probability (linkage): the chance that an adversary holding the release and the model's answers picks the right patient.".into(),
        ])],
    });

    let mut assumptions = vec![
        "A1. The adversary knows the quasi-identifiers listed for each QI set and nothing linking records directly (no linkage key).".to_owned(),
        "A2. When the data has a patient-id column, one person is one patient (all encounters together); otherwise one row.".to_owned(),
        format!("A3. Pr(attempt) = {} ({}).", num(if d.release.model.as_deref().is_none_or(|m| m == "public") { 1.0 } else { d.threat.attempt_probability.unwrap_or(1.0) }), if d.release.model.as_deref().is_none_or(|m| m == "public") { "public release or release model not supplied: an attempt is assumed".to_owned() } else { given(&d.threat.attempt_rationale, "threat.attempt_rationale") }),
        "A4. The model is queried as the probes query it (log-probabilities and generations); an API that returns less gives an adversary less.".to_owned(),
        "A5. Members and non-members were drawn from the same population (the run checks their distributions; see the results).".to_owned(),
    ];
    assumptions.extend(
        d.assumptions
            .iter()
            .enumerate()
            .map(|(i, a)| format!("A{}. {a}", i + 6)),
    );
    out.push(Section {
        title: "Assumptions".into(),
        blocks: vec![Block::List(assumptions)],
    });

    out.push(data_description(file));

    out.push(Section {
        title: "Threat model and threshold".into(),
        blocks: vec![
            Block::List(vec![
                "Attacks on the data: deliberate re-identification by the recipient, inadvertent recognition of an acquaintance, and a breach of the recipient (El Emam 2013).".into(),
                "Attacks on the model: membership inference, extraction of identifiers and canaries, and attribute inference from the model's answers, each against a non-member control.".into(),
            ]),
            kv(vec![
                ("threshold", format!("{} (from {t_source})", num(t))),
                ("rationale", given(&d.threat.threshold_rationale, "threat.threshold_rationale")),
                ("invasion-of-privacy level", given(&d.threat.invasion_of_privacy, "threat.invasion_of_privacy")),
                ("Pr(attempt)", d.threat.attempt_probability.map_or_else(|| missing("threat.attempt_probability"), num)),
                ("Pr(attempt) reasoning", given(&d.threat.attempt_rationale, "threat.attempt_rationale")),
                ("precedents", "cell size 3 ↔ 0.33, 5 ↔ 0.2, 11 ↔ 0.09 (US public releases; EMA Policy 0070), 20 ↔ 0.05 (El Emam 2013, appendix \"Cell Size Precedents\"); non-public releases 0.1 / 0.075 / 0.05 by invasion of privacy (ISO/IEC 27559)".into()),
                ("t ↔ k mapping", file.reid.first().and_then(|r| r.settings.iter().find(|s| s.name.contains("k rule") || s.name.starts_with("k"))).map_or_else(|| "el-emam: k = round(1/t) (0.09 ↔ 11); arx: k = ⌈1/t⌉ (0.09 ↔ 12)".into(), |s| format!("{} = {} ({})", s.name, s.value, s.note))),
            ]),
        ],
    });

    out.push(Section {
        title: "Methodology".into(),
        blocks: vec![
            Block::List(vec![
                format!("Software: phiprobe {}{}; the plan, seeds and input hashes are in the appendix, and the reproduction command re-creates every number.", m.tool_version, m.git_commit.as_ref().map(|c| format!(" (commit {c})")).unwrap_or_default()),
                format!("Randomness: one seed ({}); every probe derives its own stream from it; same seed and inputs give the same findings.", m.seed),
                "Re-identification: equivalence classes per person; prosecutor risk 1/f, average J/n (ARX, El Emam 2013); records at risk with 1/f > t; population uniqueness by Zayatz (1991), Pitman (Hoshino 2001) and SNB (Chen & Keller-McNulty 1998) chosen by Dankar et al. (2012); journalist and marketer risk by Benedetti & Franconi (1998); l-diversity, t-closeness, δ-disclosure.".into(),
                "Membership inference: loss (Yeom et al. 2018), zlib (Carlini et al. 2021), Min-K% (Shi et al. 2024), Min-K%++ (Zhang et al. 2024), reference (Carlini et al. 2021), LiRA (Carlini et al. 2022), RMIA (Zarifzadeh et al. 2024); AUC with stratified bootstrap-percentile intervals, TPR at fixed FPR with Clopper–Pearson intervals, ε lower bounds (Kairouz et al. 2015; Jagielski et al. 2020).".into(),
                "Canaries: exposure = log2|R| − log2 rank (Carlini et al. 2019), exact rank by token-tree search or skew-normal extrapolation.".into(),
                "Extraction: prefix prompts, identifier prompts and untargeted generation (Carlini et al. 2021; Lukas et al. 2023), members against a non-member control, Newcombe intervals of the difference.".into(),
                "Attribute inference and linkage: candidate ranking by the model against a non-member control and a prior (Fredrikson et al. 2015; Giomi et al. 2023), Wilson intervals; identification probabilities combining class sizes with the model's answers.".into(),
                "Intervals: exact Clopper–Pearson for proportions, Wilson / Newcombe for rates and differences, at the stated confidence level; maxima over several attacks are not corrected for multiplicity unless stated.".into(),
                format!("Decision rule: each criterion in the determination statement compares the stated number with the threshold; a leakage criterion is met only when its whole confidence interval lies within the margin (AUC within 0.5 ± {}, differences and residual risks ≤ {}), not met when the interval excludes no leakage, and inconclusive otherwise. The measured conclusion is \"very small\" only when every criterion is met.", num(AUC_MARGIN), num(RATE_MARGIN)),
            ]),
        ],
    });
    out
}

fn data_description(file: &FindingsFile) -> Section {
    let Some(r) = file.reid.first() else {
        return Section {
            title: "Data description and variable classification".into(),
            blocks: vec![Block::Para("This run made no re-identification analysis of the data, so it carries no field-by-field classification; run `phiprobe risk` on the dataset card (or the demo) for it. The model-leakage probes below used the card's roles.".into())],
        };
    };
    // Distinction (distinct combinations / persons) is measured per QI set: shown for the
    // first set that contains the field.
    let distinction = |col: &str| {
        let set = file
            .reid
            .iter()
            .find(|d| d.quasi_identifiers.iter().any(|q| q == col))?;
        file.findings
            .iter()
            .find(|f| {
                f.metric == metric::REID_QI_DISTINCTION
                    && f.params
                        .get("qi_set")
                        .and_then(serde_json::Value::as_str)
                        .is_none_or(|l| l == set.label)
            })
            .and_then(|f| f.value)
            .map(|v| (set.label.clone(), v))
    };
    let rows = r
        .columns
        .iter()
        .map(|c| {
            let (rep, avail, dist) = match c.role.as_str() {
                "direct" => ("high", "high", "high (identifies alone)".to_owned()),
                "quasi" => (
                    "high",
                    "high (public records)",
                    distinction(&c.column).map_or_else(
                        || "not measured".into(),
                        |(set, d)| format!("set [{set}] distinction {}", num3(d)),
                    ),
                ),
                "sensitive" => ("low to medium", "low", "low".into()),
                _ => ("n/a", "n/a", "n/a".into()),
            };
            vec![
                c.column.clone(),
                c.role.clone(),
                c.category.clone().unwrap_or_else(|| "—".into()),
                rep.into(),
                avail.into(),
                dist,
            ]
        })
        .collect();
    let sets: Vec<String> = file
        .reid
        .iter()
        .map(|d| {
            format!(
                "[{}] {} — {} {}s of {}",
                d.label,
                d.quasi_identifiers.join(", "),
                num(file
                    .findings
                    .iter()
                    .find(|f| f.metric == metric::REID_PERSONS
                        && f.params.get("qi_set").and_then(serde_json::Value::as_str)
                            == Some(d.label.as_str()))
                    .and_then(|f| f.value)
                    .unwrap_or(0.0)),
                d.unit,
                d.dataset
            )
        })
        .collect();
    Section {
        title: "Data description and variable classification".into(),
        blocks: vec![
            Block::Para("Every field with its role, its Safe Harbor category (45 CFR 164.514(b)(2)) and the HHS guidance's three principles (replicability, data-source availability, distinguishability). Ratings of replicability and availability are defaults by role for the expert to confirm; distinguishability is the measured distinction (distinct combinations per person) of the first QI set containing the field.".into()),
            Block::Table {
                header: ["field", "role", "Safe Harbor category", "replicability", "availability", "distinguishability"].map(String::from).to_vec(),
                rows,
            },
            Block::Para("Quasi-identifier sets evaluated (each justified as what an adversary could know: the raw demographics and dates, and their Safe Harbor generalisation):".into()),
            Block::List(sets),
        ],
    }
}

/// The sections after the results.
pub fn back(file: &FindingsFile) -> Vec<Section> {
    let d = det(file);
    let m = &file.manifest;
    let c = criteria(file);
    let (word, text) = verdict(file, &c);
    let mut out = Vec::new();

    let mut conditions = if d.dua_terms.is_empty() {
        vec![format!(
            "Data-use agreement terms: {}",
            missing("dua_terms")
        )]
    } else {
        d.dua_terms.iter().map(|t| format!("DUA: {t}")).collect()
    };
    conditions.extend(d.conditions.iter().cloned());
    conditions.push(format!(
        "Access mode: {}.",
        given(&d.release.model, "release.model")
    ));
    conditions.push(format!("The determination expires on {}.", expiry(&d)));
    conditions.push("No other version of this data or model may be released to the same recipient without considering linkage between the versions (HHS guidance 2.5).".into());
    out.push(Section {
        title: "Conditions of the determination".into(),
        blocks: vec![Block::List(conditions)],
    });

    let mut triggers = vec![
        "the expiry date is reached;".to_owned(),
        "a new data extract or vintage, or new fields;".to_owned(),
        "the model is retrained, fine-tuned, quantised or given a new interface;".to_owned(),
        "new external data sources become available to the recipient (a new Census vintage changes the ZIP3 table);".to_owned(),
        "a change of recipient, release model or DUA terms;".to_owned(),
        "a published attack stronger than those measured here.".to_owned(),
    ];
    triggers.extend(d.triggers.iter().cloned());
    out.push(Section {
        title: "Re-evaluation triggers".into(),
        blocks: vec![
            Block::Para(
                "Re-evaluate before the release continues when any of these occurs:".into(),
            ),
            Block::List(triggers),
        ],
    });

    out.push(Section {
        title: "Conclusion and certification".into(),
        blocks: vec![
            Block::Para(if word == "DRAFT" {
                format!("No conclusion: {text}")
            } else {
                format!("Measured conclusion: risk {word}. {text}")
            }),
            Block::Para("I certify that I have the knowledge and experience described above, that I applied the methods documented in this report, and that, under the conditions of this determination, my determination is as stated.".into()),
            kv(vec![
                ("expert", given(&d.expert.name, "expert.name")),
                ("organisation", given(&d.expert.organisation, "expert.organisation")),
                ("contact", given(&d.expert.contact, "expert.contact")),
                ("date", given(&d.release.date, "release.date")),
                (
                    "signature",
                    if word == "DRAFT" {
                        "not for signature: DRAFT (supply the missing facts first)".into()
                    } else {
                        "________________________________".into()
                    },
                ),
            ]),
        ],
    });

    out.push(Section {
        title: "Appendix A. Plan and configuration".into(),
        blocks: vec![
            Block::Para(format!(
                "The fully resolved plan of run {} (seed {}), as recorded in findings.json:",
                m.run_id, m.seed
            )),
            Block::Code(serde_json::to_string_pretty(&m.plan).unwrap_or_default()),
        ],
    });
    out.push(Section {
        title: "Appendix B. Reproduction".into(),
        blocks: vec![
            Block::Para("Check the signed folder first; then re-create the findings from the same inputs (the hashes must match) with the same phiprobe version. Re-rendering the views from findings.json rewrites the manifest and removes the signature (sign again afterwards):".into()),
            Block::Code(format!(
                "phiprobe verify <run-folder> --pubkey <signer.pub>\n{}\nphiprobe report <run-folder>",
                reproduce(m)
            )),
        ],
    });

    out.push(pia(file, &d, &c));
    out
}

fn reproduce(m: &crate::evidence::RunManifest) -> String {
    let plan = &m.plan;
    let s = |k: &str| plan.get(k).and_then(serde_json::Value::as_str);
    match m.command.as_str() {
        "risk" => format!(
            "phiprobe risk --data {} --seed {}   # with the settings of Appendix A",
            s("data").unwrap_or("<data>"),
            m.seed
        ),
        "audit" => format!(
            "phiprobe audit --model {} {}--seed {}{}",
            s("model").unwrap_or("<model>"),
            s("data")
                .map(|d| format!("--data {d} "))
                .unwrap_or_default(),
            m.seed,
            s("plan_file")
                .map(|p| format!(" --plan {p}"))
                .unwrap_or_default()
        ),
        "demo" => format!("phiprobe demo --seed {}", m.seed),
        other => format!("phiprobe {other} --seed {}", m.seed),
    }
}

fn pia(file: &FindingsFile, d: &Determination, c: &[Criterion]) -> Section {
    let likelihood = |met: Option<bool>| match met {
        Some(true) => "low (criterion met)",
        Some(false) => "high (criterion not met)",
        None => "unknown (not measured)",
    };
    let register: Vec<Vec<String>> = c
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                format!("R{}", i + 1),
                c.name.clone(),
                format!("{} — {}", likelihood(c.met), c.measured),
                "high: identification of a patient and disclosure of health information".into(),
                if c.met == Some(false) {
                    "mitigate before release; residual risk stays high until re-evaluated".into()
                } else {
                    "conditions of the determination".into()
                },
            ]
        })
        .collect();
    let signoffs: Vec<Vec<String>> = if d.pia.signoff.is_empty() {
        ["Privacy officer", "Security officer", "DRB / IRB"]
            .iter()
            .map(|r| vec![(*r).into(), missing("pia.signoff"), String::new()])
            .collect()
    } else {
        d.pia
            .signoff
            .iter()
            .map(|s| {
                vec![
                    s.role.clone(),
                    given(&s.name, "pia.signoff.name"),
                    given(&s.date, "pia.signoff.date"),
                ]
            })
            .collect()
    };
    let _ = file;
    Section {
        title: "Annex: Privacy Impact Assessment".into(),
        blocks: vec![
            Block::Para("Built from the same evidence as the determination (OMB M-03-22 §208 content; GDPR Art. 35(7); ISO/IEC 29134 outline).".into()),
            kv(vec![
                ("system and processing", given(&d.pia.system, "pia.system")),
                ("purpose", given(&d.release.purpose, "release.purpose")),
                ("data inventory", "the fields and roles of \"Data description and variable classification\"; inputs by hash in \"Information sources\"".into()),
                ("sources and collection", given(&d.pia.sources, "pia.sources")),
                ("retention", given(&d.pia.retention, "pia.retention")),
                ("necessity and proportionality", given(&d.pia.necessity, "pia.necessity")),
                ("sharing (internal / external)", given(&d.pia.sharing, "pia.sharing")),
                ("notice and consent", given(&d.pia.notice, "pia.notice")),
                ("individual rights", given(&d.pia.rights, "pia.rights")),
                ("security controls", if d.pia.security_controls.is_empty() { missing("pia.security_controls") } else { d.pia.security_controls.join("; ") }),
            ]),
            Block::Para("Privacy risk register (likelihood from the measured criteria):".into()),
            Block::Table {
                header: ["risk", "description", "likelihood (evidence)", "impact", "treatment / residual"].map(String::from).to_vec(),
                rows: register,
            },
            Block::Para("Sign-offs:".into()),
            Block::Table {
                header: ["role", "name", "date"].map(String::from).to_vec(),
                rows: signoffs,
            },
        ],
    }
}

/// The gate section, when a policy was applied while the run was made.
pub fn gate_section(file: &FindingsFile) -> Option<Section> {
    let g = file.gate.as_ref()?;
    Some(Section {
        title: "Release gate".into(),
        blocks: vec![
            Block::Para(format!(
                "Policy {} (sha256 {}…): {} — {} finding(s) fail, {} warn. By default a rule compares the conservative end of the confidence interval (upper bound for a maximum, lower bound for a minimum).",
                g.policy.path,
                crate::integrity::short(&g.policy.sha256),
                if g.passed { "PASS" } else { "FAIL" },
                g.failed,
                g.warned
            )),
            Block::Table {
                header: [
                    "rule", "finding", "compared", "required", "severity", "verdict",
                ]
                .map(String::from)
                .to_vec(),
                rows: g
                    .evaluations
                    .iter()
                    .map(|e| {
                        vec![
                            e.rule.to_string(),
                            e.finding.clone(),
                            e.number.map_or_else(
                                || "no value".into(),
                                |v| format!("{} {}", e.compared, num(v)),
                            ),
                            e.condition.clone(),
                            e.severity.clone(),
                            match e.verdict {
                                Verdict::Fail => "FAIL".into(),
                                Verdict::Warn => "WARN".into(),
                                Verdict::Pass => "pass".into(),
                                Verdict::Info => "not measured".into(),
                            },
                        ]
                    })
                    .collect(),
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{FileHash, RunManifest};

    fn file(findings: Vec<Finding>) -> FindingsFile {
        FindingsFile {
            findings,
            ..FindingsFile::new(RunManifest {
                schema_version: crate::evidence::SCHEMA_VERSION,
                tool_version: "t".into(),
                git_commit: None,
                run_id: "r".into(),
                command: "audit".into(),
                seed: 1,
                plan: serde_json::Value::Null,
                inputs: vec![FileHash::of("d.csv", b"x")],
                started_at: String::new(),
            })
        }
    }

    fn auc(lo: f64, hi: f64) -> Finding {
        Finding::new("membership", metric::MIA_AUC, Some((lo + hi) / 2.0))
            .with_param("attack", "loss")
            .with_interval(0.95, lo, hi, "bootstrap")
    }

    fn mia(c: &[Criterion]) -> Option<bool> {
        c.iter()
            .find(|c| c.name.starts_with("Membership"))
            .expect("criterion")
            .met
    }

    fn tpr(k: u64, n: u64, fp: u64, neg: u64) -> Finding {
        let (lo, hi) = clopper_pearson(k, n, 0.95);
        Finding::new(
            "membership",
            metric::MIA_TPR_AT_FPR,
            Some(k as f64 / n as f64),
        )
        .with_param("attack", "loss")
        .with_param("fpr", LOW_FPR)
        .with_param("false_positives", format!("{fp} of {neg}"))
        .with_counts(k, n)
        .with_interval(0.95, lo, hi, "clopper-pearson")
    }

    fn mia_criterion(f: Vec<Finding>) -> Criterion {
        criteria(&file(f))
            .into_iter()
            .find(|c| c.name.starts_with("Membership"))
            .expect("criterion")
    }

    #[test]
    fn membership_is_judged_at_low_fpr_with_enough_non_members() {
        // A good AUC alone is not enough: without TPR at FPR 10⁻³ it is inconclusive.
        let c = mia_criterion(vec![auc(0.45, 0.55)]);
        assert_eq!(c.met, None);
        // 5 % of member patients caught at zero false positives: not met, whatever the AUC.
        let c = mia_criterion(vec![auc(0.45, 0.55), tpr(30, 600, 0, 200)]);
        assert_eq!(c.met, Some(false), "{c:?}");
        assert!(c.resolve.as_deref().unwrap().contains("30 of 600"));
        // Nothing caught, enough patients on both sides: met.
        let c = mia_criterion(vec![auc(0.45, 0.55), tpr(0, 600, 2, 2000)]);
        assert_eq!(c.met, Some(true), "{c:?}");
        // Nothing caught, but 200 non-members cannot resolve FPR 10⁻³: say how many would.
        let c = mia_criterion(vec![auc(0.45, 0.55), tpr(0, 600, 0, 200)]);
        assert_eq!(c.met, None);
        assert!(
            c.resolve.as_deref().unwrap().contains("≥ 1000 non-member"),
            "{c:?}"
        );
        // Too few members for the TPR's upper bound to fall under 1 %.
        let c = mia_criterion(vec![auc(0.45, 0.55), tpr(0, 100, 1, 2000)]);
        assert_eq!(c.met, None);
        let needed = members_needed(0.0, LOW_FPR_TPR_MARGIN, per_test(0.95, 2)).unwrap();
        assert!(
            c.resolve
                .as_deref()
                .unwrap()
                .contains(&format!("≥ {needed} member")),
            "{c:?}"
        );
        // That n is the smallest whose zero-event upper bound is within the margin.
        let l = per_test(0.95, 2);
        assert!(clopper_pearson(0, needed, l).1 <= LOW_FPR_TPR_MARGIN);
        assert!(clopper_pearson(0, needed - 1, l).1 > LOW_FPR_TPR_MARGIN);
    }

    #[test]
    fn the_models_added_risk_is_its_own_criterion() {
        let added = |arm: &str, v: f64, lo: f64, hi: f64| {
            Finding::new("inversion", metric::LINKAGE_ADDED_RISK, Some(v))
                .with_param("arm", arm)
                .with_counts(100, 100)
                .with_interval(0.95, lo, hi, "bootstrap")
        };
        let raised = |k: u64| {
            Finding::new(
                "inversion",
                metric::LINKAGE_RAISED_ABOVE,
                Some(k as f64 / 100.0),
            )
            .with_param("arm", "attack")
            .with_param("threshold", 0.09)
            .with_counts(k, 100)
        };
        let c = |fs: Vec<Finding>| {
            criteria(&file(fs))
                .into_iter()
                .find(|c| c.name.starts_with("The model's added"))
        };
        assert!(c(vec![]).is_none());
        let quiet = vec![
            added("attack", 0.004, 0.001, 0.008),
            added("difference", 0.001, -0.003, 0.005),
            raised(0),
        ];
        assert_eq!(c(quiet.clone()).unwrap().met, Some(true));
        // One member patient pushed over the threshold by the model fails it.
        let mut one = quiet.clone();
        one[2] = raised(1);
        let got = c(one).unwrap();
        assert_eq!(got.met, Some(false));
        assert!(
            got.resolve
                .unwrap()
                .contains("beyond what the release alone")
        );
        // Without the count of patients raised above the threshold it cannot be met.
        assert_eq!(c(quiet[..2].to_vec()).unwrap().met, None);
        // Members gain more than non-members: fails.
        let mut more = quiet.clone();
        more[1] = added("difference", 0.03, 0.01, 0.05);
        assert_eq!(c(more).unwrap().met, Some(false));
        // A wide interval on few patients: inconclusive, with the number that would resolve it.
        let mut wide = quiet;
        wide[0] = added("attack", 0.01, 0.0, 0.09);
        let got = c(wide).unwrap();
        assert_eq!(got.met, None);
        assert!(got.resolve.unwrap().contains("member patients"));
    }

    #[test]
    fn more_tests_widen_the_intervals_a_met_criterion_needs() {
        // One AUC at [0.41, 0.59] is within 0.5 ± 0.1; among ten tests (Bonferroni) it is not.
        let one = bonferroni_widen(0.5, 0.41, 0.59, 0.95, 1);
        let ten = bonferroni_widen(0.5, 0.41, 0.59, 0.95, 10);
        assert_eq!(one, (0.41, 0.59));
        assert!(ten.0 < 0.4 && ten.1 > 0.6, "{ten:?}");
        // Exact for normal intervals: z(1 − 0.05/20) / z(0.975) = 2.807 / 1.960.
        let r = (ten.1 - 0.5) / 0.09;
        assert!((r - 2.807_034 / 1.959_964).abs() < 1e-4, "{r}");
        let residuals: Vec<Finding> = (0..10)
            .map(|i| {
                Finding::new("inversion", metric::INFERENCE_RESIDUAL_RISK, Some(0.0))
                    .with_param("field", format!("f{i}"))
                    .with_interval(0.95, -0.02, 0.045, "wilson")
            })
            .collect();
        let met = |fs: Vec<Finding>| {
            criteria(&file(fs))
                .into_iter()
                .find(|c| c.name.starts_with("Attribute"))
                .unwrap()
                .met
        };
        assert_eq!(met(residuals[..1].to_vec()), Some(true));
        assert_eq!(met(residuals), None);
    }

    #[test]
    fn leakage_criteria_need_the_whole_interval_within_the_margin() {
        let safe_tpr = || tpr(0, 600, 2, 2000);
        assert_eq!(
            mia(&criteria(&file(vec![auc(0.45, 0.55), safe_tpr()]))),
            Some(true)
        );
        assert_eq!(mia(&criteria(&file(vec![auc(0.52, 0.70)]))), Some(false));
        // Significantly below chance leaks too (an inverted attack).
        assert_eq!(mia(&criteria(&file(vec![auc(0.20, 0.45)]))), Some(false));
        // Wide: inconclusive, never "met".
        assert_eq!(mia(&criteria(&file(vec![auc(0.30, 0.70)]))), None);
        // One leaking attack among safe ones fails; one without an interval is inconclusive.
        let bare = Finding::new("membership", metric::MIA_AUC, Some(0.5)).with_param("attack", "x");
        assert_eq!(
            mia(&criteria(&file(vec![
                auc(0.45, 0.55),
                auc(0.6, 0.7),
                bare.clone()
            ]))),
            Some(false)
        );
        assert_eq!(
            mia(&criteria(&file(vec![auc(0.45, 0.55), safe_tpr(), bare]))),
            None
        );
        let residual = |lo: f64, hi: f64| {
            Finding::new(
                "inversion",
                metric::INFERENCE_RESIDUAL_RISK,
                Some(lo.max(0.0)),
            )
            .with_param("field", "dx")
            .with_interval(0.95, lo, hi, "wilson")
        };
        let met = |f: Finding| {
            criteria(&file(vec![f]))
                .into_iter()
                .find(|c| c.name.starts_with("Attribute"))
                .unwrap()
                .met
        };
        assert_eq!(met(residual(0.0, 0.04)), Some(true));
        assert_eq!(met(residual(0.0, 0.2)), None);
        assert_eq!(met(residual(0.02, 0.2)), Some(false));
    }

    #[test]
    fn the_conclusion_is_very_small_only_when_everything_is_met() {
        // An audit without a re-identification analysis cannot conclude.
        let c = criteria(&file(vec![auc(0.45, 0.55)]));
        assert_eq!(c[0].met, None, "{:?}", c[0]);
        assert_eq!(conclusion(&c).0, "INCOMPLETE");
        let c = criteria(&file(vec![auc(0.6, 0.7)]));
        assert_eq!(conclusion(&c).0, "NOT VERY SMALL");
        let all_met = [Criterion {
            name: "x".into(),
            measured: "0".into(),
            requirement: "≤ 1".into(),
            met: Some(true),
            ..Criterion::default()
        }];
        assert_eq!(conclusion(&all_met).0, "VERY SMALL");
        assert_eq!(conclusion(&[]).0, "NOT ASSESSED");
    }

    fn canary(rank: Option<(u64, bool)>) -> crate::evidence::CanaryRow {
        crate::evidence::CanaryRow {
            id: "ssn-r32-0".into(),
            kind: "ssn".into(),
            repetitions: 32,
            rung: 32,
            secret: "123-45-6789".into(),
            log2_space: 29.9,
            refs_at_least_as_likely: 0,
            references: 100,
            exposure_rank: 6.6,
            exposure_rank_interval: (4.8, 6.6),
            exposure_skewnorm: None,
            exact_rank: rank,
            exposure_exact: None,
            search_expansions: None,
            search_note: None,
            exposure: 6.6,
        }
    }

    #[test]
    fn a_canary_at_exact_rank_one_fails_its_own_criterion() {
        let with = |rank| {
            let mut f = file(vec![auc(0.45, 0.55)]);
            f.canary = Some(crate::evidence::CanaryDetail {
                source: "plan".into(),
                rows: vec![canary(Some((40, true))), canary(rank)],
                fits: Vec::new(),
                trend: None,
                settings: serde_json::Value::Null,
            });
            criteria(&f)
                .into_iter()
                .find(|c| c.name.starts_with("Memorisation"))
                .expect("a criterion of its own")
                .met
        };
        assert_eq!(with(Some((1, true))), Some(false));
        // A search stopped at a bound of 1 proves nothing either way.
        assert_eq!(with(Some((1, false))), Some(true));
        assert_eq!(with(None), Some(true));
        assert!(
            criteria(&file(vec![auc(0.45, 0.55)]))
                .iter()
                .all(|c| !c.name.starts_with("Memorisation")),
            "no canaries, no criterion"
        );
    }

    #[test]
    fn direct_identifiers_are_a_criterion_even_when_unchecked() {
        let c = criteria(&file(vec![auc(0.45, 0.55)]));
        let d = c
            .iter()
            .find(|c| c.name.starts_with("No direct identifier"))
            .expect("never silently absent");
        assert_eq!(
            d.met, None,
            "an audit without the Safe Harbor check cannot meet it"
        );
    }

    #[test]
    fn without_the_facts_the_report_is_a_draft() {
        let mut f = file(vec![auc(0.45, 0.55)]);
        let c = criteria(&f);
        let (word, text) = verdict(&f, &c);
        assert_eq!(word, "DRAFT");
        assert!(
            text.contains("release.recipients") && text.contains("expert.name"),
            "{text}"
        );
        let mut d = crate::evidence::Determination::default();
        d.release.recipients = Some("a research partner".into());
        d.release.model = Some("non-public".into());
        d.release.expires = Some("2027-12-01".into());
        d.threat.threshold_rationale = Some("El Emam's precedent".into());
        d.threat.external_sources = vec!["voter rolls".into()];
        d.expert.name = Some("A. Expert".into());
        f.determination = Some(d.clone());
        assert!(missing_facts(&f).is_empty());
        assert_eq!(verdict(&f, &c).0, conclusion(&c).0);
        // The example file's placeholders are not facts.
        d.expert.name = Some("<name of the expert>".into());
        d.threat.external_sources = vec!["<voter registration lists>".into()];
        f.determination = Some(d);
        assert_eq!(
            missing_facts(&f),
            ["threat.external_sources", "expert.name"]
        );
    }
}
