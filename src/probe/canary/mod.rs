//! Canary exposure (Carlini, Liu, Erlingsson, Kos & Song, "The Secret Sharer: Evaluating and
//! Testing Unintended Memorization in Neural Networks", USENIX Security 2019, arXiv 1802.08232).
//!
//! A canary is a synthetic secret drawn from a format's randomness space (e.g. an SSN, 10⁹
//! secrets) and planted into training notes a known number of times. Its exposure,
//! log₂|space| − log₂ rank, says how many bits of the secret the model gives away: 0 when the
//! model ranks it like any other secret, log₂|space| when it is the model's favourite.
//!
//! Three estimates, all reported:
//! - **interpolation**: rank among reference secrets drawn from the same space and never planted
//!   (ties count against the canary), exposure = log₂ n − log₂(1 + k) for k of n references at
//!   least as likely, with a Clopper–Pearson interval on k/n mapped through −log₂; it saturates
//!   at log₂ n;
//! - **exact rank** by best-first search over the format's token tree ([`search`]), run where
//!   interpolation saturates (the canary beats every reference); the search gives up after a
//!   budget of model calls and then reports a bound;
//! - **extrapolation**: −log₂ CDF of a skew-normal fitted to the references' scores
//!   ([`crate::stats::skewnorm`]), with fit diagnostics.
//!
//! Scores are sentence negative log-likelihoods in nats (the paper's log-perplexity up to the
//! sentence's fixed token count); ranks do not depend on this choice, the skew-normal fit does.

pub mod search;

use crate::evidence::metric;
use serde::{Deserialize, Serialize};

use crate::evidence::{CanaryDetail, CanaryRow, Finding, GroupFit};
use crate::model::LanguageModel;
use crate::stats::{Rng, clopper_pearson, skewnorm};
use crate::train::canary::{Format, Planted};
use crate::{Error, Result};

/// When to run the exact-rank search.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Only where interpolation saturates (no reference is at least as likely as the canary).
    #[default]
    Saturated,
    /// For every canary (costly for canaries the model did not memorise).
    Always,
    /// Never.
    Never,
}

/// Settings of the canary probe (`[[probe]] kind = "canary"`).
///
/// Canaries come from the target's `training.json` (`phiprobe train` with a canary plan) or
/// from `audit --canaries FILE`: `[[canary]]` tables with id, kind (optional), secret, format
/// (`{dN}` `{uN}` `{lN}` `{date}`), context with `{secret}`, repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Reference secrets drawn per format for canaries listed with `--canaries` (a model
    /// phiprobe trained carries its own).
    pub references: usize,
    /// When to search for the exact rank.
    pub search: SearchMode,
    /// Most prefix forward passes per canary before the search stops with a bound.
    pub max_expansions: u64,
    /// Prefixes per model call in the search.
    pub batch: usize,
    /// Confidence level of every interval.
    pub confidence: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            references: 1000,
            search: SearchMode::Saturated,
            max_expansions: 20_000,
            batch: 256,
            confidence: 0.95,
        }
    }
}

impl Settings {
    /// Checks ranges.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.references < 2 {
            return Err("references must be at least 2".into());
        }
        crate::probe::check_counts(&[
            ("references", self.references, crate::probe::MAX_COUNT),
            (
                "max_expansions",
                usize::try_from(self.max_expansions).unwrap_or(usize::MAX),
                crate::probe::MAX_COUNT,
            ),
            ("batch", self.batch, crate::probe::MAX_TOKENS),
        ])?;
        if self.batch == 0 {
            return Err("batch must be at least 1".into());
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err("confidence must be in (0, 1)".into());
        }
        Ok(())
    }
}

/// One canary to probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanarySpec {
    /// Id.
    pub id: String,
    /// Kind (ssn, mrn, …).
    pub kind: String,
    /// Format (its randomness space).
    pub format: String,
    /// Context with `{secret}`.
    pub context: String,
    /// The secret (synthetic; may be shown).
    pub secret: String,
    /// Copies in the training data the model saw (0: not planted, a control).
    pub repetitions: usize,
    /// Copies requested by the plan (the rung of the repetition ladder); differs from
    /// `repetitions` when copies fell beyond a note's context or a coin excluded the canary.
    #[serde(default)]
    pub rung: usize,
}

