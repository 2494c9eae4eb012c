//! The DP-audit section of a run's report: the training setting and the accountant's ε, every
//! empirical ε with its method, confidence, canaries and threat model, the white-box mechanism
//! checks, and any inconsistency.

use super::doc::{Block, Section, num};
use crate::evidence::{DpDetail, EpsilonKind, FindingsFile};

fn r3(v: f64) -> String {
    num((v * 1000.0).round() / 1000.0)
}

/// ε for display: ∞ when there is no guarantee.
pub fn eps_text(e: Option<f64>) -> String {
    e.map_or_else(|| "∞ (σ = 0: no noise)".into(), r3)
}

/// The setting as report rows (shared with the comparison report).
pub fn setting_rows(d: &DpDetail) -> Vec<Vec<String>> {
    let s = &d.setting;
    vec![
        vec![
            "sampler".into(),
            format!(
                "{} (each record independently with probability q per step; empty batches are noised and counted)",
                s.sampler
            ),
        ],
        vec![
            "sampling rate q".into(),
            num((s.sample_rate * 1e6).round() / 1e6),
        ],
        vec!["noise multiplier σ".into(), num(s.noise)],
        vec!["clipping norm C".into(), num(s.clip)],
        vec![
            "steps".into(),
            format!("{} (round(epochs / q), {} epochs)", s.steps, num(s.epochs)),
        ],
        vec![
            "expected batch q·N".into(),
            format!("{} (public N = {})", r3(s.expected_batch), s.public_size),
        ],
        vec!["optimiser".into(), s.optimiser.clone()],
        vec!["δ".into(), format!("{:e}", s.delta)],
        vec!["accountant".into(), s.accountant.clone()],
        vec![
            "ε (accountant)".into(),
            match (s.epsilon, s.epsilon_classic, s.order) {
                (Some(e), Some(c), Some(o)) => format!(
                    "{} (optimal order {}; classic conversion {})",
                    r3(e),
                    num(o),
                    r3(c)
                ),
                _ => eps_text(None),
            },
        ],
        vec!["tokenizer trained on".into(), s.tokenizer.clone()],
        vec![
            "validation perplexity".into(),
            d.validation_perplexity.map_or("n/a".into(), |p| {
                format!(
                    "{} (loss {} nats/token)",
                    r3(p),
                    r3(d.validation_loss.unwrap_or(f64::NAN))
                )
            }),
        ],
    ]
}

/// The estimates as a table (shared with the comparison report).
pub fn estimate_table(d: &DpDetail) -> Block {
    Block::Table {
        header: vec![
            "instrument".into(),
            "method".into(),
            "kind".into(),
            "ε".into(),
            "ceiling".into(),
            "included / canaries".into(),
            "threat model".into(),
        ],
        rows: estimate_rows(d),
    }
}

/// The estimates as table rows.
fn estimate_rows(d: &DpDetail) -> Vec<Vec<String>> {
    d.estimates
        .iter()
        .map(|e| {
            vec![
                e.instrument.clone(),
                e.method_id.clone(),
                match e.kind {
                    EpsilonKind::Bound => {
                        format!("lower bound at {:.0}% confidence", 100.0 * e.confidence)
                    }
                    EpsilonKind::Estimate => "estimate (not a bound)".into(),
                },
                match e.interval {
                    Some((lo, hi)) => format!("{} [{}, {}]", r3(e.value), r3(lo), r3(hi)),
                    None => r3(e.value),
                },
                r3(e.ceiling),
                format!("{} of {}", e.included, e.canaries),
                e.threat_model.clone(),
            ]
        })
        .collect()
}

/// The section.
pub fn section(file: &FindingsFile) -> Option<Section> {
    let d = file.dp.as_ref()?;
    let mut blocks = vec![
        Block::Para(
            "The target was trained with DP-SGD by phiprobe. The accountant's ε is a guarantee (an upper bound on what any adversary can learn about one training record, at δ); the empirical ε below are what concrete attacks demonstrate — lower bounds at a stated confidence, or estimates. The safety net recomputes every lower bound at a stricter level (by default 0.1 %, split over the bounds) and fails the run when one exceeds the accountant's ε (recomputed from σ, q and the steps, not read from the record): that means a bug in the training, the accounting or the audit, or a chance event that rare. Formulas and oracles: reference/dp.md §3.".into(),
        ),
        Block::Table {
            header: vec!["setting".into(), "value".into()],
            rows: setting_rows(d),
        },
    ];
    if d.estimates.is_empty() {
        blocks.push(Block::Para(
            "No empirical ε: the target carries no audit canaries.".into(),
        ));
    } else {
        blocks.push(Block::Para(
            "Empirical ε. Canaries are included by independent fair coins (the one-run audit's requirement); scores are computed without looking at the coins; the ceiling is what the method would report for a perfect attack with the same counts. Gradient canaries are independent runs of the accountant's mechanism (disjoint coordinates, independent noise and sampling), so Clopper–Pearson over them is valid; text canaries share one run, so only the one-run bound applies to them.".into(),
        ));
        blocks.push(estimate_table(d));
        let mut methods: Vec<String> = Vec::new();
        for e in &d.estimates {
            let m = format!("{}: {}", e.method_id, e.method);
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        blocks.push(Block::List(methods));
    }
    if let Some(m) = &d.mechanism {
        blocks.push(Block::Para(format!(
            "White-box mechanism check ({}): over {} observations of left-out gradient canaries the noise has standard deviation {} C (σ = {}; z = {}) and mean {} (z = {}); over {} observations of included canaries the mean is {} (q = {}; z = {}). {} A |z| of {} or more would mean the clipping, sampling, normalisation or noise code does not do what the accountant assumes.",
            if m.passed { "consistent" } else { "INCONSISTENT" },
            num(m.out_observations as f64),
            r3(m.out_std),
            num(d.setting.noise),
            num((m.z[0] * 100.0).round() / 100.0),
            num((m.out_mean * 1e4).round() / 1e4),
            num((m.z[1] * 100.0).round() / 100.0),
            num(m.in_observations as f64),
            num((m.in_mean * 1e4).round() / 1e4),
            num((d.setting.sample_rate * 1e4).round() / 1e4),
            num((m.z[2] * 100.0).round() / 100.0),
            m.batch_z.map_or(String::new(), |z| format!(
                "The realised data batches have the mean Binomial(n, q) predicts (z = {}).",
                num((z * 100.0).round() / 100.0)
            )),
            num(m.limit),
        )));
    }
    if !d.violations.is_empty() {
        blocks.push(Block::Para("INCONSISTENT — the run failed:".into()));
        blocks.push(Block::List(d.violations.clone()));
    }
    if !d.notes.is_empty() {
        blocks.push(Block::List(d.notes.clone()));
    }
    Some(Section {
        title: "Differential privacy: accountant and empirical ε".into(),
        blocks,
    })
}
