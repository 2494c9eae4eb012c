//! The inversion section: attribute-inference accuracy per field and arm, reconstruction from
//! quasi-identifiers, identification probabilities by class size, the membership posterior
//! and memorised-record matches.

use super::chart::{Axis, BLACK, Corner, Figure, GREY, Key, PALETTE, Rgb};

use super::doc::{Block, Section, num};
use crate::evidence::{ArmRate, FindingsFile, IdSummary, InversionDetail, LinkageDetail};

/// The report's one convention for rates: "8 of 54 (14.8 %)"; "n/a" of nothing.
fn pct(k: u64, n: u64) -> String {
    if n == 0 {
        "n/a".into()
    } else {
        super::doc::rate(k, n)
    }
}

fn r3(x: f64) -> String {
    num((x * 1000.0).round() / 1000.0)
}

fn ci3(t: Option<(f64, f64, f64)>) -> String {
    match t {
        Some((p, lo, hi)) => format!("{} [{}, {}]", r3(p), r3(lo), r3(hi)),
        None => "n/a".into(),
    }
}

fn rate_cell(r: &ArmRate) -> String {
    if r.n == 0 {
        "n/a".into()
    } else {
        format!("{} ± {} ({} of {})", r3(r.rate), r3(r.error), r.k, r.n)
    }
}

/// One bar series: its label, colour and a (point, lo, hi) per group.
type Series = (String, Rgb, Vec<(f64, f64, f64)>);

/// Grouped bars with error bars: `groups` labels along x, `series` (label, values) where each
/// value is (point, lo, hi); `reference` draws a dashed horizontal line.
fn bars_figure(
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[Series],
    reference: Option<(f64, String)>,
) -> Result<Figure, String> {
    if groups.is_empty() || series.is_empty() {
        return Err("nothing to draw".into());
    }
    let n = groups.len() as f64;
    let s = series.len() as f64;
    let mut fig = Figure::new(
        title,
        (760.0, 420.0),
        Axis::categories("", groups.to_vec()),
        Axis::linear(y_desc, 0.0, 1.05),
    );
    fig.legend_at = Corner::UpperRight;
    let width = 0.8 / s;
    for (si, (label, colour, values)) in series.iter().enumerate() {
        let x0 = |g: usize| g as f64 - 0.4 + si as f64 * width;
        for (g, &(p, _, _)) in values.iter().enumerate() {
            fig.rect(
                (x0(g) + 0.01, 0.0),
                (x0(g) + width - 0.01, p.max(0.0)),
                colour.alpha(0.8),
            );
        }
        fig.key(label.clone(), Key::Swatch(colour.fill()));
        for (g, &(_, lo, hi)) in values.iter().enumerate() {
            let xc = x0(g) + width / 2.0;
            fig.line(vec![(xc, lo), (xc, hi)], BLACK.stroke(1.0));
        }
    }
    if let Some((y, label)) = reference {
        let dash = BLACK.stroke(1.0).dashed();
        fig.line(vec![(-0.5, y), (n - 0.5, y)], dash)
            .key(label, Key::Line(dash));
    }
    Ok(fig)
}

fn interval(r: &ArmRate) -> (f64, f64, f64) {
    let p = if r.n == 0 {
        0.0
    } else {
        r.k as f64 / r.n as f64
    };
    (p, r.lo, r.hi)
}

/// Top-1 accuracy per field for the three arms, with Wilson intervals.
pub fn accuracy_figure(d: &InversionDetail) -> Result<Figure, String> {
    let groups: Vec<String> = d.fields.iter().map(|f| f.field.clone()).collect();
    let series = vec![
        (
            "members (attack)".to_owned(),
            PALETTE[0],
            d.fields.iter().map(|f| interval(&f.attack)).collect(),
        ),
        (
            "non-members (control)".to_owned(),
            PALETTE[1],
            d.fields.iter().map(|f| interval(&f.control)).collect(),
        ),
        (
            "prior baseline".to_owned(),
            PALETTE[2],
            d.fields.iter().map(|f| interval(&f.prior)).collect(),
        ),
    ];
    bars_figure(
        "Attribute inference: top-1 accuracy by arm",
        "top-1 accuracy",
        &groups,
        &series,
        None,
    )
}

