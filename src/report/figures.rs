//! Figures drawn with plotters into SVG strings (inlined into the HTML report).

use crate::evidence::ReidDetail;
use plotters::prelude::*;

/// Series colours shared by every figure (the matplotlib "tab10" order).
pub const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];

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
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0..bars.len().saturating_sub(1)).into_segmented(),
                0u64..(max + max / 10 + 1),
            )
            .map_err(|e| e.to_string())?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(bars.len())
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        let risky = RGBColor(192, 57, 43);
        let safe = RGBColor(41, 128, 185);
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let color = if highlight.get(i).copied().unwrap_or(false) {
                    risky
                } else {
                    safe
                };
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0),
                        (SegmentValue::Exact(i + 1), b.1),
                    ],
                    color.filled(),
                );
                r.set_margin(0, 0, 6, 6);
                r
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Persons by the size of their equivalence class; classes below k(t) in red.
pub fn class_size_histogram(d: &ReidDetail, k: u64) -> Result<String, String> {
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
pub fn risk_distribution(d: &ReidDetail, threshold: f64) -> Result<String, String> {
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
