//! The membership probe's observation: score every audit record under the target and each
//! reference model once, cached as `observations/<model>/part-NNNNN.parquet` chunks (the unit
//! of resumption) plus `observations/audit.json` (record pseudonyms, labels, the models and their
//! cards). The attacks themselves ([`super::analyze`]) are pure functions of these scores.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ModelObservations, Observations, Settings, TokenRows, Total};
use crate::data::observations::{read_chunk, write_chunk};
use crate::data::text::TextRecords;
use crate::evidence::{FileHash, FindingsFile, ModelCard};
use crate::fsx::hash::hex;
use crate::fsx::{read_json, write_json};
use crate::model::LanguageModel;
use crate::probe::api::{Analyze, Observe, Probe, Stored};
use crate::train::run::Fleet;
use crate::{Error, Result};

/// Progress callback: (model name, records done, records total).
type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

fn werr(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// Records per observation chunk (the unit of resumption).
pub const CHUNK: usize = 256;
/// Format tag of `observations/audit.json`.
pub const AUDIT_FORMAT: &str = "phiprobe-audit-1";

/// One model to observe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Unique name (`target`, `ref-00`, …); the observation folder's name.
    pub name: String,
    /// `target`, `reference` (membership known) or `reference-model` (a base model).
    pub role: String,
    /// What to load (folder, GGUF file or `mock:` fixture).
    pub spec: String,
    /// A LoRA adapter merged in (the target's `--adapter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Over the audit records: '1' trained on, '0' not (references only).
    pub membership: Option<String>,
}

/// `observations/audit.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// [`AUDIT_FORMAT`].
    pub format: String,
    /// Audit records (of known membership) by their salted pseudonyms, never their ids.
    pub records: Vec<String>,
    /// Target membership, one per record.
    pub member: Vec<bool>,
    /// Each record's patient, as a number (first-appearance order; never the patient id).
    /// Empty in folders written before patients were recorded: one patient per record.
    #[serde(default)]
    pub patients: Vec<u32>,
    /// UTF-8 bytes of each text.
    pub text_bytes: Vec<u64>,
    /// zlib-compressed bytes of each text.
    pub zlib_bytes: Vec<u64>,
    /// Models observed, target first.
    pub models: Vec<ObservedModel>,
    /// Distribution checks on data features that are not stored here (dates: PHI), made when
    /// the audit read the data.
    #[serde(default)]
    pub data_shift: Vec<crate::evidence::ShiftCheck>,
}

/// A model whose observations are cached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservedModel {
    /// The spec.
    #[serde(flatten)]
    pub spec: ModelSpec,
    /// Its card (file hashes).
    pub card: ModelCard,
    /// SHA-256 over the token ids of every audit text.
    pub tokenization: String,
    /// Texts cut to the model's context length.
    pub truncated: usize,
}

/// zlib-compressed length (zlib format, level 6 — CPython's default level; miniz_oxide's stream
/// can differ from zlib's by a few bytes).
pub fn zlib_len(text: &str) -> u64 {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(text.as_bytes()).expect("writing to memory");
    e.finish().expect("writing to memory").len() as u64
}

