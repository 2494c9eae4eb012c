//! Dataset cards: a TOML file that says where the data is and what each column is.
//!
//! ```toml
//! name = "synthetic-ehr"
//! files = ["encounters.parquet"]      # relative to the card's folder
//! format = "parquet"                  # csv | parquet | jsonl (default: from the extension)
//! separator = ","                     # CSV only
//! missing = ["", "NA"]                # extra strings read as missing
//! patient_id = "patient_id"
//! record_id = "record_id"
//!
//! [membership]                        # either a column …
//! column = "member"                   # true/false, 1/0, member/non-member
//! # … or two files listing patient ids, one per line:
//! # members = "members.txt"
//! # non_members = "non_members.txt"
//!
//! [[column]]
//! name = "ssn"
//! role = "direct"                     # direct | quasi | sensitive | text | other
//! category = "ssn"                    # Safe Harbor category (direct identifiers, optional for QIs)
//! type = "string"                     # string | integer | float | date (optional, checked)
//! ```

use crate::error::{Error, Result};
use crate::phi::SafeHarbor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File format of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delimited text with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Csv, Format::Parquet, Format::Jsonl];

    /// Guesses the format from a file extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" => Some(Self::Csv),
            "parquet" | "pq" => Some(Self::Parquet),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Jsonl => "jsonl",
        }
    }

    /// File extension.
    pub fn extension(self) -> &'static str {
        self.name()
    }
}

/// What a column is, for the privacy analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Identifies a person on its own (a Safe Harbor category).
    Direct,
    /// Quasi-identifier: identifying in combination, and available to an attacker.
    Quasi,
    /// Sensitive attribute: what must not be disclosed.
    Sensitive,
    /// Free text that may contain identifiers.
    Text,
    /// Anything else.
    Other,
}

impl Role {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Quasi => "quasi",
            Self::Sensitive => "sensitive",
            Self::Text => "text",
            Self::Other => "other",
        }
    }
}

/// Declared value type of a column, checked at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Any text.
    String,
    /// Whole numbers.
    Integer,
    /// Real numbers.
    Float,
    /// ISO dates `YYYY-MM-DD`.
    Date,
}

impl ValueType {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Date => "date",
        }
    }

    /// Whether `s` is a valid value of this type.
    pub fn accepts(self, s: &str) -> bool {
        let s = s.trim();
        match self {
            Self::String => true,
            Self::Integer => s.parse::<i64>().is_ok(),
            Self::Float => s.parse::<f64>().is_ok(),
            Self::Date => {
                let b = s.as_bytes();
                b.len() == 10
                    && b[4] == b'-'
                    && b[7] == b'-'
                    && s[..4].parse::<u16>().is_ok()
                    && matches!(s[5..7].parse::<u8>(), Ok(1..=12))
                    && matches!(s[8..10].parse::<u8>(), Ok(1..=31))
            }
        }
    }
}

/// One column of a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Safe Harbor category id (see [`SafeHarbor::id`]).
    #[serde(default)]
    pub category: Option<String>,
    /// Declared type, checked at load.
    #[serde(default, rename = "type")]
    pub value_type: Option<ValueType>,
    /// Free-text description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Which patients are members (in the training data) and which are held out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// A boolean-like column on the records.
    #[serde(default)]
    pub column: Option<String>,
    /// A file of member patient ids, one per line (relative to the card).
    #[serde(default)]
    pub members: Option<PathBuf>,
    /// A file of non-member patient ids, one per line (relative to the card).
    #[serde(default)]
    pub non_members: Option<PathBuf>,
}

/// Reads a member-id list: one patient id per line, blank lines ignored.
pub fn read_member_ids(path: &Path) -> Result<Vec<String>> {
    let text = crate::fsx::read_text(path, crate::fsx::input::data_limit())?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// A dataset card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetCard {
    /// Short name.
    pub name: String,
    /// What the data is.
    #[serde(default)]
    pub description: Option<String>,
    /// Data files (same columns), relative to the card's folder.
    pub files: Vec<PathBuf>,
    /// Format; defaults to the first file's extension.
    #[serde(default)]
    pub format: Option<Format>,
    /// CSV separator (one byte).
    #[serde(default)]
    pub separator: Option<String>,
    /// Strings read as missing, besides empty cells and nulls.
    #[serde(default)]
    pub missing: Vec<String>,
    /// Column holding the patient id (several records may share one).
    #[serde(default)]
    pub patient_id: Option<String>,
    /// Column holding the record id (unique per row).
    #[serde(default)]
    pub record_id: Option<String>,
    /// Member / non-member split.
    #[serde(default)]
    pub membership: Option<Membership>,
    /// Column roles.
    #[serde(default, rename = "column")]
    pub columns: Vec<ColumnSpec>,
    /// Folder the card was read from (not part of the file).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Path of the card itself (not part of the file).
    #[serde(skip)]
    pub path: PathBuf,
}

