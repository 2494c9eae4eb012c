//! Text records of a dataset card: what models are trained on and probed with.

use super::{Dataset, MISSING, Role, load};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The text of every record with its ids and membership.
#[derive(Debug, Clone)]
pub struct TextRecords {
    /// The card.
    pub card: PathBuf,
    /// The data file (for messages).
    pub source: PathBuf,
    /// Every data file the card names.
    pub files: Vec<PathBuf>,
    /// The text column.
    pub column: String,
    /// Record ids (`row-N` without a record-id column).
    pub ids: Vec<String>,
    /// Patient ids (the record id without a patient-id column).
    pub patients: Vec<String>,
    /// Texts (empty string where missing).
    pub texts: Vec<String>,
    /// Member (true), held out (false), or unknown (no split in the card).
    pub member: Vec<Option<bool>>,
    /// Index into `files` of the file each record came from.
    pub file_of: Vec<u32>,
    /// Columns the card types as `date`, as days since 1970-01-01 (`None` where missing or
    /// not a date). For distribution checks; never written out.
    pub dates: Vec<(String, Vec<Option<i64>>)>,
    /// Columns the card gives a Safe Harbor category (identifiers and identifying
    /// quasi-identifiers), with every record's value (empty where missing). PHI: used to match
    /// and detect, never written out.
    pub identifiers: Vec<Identifier>,
    /// The data's salt (derived from the files' contents): record ids leave phiprobe only as
    /// [`TextRecords::pseudonym`]s, which whoever holds the data can map back and nobody else.
    pub salt: [u8; 32],
}

/// A column read beside the text ([`TextRecords::read_columns`]).
#[derive(Debug, Clone)]
pub struct FieldValues {
    /// Column name.
    pub name: String,
    /// Its role in the card (`None`: the card does not list it).
    pub role: Option<Role>,
    /// Its Safe Harbor category, when the card gives one.
    pub category: Option<crate::phi::SafeHarbor>,
    /// Value per record (empty where missing).
    pub values: Vec<String>,
}

/// One identifying column of the card.
#[derive(Debug, Clone)]
pub struct Identifier {
    /// Column name.
    pub name: String,
    /// Its Safe Harbor category.
    pub category: crate::phi::SafeHarbor,
    /// Value per record (empty where missing).
    pub values: Vec<String>,
}

