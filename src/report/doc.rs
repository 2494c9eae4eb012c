//! `ReportDoc`: the report as plain blocks, built once from `findings.json` and rendered to
//! Markdown and HTML by the views in this module's siblings.

use super::chart::Figure;
use super::figures;
use crate::evidence::Metric;
use crate::evidence::metric;
use crate::evidence::{Finding, FindingsFile, Verdict};

/// A block of report content.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A paragraph of plain text.
    Para(String),
    /// A bulleted list.
    List(Vec<String>),
    /// A table.
    Table {
        /// Column headers.
        header: Vec<String>,
        /// Rows of cells.
        rows: Vec<Vec<String>>,
    },
    /// Preformatted text (configuration, commands).
    Code(String),
    /// A figure (drawn in HTML and PDF; Markdown shows the caption and points at the HTML).
    Figure {
        /// What to draw.
        figure: Box<Figure>,
        /// Caption.
        caption: String,
    },
}

impl Block {
    /// The figure with its caption, or a note saying why it could not be drawn.
    pub fn figure(figure: Result<Figure, String>, caption: impl Into<String>) -> Self {
        match figure {
            Ok(f) => Self::Figure {
                figure: Box::new(f),
                caption: caption.into(),
            },
            Err(e) => Self::Para(format!("(figure not drawn: {e})")),
        }
    }
}

/// A titled section.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Content.
    pub blocks: Vec<Block>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportDoc {
    /// Title.
    pub title: String,
    /// Sections in order.
    pub sections: Vec<Section>,
}

pub use crate::evidence::num;

/// A rate in the report's one convention: "8 of 54 (14.8 %)" (no percentage of nothing).
pub fn rate(k: u64, n: u64) -> String {
    if n == 0 {
        return format!("{} of {}", num(k as f64), num(n as f64));
    }
    format!(
        "{} of {} ({} %)",
        num(k as f64),
        num(n as f64),
        num(100.0 * k as f64 / n as f64)
    )
}

fn value_cell(f: &Finding) -> String {
    match f.value {
        Some(v) => num(v),
        None => "not computed".into(),
    }
}

fn params_cell(f: &Finding) -> String {
    f.params
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            serde_json::Value::Number(n) => {
                format!("{k}={}", n.as_f64().map_or(n.to_string(), num))
            }
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn in_set(f: &Finding, label: &str) -> bool {
    f.params
        .get("qi_set")
        .and_then(serde_json::Value::as_str)
        .is_none_or(|l| l == label)
}

/// The finding `metric` of QI set `label` (findings without a `qi_set` match every set).
pub fn find<'a>(file: &'a FindingsFile, label: &str, metric: Metric) -> Option<&'a Finding> {
    file.findings
        .iter()
        .find(|f| f.metric == metric && in_set(f, label))
}

fn value_of(file: &FindingsFile, label: &str, metric: Metric) -> Option<f64> {
    find(file, label, metric).and_then(|f| f.value)
}

/// Builds the report from the canonical findings; `extra` are the sections of probes that
/// render themselves (`Probe::view`), placed before the gate and the back matter.
///
/// The order is the reader's: the summary (verdict, forest plot), the determination's front
/// matter, what was covered, the results per analysis, the conditions and signature; then the
/// annexes (raw findings, histograms, methods, plan and hashes, glossary).
pub fn build(file: &FindingsFile, extra: Vec<Section>) -> ReportDoc {
    let mut sections = vec![super::summary::section(file)];
    sections.extend(super::determination::front(file));
    sections.push(super::summary::coverage(file));
    let results_from = sections.len();
    sections.push(overview(file));
    sections.extend(
        [
            super::membership::section(file),
            super::canary::section(file),
            super::extraction::section(file),
            super::inversion::section(file),
            super::dp::section(file),
        ]
        .into_iter()
        .flatten(),
    );
    for d in &file.reid {
        sections.extend(reid_sections(file, d));
    }
    sections.extend(extra);
    if let Some(g) = super::determination::gate_section(file) {
        sections.push(g);
    }
    let details = move_long_tables(&mut sections[results_from..]);
    sections.extend(super::determination::back(file));
    // Annexes: after the conclusion and signature.
    sections.extend(details);
    let mut raw = findings_section(file);
    raw.title = "Annex: Findings (every number at full precision is in findings.json)".into();
    sections.push(raw);
    sections.extend(super::membership::histograms(file));
    if !file.reid.is_empty() {
        sections.push(reid_method());
    }
    sections.push(provenance(file));
    sections.push(super::summary::glossary());
    ReportDoc {
        title: title(file),
        sections,
    }
}

