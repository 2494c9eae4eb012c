//! DP audit of a DP-SGD target that phiprobe trained: the accountant's ε beside empirical ε
//! lower bounds from the canaries planted for the audit, and a safety net between the two.
//!
//! Papers: Jagielski, Ullman & Oprea 2020 ("Auditing Differentially Private Machine Learning:
//! How Private is Private SGD?", arXiv 2006.07709) — Clopper–Pearson bounds from trials; Nasr,
//! Song, Thakurta, Papernot & Carlini 2021 ("Adversary Instantiation", arXiv 2101.04535) and
//! Nasr et al. 2023 ("Tight Auditing of Differentially Private Machine Learning", arXiv
//! 2302.07956) — gradient canaries and the GDP estimate; Steinke, Nasr & Jagielski 2023
//! ("Privacy Auditing with One (1) Training Run", arXiv 2305.08846) — the one-run bound.
//! Formulas and oracles: reference/dp.md §3 and (a) 8–10 (tested in `stats`).
//!
//! Instruments (planted by `phiprobe train --dp-audit` or `phiprobe sweep`):
//! - **gradient canaries** (white-box: the adversary plants gradients and sees every noisy
//!   update): each is an independent run of the accountant's subsampled Gaussian mechanism, so
//!   the one-run bound *and* the many-trials Clopper–Pearson bound apply, and the GDP estimate;
//! - **text canaries** (black-box: the adversary sees the final model's likelihood of each
//!   canary record): all share one training run, so only the one-run bound applies.
//!
//! Safety net: a *bound* above the accountant's ε (beyond its confidence), or white-box
//! observations whose noise or sampling rate differ from the claimed mechanism, means a bug in
//! the training, the accounting or the audit: it is recorded and the run fails.

use crate::evidence::metric;
use crate::error::{Error, Result};
use crate::evidence::{
    DpDetail, DpSetting, EpsilonKind, EpsilonLb, Finding, MechanismCheck, Verdict,
};
use crate::model::LanguageModel;
use crate::stats::accountant;
use crate::stats::{epsilon, gdp, one_run};
use crate::train::canary::TextCanaries;
use crate::train::run::{AuditRecord, TrainingRecord};
use crate::train::trainer::DpConfig;
use crate::train::whitebox::GradientCanaries;
use crate::train::whitebox;
use serde::{Deserialize, Serialize};

/// Settings of the DP audit (`[[probe]] kind = "dp_audit"`).
///
/// Needs a target trained by `phiprobe train --dp-noise … --dp-audit` or by `phiprobe sweep`
/// (audit canaries in training.json); other targets get the finding "not measured".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Confidence of every lower bound (significance = 1 − confidence).
    pub confidence: f64,
    /// |z| above which a white-box mechanism check fails (5: a two-sided false alarm about once
    /// in 1.7 million audits per test).
    pub check_limit: f64,
    /// Significance of the safety net: every lower bound is recomputed at this level, split
    /// (Bonferroni) over the bounds, before it is compared with the accountant's ε — so a run
    /// fails by chance at most this often, not at each reported bound's 1 − confidence.
    pub net_significance: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            confidence: 0.95,
            check_limit: 5.0,
            net_significance: 1e-3,
        }
    }
}

impl Settings {
    /// Checks the ranges.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(format!(
                "confidence must be in (0.5, 1) (got {})",
                self.confidence
            ));
        }
        if !(self.check_limit.is_finite() && self.check_limit > 0.0) {
            return Err(format!(
                "check_limit must be > 0 (got {})",
                self.check_limit
            ));
        }
        if !(self.net_significance > 0.0 && self.net_significance < 0.5) {
            return Err(format!(
                "net_significance must be in (0, 0.5) (got {})",
                self.net_significance
            ));
        }
        Ok(())
    }
}

/// What the audit observed of the target (black-box scores of the text canaries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// Log-likelihood of each text canary record under the target, in canary order.
    pub text_scores: Vec<f64>,
}

