//! Re-identification risk: equivalence classes, prosecutor / journalist / marketer risk,
//! sample and population uniqueness, l-diversity, t-closeness, δ-disclosure and the Safe
//! Harbor checklist. Definitions and oracles: reference/reid.md (ARX, sdcMicro, pyCANON).
//! Linking model leakage to identity risk: [`linkage`].

pub mod classes;
pub mod diversity;
pub mod linkage;
pub mod population;
pub mod safe_harbor;
pub mod sample;

pub use classes::{Classes, MissingPolicy, classify};
pub use population::{PopulationModel, PopulationUniqueness, population_uniqueness};
pub use sample::{KRule, Prosecutor, prosecutor};

use crate::data::{Column, Dataset, MISSING};
use crate::error::{Error, Result};
use crate::evidence::Metric;
use crate::evidence::metric;
use crate::evidence::{
    ClassSummary, ColumnRole, DiversitySummary, Finding, ReidDetail, RiskBin, Setting,
};
use crate::stats::clopper_pearson;
use serde::Serialize;
use std::path::PathBuf;

const PROBE: &str = "risk";

/// Settings of a risk analysis; every one is reported.
#[derive(Debug, Clone, Serialize)]
pub struct RiskSettings {
    /// Label of the QI set, attached to every finding as the `qi_set` parameter.
    pub label: String,
    /// Quasi-identifiers.
    pub qi: Vec<String>,
    /// Sensitive attributes.
    pub sensitive: Vec<String>,
    /// Identification-risk threshold t (e.g. 0.09).
    pub threshold: f64,
    /// Mapping from t to a minimum class size k(t).
    pub k_rule: KRule,
    /// Treatment of missing QI values.
    pub missing: MissingPolicy,
    /// Sampling fraction π = n / N, for population estimates.
    pub sampling_fraction: Option<f64>,
    /// A population table with the same QI columns (one row per person).
    pub population_file: Option<PathBuf>,
    /// Confidence level of intervals.
    pub confidence: f64,
    /// c of recursive (c, l)-diversity.
    pub recursive_c: f64,
    /// Log base of δ-disclosure.
    pub delta_log_base: f64,
    /// Run the Safe Harbor checklist.
    pub safe_harbor: bool,
    /// Formulas of the SNB estimator.
    pub snb: population::SnbVariant,
}

impl Default for RiskSettings {
    fn default() -> Self {
        Self {
            label: "default".into(),
            qi: Vec::new(),
            sensitive: Vec::new(),
            threshold: 0.09,
            k_rule: KRule::Strict,
            missing: MissingPolicy::Conservative,
            sampling_fraction: None,
            population_file: None,
            confidence: 0.95,
            recursive_c: 2.0,
            delta_log_base: 2.0,
            safe_harbor: true,
            snb: population::SnbVariant::Derived,
        }
    }
}

/// The outcome of a risk analysis.
#[derive(Debug, Clone)]
pub struct RiskAnalysis {
    /// Headline numbers.
    pub findings: Vec<Finding>,
    /// Tables for the report.
    pub detail: ReidDetail,
    /// Hashes of extra inputs read (population file).
    pub extra_inputs: Vec<crate::evidence::FileHash>,
}

fn check_settings(s: &RiskSettings) -> Result<()> {
    if s.qi.is_empty() {
        return Err(Error::Usage(
            "no quasi-identifiers: pass --qi a,b,… or mark columns role = \"quasi\" in the card"
                .into(),
        ));
    }
    if !(s.threshold > 0.0 && s.threshold <= 1.0) {
        return Err(Error::Usage(format!(
            "--threshold must be in (0, 1], got {}",
            s.threshold
        )));
    }
    if let Some(pi) = s.sampling_fraction
        && !(pi > 0.0 && pi <= 1.0)
    {
        return Err(Error::Usage(format!(
            "--sampling-fraction must be in (0, 1], got {pi}"
        )));
    }
    if s.sampling_fraction.is_some() && s.population_file.is_some() {
        return Err(Error::Usage(
            "give either --sampling-fraction or --population-file, not both".into(),
        ));
    }
    if !(s.confidence > 0.0 && s.confidence < 1.0) {
        return Err(Error::Usage(format!(
            "--confidence must be in (0, 1), got {}",
            s.confidence
        )));
    }
    if !(s.recursive_c > 0.0
        && s.recursive_c.is_finite()
        && s.delta_log_base > 1.0
        && s.delta_log_base.is_finite())
    {
        return Err(Error::Usage(
            "recursive c must be > 0 and the δ log base > 1".into(),
        ));
    }
    Ok(())
}