/// Tables longer than this many rows move from the results to "Annex: Detailed tables", so
/// that the body reads in minutes; the body says where each went.
pub const BODY_TABLE_ROWS: usize = 12;

/// Moves every results table longer than [`BODY_TABLE_ROWS`] into one annex section.
fn move_long_tables(results: &mut [Section]) -> Option<Section> {
    let mut annex = Vec::new();
    for s in results.iter_mut() {
        for b in &mut s.blocks {
            if let Block::Table { rows, .. } = b
                && rows.len() > BODY_TABLE_ROWS
            {
                let n = rows.len();
                let table = std::mem::replace(
                    b,
                    Block::Para(format!(
                        "(A table of {n} rows is in \"Annex: Detailed tables\", under \"{}\".)",
                        s.title
                    )),
                );
                annex.push(Block::Para(format!("{}:", s.title)));
                annex.push(table);
            }
        }
    }
    (!annex.is_empty()).then(|| Section {
        title: "Annex: Detailed tables".into(),
        blocks: annex,
    })
}

/// "Results overview": the headline of every analysis and probe, and the gate's count.
fn overview(file: &FindingsFile) -> Section {
    let mut summary = Vec::new();
    for d in &file.reid {
        let l = d.label.as_str();
        let threshold = find(file, l, metric::REID_PROSECUTOR_RECORDS_AT_RISK)
            .and_then(|f| f.params.get("threshold"))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.09);
        let max = value_of(file, l, metric::REID_PROSECUTOR_MAX).unwrap_or(0.0);
        let avg = value_of(file, l, metric::REID_PROSECUTOR_AVG).unwrap_or(0.0);
        let at_risk = find(file, l, metric::REID_PROSECUTOR_RECORDS_AT_RISK);
        let n = value_of(file, l, metric::REID_PERSONS).unwrap_or(0.0);
        summary.push(Block::Para(format!(
            "[{}] Re-identification risk of {} ({} {}s) on the quasi-identifiers {}: maximum prosecutor risk {} (k = {}), average {}, {} of persons in classes whose risk exceeds the threshold t = {}.",
            d.label,
            d.dataset,
            num(n),
            d.unit,
            d.quasi_identifiers.join(", "),
            num(max),
            num(value_of(file, l, metric::REID_K).unwrap_or(0.0)),
            num(avg),
            at_risk
                .and_then(|f| f.value.map(|v| match f.counts { Some(c) => rate(c.k, c.n), None => format!("{} %", num(100.0 * v)) }))
                .unwrap_or_else(|| "n/a".into()),
            num(threshold),
        )));
        let verdict = if max > threshold {
            "The maximum risk exceeds the threshold: as it stands the data is not suitable for a public release under this threshold; generalise or suppress the quasi-identifiers, or restrict the release."
        } else {
            "The maximum risk is within the threshold."
        };
        summary.push(Block::Para(format!("[{}] {verdict}", d.label)));
    }
    if let Some(sh) = file
        .findings
        .iter()
        .find(|f| f.metric == metric::SAFEHARBOR_CATEGORIES_PRESENT)
        .and_then(|f| f.value)
        && sh > 0.0
    {
        summary.push(Block::Para(format!(
            "{} of the 18 Safe Harbor identifier categories are present (see the checklist below).",
            num(sh)
        )));
    }
    if let Some(b) = super::membership::summary(file) {
        summary.push(b);
    }
    if let Some(b) = super::canary::summary(file) {
        summary.push(b);
    }
    if let Some(b) = super::extraction::summary(file) {
        summary.push(b);
    }
    if let Some(b) = super::inversion::summary(file) {
        summary.push(b);
    }
    let failed = file
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fail)
        .count();
    if file.findings.iter().any(|f| f.threshold.is_some()) {
        summary.push(Block::Para(format!(
            "Policy gate: {} finding(s) breach their threshold.",
            failed
        )));
    }
    Section {
        title: "Results overview".into(),
        blocks: summary,
    }
}