/// Reference secrets of one (format, context) group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefGroup {
    /// Kind.
    pub kind: String,
    /// Format.
    pub format: String,
    /// Context.
    pub context: String,
    /// Secrets never planted.
    pub secrets: Vec<String>,
}

/// Canaries with their source description and reference groups.
pub type CanarySet = (String, Vec<CanarySpec>, Vec<RefGroup>);

/// A `--canaries` file: canaries the user planted in their own training data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    #[serde(rename = "canary")]
    canaries: Vec<UserCanary>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCanary {
    id: Option<String>,
    kind: Option<String>,
    secret: String,
    format: String,
    context: String,
    repetitions: usize,
}

/// Canaries and references from a model phiprobe trained (its training record).
pub fn from_planted(p: &Planted) -> (Vec<CanarySpec>, Vec<RefGroup>) {
    let specs = p
        .canaries
        .iter()
        .map(|c| {
            let context = p
                .references
                .iter()
                .find(|r| r.kind == c.kind)
                .map_or_else(String::new, |r| r.context.clone());
            CanarySpec {
                id: c.id.clone(),
                kind: c.kind.clone(),
                format: c.format.clone(),
                context,
                secret: c.secret.clone(),
                repetitions: if c.included { c.planted_in.len() } else { 0 },
                rung: c.repetitions,
            }
        })
        .collect();
    let groups = p
        .references
        .iter()
        .map(|r| RefGroup {
            kind: r.kind.clone(),
            format: r.format.clone(),
            context: r.context.clone(),
            secrets: r.secrets.clone(),
        })
        .collect();
    (specs, groups)
}

/// Reads a `--canaries` TOML file and draws `references` reference secrets per (format,
/// context), never one of the listed secrets.
///
/// ```toml
/// [[canary]]
/// id = "ssn-1"                      # optional (default canary-N)
/// kind = "ssn"                      # optional (default: the format)
/// secret = "123-45-6789"
/// format = "{d3}-{d2}-{d4}"         # {dN} digits, {uN} upper, {lN} lower, {date}; rest literal
/// context = "SSN {secret} on file." # the sentence as planted
/// repetitions = 4                   # copies in the training data (0: a control, not planted)
/// ```
pub fn from_file(
    path: &std::path::Path,
    references: usize,
    seed: u64,
) -> Result<(Vec<CanarySpec>, Vec<RefGroup>)> {
    let text = crate::fsx::read_config(path)?;
    let bad = |m: String| Error::Parse {
        path: path.to_owned(),
        format: "canary list (TOML)".into(),
        message: m,
    };
    let file: UserFile = toml::from_str(&text).map_err(|e| bad(crate::redact::toml(&e, &text)))?;
    if file.canaries.is_empty() {
        return Err(bad("no [[canary]] entries".into()));
    }
    let mut specs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, c) in file.canaries.into_iter().enumerate() {
        let f = Format::parse(&c.format).map_err(|m| bad(format!("canary {}: {m}", i + 1)))?;
        if !f.contains(&c.secret) {
            // The secret is never printed: it is what the audit measures the model's
            // knowledge of.
            return Err(bad(format!(
                "canary {}: its secret ({} characters) does not fit its format '{}'",
                i + 1,
                c.secret.chars().count(),
                c.format
            )));
        }
        if c.context.matches("{secret}").count() != 1 {
            return Err(bad(format!(
                "canary {}: the context must hold {{secret}} exactly once",
                i + 1
            )));
        }
        let id = c.id.unwrap_or_else(|| format!("canary-{}", i + 1));
        if !seen.insert(id.clone()) {
            return Err(bad(format!("canary id '{id}' is listed twice")));
        }
        specs.push(CanarySpec {
            id,
            kind: c.kind.unwrap_or_else(|| c.format.clone()),
            format: c.format,
            context: c.context,
            secret: c.secret,
            rung: c.repetitions,
            repetitions: c.repetitions,
        });
    }
    let mut groups: Vec<RefGroup> = Vec::new();
    for s in &specs {
        if groups
            .iter()
            .any(|g| g.format == s.format && g.context == s.context)
        {
            continue;
        }
        let f = Format::parse(&s.format).map_err(bad)?;
        let planted: std::collections::HashSet<&str> = specs
            .iter()
            .filter(|o| o.format == s.format)
            .map(|o| o.secret.as_str())
            .collect();
        if f.log2_space() < ((2 * (references + planted.len())) as f64).log2() {
            return Err(bad(format!(
                "format '{}' has too few secrets for {references} references (at most half the space may be used)",
                s.format
            )));
        }
        let mut rng = Rng::derive(
            seed,
            &format!("canary-refs/{}", s.format),
            groups.len() as u64,
        );
        let mut drawn = std::collections::HashSet::new();
        let mut secrets = Vec::with_capacity(references);
        while secrets.len() < references {
            let x = f.sample(&mut rng);
            if !planted.contains(x.as_str()) && drawn.insert(x.clone()) {
                secrets.push(x);
            }
        }
        groups.push(RefGroup {
            kind: s.kind.clone(),
            format: s.format.clone(),
            context: s.context.clone(),
            secrets,
        });
    }
    Ok((specs, groups))
}