/// Scores every text canary record (included or not) under the target: its total
/// log-likelihood. All records share one context, so the score ranks the secrets.
pub fn observe(
    model: &dyn LanguageModel,
    text: &TextCanaries,
    batch_tokens: usize,
) -> Result<Observations> {
    let texts: Vec<&str> = text.canaries.iter().map(|c| c.sentence.as_str()).collect();
    let scored = crate::model::score_texts(model, &texts, batch_tokens, |_| {})?;
    Ok(Observations {
        text_scores: scored.iter().map(|s| s.total()).collect(),
    })
}

const WHITE_BOX: &str =
    "white-box: the adversary plants crafted gradients and observes every noisy update";
const BLACK_BOX: &str =
    "black-box: the adversary observes the final model's likelihood of each canary record";

/// Splits scores by the coins.
fn split(scores: &[f64], included: impl Iterator<Item = bool>) -> (Vec<f64>, Vec<f64>) {
    let mut ins = Vec::new();
    let mut outs = Vec::new();
    for (&s, inc) in scores.iter().zip(included) {
        if inc { ins.push(s) } else { outs.push(s) }
    }
    (ins, outs)
}

/// The estimators applied to one instrument.
fn estimates(
    instrument: &str,
    threat: &str,
    ins: &[f64],
    outs: &[f64],
    independent_trials: bool,
    settings: &Settings,
    delta: f64,
) -> Vec<EpsilonLb> {
    let sig = 1.0 - settings.confidence;
    let perfect_in = vec![1.0; ins.len()];
    let perfect_out = vec![0.0; outs.len()];
    let make = |method: &str, id: &str, kind: EpsilonKind, value: f64, ceiling: f64| EpsilonLb {
        instrument: instrument.to_owned(),
        threat_model: threat.to_owned(),
        method: method.to_owned(),
        method_id: id.to_owned(),
        kind,
        value,
        confidence: settings.confidence,
        canaries: (ins.len() + outs.len()) as u64,
        included: ins.len() as u64,
        ceiling,
        delta,
        interval: None,
    };
    let mut out = vec![make(
        "one-run audit (Steinke, Nasr & Jagielski 2023): guesses above a threshold, abstention below, Bonferroni over the ROC frontier's thresholds; m = all canaries, the 2mδ term kept",
        "one-run",
        EpsilonKind::Bound,
        one_run::epsilon_from_scores(ins, outs, sig, delta),
        one_run::epsilon_from_scores(&perfect_in, &perfect_out, sig, delta),
    )];
    if independent_trials {
        out.push(make(
            "Clopper–Pearson over independent trials (Jagielski et al. 2020; Nasr et al. 2021): one-sided bounds on TPR and FPR at α/2 each, Bonferroni over the ROC frontier's thresholds",
            "clopper-pearson",
            EpsilonKind::Bound,
            epsilon::epsilon_from_scores(ins, outs, sig, delta),
            epsilon::epsilon_from_scores(&perfect_in, &perfect_out, sig, delta),
        ));
        out.push(make(
            "GDP fit (Nasr et al. 2023): the largest μ over the frontier's Clopper–Pearson corners, converted to ε at δ; assumes a Gaussian trade-off curve — an estimate, not a bound",
            "gdp",
            EpsilonKind::Estimate,
            gdp::epsilon_estimate(ins, outs, sig, delta),
            gdp::epsilon_estimate(&perfect_in, &perfect_out, sig, delta),
        ));
        if let Some((lo, hi)) = bayesian(ins, outs, settings.confidence, delta) {
            let mut e = make(
                "Bayesian joint-beta credible interval (Zanella-Béguelin et al. 2023): Jeffreys posteriors of FPR and FNR at one threshold, chosen on half the canaries (by index) and counted on the other half; the value is the interval's lower end",
                "bayesian",
                EpsilonKind::Estimate,
                lo,
                f64::NAN,
            );
            e.interval = Some((lo, hi));
            // Counted on the odd-indexed half.
            e.canaries = (ins.len() / 2 + outs.len() / 2) as u64;
            e.included = (ins.len() / 2) as u64;
            e.ceiling = bayesian(&perfect_in, &perfect_out, settings.confidence, delta)
                .map_or(f64::NAN, |c| c.0);
            out.push(e);
        }
    }
    out
}

