//! Terminal views: the summaries `risk` and `audit` print on stderr, from the same findings
//! the other views render.

use crate::evidence::Metric;
use crate::evidence::metric;
use std::io::{Result, Write};

use crate::evidence::{Finding, FindingsFile, Verdict};

/// The DP audit on a terminal: the setting, the accountant's ε and every empirical ε.
pub fn dp(w: &mut impl Write, file: &FindingsFile) -> Result<()> {
    let Some(d) = &file.dp else {
        return Ok(());
    };
    let s = &d.setting;
    writeln!(
        w,
        "DP audit: σ {}, C {}, q {:.4}, {} steps, δ {}: accountant ε = {}; validation perplexity {}",
        s.noise,
        s.clip,
        s.sample_rate,
        s.steps,
        s.delta,
        s.epsilon
            .map_or("∞ (no noise)".into(), |e| format!("{e:.3}")),
        d.validation_perplexity
            .map_or("n/a".into(), |p| format!("{p:.1}"))
    )?;
    for e in &d.estimates {
        writeln!(
            w,
            "  {:<18} {:<16} {:>8.3}{}  ({} of {} included; {}, ceiling {:.2})",
            e.instrument,
            e.method_id,
            e.value,
            e.interval
                .map_or(String::new(), |(lo, hi)| format!(" [{lo:.3}, {hi:.3}]")),
            e.included,
            e.canaries,
            match e.kind {
                crate::evidence::EpsilonKind::Bound =>
                    format!("bound at {:.0}%", 100.0 * e.confidence),
                crate::evidence::EpsilonKind::Estimate => "estimate".into(),
            },
            e.ceiling
        )?;
    }
    if let Some(m) = &d.mechanism {
        writeln!(
            w,
            "  white-box mechanism check: noise std {:.4} (σ {}), included mean {:.4} (q {:.4}): {}",
            m.out_std,
            s.noise,
            m.in_mean,
            s.sample_rate,
            if m.passed {
                "consistent"
            } else {
                "INCONSISTENT"
            }
        )?;
    }
    for n in &d.notes {
        writeln!(w, "  note: {n}")?;
    }
    Ok(())
}

/// The membership table on a terminal: AUC and TPR at the plan's FPRs, per attack.
pub fn membership(w: &mut impl Write, file: &FindingsFile) -> Result<()> {
    let Some(d) = &file.membership else {
        return Ok(());
    };
    writeln!(
        w,
        "membership inference: {} audit records ({} members), {} reference model(s)",
        d.records,
        d.members,
        d.references.len()
    )?;
    let fprs: Vec<f64> = d
        .settings
        .get("fpr")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let mut header = format!("  {:<14} {:>22}", "attack", "AUC [95% CI]");
    for f in &fprs {
        header.push_str(&format!(" {:>16}", format!("TPR@{}%FPR", f * 100.0)));
    }
    header.push_str(&format!(" {:>8}", "ε lb"));
    writeln!(w, "{header}")?;
    for a in &d.attacks {
        let get = |metric: Metric, fpr: Option<f64>| {
            file.findings.iter().find(|f| {
                f.metric == metric
                    && f.params.get("attack").and_then(|v| v.as_str()) == Some(a.attack.as_str())
                    && fpr.is_none_or(|x| f.params.get("fpr").and_then(|v| v.as_f64()) == Some(x))
            })
        };
        let auc = get(metric::MIA_AUC, None);
        let mut line = format!(
            "  {:<14} {:>22}",
            a.attack,
            auc.map_or("n/a".into(), |f| match (&f.value, &f.interval) {
                (Some(v), Some(i)) => format!("{v:.3} [{:.3}, {:.3}]", i.lo, i.hi),
                (Some(v), None) => format!("{v:.3}"),
                _ => "n/a".into(),
            })
        );
        for &x in &fprs {
            line.push_str(&format!(
                " {:>16}",
                get(metric::MIA_TPR_AT_FPR, Some(x))
                    .and_then(|f| f.counts)
                    .map_or("n/a".into(), |c| format!("{} of {}", c.k, c.n))
            ));
        }
        line.push_str(&format!(
            " {:>8}",
            get(metric::DP_EPSILON_LB, None)
                .and_then(|f| f.value)
                .map_or("n/a".into(), |v| format!("{v:.2}"))
        ));
        writeln!(w, "{line}")?;
    }
    for f in file
        .findings
        .iter()
        .filter(|f| f.metric == metric::MIA_AUC && f.value.is_none())
    {
        if let (Some(a), Some(c)) = (f.params.get("attack"), f.caveats.first()) {
            writeln!(w, "  {:<14} {c}", a.as_str().unwrap_or(""))?;
        }
    }
    for c in d.shift.iter().filter(|c| c.shifted) {
        writeln!(
            w,
            "  caveat: members and non-members differ in {} (AUC {} on its own)",
            c.feature,
            c.auc.map_or("n/a".into(), |v| format!("{v:.3}"))
        )?;
    }
    Ok(())
}

