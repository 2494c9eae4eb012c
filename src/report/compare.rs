//! The comparison report of DP-training settings (`phiprobe compare`, the end of `phiprobe
//! sweep`): a table per setting, the privacy/utility frontier, empirical ε against the
//! accountant's with y = x and each method's perfect-attack ceiling, attack AUC and TPR at low
//! FPR against ε, and canary exposure against repetition — the reporting conventions of
//! reference/dp.md §4.

use super::chart::{Axis, BLACK, Figure, Key, Marker, Rgb, series_colour};
use super::doc::{Block, ReportDoc, Section, num};
use super::dp::{eps_text, estimate_table, setting_rows};
use crate::evidence::{ComparedRun, ComparisonDetail, EpsilonKind, FindingsFile};

fn r3(v: f64) -> String {
    num((v * 1000.0).round() / 1000.0)
}

/// Where settings without a guarantee (σ = 0) sit on an ε axis: twice the largest finite ε.
fn infinity_at(d: &ComparisonDetail) -> f64 {
    let max = d
        .runs
        .iter()
        .filter_map(|r| r.dp.as_ref()?.setting.epsilon)
        .fold(0.0f64, f64::max);
    if max > 0.0 { max * 2.0 } else { 10.0 }
}

/// ε of a run on the figure's axis (None: not a DP run).
fn eps_x(r: &ComparedRun, inf: f64) -> Option<(f64, bool)> {
    let d = r.dp.as_ref()?;
    Some(match d.setting.epsilon {
        Some(e) => (e, false),
        None => (inf, true),
    })
}

type Series = (String, Vec<(f64, f64, bool)>);

/// A scatter chart of `series` (x, y, drawn-at-infinity), with lines through each series'
/// finite points when `lines` (only where the points form a sequence), dashed grey horizontal
/// `refs` (values; one legend entry `refs_label`), and the diagonal up to `diagonal`.
#[allow(clippy::too_many_arguments)]
fn chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x_max: f64,
    y_range: (f64, f64),
    series: &[Series],
    refs: (&str, &[f64]),
    diagonal: Option<f64>,
    lines: bool,
) -> Result<Figure, String> {
    let mut fig = Figure::new(
        title,
        (720.0, 480.0),
        Axis::linear(x_desc, 0.0, x_max),
        Axis::linear(y_desc, y_range.0, y_range.1),
    );
    let mut legend = Vec::new();
    if let Some(end) = diagonal {
        // Up to the largest finite ε: the ∞ column is not on the ε scale.
        let top = end.min(y_range.1);
        let s = BLACK.stroke(1.0).alpha(0.6);
        fig.line(vec![(0.0, 0.0), (top, top)], s);
        legend.push(("y = x (tight)".to_owned(), Key::Line(s)));
    }
    let dash = Rgb(110, 110, 110).stroke(1.0).dashed();
    for y in refs.1 {
        fig.line(vec![(0.0, *y), (x_max, *y)], dash);
    }
    if !refs.1.is_empty() {
        legend.push((refs.0.to_owned(), Key::Line(dash)));
    }
    for (i, (label, pts)) in series.iter().enumerate() {
        let c = series_colour(i);
        let mut sorted = pts.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let finite: Vec<(f64, f64)> = sorted.iter().filter(|p| !p.2).map(|p| (p.0, p.1)).collect();
        if lines {
            // Lines join finite points only; a setting at ε = ∞ stands apart.
            fig.line(finite.clone(), c.stroke(1.0).alpha(0.5));
        }
        fig.markers(finite, Marker::Circle, 4.0, c.fill());
        fig.markers(
            sorted.iter().filter(|p| p.2).map(|p| (p.0, p.1)).collect(),
            Marker::Cross,
            5.0,
            c.fill(),
        );
        legend.push((label.clone(), Key::Marker(Marker::Circle, c.fill())));
    }
    // A legend only where it tells series apart (one unlabelled series would only hide
    // points in the corner it takes).
    if legend.len() > 1 {
        fig.legend = legend;
    }
    Ok(fig)
}