/// What the model said about one canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryObservation {
    /// The canary.
    #[serde(flatten)]
    pub spec: CanarySpec,
    /// Index of its reference group.
    pub group: usize,
    /// Sentence NLL (nats).
    pub nll: f64,
    /// References at least as likely (NLL ≤ the canary's).
    pub refs_at_least_as_likely: u64,
    /// The exact-rank search, when run.
    pub search: Option<search::Outcome>,
    /// Why no search ran, or why it failed.
    pub search_note: Option<String>,
}

/// Reference scores of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupObservation {
    /// Kind.
    pub kind: String,
    /// Format.
    pub format: String,
    /// Context.
    pub context: String,
    /// log₂ of the space size.
    pub log2_space: f64,
    /// Sentence NLL of every reference (nats).
    pub nll: Vec<f64>,
}

/// `observations/canary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// Where the canaries came from.
    pub source: String,
    /// Per canary.
    pub canaries: Vec<CanaryObservation>,
    /// Per reference group.
    pub groups: Vec<GroupObservation>,
    /// Settings the observations were made with.
    pub settings: Settings,
}

/// Scores every canary and reference sentence, then searches exact ranks where the settings
/// say. `progress(done, total)` counts canaries searched.
pub fn observe(
    model: &dyn LanguageModel,
    specs: &[CanarySpec],
    groups: &[RefGroup],
    source: &str,
    settings: &Settings,
    batch_tokens: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Observations> {
    settings.validate().map_err(Error::Usage)?;
    let mut texts: Vec<String> = specs
        .iter()
        .map(|c| c.context.replace("{secret}", &c.secret))
        .collect();
    for g in groups {
        texts.extend(g.secrets.iter().map(|s| g.context.replace("{secret}", s)));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let scored = crate::model::score_texts(model, &refs, batch_tokens, |_| {})?;
    let nll: Vec<f64> = scored.iter().map(|s| -s.total()).collect();
    let mut at = specs.len();
    let mut gobs = Vec::new();
    for g in groups {
        let f = Format::parse(&g.format).map_err(Error::Usage)?;
        gobs.push(GroupObservation {
            kind: g.kind.clone(),
            format: g.format.clone(),
            context: g.context.clone(),
            log2_space: f.log2_space(),
            nll: nll[at..at + g.secrets.len()].to_vec(),
        });
        at += g.secrets.len();
    }
    let mut surfaces: Option<search::Surfaces> = None;
    let mut searchers: std::collections::HashMap<usize, search::Searcher<'_>> = Default::default();
    let mut out = Vec::new();
    // Which canaries to search, decided before any searching.
    let mut plan = Vec::new();
    for (i, c) in specs.iter().enumerate() {
        let group = groups
            .iter()
            .position(|g| g.format == c.format && g.context == c.context)
            .ok_or_else(|| Error::Usage(format!("canary '{}' has no reference secrets", c.id)))?;
        // Ranks by NLL: a reference with NLL ≤ the canary's is at least as likely.
        let k = crate::stats::exposure::rank(nll[i], &gobs[group].nll) as u64 - 1;
        let run = match settings.search {
            SearchMode::Always => true,
            SearchMode::Saturated => k == 0,
            SearchMode::Never => false,
        };
        plan.push((group, k, run));
    }
    if plan.iter().any(|p| p.2) {
        surfaces = Some(search::Surfaces::of(model)?);
    }
    let surfaces = surfaces.as_ref();
    for (i, c) in specs.iter().enumerate() {
        let (group, k, run) = plan[i];
        let (found, note) = if let (true, Some(surfaces)) = (run, surfaces) {
            let limits = search::Limits {
                max_expansions: settings.max_expansions,
                batch: settings.batch,
            };
            let searcher = match searchers.entry(group) {
                std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let format = Format::parse(&c.format).map_err(Error::Usage)?;
                    search::Searcher::new(model, surfaces, &format, &c.context, &c.secret)
                        .map(|s| v.insert(s))
                }
            };
            match searcher.and_then(|s| s.rank(&c.secret, limits)) {
                Ok(o) => (Some(o), None),
                Err(Error::Usage(m)) => (None, Some(m)),
                Err(e) => return Err(e),
            }
        } else {
            let why = match settings.search {
                SearchMode::Never => "search disabled (search = \"never\")".to_owned(),
                _ => format!(
                    "not searched: {k} reference(s) at least as likely, so interpolation resolves the exposure"
                ),
            };
            (None, Some(why))
        };
        out.push(CanaryObservation {
            spec: c.clone(),
            group,
            nll: nll[i],
            refs_at_least_as_likely: k,
            search: found,
            search_note: note,
        });
        progress(i + 1, specs.len());
    }
    // Record what ran: a training record brings its own reference secrets, whatever the plan
    // asked for.
    let mut ran = settings.clone();
    let used = groups.iter().map(|g| g.secrets.len()).max().unwrap_or(0);
    let mut source = source.to_owned();
    if used >= 2 && used != settings.references {
        source.push_str(&format!(
            " ({used} reference secrets per format, from the source; the plan's references = {} applies to --canaries files only)",
            settings.references
        ));
        ran.references = used;
    }
    Ok(Observations {
        source,
        canaries: out,
        groups: gobs,
        settings: ran,
    })
}

fn log2_clamped(p: f64) -> f64 {
    -(p.max(f64::MIN_POSITIVE)).log2()
}

/// Spearman's ρ with average ranks for ties.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let rank = |v: &[f64]| -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0 + 1.0;
            for &k in &idx[i..=j] {
                r[k] = avg;
            }
            i = j + 1;
        }
        r
    };
    if x.len() < 3 || x.len() != y.len() {
        return None;
    }
    let (rx, ry) = (rank(x), rank(y));
    let n = x.len() as f64;
    let m = (n + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - m) * (b - m);
        sxx += (a - m) * (a - m);
        syy += (b - m) * (b - m);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Exposure findings and report detail from observations (pure).
