//! `phiprobe risk`: a dataset's re-identification risk, as a run folder. Every input is read
//! and checked before the folder is claimed; the findings are gated, written whole and logged.

use std::path::PathBuf;

use crate::data::{Dataset, Format};
use crate::evidence::{Determination, FileHash, FindingsFile};
use crate::risk::RiskSettings;
use crate::{Error, Result};

/// What `risk` runs.
#[derive(Debug, Clone)]
pub struct RiskSpec {
    /// Dataset card or data file.
    pub data: PathBuf,
    /// Field separator of a delimited file.
    pub separator: Option<u8>,
    /// Input format (default: from the extension).
    pub format: Option<Format>,
    /// Quasi-identifiers (empty: the card's).
    pub qi: Vec<String>,
    /// Sensitive attributes (empty: the card's).
    pub sensitive: Vec<String>,
    /// Everything else of the analysis (`qi`, `sensitive` and `label` are filled here).
    pub settings: RiskSettings,
    /// A release policy.
    pub policy: Option<PathBuf>,
    /// Facts of the Expert Determination.
    pub determination: Option<PathBuf>,
    /// Seed.
    pub seed: u64,
    /// Output folder (default: `reports/<run id>`).
    pub out: Option<PathBuf>,
}

/// What a `risk` run produced.
#[derive(Debug)]
pub struct RiskOutcome {
    /// The findings written.
    pub file: FindingsFile,
    /// The run folder.
    pub out: PathBuf,
    /// Findings that breached the policy.
    pub failed: u64,
    /// Rows read.
    pub rows: usize,
    /// Seconds spent loading, analysing and writing.
    pub seconds: (f64, f64, f64),
}

/// The quasi-identifiers and sensitive attributes: the given lists, else the card's roles.
pub fn resolve_columns(
    ds: &Dataset,
    qi: &[String],
    sensitive: &[String],
) -> Result<(Vec<String>, Vec<String>)> {
    let qi = if qi.is_empty() {
        ds.with_role(crate::data::Role::Quasi)
    } else {
        qi.to_vec()
    };
    if qi.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no quasi-identifiers: pass --qi a,b,… (a data file has no card to say which columns are QIs)",
            ds.path.display()
        )));
    }
    let sensitive = if sensitive.is_empty() {
        ds.with_role(crate::data::Role::Sensitive)
    } else {
        sensitive.to_vec()
    };
    Ok((qi, sensitive))
}

/// Runs `risk` end to end and writes its run folder.
pub fn run(spec: &RiskSpec) -> Result<RiskOutcome> {
    let t0 = std::time::Instant::now();
    let policy = match &spec.policy {
        Some(p) => Some(crate::gate::Policy::load(p)?),
        None => None,
    };
    // Every input is read and checked before anything is written.
    let determination: Option<(Determination, FileHash)> = match &spec.determination {
        Some(p) => Some(super::plan::load_determination(p)?),
        None => None,
    };
    let ds = Dataset::open(&spec.data, spec.separator, spec.format)?;
    let t_load = t0.elapsed().as_secs_f64();
    let (qi, sensitive) = resolve_columns(&ds, &spec.qi, &spec.sensitive)?;
    let settings = RiskSettings {
        label: qi.join("+"),
        qi,
        sensitive,
        ..spec.settings.clone()
    };
    let analysis = crate::risk::analyze(&ds, &settings)?;
    let t_analyze = t0.elapsed().as_secs_f64() - t_load;
    let mut inputs = Vec::new();
    if ds.card.is_some() {
        inputs.push(crate::fsx::hash::hash_path(&spec.data)?);
    }
    inputs.extend(ds.source.hashes.iter().cloned());
    inputs.extend(analysis.extra_inputs.iter().cloned());
    let plan = serde_json::json!({ "data": spec.data.display().to_string(), "risk": [settings] });
    let mut findings = analysis.findings;
    let gate = match (&policy, &spec.policy) {
        (Some(p), Some(path)) => {
            let outcome = crate::gate::apply(p, path, &mut findings)?;
            Some(outcome.record(crate::fsx::hash::hash_path(path)?))
        }
        _ => None,
    };
    let failed = gate.as_ref().map_or(0, |g| g.failed);
    let id = super::run_id("risk", &plan, &inputs, spec.seed);
    if let Some(g) = &gate {
        inputs.push(g.policy.clone());
    }
    if let Some((_, h)) = &determination {
        inputs.push(h.clone());
    }
    let out = spec
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&id));
    let file = FindingsFile {
        findings,
        reid: vec![analysis.detail],
        gate,
        determination: determination.map(|d| d.0),
        ..FindingsFile::new(super::manifest(&id, "risk", spec.seed, plan, inputs))
    };
    let mut input_paths = ds.files();
    input_paths.extend(
        [&settings.population_file, &spec.policy, &spec.determination]
            .into_iter()
            .flatten()
            .cloned(),
    );
    let folder = super::folder::claim(&out, &input_paths)?;
    crate::report::write_run(&folder, &file, &crate::probe::sections)?;
    let (result, code) = super::folder::run_result(&file);
    super::folder::log_event(&out, &file, "run", result, code)?;
    drop(folder);
    let t_report = t0.elapsed().as_secs_f64() - t_load - t_analyze;
    Ok(RiskOutcome {
        file,
        out,
        failed,
        rows: ds.source.rows(),
        seconds: (t_load, t_analyze, t_report),
    })
}
