//! The canary-exposure section: exposure by repetition count (figure), every canary's three
//! estimates, and the reference fits. Canaries are synthetic, so their secrets are shown.

use plotters::prelude::*;

use super::doc::{Block, Section, num};
use crate::evidence::{CanaryDetail, FindingsFile};

use super::figures::PALETTE;

/// Exposure (bits) against copies planted (log₂ axis), one colour per kind, the per-rung mean as
/// a black line, and the interpolation ceiling log₂(#references) dashed.
pub fn exposure_figure(d: &CanaryDetail) -> Result<String, String> {
    let planted: Vec<_> = d.rows.iter().filter(|r| r.repetitions > 0).collect();
    if planted.is_empty() {
        return Err("no planted canary".into());
    }
    let max_rep = planted.iter().map(|r| r.repetitions).max().unwrap_or(1) as f64;
    let y_max = d
        .rows
        .iter()
        .map(|r| r.log2_space)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.05;
    let y_min = d.rows.iter().map(|r| r.exposure).fold(0.0f64, f64::min) - 0.5;
    let mut kinds: Vec<&str> = d.rows.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Canary exposure by copies in the training data",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((0.8f64..max_rep * 1.25).log_scale(), y_min..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("copies planted (log scale)")
            .y_desc("exposure (bits)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        // Interpolation ceiling per reference count.
        let mut ceilings: Vec<u64> = d.rows.iter().map(|r| r.references).collect();
        ceilings.sort_unstable();
        ceilings.dedup();
        for n in ceilings {
            let y = (n as f64).log2();
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.8, y), (max_rep * 1.25, y)],
                    6,
                    4,
                    BLACK.mix(0.35).stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
        }
        for (i, kind) in kinds.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = planted
                .iter()
                .filter(|r| r.kind == *kind)
                .map(|r| (r.repetitions as f64, r.exposure))
                .collect();
            // Where the exact-rank search stopped early: the range up to its bound.
            let ranges: Vec<(f64, f64, f64)> = planted
                .iter()
                .filter(|r| r.kind == *kind && matches!(r.exact_rank, Some((_, false))))
                .filter_map(|r| Some((r.repetitions as f64, r.exposure, r.exposure_exact?)))
                .collect();
            for (x, lo, hi) in ranges {
                chart
                    .draw_series(LineSeries::new(
                        [(x, lo), (x, hi)],
                        c.mix(0.5).stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series([TriangleMarker::new((x, hi), 4, c.mix(0.7).filled())])
                    .map_err(|e| e.to_string())?;
            }
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(|e| e.to_string())?
                .label(*kind)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        let mut rungs: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
        for r in &planted {
            rungs.entry(r.rung.max(1)).or_default().push(r.exposure);
        }
        let mean: Vec<(f64, f64)> = rungs
            .iter()
            .map(|(k, v)| (*k as f64, v.iter().sum::<f64>() / v.len() as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(mean, BLACK.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("mean")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One summary paragraph for the report's first section.
pub fn summary(file: &FindingsFile) -> Option<Block> {
    let d = file.canary.as_ref()?;
    let mut rungs: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for r in &d.rows {
        rungs.entry(r.rung_key()).or_default().push(r.exposure);
    }
    let by: Vec<String> = rungs
        .iter()
        .map(|(k, v)| {
            format!(
                "{} {} {}",
                if *k == 0 {
                    "not planted".to_owned()
                } else {
                    format!("{k} copies")
                },
                num((v.iter().sum::<f64>() / v.len() as f64 * 100.0).round() / 100.0),
                "bits"
            )
        })
        .collect();
    let top = d
        .rows
        .iter()
        .max_by(|a, b| a.exposure.total_cmp(&b.exposure))?;
    Some(Block::Para(format!(
        "Canary exposure ({} canaries): mean by copies planted (as the plan asked) — {}; Spearman ρ(copies, exposure) = {}. Highest: {} ({}×, {} of {} bits).",
        d.rows.len(),
        by.join("; "),
        d.trend
            .map_or("n/a".into(), |t| num((t * 1000.0).round() / 1000.0)),
        top.id,
        top.repetitions,
        num((top.exposure * 100.0).round() / 100.0),
        num((top.log2_space * 100.0).round() / 100.0),
    )))
}

fn bits(v: f64) -> String {
    num((v * 100.0).round() / 100.0)
}

/// The section.
pub fn section(file: &FindingsFile) -> Option<Section> {
    let d = file.canary.as_ref()?;
    let mut blocks = vec![Block::Para(format!(
        "Synthetic secrets (canaries) drawn from PHI-shaped formats were planted in the training notes a known number of times ({}). Exposure = log₂|space| − log₂ rank: how many bits of the secret the model gives away (Carlini et al., \"The Secret Sharer\", USENIX Security 2019). Three estimates: rank among never-planted reference secrets (interpolation; its ceiling is log₂ #references), the exact rank by best-first search over the format's token tree where interpolation saturates, and a skew-normal extrapolation from the references' scores. Scores are sentence negative log-likelihoods; ties count against the canary.",
        d.source
    ))];
    match exposure_figure(d) {
        Ok(svg) => blocks.push(Block::Figure {
            svg,
            caption: "Exposure (headline estimate) of every planted canary against its copies in the training data; the black line is the mean per rung of the plan's ladder, dashed lines the interpolation ceiling log₂(#references); a bar ending in a triangle reaches up to the bound of an exact-rank search that stopped at its budget. Exposure that grows with copies is memorisation."
                .into(),
        }),
        Err(e) => blocks.push(Block::Para(format!("(exposure figure unavailable: {e})"))),
    }
    let rows = d
        .rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.secret.clone(),
                if r.repetitions == 0 {
                    "0 (control)".into()
                } else if r.rung != r.repetitions && r.rung > 0 {
                    format!("{} (of {} planted)", r.repetitions, r.rung)
                } else {
                    r.repetitions.to_string()
                },
                format!(
                    "{} [{}, {}] ({} of {} refs)",
                    bits(r.exposure_rank),
                    bits(r.exposure_rank_interval.0),
                    bits(r.exposure_rank_interval.1),
                    r.refs_at_least_as_likely,
                    r.references
                ),
                match (r.exact_rank, r.exposure_exact) {
                    (Some((rank, true)), Some(e)) => {
                        format!("{} (rank {})", bits(e), num(rank as f64))
                    }
                    (Some((rank, false)), Some(e)) => {
                        format!("≤ {} (rank ≥ {})", bits(e), num(rank as f64))
                    }
                    _ => "–".into(),
                },
                r.search_expansions.map_or("–".into(), |x| num(x as f64)),
                r.exposure_skewnorm.map_or("n/a".into(), bits),
                bits(r.log2_space),
            ]
        })
        .collect();
    blocks.push(Block::Table {
        header: vec![
            "canary".into(),
            "secret (synthetic)".into(),
            "copies seen".into(),
            "exposure, interpolation [CI]".into(),
            "exposure, exact rank".into(),
            "search model calls".into(),
            "exposure, skew-normal".into(),
            "log₂|space|".into(),
        ],
        rows,
    });
    let notes: Vec<String> = d
        .rows
        .iter()
        .filter_map(|r| {
            r.search_note
                .as_ref()
                .filter(|n| !n.starts_with("not searched"))
                .map(|n| format!("{}: {n}", r.id))
        })
        .collect();
    if !notes.is_empty() {
        blocks.push(Block::List(notes));
    }
    blocks.push(Block::Para(
        "Skew-normal fits to the reference scores (maximum likelihood). KS is the Kolmogorov–Smirnov distance between the fit and the references; its p-value is conservative because the parameters were fitted on the same references. A poor fit makes the extrapolated exposure unreliable; the ranks do not depend on it."
            .into(),
    ));
    blocks.push(Block::Table {
        header: vec![
            "kind".into(),
            "format".into(),
            "references".into(),
            "location ξ".into(),
            "scale ω".into(),
            "shape α".into(),
            "KS [p]".into(),
        ],
        rows: d
            .fits
            .iter()
            .map(|g| match &g.fit {
                Some(f) => vec![
                    g.kind.clone(),
                    g.format.clone(),
                    g.references.to_string(),
                    num((f.dist.loc * 1000.0).round() / 1000.0),
                    num((f.dist.scale * 1000.0).round() / 1000.0),
                    format!(
                        "{}{}",
                        num((f.dist.shape * 1000.0).round() / 1000.0),
                        if f.shape_at_bound { " (at bound)" } else { "" }
                    ),
                    format!(
                        "{} [{}]",
                        num((f.ks * 1000.0).round() / 1000.0),
                        num((f.ks_p * 1000.0).round() / 1000.0)
                    ),
                ],
                None => vec![
                    g.kind.clone(),
                    g.format.clone(),
                    g.references.to_string(),
                    "no fit".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                ],
            })
            .collect(),
    });
    Some(Section {
        title: "Canary exposure".into(),
        blocks,
    })
}