/// Fixed bins of per-person prosecutor risk for the distribution plot: (lo, hi].
const RISK_EDGES: [f64; 9] = [0.0, 0.01, 0.05, 0.09, 0.1, 0.2, 1.0 / 3.0, 0.5, 1.0];

fn proportion(metric: Metric, k: u64, n: u64, confidence: f64) -> Finding {
    let value = if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let (lo, hi) = clopper_pearson(k, n, confidence);
    Finding::new(PROBE, metric, Some(value))
        .with_counts(k, n)
        .with_interval(confidence, lo, hi, "clopper-pearson")
}

/// Runs the analysis on an opened dataset.
pub fn analyze(ds: &Dataset, s: &RiskSettings) -> Result<RiskAnalysis> {
    check_settings(s)?;
    let path = ds.source.path.clone();
    let types = ds.declared_types();
    let qi_table = ds.source.table(&s.qi, &types)?;
    for col in &qi_table.columns {
        if col.missing() == col.len() {
            return Err(Error::AllMissing {
                path: path.clone(),
                column: col.name.clone(),
            });
        }
    }
    let sens_table = ds.source.table(&s.sensitive, &types)?;
    let patient = match ds.patient_column() {
        Some(p) => Some(ds.source.encode(p, None)?),
        None => None,
    };
    let qi_refs: Vec<&Column> = qi_table.columns.iter().collect();
    let classes = classify(&qi_refs, patient.as_ref(), s.missing);
    if classes.n == 0 {
        return Err(Error::Usage(format!(
            "{}: no person is left to analyse: all {} were excluded by the missing-value policy '{}'; use --missing conservative",
            path.display(),
            classes.excluded,
            s.missing.name()
        )));
    }
    let hist = classes.histogram();
    let t = s.threshold;
    let cl = s.confidence;
    let p = prosecutor(&hist, t);
    let k_t = s.k_rule.k_for(t);
    let unit = if patient.is_some() { "patient" } else { "row" };

    let mut findings = sample_findings(&classes, &hist, &p, s, unit, k_t);
    let mut settings = settings_table(s, k_t, unit, patient.is_some());

    // Population: sampling fraction → estimators; population table → exact F.
    let mut extra_inputs = Vec::new();
    let pop_model = if let Some(pi) = s.sampling_fraction {
        Some(PopulationModel::from_fraction(p.n, pi))
    } else if let Some(pf) = &s.population_file {
        let (pairs, n_pop, hash) = population_frequencies(ds, s, &qi_table, &classes, pf)?;
        extra_inputs.push(hash);
        let j = sample::journalist(&pairs, t);
        push_journalist(&mut findings, &j, p.n, t, "population-table", cl);
        settings.push(Setting {
            name: "population".into(),
            value: format!("{} ({} persons)", pf.display(), n_pop),
            note: "journalist/marketer risk use each class's exact population size F".into(),
        });
        Some(PopulationModel {
            n: p.n,
            big_n: n_pop.max(p.n),
        })
    } else {
        None
    };
    if let (Some(model), Some(pi)) = (pop_model, s.sampling_fraction) {
        sampled_population(
            &mut findings,
            &mut settings,
            &classes,
            &hist,
            model,
            pi,
            s,
            p.n,
        );
    }

    // Attribute disclosure.
    let (diversity, first_distinct) =
        attribute_disclosure(&mut findings, &classes, &sens_table.columns, s, p.n);

    let risk_bins = risk_bins(&hist);
    let worst_classes = worst_classes(
        &classes,
        &qi_table.columns,
        &ds.source.salt,
        first_distinct.as_deref(),
    );

    let safe_harbor = if s.safe_harbor {
        safe_harbor::check(ds)?
    } else {
        Vec::new()
    };
    if s.safe_harbor {
        findings.push(safe_harbor_finding(&safe_harbor));
    }
    let columns = column_roles(ds, s);
    for f in &mut findings {
        f.params.insert("qi_set".into(), s.label.clone().into());
    }
    Ok(RiskAnalysis {
        findings,
        detail: ReidDetail {
            label: s.label.clone(),
            dataset: ds.name.clone(),
            quasi_identifiers: s.qi.clone(),
            sensitive: s.sensitive.clone(),
            unit: unit.into(),
            settings,
            class_sizes: hist,
            risk_bins,
            worst_classes,
            safe_harbor,
            diversity,
            columns,
        },
        extra_inputs,
    })
}