fn y_range(values: impl Iterator<Item = f64>, floor: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((floor, floor), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.08).max(0.05);
    (lo - if lo < floor { pad } else { 0.0 }, hi + pad)
}

/// Privacy/utility frontier: validation perplexity against the accountant's ε.
pub fn frontier_figure(d: &ComparisonDetail) -> Result<Figure, String> {
    let inf = infinity_at(d);
    let pts: Vec<(f64, f64, bool)> = d
        .runs
        .iter()
        .filter_map(|r| {
            let (x, at_inf) = eps_x(r, inf)?;
            Some((x, r.dp.as_ref()?.validation_perplexity?, at_inf))
        })
        .collect();
    if pts.is_empty() {
        return Err("no run has both an ε and a validation perplexity".into());
    }
    // From 0, so that a setting far better than the rest stays off the axis.
    let yr = (0.0, y_range(pts.iter().map(|p| p.1), 0.0).1);
    chart(
        "Privacy / utility frontier",
        "accountant ε (at the shared δ; × = no noise, ε = ∞)",
        "validation perplexity",
        inf * 1.1,
        yr,
        &[("settings".into(), pts)],
        ("", &[]),
        None,
        false,
    )
}

/// Empirical ε against the accountant's ε, one series per (instrument, method), y = x and each
/// series' ceiling.
pub fn epsilon_figure(d: &ComparisonDetail) -> Result<Figure, String> {
    let inf = infinity_at(d);
    let mut series: Vec<Series> = Vec::new();
    let mut refs: Vec<f64> = Vec::new();
    for r in &d.runs {
        let (Some((x, at_inf)), Some(dp)) = (eps_x(r, inf), r.dp.as_ref()) else {
            continue;
        };
        for e in &dp.estimates {
            let name = format!(
                "{}, {}{}",
                e.instrument,
                e.method_id,
                if e.kind == EpsilonKind::Estimate {
                    " (estimate)"
                } else {
                    ""
                }
            );
            match series.iter_mut().find(|s| s.0 == name) {
                Some(s) => s.1.push((x, e.value, at_inf)),
                None => series.push((name.clone(), vec![(x, e.value, at_inf)])),
            }
            // Every distinct ceiling of every run's bounds.
            if e.kind == EpsilonKind::Bound
                && e.ceiling.is_finite()
                && !refs.iter().any(|c| (c - e.ceiling).abs() < 1e-9)
            {
                refs.push(e.ceiling);
            }
        }
    }
    if series.is_empty() {
        return Err("no run has an empirical ε".into());
    }
    let yr = y_range(
        series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .chain(refs.iter().copied()),
        0.0,
    );
    chart(
        "Empirical ε against the accountant's ε",
        "accountant ε (× = no noise, ε = ∞)",
        "empirical ε",
        inf * 1.1,
        (0.0, yr.1),
        &series,
        ("ceilings: each bound's perfect-attack maximum", &refs),
        Some(inf / 2.0),
        false,
    )
}