impl TextRecords {
    /// Reads the card's text column (`column`, or the one column with role `text`).
    ///
    /// Kept whole: the card, its text column, roles, membership split and patient ids are checked
    /// in the order each depends on the last, naming the file in every error.
    pub fn load(card: &Path, column: Option<&str>) -> Result<Self> {
        let ds = Dataset::open_card(card)?;
        let column = match column {
            Some(c) => c.to_owned(),
            None => {
                let texts = ds.with_role(Role::Text);
                match texts.as_slice() {
                    [one] => one.clone(),
                    [] => {
                        return Err(Error::Usage(format!(
                            "{}: the card declares no text column; name one with --column",
                            card.display()
                        )));
                    }
                    many => {
                        return Err(Error::Usage(format!(
                            "{}: the card declares several text columns ({}); choose one with --column",
                            card.display(),
                            many.join(", ")
                        )));
                    }
                }
            }
        };
        let text = ds.source.encode(&column, None)?;
        let n = text.len();
        let c = ds.card.as_ref().expect("opened through a card");
        let value_of = |name: &Option<String>| -> Result<Option<Vec<String>>> {
            match name {
                Some(col) => {
                    let col = ds.source.encode(col, None)?;
                    Ok(Some(
                        (0..n)
                            .map(|r| col.value(r).unwrap_or("").to_owned())
                            .collect(),
                    ))
                }
                None => Ok(None),
            }
        };
        let ids = value_of(&c.record_id)?
            .unwrap_or_else(|| (1..=n).map(|r| format!("row-{r}")).collect());
        if let Some(row) = ids.iter().position(String::is_empty) {
            return Err(Error::WrongType {
                path: ds.source.path.clone(),
                column: c.record_id.clone().unwrap_or_default(),
                expected: "non-empty record id".into(),
                row: row + 1,
            });
        }
        let patients = value_of(&c.patient_id)?.unwrap_or_else(|| ids.clone());
        let texts = (0..n)
            .map(|r| text.value(r).unwrap_or("").to_owned())
            .collect();
        let member = match &c.membership {
            Some(m) if m.column.is_some() => {
                let col = m.column.as_ref().expect("checked");
                let codes = ds.source.encode(col, None)?;
                (0..n)
                    .map(|r| {
                        if codes.codes[r] == MISSING {
                            None
                        } else {
                            codes.value(r).and_then(load::parse_member)
                        }
                    })
                    .collect()
            }
            Some(m) => match (&m.members, &m.non_members) {
                (Some(mp), Some(np)) => {
                    let read = |p: &PathBuf| -> Result<HashSet<String>> {
                        Ok(super::card::read_member_ids(&c.base_dir.join(p))?
                            .into_iter()
                            .collect())
                    };
                    let (yes, no) = (read(mp)?, read(np)?);
                    patients
                        .iter()
                        .map(|p| {
                            if yes.contains(p) {
                                Some(true)
                            } else if no.contains(p) {
                                Some(false)
                            } else {
                                None
                            }
                        })
                        .collect()
                }
                _ => vec![None; n],
            },
            None => vec![None; n],
        };
        let mut dates = Vec::new();
        for spec in c
            .columns
            .iter()
            .filter(|s| s.value_type == Some(super::card::ValueType::Date))
        {
            let col = ds.source.encode(&spec.name, None)?;
            let days = (0..n)
                .map(|r| {
                    let v = col.value(r)?.trim();
                    if !super::card::ValueType::Date.accepts(v) {
                        return None;
                    }
                    let y = v[..4].parse().ok()?;
                    let m = v[5..7].parse().ok()?;
                    let d = v[8..10].parse().ok()?;
                    Some(crate::date::days_from_civil(y, m, d))
                })
                .collect();
            dates.push((spec.name.clone(), days));
        }
        let mut identifiers = Vec::new();
        for spec in &c.columns {
            let Some(category) = spec
                .category
                .as_deref()
                .and_then(crate::phi::SafeHarbor::from_id)
            else {
                continue;
            };
            let col = ds.source.encode(&spec.name, None)?;
            identifiers.push(Identifier {
                name: spec.name.clone(),
                category,
                values: (0..n)
                    .map(|r| col.value(r).unwrap_or("").trim().to_owned())
                    .collect(),
            });
        }
        let file_of: Vec<u32> = ds
            .source
            .file_rows
            .iter()
            .enumerate()
            .flat_map(|(f, &rows)| std::iter::repeat_n(f as u32, rows))
            .collect();
        Ok(Self {
            card: card.to_owned(),
            source: ds.source.path.clone(),
            files: c.data_paths(),
            column,
            ids,
            patients,
            texts,
            member,
            file_of,
            dates,
            identifiers,
            salt: ds.source.salt,
        })
    }

    /// What the PHI detector learns from this dataset: the words of its name columns, its
    /// street and city values, and its shaped identifier columns. Records whose membership is
    /// unknown are included: the vocabulary is about the data, not the split.
    pub fn vocabulary(&self) -> crate::phi::Vocabulary {
        use crate::phi::SafeHarbor as S;
        let mut v = crate::phi::Vocabulary::default();
        for id in &self.identifiers {
            let distinct: std::collections::BTreeSet<&str> = id
                .values
                .iter()
                .map(String::as_str)
                .filter(|x| !x.is_empty())
                .collect();
            match id.category {
                S::Name => v.names.extend(
                    distinct
                        .iter()
                        .flat_map(|x| x.split([' ', ',']))
                        .filter(|w| w.chars().count() >= 2)
                        .map(str::to_owned),
                ),
                // Street values lose their house and unit numbers: the phrase is the street.
                S::Geographic => v.places.extend(distinct.iter().filter_map(|x| {
                    let mut words: Vec<&str> = x
                        .split_whitespace()
                        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
                        .collect();
                    while words
                        .last()
                        .is_some_and(|w| matches!(*w, "Apt" | "Suite" | "Unit" | "#"))
                    {
                        words.pop();
                    }
                    (!words.is_empty()).then(|| words.join(" "))
                })),
                S::Date | S::Email | S::Url | S::Ip | S::Phone | S::Fax | S::Ssn => {}
                other => v
                    .shaped
                    .push((other, distinct.iter().map(|x| (*x).to_owned()).collect())),
            }
        }
        v.names.sort();
        v.names.dedup();
        v
    }

