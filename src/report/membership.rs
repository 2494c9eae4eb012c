//! The membership-inference section: attack table, log-log ROC, score histograms and the most
//! exposed records (by salted pseudonym, never id or text).

use super::chart::{Axis, BLACK, Corner, Figure, Key, RISKY, SAFE, TickFormat, series_colour};
use super::doc::{Block, Section, num};
use crate::evidence::Metric;
use crate::evidence::metric;
use crate::evidence::{AttackDetail, Finding, FindingsFile, MembershipDetail};

/// Every attack's ROC on log-log axes, with the chance diagonal.
pub fn roc_figure(d: &MembershipDetail) -> Result<Figure, String> {
    let floor = d
        .attacks
        .iter()
        .map(|a| 1.0 / a.non_members.max(1) as f64)
        .fold(1.0f64, f64::min)
        .clamp(1e-5, 0.1)
        / 2.0;
    let mut fig = Figure::new(
        "ROC of every attack (log-log)",
        (720.0, 560.0),
        Axis::log("false-positive rate", floor, 1.0)
            .format(TickFormat::Exponent)
            .grid(),
        Axis::log("true-positive rate", floor, 1.0)
            .format(TickFormat::Exponent)
            .grid(),
    );
    fig.legend_at = Corner::LowerRight;
    fig.line(
        vec![(floor, floor), (1.0, 1.0)],
        BLACK.stroke(1.0).alpha(0.4),
    );
    for (i, a) in d.attacks.iter().enumerate() {
        let c = series_colour(i);
        // Step curve: the TPR holds until the next FPR is reached.
        let mut pts = Vec::with_capacity(2 * a.roc.len());
        let mut prev_t = floor;
        for &(f, t) in &a.roc {
            let f = f.max(floor);
            pts.push((f, prev_t.max(floor)));
            pts.push((f, t.max(floor)));
            prev_t = t;
        }
        let label = format!(
            "{} (AUC {})",
            a.attack,
            a.auc.map_or("n/a".into(), |v| format!("{v:.3}"))
        );
        fig.line(pts, c.stroke(2.0))
            .key(label, Key::Line(c.stroke(2.0)));
    }
    Ok(fig)
}

/// Member and non-member score histograms of one attack (overlaid).
pub fn histogram_figure(a: &AttackDetail) -> Result<Figure, String> {
    let h = &a.histogram;
    if h.edges.len() < 2 {
        return Err("no scores".into());
    }
    let frac = |v: &[u64]| -> Vec<f64> {
        let t = v.iter().sum::<u64>().max(1) as f64;
        v.iter().map(|&x| x as f64 / t).collect()
    };
    let (m, n) = (frac(&h.members), frac(&h.non_members));
    let ymax = m.iter().chain(&n).copied().fold(0.0, f64::max).max(1e-9) * 1.1;
    let (lo, hi) = (h.edges[0], h.edges[h.edges.len() - 1]);
    let mut fig = Figure::new(
        format!("{}: scores of members and non-members", a.attack),
        (720.0, 320.0),
        Axis::linear("score (higher = more member-like)", lo, hi),
        Axis::linear("share of class", 0.0, ymax),
    );
    for (vals, colour, label) in [(&n, SAFE, "non-members"), (&m, RISKY, "members")] {
        for (b, &v) in vals.iter().enumerate() {
            fig.rect((h.edges[b], 0.0), (h.edges[b + 1], v), colour.alpha(0.45));
        }
        fig.key(label, Key::Swatch(colour.alpha(0.45)));
    }
    Ok(fig)
}

/// An attack's finding: record-level (`aggregation` None: every record scored on its own) or
/// patient-level with that aggregation of a patient's record scores.
fn attack_finding<'a>(
    file: &'a FindingsFile,
    attack: &str,
    metric: Metric,
    fpr: Option<f64>,
    aggregation: Option<&str>,
) -> Option<&'a Finding> {
    file.findings.iter().find(|f| {
        f.metric == metric
            && f.params.get("attack").and_then(|v| v.as_str()) == Some(attack)
            && f.params.get("aggregation").and_then(|v| v.as_str()) == aggregation
            && fpr
                .is_none_or(|x| f.params.get("fpr").and_then(serde_json::Value::as_f64) == Some(x))
    })
}

fn with_interval(f: Option<&Finding>) -> String {
    match f {
        Some(f) => match (f.value, &f.interval) {
            (Some(v), Some(i)) => format!("{} [{}, {}]", num(v), num(i.lo), num(i.hi)),
            (Some(v), None) => num(v),
            _ => "n/a".into(),
        },
        None => "n/a".into(),
    }
}

