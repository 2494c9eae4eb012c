//! DP-training sweeps and their comparison: a grid of settings (noise multiplier, clipping norm,
//! epochs, batch, learning rate), each trained with coin-included audit canaries and audited
//! (membership, canary exposure, extraction, the DP audit), then compared side by side.
//!
//! The grid language: `key=v1,v2,…` terms separated by `;`, every combination in order (the
//! first key varies slowest). Keys: `noise` (σ), `clip` (C), `epochs`, `batch` (expected batch
//! q·N), `lr`, `q` (sampling rate; overrides `batch`).

use crate::error::{Error, Result};
use crate::evidence::metric;
use crate::evidence::{
    ComparedAttack, ComparedRun, ComparisonDetail, FileHash, Finding, FindingsFile,
};
use serde::{Deserialize, Serialize};

/// Format tag of `sweep.json`.
pub const SWEEP_FORMAT: &str = "phiprobe-sweep-1";

/// One point of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Noise multiplier σ (0: clipping only, no guarantee).
    pub noise: f64,
    /// Clipping norm C.
    pub clip: f64,
    /// Epochs.
    pub epochs: f64,
    /// Expected batch size q·N.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Sampling rate q, when given (else batch / N).
    pub q: Option<f64>,
}

impl Point {
    /// A readable label: the keys the grid varies or sets, e.g. `noise=0.5 clip=1 epochs=4`.
    pub fn label(&self, keys: &[String]) -> String {
        keys.iter()
            .map(|k| format!("{k}={}", self.get(k)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A folder name: the label with `=` → `-` and spaces → `_`.
    pub fn folder(&self, keys: &[String]) -> String {
        self.label(keys).replace('=', "-").replace(' ', "_")
    }

    fn get(&self, key: &str) -> String {
        match key {
            "noise" => fmt(self.noise),
            "clip" => fmt(self.clip),
            "epochs" => fmt(self.epochs),
            "batch" => self.batch.to_string(),
            "lr" => fmt(self.lr),
            "q" => self.q.map_or_else(String::new, fmt),
            _ => String::new(),
        }
    }
}

fn fmt(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A parsed grid: the keys as written and every point.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Keys in the order written.
    pub keys: Vec<String>,
    /// Every combination.
    pub points: Vec<Point>,
}

/// The keys a grid may set.
pub const GRID_KEYS: [&str; 6] = ["noise", "clip", "epochs", "batch", "lr", "q"];

/// Parses `noise=0,0.5;clip=1;…` over `base` (the values of keys the grid does not name).
pub fn parse_grid(text: &str, base: Point) -> std::result::Result<Grid, String> {
    let mut keys: Vec<String> = Vec::new();
    let mut values: Vec<Vec<f64>> = Vec::new();
    for term in text.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        let Some((k, v)) = term.split_once('=') else {
            return Err(format!(
                "'{term}': a grid term is key=v1,v2,… (keys: {})",
                GRID_KEYS.join(", ")
            ));
        };
        let k = k.trim();
        if !GRID_KEYS.contains(&k) {
            return Err(format!(
                "unknown grid key '{k}' (keys: {})",
                GRID_KEYS.join(", ")
            ));
        }
        if keys.iter().any(|x| x == k) {
            return Err(format!("grid key '{k}' is given twice"));
        }
        let mut vs = Vec::new();
        for s in v.split(',').map(str::trim) {
            let x: f64 = s
                .parse()
                .map_err(|_| format!("grid key '{k}': '{s}' is not a number"))?;
            let ok = match k {
                "noise" => x.is_finite() && x >= 0.0,
                "clip" | "epochs" | "lr" => x.is_finite() && x > 0.0,
                "batch" => x >= 1.0 && x.fract() == 0.0 && x < 1e9,
                "q" => x > 0.0 && x <= 1.0,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "grid key '{k}': {s} is out of range ({})",
                    match k {
                        "noise" => "σ ≥ 0",
                        "batch" => "a whole number ≥ 1",
                        "q" => "0 < q ≤ 1",
                        _ => "> 0",
                    }
                ));
            }
            if vs.contains(&x) {
                return Err(format!("grid key '{k}': {s} is listed twice"));
            }
            vs.push(x);
        }
        keys.push(k.to_owned());
        values.push(vs);
    }
    if keys.is_empty() {
        return Err("the grid is empty; e.g. --grid 'noise=0,0.5,1,2;clip=1;epochs=4'".into());
    }
    if keys.iter().any(|k| k == "q") && keys.iter().any(|k| k == "batch") {
        return Err("give q or batch, not both (q sets the sampling rate; batch is q·N)".into());
    }
    let total: usize = values.iter().map(Vec::len).product();
    if total > 256 {
        return Err(format!("the grid has {total} settings; at most 256"));
    }
    let mut points = Vec::with_capacity(total);
    for i in 0..total {
        let mut p = base;
        let mut rest = i;
        for (j, k) in keys.iter().enumerate().rev() {
            let n = values[j].len();
            let x = values[j][rest % n];
            rest /= n;
            match k.as_str() {
                "noise" => p.noise = x,
                "clip" => p.clip = x,
                "epochs" => p.epochs = x,
                "batch" => p.batch = x as usize,
                "lr" => p.lr = x,
                "q" => p.q = Some(x),
                _ => unreachable!("checked above"),
            }
        }
        points.push(p);
    }
    Ok(Grid { keys, points })
}