/// Attack AUC (or TPR at the lowest FPR) against ε, one series per attack.
pub fn attack_figure(d: &ComparisonDetail, tpr: bool) -> Result<Figure, String> {
    let inf = infinity_at(d);
    let mut series: Vec<Series> = Vec::new();
    let mut low_fprs: Vec<f64> = Vec::new();
    for r in &d.runs {
        let Some((x, at_inf)) = eps_x(r, inf) else {
            continue;
        };
        for a in &r.attacks {
            let y = if tpr {
                if let Some(f) = a.low_fpr
                    && !low_fprs.contains(&f)
                {
                    low_fprs.push(f);
                }
                a.tpr_low
            } else {
                a.auc
            };
            let Some(y) = y else { continue };
            match series.iter_mut().find(|s| s.0 == a.attack) {
                Some(s) => s.1.push((x, y, at_inf)),
                None => series.push((a.attack.clone(), vec![(x, y, at_inf)])),
            }
        }
    }
    if series.is_empty() {
        return Err("no membership attack in these runs".into());
    }
    let (title, y_desc, floor) = if tpr {
        (
            match low_fprs.as_slice() {
                [f] => format!("Membership TPR at FPR {} against ε", num(*f)),
                _ => "Membership TPR at each run's lowest reported FPR against ε".to_owned(),
            },
            "TPR".to_owned(),
            0.0,
        )
    } else {
        (
            "Membership-inference AUC against ε".to_owned(),
            "AUC".to_owned(),
            0.5,
        )
    };
    let yr = y_range(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)), floor);
    let chance = [0.5];
    let refs: (&str, &[f64]) = if tpr {
        ("", &[])
    } else {
        ("chance (0.5)", &chance)
    };
    chart(
        &title,
        "accountant ε (× = no noise, ε = ∞)",
        &y_desc,
        inf * 1.1,
        (yr.0.min(floor), yr.1.max(floor + 0.05)),
        &series,
        refs,
        None,
        false,
    )
}

/// Mean canary exposure against copies planted, one series per setting.
pub fn exposure_figure(d: &ComparisonDetail) -> Result<Figure, String> {
    let series: Vec<Series> = d
        .runs
        .iter()
        .filter(|r| !r.exposure.is_empty())
        .map(|r| {
            (
                r.label.clone(),
                r.exposure
                    .iter()
                    .map(|&(k, v)| ((k.max(1) as f64).log2(), v, false))
                    .collect(),
            )
        })
        .collect();
    if series.is_empty() {
        return Err("no run measured canary exposure".into());
    }
    let x_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0f64, f64::max)
        + 0.5;
    let yr = y_range(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)), 0.0);
    chart(
        "Canary exposure against repetition",
        "log₂ copies planted",
        "mean exposure (bits)",
        x_max,
        yr,
        &series,
        ("", &[]),
        None,
        true,
    )
}

fn figure(blocks: &mut Vec<Block>, figure: Result<Figure, String>, caption: &str) {
    match figure {
        Ok(figure) => blocks.push(Block::Figure {
            figure: Box::new(figure),
            caption: caption.to_owned(),
        }),
        Err(e) => blocks.push(Block::Para(format!("(figure unavailable: {e})"))),
    }
}

/// The report's one convention for rates: "8 of 54 (14.8 %)"; "n/a" of nothing.
fn pct(k: u64, n: u64) -> String {
    if n == 0 {
        "n/a".into()
    } else {
        super::doc::rate(k, n)
    }
}

/// The comparison report.
pub fn build(file: &FindingsFile) -> ReportDoc {
    let Some(d) = &file.comparison else {
        return ReportDoc {
            title: "phiprobe comparison".into(),
            sections: Vec::new(),
        };
    };
    let m = &file.manifest;
    let mut sections = Vec::new();
    sections.push(intro_section(d, m));
    sections.push(figures_section(d));
    sections.extend(d.runs.iter().map(setting_section));
    let mut methods: Vec<String> = Vec::new();
    for e in d
        .runs
        .iter()
        .filter_map(|r| r.dp.as_ref())
        .flat_map(|d| &d.estimates)
    {
        let line = format!("{} — {}: {}", e.instrument, e.method_id, e.method);
        if !methods.contains(&line) {
            methods.push(line);
        }
    }
    if !methods.is_empty() {
        sections.push(Section {
            title: "Methods".into(),
            blocks: vec![
                Block::List(methods),
                Block::Para(
                    "Threat models: gradient canaries — the adversary plants crafted per-example gradients and observes every noisy update (the strongest adversary DP-SGD's analysis covers; Nasr et al. 2021, 2023); text canaries — the adversary sees the final model's likelihood of each canary record (black-box). Canaries are included by independent fair coins and scored without looking at the coins (Steinke, Nasr & Jagielski 2023).".into(),
                ),
            ],
        });
    }
    ReportDoc {
        title: "phiprobe: comparison of DP-training settings".into(),
        sections,
    }
}

