//! The canary-exposure section: exposure by repetition count (figure), every canary's three
//! estimates, and the reference fits. Canaries are synthetic, so their secrets are shown.

use super::chart::{Axis, BLACK, Figure, Key, Marker, TickFormat, series_colour};
use super::doc::{Block, Section, num};
use crate::evidence::{CanaryDetail, FindingsFile};

/// Exposure (bits) against copies planted (log₂ axis), one colour per kind, the per-rung mean as
/// a black line, and the interpolation ceiling log₂(#references) dashed.
pub fn exposure_figure(d: &CanaryDetail) -> Result<Figure, String> {
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
    let x_hi = max_rep * 1.25;
    let mut fig = Figure::new(
        "Canary exposure by copies in the training data",
        (720.0, 480.0),
        Axis::log("copies planted (log scale)", 0.8, x_hi).format(TickFormat::Integer),
        Axis::linear("exposure (bits)", y_min, y_max),
    );
    // Interpolation ceiling per reference count.
    let mut ceilings: Vec<u64> = d.rows.iter().map(|r| r.references).collect();
    ceilings.sort_unstable();
    ceilings.dedup();
    for n in ceilings {
        let y = (n as f64).log2();
        fig.line(
            vec![(0.8, y), (x_hi, y)],
            BLACK.stroke(1.0).alpha(0.35).dashed(),
        );
    }
    for (i, kind) in kinds.iter().enumerate() {
        let c = series_colour(i);
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
        for &(x, lo, hi) in &ranges {
            fig.line(vec![(x, lo), (x, hi)], c.stroke(2.0).alpha(0.5));
        }
        fig.markers(
            ranges.iter().map(|r| (r.0, r.2)).collect(),
            Marker::Triangle,
            4.0,
            c.alpha(0.7),
        );
        fig.markers(pts, Marker::Circle, 4.0, c.fill())
            .key(*kind, Key::Marker(Marker::Circle, c.fill()));
    }
    let mut rungs: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for r in &planted {
        rungs.entry(r.rung.max(1)).or_default().push(r.exposure);
    }
    let mean: Vec<(f64, f64)> = rungs
        .iter()
        .map(|(k, v)| (*k as f64, v.iter().sum::<f64>() / v.len() as f64))
        .collect();
    fig.line(mean, BLACK.stroke(2.0))
        .key("mean", Key::Line(BLACK.stroke(2.0)));
    Ok(fig)
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
///
/// Kept whole: one report section, its blocks in reading order.
pub fn section(file: &FindingsFile) -> Option<Section> {
    let d = file.canary.as_ref()?;
    let mut blocks = vec![Block::Para(format!(
        "Synthetic secrets (canaries) drawn from PHI-shaped formats were planted in the training notes a known number of times ({}). Exposure = log₂|space| − log₂ rank: how many bits of the secret the model gives away (Carlini et al., \"The Secret Sharer\", USENIX Security 2019). Three estimates: rank among never-planted reference secrets (interpolation; its ceiling is log₂ #references), the exact rank by best-first search over the format's token tree where interpolation saturates, and a skew-normal extrapolation from the references' scores. Scores are sentence negative log-likelihoods; ties count against the canary.",
        d.source
    ))];
    match exposure_figure(d) {
        Ok(figure) => blocks.push(Block::Figure {
            figure: Box::new(figure),
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