/// Resolves the reference models: fleet folders, trained folders, a manifest.
fn reference_specs(
    references: &[PathBuf],
    manifest: Option<&Path>,
    ids: &[String],
) -> Result<Vec<ModelSpec>> {
    let mut out = Vec::new();
    let fleet_refs = |fleet: &Fleet, base: &Path, out: &mut Vec<ModelSpec>| {
        let pos: HashMap<&str, usize> = fleet
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.as_str(), i))
            .collect();
        for m in fleet.models.iter().filter(|m| m.role != "target") {
            let bits: Vec<u8> = m.membership.bytes().collect();
            // Records outside the fleet's pool were never trained on by its models.
            let membership: String = ids
                .iter()
                .map(|id| match pos.get(id.as_str()) {
                    Some(&i) if bits.get(i) == Some(&b'1') => '1',
                    _ => '0',
                })
                .collect();
            out.push(ModelSpec {
                name: m.name.clone(),
                role: "reference".into(),
                spec: base.join(&m.path).display().to_string(),
                adapter: None,
                membership: Some(membership),
            });
        }
    };
    for r in references {
        let fleet_json = r.join("fleet.json");
        if fleet_json.is_file() {
            let fleet: Fleet = read_json(&fleet_json, crate::train::run::FLEET_FORMAT)?;
            fleet_refs(&fleet, r, &mut out);
        } else if r.join("training.json").is_file() {
            let tr: crate::train::run::TrainingRecord =
                read_json(&r.join("training.json"), crate::train::run::TRAINING_FORMAT)?;
            let trained: HashSet<&str> = tr.membership.iter().map(String::as_str).collect();
            out.push(ModelSpec {
                name: r
                    .file_name()
                    .map_or_else(|| "reference".into(), |n| n.to_string_lossy().into_owned()),
                role: "reference".into(),
                spec: r.display().to_string(),
                adapter: None,
                membership: Some(
                    ids.iter()
                        .map(|id| {
                            if trained.contains(id.as_str()) {
                                '1'
                            } else {
                                '0'
                            }
                        })
                        .collect(),
                ),
            });
        } else {
            return Err(Error::Usage(format!(
                "{}: --references takes a fleet folder (with fleet.json, from `phiprobe train --references K` or `phiprobe merge`) or a model folder trained by phiprobe (with training.json); for other models use --reference-manifest",
                r.display()
            )));
        }
    }
    if let Some(m) = manifest {
        let fleet: Fleet = read_json(m, crate::train::run::FLEET_FORMAT)?;
        let base = m.parent().unwrap_or(Path::new("."));
        fleet_refs(&fleet, base, &mut out);
    }
    // Unique names.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in &mut out {
        let n = seen.entry(s.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            s.name = format!("{}-{}", s.name, n);
        }
    }
    Ok(out)
}

/// Scores one model over the audit texts into `dir`. Chunks already there are reused only when
/// `started.json` shows they were scored by a model with the same files (hashes) as `model`.
#[allow(clippy::too_many_arguments)]
fn observe_model(
    m: &ModelSpec,
    model: &dyn LanguageModel,
    keep_tokens: bool,
    ids: &[String],
    texts: &[&str],
    dir: &Path,
    batch_tokens: usize,
    progress: Progress<'_>,
) -> Result<(String, usize)> {
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    let started = dir.join("started.json");
    let same_model = read_json::<Vec<FileHash>>(&started, "observation state")
        .is_ok_and(|files| files == model.card().files);
    if !same_model {
        // Whatever is there was scored by another model (or nothing says by which): start over.
        std::fs::remove_dir_all(dir).map_err(werr(dir))?;
        std::fs::create_dir_all(dir).map_err(werr(dir))?;
        write_json(&started, &model.card().files)?;
    }
    let ctx = model.card().context_length.max(2);
    let mut tok_hash = Sha256::new();
    let mut truncated = 0usize;
    let chunks = ids.len().div_ceil(CHUNK);
    for c in 0..chunks {
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(ids.len()));
        let mut enc: Vec<Vec<u32>> = texts[lo..hi]
            .iter()
            .map(|t| model.encode(t))
            .collect::<Result<_>>()?;
        for e in &mut enc {
            if e.len() > ctx {
                truncated += 1;
                e.truncate(ctx);
            }
            // What is scored: equal hashes ⇔ the same token spans under every model.
            for t in e.iter() {
                tok_hash.update(t.to_le_bytes());
            }
            tok_hash.update(u32::MAX.to_le_bytes());
        }
        let path = dir.join(format!("part-{c:05}.parquet"));
        if path.is_file()
            && let Ok((got, _, _)) = read_chunk(&path)
            && got.as_slice() == &ids[lo..hi]
        {
            progress(&m.name, hi, ids.len());
            continue;
        }
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| (enc[i].len(), i));
        let mut rows = vec![TokenRows::default(); enc.len()];
        let mut totals = vec![Total::default(); enc.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() && enc[order[end]].len() * (end + 1 - start) <= batch_tokens {
                end += 1;
            }
            // Texts too short to score (fewer than two tokens) keep empty rows.
            let scorable: Vec<usize> = order[start..end]
                .iter()
                .copied()
                .filter(|&i| enc[i].len() >= 2)
                .collect();
            if !scorable.is_empty() {
                let b: Vec<Vec<u32>> = scorable.iter().map(|&i| enc[i].clone()).collect();
                for (&i, sc) in scorable.iter().zip(model.score(&b)?) {
                    let lp: Vec<f32> = sc.scores.iter().map(|t| t.logprob).collect();
                    let mean: Vec<f32> = sc.scores.iter().map(|t| t.mean).collect();
                    let var: Vec<f32> = sc.scores.iter().map(|t| t.var).collect();
                    let r = TokenRows::from_scores(&lp, &mean, &var);
                    totals[i] = Total::of(&r);
                    if keep_tokens {
                        rows[i] = r;
                    }
                }
            }
            progress(&m.name, lo + end, ids.len());
            start = end;
        }
        let rows: &[TokenRows] = if keep_tokens { &rows } else { &[] };
        write_chunk(&path, &ids[lo..hi], &totals, rows)?;
    }
    Ok((hex(&tok_hash.finalize()), truncated))
}