impl DatasetCard {
    /// Reads and checks a card.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::fsx::read_config(path)?;
        Self::parse(&text, path)
    }

    /// Parses and checks a card's text; `path` places it (its folder is the data's base) and
    /// names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut card: DatasetCard = toml::from_str(text).map_err(|e| Error::Card {
            path: path.to_owned(),
            message: crate::redact::toml(&e, text),
        })?;
        card.base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        card.path = path.to_owned();
        card.check()?;
        Ok(card)
    }

    fn check(&self) -> Result<()> {
        let bad = |message: String| Error::Card {
            path: self.path.clone(),
            message,
        };
        if self.files.is_empty() {
            return Err(bad("`files` is empty; name at least one data file".into()));
        }
        if self.format.is_none() && Format::from_path(&self.files[0]).is_none() {
            return Err(bad(format!(
                "cannot tell the format of {}; set `format` to csv, parquet or jsonl",
                self.files[0].display()
            )));
        }
        if let Some(sep) = &self.separator
            && sep.len() != 1
        {
            return Err(bad(format!("`separator` must be one byte, got {sep:?}")));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.columns {
            if !seen.insert(&c.name) {
                return Err(bad(format!("column '{}' is listed twice", c.name)));
            }
            if let Some(cat) = &c.category
                && SafeHarbor::from_id(cat).is_none()
            {
                let ids: Vec<&str> = SafeHarbor::ALL.iter().map(|c| c.id()).collect();
                return Err(bad(format!(
                    "column '{}': unknown Safe Harbor category '{cat}' (one of: {})",
                    c.name,
                    ids.join(", ")
                )));
            }
            if c.role == Role::Direct && c.category.is_none() {
                return Err(bad(format!(
                    "column '{}' is a direct identifier: give its Safe Harbor `category`",
                    c.name
                )));
            }
        }
        if let Some(m) = &self.membership {
            let by_files = m.members.is_some() || m.non_members.is_some();
            if m.column.is_some() == by_files {
                return Err(bad(
                    "[membership] needs either `column` or both `members` and `non_members`".into(),
                ));
            }
            if by_files && (m.members.is_none() || m.non_members.is_none()) {
                return Err(bad(
                    "[membership] needs both `members` and `non_members`".into()
                ));
            }
        }
        Ok(())
    }

    /// The resolved data file paths.
    pub fn data_paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| self.base_dir.join(f)).collect()
    }

    /// Every file the card makes phiprobe read: itself, its data files and its member-id lists
    /// (the inputs an output may never overwrite).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = vec![self.path.clone()];
        out.extend(self.data_paths());
        if let Some(m) = &self.membership {
            for f in [&m.members, &m.non_members].into_iter().flatten() {
                out.push(self.base_dir.join(f));
            }
        }
        out
    }

    /// The data format.
    pub fn data_format(&self) -> Format {
        self.format
            .or_else(|| Format::from_path(&self.files[0]))
            .unwrap_or(Format::Csv)
    }

    /// Columns with a given role, in card order.
    pub fn with_role(&self, role: Role) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.role == role)
            .map(|c| c.name.clone())
            .collect()
    }

    /// The spec of a column, if the card lists it.
    pub fn spec(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_fields_and_categories() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "name='x'\nfiles=['a.csv']\nbogus=1\n").unwrap();
        let e = DatasetCard::load(&p).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        std::fs::write(
            &p,
            "name='x'\nfiles=['a.csv']\n[[column]]\nname='s'\nrole='direct'\ncategory='shoe'\n",
        )
        .unwrap();
        let e = DatasetCard::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown Safe Harbor category 'shoe'"), "{e}");
    }

    #[test]
    fn date_type_check() {
        assert!(ValueType::Date.accepts("2021-03-14"));
        assert!(!ValueType::Date.accepts("2021-13-14"));
        assert!(!ValueType::Date.accepts("14/03/2021"));
        assert!(ValueType::Integer.accepts(" 42 "));
        assert!(!ValueType::Integer.accepts("4.2"));
    }
}