/// Mean identification probability by released class size: release alone, members and
/// non-members with the model.
pub fn risk_figure(l: &LinkageDetail) -> Result<Figure, String> {
    let groups: Vec<String> = l
        .strata
        .iter()
        .map(|s| format!("f = {}", s.label))
        .collect();
    let pt = |v: Option<f64>| {
        let v = v.unwrap_or(0.0);
        (v, v, v)
    };
    let series = vec![
        (
            "release only (1/f)".to_owned(),
            GREY,
            l.strata.iter().map(|s| pt(s.baseline_mean)).collect(),
        ),
        (
            "members, with the model".to_owned(),
            PALETTE[0],
            l.strata.iter().map(|s| pt(s.member_mean)).collect(),
        ),
        (
            "non-members, with the model".to_owned(),
            PALETTE[1],
            l.strata.iter().map(|s| pt(s.control_mean)).collect(),
        ),
    ];
    let t = l.thresholds.first().copied();
    bars_figure(
        "Identification probability by released class size",
        "mean identification probability",
        &groups,
        &series,
        t.map(|t| (t, format!("threshold {}", num(t)))),
    )
}

/// Share of patients whose identification probability is at least x, against x: members and
/// non-members with the model's answers, and members from the release alone; dashed lines at
/// the thresholds.
pub fn distribution_figure(l: &LinkageDetail) -> Result<Figure, String> {
    if l.member_points.is_empty() && l.control_points.is_empty() {
        return Err("no patients".into());
    }
    let survival = |mut ps: Vec<f64>| -> Vec<(f64, f64)> {
        ps.sort_by(f64::total_cmp);
        let n = ps.len() as f64;
        let mut pts = vec![(0.0, 1.0)];
        for (i, p) in ps.iter().enumerate() {
            // Share ≥ p just at p, then the step down after it.
            pts.push((*p, (n - i as f64) / n));
            pts.push((*p, (n - i as f64 - 1.0) / n));
        }
        pts.push((1.0, 0.0));
        pts
    };
    let mut fig = Figure::new(
        "Per-patient identification probability",
        (720.0, 420.0),
        Axis::linear("identification probability p", 0.0, 1.0),
        Axis::linear("share of patients with probability ≥ p", 0.0, 1.02),
    );
    fig.legend_at = Corner::UpperRight;
    for (label, colour, pts) in [
        (
            "members, with the model",
            PALETTE[0],
            survival(l.member_points.iter().map(|p| p.1).collect()),
        ),
        (
            "non-members, with the model",
            PALETTE[1],
            survival(l.control_points.iter().map(|p| p.1).collect()),
        ),
        (
            "members, release only (1/f)",
            GREY,
            survival(l.member_points.iter().map(|p| p.0).collect()),
        ),
    ] {
        fig.line(pts, colour.stroke(2.0))
            .key(label, Key::Line(colour.stroke(2.0)));
    }
    for t in &l.thresholds {
        fig.line(vec![(*t, 0.0), (*t, 1.02)], BLACK.stroke(1.0).dashed());
    }
    Ok(fig)
}

/// One summary paragraph.
pub fn summary(file: &FindingsFile) -> Option<Block> {
    let d = file.inversion.as_ref()?;
    let above: Vec<String> = d
        .fields
        .iter()
        .filter(|f| f.difference.is_some_and(|x| x.1 > 0.0))
        .map(|f| {
            format!(
                "{} ({} vs {})",
                f.field,
                pct(f.attack.k, f.attack.n),
                pct(f.control.k, f.control.n)
            )
        })
        .collect();
    let mut s = if above.is_empty() {
        "Attribute inference: on no field does the model guess members' values better than non-members' (no difference interval above 0).".to_owned()
    } else {
        format!(
            "Attribute inference: the model guesses members' values better than non-members' (difference interval above 0) for {}.",
            above.join(", ")
        )
    };
    if let Some(l) = &d.linkage
        && let (Some(&t), Some(&k)) = (l.thresholds.first(), l.member_model.above.first())
    {
        s.push_str(&format!(
            " Identification: {} of {} member patients are above {} with the model's answers ({} from the released quasi-identifiers alone).",
            k,
            l.member_model.n,
            num(t),
            l.member_baseline.above.first().copied().unwrap_or(0)
        ));
    }
    Some(Block::Para(s))
}

