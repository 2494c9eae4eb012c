//! The extraction section: the k-extractability curve, extraction rates per identifier type for
//! members against the non-member control, untargeted counts, and masked examples.

use super::chart::{Axis, Figure, Key, Marker, PALETTE, TickFormat};
use super::doc::{Block, Section, num};
use crate::evidence::{ExtractionDetail, FindingsFile};

/// The report's one convention for rates: "8 of 54 (14.8 %)"; "n/a" of nothing.
fn pct(k: u64, n: u64) -> String {
    if n == 0 {
        "n/a".into()
    } else {
        super::doc::rate(k, n)
    }
}

/// Fraction of records whose continuation is extractable against the prefix length k, members
/// and non-members, with Wilson intervals as error bars.
pub fn k_curve_figure(d: &ExtractionDetail, confidence: f64) -> Result<Figure, String> {
    if d.curve.is_empty() {
        return Err("no prefix prompts".into());
    }
    let kmax = d.curve.iter().map(|p| p.k).max().unwrap_or(1) as f64;
    let kmin = d.curve.iter().map(|p| p.k).min().unwrap_or(1) as f64;
    let mut fig = Figure::new(
        "k-extractability: continuation reproduced exactly",
        (720.0, 420.0),
        Axis::log(
            "prefix length k (tokens, log scale)",
            kmin * 0.8,
            kmax * 1.25,
        )
        .format(TickFormat::Integer),
        Axis::linear("fraction extractable (any decode)", 0.0, 1.0),
    );
    for (label, colour, pick) in [
        ("members", PALETTE[3], true),
        ("non-members (control)", PALETTE[0], false),
    ] {
        let pts: Vec<(f64, f64, f64, f64)> = d
            .curve
            .iter()
            .map(|p| {
                let (k, n) = if pick { p.member } else { p.control };
                let (c, h) = crate::stats::wilson(k, n, confidence);
                let v = if n == 0 { 0.0 } else { k as f64 / n as f64 };
                (p.k as f64, v, (c - h).max(0.0), (c + h).min(1.0))
            })
            .collect();
        fig.line(pts.iter().map(|p| (p.0, p.1)).collect(), colour.stroke(2.0))
            .key(label, Key::Line(colour.stroke(2.0)));
        for p in &pts {
            fig.line(vec![(p.0, p.2), (p.0, p.3)], colour.stroke(1.0));
        }
        fig.markers(
            pts.iter().map(|p| (p.0, p.1)).collect(),
            Marker::Circle,
            3.0,
            colour.fill(),
        );
    }
    Ok(fig)
}

/// One summary paragraph.
pub fn summary(file: &FindingsFile) -> Option<Block> {
    let d = file.extraction.as_ref()?;
    let top = d.curve.last()?;
    let excess: Vec<String> = d
        .types
        .iter()
        .filter(|t| t.excess.is_some_and(|e| e.1 > 0.0))
        .map(|t| format!("{} ({})", t.phi_type, t.mode.replace('_', " ")))
        .collect();
    Some(Block::Para(format!(
        "Extraction ({} patients, one record each; {} members): at k = {} prefix tokens {} of members and {} of non-members are reproduced exactly. {}",
        d.records,
        d.members,
        top.k,
        pct(top.member.0, top.member.1),
        pct(top.control.0, top.control.1),
        if excess.is_empty() {
            "No identifier type comes out of the model more often for members than for the control (no excess interval above 0).".to_owned()
        } else {
            format!(
                "Identifier types extracted more often for members than for the control (excess interval above 0): {}.",
                excess.join(", ")
            )
        }
    )))
}

