//! The library's error type. Every variant maps to exit code 2 (usage, input or model error);
//! messages name the file and column involved and say what to do, and never quote a data value.

use std::path::PathBuf;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in phiprobe's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file or folder could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid UTF-8 text.
    #[error("{}: not valid UTF-8 text (first bad byte at line {line}, byte offset {offset}); re-encode the file as UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The file could not be parsed in the expected format.
    #[error("{}: cannot parse as {format}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The expected format.
        format: String,
        /// What the parser said.
        message: String,
    },
    /// The data has no rows.
    #[error("{}: the data has no rows; nothing to analyse", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A named column does not exist. The header's names are not listed: a file without a
    /// header row makes its first record the header, and that record is data.
    #[error("{}: no column '{column}' among the {columns} columns of the header (line 1){}; check the spelling, the separator (--separator) and that the file has a header row", path.display(), near.as_ref().map_or_else(String::new, |n| format!("; did you mean '{n}'?")))]
    UnknownColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// How many columns the header has.
        columns: usize,
        /// A header name within two edits of `column`, when it is a plain name.
        near: Option<String>,
    },
    /// A column's values do not have the declared type.
    #[error("{}: column '{column}' is declared {expected} but row {row} does not parse as {expected}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Declared type.
        expected: String,
        /// 1-based data row of the first offending value.
        row: usize,
    },
    /// Every value of a quasi-identifier is missing.
    #[error("{}: every value of quasi-identifier '{column}' is missing; drop it from --qi or fix the extract", path.display())]
    AllMissing {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
    },
    /// Record ids are not unique.
    #[error("{}: record id column '{column}' has {duplicates} duplicated value(s) (first at data rows {first_row} and {second_row}); record ids must be unique", path.display())]
    DuplicateRecordId {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Number of rows whose id was seen before.
        duplicates: usize,
        /// 1-based row of the first occurrence of the first duplicated id.
        first_row: usize,
        /// 1-based row of its repeat.
        second_row: usize,
    },
    /// Some patients are both members and non-members.
    #[error("{}: {count} patient(s) are listed as both members and non-members (first at data row {row}); the split must be by patient and disjoint", path.display())]
    MembershipOverlap {
        /// The card or file.
        path: PathBuf,
        /// Number of overlapping patients.
        count: usize,
        /// 1-based data row of the first overlapping patient.
        row: usize,
    },
    /// A dataset card is invalid.
    #[error("invalid dataset card {}: {message}", path.display())]
    Card {
        /// The card.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A policy file is invalid.
    #[error("invalid policy {}: {message}", path.display())]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An output path is refused: it would replace something phiprobe did not write, it is an
    /// input of the run, or another phiprobe process is writing it.
    #[error("{}: {message}", path.display())]
    Output {
        /// The output path (or the file in it that stops the run).
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Another phiprobe process holds the lock of an output folder.
    #[error("{}: {message}", path.display())]
    Busy {
        /// The folder.
        path: PathBuf,
        /// Who holds it and what to do.
        message: String,
    },
    /// Invalid combination of options.
    #[error("{0}")]
    Usage(String),
    /// A report folder is invalid.
    #[error("{}: {message}", path.display())]
    Report {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model file or folder is missing, malformed or unsupported.
    #[error("{}: {message}", path.display())]
    Model {
        /// The model file or folder.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Numbers that must agree do not (e.g. an empirical ε lower bound above the accountant's
    /// ε): a bug in the training, the accounting or the audit.
    #[error("{0}")]
    Inconsistent(String),
    /// The model computation itself failed (tensor shape or backend error).
    #[error("model computation failed: {0}")]
    Compute(String),
}

impl Error {
    /// [`Error::UnknownColumn`] for `column` in a file whose header is `header`.
    pub fn unknown_column(path: &std::path::Path, column: &str, header: &[String]) -> Self {
        let near = header
            .iter()
            .filter(|h| crate::redact::plain_name(h).is_some())
            .map(|h| (edit_distance(h, column), h))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d)
            .map(|(_, h)| h.clone());
        Error::UnknownColumn {
            path: path.to_owned(),
            column: column.to_owned(),
            columns: header.len(),
            near,
        }
    }
}

/// Levenshtein distance of two short names (characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_column_names_a_near_plain_name_and_never_the_header() {
        let header = [
            "078-05-1120".to_owned(),
            "Zebulon".to_owned(),
            "zip".to_owned(),
        ];
        let e = Error::unknown_column(std::path::Path::new("d.csv"), "zipp", &header).to_string();
        assert!(
            e.contains("among the 3 columns") && e.contains("did you mean 'zip'"),
            "{e}"
        );
        assert!(!e.contains("078-05") && !e.contains("Zebulon"), "{e}");
        let e = Error::unknown_column(std::path::Path::new("d.csv"), "age", &header).to_string();
        assert!(!e.contains("did you mean"), "{e}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
