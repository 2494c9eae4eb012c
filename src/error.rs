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
    /// A named column does not exist.
    #[error("{}: no column '{column}' (available: {available}); check the spelling, the separator (--separator) and the header row", path.display())]
    UnknownColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// Columns that do exist.
        available: String,
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