/// Reads every chunk of one model's observations, in order, checking the record ids: the
/// per-record totals, and the per-token rows when `keep_tokens` (the target's).
pub fn read_model(
    dir: &Path,
    ids: &[String],
    keep_tokens: bool,
) -> Result<(Vec<Total>, Vec<TokenRows>)> {
    let mut totals = Vec::with_capacity(ids.len());
    let mut rows = Vec::new();
    for c in 0..ids.len().div_ceil(CHUNK) {
        let path = dir.join(format!("part-{c:05}.parquet"));
        let (got, t, r) = read_chunk(&path)?;
        let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(ids.len()));
        if got.as_slice() != &ids[lo..hi] {
            return Err(Error::Parse {
                path,
                format: "phiprobe observations".into(),
                message: "record pseudonyms do not match observations/audit.json".into(),
            });
        }
        totals.extend(t);
        if keep_tokens {
            rows.extend(r);
        }
    }
    Ok((totals, rows))
}

/// Rebuilds the analysis input from a run folder's `observations/`.
pub fn load_observations(obs_dir: &Path) -> Result<(AuditRecord, Observations)> {
    let rec: AuditRecord = read_json(&obs_dir.join("audit.json"), AUDIT_FORMAT)?;
    if rec.format != AUDIT_FORMAT {
        return Err(Error::Parse {
            path: obs_dir.join("audit.json"),
            format: AUDIT_FORMAT.into(),
            message: format!("format '{}' is not {AUDIT_FORMAT}", rec.format),
        });
    }
    let n = rec.records.len();
    if [rec.member.len(), rec.text_bytes.len(), rec.zlib_bytes.len()]
        .iter()
        .any(|&l| l != n)
        || !(rec.patients.is_empty() || rec.patients.len() == n)
    {
        return Err(Error::Parse {
            path: obs_dir.join("audit.json"),
            format: AUDIT_FORMAT.into(),
            message: "records, member, patients, text_bytes and zlib_bytes differ in length".into(),
        });
    }
    let mut target = None;
    let mut target_tokens = Vec::new();
    let mut references = Vec::new();
    let mut reference_model = None;
    for m in &rec.models {
        let member = match &m.spec.membership {
            Some(bits) if bits.len() == n => Some(bits.bytes().map(|b| b == b'1').collect()),
            Some(_) => {
                return Err(Error::Parse {
                    path: obs_dir.join("audit.json"),
                    format: AUDIT_FORMAT.into(),
                    message: format!("membership of '{}' has the wrong length", m.spec.name),
                });
            }
            None => None,
        };
        let is_target = m.spec.role == "target";
        let (totals, rows) = read_model(&obs_dir.join(&m.spec.name), &rec.records, is_target)?;
        let mo = ModelObservations {
            name: m.spec.name.clone(),
            member,
            tokenization: m.tokenization.clone(),
            totals,
        };
        match m.spec.role.as_str() {
            "target" => {
                target = Some(mo);
                target_tokens = rows;
            }
            "reference-model" => reference_model = Some(mo),
            _ => references.push(mo),
        }
    }
    let target = target.ok_or_else(|| Error::Parse {
        path: obs_dir.join("audit.json"),
        format: AUDIT_FORMAT.into(),
        message: "no target model".into(),
    })?;
    let obs = Observations {
        records: rec.records.clone(),
        member: rec.member.clone(),
        patients: if rec.patients.is_empty() {
            (0..n as u32).collect()
        } else {
            rec.patients.clone()
        },
        text_bytes: rec.text_bytes.clone(),
        zlib_bytes: rec.zlib_bytes.clone(),
        target,
        target_tokens,
        references,
        reference_model,
    };
    Ok((rec, obs))
}