/// The joint-beta interval at `confidence` (each end at 1 − confidence): the threshold that
/// maximises the Clopper–Pearson bound on the even-indexed canaries, counted on the odd ones.
fn bayesian(ins: &[f64], outs: &[f64], confidence: f64, delta: f64) -> Option<(f64, f64)> {
    let half = |v: &[f64], r: usize| -> Vec<f64> { v.iter().skip(r).step_by(2).copied().collect() };
    let (ia, oa, ib, ob) = (half(ins, 0), half(outs, 0), half(ins, 1), half(outs, 1));
    if ia.is_empty() || oa.is_empty() || ib.is_empty() || ob.is_empty() {
        return None;
    }
    let counts = |ins: &[f64], outs: &[f64], t: f64| {
        let tp = ins.iter().filter(|&&s| s >= t).count() as u64;
        let fp = outs.iter().filter(|&&s| s >= t).count() as u64;
        (tp, ins.len() as u64 - tp, fp, outs.len() as u64 - fp)
    };
    let mut cands: Vec<f64> = ia
        .iter()
        .chain(&oa)
        .copied()
        .filter(|s| s.is_finite())
        .collect();
    cands.sort_by(f64::total_cmp);
    cands.dedup();
    let mut best = (f64::NEG_INFINITY, f64::INFINITY);
    for &t in &cands {
        let (tp, fn_, fp, tn) = counts(&ia, &oa, t);
        let e = epsilon::epsilon_lower_bound(tp, fn_, fp, tn, delta, confidence);
        if e > best.0 {
            best = (e, t);
        }
    }
    let (tp, fn_, fp, tn) = counts(&ib, &ob, best.1);
    Some(crate::stats::bayes::joint_beta_interval(
        tp,
        fn_,
        fp,
        tn,
        delta,
        2.0 * (1.0 - confidence),
        2000,
    ))
}

