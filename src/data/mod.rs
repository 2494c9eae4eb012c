//! Records, dataset cards, loaders and the synthetic PHI-like generator.
//!
//! Only this module and `risk/` touch polars (DESIGN.md §2); everything else sees the encoded
//! [`Table`].

pub mod card;
pub mod load;
pub mod observations;
mod scan;
pub mod scores;
pub mod synth;
mod table;
pub mod text;

pub use card::{DatasetCard, Format, Role};
pub use load::{ReadOptions, Source};
pub use table::{Column, MISSING, Table};

use crate::error::{Error, Result};
use crate::phi::SafeHarbor;
use std::path::{Path, PathBuf};

/// A dataset opened for analysis: its rows, and its card when there is one.
pub struct Dataset {
    /// The parsed rows.
    pub source: Source,
    /// The card, when the data was opened through one.
    pub card: Option<DatasetCard>,
    /// Display name.
    pub name: String,
    /// The card or data path the user gave.
    pub path: PathBuf,
}

impl Dataset {
    /// Opens `path`: a dataset card (`.toml`) or a data file (CSV, Parquet, JSONL).
    pub fn open(path: &Path, separator: Option<u8>, format: Option<Format>) -> Result<Self> {
        if path.extension().is_some_and(|e| e == "toml") {
            if separator.is_some() || format.is_some() {
                return Err(Error::Usage(
                    "--separator and --format apply to data files; a dataset card sets them itself"
                        .into(),
                ));
            }
            return Self::open_card(path);
        }
        if !path.exists() {
            return Err(Error::Read {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let format = format
            .or_else(|| Format::from_path(path))
            .unwrap_or(Format::Csv);
        let separator = separator.unwrap_or_else(|| {
            if path.extension().is_some_and(|e| e == "tsv") {
                b'\t'
            } else {
                b','
            }
        });
        let opts = ReadOptions {
            format,
            separator,
            missing: Vec::new(),
        };
        let source = load::read(&[path.to_owned()], &opts)?;
        Ok(Self {
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |f| f.to_string_lossy().into(),
            ),
            source,
            card: None,
            path: path.to_owned(),
        })
    }

    /// Opens a dataset card and its data, checking record ids and the membership split.
    pub fn open_card(path: &Path) -> Result<Self> {
        let card = DatasetCard::load(path)?;
        let source = load::read_card(&card)?;
        let names = source.column_names();
        for spec in &card.columns {
            if !names.contains(&spec.name) {
                return Err(Error::unknown_column(&source.path, &spec.name, &names));
            }
        }
        if let Some(rid) = &card.record_id {
            let col = source.encode(rid, None)?;
            load::check_unique_ids(&source.path, &col)?;
        }
        let ds = Self {
            name: card.name.clone(),
            source,
            path: path.to_owned(),
            card: Some(card),
        };
        ds.check_membership()?;
        Ok(ds)
    }

    /// Every file read to open this dataset (the card, its data and member lists).
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.card {
            Some(c) => c.files(),
            None => vec![self.path.clone()],
        }
    }

    /// The patient-id column, if any.
    pub fn patient_column(&self) -> Option<&str> {
        self.card.as_ref()?.patient_id.as_deref()
    }

    /// Declared types of the card's columns.
    pub fn declared_types(&self) -> Vec<(String, card::ValueType)> {
        self.card.as_ref().map_or_else(Vec::new, |c| {
            c.columns
                .iter()
                .filter_map(|s| s.value_type.map(|t| (s.name.clone(), t)))
                .collect()
        })
    }

    /// Columns with a role in the card (empty without a card).
    pub fn with_role(&self, role: Role) -> Vec<String> {
        self.card
            .as_ref()
            .map_or_else(Vec::new, |c| c.with_role(role))
    }

    /// The Safe Harbor category a column is declared to carry.
    pub fn category(&self, column: &str) -> Option<SafeHarbor> {
        self.card
            .as_ref()?
            .spec(column)?
            .category
            .as_deref()
            .and_then(SafeHarbor::from_id)
    }

    /// The role a column is declared to have.
    pub fn role(&self, column: &str) -> Option<Role> {
        Some(self.card.as_ref()?.spec(column)?.role)
    }

    /// Verifies that no patient is both a member and a non-member.
    fn check_membership(&self) -> Result<()> {
        let Some(card) = &self.card else {
            return Ok(());
        };
        let Some(m) = &card.membership else {
            return Ok(());
        };
        let patient = match &card.patient_id {
            Some(p) => Some(self.source.encode(p, None)?),
            None => None,
        };
        if let Some(col) = &m.column {
            let member = self.source.encode(col, None)?;
            let parsed: Vec<Option<bool>> = member
                .dictionary
                .iter()
                .map(|v| load::parse_member(v))
                .collect();
            let mut state: Vec<u8> = vec![0; patient.as_ref().map_or(0, |p| p.dictionary.len())];
            let mut overlap = 0;
            let mut first = None;
            for (row, &c) in member.codes.iter().enumerate() {
                let value = if c == MISSING {
                    None
                } else {
                    parsed[c as usize]
                };
                let Some(is_member) = value else {
                    return Err(Error::WrongType {
                        path: self.source.path.clone(),
                        column: col.clone(),
                        expected: "membership flag (true/false, 1/0, member/non-member)".into(),
                        row: row + 1,
                    });
                };
                if let Some(p) = &patient {
                    let pc = p.codes[row];
                    if pc == MISSING {
                        continue;
                    }
                    let bit = if is_member { 1 } else { 2 };
                    let s = &mut state[pc as usize];
                    if *s | bit == 3 && *s != 3 {
                        overlap += 1;
                        first.get_or_insert(row + 1);
                    }
                    *s |= bit;
                }
            }
            if let Some(row) = first {
                return Err(Error::MembershipOverlap {
                    path: self.source.path.clone(),
                    count: overlap,
                    row,
                });
            }
        } else if let (Some(mp), Some(np)) = (&m.members, &m.non_members) {
            let read_ids = |p: &PathBuf| card::read_member_ids(&card.base_dir.join(p));
            let listed = read_ids(mp)?;
            let non = read_ids(np)?;
            // Ids that match no patient are ignored; say how many (never which).
            if let Some(p) = &patient {
                let known: std::collections::HashSet<&str> =
                    p.dictionary.iter().map(String::as_str).collect();
                for (file, ids) in [(mp, &listed), (np, &non)] {
                    let unmatched = ids.iter().filter(|i| !known.contains(i.as_str())).count();
                    if unmatched > 0 {
                        tracing::warn!(
                            "{}: {unmatched} of {} listed patient id(s) match no patient of the data and are ignored",
                            card.base_dir.join(file).display(),
                            ids.len()
                        );
                    }
                }
            }
            let members: std::collections::HashSet<String> = listed.into_iter().collect();
            let overlapping: Vec<usize> = non
                .iter()
                .enumerate()
                .filter(|(_, id)| members.contains(*id))
                .map(|(i, _)| i + 1)
                .collect();
            if let Some(&row) = overlapping.first() {
                return Err(Error::MembershipOverlap {
                    path: card.base_dir.join(np),
                    count: overlapping.len(),
                    row,
                });
            }
        }
        Ok(())
    }
}