fn target_label(rec: &AuditRecord) -> String {
    let t = &rec.models[0];
    let weights = t
        .card
        .files
        .iter()
        .find(|f| f.path.ends_with(".safetensors") || f.path.ends_with(".gguf"))
        .map_or(String::new(), |f| {
            format!(", weights sha256 {}…", &f.sha256[..12.min(f.sha256.len())])
        });
    format!(
        "{} ({} {}{weights})",
        t.spec.spec, t.card.architecture, t.card.format
    )
}

/// Membership findings and detail from cached observations.
fn analyze_membership(
    rec: &AuditRecord,
    obs: &Observations,
    settings: &Settings,
    seed: u64,
) -> Result<(
    Vec<crate::evidence::Finding>,
    crate::evidence::MembershipDetail,
)> {
    let (mut findings, detail) =
        super::analyze(obs, settings, seed, &rec.data_shift, &target_label(rec))
            .map_err(Error::Usage)?;
    let truncated: usize = rec.models.iter().map(|m| m.truncated).max().unwrap_or(0);
    if truncated > 0 {
        for f in &mut findings {
            f.caveats.push(format!(
                "{truncated} text(s) were longer than a model's context and were scored on their first tokens only"
            ));
        }
    }
    Ok((findings, detail))
}

fn digest_ids(ids: &[String]) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// The card's records with known membership (the audit records) and their ids; their ids must
/// be unique. Errors name the card and record numbers, never an id.
fn audit_rows(recs: &TextRecords, card: Option<&Path>) -> Result<(Vec<usize>, Vec<String>)> {
    let card = card.unwrap_or(Path::new("data")).display();
    let rows: Vec<usize> = (0..recs.len())
        .filter(|&r| recs.member[r].is_some())
        .collect();
    if rows.is_empty() {
        return Err(Error::Usage(format!(
            "{card}: no record has a known membership; the card's [membership] section must mark members and non-members"
        )));
    }
    let ids: Vec<String> = rows.iter().map(|&r| recs.ids[r].clone()).collect();
    let mut seen = HashSet::new();
    if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(Error::Usage(format!(
            "{card}: a record id occurs twice among the audit records (records {} and {}); audit records need unique ids",
            ids.iter().position(|i| i == dup).map_or(0, |p| rows[p] + 1),
            ids.iter()
                .rposition(|i| i == dup)
                .map_or(0, |p| rows[p] + 1)
        )));
    }
    Ok((rows, ids))
}