///
/// Kept whole: the findings in the order `findings.json` lists them, from the same per-group fits.
pub fn analyze(obs: &Observations) -> (Vec<Finding>, CanaryDetail) {
    let conf = obs.settings.confidence;
    let fits: Vec<GroupFit> = obs
        .groups
        .iter()
        .map(|g| GroupFit {
            kind: g.kind.clone(),
            format: g.format.clone(),
            references: g.nll.len() as u64,
            fit: skewnorm::fit(&g.nll),
        })
        .collect();
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for c in &obs.canaries {
        let g = &obs.groups[c.group];
        let n = g.nll.len() as u64;
        let k = c.refs_at_least_as_likely;
        let exposure_rank = crate::stats::exposure::exposure(c.nll, &g.nll);
        // Clopper–Pearson on the share k/n of references at least as likely, mapped through
        // −log₂ and widened to hold the point estimate (TF Privacy's log₂ n − log₂(1 + k)).
        let (plo, phi) = clopper_pearson(k, n, conf);
        let interval = (
            log2_clamped(phi).max(0.0).min(exposure_rank),
            log2_clamped(plo).min(g.log2_space).max(exposure_rank),
        );
        let skew = fits[c.group]
            .fit
            .as_ref()
            .map(|f| (-f.dist.log_cdf(c.nll) / std::f64::consts::LN_2).min(g.log2_space));
        let exact = c.search.as_ref().map(|s| (s.rank, s.exact));
        let exposure_exact = c
            .search
            .as_ref()
            .map(|s| g.log2_space - (s.rank as f64).log2());
        // The extrapolation never claims more than a search proved possible: capped at the
        // search's exposure (exact or bound) and flagged.
        let capped = match (skew, exposure_exact) {
            (Some(x), Some(bound)) if x > bound + 1e-9 => Some(x),
            _ => None,
        };
        let skew = match (skew, exposure_exact) {
            (Some(x), Some(bound)) => Some(x.min(bound)),
            (x, _) => x,
        };
        let mut search_note = c.search_note.clone();
        if let (Some(x), Some(bound)) = (capped, exposure_exact) {
            let note = format!(
                "skew-normal extrapolation {x:.2} bits exceeded the exact-rank search's {bound:.2} bits; shown capped at the search's value"
            );
            search_note = Some(match search_note {
                Some(n) => format!("{n}; {note}"),
                None => note,
            });
        }
        // Exact where the search finished; else the interpolation, never above a search's bound.
        let headline = match (&c.search, exposure_exact) {
            (Some(s), Some(e)) if s.exact => e,
            (Some(_), Some(bound)) => exposure_rank.min(bound),
            _ => exposure_rank,
        };
        let mut f = Finding::new("canary", metric::CANARY_EXPOSURE, Some(headline))
            .with_param("canary", c.spec.id.as_str())
            .with_param("kind", c.spec.kind.as_str())
            .with_param("repetitions", c.spec.repetitions as u64)
            .with_param("rung", c.spec.rung as u64);
        match &c.search {
            Some(s) if s.exact => {
                f = f
                    .with_param("method", "exact-rank")
                    .with_counts(s.rank, g.log2_space.exp2().round() as u64);
            }
            _ => {
                f = f
                    .with_param("method", "rank-interpolation")
                    .with_counts(k, n)
                    .with_interval(
                        conf,
                        interval.0,
                        interval.1,
                        "clopper-pearson on k/n, −log₂",
                    );
                if k == 0 {
                    f = f.with_caveat(format!(
                        "no reference secret was as likely as the canary: interpolation saturates at log₂ {n} = {:.2} bits; the exact rank or the skew-normal extrapolation says how far beyond",
                        (n as f64).log2()
                    ));
                }
                if let Some(s) = c.search.as_ref().filter(|s| !s.exact) {
                    f = f.with_caveat(format!(
                        "the exact-rank search stopped after {} model calls with rank ≥ {}: exposure ≤ {:.2} bits",
                        s.expansions,
                        s.rank,
                        g.log2_space - (s.rank as f64).log2()
                    ));
                }
            }
        }
        findings.push(f);
        rows.push(CanaryRow {
            id: c.spec.id.clone(),
            kind: c.spec.kind.clone(),
            repetitions: c.spec.repetitions,
            rung: c.spec.rung,
            secret: c.spec.secret.clone(),
            log2_space: g.log2_space,
            refs_at_least_as_likely: k,
            references: n,
            exposure_rank,
            exposure_rank_interval: interval,
            exposure_skewnorm: skew,
            exact_rank: exact,
            exposure_exact,
            search_expansions: c.search.as_ref().map(|s| s.expansions),
            search_note,
            exposure: headline,
        });
    }
    // Mean exposure per rung of the ladder (copies requested); canaries a coin left out of the
    // training data are controls, under rung 0.
    let mut rungs: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for r in &rows {
        rungs.entry(r.rung_key()).or_default().push(r.exposure);
    }
    for (rung, v) in &rungs {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        findings.push(
            Finding::new("canary", metric::CANARY_EXPOSURE_MEAN, Some(mean))
                .with_param("rung", *rung as u64)
                .with_counts(v.len() as u64, v.len() as u64),
        );
    }
    let planted: Vec<&CanaryRow> = rows.iter().filter(|r| r.repetitions > 0).collect();
    let trend = spearman(
        &planted
            .iter()
            .map(|r| r.repetitions as f64)
            .collect::<Vec<_>>(),
        &planted.iter().map(|r| r.exposure).collect::<Vec<_>>(),
    );
    if let Some(rho) = trend {
        findings.push(
            Finding::new("canary", metric::CANARY_EXPOSURE_TREND, Some(rho))
                .with_param("statistic", "spearman")
                .with_counts(planted.len() as u64, planted.len() as u64),
        );
    }
    for gf in &fits {
        if let Some(fit) = &gf.fit
            && fit.ks_p < 0.01
        {
            for f in findings.iter_mut().filter(|f| {
                f.metric == metric::CANARY_EXPOSURE
                    && f.params.get("kind").and_then(|v| v.as_str()) == Some(gf.kind.as_str())
            }) {
                f.caveats.push(format!(
                    "the skew-normal fit to the {} references is poor (KS {:.3}, p {:.3}); read its extrapolated exposure with care",
                    gf.kind, fit.ks, fit.ks_p
                ));
            }
        }
    }
    (
        findings,
        CanaryDetail {
            source: obs.source.clone(),
            rows,
            fits,
            trend,
            settings: serde_json::to_value(&obs.settings).unwrap_or_default(),
        },
    )
}