/// The sample's findings: persons, classes, k, prosecutor risk (max, average, min, records at
/// risk), k-anonymity violations, sample uniqueness, QI distinction and separation, and the
/// persons with a missing value or several QI tuples.
fn sample_findings(
    classes: &classes::Classes,
    hist: &[(u64, u64)],
    p: &sample::Prosecutor,
    s: &RiskSettings,
    unit: &str,
    k_t: u64,
) -> Vec<Finding> {
    let (t, cl) = (s.threshold, s.confidence);
    let mut findings = Vec::new();
    let missing_caveat = (classes.persons_with_missing > 0).then(|| {
        format!(
            "{} of {} persons have a missing quasi-identifier value; policy '{}' applied",
            classes.persons_with_missing,
            classes.n + classes.excluded,
            s.missing.name()
        )
    });
    let with_missing = |f: Finding| match &missing_caveat {
        Some(c) => f.with_caveat(c.clone()),
        None => f,
    };
    findings
        .push(Finding::new(PROBE, metric::REID_PERSONS, Some(p.n as f64)).with_param("unit", unit));
    findings.push(Finding::new(
        PROBE,
        metric::REID_CLASSES,
        Some(p.classes as f64),
    ));
    findings.push(with_missing(Finding::new(
        PROBE,
        metric::REID_K,
        Some(p.k as f64),
    )));
    findings.push(with_missing(Finding::new(
        PROBE,
        metric::REID_PROSECUTOR_MAX,
        Some(p.max),
    )));
    findings.push(
        Finding::new(PROBE, metric::REID_PROSECUTOR_AVG, Some(p.avg)).with_counts(p.classes, p.n),
    );
    findings.push(Finding::new(
        PROBE,
        metric::REID_PROSECUTOR_MIN,
        Some(p.min),
    ));
    findings.push(
        proportion(metric::REID_PROSECUTOR_RECORDS_AT_RISK, p.at_risk, p.n, cl)
            .with_param("threshold", t)
            .with_param("comparison", "1/f > t"),
    );
    let below_k: u64 = hist.iter().filter(|h| h.0 < k_t).map(|h| h.0 * h.1).sum();
    findings.push(conflict_caveat(
        proportion(metric::REID_K_ANONYMITY_VIOLATIONS, below_k, p.n, cl)
            .with_param("k", k_t)
            .with_param("k_rule", s.k_rule.name())
            .with_param("threshold", t),
        s,
        k_t,
    ));
    findings.push(proportion(
        metric::REID_UNIQUENESS_SAMPLE,
        p.uniques,
        p.n,
        cl,
    ));
    let (distinction, separation) = sample::distinction_separation(hist);
    findings.push(Finding::new(
        PROBE,
        metric::REID_QI_DISTINCTION,
        Some(distinction),
    ));
    findings.push(Finding::new(
        PROBE,
        metric::REID_QI_SEPARATION,
        Some(separation),
    ));
    if classes.persons_with_missing > 0 {
        findings.push(
            proportion(
                metric::REID_MISSING_PERSONS,
                classes.persons_with_missing,
                classes.n + classes.excluded,
                cl,
            )
            .with_param("policy", s.missing.name()),
        );
    }
    if classes.multi_tuple_persons > 0 {
        findings.push(
            Finding::new(PROBE, metric::REID_MULTI_TUPLE_PATIENTS, Some(classes.multi_tuple_persons as f64))
                .with_caveat("these patients' records differ on the QIs; they were keyed by their set of QI tuples"),
        );
    }
    findings
}