/// The section.
///
/// Kept whole: one report section, its blocks in reading order.
pub fn section(file: &FindingsFile) -> Option<Section> {
    let d = file.extraction.as_ref()?;
    let conf = d
        .settings
        .get("confidence")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.95);
    let suffix = d
        .settings
        .get("suffix_tokens")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let mut blocks = vec![Block::Para(format!(
        "Can the model be made to say what it was trained on? Targeted: {} patients, one record each ({} members, the rest non-members as the control) were prompted with their first k tokens; a continuation is extractable when a decode (greedy, beam search, or any of the seeded samples) reproduces the next {suffix} tokens exactly (Carlini et al., ICLR 2023). They were also prompted with their text up to one identifier, to see whether the model completes it (Lukas et al., IEEE S&P 2023). Untargeted: seeded generations over a temperature/top-k/top-p sweep, de-duplicated, scanned by the PHI detector and matched field by field to the records (Carlini et al., USENIX Security 2021). Every rate is shown for members and non-members: only the excess over the control is evidence of memorisation; common names and formats come out for both.",
        d.records, d.members
    ))];
    match k_curve_figure(d, conf) {
        Ok(figure) => blocks.push(Block::Figure {
            figure: Box::new(figure),
            caption: format!(
                "k-extractability: fraction of records whose next {suffix} tokens a decode reproduces exactly, against the prefix length; bars are {}% Wilson intervals.",
                num(100.0 * conf)
            ),
        }),
        Err(e) => blocks.push(Block::Para(format!("(curve unavailable: {e})"))),
    }
    let mut header = vec!["k".to_owned(), "members".into(), "non-members".into()];
    let decodes: Vec<String> = d
        .curve
        .first()
        .map(|p| p.per_decode.iter().map(|x| x.0.clone()).collect())
        .unwrap_or_default();
    for dname in &decodes {
        header.push(format!("{dname}: members / non-members"));
    }
    blocks.push(Block::Table {
        header,
        rows: d
            .curve
            .iter()
            .map(|p| {
                let mut row = vec![
                    p.k.to_string(),
                    pct(p.member.0, p.member.1),
                    pct(p.control.0, p.control.1),
                ];
                for (_, m, c) in &p.per_decode {
                    row.push(format!("{} / {}", pct(m.0, m.1), pct(c.0, c.1)));
                }
                row
            })
            .collect(),
    });
    blocks.push(Block::Para(format!(
        "Extraction rate per identifier type: the share of records (targeted) or of distinct values in the data (untargeted) whose identifier the model reproduced exactly, members against the control; excess = member rate − control rate with a {}% Newcombe interval.",
        num(100.0 * conf)
    )));
    blocks.push(Block::Table {
        header: vec![
            "mode".into(),
            "identifier type".into(),
            "members".into(),
            "non-members".into(),
            "excess [CI]".into(),
        ],
        rows: d
            .types
            .iter()
            .map(|t| {
                vec![
                    t.mode.replace('_', " "),
                    t.phi_type.clone(),
                    pct(t.member.0, t.member.1),
                    pct(t.control.0, t.control.1),
                    match t.excess {
                        Some((d, lo, hi)) => format!(
                            "{} [{}, {}]",
                            num((d * 1000.0).round() / 1000.0),
                            num((lo * 1000.0).round() / 1000.0),
                            num((hi * 1000.0).round() / 1000.0)
                        ),
                        None => "n/a".into(),
                    },
                ]
            })
            .collect(),
    });
    if let Some(u) = &d.untargeted {
        let g = |k: &str| u.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        blocks.push(Block::Para(format!(
            "Untargeted: {} generations, {} distinct. Generations holding two or more identifiers of one patient: {} for members, {} for non-members (at most {} and {} identifiers of one patient in one generation).{}",
            g("generations"),
            g("unique"),
            g("member_cooccurrence"),
            g("control_cooccurrence"),
            g("member_max_fields"),
            g("control_max_fields"),
            match u.get("reference").and_then(serde_json::Value::as_str) {
                Some(r) => format!(" Identifiers the reference model {r} also emits were subtracted."),
                None => " No reference model was given: nothing was subtracted beyond the non-member control.".into(),
            }
        )));
    }
    if d.too_short > 0 {
        blocks.push(Block::Para(format!(
            "{} (record, k) prompts were skipped: the text is shorter than k plus the compared continuation.",
            d.too_short
        )));
    }
    if !d.examples.is_empty() {
        blocks.push(Block::Para(
            "Member extractions (identifiers masked by the PHI detector; records by their salted pseudonyms):".into(),
        ));
        blocks.push(Block::Table {
            header: vec![
                "record (pseudonym)".into(),
                "prompt".into(),
                "decode".into(),
                "exact".into(),
                "identifiers reproduced".into(),
                "generated (masked)".into(),
            ],
            rows: d
                .examples
                .iter()
                .map(|e| {
                    vec![
                        e.record_id.clone(),
                        e.prompt.clone(),
                        e.decode.clone(),
                        if e.exact { "yes".into() } else { "no".into() },
                        e.identifiers.to_string(),
                        e.continuation.replace('\n', " "),
                    ]
                })
                .collect(),
        });
    }
    Some(Section {
        title: "Extraction".into(),
        blocks,
    })
}