/// The models to observe: the target, the references with known membership, and the
/// reference model without membership.
fn models(cx: &Observe<'_>, ids: &[String]) -> Result<Vec<ModelSpec>> {
    let mut models = vec![ModelSpec {
        name: "target".into(),
        role: "target".into(),
        spec: cx.target.to_owned(),
        adapter: cx.adapter.map(|a| a.display().to_string()),
        membership: None,
    }];
    models.extend(reference_specs(cx.references, cx.reference_manifest, ids)?);
    if let Some(r) = cx.reference_model {
        models.push(ModelSpec {
            name: "reference-model".into(),
            role: "reference-model".into(),
            spec: r.to_owned(),
            adapter: None,
            membership: None,
        });
    }
    Ok(models)
}

/// What the membership probe observed: `audit.json` and every model's scores.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `observations/audit.json`.
    pub record: AuditRecord,
    /// The scores, read back from the chunks.
    pub obs: Observations,
    /// Models scored in this invocation (the rest came from the cache).
    pub scored: Vec<String>,
}

impl Stored for Observed {
    fn read(path: &Path, _what: &str) -> Result<Self> {
        let (record, obs) = load_observations(path.parent().unwrap_or(Path::new(".")))?;
        Ok(Self {
            record,
            obs,
            scored: Vec::new(),
        })
    }
    /// Nothing left to write: `observe` writes the chunks as they are scored and `audit.json`
    /// last, and reads them back to build these observations.
    fn write(&self, _path: &Path) -> Result<()> {
        Ok(())
    }
}

/// The membership probe: loss, zlib, Min-K%, Min-K%++, reference, LiRA and RMIA attacks over
/// one cached score matrix (papers: the module documentation).
pub struct Membership;

impl crate::probe::api::Settings for Settings {
    fn validate(&self) -> std::result::Result<(), String> {
        Settings::validate(self)
    }
}

impl Probe for Membership {
    const KIND: &'static str = "membership";
    const TITLE: &'static str =
        "membership — can an attacker tell whether a record was in the training data?";
    const FILE: &'static str = "audit.json";
    const NEEDS_DATA: bool = true;
    const RECORDED_WHEN_ABSENT: bool = true;
    type Settings = Settings;
    type Observations = Observed;

    fn resume_key(s: &Settings, cx: &Observe<'_>) -> Result<serde_json::Value> {
        let Some(recs) = cx.records else {
            return Ok(serde_json::Value::Null);
        };
        let (rows, ids) = audit_rows(recs, cx.card)?;
        // The key is written beside the observations: it digests the records' pseudonyms, not
        // their ids (an unsalted digest of ids from a guessable id format could be confirmed).
        let pseudonyms: Vec<String> = rows.iter().map(|&r| recs.pseudonym(r)).collect();
        Ok(serde_json::json!({
            "settings": s,
            "records": digest_ids(&pseudonyms),
            "models": models(cx, &ids)?,
        }))
    }