/// The k-anonymity finding, with a caveat when the chosen k rule is below the risk test's
/// 1/f > t (classes of a size between the two count as k-anonymous yet at risk).
fn conflict_caveat(f: Finding, s: &RiskSettings, k: u64) -> Finding {
    let strict = sample::KRule::Strict.k_for(s.threshold);
    if k >= strict {
        return f;
    }
    f.with_caveat(format!(
        "the {} rule gives k = {k} for t = {}, but the risk test 1/f > t needs classes of at least {strict}: classes of {} to {} count here as k-anonymous while their persons are at risk; use --k-rule strict for one rule",
        s.k_rule.name(),
        s.threshold,
        k,
        strict - 1
    ))
}

/// The settings table of the report: threshold, k rule, missing values, unit and confidence.
fn settings_table(s: &RiskSettings, k_t: u64, unit: &str, per_patient: bool) -> Vec<Setting> {
    let (t, cl) = (s.threshold, s.confidence);
    vec![
        Setting {
            name: "threshold".into(),
            value: format!("{t}"),
            note: "identification-risk threshold t; a person is at risk when 1/f > t (strict, as ARX)".into(),
        },
        Setting {
            name: "k rule".into(),
            value: format!("{} (k = {k_t})", s.k_rule.name()),
            note: "strict (default): k = ⌈1/t⌉, the smallest class with 1/f ≤ t, so k-anonymity and the risk test 1/f > t agree (0.09 ↔ 12); el-emam: k = ⌊1/t⌋ (0.09 ↔ 11); arx: ⌊1/t⌋ + 1 when 1/⌊1/t⌋ exceeds t by ≥ 1 % (0.09 ↔ 12)".into(),
        },
        Setting {
            name: "missing values".into(),
            value: s.missing.name().into(),
            note: match s.missing {
                MissingPolicy::Conservative => "a person with a missing QI value is treated as unique and joins no class",
                MissingPolicy::Literal => "a missing value is an ordinary value",
                MissingPolicy::Exclude => "persons with a missing QI value are left out of n",
            }
            .into(),
        },
        Setting {
            name: "unit".into(),
            value: unit.into(),
            note: if per_patient {
                "classes are formed per patient; a patient whose records differ on the QIs is keyed by the set of their QI tuples"
            } else {
                "each row is one person (no patient-id column)"
            }
            .into(),
        },
        Setting {
            name: "confidence".into(),
            value: format!("{cl}"),
            note: "level of Clopper–Pearson intervals on proportions (they treat the persons as a sample)".into(),
        },
    ]
}

/// How many of the 18 Safe Harbor categories the data still holds.
fn safe_harbor_finding(items: &[crate::evidence::SafeHarborItem]) -> Finding {
    let present = items.iter().filter(|i| i.status == "present").count();
    let mut f = Finding::new(
        "safe_harbor",
        metric::SAFEHARBOR_CATEGORIES_PRESENT,
        Some(present as f64),
    )
    .with_counts(present as u64, 18);
    if present > 0 {
        f = f.with_caveat("identifiers present: the data does not meet Safe Harbor as it stands");
    }
    f
}

/// Persons per prosecutor-risk bin ([`RISK_EDGES`]).
fn risk_bins(hist: &[(u64, u64)]) -> Vec<RiskBin> {
    let mut bins: Vec<RiskBin> = RISK_EDGES
        .windows(2)
        .map(|w| RiskBin {
            lo: w[0],
            hi: w[1],
            persons: 0,
        })
        .collect();
    for &(size, count) in hist {
        let r = 1.0 / size as f64;
        if let Some(b) = bins.iter_mut().find(|b| r > b.lo && r <= b.hi + 1e-15) {
            b.persons += size * count;
        }
    }
    bins
}

/// The ten smallest classes, each named only by a salted hash of its key.
fn worst_classes(
    classes: &Classes,
    qis: &[Column],
    salt: &[u8],
    first_distinct: Option<&[u64]>,
) -> Vec<ClassSummary> {
    let mut order: Vec<usize> = (0..classes.count()).collect();
    order.sort_by_key(|&c| (classes.sizes[c], c));
    order
        .iter()
        .take(10)
        .map(|&c| {
            let row = classes.representative[c] as usize;
            let key: Vec<u8> = qis
                .iter()
                .flat_map(|col| {
                    let mut v = col.value(row).unwrap_or("\u{0}missing").as_bytes().to_vec();
                    v.push(0x1f);
                    v
                })
                .collect();
            ClassSummary {
                key_hash: crate::phi::salted_hash(salt, &key),
                size: classes.sizes[c],
                risk: 1.0 / classes.sizes[c] as f64,
                distinct_sensitive: first_distinct.map(|d| d[c]),
            }
        })
        .collect()
}