fn summary_row(label: &str, s: &IdSummary) -> Vec<String> {
    let mut row = vec![
        label.to_owned(),
        s.n.to_string(),
        s.mean.map_or_else(|| "n/a".into(), r3),
        s.max.map_or_else(|| "n/a".into(), r3),
    ];
    row.extend(s.above.iter().map(|&k| pct(k, s.n)));
    row
}

/// The section.
pub fn section(file: &FindingsFile) -> Option<Section> {
    let d = file.inversion.as_ref()?;
    let conf = num(100.0 * d.confidence);
    let k = d.fields.first().map_or(5, |f| f.k);
    let mut blocks = vec![Block::Para(format!(
        "Can the model be made to reveal a patient's attributes from what an attacker already knows? For each target record and field, the value is masked in the record's text and every candidate value of the field (the whole domain when small, else the truth and a seeded sample, plus the values of the target's released class) is written the way the text writes it and scored in the record's context; the model's guess is the candidate with the highest total log-probability (Fredrikson et al., CCS 2015; Lukas et al., IEEE S&P 2023). Three arms as Anonymeter defines them (Giomi et al., PETS 2023): member patients (the attack), non-member patients (the control: what generalisation alone gives) and the prior baseline (the most frequent value among other patients). Rates are Wilson centres ± half-widths at {conf}%; the residual risk (attack − control)/(1 − control) carries Anonymeter's error propagation; the difference of raw rates has a Newcombe interval. The rest of the record's text is known to this attacker — fields that restate the target (an ICD code before its diagnosis) make a field easy for both arms, which the control shows."
    ))];
    if !d.fields.is_empty() {
        blocks.extend(attribute_blocks(d, &conf, k));
    }
    if let Some(r) = &d.reconstruction {
        blocks.extend(reconstruction_blocks(r, &conf));
    }
    if let Some(l) = &d.linkage {
        blocks.extend(linkage_blocks(l));
    }
    if let Some(p) = &d.posterior {
        blocks.extend(posterior_blocks(p));
    }
    if let Some(m) = &d.memorised {
        blocks.extend(memorised_blocks(m));
    }
    if !d.notes.is_empty() {
        blocks.push(Block::List(d.notes.clone()));
    }
    Some(Section {
        title: "Model inversion and identification".into(),
        blocks,
    })
}

/// Attribute inference: the accuracy figure and the per-field table of the three arms.
fn attribute_blocks(d: &InversionDetail, conf: &str, k: u64) -> Vec<Block> {
    let mut out = Vec::new();
    match accuracy_figure(d) {
        Ok(figure) => out.push(Block::Figure {
            figure: Box::new(figure),
            caption: format!(
                "Top-1 attribute-inference accuracy per field: members, non-members and the prior baseline; bars are {conf}% Wilson intervals."
            ),
        }),
        Err(e) => out.push(Block::Para(format!("(figure unavailable: {e})"))),
    }
    out.push(Block::Table {
        header: vec![
            "field".into(),
            "candidates (domain)".into(),
            "members top-1".into(),
            "non-members top-1".into(),
            "prior top-1".into(),
            format!("members / non-members / prior top-{k}"),
            "per-token ranking, top-1 members / non-members".into(),
            "difference [CI]".into(),
            "residual risk [CI]".into(),
        ],
        rows: d
            .fields
            .iter()
            .map(|f| {
                vec![
                    format!("{} ({})", f.field, f.role),
                    format!("{} ({})", f.candidates, f.domain),
                    rate_cell(&f.attack),
                    rate_cell(&f.control),
                    rate_cell(&f.prior),
                    format!(
                        "{} / {} / {}",
                        pct(f.attack_topk.k, f.attack_topk.n),
                        pct(f.control_topk.k, f.control_topk.n),
                        pct(f.prior_topk.k, f.prior_topk.n)
                    ),
                    format!(
                        "{} / {}",
                        pct(f.attack_normalised.k, f.attack_normalised.n),
                        pct(f.control_normalised.k, f.control_normalised.n)
                    ),
                    ci3(f.difference),
                    ci3(f.residual),
                ]
            })
            .collect(),
    });
    out
}