/// The DP audit's findings and detail for a target's training record (None when the target was
/// not trained with DP-SGD by phiprobe: one "not measured" finding says why).
///
/// Kept whole: the record's validity checks come before any estimate, then the findings in their
/// order; the instruments, white-box consistency and mechanism check are functions of their own.
pub fn analyze(
    rec: Option<&TrainingRecord>,
    obs: Option<&Observations>,
    settings: &Settings,
) -> (Vec<Finding>, Option<DpDetail>) {
    let not_measured = |why: &str| {
        vec![
            Finding::new("dp_audit", metric::DP_EPSILON_LB, None)
                .with_caveat(format!("not measured: {why}")),
        ]
    };
    let Some(rec) = rec else {
        return (
            not_measured(
                "the target has no training.json (only models phiprobe trains carry the DP setting and the audit canaries)",
            ),
            None,
        );
    };
    let Some(dp) = rec.config.dp else {
        return (
            not_measured("the target was trained without DP-SGD (no accountant ε to compare with)"),
            None,
        );
    };
    let valid = dp.noise.is_finite()
        && dp.noise >= 0.0
        && dp.sample_rate > 0.0
        && dp.sample_rate <= 1.0
        && dp.clip.is_finite()
        && dp.clip > 0.0
        && dp.delta > 0.0
        && dp.delta < 1.0;
    if !valid {
        return (
            not_measured(&format!(
                "training.json holds an invalid DP setting (σ {}, q {}, C {}, δ {})",
                dp.noise, dp.sample_rate, dp.clip, dp.delta
            )),
            None,
        );
    }
    let audit = rec.audit.as_ref();
    let delta = dp.delta;
    // The accountant's ε, recomputed from the setting rather than trusted from the record.
    let privacy = (dp.noise > 0.0).then(|| {
        accountant::statement(
            accountant::Setting {
                noise: dp.noise,
                sample_rate: dp.sample_rate,
                steps: rec.log.steps,
            },
            delta,
            &accountant::default_orders(),
        )
    });
    let mut violations = Vec::new();
    match (&privacy, &rec.log.privacy) {
        (Some(p), Some(r)) if (p.epsilon - r.epsilon).abs() > 1e-9 * p.epsilon.max(1.0) => {
            violations.push(format!(
                "training.json records ε = {:.6}, but the accountant gives ε = {:.6} for σ = {}, q = {}, {} steps, δ = {}",
                r.epsilon, p.epsilon, dp.noise, dp.sample_rate, rec.log.steps, delta
            ));
        }
        (Some(p), None) => violations.push(format!(
            "training.json records no ε for a run with noise (the accountant gives ε = {:.6})",
            p.epsilon
        )),
        _ => {}
    }
    let privacy = privacy.as_ref();
    let public_size = audit.map_or_else(|| rec.membership.len(), |a| a.public_size);
    let setting = DpSetting {
        sampler: rec.sampler.clone(),
        sample_rate: dp.sample_rate,
        noise: dp.noise,
        clip: dp.clip,
        steps: rec.log.steps,
        epochs: rec.config.epochs,
        expected_batch: dp.sample_rate * public_size as f64,
        public_size,
        optimiser: format!(
            "AdamW (β₁ {}, β₂ {}, weight decay {}), peak learning rate {}",
            rec.config.adamw.beta1, rec.config.adamw.beta2, rec.config.adamw.weight_decay, rec.config.lr
        ),
        delta,
        accountant: "RDP of the Poisson-subsampled Gaussian (Mironov 2017; Mironov, Talwar & Zhang 2019), integer and fractional orders, improved conversion to (ε, δ) (Balle et al. 2020); add/remove-one adjacency".into(),
        epsilon: privacy.map(|p| p.epsilon),
        epsilon_classic: privacy.map(|p| p.epsilon_classic),
        order: privacy.map(|p| p.order),
        tokenizer: audit.map_or_else(
            || "the target's training notes".to_owned(),
            |a| a.tokenizer.clone(),
        ),
    };
    let last = rec.log.epochs.last();
    let mut detail = DpDetail {
        setting,
        validation_loss: last.and_then(|e| e.val_loss),
        validation_perplexity: last.and_then(|e| e.val_loss).map(f64::exp),
        train_loss: last.map(|e| e.train_loss),
        estimates: Vec::new(),
        text_scores: None,
        gradient_scores: None,
        mechanism: None,
        violations,
        notes: Vec::new(),
    };
    if audit.is_none() {
        detail.notes.push(
            "the target carries no audit canaries (train with --dp-audit, or use `phiprobe sweep`): only the accountant's ε is reported".into(),
        );
    }
    // Scores of the instruments: (instrument, ins, outs, independent trials).
    let scored = match audit {
        Some(a) => instruments(a, rec, obs, &dp, settings, &mut detail),
        None => Vec::new(),
    };
    // The safety net: every bound recomputed at the net's own level (split over the bounds)
    // against the accountant's ε.
    if let Some(theory) = detail.setting.epsilon {
        let bounds = scored
            .iter()
            .map(|s| if s.3 { 2 } else { 1 })
            .sum::<usize>()
            .max(1);
        let sig = settings.net_significance / bounds as f64;
        for (instrument, ins, outs, independent) in &scored {
            let mut checks = vec![(
                "one-run",
                one_run::epsilon_from_scores(ins, outs, sig, delta),
            )];
            if *independent {
                checks.push((
                    "clopper-pearson",
                    epsilon::epsilon_from_scores(ins, outs, sig, delta),
                ));
            }
            for (method, value) in checks {
                if value > theory + 1e-9 {
                    detail.violations.push(format!(
                        "the {method} lower bound from the {instrument} is ε ≥ {value:.4} at {:.3}% confidence (the safety net's level over {bounds} bounds), above the accountant's ε = {theory:.4} at δ = {delta}: a bug in the training, the accounting or the audit (by chance in at most {:.1} of 1,000 runs)",
                        100.0 * (1.0 - sig),
                        1000.0 * settings.net_significance
                    ));
                }
            }
        }
    }
    (findings(&detail), Some(detail))
}