/// One-paragraph summary for the report's opening section.
pub fn summary(file: &FindingsFile) -> Option<Block> {
    let d = file.membership.as_ref()?;
    let best = d
        .attacks
        .iter()
        .filter(|a| a.auc.is_some())
        .max_by(|a, b| {
            a.auc
                .partial_cmp(&b.auc)
                .unwrap_or(std::cmp::Ordering::Equal)
        })?;
    let lowest_fpr = d
        .settings
        .get("fpr")
        .and_then(|v| v.as_array())
        .and_then(|v| {
            v.iter()
                .filter_map(serde_json::Value::as_f64)
                .reduce(f64::min)
        });
    let tpr = lowest_fpr
        .and_then(|x| attack_finding(file, &best.attack, metric::MIA_TPR_AT_FPR, Some(x), None));
    Some(Block::Para(format!(
        "Membership inference on {} audit records ({} members): the strongest of {} attacks (a maximum over attacks, not corrected for multiplicity) is {} with AUC {}{}. {}",
        num(d.records as f64),
        num(d.members as f64),
        d.attacks.len(),
        best.attack,
        with_interval(attack_finding(
            file,
            &best.attack,
            metric::MIA_AUC,
            None,
            None
        )),
        match (tpr, lowest_fpr) {
            (Some(f), Some(x)) => format!(
                "; at FPR ≤ {}% it identifies {} of {} members",
                num(100.0 * x),
                f.counts.map_or(0, |c| c.k),
                f.counts.map_or(0, |c| c.n)
            ),
            _ => String::new(),
        },
        if best.auc.unwrap_or(0.5) >= 0.6 {
            "The model leaks membership: an attacker can tell which records it was trained on well above chance."
        } else {
            "No attack separates members from non-members much better than chance on this audit set."
        }
    )))
}

