//! The report's opening and reference sections: the two-page summary (verdict or DRAFT, a
//! forest plot of every criterion against its limit, what drives each failure and what would
//! resolve each open criterion), the coverage matrix (EDPB Opinion 28/2024's attacks × NIST AI
//! 100-2 E2025's privacy classes × attacker knowledge × what ran × status), the motivated
//! intruder scenario (ICO) and the glossary every term of the report links to.

use super::chart::{Axis, BLACK, Corner, Figure, Key, Marker, Rgb};
use super::determination::{Criterion, criteria, verdict};
use super::doc::{Block, Section};
use crate::evidence::{FindingsFile, metric};

const GREEN: Rgb = Rgb(44, 160, 44);
const RED: Rgb = Rgb(214, 39, 40);
const GREY: Rgb = Rgb(127, 127, 127);

fn status(c: &Criterion) -> &'static str {
    match c.met {
        Some(true) => "met",
        Some(false) => "NOT MET",
        None => "inconclusive / not measured",
    }
}

/// "Summary": the verdict, the forest plot, one line per criterion with what drives or would
/// resolve it, and the motivated-intruder scenario.
pub fn section(file: &FindingsFile) -> Section {
    let c = criteria(file);
    let (word, text) = verdict(file, &c);
    let mut blocks = vec![Block::Para(format!("Verdict: {word}. {text}"))];
    if let Some(f) = forest(&c) {
        blocks.push(Block::figure(
            Ok(f),
            "Each criterion's headline number as a multiple of its limit (log scale; 1 = the limit, left of it is safe), with its interval where it has one: green met, red not met, grey inconclusive. Criteria without a number (direct identifiers, canaries) are in the table.",
        ));
    }
    blocks.push(Block::Table {
        header: [
            "#",
            "criterion",
            "measured",
            "status",
            "what drives it / what would resolve it",
        ]
        .map(String::from)
        .to_vec(),
        rows: c
            .iter()
            .enumerate()
            .map(|(i, c)| {
                vec![
                    format!("C{}", i + 1),
                    c.name.clone(),
                    c.measured.clone(),
                    status(c).into(),
                    c.resolve.clone().unwrap_or_else(|| "—".into()),
                ]
            })
            .collect(),
    });
    blocks.push(Block::Para(intruder(file)));
    Section {
        title: "Summary".into(),
        blocks,
    }
}

/// The forest plot: every criterion with a number, as a multiple of its limit.
pub fn forest(c: &[Criterion]) -> Option<Figure> {
    let rows: Vec<(usize, &Criterion, &super::determination::Forest)> = c
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.forest.as_ref().map(|f| (i, c, f)))
        .filter(|(_, _, f)| f.limit > 0.0 && f.value.is_finite())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let (lo, hi) = (1e-2, 1e2);
    let clamp = |v: f64| v.clamp(lo, hi);
    // Top row first: categories are numbered from the bottom.
    let names: Vec<String> = rows
        .iter()
        .rev()
        .map(|(i, _, f)| format!("C{} {}", i + 1, f.label))
        .collect();
    let n = rows.len();
    let mut fig = Figure::new(
        "Criteria against their limits",
        (760.0, 90.0 + 34.0 * n as f64),
        Axis::log("measured ÷ limit", lo, hi).grid(),
        Axis::categories("", names),
    );
    fig.legend_at = Corner::LowerRight;
    let limit = BLACK.stroke(1.0).dashed();
    fig.line(vec![(1.0, -0.5), (1.0, n as f64 - 0.5)], limit);
    for (row, (_, c, f)) in rows.iter().enumerate() {
        let y = (n - 1 - row) as f64;
        let colour = match c.met {
            Some(true) => GREEN,
            Some(false) => RED,
            None => GREY,
        };
        if let Some((a, b)) = f.interval {
            fig.line(
                vec![(clamp(a / f.limit), y), (clamp(b / f.limit), y)],
                colour.stroke(2.0),
            );
        }
        fig.markers(
            vec![(clamp(f.value / f.limit), y)],
            Marker::Circle,
            5.0,
            colour.fill(),
        );
    }
    fig.key("limit", Key::Line(limit))
        .key("met", Key::Marker(Marker::Circle, GREEN.fill()))
        .key("not met", Key::Marker(Marker::Circle, RED.fill()))
        .key("inconclusive", Key::Marker(Marker::Circle, GREY.fill()));
    Some(fig)
}