crate::stored_as_json!(Observations);

impl crate::probe::api::Settings for Settings {
    fn validate(&self) -> std::result::Result<(), String> {
        Settings::validate(self)
    }
}

/// Where the canaries of an audit come from: a `--canaries` file, or the training record of a
/// model phiprobe trained (`training.json` beside the weights).
pub fn source(
    canaries: Option<&std::path::Path>,
    training: Option<&crate::train::run::TrainingRecord>,
    model: &str,
    references: usize,
    seed: u64,
) -> Result<Option<CanarySet>> {
    if let Some(f) = canaries {
        let (specs, groups) = from_file(f, references, seed)?;
        return Ok(Some((format!("--canaries {}", f.display()), specs, groups)));
    }
    let tr = std::path::Path::new(model).join("training.json");
    Ok(training.and_then(|r| r.canaries.as_ref()).map(|p| {
        let (specs, groups) = from_planted(p);
        (format!("training record {}", tr.display()), specs, groups)
    }))
}

fn audit_source(s: &Settings, cx: &crate::probe::api::Observe<'_>) -> Result<Option<CanarySet>> {
    let training = if cx.canaries.is_some() {
        None
    } else {
        cx.training.get()?
    };
    source(cx.canaries, training, cx.target, s.references, cx.seed)
}