/// The canary table on a terminal: exposure per kind and copies.
pub fn canary(w: &mut impl Write, file: &FindingsFile) -> Result<()> {
    let Some(d) = &file.canary else {
        if let Some(f) = file
            .findings
            .iter()
            .find(|f| f.probe == "canary" && f.value.is_none())
        {
            writeln!(w, "canary exposure: {}", f.caveats.join("; "))?;
        }
        return Ok(());
    };
    let mut kinds: Vec<&str> = d.rows.iter().map(|r| r.kind.as_str()).collect();
    kinds.dedup();
    let mut reps: Vec<usize> = d
        .rows
        .iter()
        .map(crate::evidence::CanaryRow::rung_key)
        .collect();
    reps.sort_unstable();
    reps.dedup();
    writeln!(
        w,
        "canary exposure in bits (exact rank where searched, ≤ a bound where the search stopped; else rank among references):"
    )?;
    write!(w, "  {:>8}", "planted")?;
    for k in &kinds {
        write!(w, "  {k:>9}")?;
    }
    writeln!(w)?;
    for r in reps {
        write!(w, "  {r:>8}")?;
        for k in &kinds {
            let cell = d
                .rows
                .iter()
                .filter(|x| x.kind == *k && x.rung_key() == r)
                .map(|x| match x.exact_rank {
                    Some((_, false)) => format!("≤{:.1}", x.exposure_exact.unwrap_or(f64::NAN)),
                    _ => format!("{:.1}", x.exposure),
                })
                .collect::<Vec<_>>()
                .join("/");
            write!(w, "  {cell:>9}")?;
        }
        writeln!(w)?;
    }
    if let Some(t) = d.trend {
        writeln!(w, "  Spearman ρ(copies, exposure) = {t:.3}")?;
    }
    Ok(())
}

/// The extraction summary on a terminal.
pub fn extraction(w: &mut impl Write, file: &FindingsFile) -> Result<()> {
    let Some(d) = &file.extraction else {
        return Ok(());
    };
    let pct = |(k, n): (u64, u64)| {
        if n == 0 {
            "n/a".to_owned()
        } else {
            format!("{k}/{n}")
        }
    };
    writeln!(
        w,
        "extraction: {} records ({} members); continuation reproduced exactly (members vs non-members):",
        d.records, d.members
    )?;
    for p in &d.curve {
        writeln!(
            w,
            "  k = {:>3}  {:>9} vs {:>9}",
            p.k,
            pct(p.member),
            pct(p.control)
        )?;
    }
    let flagged: Vec<String> = d
        .types
        .iter()
        .filter(|t| t.member.0 + t.control.0 > 0)
        .map(|t| {
            format!(
                "{} {} {} vs {}",
                t.mode.replace('_', " "),
                t.phi_type,
                pct(t.member),
                pct(t.control)
            )
        })
        .collect();
    if flagged.is_empty() {
        writeln!(w, "  no identifier reproduced, for members or non-members")?;
    } else {
        writeln!(w, "  identifiers reproduced: {}", flagged.join("; "))?;
    }
    Ok(())
}

/// The inversion summary on a terminal.
pub fn inversion(w: &mut impl Write, file: &FindingsFile) -> Result<()> {
    let Some(d) = &file.inversion else {
        return Ok(());
    };
    writeln!(
        w,
        "inversion: top-1 attribute inference, members vs non-members vs prior (residual risk, {:.0}% CI):",
        d.confidence * 100.0
    )?;
    for f in &d.fields {
        let r = f.residual.map_or_else(
            || "n/a".to_owned(),
            |(p, lo, hi)| format!("{p:+.3} [{lo:.3}, {hi:.3}]"),
        );
        writeln!(
            w,
            "  {:<16} {:>7} vs {:>7} vs {:>7}   residual {r}",
            f.field,
            format!("{}/{}", f.attack.k, f.attack.n),
            format!("{}/{}", f.control.k, f.control.n),
            format!("{}/{}", f.prior.k, f.prior.n),
        )?;
    }
    if let Some(l) = &d.linkage {
        let t = l.thresholds.first().copied().unwrap_or(f64::NAN);
        let above = |s: &crate::evidence::IdSummary| s.above.first().copied().unwrap_or(0);
        let mean = |s: &crate::evidence::IdSummary| s.mean.unwrap_or(f64::NAN);
        writeln!(
            w,
            "  identification of member patients (release de-identified to {}): mean {:.3} with the model's answers vs {:.3} from the release alone; above {t}: {}/{} vs {}/{}; max {:.3}",
            l.released.join(", "),
            mean(&l.member_model),
            mean(&l.member_baseline),
            above(&l.member_model),
            l.member_model.n,
            above(&l.member_baseline),
            l.member_baseline.n,
            l.member_model.max.unwrap_or(f64::NAN)
        )?;
    }
    if let Some(p) = &d.posterior {
        writeln!(
            w,
            "  membership posterior ≥ {:.3} at prior {:.3} (ε ≥ {:.3}, {})",
            p.posterior, p.prior, p.epsilon, p.attack
        )?;
    }
    Ok(())
}