    /// Reads more columns of the card's data, row for row with the texts (PHI: for matching
    /// and scoring, never written out); `None` for a name the data does not have. Missing
    /// values are empty strings.
    pub fn read_columns(&self, names: &[String]) -> Result<Vec<Option<FieldValues>>> {
        let ds = Dataset::open_card(&self.card)?;
        let card = ds.card.as_ref().expect("opened through a card");
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let spec = card.spec(name);
            if !ds.source.has_column(name) {
                out.push(None);
                continue;
            }
            let col = ds.source.encode(name, None)?;
            let values: Vec<String> = (0..self.len())
                .map(|r| col.value(r).unwrap_or("").trim().to_owned())
                .collect();
            out.push(Some(FieldValues {
                name: name.clone(),
                role: spec.map(|s| s.role),
                category: spec
                    .and_then(|s| s.category.as_deref())
                    .and_then(crate::phi::SafeHarbor::from_id),
                values,
            }));
        }
        Ok(out)
    }

    /// The card's columns with a role, in card order (reads the card, not the data).
    pub fn columns_with_role(&self, role: Role) -> Result<Vec<String>> {
        Ok(super::DatasetCard::load(&self.card)?.with_role(role))
    }

    /// The card's columns with a role and one of `categories`, in card order (reads the card,
    /// not the data).
    pub fn columns_in_categories(
        &self,
        role: Role,
        categories: &[crate::phi::SafeHarbor],
    ) -> Result<Vec<String>> {
        Ok(super::DatasetCard::load(&self.card)?
            .columns
            .iter()
            .filter(|c| c.role == role)
            .filter(|c| {
                c.category
                    .as_deref()
                    .and_then(crate::phi::SafeHarbor::from_id)
                    .is_some_and(|k| categories.contains(&k))
            })
            .map(|c| c.name.clone())
            .collect())
    }

    /// Record `r`'s pseudonym: `rec-` and 12 hex digits of a salted SHA-256 of its id. Membership
    /// is PHI, so observations, findings and reports name records only this way.
    pub fn pseudonym(&self, r: usize) -> String {
        format!(
            "rec-{}",
            crate::phi::salted_hash(&self.salt, self.ids[r].as_bytes())
        )
    }

    /// Position of every record by its [`pseudonym`](Self::pseudonym).
    pub fn pseudonym_index(&self) -> std::collections::HashMap<String, usize> {
        (0..self.ids.len())
            .map(|r| (self.pseudonym(r), r))
            .collect()
    }

    /// Position of every record id.
    pub fn index(&self) -> std::collections::HashMap<&str, usize> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_salted_and_never_the_id() {
        let mut recs = TextRecords {
            card: "c.toml".into(),
            source: "d.csv".into(),
            files: Vec::new(),
            column: "text".into(),
            ids: vec!["P0000001-E01".into(), "P0000002-E01".into()],
            patients: vec!["P0000001".into(), "P0000002".into()],
            texts: vec![String::new(), String::new()],
            member: vec![Some(true), Some(false)],
            file_of: vec![0, 0],
            dates: Vec::new(),
            identifiers: Vec::new(),
            salt: [1; 32],
        };
        let a = recs.pseudonym(0);
        assert_eq!(a, recs.pseudonym(0), "stable");
        assert_ne!(a, recs.pseudonym(1));
        assert!(a.starts_with("rec-") && a.len() == 16 && !a.contains("P0000001"));
        assert_eq!(recs.pseudonym_index()[&a], 0);
        recs.salt = [2; 32];
        assert_ne!(a, recs.pseudonym(0), "another dataset, another pseudonym");
    }
}