/// Reconstruction from quasi-identifiers: what the prompts give and how often decodes hold each field.
fn reconstruction_blocks(r: &crate::evidence::ReconstructionDetail, conf: &str) -> Vec<Block> {
    let mut out = Vec::new();
    out.push(Block::Para(format!(
        "Reconstruction from quasi-identifiers (Fredrikson et al.'s inversion setting): the model is given only {} through the prompt(s) {} and decodes the most likely record text ({}); per field, how often the decode holds the target's value, members against the control (difference with a {conf}% Newcombe interval).",
        r.given.join(", "),
        r.prompts
            .iter()
            .map(|p| format!("\u{201c}{p}\u{201d}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.decoding
    )));
    out.push(Block::Table {
        header: vec![
            "field".into(),
            "members".into(),
            "non-members".into(),
            "difference [CI]".into(),
        ],
        rows: r
            .fields
            .iter()
            .map(|f| {
                vec![
                    f.field.clone(),
                    pct(f.members.0, f.members.1),
                    pct(f.control.0, f.control.1),
                    ci3(f.difference),
                ]
            })
            .collect(),
    });
    out
}

/// Linkage of model leakage to identity: identification probabilities against the release alone.
///
/// Kept whole: one subsection, its blocks in reading order.
fn linkage_blocks(l: &LinkageDetail) -> Vec<Block> {
    let mut out = Vec::new();
    let th: Vec<String> = l.thresholds.iter().map(|t| num(*t)).collect();
    out.push(Block::Para(format!(
        "Linking leakage to identity risk. Release: the {} patients of the dataset, de-identified to the quasi-identifiers {}; an attacker who knows a target's quasi-identifiers narrows it to its class of f patients (probability 1/f). The attacker then asks the model about the target and weighs every patient of the class by how well its released {} fit the model's answers (a naive-Bayes posterior: fields independent, a patient's best-fitting record counts); the target's posterior is its identification probability. A patient one of whose direct identifiers the extraction probe got out of the model counts as identified (probability 1). The mean is the expected share of targets an attacker who samples from the posterior identifies; a single patient's probability can fall below 1/f when the model's answers fit another patient of its class better. Thresholds: {} (the 0.09 and 0.05 precedents).",
        l.patients,
        l.released.join(", "),
        if l.link_fields.is_empty() {
            "(no linkable fields)".to_owned()
        } else {
            format!("values of {}", l.link_fields.join(", "))
        },
        th.join(", ")
    )));
    let mut header = vec![
        "patients".to_owned(),
        "n".into(),
        "mean".into(),
        "max".into(),
    ];
    header.extend(l.thresholds.iter().map(|t| format!("above {}", num(*t))));
    out.push(Block::Table {
        header,
        rows: vec![
            summary_row("members, release only", &l.member_baseline),
            summary_row("members, with the model", &l.member_model),
            summary_row("non-members, release only", &l.control_baseline),
            summary_row("non-members, with the model", &l.control_model),
        ],
    });
    match distribution_figure(l) {
        Ok(figure) => out.push(Block::Figure {
            figure: Box::new(figure),
            caption: format!(
                "Every target patient's identification probability: the share at or above each probability, with the model's answers (members, non-members) and from the release alone; dashed: the thresholds {}.",
                th.join(" and ")
            ),
        }),
        Err(e) => out.push(Block::Para(format!("(figure unavailable: {e})"))),
    }
    if !l.top.is_empty() {
        out.push(Block::Para(format!(
            "The member patients whose identification probability the model's answers raise most over the release alone (the pseudonym of their first record; threshold {}):",
            th.first().cloned().unwrap_or_default()
        )));
        let first = l.thresholds.first().copied().unwrap_or(0.09);
        out.push(Block::Table {
            header: vec![
                "record (pseudonym)".into(),
                "class size f".into(),
                "release only (1/f)".into(),
                "with the model".into(),
                "linkable fields answered".into(),
                "above threshold".into(),
            ],
            rows: l
                .top
                .iter()
                .map(|p| {
                    vec![
                        p.record.clone(),
                        p.class_size.to_string(),
                        r3(p.release),
                        if p.extracted {
                            "1 (identifier extracted)".into()
                        } else {
                            r3(p.model)
                        },
                        p.fields.to_string(),
                        if p.model > first {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                    ]
                })
                .collect(),
        });
    }
    if l.extracted.0 + l.extracted.1 > 0 {
        out.push(Block::Para(format!(
            "Identified through extraction: {} member and {} non-member target patients.",
            l.extracted.0, l.extracted.1
        )));
    }
    match risk_figure(l) {
        Ok(figure) => out.push(Block::Figure {
            figure: Box::new(figure),
            caption: format!(
                "Mean identification probability by released class size f: the release alone (1/f), and with the model's answers for members and non-members; dashed: the {} threshold.",
                th.first().cloned().unwrap_or_default()
            ),
        }),
        Err(e) => out.push(Block::Para(format!("(figure unavailable: {e})"))),
    }
    out.push(Block::Table {
        header: vec![
            "class size f".into(),
            "members".into(),
            "non-members".into(),
            "release only (mean 1/f)".into(),
            "members with the model (mean)".into(),
            "non-members with the model (mean)".into(),
            format!("members above {}", th.first().cloned().unwrap_or_default()),
            format!(
                "non-members above {}",
                th.first().cloned().unwrap_or_default()
            ),
        ],
        rows: l
            .strata
            .iter()
            .map(|s| {
                vec![
                    s.label.clone(),
                    s.members.to_string(),
                    s.control.to_string(),
                    s.baseline_mean.map_or_else(|| "n/a".into(), r3),
                    s.member_mean.map_or_else(|| "n/a".into(), r3),
                    s.control_mean.map_or_else(|| "n/a".into(), r3),
                    pct(s.member_above, s.members),
                    pct(s.control_above, s.control),
                ]
            })
            .collect(),
    });
    out
}

/// The membership posterior implied by the membership probe's largest ε bound.
fn posterior_blocks(p: &crate::evidence::PosteriorDetail) -> Vec<Block> {
    let mut out = Vec::new();
    out.push(Block::Para(format!(
        "Membership posterior: the membership probe's largest empirical ε lower bound is {} ({}; the largest of {} attacks' bounds, jointly a {}-confidence bound by Bonferroni). By Bayes' rule an attack with likelihood ratio e^ε turns a prior π that a person's record was trained on into a posterior of e^ε·π / (e^ε·π + 1 − π); at π = n/N = {} / {} = {} the posterior is at least {}. Assumptions: the bound is a lower confidence bound on the privacy loss of record-level membership, applied here to a patient's (δ is ignored; it adds at most δ to the attack's success); the prior treats the {} training patients as drawn uniformly from the population of {}{}.",
        r3(p.epsilon),
        p.attack,
        p.attacks,
        r3(p.confidence),
        p.trained,
        p.population,
        r3(p.prior),
        r3(p.posterior),
        p.trained,
        p.population,
        if p.population_given {
            ""
        } else {
            " (the dataset's patients: no population size was given, so this prior is far higher than it would be for a real population)"
        }
    )));
    out
}

/// Memorised-record matching of unconditioned generations.
fn memorised_blocks(m: &crate::evidence::MemorisedDetail) -> Vec<Block> {
    let mut out = Vec::new();
    out.push(Block::Para(format!(
        "Memorised-record matching: {} unconditioned generations were checked for at least {} values of one patient's {} that single the patient out among all patients: {} generations match a member patient ({} distinct of {}), {} a non-member patient ({} distinct of {}).",
        m.generations,
        m.min_match,
        m.qis.join(", "),
        m.member_generations,
        m.member_patients,
        m.patients.0,
        m.control_generations,
        m.control_patients,
        m.patients.1
    )));
    out
}