/// The compared settings: what the comparison shows and the notes.
fn intro_section(d: &ComparisonDetail, m: &crate::evidence::RunManifest) -> Section {
    let mut intro = vec![Block::Para(format!(
        "Comparison of {} runs (phiprobe {}, run {}, seed {}). Every ε is at δ = {}. The accountant's ε is a guarantee; empirical ε are what attacks demonstrate — lower bounds at a stated confidence, or labelled estimates. Each run's safety net recomputes its lower bounds at a stricter level (by default 0.1 %, split over the bounds) and fails when one exceeds the accountant's ε: a bug in the training, the accounting or the audit, or a chance event that rare.",
        d.runs.len(),
        m.tool_version,
        m.run_id,
        m.seed,
        d.delta
            .map_or("(differs between runs)".into(), |x| format!("{x:e}"))
    ))];
    intro.push(Block::Table {
        header: vec![
            "setting".into(),
            "σ".into(),
            "C".into(),
            "q".into(),
            "steps".into(),
            "ε (accountant)".into(),
            "best ε bound".into(),
            "best MIA AUC".into(),
            "TPR @ low FPR".into(),
            "max mean exposure (bits)".into(),
            "identifiers extracted (members / non-members)".into(),
            "validation perplexity".into(),
        ],
        rows: d
            .runs
            .iter()
            .map(|r| {
                let dp = r.dp.as_ref();
                let best_bound = dp.and_then(|d| {
                    d.estimates
                        .iter()
                        .filter(|e| e.kind == EpsilonKind::Bound)
                        .max_by(|a, b| a.value.total_cmp(&b.value))
                });
                let best_auc = r
                    .attacks
                    .iter()
                    .filter(|a| a.auc.is_some())
                    .max_by(|a, b| a.auc.unwrap_or(0.0).total_cmp(&b.auc.unwrap_or(0.0)));
                let best_tpr = r
                    .attacks
                    .iter()
                    .filter(|a| a.tpr_low.is_some())
                    .max_by(|a, b| {
                        a.tpr_low
                            .unwrap_or(0.0)
                            .total_cmp(&b.tpr_low.unwrap_or(0.0))
                    });
                vec![
                    r.label.clone(),
                    dp.map_or("–".into(), |d| num(d.setting.noise)),
                    dp.map_or("–".into(), |d| num(d.setting.clip)),
                    dp.map_or("–".into(), |d| {
                        num((d.setting.sample_rate * 1e4).round() / 1e4)
                    }),
                    dp.map_or("–".into(), |d| d.setting.steps.to_string()),
                    dp.map_or("–".into(), |d| eps_text(d.setting.epsilon)),
                    best_bound.map_or("–".into(), |e| {
                        if e.value > 0.0 {
                            format!("{} ({}, {})", r3(e.value), e.instrument, e.method_id)
                        } else {
                            "0 (no bound above 0)".into()
                        }
                    }),
                    best_auc.map_or("–".into(), |a| {
                        format!("{} ({})", r3(a.auc.unwrap_or(f64::NAN)), a.attack)
                    }),
                    best_tpr.map_or("–".into(), |a| {
                        format!(
                            "{} at {} ({})",
                            r3(a.tpr_low.unwrap_or(f64::NAN)),
                            num(a.low_fpr.unwrap_or(f64::NAN)),
                            a.attack
                        )
                    }),
                    r.exposure
                        .iter()
                        .map(|e| e.1)
                        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
                        .map_or("–".into(), |v| num((v * 100.0).round() / 100.0)),
                    match (r.extraction_members, r.extraction_nonmembers) {
                        (Some(a), Some(b)) => format!("{} / {}", pct(a.0, a.1), pct(b.0, b.1)),
                        (Some(a), None) => pct(a.0, a.1),
                        _ => "–".into(),
                    },
                    dp.and_then(|d| d.validation_perplexity)
                        .map_or("–".into(), r3),
                ]
            })
            .collect(),
    });
    if !d.notes.is_empty() {
        intro.push(Block::List(d.notes.clone()));
    }
    Section {
        title: "Settings compared".into(),
        blocks: intro,
    }
}