/// The canary probe: exposure of planted secrets (Carlini et al. 2019).
pub struct Canary;

impl crate::probe::api::Probe for Canary {
    const KIND: &'static str = "canary";
    const TITLE: &'static str = "canary — how many bits of a planted secret does the model give away? (exposure, Carlini et al. 2019)";
    const FILE: &'static str = "canary.json";
    const RECORDED_WHEN_ABSENT: bool = true;
    type Settings = Settings;
    type Observations = Observations;

    fn preflight(s: Option<&Settings>, cx: &crate::probe::api::Observe<'_>) -> Result<()> {
        match s {
            Some(s) => audit_source(s, cx).map(|_| ()),
            None if cx.canaries.is_some() => Err(Error::Usage(
                "--canaries was given but the plan has no canary probe; add [[probe]] kind = \"canary\"".into(),
            )),
            None => Ok(()),
        }
    }

    fn resume_key(s: &Settings, cx: &crate::probe::api::Observe<'_>) -> Result<serde_json::Value> {
        let set = audit_source(s, cx)?;
        Ok(serde_json::json!({
            "settings": s,
            "canaries": set.as_ref().map(|(src, specs, groups)| serde_json::json!({
                "source": src,
                "digest": crate::fsx::hash::sha256_hex(
                    &serde_json::to_vec(&(specs, groups)).unwrap_or_default()
                ),
            })),
        }))
    }