/// Journalist and marketer risk and population uniqueness from a sampling fraction π: the
/// Benedetti–Franconi estimate per class with F = f/π, and the uniqueness estimators.
#[allow(clippy::too_many_arguments)]
fn sampled_population(
    findings: &mut Vec<Finding>,
    settings: &mut Vec<Setting>,
    classes: &Classes,
    hist: &[(u64, u64)],
    model: PopulationModel,
    pi: f64,
    s: &RiskSettings,
    n_persons: u64,
) {
    let (t, cl) = (s.threshold, s.confidence);
    let big_n = model.big_n as f64;
    let pairs: Vec<(u64, f64)> = classes
        .sizes
        .iter()
        .map(|&f| (f, f as f64 / model.fraction()))
        .collect();
    // Benedetti–Franconi per class with F = f/π.
    let risks: Vec<f64> = pairs
        .iter()
        .map(|&(f, ff)| sample::benedetti_franconi(f, ff))
        .collect();
    let n = n_persons as f64;
    let marketer = pairs
        .iter()
        .zip(&risks)
        .map(|((f, _), r)| *f as f64 * r)
        .sum::<f64>()
        / n;
    let max = risks.iter().copied().fold(0.0, f64::max);
    let at_risk: u64 = pairs
        .iter()
        .zip(&risks)
        .filter(|(_, r)| **r > t)
        .map(|((f, _), _)| *f)
        .sum();
    findings.push(
        Finding::new(PROBE, metric::REID_JOURNALIST_MAX, Some(max))
            .with_param("model", "benedetti-franconi"),
    );
    findings.push(
        proportion(
            metric::REID_JOURNALIST_RECORDS_AT_RISK,
            at_risk,
            n_persons,
            cl,
        )
        .with_param("model", "benedetti-franconi")
        .with_param("threshold", t),
    );
    findings.push(
        Finding::new(PROBE, metric::REID_MARKETER_AVG, Some(marketer))
            .with_param("model", "benedetti-franconi"),
    );
    settings.push(Setting {
        name: "population".into(),
        value: format!("sampling fraction π = {pi}, N = {}", model.big_n),
        note: "journalist/marketer risk estimated per class with Benedetti–Franconi's E[1/F | f] at F = f/π".into(),
    });
    let pu = population_uniqueness(hist, model, s.snb);
    let mut pushed = |est: &str, v: Option<f64>| {
        let mut f = Finding::new(PROBE, metric::REID_UNIQUENESS_POPULATION, v)
            .with_param("estimator", est)
            .with_param("sampling_fraction", pi);
        if v.is_none() {
            f = f.with_caveat("the estimator has no valid solution for this histogram");
        }
        if est == "snb" {
            f = f.with_param("snb", s.snb.name());
        }
        findings.push(f);
    };
    pushed("zayatz", pu.zayatz);
    pushed("pitman", pu.pitman);
    pushed("snb", pu.snb);
    findings.push(
        Finding::new(PROBE, metric::REID_UNIQUENESS_POPULATION, Some(pu.dankar))
            .with_param("estimator", "dankar")
            .with_param("chosen", pu.chosen.name())
            .with_param("snb", s.snb.name())
            .with_param("sampling_fraction", pi),
    );
    findings.push(
        Finding::new(
            PROBE,
            metric::REID_UNIQUENESS_POPULATION_COUNT,
            Some((pu.dankar * big_n).round()),
        )
        .with_param("estimator", "dankar"),
    );
    // The two models disagree when the QIs are fine: F = f/π assumes each sample class stands
    // for 1/π people, while the uniqueness estimators find the classes unique in the
    // population. Say so on the journalist finding, and which number is the safe one.
    let expected_unique = pu.dankar * n_persons as f64;
    if pu.dankar.is_finite()
        && expected_unique >= 1.0
        && (at_risk as f64) < expected_unique
        && let Some(f) = findings.iter_mut().rev().find(|f| {
            f.metric == metric::REID_JOURNALIST_RECORDS_AT_RISK
                && f.params.get("model").and_then(|m| m.as_str()) == Some("benedetti-franconi")
        })
    {
        f.caveats.push(format!(
                "conflicts with population uniqueness ({} estimates {:.1} % of the population unique on these QIs): about {} of the {} persons are then unique in the population, with journalist risk 1, while the F = f/π expansion counts {} at risk. The expansion assumes each sample record stands for 1/π people alike on the QIs, which QIs this fine break; read journalist risk as at least {} persons at risk",
                pu.chosen.name(),
                100.0 * pu.dankar,
                expected_unique.round(),
                n_persons,
                at_risk,
                expected_unique.round()
            ));
    }
}