/// Scores of the audit's instruments, with their estimates added to `detail`: the white-box
/// gradient canaries (checked for consistency, and the mechanism against its claim) and the
/// black-box text canaries. Each entry: (instrument, ins, outs, independent trials).
fn instruments<'a>(
    a: &AuditRecord,
    rec: &TrainingRecord,
    obs: Option<&Observations>,
    dp: &DpConfig,
    settings: &Settings,
    detail: &mut DpDetail,
) -> Vec<(&'a str, Vec<f64>, Vec<f64>, bool)> {
    let delta = dp.delta;
    let mut scored: Vec<(&'a str, Vec<f64>, Vec<f64>, bool)> = Vec::new();
    if let Some(n) = &a.gradient_note {
        detail.notes.push(n.clone());
    }
    let white_box = observed_white_box(a, rec, detail);
    if let Some((g, w)) = white_box {
        let (ins, outs) = split(&w.scores, g.included.iter().copied());
        detail.estimates.extend(estimates(
            "gradient canaries",
            WHITE_BOX,
            &ins,
            &outs,
            true,
            settings,
            delta,
        ));
        detail.mechanism = mechanism_check(a, rec, g, w, dp, settings, &mut detail.violations);
        scored.push(("gradient canaries", ins.clone(), outs.clone(), true));
        detail.gradient_scores = Some((ins, outs));
    }
    if let Some(t) = &a.text {
        match obs {
            Some(o) if o.text_scores.len() == t.canaries.len() => {
                let (ins, outs) = split(&o.text_scores, t.canaries.iter().map(|c| c.included));
                detail.estimates.extend(estimates(
                    "text canaries",
                    BLACK_BOX,
                    &ins,
                    &outs,
                    false,
                    settings,
                    delta,
                ));
                scored.push(("text canaries", ins.clone(), outs.clone(), false));
                detail.text_scores = Some((ins, outs));
            }
            _ => detail
                .notes
                .push("the text canaries were not scored (no observations)".into()),
        }
    }
    scored
}

/// The white-box observations of the gradient canaries, when they were planted and observed
/// and agree with the record (a violation otherwise; a note when not observed).
fn observed_white_box<'r>(
    a: &'r AuditRecord,
    rec: &'r TrainingRecord,
    detail: &mut DpDetail,
) -> Option<(&'r GradientCanaries, &'r whitebox::Observations)> {
    match (&a.gradient, &rec.log.white_box) {
        (Some(g), Some(w)) => {
            let m = g.included.len();
            if g.coords.len() != m
                || w.scores.len() != m
                || w.sum.len() != m
                || w.sum_sq.len() != m
                || w.steps != rec.log.steps
                || w.scores.iter().any(|v| !v.is_finite())
            {
                detail.violations.push(format!(
                    "training.json is inconsistent: {m} gradient canaries, {} coordinates, {} scores over {} steps (the run took {}), or non-finite scores",
                    g.coords.len(),
                    w.scores.len(),
                    w.steps,
                    rec.log.steps
                ));
                None
            } else {
                Some((g, w))
            }
        }
        (Some(_), None) => {
            detail.notes.push(
                "the gradient canaries were planted but not observed (no white-box log)".into(),
            );
            None
        }
        _ => None,
    }
}