    fn observe(
        s: &Settings,
        cx: &mut crate::probe::api::Observe<'_>,
    ) -> Result<Option<Observations>> {
        let Some((source, specs, groups)) = audit_source(s, cx)? else {
            return Ok(None);
        };
        let model = cx.target_model()?;
        let progress = &mut *cx.progress;
        let mut p = |done: usize, total: usize| progress("canaries", done, total);
        observe(
            model.as_ref(),
            &specs,
            &groups,
            &source,
            s,
            cx.batch_tokens,
            &mut p,
        )
        .map(Some)
    }

    fn analyze(
        _s: &Settings,
        obs: Option<&Observations>,
        _cx: &crate::probe::api::Analyze<'_>,
        out: &mut crate::evidence::FindingsFile,
    ) -> Result<()> {
        match obs {
            Some(o) => {
                let (findings, detail) = analyze(o);
                out.findings.extend(findings);
                out.canary = Some(detail);
            }
            None => out.findings.push(
                Finding::new("canary", metric::CANARY_EXPOSURE, None).with_caveat(
                    "not measured: the target has no canaries (it was not trained by phiprobe with a canary plan, and no --canaries file was given)",
                ),
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::FileHash;
    use crate::model::mock::MockModel;

    fn mock(memorized: &[&str]) -> MockModel {
        MockModel::new(
            3,
            6.0,
            memorized.iter().map(|s| (*s).to_owned()).collect(),
            FileHash::of("mock", b""),
        )
    }

    /// The exact rank from the search equals brute-force enumeration.
    #[test]
    fn the_observations_record_the_references_that_ran() {
        let model = mock(&["Code 417 on file."]);
        let context = "Code {secret} on file.";
        let specs = vec![CanarySpec {
            id: "pin-r4-0".into(),
            kind: "pin".into(),
            format: "{d3}".into(),
            context: context.into(),
            secret: "417".into(),
            repetitions: 4,
            rung: 4,
        }];
        let groups = vec![RefGroup {
            kind: "pin".into(),
            format: "{d3}".into(),
            context: context.into(),
            secrets: ["001", "002", "003", "004", "005"].map(String::from).to_vec(),
        }];
        let settings = Settings {
            search: SearchMode::Never,
            ..Settings::default()
        };
        assert_eq!(settings.references, 1000);
        let obs = observe(&model, &specs, &groups, "training record t", &settings, 4096, &mut |_, _| {})
            .unwrap();
        assert_eq!(obs.settings.references, 5, "what ran, not what the plan asked");
        assert!(obs.source.contains("the plan's references = 1000"), "{}", obs.source);
    }

    #[test]
    fn search_rank_equals_enumeration() {
        let format = Format::parse("{d3}").unwrap();
        let context = "Code {secret} on file.";
        let model = mock(&["Code 417 on file."]);
        let surfaces = search::Surfaces::of(&model).unwrap();
        let mut rng = Rng::new(9);
        let mut secrets = vec!["417".to_owned(), "000".into(), "999".into()];
        secrets.extend((0..12).map(|_| format.sample(&mut rng)));
        for secret in &secrets {
            let q = search::Query {
                format: &format,
                context,
                secret,
            };
            let limits = search::Limits {
                max_expansions: 1_000_000,
                batch: 7,
            };
            let got = search::exact_rank(&model, &surfaces, &q, limits).unwrap();
            let e = search::brute_rank(&model, &q, 10_000, 64).unwrap().unwrap();
            let (want, enumerated) = (e.rank, e.scored);
            assert_eq!(got.logprob, e.logprob);
            assert!(got.exact);
            assert_eq!(got.rank, want, "{secret}");
            assert_eq!(enumerated, 1000);
            if secret == "417" {
                assert_eq!(got.rank, 1);
                // Memorised: the search touches a sliver of what enumeration scores.
                assert!(got.expansions * 20 < enumerated, "{got:?}");
            }
        }
        // A budget too small for a deep rank gives a bound, never a wrong exact value.
        let q = search::Query {
            format: &format,
            context,
            secret: "999",
        };
        let tight = search::Limits {
            max_expansions: 12,
            batch: 4,
        };
        let got = search::exact_rank(&model, &surfaces, &q, tight).unwrap();
        let want = search::brute_rank(&model, &q, 10_000, 64)
            .unwrap()
            .unwrap()
            .rank;
        if !got.exact {
            assert!(got.rank <= want);
        } else {
            assert_eq!(got.rank, want);
        }
    }

    #[test]
    fn analysis_reports_every_estimate() {
        let nll: Vec<f64> = (1..=16).map(f64::from).collect();
        let spec = |id: &str, secret: &str, reps| CanarySpec {
            id: id.into(),
            kind: "pin".into(),
            format: "{d4}".into(),
            context: "PIN {secret}.".into(),
            secret: secret.into(),
            repetitions: reps,
            rung: reps,
        };
        let obs = Observations {
            source: "test".into(),
            canaries: vec![
                CanaryObservation {
                    spec: spec("a", "1234", 1),
                    group: 0,
                    nll: 3.5,
                    refs_at_least_as_likely: 3,
                    search: None,
                    search_note: None,
                },
                CanaryObservation {
                    spec: spec("b", "4321", 8),
                    group: 0,
                    nll: 0.1,
                    refs_at_least_as_likely: 0,
                    search: Some(search::Outcome {
                        rank: 2,
                        exact: true,
                        expansions: 10,
                        computed: 10,
                        batches: 1,
                        leaves: 2,
                        logprob: -0.1,
                        fixed_tokens: 2,
                    }),
                    search_note: None,
                },
            ],
            groups: vec![GroupObservation {
                kind: "pin".into(),
                format: "{d4}".into(),
                context: "PIN {secret}.".into(),
                log2_space: 10_000f64.log2(),
                nll,
            }],
            settings: Settings::default(),
        };
        let (f, d) = analyze(&obs);
        // TF Privacy's case: rank 4 among references 1..16 → exposure 2.
        assert_eq!(d.rows[0].exposure_rank, 2.0);
        assert_eq!(d.rows[0].exposure, 2.0);
        // Exact rank 2 of 10⁴ → log₂ 10⁴ − 1.
        assert!((d.rows[1].exposure - (10_000f64.log2() - 1.0)).abs() < 1e-12);
        assert_eq!(d.rows[1].exposure_rank, 4.0);
        assert!(d.rows[1].exposure_skewnorm.unwrap() > 4.0);
        let (lo, hi) = d.rows[0].exposure_rank_interval;
        assert!(lo < 2.0 && hi > 2.0);
        assert!(f.iter().any(|x| x.metric == metric::CANARY_EXPOSURE_MEAN));
        // A search that stopped at rank ≥ 5000 bounds exposure by 1 bit: the skew-normal
        // extrapolation (> 4 bits above) is capped there and flagged.
        let mut obs = obs;
        if let Some(s) = obs.canaries[1].search.as_mut() {
            s.rank = 5000;
            s.exact = false;
        }
        let (_, d) = analyze(&obs);
        let bound = 10_000f64.log2() - 5000f64.log2();
        assert!((d.rows[1].exposure_skewnorm.unwrap() - bound).abs() < 1e-12);
        assert!(
            d.rows[1]
                .search_note
                .as_deref()
                .is_some_and(|n| n.contains("capped")),
            "{:?}",
            d.rows[1].search_note
        );
    }

    #[test]
    fn spearman_known_values() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        // Ties: x = [1,2,2,3], y = [1,3,2,4] → ranks x [1,2.5,2.5,4], y [1,3,2,4]: ρ = 0.9487.
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((r - 0.948_683).abs() < 1e-6, "{r}");
    }
}