/// l-diversity, t-closeness, δ-disclosure and homogeneity of each sensitive attribute: their
/// findings, the report's summaries, and the first attribute's distinct values per class.
fn attribute_disclosure(
    findings: &mut Vec<Finding>,
    classes: &Classes,
    sensitive: &[Column],
    s: &RiskSettings,
    n_persons: u64,
) -> (Vec<DiversitySummary>, Option<Vec<u64>>) {
    let cl = s.confidence;
    let mut diversity = Vec::new();
    let mut first_distinct: Option<Vec<u64>> = None;
    for col in sensitive {
        let d = diversity::diversity(classes, col, s.recursive_c, s.delta_log_base);
        let a = col.name.as_str();
        findings.push(
            Finding::new(
                PROBE,
                metric::REID_LDIVERSITY_DISTINCT,
                Some(d.distinct_l as f64),
            )
            .with_param("attribute", a),
        );
        findings.push(
            Finding::new(PROBE, metric::REID_LDIVERSITY_ENTROPY, Some(d.entropy_l))
                .with_param("attribute", a),
        );
        findings.push(
            Finding::new(
                PROBE,
                metric::REID_LDIVERSITY_RECURSIVE,
                Some(d.recursive_l as f64),
            )
            .with_param("attribute", a)
            .with_param("c", s.recursive_c),
        );
        findings.push(
            Finding::new(PROBE, metric::REID_TCLOSENESS_EQUAL, Some(d.t_equal))
                .with_param("attribute", a),
        );
        if let Some(t_ord) = d.t_ordered {
            findings.push(
                Finding::new(PROBE, metric::REID_TCLOSENESS_ORDERED, Some(t_ord))
                    .with_param("attribute", a),
            );
        }
        findings.push(
            Finding::new(PROBE, metric::REID_DELTA_DISCLOSURE, Some(d.delta))
                .with_param("attribute", a)
                .with_param("log_base", s.delta_log_base),
        );
        findings.push(
            proportion(
                metric::REID_HOMOGENEOUS_PERSONS,
                d.homogeneous_persons,
                n_persons,
                cl,
            )
            .with_param("attribute", a),
        );
        diversity.push(DiversitySummary {
            attribute: a.into(),
            distinct_values: d.distinct_values,
            distinct_l: d.distinct_l,
            entropy_l: d.entropy_l,
            recursive_l: d.recursive_l,
            recursive_c: s.recursive_c,
            t_equal: d.t_equal,
            t_ordered: d.t_ordered,
            delta_disclosure: d.delta,
            delta_log_base: s.delta_log_base,
            homogeneous_classes: d.homogeneous_classes,
            homogeneous_persons: d.homogeneous_persons,
        });
        if first_distinct.is_none() {
            first_distinct = Some(d.per_class_distinct);
        }
    }
    (diversity, first_distinct)
}

fn push_journalist(
    findings: &mut Vec<Finding>,
    j: &sample::Journalist,
    n: u64,
    t: f64,
    model: &str,
    cl: f64,
) {
    findings.push(
        Finding::new(PROBE, metric::REID_JOURNALIST_MAX, Some(j.max)).with_param("model", model),
    );
    findings.push(
        Finding::new(PROBE, metric::REID_JOURNALIST_AVG, Some(j.avg)).with_param("model", model),
    );
    findings.push(
        proportion(metric::REID_JOURNALIST_RECORDS_AT_RISK, j.at_risk, n, cl)
            .with_param("model", model)
            .with_param("threshold", t),
    );
    findings.push(
        Finding::new(PROBE, metric::REID_MARKETER_AVG, Some(j.marketer)).with_param("model", model),
    );
}