/// The mechanism check: the observed noise and the included canaries' sum against the claimed
/// σ and q, and the data sampler's realised batch sizes against Binomial(n, q) (n: the records
/// trained on, included text canaries counted). A mismatch is a violation.
fn mechanism_check(
    a: &AuditRecord,
    rec: &TrainingRecord,
    g: &GradientCanaries,
    w: &whitebox::Observations,
    dp: &DpConfig,
    settings: &Settings,
    violations: &mut Vec<String>,
) -> Option<MechanismCheck> {
    let c = whitebox::noise_check(w, &g.included, dp.sample_rate, dp.noise)?;
    let n_real = rec.membership.len() + a.text.as_ref().map_or(0, |t| t.included().count());
    let batch_z = rec.log.batch_sizes.as_ref().map(|b| {
        let n = n_real as f64;
        let q = dp.sample_rate;
        let sd = (q * (1.0 - q) * n / rec.log.steps.max(1) as f64).sqrt();
        if sd > 0.0 { (b.mean - q * n) / sd } else { 0.0 }
    });
    let passed =
        c.passes(settings.check_limit) && batch_z.is_none_or(|z| z.abs() < settings.check_limit);
    if !passed {
        let batch = rec
            .log
            .batch_sizes
            .as_ref()
            .map_or("n/a".into(), |b| format!("{:.2}", b.mean));
        violations.push(format!(
            "the white-box observations do not match the claimed mechanism: noise std {:.4} (σ = {}, z = {:.1}), noise mean {:.4} (z = {:.1}), included canaries' mean {:.4} (q = {:.4}, z = {:.1}), mean data batch {batch} (z = {}); |z| ≥ {} means the clipping, sampling, normalisation or noise code does not do what the accountant assumes",
            c.out_std,
            dp.noise,
            c.z_std,
            c.out_mean,
            c.z_out_mean,
            c.in_mean,
            dp.sample_rate,
            c.z_in_mean,
            batch_z.map_or("n/a".into(), |z| format!("{z:.1}")),
            settings.check_limit
        ));
    }
    Some(MechanismCheck {
        out_observations: c.out_observations,
        out_std: c.out_std,
        out_mean: c.out_mean,
        in_observations: c.in_observations,
        in_mean: c.in_mean,
        z: [c.z_std, c.z_out_mean, c.z_in_mean],
        batch_z,
        passed,
        limit: settings.check_limit,
    })
}

/// The headline numbers of a DP audit.
fn findings(d: &DpDetail) -> Vec<Finding> {
    let s = &d.setting;
    let mut out = vec![
        Finding::new("dp_audit", metric::DP_EPSILON, s.epsilon)
            .with_param("accountant", "rdp")
            .with_param("delta", s.delta),
    ];
    if s.epsilon.is_none() {
        out[0].caveats.push(if s.noise == 0.0 {
            "σ = 0: clipping without noise gives no differential-privacy guarantee (ε = ∞)".into()
        } else {
            "no ε: the setting could not be accounted".to_owned()
        });
    }
    for e in &d.estimates {
        let mut f = Finding::new("dp_audit", metric::DP_EPSILON_LB, Some(e.value))
            .with_param("instrument", e.instrument.as_str())
            .with_param("method", e.method_id.as_str())
            .with_counts(e.included, e.canaries);
        if e.kind == EpsilonKind::Estimate {
            f.caveats.push(
                "an estimate under a Gaussian trade-off assumption, not a lower bound".into(),
            );
        }
        out.push(f);
    }
    out.push(Finding::new(
        "dp_audit",
        metric::UTILITY_VALIDATION_PERPLEXITY,
        d.validation_perplexity,
    ));
    let mut c = Finding::new(
        "dp_audit",
        metric::DP_CONSISTENCY_VIOLATIONS,
        Some(d.violations.len() as f64),
    );
    if !d.violations.is_empty() {
        c.verdict = Verdict::Fail;
        c.caveats.extend(d.violations.iter().cloned());
    }
    out.push(c);
    out
}

/// The error that fails a run whose DP audit found an inconsistency.
pub fn violation_error(d: &DpDetail) -> Option<Error> {
    (!d.violations.is_empty()).then(|| {
        Error::Inconsistent(format!(
            "DP audit inconsistency (the report was written): {}",
            d.violations.join("; ")
        ))
    })
}

crate::stored_as_json!(Observations);

impl crate::probe::api::Settings for Settings {
    fn validate(&self) -> std::result::Result<(), String> {
        Settings::validate(self)
    }
}

/// The DP audit: the accountant's ε beside empirical lower bounds from the target's audit
/// canaries (Jagielski et al. 2020; Nasr et al. 2021; Steinke et al. 2023).
pub struct DpAudit;

impl crate::probe::api::Probe for DpAudit {
    const KIND: &'static str = "dp_audit";
    const TITLE: &'static str = "dp_audit — is the accountant's ε consistent with what an auditor can measure? (lower bounds: Jagielski et al. 2020; Nasr et al. 2021; Steinke et al. 2023)";
    const FILE: &'static str = "dp_audit.json";
    const REANALYSE: bool = false;
    type Settings = Settings;
    type Observations = Observations;