/// `sweep.json`: what the sweep was asked to do (written once, by the first shard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// [`SWEEP_FORMAT`].
    pub format: String,
    /// phiprobe version.
    pub tool_version: String,
    /// Dataset card.
    pub data: String,
    /// The grid as given.
    pub grid: String,
    /// The seed of every setting.
    pub seed: u64,
    /// Reference models per setting.
    pub references: usize,
    /// Model preset.
    pub preset: String,
    /// Settings in grid order: (label, folder, point).
    pub settings: Vec<(String, String, Point)>,
    /// Everything else that shapes the results (plan, canaries).
    pub options: serde_json::Value,
}

/// Timings of one setting (`timing.json` in its folder).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Timing {
    /// Seconds training (target and references; 0 when reused).
    pub train_seconds: f64,
    /// Seconds auditing.
    pub audit_seconds: f64,
    /// Steps of the target.
    pub steps: u64,
}

fn param<'a>(f: &'a Finding, key: &str) -> Option<&'a serde_json::Value> {
    f.params.get(key)
}

/// One row of the comparison from a run's findings (`bytes` are the file as read, for its hash).
pub fn compared_run(label: &str, source: &str, bytes: &[u8], f: &FindingsFile) -> ComparedRun {
    let mut attacks: Vec<ComparedAttack> = Vec::new();
    for auc in f.findings.iter().filter(|x| x.metric == metric::MIA_AUC) {
        let Some(name) = param(auc, "attack").and_then(|v| v.as_str()) else {
            continue;
        };
        // The lowest FPR reported for this attack.
        let low = f
            .findings
            .iter()
            .filter(|x| {
                x.metric == metric::MIA_TPR_AT_FPR
                    && param(x, "attack").and_then(|v| v.as_str()) == Some(name)
            })
            .filter_map(|x| Some((param(x, "fpr")?.as_f64()?, x.value)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        attacks.push(ComparedAttack {
            attack: name.to_owned(),
            auc: auc.value,
            auc_interval: auc.interval.as_ref().map(|i| (i.lo, i.hi)),
            tpr_low: low.and_then(|l| l.1),
            low_fpr: low.map(|l| l.0),
        });
    }
    let mut exposure: Vec<(u64, f64)> = f
        .findings
        .iter()
        .filter(|x| x.metric == metric::CANARY_EXPOSURE_MEAN)
        .filter_map(|x| Some((param(x, "rung")?.as_u64()?, x.value?)))
        .collect();
    exposure.sort_by_key(|e| e.0);
    let extraction = |group: &str| {
        let rates: Vec<_> = f
            .findings
            .iter()
            .filter(|x| {
                x.metric == metric::EXTRACTION_RATE
                    && param(x, "group").and_then(|v| v.as_str()) == Some(group)
            })
            .filter_map(|x| x.counts)
            .collect();
        (!rates.is_empty()).then(|| {
            (
                rates.iter().map(|c| c.k).sum::<u64>(),
                rates.iter().map(|c| c.n).sum::<u64>(),
            )
        })
    };
    let extractable = f
        .findings
        .iter()
        .filter(|x| {
            x.metric == metric::EXTRACTION_K_EXTRACTABLE
                && param(x, "group").and_then(|v| v.as_str()) == Some("member")
                && param(x, "decode").and_then(|v| v.as_str()) == Some("any")
        })
        .filter_map(|x| Some((param(x, "k")?.as_u64()?, x.counts?)))
        .max_by_key(|(k, _)| *k)
        .map(|(_, c)| (c.k, c.n));
    let mut dp = f.dp.clone();
    if let Some(d) = &mut dp {
        d.text_scores = None;
        d.gradient_scores = None;
    }
    ComparedRun {
        label: label.to_owned(),
        run_id: f.manifest.run_id.clone(),
        source: source.to_owned(),
        findings_sha256: FileHash::of(source, bytes).sha256,
        dp,
        attacks,
        exposure,
        extraction_members: extraction("member"),
        extraction_nonmembers: extraction("non_member"),
        extractable,
    }
}

/// The comparison of `runs` (label, source, bytes, findings) as a findings file: one finding per
/// run and headline number (each with a `setting` parameter) and the comparison detail.
pub fn compare(
    runs: &[(String, String, Vec<u8>, FindingsFile)],
    manifest: crate::evidence::RunManifest,
) -> Result<FindingsFile> {
    if runs.is_empty() {
        return Err(Error::Usage("compare needs at least one run".into()));
    }
    let rows: Vec<ComparedRun> = runs
        .iter()
        .map(|(l, s, b, f)| compared_run(l, s, b, f))
        .collect();
    let mut notes = Vec::new();
    let deltas: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.dp.as_ref().map(|d| d.setting.delta))
        .collect();
    let delta = match deltas.first() {
        Some(&d) if deltas.iter().all(|&x| x == d) => Some(d),
        Some(_) => {
            notes.push(format!(
                "the runs use different δ ({}); their ε are not comparable",
                deltas
                    .iter()
                    .map(|d| format!("{d:e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            None
        }
        None => None,
    };
    for r in &rows {
        if let Some(d) = r.dp.as_ref().filter(|d| !d.violations.is_empty()) {
            notes.push(format!(
                "{}: its DP audit is INCONSISTENT — {}",
                r.label,
                d.violations.join("; ")
            ));
        }
        if r.dp.is_none() {
            notes.push(format!(
                "{}: no DP section (not a phiprobe DP-SGD audit); only its attack numbers are compared",
                r.label
            ));
        }
    }
    let mut findings = Vec::new();
    for r in &rows {
        let tag = |f: Finding| f.with_param("setting", r.label.as_str());
        if let Some(d) = &r.dp {
            findings.push(tag(Finding::new(
                "compare",
                metric::DP_EPSILON,
                d.setting.epsilon,
            )));
            for e in &d.estimates {
                findings.push(tag(Finding::new(
                    "compare",
                    metric::DP_EPSILON_LB,
                    Some(e.value),
                )
                .with_param("instrument", e.instrument.as_str())
                .with_param("method", e.method_id.as_str())));
            }
            findings.push(tag(Finding::new(
                "compare",
                metric::UTILITY_VALIDATION_PERPLEXITY,
                d.validation_perplexity,
            )));
        }
        for a in &r.attacks {
            findings.push(tag(Finding::new("compare", metric::MIA_AUC, a.auc)
                .with_param("attack", a.attack.as_str())));
        }
    }
    let mut file = FindingsFile::new(manifest);
    file.findings = findings;
    file.comparison = Some(ComparisonDetail {
        runs: rows,
        delta,
        notes,
    });
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Point {
        Point {
            noise: 1.0,
            clip: 1.0,
            epochs: 4.0,
            batch: 16,
            lr: 3e-3,
            q: None,
        }
    }

    #[test]
    fn grid_is_the_product_in_order() {
        let g = parse_grid("noise=0,0.5,1,2; clip=1,2 ;epochs=4", base()).unwrap();
        assert_eq!(g.keys, vec!["noise", "clip", "epochs"]);
        assert_eq!(g.points.len(), 8);
        let got: Vec<(f64, f64)> = g.points.iter().map(|p| (p.noise, p.clip)).collect();
        assert_eq!(
            got,
            vec![
                (0.0, 1.0),
                (0.0, 2.0),
                (0.5, 1.0),
                (0.5, 2.0),
                (1.0, 1.0),
                (1.0, 2.0),
                (2.0, 1.0),
                (2.0, 2.0)
            ]
        );
        assert!(g.points.iter().all(|p| p.epochs == 4.0 && p.batch == 16));
        assert_eq!(g.points[2].label(&g.keys), "noise=0.5 clip=1 epochs=4");
        assert_eq!(g.points[2].folder(&g.keys), "noise-0.5_clip-1_epochs-4");
        let q = parse_grid("q=0.1;lr=1e-3,1e-5", base()).unwrap();
        assert_eq!(q.points[0].q, Some(0.1));
        assert_eq!(q.points[0].label(&q.keys), "q=0.1 lr=0.001");
        assert_eq!(q.points[1].folder(&q.keys), "q-0.1_lr-1e-5");
    }

    #[test]
    fn bad_grids_are_refused_with_the_reason() {
        for (g, want) in [
            ("", "empty"),
            ("noise", "key=v1"),
            ("sigma=1", "unknown grid key 'sigma'"),
            ("noise=1;noise=2", "twice"),
            ("noise=-1", "out of range"),
            ("noise=x", "not a number"),
            ("batch=1.5", "whole number"),
            ("q=0", "0 < q ≤ 1"),
            ("noise=1,1", "listed twice"),
            ("q=0.1;batch=16,32", "not both"),
        ] {
            let e = parse_grid(g, base()).unwrap_err();
            assert!(e.contains(want), "{g}: {e}");
        }
    }
}