/// (f_j, F_j) per class, the population size, and the population file's hash.
type PopulationFrequencies = (Vec<(u64, f64)>, u64, crate::evidence::FileHash);

/// Reads a population table and returns, per sample class, (f_j, F_j), plus the population
/// size and the file's hash. A class of several QI tuples (a patient whose records differ)
/// takes the smallest F of its tuples. Sample classes absent from the population are an error.
fn population_frequencies(
    ds: &Dataset,
    s: &RiskSettings,
    qi_table: &crate::data::Table,
    classes: &Classes,
    pf: &std::path::Path,
) -> Result<PopulationFrequencies> {
    let pop = Dataset::open(pf, None, None)?;
    let pop_table = pop.source.table(&s.qi, &[])?;
    // Key = the QI values as text.
    let key_of =
        |cols: &[Column], row: usize| -> Vec<u32> { cols.iter().map(|c| c.codes[row]).collect() };
    // Map population rows onto the sample's dictionaries.
    let remap: Vec<Vec<u32>> = pop_table
        .columns
        .iter()
        .zip(&qi_table.columns)
        .map(|(pc, sc)| {
            let idx: rustc_hash::FxHashMap<&str, u32> = sc
                .dictionary
                .iter()
                .enumerate()
                .map(|(i, v)| (v.as_str(), i as u32))
                .collect();
            pc.dictionary
                .iter()
                .map(|v| idx.get(v.as_str()).copied().unwrap_or(u32::MAX - 1))
                .collect()
        })
        .collect();
    let mut counts: rustc_hash::FxHashMap<Vec<u32>, u64> = rustc_hash::FxHashMap::default();
    for row in 0..pop_table.rows {
        let key: Vec<u32> = pop_table
            .columns
            .iter()
            .zip(&remap)
            .map(|(c, m)| match c.codes[row] {
                MISSING => MISSING,
                x => m[x as usize],
            })
            .collect();
        *counts.entry(key).or_default() += 1;
    }
    // F per class: min over the class's rows' tuples.
    let mut big_f = vec![f64::INFINITY; classes.count()];
    for row in 0..qi_table.rows {
        let person = classes.row_person[row] as usize;
        if let Some(c) = classes.person_class[person] {
            let key = key_of(&qi_table.columns, row);
            if key.contains(&MISSING) {
                continue; // no population count for an incomplete key
            }
            let f = counts.get(&key).copied().unwrap_or(0) as f64;
            big_f[c as usize] = big_f[c as usize].min(f);
        }
    }
    // Classes made only of incomplete keys: assume the population adds no one (F = f).
    for (bf, &f) in big_f.iter_mut().zip(&classes.sizes) {
        if bf.is_infinite() {
            *bf = f as f64;
        }
    }
    let short = big_f
        .iter()
        .zip(&classes.sizes)
        .filter(|(bf, f)| **bf < **f as f64)
        .count();
    if short > 0 {
        return Err(Error::Usage(format!(
            "{}: {short} equivalence class(es) of {} are larger in the sample than in the population table; the population must contain the sample",
            pf.display(),
            ds.source.path.display()
        )));
    }
    let pairs = classes
        .sizes
        .iter()
        .zip(&big_f)
        .map(|(&f, &bf)| (f, bf))
        .collect();
    let hash = pop.source.hashes[0].clone();
    Ok((pairs, pop_table.rows as u64, hash))
}

fn column_roles(ds: &Dataset, s: &RiskSettings) -> Vec<ColumnRole> {
    let patient = ds.patient_column();
    let record = ds.card.as_ref().and_then(|c| c.record_id.as_deref());
    ds.source
        .column_names()
        .into_iter()
        .map(|name| {
            let role = if Some(name.as_str()) == patient {
                "patient-id".to_owned()
            } else if Some(name.as_str()) == record {
                "record-id".to_owned()
            } else if s.qi.contains(&name) {
                "quasi".to_owned()
            } else if s.sensitive.contains(&name) {
                "sensitive".to_owned()
            } else {
                ds.role(&name).map_or("other", |r| r.name()).to_owned()
            };
            ColumnRole {
                category: ds.category(&name).map(|c| c.title().to_owned()),
                column: name,
                role,
            }
        })
        .collect()
}