/// "Findings": every finding with its interval, counts and verdict, and the caveats.
fn findings_section(file: &FindingsFile) -> Section {
    let rows: Vec<Vec<String>> = file
        .findings
        .iter()
        .map(|f| {
            vec![
                f.metric.to_string(),
                params_cell(f),
                value_cell(f),
                f.interval
                    .as_ref()
                    .map(|i| {
                        format!(
                            "[{}, {}] ({} {}%)",
                            num(i.lo),
                            num(i.hi),
                            i.method,
                            num(100.0 * i.level)
                        )
                    })
                    .unwrap_or_default(),
                f.counts
                    .map(|c| format!("{} of {}", num(c.k as f64), num(c.n as f64)))
                    .unwrap_or_default(),
                match f.verdict {
                    Verdict::Info => String::new(),
                    Verdict::Pass => {
                        format!("pass (threshold {})", num(f.threshold.unwrap_or(f64::NAN)))
                    }
                    Verdict::Warn => {
                        format!("warn (threshold {})", num(f.threshold.unwrap_or(f64::NAN)))
                    }
                    Verdict::Fail => {
                        format!("FAIL (threshold {})", num(f.threshold.unwrap_or(f64::NAN)))
                    }
                },
            ]
        })
        .collect();
    let caveats: Vec<String> = file
        .findings
        .iter()
        .flat_map(|f| f.caveats.iter().map(move |c| format!("{}: {c}", f.key())))
        .collect();
    let mut fblocks = vec![Block::Table {
        header: [
            "metric",
            "parameters",
            "value",
            "interval",
            "counts",
            "verdict",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }];
    if !caveats.is_empty() {
        fblocks.push(Block::Para("Caveats:".into()));
        fblocks.push(Block::List(caveats));
    }
    Section {
        title: "Findings".into(),
        blocks: fblocks,
    }
}

/// The sections of one quasi-identifier set's re-identification analysis.
///
/// Kept whole: one QI set's sections, their blocks in reading order.
fn reid_sections(file: &FindingsFile, d: &crate::evidence::ReidDetail) -> Vec<Section> {
    let mut sections = Vec::new();
    let l = d.label.as_str();
    let multi = file.reid.len() > 1;
    let suffix = if multi {
        format!(" [{l}]")
    } else {
        String::new()
    };
    let k_rule_k = find(file, l, metric::REID_K_ANONYMITY_VIOLATIONS)
        .and_then(|f| f.params.get("k"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(11);
    let threshold = find(file, l, metric::REID_PROSECUTOR_RECORDS_AT_RISK)
        .and_then(|f| f.params.get("threshold"))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.09);
    let sensitive = if d.sensitive.is_empty() {
        "none".to_owned()
    } else {
        d.sensitive.join(", ")
    };
    sections.push(Section {
        title: format!("Settings{suffix}"),
        blocks: vec![
            Block::Para(format!(
                "Quasi-identifiers: {}. Sensitive attributes: {sensitive}.",
                d.quasi_identifiers.join(", ")
            )),
            Block::Table {
                header: ["setting", "value", "meaning"].map(String::from).to_vec(),
                rows: d
                    .settings
                    .iter()
                    .map(|s| vec![s.name.clone(), s.value.clone(), s.note.clone()])
                    .collect(),
            },
        ],
    });
    let mut dist = Vec::new();
    let buckets = figures::size_buckets(&d.class_sizes);
    dist.push(Block::Table {
        header: ["class size", "classes", "persons"]
            .map(String::from)
            .to_vec(),
        rows: buckets
            .iter()
            .map(|b| vec![b.0.to_owned(), num(b.2 as f64), num(b.1 as f64)])
            .collect(),
    });
    dist.push(Block::figure(
        Ok(figures::class_size_histogram(d, k_rule_k)),
        format!("Persons by class size; red: classes smaller than k = {k_rule_k}."),
    ));
    dist.push(Block::Table {
        header: ["risk band (lo, hi]", "persons"].map(String::from).to_vec(),
        rows: d
            .risk_bins
            .iter()
            .map(|b| {
                vec![
                    format!("({}, {}]", num(b.lo), num(b.hi)),
                    num(b.persons as f64),
                ]
            })
            .collect(),
    });
    dist.push(Block::figure(
        Ok(figures::risk_distribution(d, threshold)),
        format!(
            "Persons by prosecutor risk; red: bands at or above t = {}.",
            num(threshold)
        ),
    ));
    if let Some(c) = find(file, l, metric::REID_JOURNALIST_RECORDS_AT_RISK)
        .into_iter()
        .flat_map(|f| &f.caveats)
        .find(|c| c.starts_with("conflicts with population uniqueness"))
    {
        dist.push(Block::Para(format!(
            "Journalist risk and population uniqueness disagree: the journalist finding {c}."
        )));
    }
    sections.push(Section {
        title: format!("Equivalence classes and risk distribution{suffix}"),
        blocks: dist,
    });
    sections.push(Section {
        title: format!("Smallest classes (pseudonymised){suffix}"),
        blocks: vec![
            Block::Para("Class keys are shown only as salted hashes; the salt derives from the data itself, so the hashes cannot be reversed without it.".into()),
            Block::Table {
                header: ["class key (salted hash)", "persons", "risk", "distinct sensitive values"].map(String::from).to_vec(),
                rows: d.worst_classes.iter().map(|c| vec![c.key_hash.clone(), num(c.size as f64), num(c.risk), c.distinct_sensitive.map(|x| num(x as f64)).unwrap_or_default()]).collect(),
            },
        ],
    });
    if !d.diversity.is_empty() {
        sections.push(Section {
            title: format!("Attribute disclosure (l-diversity, t-closeness, δ-disclosure){suffix}"),
            blocks: vec![Block::Table {
                header: [
                    "attribute",
                    "values",
                    "distinct l",
                    "entropy l",
                    "recursive l (c)",
                    "t (equal)",
                    "t (ordered)",
                    "δ (log base)",
                    "homogeneous classes / persons",
                ]
                .map(String::from)
                .to_vec(),
                rows: d
                    .diversity
                    .iter()
                    .map(|x| {
                        vec![
                            x.attribute.clone(),
                            num(x.distinct_values as f64),
                            num(x.distinct_l as f64),
                            num(x.entropy_l),
                            format!("{} ({})", num(x.recursive_l as f64), num(x.recursive_c)),
                            num(x.t_equal),
                            x.t_ordered
                                .map(num)
                                .unwrap_or_else(|| "n/a (not numeric)".into()),
                            format!("{} ({})", num(x.delta_disclosure), num(x.delta_log_base)),
                            format!(
                                "{} / {}",
                                num(x.homogeneous_classes as f64),
                                num(x.homogeneous_persons as f64)
                            ),
                        ]
                    })
                    .collect(),
            }],
        });
    }
    if !d.safe_harbor.is_empty() {
        sections.push(Section {
            title: "Safe Harbor checklist (45 CFR 164.514(b)(2))".into(),
            blocks: vec![Block::Table {
                header: ["#", "category", "status", "evidence"]
                    .map(String::from)
                    .to_vec(),
                rows: d
                    .safe_harbor
                    .iter()
                    .map(|i| {
                        vec![
                            i.number.to_string(),
                            i.category.clone(),
                            i.status.clone(),
                            i.evidence.join("; "),
                        ]
                    })
                    .collect(),
            }],
        });
    }
    sections
}

/// "Re-identification method": the definitions and estimators behind the numbers.
fn reid_method() -> Section {
    Section {
        title: "Re-identification method".into(),
        blocks: vec![Block::List(vec![
            "Equivalence classes group persons with identical quasi-identifier values; prosecutor risk of a person is 1/f for a class of f persons; the average is J/n (record-weighted), as in ARX and El Emam (2013).".into(),
            "Records at risk count persons whose risk 1/f exceeds the threshold t strictly; k-anonymity violations count persons in classes smaller than k(t) under the stated k rule.".into(),
            "Population uniqueness (fractions of the population N = round(n/π)): Zayatz (1991), Pitman (Hoshino 2001), SNB (Chen & Keller-McNulty 1998), chosen by Dankar et al.'s (2012) rule: Pitman when π ≤ 0.1, otherwise the smaller of Zayatz and SNB.".into(),
            "Journalist and marketer risk with a sampling fraction use Benedetti & Franconi's (1998) E[1/F | f] with F = f/π; with a population table they use the exact F per class.".into(),
            "l-diversity (Machanavajjhala et al. 2006): distinct, entropy (exp of the smallest class entropy, natural log) and recursive (c,l); t-closeness (Li et al. 2007): total variation (equal distance) and ordered EMD for numeric attributes; δ-disclosure (Brickell & Shmatikov 2008) with the stated log base.".into(),
            "Proportions carry exact Clopper–Pearson intervals; they treat the persons as a sample of a larger population and do not widen prosecutor risk, which is exact for the data at hand.".into(),
        ])],
    }
}

/// "Appendix C. Provenance": the run, the tool and every input's hash.
fn provenance(file: &FindingsFile) -> Section {
    let m = &file.manifest;
    let mut mrows = vec![
        vec!["run".into(), m.run_id.clone()],
        vec!["command".into(), m.command.clone()],
        vec![
            "phiprobe".into(),
            format!(
                "{}{}",
                m.tool_version,
                m.git_commit
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
        ],
        vec!["seed".into(), m.seed.to_string()],
        vec!["schema".into(), m.schema_version.to_string()],
        vec!["started".into(), m.started_at.clone()],
    ];
    for i in &m.inputs {
        mrows.push(vec![
            format!("input {}", i.path),
            format!("sha256 {} ({} bytes)", i.sha256, num(i.bytes as f64)),
        ]);
    }
    Section {
        title: "Appendix C. Provenance".into(),
        blocks: vec![Block::Table {
            header: vec!["item".into(), "value".into()],
            rows: mrows,
        }],
    }
}

/// The report's title: the release's, else the dataset's, else the run id.
fn title(file: &FindingsFile) -> String {
    let m = &file.manifest;
    let draft = if super::determination::missing_facts(file).is_empty() {
        ""
    } else {
        "DRAFT — "
    };
    format!(
        "{draft}Expert Determination evidence: {}",
        file.determination
            .as_ref()
            .and_then(|d| d.release.title.clone())
            .unwrap_or_else(|| file
                .reid
                .first()
                .map_or(m.run_id.clone(), |d| d.dataset.clone()))
    )
}

#[cfg(test)]
mod tests {
    use super::{num, rate};

    #[test]
    fn number_formatting() {
        assert_eq!(num(30162.0), "30,162");
        assert_eq!(num(0.6465751607983555), "0.647");
        assert_eq!(num(0.00012345), "0.000123");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1234.5), "1,235");
        assert_eq!(num(0.0999999), "0.1");
        assert_eq!(crate::evidence::num_full(0.6465751607983555), "0.646575");
        assert_eq!(rate(8, 54), "8 of 54 (14.8 %)");
        assert_eq!(rate(54, 54), "54 of 54 (100 %)");
        assert_eq!(rate(0, 0), "0 of 0");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.09), "0.09");
        assert_eq!(num(f64::NAN), "n/a");
        assert_eq!(num(-1234.0), "-1,234");
    }
}