/// The membership section.
pub fn section(file: &FindingsFile) -> Option<Section> {
    let d = file.membership.as_ref()?;
    let mut blocks = vec![Block::Para(format!(
        "Target {}. {} audit records with known membership ({} members, {} non-members); {} reference model(s){}. Scores are oriented so that higher means \"member\"; TPR at a fixed FPR is read at the last ROC vertex whose FPR does not exceed it (never interpolated) and given as exact counts with Clopper–Pearson intervals; balanced accuracy, advantage, PPV and the ε lower bound use a threshold chosen on one half of the records and counted on the other.",
        d.target,
        num(d.records as f64),
        num(d.members as f64),
        num((d.records - d.members) as f64),
        d.references.len(),
        if d.references.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                d.references
                    .iter()
                    .map(|(n, k)| format!("{n}: {k} IN"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ))];
    blocks.extend(attack_table(file, d));
    match roc_figure(d) {
        Ok(figure) => blocks.push(Block::Figure {
            figure: Box::new(figure),
            caption: format!(
                "ROC curves on log-log axes down to the smallest resolvable FPR (1/{}); the diagonal is chance. The low-FPR region is what matters: an attacker who must be right when they accuse.{}",
                num((d.records - d.members) as f64),
                zero_fpr_catch(d)
            ),
        }),
        Err(e) => blocks.push(Block::Para(format!("(ROC figure unavailable: {e})"))),
    }
    blocks.extend(shift_blocks(d));
    blocks.extend(exposed_blocks(d));
    Some(Section {
        title: "Membership inference".into(),
        blocks,
    })
}

/// The zero-FPR catch: the most records an attack flags before its first false positive.
fn zero_fpr_catch(d: &MembershipDetail) -> String {
    let best = d
        .attacks
        .iter()
        .filter_map(|a| {
            let t = a
                .roc
                .iter()
                .filter(|p| p.0 == 0.0)
                .map(|p| p.1)
                .fold(0.0f64, f64::max);
            (t > 0.0).then(|| (a, (t * a.members as f64).round() as u64))
        })
        .max_by_key(|(_, k)| *k);
    match best {
        Some((a, k)) => format!(
            " At zero false positives {} already flags {} member records before any non-member.",
            a.attack,
            super::doc::rate(k, a.members)
        ),
        None => " No attack flags a member before its first false positive.".into(),
    }
}

/// "Annex: membership score histograms": each attack's member and non-member scores.
pub fn histograms(file: &FindingsFile) -> Option<Section> {
    let d = file.membership.as_ref()?;
    let mut blocks = Vec::new();
    for a in &d.attacks {
        if let Ok(figure) = histogram_figure(a) {
            blocks.push(Block::Figure {
                figure: Box::new(figure),
                caption: format!(
                    "{}: share of members (red) and non-members (blue) per score bin (0.5–99.5 % range).",
                    a.attack
                ),
            });
        }
    }
    Some(Section {
        title: "Annex: Membership score histograms".into(),
        blocks,
    })
}

/// The attack tables (AUC and TPR at each FPR with intervals) per record and, when patients
/// have several records, per patient; the unresolvable FPRs, each attack's definition and the
/// attacks not run.
fn attack_table(file: &FindingsFile, d: &MembershipDetail) -> Vec<Block> {
    let mut out = Vec::new();
    let fprs: Vec<f64> = d
        .settings
        .get("fpr")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let per_patient = file
        .findings
        .iter()
        .any(|f| f.probe == "membership" && f.params.contains_key("aggregation"));
    if per_patient {
        out.push(Block::Para(
            "The unit of privacy is the patient. A patient's records share their patient's signal, so the record table's AUC intervals resample patients (cluster bootstrap) and its TPR counts and ε bound, which treat records as independent, are for comparison only. The patient tables score each patient by the maximum (the attacker's best record) and by the mean of their records' scores; the determination judges on them.".into(),
        ));
    }
    for (aggregation, title) in [
        (None, "Per record"),
        (
            Some("max"),
            "Per patient (maximum of the patient's record scores)",
        ),
        (
            Some("mean"),
            "Per patient (mean of the patient's record scores)",
        ),
    ] {
        if aggregation.is_some() && !per_patient {
            continue;
        }
        if per_patient {
            out.push(Block::Para(format!("{title}:")));
        }
        out.push(attack_rows(file, d, &fprs, aggregation));
    }
    let unresolved: Vec<String> = fprs
        .iter()
        .filter(|&&x| ((d.records - d.members) as f64) * x < 1.0)
        .map(|x| format!("{}%", num(100.0 * x)))
        .collect();
    if !unresolved.is_empty() {
        out.push(Block::Para(format!(
            "With {} non-members the smallest non-zero FPR is 1/{}: the columns for FPR ≤ {} are read at FPR 0 (no false positive allowed). Resolving FPR x needs at least 1/x non-members.",
            num((d.records - d.members) as f64),
            num((d.records - d.members) as f64),
            unresolved.join(", ")
        )));
    }
    out.extend(definitions(file, d));
    out
}

/// One table of the attacks at one level: per record, or per patient with an aggregation.
fn attack_rows(
    file: &FindingsFile,
    d: &MembershipDetail,
    fprs: &[f64],
    aggregation: Option<&str>,
) -> Block {
    let mut header = vec!["attack".to_owned(), "AUC [CI]".to_owned()];
    for x in fprs {
        header.push(format!("TPR @ FPR ≤ {}%: k of n [CI], FP", num(100.0 * x)));
    }
    header.extend(["balanced acc. [CI]".into(), "ε lower bound".into()]);
    if aggregation.is_some() {
        header.remove(header.len() - 2);
    }
    let mut rows = Vec::new();
    for a in &d.attacks {
        let mut row = vec![
            a.attack.clone(),
            with_interval(attack_finding(
                file,
                &a.attack,
                metric::MIA_AUC,
                None,
                aggregation,
            )),
        ];
        for &x in fprs {
            row.push(
                attack_finding(
                    file,
                    &a.attack,
                    metric::MIA_TPR_AT_FPR,
                    Some(x),
                    aggregation,
                )
                .map_or("n/a".into(), |f| {
                    let (k, n) = f.counts.map_or((0, 0), |c| (c.k, c.n));
                    let fp = f
                        .params
                        .get("false_positives")
                        .and_then(|v| v.as_str())
                        .unwrap_or("");
                    let (lo, hi) = f.interval.as_ref().map_or((0.0, 1.0), |i| (i.lo, i.hi));
                    format!(
                        "{} [{}, {}], FP {fp}",
                        super::doc::rate(k, n),
                        super::determination::pct(lo),
                        super::determination::pct(hi)
                    )
                }),
            );
        }
        if aggregation.is_none() {
            row.push(with_interval(attack_finding(
                file,
                &a.attack,
                metric::MIA_BALANCED_ACCURACY,
                None,
                aggregation,
            )));
        }
        row.push(
            attack_finding(file, &a.attack, metric::DP_EPSILON_LB, None, aggregation)
                .and_then(|f| f.value)
                .map_or("n/a".into(), num),
        );
        rows.push(row);
    }
    Block::Table { header, rows }
}

/// Each attack's definition and the attacks not run.
fn definitions(file: &FindingsFile, d: &MembershipDetail) -> Vec<Block> {
    let mut out = Vec::new();
    let defs: Vec<String> = d
        .attacks
        .iter()
        .map(|a| {
            let mut s = format!("{}: {}", a.attack, a.description);
            if a.dropped > 0 {
                s.push_str(&format!(
                    " ({} record(s) not scorable, left out)",
                    a.dropped
                ));
            }
            s
        })
        .collect();
    out.push(Block::List(defs));
    let not_run: Vec<String> = file
        .findings
        .iter()
        .filter(|f| f.probe == "membership" && f.metric == metric::MIA_AUC && f.value.is_none())
        .filter_map(|f| {
            Some(format!(
                "{}: {}",
                f.params.get("attack")?.as_str()?,
                f.caveats.first()?
            ))
        })
        .collect();
    if !not_run.is_empty() {
        out.push(Block::List(not_run));
    }
    out
}

/// What a shift check says: shifted, too few records to judge, or no material shift.
fn shift_reading(c: &crate::evidence::ShiftCheck) -> String {
    let min = crate::evidence::SHIFT_MIN_PER_CLASS;
    if c.shifted {
        "shifted: attack AUCs may partly reflect this".into()
    } else if let Some((m, n)) = c.counts.filter(|&(m, n)| m < min || n < min) {
        format!(
            "too few records to judge ({m} members, {n} non-members with a value; needs {min} of each)"
        )
    } else {
        "no material shift".into()
    }
}

/// Distribution-shift checks: each record feature alone as a membership score.
fn shift_blocks(d: &MembershipDetail) -> Vec<Block> {
    let mut out = Vec::new();
    let shift_rows: Vec<Vec<String>> = d
        .shift
        .iter()
        .map(|c| {
            vec![
                c.feature.clone(),
                c.auc.map_or("n/a".into(), num),
                c.interval.map_or("n/a".into(), |(lo, hi)| {
                    format!("[{}, {}]", num(lo), num(hi))
                }),
                shift_reading(c),
            ]
        })
        .collect();
    out.push(Block::Para(
        "Distribution shift: each feature alone used as a membership score. An AUC away from 0.5 means members and non-members differ in that feature, and attacks can score above chance without any memorisation."
            .into(),
    ));
    out.push(Block::Table {
        header: vec![
            "feature".into(),
            "AUC alone".into(),
            "interval".into(),
            "reading".into(),
        ],
        rows: shift_rows,
    });
    out
}

/// The members the strongest attack singles out most confidently, by pseudonym.
fn exposed_blocks(d: &MembershipDetail) -> Vec<Block> {
    let mut out = Vec::new();
    if let Some(best) = d.attacks.iter().filter(|a| a.auc.is_some()).max_by(|a, b| {
        a.auc
            .partial_cmp(&b.auc)
            .unwrap_or(std::cmp::Ordering::Equal)
    }) {
        out.push(Block::Para(format!(
            "Members the strongest attack ({}) singles out most confidently, by the salted pseudonym of the record (whoever holds the data can map it back; nobody else can); \"non-members at or above\" is how many false accusations an attacker makes to reach the record.",
            best.attack
        )));
        out.push(Block::Table {
            header: vec![
                "record (pseudonym)".into(),
                "score".into(),
                "non-members at or above".into(),
            ],
            rows: best
                .vulnerable
                .iter()
                .map(|v| {
                    vec![
                        v.record_id.clone(),
                        num(v.score),
                        format!("{} of {}", v.non_members_at_or_above, best.non_members),
                    ]
                })
                .collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ShiftCheck;

    fn check(auc: f64, interval: (f64, f64), counts: Option<(u64, u64)>, shifted: bool) -> String {
        shift_reading(&ShiftCheck {
            feature: "death_date".into(),
            auc: Some(auc),
            interval: Some(interval),
            level: 0.95,
            resamples: 200,
            shifted,
            counts,
        })
    }

    #[test]
    fn a_shift_check_on_few_records_says_so_rather_than_no_shift() {
        // The case: AUC 0.844 [0.611, 1] on a handful of records.
        let r = check(0.844, (0.611, 1.0), Some((9, 4)), false);
        assert!(
            r.starts_with("too few records to judge (9 members, 4 non-members"),
            "{r}"
        );
        assert_eq!(
            check(0.51, (0.45, 0.57), Some((40, 40)), false),
            "no material shift"
        );
        assert!(check(0.7, (0.65, 0.75), Some((40, 40)), true).starts_with("shifted"));
        // Findings written before the counts were recorded keep their old reading.
        assert_eq!(check(0.51, (0.45, 0.57), None, false), "no material shift");
    }
}