/// The ICO's motivated intruder, made concrete from the threat model and what ran.
fn intruder(file: &FindingsFile) -> String {
    let d = file.determination.clone().unwrap_or_default();
    let who = d
        .release
        .recipients
        .clone()
        .unwrap_or_else(|| "the recipients (not supplied)".into());
    let how = d.release.model.clone().unwrap_or_else(|| "public".into());
    let sources = if d.threat.external_sources.is_empty() {
        "whatever public records are reasonably available (not supplied: list them in determination.toml)".to_owned()
    } else {
        d.threat.external_sources.join(", ")
    };
    let qis: Vec<String> = file
        .reid
        .iter()
        .map(|r| r.quasi_identifiers.join(", "))
        .collect();
    let knows = if qis.is_empty() {
        "a patient's quasi-identifiers".to_owned()
    } else {
        format!("a patient's {}", qis.join(" or "))
    };
    let ran = |m| file.findings.iter().any(|f| f.metric == m);
    let mut can = Vec::new();
    if ran(metric::MIA_AUC) {
        can.push("query the model with records they hold to learn whether a patient was in its training data (membership inference)");
    }
    if ran(metric::EXTRACTION_RATE) || ran(metric::EXTRACTION_EXCESS) {
        can.push("prompt it to regurgitate training text and identifiers (extraction)");
    }
    if ran(metric::INFERENCE_TOP1) {
        can.push("ask it for a known patient's other fields and link the answers to the release (attribute inference and linkage)");
    }
    if ran(metric::CANARY_EXPOSURE) {
        can.push("search for secrets it memorised verbatim (the planted canaries measure this)");
    }
    let can = if can.is_empty() {
        "link the released records to those sources on the quasi-identifiers".to_owned()
    } else {
        format!(
            "link the released records to those sources on the quasi-identifiers, and {}",
            can.join("; ")
        )
    };
    format!(
        "Motivated intruder (ICO, Anonymisation guidance, 2025): a person with no specialist skills or insider knowledge, but determined to identify someone in the data, who is among the recipients ({who}; release model: {how}), holds {sources}, and knows {knows}. Such a person could {can}. The criteria above measure how far each route gets; none assumes the intruder stops at the first failure."
    )
}

/// One row of the coverage matrix.
struct Row {
    edpb: &'static str,
    nist: &'static str,
    knowledge: &'static str,
    ran: String,
    result: String,
    status: String,
}

fn criterion_status<'a>(c: &'a [Criterion], prefix: &str) -> Option<&'a Criterion> {
    c.iter().find(|c| c.name.starts_with(prefix))
}