/// The re-identification summary of a `risk` run on a terminal, one block per QI set.
pub fn risk(w: &mut impl Write, file: &FindingsFile) -> Result<()> {
    for d in &file.reid {
        let get = |m: Metric| super::doc::find(file, &d.label, m);
        let v = |m: Metric| {
            get(m)
                .and_then(|f| f.value)
                .map_or_else(|| "n/a".into(), super::doc::num)
        };
        writeln!(
            w,
            "{} — quasi-identifiers: {}",
            d.dataset,
            d.quasi_identifiers.join(", ")
        )?;
        writeln!(
            w,
            "  persons                 {} ({}s)",
            v(metric::REID_PERSONS),
            d.unit
        )?;
        writeln!(w, "  equivalence classes     {}", v(metric::REID_CLASSES))?;
        writeln!(w, "  k (smallest class)      {}", v(metric::REID_K))?;
        writeln!(
            w,
            "  prosecutor risk max     {}",
            v(metric::REID_PROSECUTOR_MAX)
        )?;
        writeln!(
            w,
            "  prosecutor risk avg     {}",
            v(metric::REID_PROSECUTOR_AVG)
        )?;
        if let Some(f) = get(metric::REID_PROSECUTOR_RECORDS_AT_RISK) {
            let c = f.counts.unwrap_or(crate::evidence::Counts { k: 0, n: 0 });
            writeln!(
                w,
                "  persons at risk         {} of {} ({}%) above t = {}",
                c.k,
                c.n,
                super::doc::num(100.0 * f.value.unwrap_or(0.0)),
                f.params
                    .get("threshold")
                    .map_or("?".into(), |t| t.to_string())
            )?;
        }
        writeln!(
            w,
            "  sample uniqueness       {}",
            v(metric::REID_UNIQUENESS_SAMPLE)
        )?;
        if let Some(f) = file.findings.iter().find(|f| {
            f.metric == metric::REID_UNIQUENESS_POPULATION
                && f.params.get("estimator").and_then(|e| e.as_str()) == Some("dankar")
                && f.params.get("qi_set").and_then(|v| v.as_str()) == Some(d.label.as_str())
        }) {
            writeln!(
                w,
                "  population uniqueness   {} (Dankar rule chose {})",
                f.value.map_or("n/a".into(), super::doc::num),
                f.params
                    .get("chosen")
                    .and_then(|c| c.as_str())
                    .unwrap_or("?")
            )?;
        }
        for x in &d.diversity {
            writeln!(
                w,
                "  {}: distinct l {}, entropy l {}, t {}",
                x.attribute,
                x.distinct_l,
                super::doc::num(x.entropy_l),
                super::doc::num(x.t_equal)
            )?;
        }
    }
    if let Some(f) = file
        .findings
        .iter()
        .find(|f| f.metric == metric::SAFEHARBOR_CATEGORIES_PRESENT)
    {
        writeln!(
            w,
            "  Safe Harbor categories present: {} of 18",
            f.value.unwrap_or(0.0)
        )?;
    }
    let failed: Vec<&Finding> = file
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fail)
        .collect();
    for f in &failed {
        writeln!(
            w,
            "  POLICY BREACH: {} = {} (threshold {})",
            f.key(),
            f.value.map_or("n/a".into(), super::doc::num),
            f.threshold.map_or("?".into(), super::doc::num)
        )?;
    }
    if let Some(g) = &file.gate {
        writeln!(w, "release gate ({}):", g.policy.path)?;
        write!(w, "{}", crate::report::gate::table(g))?;
    }
    Ok(())
}
