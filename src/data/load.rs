//! Loading data files (CSV with any separator, Parquet, JSONL) through polars into an encoded
//! [`Table`], with the checks that turn untrusted input into clear errors.
//!
//! Every file is read into memory once: hashed (SHA-256, for the manifest), checked for UTF-8
//! (text formats), then parsed. CSV columns are read as text so that codes such as ZIP `02118`
//! keep their leading zeros.

use super::card::{DatasetCard, Format, ValueType};
use super::table::{Column, MISSING, Table};
use crate::error::{Error, Result};
use crate::evidence::FileHash;
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// How to read a set of files.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// File format.
    pub format: Format,
    /// CSV separator.
    pub separator: u8,
    /// Strings read as missing besides empty cells and nulls.
    pub missing: Vec<String>,
}

/// A parsed data source: the frame plus what the manifest needs.
pub struct Source {
    /// The rows of all files, stacked.
    frame: DataFrame,
    /// Where the rows came from.
    pub path: PathBuf,
    /// Hashes of the files read.
    pub hashes: Vec<FileHash>,
    /// Rows of each file, in the order stacked.
    pub file_rows: Vec<usize>,
    /// A salt derived from the file contents (not from their hashes), for pseudonymising
    /// values in reports: reproducible for whoever holds the data, unguessable for others.
    pub salt: [u8; 32],
    missing: Vec<String>,
}

fn first_invalid_utf8(bytes: &[u8]) -> Option<(usize, usize)> {
    match std::str::from_utf8(bytes) {
        Ok(_) => None,
        Err(e) => {
            let offset = e.valid_up_to();
            let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
            Some((line, offset))
        }
    }
}

fn parse(bytes: Vec<u8>, path: &Path, opts: &ReadOptions) -> Result<DataFrame> {
    // polars' words quote cells: only the kind of problem is kept.
    let perr = |e: PolarsError| Error::Parse {
        path: path.to_owned(),
        format: opts.format.name().to_owned(),
        message: crate::redact::detail(&e.to_string()),
    };
    if opts.format != Format::Parquet
        && let Some((line, offset)) = first_invalid_utf8(&bytes)
    {
        return Err(Error::NotUtf8 {
            path: path.to_owned(),
            line,
            offset,
        });
    }
    // The structure is checked first, so a malformed file is named by line and field.
    let scanned = match opts.format {
        Format::Csv => super::scan::csv(&bytes, opts.separator),
        Format::Jsonl => super::scan::jsonl(std::str::from_utf8(&bytes).unwrap_or_default()),
        Format::Parquet => Ok(()),
    };
    if let Err(p) = scanned {
        return Err(Error::Parse {
            path: path.to_owned(),
            format: opts.format.name().to_owned(),
            message: p.to_string(),
        });
    }
    // JSON lines trimmed, without blank lines (polars' line sampler trips over blank lines
    // and stray whitespace; neither means anything in JSON lines).
    let bytes = if opts.format == Format::Jsonl {
        let text = std::str::from_utf8(&bytes).unwrap_or_default();
        let mut kept = String::with_capacity(text.len());
        for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            kept.push_str(l);
            kept.push('\n');
        }
        kept.into_bytes()
    } else {
        bytes
    };
    // polars panics on some inputs it cannot represent; a panic there is a refused file, not
    // a crash (the scan above refuses every case found so far).
    let _quiet = ParserGuard::enter();
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_frame(bytes, opts)));
    match parsed {
        Ok(r) => r.map_err(perr),
        Err(_) => Err(Error::Parse {
            path: path.to_owned(),
            format: opts.format.name().to_owned(),
            message: "the parser could not represent this file's content (an unsupported value or structure)".into(),
        }),
    }
}

/// Parsers running under [`ParserGuard`] (process-wide: polars panics on its worker threads).
static GUARDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether a third-party parser is running under a guard that turns its panics into errors; the
/// binary's panic hook stays quiet then.
pub fn parser_guarded() -> bool {
    GUARDED.load(std::sync::atomic::Ordering::SeqCst) > 0
}

struct ParserGuard;

impl ParserGuard {
    fn enter() -> Self {
        GUARDED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ParserGuard
    }
}