/// "Coverage": what was and was not tested, by the attack taxonomies a reviewer checks.
///
/// Kept whole: one row per attack of EDPB Opinion 28/2024, each a few lines from the findings.
pub fn coverage(file: &FindingsFile) -> Section {
    let c = criteria(file);
    let attacks = |m| -> Vec<String> {
        let mut v: Vec<String> = file
            .findings
            .iter()
            .filter(|f| f.metric == m)
            .filter_map(|f| {
                f.params
                    .get("attack")
                    .and_then(|a| a.as_str())
                    .map(String::from)
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mia = attacks(metric::MIA_AUC);
    let black: Vec<&String> = mia
        .iter()
        .filter(|a| ["loss", "zlib", "min_k", "min_k_pp"].contains(&a.as_str()))
        .collect();
    let refd: Vec<&String> = mia
        .iter()
        .filter(|a| !["loss", "zlib", "min_k", "min_k_pp"].contains(&a.as_str()))
        .collect();
    let st = |prefix: &str| {
        criterion_status(&c, prefix).map_or_else(|| "not run".to_owned(), |c| status(c).to_owned())
    };
    let measured = |prefix: &str| {
        criterion_status(&c, prefix).map_or_else(|| "—".to_owned(), |c| c.measured.clone())
    };
    let list = |v: &[&String]| {
        if v.is_empty() {
            "not run".to_owned()
        } else {
            v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        }
    };
    let has = |m| file.findings.iter().any(|f| f.metric == m);
    let rows = vec![
        Row {
            edpb: "Membership inference",
            nist: "Membership inference",
            knowledge: "black-box (output probabilities)",
            ran: list(&black),
            result: measured("Membership"),
            status: if black.is_empty() { "not run".into() } else { st("Membership") },
        },
        Row {
            edpb: "Membership inference",
            nist: "Membership inference",
            knowledge: "reference models (shadow / reference training)",
            ran: list(&refd),
            result: if refd.is_empty() { "—".into() } else { "in the membership criterion's tests".into() },
            status: if refd.is_empty() { "not run".into() } else { st("Membership") },
        },
        Row {
            edpb: "Attribute inference",
            nist: "Data reconstruction (partial: attributes)",
            knowledge: "black-box, the patient's other fields known",
            ran: if has(metric::INFERENCE_TOP1) { "inversion probe: top-1/top-k against prior and control arms".into() } else { "not run".into() },
            result: measured("Attribute inference"),
            status: st("Attribute inference"),
        },
        Row {
            edpb: "Extraction / regurgitation",
            nist: "Data reconstruction (memorised training data)",
            knowledge: "black-box (generation)",
            ran: [
                has(metric::EXTRACTION_RATE).then_some("prefix extraction"),
                has(metric::CANARY_EXPOSURE).then_some("canary exposure"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
            result: format!("{}; {}", measured("Extraction"), measured("Memorisation")),
            status: format!("extraction {}; canaries {}", st("Extraction"), st("Memorisation")),
        },
        Row {
            edpb: "Model inversion",
            nist: "Data reconstruction (model inversion)",
            knowledge: "black-box + the release's quasi-identifiers",
            ran: if has(metric::LINKAGE_IDENTIFICATION_MAX) { "linkage of the model's answers to the release".into() } else { "not run".into() },
            result: measured("The model's added"),
            status: st("The model's added"),
        },
        Row {
            edpb: "Reconstruction",
            nist: "Data reconstruction",
            knowledge: "black-box, quasi-identifiers as prompt",
            ran: if has(metric::RECONSTRUCTION_RATE) { "beam-decoded reconstruction from quasi-identifier prompts".into() } else { "not run".into() },
            result: if has(metric::RECONSTRUCTION_RATE) { "see Model inversion and identification".into() } else { "—".into() },
            status: if has(metric::RECONSTRUCTION_RATE) { "measured; judged with attribute inference".into() } else { "not run".into() },
        },
        Row {
            edpb: "—",
            nist: "Membership inference / data reconstruction",
            knowledge: "white-box (weights, gradients)",
            ran: if has(metric::DP_EPSILON_LB) && file.findings.iter().any(|f| f.probe == "dp_audit") { "DP audit (planted canaries, one training run)".into() } else { "not run".into() },
            result: "—".into(),
            status: "not a criterion: white-box attacks bound what any attacker could do; black-box results above are what a recipient of the model can do".into(),
        },
        Row {
            edpb: "—",
            nist: "Property inference; model extraction",
            knowledge: "—",
            ran: "not run".into(),
            result: "—".into(),
            status: "out of scope: they concern properties of the data set as a whole or the model itself, not whether a patient can be identified".into(),
        },
    ];
    Section {
        title: "Coverage of attacks".into(),
        blocks: vec![
            Block::Para("What this run tested, by the attacks EDPB Opinion 28/2024 (on AI models and personal data, §§ 38–43) asks a controller to consider and NIST AI 100-2 E2025's privacy-attack classes, by what the attacker is assumed to know. \"not run\" is a gap in the evidence, not a pass.".into()),
            Block::Table {
                header: ["EDPB attack", "NIST AI 100-2 class", "attacker knowledge", "what ran", "result", "status"]
                    .map(String::from)
                    .to_vec(),
                rows: rows
                    .into_iter()
                    .map(|r| {
                        vec![
                            r.edpb.into(),
                            r.nist.into(),
                            r.knowledge.into(),
                            if r.ran.is_empty() { "not run".into() } else { r.ran },
                            r.result,
                            r.status,
                        ]
                    })
                    .collect(),
            },
        ],
    }
}

/// Every term a reader meets, in one plain sentence each: `(term, anchor, key, definition)`;
/// `key` is the text whose first use in the report links to the entry (HTML and Markdown).
pub const GLOSSARY: &[(&str, &str, &str, &str)] = &[
    (
        "AUC",
        "auc",
        "AUC",
        "The probability that an attack scores a random member above a random non-member: 0.5 is guessing, 1 is perfect.",
    ),
    (
        "TPR at FPR",
        "tpr-at-fpr",
        "TPR",
        "The share of members an attack catches (true-positive rate) while wrongly accusing at most the given share of non-members (false-positive rate); at FPR 0.1 % it is the attack that matters for individuals.",
    ),
    (
        "Min-K%",
        "min-k",
        "Min-K%",
        "A membership score: the mean of the lowest K % of a text's token log-probabilities, since unseen text has a few very unlikely tokens.",
    ),
    (
        "Min-K%++",
        "min-k-pp",
        "Min-K%++",
        "Min-K% with each token's log-probability standardised by the mean and spread of the model's distribution at that position.",
    ),
    (
        "zlib",
        "zlib",
        "zlib",
        "A membership score: the model's log-likelihood divided by the text's zlib-compressed length, discounting text that is simply repetitive.",
    ),
    (
        "LiRA online/offline",
        "lira",
        "LiRA",
        "The likelihood-ratio attack: compares the target's score for a record with Gaussians fitted to reference models trained with (online) or only without (offline) that record.",
    ),
    (
        "RMIA γ",
        "rmia",
        "RMIA",
        "The relative membership inference attack: how often the record's likelihood ratio against reference models beats that of population records by a factor γ.",
    ),
    (
        "reference attack",
        "reference",
        "reference attack",
        "A membership score: the target's log-likelihood minus a reference model's, removing how easy the text is in general.",
    ),
    (
        "ε lower bound",
        "epsilon",
        "ε lower bound",
        "The smallest differential-privacy ε the training could have, given what the attack achieved; a large lower bound rules out a strong privacy guarantee.",
    ),
    (
        "Clopper–Pearson",
        "clopper-pearson",
        "Clopper–Pearson",
        "An exact confidence interval for a proportion from k successes in n trials.",
    ),
    (
        "Newcombe",
        "newcombe",
        "Newcombe",
        "A confidence interval for the difference of two proportions built from each proportion's score interval.",
    ),
    (
        "Bonferroni",
        "bonferroni",
        "Bonferroni",
        "Holding each of m tests to confidence 1 − α/m so that all hold together at 1 − α; used before any criterion is called met.",
    ),
    (
        "cluster bootstrap",
        "cluster-bootstrap",
        "cluster bootstrap",
        "A bootstrap that resamples whole patients rather than records, so a patient's correlated records do not make intervals too narrow.",
    ),
    (
        "patient as the unit",
        "unit",
        "unit of privacy",
        "Membership is assigned per patient: patient-level scores aggregate a patient's records (maximum: the attacker's best record; mean) and every judged interval counts patients.",
    ),
    (
        "exposure",
        "exposure",
        "exposure",
        "How many bits of a planted secret the model gives away: log₂ of the number of candidate secrets minus log₂ of the canary's rank among them.",
    ),
    (
        "skew-normal",
        "skew-normal",
        "skew-normal",
        "A bell curve with a tilt, fitted to the reference secrets' scores to extrapolate a canary's rank beyond those sampled; capped at the exact search's bound.",
    ),
    (
        "canary",
        "canary",
        "canary",
        "A synthetic secret planted in training a known number of times, to measure memorisation without exposing real data.",
    ),
    (
        "residual risk",
        "residual-risk",
        "residual risk",
        "Anonymeter's measure: how much better an attack succeeds on members than on a control of non-members, scaled to the room left above the control.",
    ),
    (
        "prosecutor risk",
        "prosecutor",
        "prosecutor risk",
        "1/f for a person known to be in the data, where f is the size of their equivalence class on the quasi-identifiers.",
    ),
    (
        "journalist risk",
        "journalist",
        "journalist risk",
        "The risk for a target known only to be in the population: 1/F, with F the class size in the population.",
    ),
    (
        "marketer risk",
        "marketer",
        "marketer risk",
        "The expected share of the data an intruder re-identifies by linking everyone.",
    ),
    (
        "population uniqueness",
        "uniqueness",
        "population uniqueness",
        "The estimated share of the population unique on the quasi-identifiers (Zayatz, Pitman, SNB estimators).",
    ),
    (
        "k-anonymity",
        "k-anonymity",
        "k-anonymity",
        "Every person shares their quasi-identifiers with at least k − 1 others; here k = ⌈1/t⌉ for the threshold t.",
    ),
    (
        "l-diversity",
        "l-diversity",
        "l-diversity",
        "Every equivalence class holds at least l different values of a sensitive attribute.",
    ),
    (
        "t-closeness",
        "t-closeness",
        "t-closeness",
        "Every class's distribution of a sensitive attribute is within distance t of the whole data's.",
    ),
    (
        "added identification risk",
        "added-risk",
        "added identification risk",
        "A patient's identification probability with the model's answers minus the release alone's 1/f, never negative since the intruder can ignore the model.",
    ),
    (
        "Safe Harbor",
        "safe-harbor",
        "Safe Harbor",
        "HIPAA's de-identification by removing 18 identifier categories (45 CFR 164.514(b)(2)); here also a transform keeping years, ZIP3 and ages under 90.",
    ),
    (
        "Expert Determination",
        "expert-determination",
        "Expert Determination",
        "HIPAA's de-identification by an expert's determination that the risk of identification is very small (45 CFR 164.514(b)(1)).",
    ),
    (
        "motivated intruder",
        "intruder",
        "Motivated intruder",
        "The ICO's test: a person without specialist skills but determined to identify someone, with reasonably available resources.",
    ),
    (
        "DRAFT",
        "draft",
        "DRAFT",
        "A report missing facts only the organisation or expert can supply: it gives measurements, never a conclusion.",
    ),
];

/// The glossary's section title (the renderers link first uses of its terms to it).
pub const GLOSSARY_TITLE: &str = "Annex: Glossary";

/// "Glossary": one sentence per term.
pub fn glossary() -> Section {
    Section {
        title: GLOSSARY_TITLE.into(),
        blocks: vec![Block::Table {
            header: vec!["term".into(), "meaning".into()],
            rows: GLOSSARY
                .iter()
                .map(|(t, _, _, d)| vec![(*t).into(), (*d).into()])
                .collect(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forest_plots_each_numbered_criterion_against_its_limit() {
        let c = vec![
            Criterion {
                name: "a".into(),
                met: Some(false),
                forest: Some(super::super::determination::Forest {
                    label: "risk".into(),
                    value: 1.0,
                    interval: None,
                    limit: 0.09,
                }),
                ..Criterion::default()
            },
            Criterion {
                name: "b".into(),
                met: None,
                ..Criterion::default()
            },
            Criterion {
                name: "c".into(),
                met: Some(true),
                forest: Some(super::super::determination::Forest {
                    label: "tpr".into(),
                    value: 0.0,
                    interval: Some((0.0, 0.004)),
                    limit: 0.01,
                }),
                ..Criterion::default()
            },
        ];
        let f = forest(&c).unwrap();
        // Rows numbered as in the table, the first at the top.
        assert_eq!(
            f.y.categories,
            vec!["C3 tpr".to_owned(), "C1 risk".to_owned()]
        );
        let svg = super::super::chart::svg(&f);
        assert!(svg.contains("measured ÷ limit"));
        assert!(forest(&c[1..2]).is_none());
        assert_eq!(super::super::doc::num(1.0 / 0.09), "11.1");
    }

    #[test]
    fn every_glossary_anchor_is_unique() {
        let mut a: Vec<&str> = GLOSSARY.iter().map(|g| g.1).collect();
        for g in GLOSSARY {
            assert!(!g.2.is_empty(), "{} has a key", g.0);
        }
        a.sort_unstable();
        let n = a.len();
        a.dedup();
        assert_eq!(a.len(), n);
    }
}