    fn observe(s: &Settings, cx: &mut Observe<'_>) -> Result<Option<Observed>> {
        let Some(recs) = cx.records else {
            return Ok(None);
        };
        let (rows, ids) = audit_rows(recs, cx.card)?;
        let models = models(cx, &ids)?;
        // Past the reference models' membership (which needs the data's own ids), records are
        // named by their pseudonyms only: observations/ is part of the run folder.
        let ids: Vec<String> = rows.iter().map(|&r| recs.pseudonym(r)).collect();
        let texts: Vec<&str> = rows.iter().map(|&r| recs.texts[r].as_str()).collect();
        let member: Vec<bool> = rows.iter().map(|&r| recs.member[r] == Some(true)).collect();
        let mut observed = Vec::new();
        let mut scored = Vec::new();
        for m in &models {
            let dir = cx.dir.join(&m.name);
            let done = dir.join("done.json");
            let is_target = m.role == "target";
            if done.is_file()
                && let Ok(o) = read_json::<ObservedModel>(&done, "observation state")
                && o.spec == *m
                // The model files must still be the ones observed.
                && o.card.files.iter().all(|f| {
                    crate::model::hash_file(Path::new(&f.path))
                        .is_ok_and(|h| h.sha256 == f.sha256)
                })
            {
                (cx.progress)(&m.name, ids.len(), ids.len());
                observed.push(o);
                continue;
            }
            let model = (cx.load)(&m.spec, is_target)?;
            let (tokenization, truncated) = observe_model(
                m,
                model.as_ref(),
                is_target,
                &ids,
                &texts,
                &dir,
                cx.batch_tokens,
                &mut *cx.progress,
            )?;
            let o = ObservedModel {
                spec: m.clone(),
                card: model.card().clone(),
                tokenization,
                truncated,
            };
            write_json(&done, &o)?;
            observed.push(o);
            scored.push(m.name.clone());
        }
        // A reference that is the target itself would hand LiRA and RMIA the target's own signal.
        let weights = |o: &ObservedModel| -> Vec<String> {
            let mut w: Vec<String> = o
                .card
                .files
                .iter()
                .filter(|f| !f.path.ends_with(".json"))
                .map(|f| f.sha256.clone())
                .collect();
            w.sort();
            w
        };
        let target_weights = weights(&observed[0]);
        if let Some(twin) = observed[1..].iter().find(|o| {
            o.spec.adapter.is_none() && cx.adapter.is_none() && weights(o) == target_weights
        }) {
            return Err(Error::Usage(format!(
                "reference model '{}' ({}) has the same weights as the target; a reference model must be a different model",
                twin.spec.name, twin.spec.spec
            )));
        }
        let record = AuditRecord {
            format: AUDIT_FORMAT.into(),
            records: ids.clone(),
            member: member.clone(),
            patients: {
                let mut number: std::collections::HashMap<&str, u32> =
                    std::collections::HashMap::new();
                rows.iter()
                    .map(|&r| {
                        let next = number.len() as u32;
                        *number.entry(recs.patients[r].as_str()).or_insert(next)
                    })
                    .collect()
            },
            text_bytes: texts.iter().map(|t| t.len() as u64).collect(),
            zlib_bytes: texts.iter().map(|t| zlib_len(t)).collect(),
            models: observed,
            data_shift: recs
                .dates
                .iter()
                .map(|(name, days)| {
                    let v: Vec<f64> = rows
                        .iter()
                        .map(|&r| days[r].map_or(f64::NAN, |d| d as f64))
                        .collect();
                    super::shift_check(name, &v, &member, s, cx.seed)
                })
                .chain((recs.files.len() > 1).then(|| {
                    let files: Vec<u32> = rows.iter().map(|&r| recs.file_of[r]).collect();
                    super::categorical_shift_check("source_file", &files, &member, s, cx.seed)
                }))
                .collect(),
        };
        write_json(&cx.dir.join(Self::FILE), &record)?;
        let (record, obs) = load_observations(cx.dir)?;
        Ok(Some(Observed {
            record,
            obs,
            scored,
        }))
    }

    fn analyze(
        s: &Settings,
        obs: Option<&Observed>,
        cx: &Analyze<'_>,
        out: &mut FindingsFile,
    ) -> Result<()> {
        if let Some(o) = obs {
            let (findings, detail) = analyze_membership(&o.record, &o.obs, s, cx.seed)?;
            out.findings.extend(findings);
            out.membership = Some(detail);
        }
        Ok(())
    }

    fn recorded(old: &FindingsFile) -> Option<serde_json::Value> {
        old.membership.as_ref().map(|d| d.settings.clone())
    }

    fn inputs(obs: &Observed) -> Vec<FileHash> {
        obs.record
            .models
            .iter()
            .flat_map(|m| m.card.files.iter().cloned())
            .collect()
    }
}
