//! The re-identification report's figures: persons by equivalence-class size and by risk band.

use super::chart::{Axis, Figure, RISKY, SAFE, TickFormat};
use crate::evidence::ReidDetail;

/// Buckets of class sizes for the histogram figure: (label, lo, hi) inclusive.
pub const SIZE_BUCKETS: [(&str, u64, u64); 10] = [
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4", 4, 4),
    ("5", 5, 5),
    ("6-10", 6, 10),
    ("11-20", 11, 20),
    ("21-50", 21, 50),
    ("51-100", 51, 100),
    (">100", 101, u64::MAX),
];

/// Persons and classes per size bucket.
pub fn size_buckets(hist: &[(u64, u64)]) -> Vec<(&'static str, u64, u64)> {
    SIZE_BUCKETS
        .iter()
        .map(|&(label, lo, hi)| {
            let in_bucket = hist.iter().filter(|h| h.0 >= lo && h.0 <= hi);
            let persons = in_bucket.clone().map(|h| h.0 * h.1).sum();
            let classes = in_bucket.map(|h| h.1).sum();
            (label, persons, classes)
        })
        .collect()
}

fn bar_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    bars: &[(String, u64)],
    highlight: &[bool],
) -> Figure {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let names = bars.iter().map(|b| b.0.clone()).collect();
    let mut fig = Figure::new(
        title,
        (720.0, 360.0),
        Axis::categories(x_desc, names),
        Axis::linear(y_desc, 0.0, max * 1.1)
            .format(TickFormat::Integer)
            .grid(),
    );
    for (i, b) in bars.iter().enumerate() {
        let colour = if highlight.get(i).copied().unwrap_or(false) {
            RISKY
        } else {
            SAFE
        };
        let x = i as f64;
        fig.rect((x - 0.4, 0.0), (x + 0.4, b.1 as f64), colour.fill());
    }
    fig
}

/// Persons by the size of their equivalence class; classes below k(t) in red.
pub fn class_size_histogram(d: &ReidDetail, k: u64) -> Figure {
    let buckets = size_buckets(&d.class_sizes);
    let bars: Vec<(String, u64)> = buckets.iter().map(|b| (b.0.to_owned(), b.1)).collect();
    let highlight: Vec<bool> = SIZE_BUCKETS.iter().map(|b| b.1 < k).collect();
    bar_chart(
        "Persons by equivalence-class size",
        "class size",
        "persons",
        &bars,
        &highlight,
    )
}

/// Persons by prosecutor risk band; bands above the threshold in red.
pub fn risk_distribution(d: &ReidDetail, threshold: f64) -> Figure {
    let bars: Vec<(String, u64)> = d
        .risk_bins
        .iter()
        .map(|b| (format!("{}-{}", short(b.lo), short(b.hi)), b.persons))
        .collect();
    let highlight: Vec<bool> = d.risk_bins.iter().map(|b| b.lo >= threshold).collect();
    bar_chart(
        "Persons by re-identification risk (1/class size)",
        "risk band",
        "persons",
        &bars,
        &highlight,
    )
}

fn short(x: f64) -> String {
    if (x - 1.0 / 3.0).abs() < 1e-9 {
        "1/3".into()
    } else {
        format!("{x}")
    }
}