    fn resume_key(s: &Settings, cx: &crate::probe::api::Observe<'_>) -> Result<serde_json::Value> {
        // Read now, so the analysis has it even when the observations come from the cache.
        cx.training.get()?;
        Ok(serde_json::json!({
            "settings": s,
            "training_record": crate::model::hash_file(
                &std::path::Path::new(cx.target).join("training.json")
            )
            .ok()
            .map(|h| h.sha256),
        }))
    }

    fn observe(
        _s: &Settings,
        cx: &mut crate::probe::api::Observe<'_>,
    ) -> Result<Option<Observations>> {
        let text = cx
            .training
            .get()?
            .filter(|r| r.config.dp.is_some())
            .and_then(|r| r.audit.as_ref())
            .and_then(|a| a.text.as_ref());
        let Some(t) = text else {
            return Ok(None);
        };
        let model = cx.target_model()?;
        (cx.progress)("dp-audit canaries", 0, t.canaries.len());
        let o = observe(model.as_ref(), t, cx.batch_tokens)?;
        (cx.progress)("dp-audit canaries", t.canaries.len(), t.canaries.len());
        Ok(Some(o))
    }

    fn analyze(
        s: &Settings,
        obs: Option<&Observations>,
        cx: &crate::probe::api::Analyze<'_>,
        out: &mut crate::evidence::FindingsFile,
    ) -> Result<()> {
        let (findings, detail) = analyze(cx.training, obs, s);
        out.findings.extend(findings);
        out.dp = detail;
        Ok(())
    }

