//! PHI examples for the expert (`audit --include-phi-examples`): the identifier values the
//! model reproduced, the attribute values it ranked first, and the texts of the records the
//! membership attacks expose most. These are raw PHI: they are only ever written into an
//! AES-256-GCM encrypted bundle (`integrity::bundle`), never into a report.

use crate::probe::Probe as _;

const EXTRACTION_FILE: &str = crate::probe::extraction::Extraction::FILE;
const INVERSION_FILE: &str = crate::probe::inversion::Inversion::FILE;
use crate::Result;
use crate::data::text::TextRecords;
use crate::evidence::FindingsFile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Format tag of the bundle's content.
pub const FORMAT: &str = "phiprobe-phi-examples-1";

/// A member record a membership attack flags, with its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipExample {
    /// Record id (the data's own: this bundle is encrypted PHI).
    pub record_id: String,
    /// The pseudonym reports and findings.json show for it.
    #[serde(default)]
    pub pseudonym: String,
    /// Attacks that list it among their most exposed records.
    pub attacks: Vec<String>,
    /// The record's text (PHI).
    pub text: String,
}

/// An identifier a targeted extraction reproduced exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractionExample {
    /// Record id (the data's own: this bundle is encrypted PHI).
    pub record_id: String,
    /// The pseudonym reports and findings.json show for it.
    #[serde(default)]
    pub pseudonym: String,
    /// Member of the training data.
    pub member: bool,
    /// Prefix length (None: an identifier prompt).
    pub k: Option<usize>,
    /// Decode that reproduced it.
    pub decode: String,
    /// Safe Harbor category.
    pub category: String,
    /// The value(s) of that category the record holds (PHI).
    pub values: Vec<String>,
}

/// A field value the model ranked first among the candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InversionExample {
    /// Record id (the data's own: this bundle is encrypted PHI).
    pub record_id: String,
    /// The pseudonym reports and findings.json show for it.
    #[serde(default)]
    pub pseudonym: String,
    /// Member of the training data.
    pub member: bool,
    /// Field inferred.
    pub field: String,
    /// The true value the model ranked first (PHI).
    pub value: String,
    /// Candidates ranked.
    pub candidates: u32,
    /// Model probability of the truth among the candidates.
    pub p_true: f64,
}

/// The bundle's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Examples {
    /// [`FORMAT`].
    pub format: String,
    /// The run.
    pub run_id: String,
    /// A reminder of what this is.
    pub notice: String,
    /// Membership examples.
    pub membership: Vec<MembershipExample>,
    /// Extraction examples.
    pub extraction: Vec<ExtractionExample>,
    /// Inversion examples.
    pub inversion: Vec<InversionExample>,
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    if !path.is_file() {
        return Ok(None);
    }
    crate::fsx::read_json(path, "observations").map(Some)
}

/// Collects the examples of a finished audit from its findings and observations.
pub fn collect(
    recs: Option<&TextRecords>,
    obs_dir: &Path,
    file: &FindingsFile,
) -> Result<Examples> {
    let mut ex = Examples {
        format: FORMAT.into(),
        run_id: file.manifest.run_id.clone(),
        notice: "Contains protected health information. Keep encrypted; share only with the expert named in the determination.".into(),
        membership: Vec::new(),
        extraction: Vec::new(),
        inversion: Vec::new(),
    };
    let Some(recs) = recs else {
        return Ok(ex);
    };
    let index = recs.pseudonym_index();
    if let Some(m) = &file.membership {
        let mut by_record: std::collections::BTreeMap<&str, BTreeSet<&str>> = Default::default();
        for a in &m.attacks {
            for v in &a.vulnerable {
                by_record
                    .entry(v.record_id.as_str())
                    .or_default()
                    .insert(a.attack.as_str());
            }
        }
        for (id, attacks) in by_record {
            if let Some(&r) = index.get(id) {
                ex.membership.push(MembershipExample {
                    record_id: recs.ids[r].clone(),
                    pseudonym: id.to_owned(),
                    attacks: attacks.into_iter().map(str::to_owned).collect(),
                    text: recs.texts[r].clone(),
                });
            }
        }
    }
    if let Some(o) = read::<crate::probe::extraction::Observations>(&obs_dir.join(EXTRACTION_FILE))?
    {
        for a in &o.attempts {
            let Some(id) = o.records.get(a.record) else {
                continue;
            };
            let Some(&r) = index.get(id.as_str()) else {
                continue;
            };
            for f in a.fields.iter().filter(|f| f.exact) {
                let values: Vec<String> = recs
                    .identifiers
                    .iter()
                    .filter(|c| c.category == f.category)
                    .map(|c| c.values[r].clone())
                    .filter(|v| !v.is_empty())
                    .collect();
                ex.extraction.push(ExtractionExample {
                    record_id: recs.ids[r].clone(),
                    pseudonym: id.clone(),
                    member: o.member.get(a.record).copied().unwrap_or(false),
                    k: a.k,
                    decode: a.decode.id().into(),
                    category: f.category.id().into(),
                    values,
                });
            }
        }
    }
    if let Some(o) = read::<crate::probe::inversion::Observations>(&obs_dir.join(INVERSION_FILE))? {
        let names: Vec<String> = o.fields.iter().map(|f| f.name.clone()).collect();
        let columns = recs.read_columns(&names)?;
        for t in o.targets.iter().filter(|t| t.rank == 1) {
            let (Some(col), Some(&r)) = (
                columns.get(t.field).and_then(Option::as_ref),
                index.get(t.record.as_str()),
            ) else {
                continue;
            };
            ex.inversion.push(InversionExample {
                record_id: recs.ids[r].clone(),
                pseudonym: t.record.clone(),
                member: t.member,
                field: col.name.clone(),
                value: col.values[r].clone(),
                candidates: t.candidates,
                p_true: t.p_true,
            });
        }
    }
    Ok(ex)
}