/// The comparison's five figures, each with its caption.
fn figures_section(d: &ComparisonDetail) -> Section {
    let mut fig = Vec::new();
    figure(
        &mut fig,
        frontier_figure(d),
        "Validation perplexity (utility; lower is better) against the accountant's ε (privacy; lower is better), one point per setting. Settings trained without noise have no guarantee and are drawn with a cross at the right edge (not on the ε scale).",
    );
    figure(
        &mut fig,
        epsilon_figure(d),
        "Empirical ε against the accountant's ε. Points on y = x (drawn up to the largest finite ε) would mean the audit is tight; dashed grey lines are the largest values the bounds could report with their numbers of canaries (a perfect attack). Bounds hold at their stated confidence; estimates (GDP, Bayesian) rest on modelling assumptions. Crosses: no noise (ε = ∞), drawn apart at the right; that column is not on the ε scale.",
    );
    figure(
        &mut fig,
        attack_figure(d, false),
        "Membership-inference AUC of each attack against the accountant's ε (0.5 is chance).",
    );
    figure(
        &mut fig,
        attack_figure(d, true),
        "True-positive rate of each attack at the lowest false-positive rate reported (the LiRA convention), against ε.",
    );
    figure(
        &mut fig,
        exposure_figure(d),
        "Mean canary exposure per rung of the repetition ladder (canaries planted 1, 2, 4, … times into training notes), one line per setting. Exposure that grows with copies is memorisation.",
    );
    Section {
        title: "Figures".into(),
        blocks: fig,
    }
}

/// One setting's section: its run, DP setting and estimates, attacks and exposure.
fn setting_section(r: &ComparedRun) -> Section {
    let mut blocks = vec![Block::Para(format!(
        "Run {} ({}; findings.json SHA-256 {}).",
        r.run_id,
        r.source,
        &r.findings_sha256[..16.min(r.findings_sha256.len())]
    ))];
    if let Some(dp) = &r.dp {
        blocks.push(Block::Table {
            header: vec!["setting".into(), "value".into()],
            rows: setting_rows(dp),
        });
        if !dp.estimates.is_empty() {
            blocks.push(estimate_table(dp));
        }
        if let Some(m) = &dp.mechanism {
            blocks.push(Block::Para(format!(
                "White-box mechanism check: noise std {} C (σ = {}), included canaries' mean {} (q = {}): {}.",
                r3(m.out_std),
                num(dp.setting.noise),
                num((m.in_mean * 1e4).round() / 1e4),
                num((dp.setting.sample_rate * 1e4).round() / 1e4),
                if m.passed { "consistent" } else { "INCONSISTENT" }
            )));
        }
        if !dp.violations.is_empty() {
            blocks.push(Block::List(dp.violations.clone()));
        }
    }
    if !r.attacks.is_empty() {
        blocks.push(Block::Table {
            header: vec!["attack".into(), "AUC [CI]".into(), "TPR at low FPR".into()],
            rows: r
                .attacks
                .iter()
                .map(|a| {
                    vec![
                        a.attack.clone(),
                        match (a.auc, a.auc_interval) {
                            (Some(v), Some((lo, hi))) => {
                                format!("{} [{}, {}]", r3(v), r3(lo), r3(hi))
                            }
                            (Some(v), None) => r3(v),
                            _ => "n/a".into(),
                        },
                        match (a.tpr_low, a.low_fpr) {
                            (Some(t), Some(f)) => format!("{} at FPR {}", r3(t), num(f)),
                            _ => "n/a".into(),
                        },
                    ]
                })
                .collect(),
        });
    }
    if let Some((k, n)) = r.extractable {
        blocks.push(Block::Para(format!(
            "Member records whose continuation was reproduced at the longest prefix: {}.",
            pct(k, n)
        )));
    }
    Section {
        title: format!("Setting {}", r.label),
        blocks,
    }
}