    fn keep(old: &crate::evidence::FindingsFile, out: &mut crate::evidence::FindingsFile) {
        out.findings.extend(
            old.findings
                .iter()
                .filter(|f| f.probe == "dp_audit")
                .cloned(),
        );
        out.dp = old.dp.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Rng;
    use crate::stats::accountant::{self, Setting};
    use crate::train::run::{AuditPlan, AuditRecord, DataRecord};
    use crate::train::trainer::{DpConfig, EpochLog, TrainConfig, TrainLog};
    use crate::train::whitebox::{GradientCanaries, Observations as WbObs};

    /// A training record of a DP run with gradient canaries whose observations were simulated
    /// with noise `true_sigma` while the run claims `sigma` (the bare subsampled Gaussian
    /// mechanism: xₜ = bₜ + σ·zₜ, bₜ ~ Bernoulli(q) for included canaries).
    fn record(sigma: f64, true_sigma: f64, q: f64, steps: u64, m: usize) -> TrainingRecord {
        let mut cfg = TrainConfig::defaults(crate::train::llama::Preset::Micro.config(), 1);
        cfg.dp = Some(DpConfig {
            noise: sigma,
            clip: 1.0,
            sample_rate: q,
            delta: 1e-5,
            target_epsilon: None,
            expected_size: Some(100),
        });
        let gradient = GradientCanaries::plan("e", 4000, 1, &[false; 4000], m, 0.5, 11).unwrap();
        let mut obs = WbObs::new(m);
        let mut rng = Rng::new(5);
        for _ in 0..steps {
            let x: Vec<f64> = gradient
                .included
                .iter()
                .map(|&inc| {
                    let b = if inc && rng.chance(q) { 1.0 } else { 0.0 };
                    b + true_sigma * rng.normal()
                })
                .collect();
            obs.add(&x, q, sigma);
        }
        let privacy = accountant::statement(
            Setting {
                noise: sigma,
                sample_rate: q,
                steps,
            },
            1e-5,
            &accountant::default_orders(),
        );
        TrainingRecord {
            format: crate::train::run::TRAINING_FORMAT.into(),
            tool_version: "test".into(),
            role: "target".into(),
            name: "target".into(),
            data: DataRecord {
                card: "card.toml".into(),
                column: "note".into(),
                files: Vec::new(),
                records: 100,
            },
            split: "test".into(),
            membership: Vec::new(),
            validation_records: 0,
            truncated_records: 0,
            seed: 1,
            config: cfg,
            parameters: 0,
            canaries: None,
            log: TrainLog {
                steps,
                epochs: vec![EpochLog {
                    epoch: 1,
                    step: steps,
                    train_loss: 3.0,
                    val_loss: Some(4.0),
                }],
                tokens: 0,
                seconds: 1.0,
                batch_sizes: None,
                privacy: Some(privacy),
                resumed_from: None,
                white_box: Some(obs),
            },
            tokens_per_second: 0.0,
            sampler: "poisson".into(),
            noise_secrecy: None,
            audit: Some(AuditRecord {
                plan: AuditPlan::default(),
                tokenizer: "pool".into(),
                text: None,
                gradient: Some(gradient),
                gradient_note: None,
                public_size: 100,
            }),
        }
    }

    #[test]
    fn the_claimed_mechanism_passes_and_its_bounds_stay_below_the_accountant() {
        let rec = record(1.0, 1.0, 0.2, 10, 4000);
        let (findings, d) = analyze(Some(&rec), None, &Settings::default());
        let d = d.unwrap();
        let theory = d.setting.epsilon.unwrap();
        assert!(d.violations.is_empty(), "{:?}", d.violations);
        assert!(d.mechanism.as_ref().unwrap().passed);
        let bounds: Vec<&EpsilonLb> = d
            .estimates
            .iter()
            .filter(|e| e.kind == EpsilonKind::Bound)
            .collect();
        assert_eq!(bounds.len(), 2);
        for b in bounds {
            assert!(
                b.value > 0.3 && b.value < theory,
                "{} {} vs {theory}",
                b.method_id,
                b.value
            );
            assert!(b.value <= b.ceiling);
        }
        assert!((d.validation_perplexity.unwrap() - 4f64.exp()).abs() < 1e-12);
        let c = findings
            .iter()
            .find(|f| f.metric == metric::DP_CONSISTENCY_VIOLATIONS)
            .unwrap();
        assert_eq!((c.value, c.verdict), (Some(0.0), Verdict::Info));
        assert!(violation_error(&d).is_none());
    }

    #[test]
    fn a_mechanism_with_a_quarter_of_the_claimed_noise_fails_naming_both_numbers() {
        // Claims σ = 2 (ε ≈ 2.2 at q = 0.5, 4 steps) but adds σ = 0.5.
        let rec = record(2.0, 0.5, 0.5, 4, 4000);
        let (findings, d) = analyze(Some(&rec), None, &Settings::default());
        let d = d.unwrap();
        let theory = d.setting.epsilon.unwrap();
        let cp = d
            .estimates
            .iter()
            .find(|e| e.method_id == "clopper-pearson")
            .unwrap();
        assert!(cp.value > theory, "{} vs {theory}", cp.value);
        assert!(!d.mechanism.as_ref().unwrap().passed);
        let msg = violation_error(&d).unwrap().to_string();
        // Named at the safety net's own level: the net's bound and the accountant's ε.
        assert!(
            msg.contains("clopper-pearson lower bound from the gradient canaries is ε ≥ ")
                && msg.contains(&format!("accountant's ε = {theory:.4}")),
            "{msg}"
        );
        assert!(msg.contains("noise std"), "{msg}");
        let c = findings
            .iter()
            .find(|f| f.metric == metric::DP_CONSISTENCY_VIOLATIONS)
            .unwrap();
        assert_eq!(c.verdict, Verdict::Fail);
    }

    #[test]
    fn targets_without_dp_are_not_measured() {
        let (f, d) = analyze(None, None, &Settings::default());
        assert!(d.is_none() && f[0].value.is_none() && f[0].caveats[0].contains("training.json"));
        let mut rec = record(1.0, 1.0, 0.2, 2, 10);
        rec.config.dp = None;
        let (f, d) = analyze(Some(&rec), None, &Settings::default());
        assert!(d.is_none() && f[0].caveats[0].contains("without DP-SGD"));
    }
}
