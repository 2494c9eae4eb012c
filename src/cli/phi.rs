//! `phiprobe data detect`: the PHI detector on a dataset's notes, scored against ground truth.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::exit;
use crate::phi::eval::{CategoryScore, TruthSpan, evaluate};
use crate::phi::{Detector, SafeHarbor};

/// Options of `data detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Dataset card; its text column is scanned and its identifier columns teach the detector
    /// names, places and identifier shapes.
    #[arg(long)]
    pub data: PathBuf,
    /// Text column (default: the card's one text column).
    #[arg(long)]
    pub column: Option<String>,
    /// Ground-truth identifier spans (JSON lines: record_id, category, start, end in
    /// characters); default: phi_spans.jsonl beside the card, when present.
    #[arg(long)]
    pub spans: Option<PathBuf>,
    /// Use only the built-in rules (no vocabulary from the data).
    #[arg(long)]
    pub builtin: bool,
    /// Print the scores as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Rules whose detections the synthetic ground truth does not label (ages over 89 are PHI but
/// the generator records no span for them).
const OUT_OF_SCOPE: [&str; 1] = ["age-over-89"];

/// `phiprobe data detect`.
pub fn detect_cmd(a: &DetectArgs, quiet: bool) -> Result<u8> {
    let t0 = std::time::Instant::now();
    let recs = crate::data::text::TextRecords::load(&a.data, a.column.as_deref())?;
    let detector = if a.builtin {
        Detector::builtin()
    } else {
        Detector::with_vocabulary(&recs.vocabulary())
    };
    let spans_path = a.spans.clone().or_else(|| {
        let p = a.data.with_file_name("phi_spans.jsonl");
        p.is_file().then_some(p)
    });
    let texts: Vec<&str> = recs.texts.iter().map(String::as_str).collect();
    let mut truth = Vec::new();
    if let Some(p) = &spans_path {
        let index = recs.index();
        for (line, s) in crate::data::synth::read_spans(p)?.into_iter().enumerate() {
            let Some(&i) = index.get(s.record_id.as_str()) else {
                continue;
            };
            let category = SafeHarbor::from_id(&s.category).ok_or_else(|| {
                crate::Error::Usage(format!(
                    "{} line {}: unknown Safe Harbor category{}",
                    p.display(),
                    line + 1,
                    crate::redact::plain_name(&s.category)
                        .map_or_else(String::new, |c| format!(" '{c}'"))
                ))
            })?;
            let text = texts[i];
            let byte = |c: usize| text.char_indices().nth(c).map_or(text.len(), |(b, _)| b);
            if s.start >= s.end || s.end > text.chars().count() {
                return Err(crate::Error::Usage(format!(
                    "{} line {}: span {}..{} lies outside its record's text ({} characters)",
                    p.display(),
                    line + 1,
                    s.start,
                    s.end,
                    text.chars().count()
                ))
                .into());
            }
            truth.push(TruthSpan {
                text: i,
                category,
                start: byte(s.start),
                end: byte(s.end),
            });
        }
    }
    let scores = evaluate(&detector, &texts, &truth, &OUT_OF_SCOPE);
    if a.json {
        super::write_output(None, &(serde_json::to_string_pretty(&scores)? + "\n"))?;
        return Ok(exit::PASS);
    }
    super::write_output(None, &format_scores(&scores, spans_path.is_some()))?;
    if !quiet {
        eprintln!(
            "{} texts scanned in {:.2} s ({}){}",
            texts.len(),
            t0.elapsed().as_secs_f64(),
            if a.builtin {
                "built-in rules"
            } else {
                "built-in rules + the card's vocabulary"
            },
            spans_path
                .map(|p| format!("; ground truth {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(exit::PASS)
}

fn pct_interval(k: u64, n: u64) -> String {
    if n == 0 {
        return "n/a".into();
    }
    let (lo, hi) = crate::stats::clopper_pearson(k, n, 0.95);
    format!(
        "{:.1}% [{:.1}, {:.1}]",
        100.0 * k as f64 / n as f64,
        100.0 * lo,
        100.0 * hi
    )
}

fn format_scores(scores: &[CategoryScore], with_truth: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if with_truth {
        let _ = writeln!(
            out,
            "{:<12} {:>7} {:>24} {:>9} {:>24} {:>8}",
            "category", "truth", "recall [95% CI]", "found", "precision [95% CI]", "exact"
        );
    } else {
        let _ = writeln!(out, "{:<12} {:>9}", "category", "found");
    }
    for s in scores {
        let c = s.category.map_or("?", SafeHarbor::id);
        if with_truth {
            let _ = writeln!(
                out,
                "{:<12} {:>7} {:>24} {:>9} {:>24} {:>8}",
                c,
                s.truth,
                pct_interval(s.found, s.truth),
                s.detections,
                pct_interval(s.correct, s.detections),
                if s.found > 0 {
                    format!("{:.0}%", 100.0 * s.exact as f64 / s.found as f64)
                } else {
                    "n/a".into()
                }
            );
        } else {
            let _ = writeln!(out, "{:<12} {:>9}", c, s.detections);
        }
    }
    out
}