impl Drop for ParserGuard {
    fn drop(&mut self) {
        GUARDED.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn read_frame(bytes: Vec<u8>, opts: &ReadOptions) -> PolarsResult<DataFrame> {
    match opts.format {
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_parse_options(
                CsvParseOptions::default()
                    .with_separator(opts.separator)
                    .with_missing_is_null(true),
            )
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish(),
        Format::Parquet => ParquetReader::new(Cursor::new(bytes)).finish(),
        Format::Jsonl => JsonReader::new(Cursor::new(bytes))
            .with_json_format(JsonFormat::JsonLines)
            // Infer the schema from every line: a column null in the first rows is common.
            .infer_schema_len(None)
            .finish(),
    }
}

/// Parses the bytes of one data file as `opts` says and returns its row count: the loader's
/// whole path from bytes to a frame, with every check and error (used by the fuzz targets).
pub fn parse_rows(bytes: Vec<u8>, path: &Path, opts: &ReadOptions) -> Result<usize> {
    parse(bytes, path, opts).map(|df| df.height())
}

/// Reads and stacks `paths` (all in one format, with the same columns).
pub fn read(paths: &[PathBuf], opts: &ReadOptions) -> Result<Source> {
    let mut frame: Option<DataFrame> = None;
    let mut hashes = Vec::new();
    let mut file_rows = Vec::new();
    let mut salter = Sha256::new();
    salter.update(b"phiprobe report salt v1");
    for path in paths {
        let bytes = crate::fsx::read_bytes(path, crate::fsx::input::data_limit())?;
        salter.update(&bytes);
        hashes.push(FileHash::of(&path.display().to_string(), &bytes));
        let df = parse(bytes, path, opts)?;
        file_rows.push(df.height());
        frame = Some(match frame {
            None => df,
            Some(mut acc) => {
                acc.vstack_mut(&df).map_err(|e| Error::Parse {
                    path: path.clone(),
                    format: opts.format.name().to_owned(),
                    message: format!(
                        "columns differ from the first file: {}",
                        crate::redact::detail(&e.to_string())
                    ),
                })?;
                acc
            }
        });
    }
    let frame = frame.ok_or_else(|| Error::Usage("no data files given".into()))?;
    let path = paths[0].clone();
    if frame.height() == 0 {
        return Err(Error::Empty { path });
    }
    Ok(Source {
        frame,
        path,
        hashes,
        file_rows,
        salt: salter.finalize().into(),
        missing: opts.missing.clone(),
    })
}

/// Reads the files a card names.
pub fn read_card(card: &DatasetCard) -> Result<Source> {
    let opts = ReadOptions {
        format: card.data_format(),
        separator: card.separator.as_deref().map_or(b',', |s| s.as_bytes()[0]),
        missing: card.missing.clone(),
    };
    read(&card.data_paths(), &opts)
}

impl Source {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.frame.height()
    }

    /// Column names in file order.
    pub fn column_names(&self) -> Vec<String> {
        self.frame
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn series(&self, name: &str) -> Result<Series> {
        self.frame
            .column(name)
            .map(|c| c.as_materialized_series().clone())
            .map_err(|_| Error::unknown_column(&self.path, name, &self.column_names()))
    }

    /// Adds (or replaces) a text column derived from the data (e.g. a Safe Harbor
    /// generalisation); `values` has one entry per row, `None` = missing.
    pub fn with_column(&mut self, name: &str, values: Vec<Option<String>>) -> Result<()> {
        if values.len() != self.rows() {
            return Err(Error::Usage(format!(
                "derived column '{name}' has {} values for {} rows",
                values.len(),
                self.rows()
            )));
        }
        let series = Series::new(name.into(), values);
        let added = self.frame.with_column(series.into_column()).map(|_| ());
        added.map_err(|e| self.perr(name, e))
    }

    /// Whether the data has a column of this name.
    pub fn has_column(&self, name: &str) -> bool {
        self.frame.column(name).is_ok()
    }

    /// Encodes one column; `rows` limits it to the first rows (for sampling scans).
    pub fn encode(&self, name: &str, rows: Option<usize>) -> Result<Column> {
        let mut s = self.series(name)?;
        if let Some(r) = rows {
            s = s.head(Some(r));
        }
        let missing = &self.missing;
        let is_missing = |v: &str| v.is_empty() || missing.iter().any(|m| m == v);
        let col = match s.dtype() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => {
                let s = s.cast(&DataType::Int64).map_err(|e| self.perr(name, e))?;
                let ca = s.i64().map_err(|e| self.perr(name, e))?;
                encode_ints(name, ca.iter())
            }
            DataType::String => {
                let ca = s.str().map_err(|e| self.perr(name, e))?;
                Column::from_values(name, ca.iter().map(|v| v.filter(|v| !is_missing(v))))
            }
            _ => {
                let s = s.cast(&DataType::String).map_err(|e| self.perr(name, e))?;
                let ca = s.str().map_err(|e| self.perr(name, e))?;
                Column::from_values(name, ca.iter().map(|v| v.filter(|v| !is_missing(v))))
            }
        };
        Ok(col)
    }

    fn perr(&self, column: &str, e: PolarsError) -> Error {
        Error::Parse {
            path: self.path.clone(),
            format: "column".into(),
            message: format!(
                "column '{column}': {}",
                crate::redact::detail(&e.to_string())
            ),
        }
    }

    /// Checks that every non-missing value of `col` has type `ty`.
    pub fn check_type(&self, col: &Column, ty: ValueType) -> Result<()> {
        let bad: Vec<bool> = col.dictionary.iter().map(|v| !ty.accepts(v)).collect();
        if let Some(row) = col
            .codes
            .iter()
            .position(|&c| c != MISSING && bad[c as usize])
        {
            return Err(Error::WrongType {
                path: self.path.clone(),
                column: col.name.clone(),
                expected: ty.name().to_owned(),
                row: row + 1,
            });
        }
        Ok(())
    }

    /// Encodes `names` into a table, checking declared types.
    pub fn table(&self, names: &[String], types: &[(String, ValueType)]) -> Result<Table> {
        let mut cols = Vec::with_capacity(names.len());
        for n in names {
            let col = self.encode(n, None)?;
            if let Some((_, ty)) = types.iter().find(|(c, _)| c == n) {
                self.check_type(&col, *ty)?;
            }
            cols.push(col);
        }
        Ok(Table::new(&self.path.display().to_string(), cols))
    }
}

fn encode_ints(name: &str, values: impl Iterator<Item = Option<i64>>) -> Column {
    let mut col = Column::from_keys(name, values, |x| x.to_string());
    col.numeric = !col.dictionary.is_empty();
    col
}

/// Checks that record ids are unique.
pub fn check_unique_ids(path: &Path, col: &Column) -> Result<()> {
    let mut first: Vec<u32> = vec![u32::MAX; col.dictionary.len()];
    let mut dup = None;
    let mut count = 0;
    for (row, &c) in col.codes.iter().enumerate() {
        if c == MISSING {
            continue;
        }
        let f = &mut first[c as usize];
        if *f == u32::MAX {
            *f = row as u32;
        } else {
            count += 1;
            dup.get_or_insert((*f as usize + 1, row + 1));
        }
    }
    match dup {
        None => Ok(()),
        Some((first_row, second_row)) => Err(Error::DuplicateRecordId {
            path: path.to_owned(),
            column: col.name.clone(),
            duplicates: count,
            first_row,
            second_row,
        }),
    }
}

/// Parses a boolean-like membership value.
pub fn parse_member(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "member" | "in" | "train" => Some(true),
        "false" | "0" | "no" | "non-member" | "nonmember" | "non_member" | "out" | "holdout"
        | "held-out" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(format: Format) -> ReadOptions {
        ReadOptions {
            format,
            separator: b',',
            missing: Vec::new(),
        }
    }

    #[test]
    fn malformed_files_are_named_by_line_without_their_values() {
        let planted = "078-05-1120 Zebulon Quixote";
        let cases: [(&str, Format, String, &str); 4] = [
            (
                "ragged",
                Format::Csv,
                format!("a,b\n1,2\n{planted},x,y\n"),
                "line 3",
            ),
            (
                "unclosed",
                Format::Csv,
                format!("a,b\n1,\"{planted}\n"),
                "line 2",
            ),
            (
                "json",
                Format::Jsonl,
                format!("{{\"a\":1}}\n{{\"a\":\"{planted}\"\n"),
                "line 2",
            ),
            (
                "not an object",
                Format::Jsonl,
                format!("[\"{planted}\"]\n"),
                "line 1",
            ),
        ];
        for (what, format, text, line) in cases {
            let e = parse(text.into_bytes(), Path::new("d.x"), &opts(format))
                .err()
                .unwrap_or_else(|| panic!("{what}: accepted"))
                .to_string();
            assert!(e.contains("d.x") && e.contains(line), "{what}: {e}");
            assert!(!e.contains("Zebulon") && !e.contains("1120"), "{what}: {e}");
        }
    }

    #[test]
    fn fuzzing_finds_are_read_or_refused_by_line() {
        // polars panicked on these: blank lines after an empty object; a 128-bit integer.
        for (text, rows) in [
            ("{}\n\n", 0),
            ("\n\n{\"a\":1}\n\n{\"a\":2}", 2),
            ("{}\n{}\t\n{}\n\t", 0),
            (" {\"a\":1} \r\n\t{\"a\":2}\t", 2),
        ] {
            let got = parse(
                text.as_bytes().to_vec(),
                Path::new("d"),
                &opts(Format::Jsonl),
            )
            .map(|df| df.height());
            assert_eq!(got.ok(), Some(rows), "{text:?}");
        }
        let e = parse(
            b"{\"a\":1}\n{\"a\":444444444444444444444444}\n".to_vec(),
            Path::new("d"),
            &opts(Format::Jsonl),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2") && e.contains("64-bit"), "{e}");
    }
}
