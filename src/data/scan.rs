//! A structural scan of text data files before polars parses them.
//!
//! polars reports a malformed file in words that quote the offending cell and rarely say where
//! it is. This scan finds the first structural problem itself and names its line (and field or
//! column): a record with more or fewer fields than the header, a quoted field never closed, a
//! header naming one column twice, a JSON line that is not one JSON object. It never quotes the
//! file's content: only positions and counts.

/// The first problem found: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line where the record starts.
    pub line: usize,
    /// What is wrong, without any value of the file.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Scans delimited text (RFC 4180 quoting with `"`, `""` as an escaped quote; CR LF or LF line
/// ends; blank lines skipped). Checks that every record has as many fields as the header, that
/// every quoted field is closed and that no two header fields share a name.
pub fn csv(bytes: &[u8], sep: u8) -> Result<(), Problem> {
    let mut line = 1usize;
    let mut header: Option<usize> = None;
    let mut i = 0usize;
    let n = bytes.len();
    while i < n {
        let start_line = line;
        // A blank line (only a line end) is no record.
        if bytes[i] == b'\n' || (bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            i += if bytes[i] == b'\r' { 2 } else { 1 };
            line += 1;
            continue;
        }
        let mut fields = 0usize;
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut field = Vec::new();
        let keep_names = header.is_none();
        loop {
            // One field.
            field.clear();
            if i < n && bytes[i] == b'"' {
                i += 1;
                loop {
                    if i >= n {
                        return Err(Problem {
                            line: start_line,
                            what: format!(
                                "field {} opens a quote (\") that is never closed",
                                fields + 1
                            ),
                        });
                    }
                    match bytes[i] {
                        b'"' if bytes.get(i + 1) == Some(&b'"') => {
                            if keep_names {
                                field.push(b'"');
                            }
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b => {
                            if b == b'\n' {
                                line += 1;
                            }
                            if keep_names {
                                field.push(b);
                            }
                            i += 1;
                        }
                    }
                }
                // Text after the closing quote up to the separator belongs to the field.
                while i < n && bytes[i] != sep && bytes[i] != b'\n' {
                    if keep_names && bytes[i] != b'\r' {
                        field.push(bytes[i]);
                    }
                    i += 1;
                }
            } else {
                while i < n && bytes[i] != sep && bytes[i] != b'\n' {
                    if keep_names && bytes[i] != b'\r' {
                        field.push(bytes[i]);
                    }
                    i += 1;
                }
            }
            fields += 1;
            if keep_names {
                names.push(field.clone());
            }
            if i < n && bytes[i] == sep {
                i += 1;
                continue;
            }
            // End of the record: a line end or the end of the file.
            if i < n {
                i += 1;
                line += 1;
            }
            break;
        }
        match header {
            None => {
                for (a, name) in names.iter().enumerate() {
                    if let Some(b) = names[a + 1..].iter().position(|m| m == name) {
                        return Err(Problem {
                            line: start_line,
                            what: format!(
                                "header columns {} and {} have the same name; give every column its own name",
                                a + 1,
                                a + b + 2
                            ),
                        });
                    }
                }
                header = Some(fields);
            }
            Some(h) if h != fields => {
                return Err(Problem {
                    line: start_line,
                    what: format!(
                        "{fields} field(s) where the header has {h}; every record needs one field per column (quote fields that contain the separator)"
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Scans JSON lines: every non-blank line must be one JSON object.
pub fn jsonl(text: &str) -> Result<(), Problem> {
    use serde::de::IgnoredAny;
    use std::collections::BTreeMap;
    for (k, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        if let Err(e) = serde_json::from_str::<BTreeMap<String, IgnoredAny>>(l) {
            let what = match e.classify() {
                serde_json::error::Category::Data => {
                    "not a JSON object; each line must hold one object ({\"column\": value, …})"
                        .to_owned()
                }
                _ => format!(
                    "not valid JSON at column {}: {}",
                    e.column(),
                    crate::redact::json(&e)
                        .split_once(": ")
                        .map_or("invalid content".to_owned(), |(_, k)| k.to_owned())
                ),
            };
            return Err(Problem { line: k + 1, what });
        }
        if let Some(col) = wide_integer(l) {
            return Err(Problem {
                line: k + 1,
                what: format!(
                    "the integer at column {col} lies outside the signed 64-bit range; write it as a string (\"…\") or a decimal"
                ),
            });
        }
    }
    Ok(())
}

/// The 1-based column of the first integer literal (outside strings) that does not fit an
/// `i64`; polars cannot hold a column of such values beside signed ones (it would need 128-bit
/// integers).
fn wide_integer(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let (mut i, mut in_str) = (0usize, false);
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                i += 1;
            }
            let tok = &line[start..i];
            let integer = !tok.contains(['.', 'e', 'E']);
            // Beyond i64 (even within u64): a column mixing it with signed values would need
            // 128-bit integers.
            if integer && tok.parse::<i64>().is_err() {
                return Some(line[..start].chars().count() + 1);
            }
            continue;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(r: Result<(), Problem>) -> (usize, String) {
        let p = r.unwrap_err();
        (p.line, p.what)
    }

    #[test]
    fn well_formed_csv_passes() {
        csv(b"a,b\n1,2\n\n\"x,\ny\",3\r\n4,\"q\"\"q\"\n", b',').unwrap();
        csv(b"a;b\n1;2", b';').unwrap();
        csv(b"", b',').unwrap();
    }

    #[test]
    fn ragged_rows_are_named_by_line() {
        let (l, w) = line_of(csv(b"a,b\n1,2\n\"multi\nline\",2\n3,4,5\n", b','));
        assert_eq!(l, 5);
        assert!(w.starts_with("3 field(s) where the header has 2"), "{w}");
        let (l, w) = line_of(csv(b"a,b,c\n1,2\n", b','));
        assert_eq!(l, 2);
        assert!(w.starts_with("2 field(s)"), "{w}");
    }

    #[test]
    fn unclosed_quotes_and_duplicate_headers_are_found() {
        let (l, w) = line_of(csv(b"a,b\n1,2\n3,\"078-05-1120 Zebulon\n", b','));
        assert_eq!(l, 3);
        assert!(w.contains("field 2 opens a quote"), "{w}");
        assert!(!w.contains("Zebulon"));
        let (l, w) = line_of(csv(b"id,age,sex,age\n1,2,3,4\n", b','));
        assert_eq!(l, 1);
        assert!(w.contains("columns 2 and 4"), "{w}");
    }

    #[test]
    fn jsonl_lines_must_be_objects() {
        jsonl("{\"a\":1}\n\n{\"a\":\"x\"}\n").unwrap();
        let (l, w) = line_of(jsonl("{\"a\":1}\n{\"a\":\"078-05-1120 Zebulon\"\n"));
        assert_eq!(l, 2);
        assert!(w.starts_with("not valid JSON at column"), "{w}");
        assert!(!w.contains("Zebulon") && !w.contains("1120"), "{w}");
        let (l, w) = line_of(jsonl("{\"a\":1}\n[\"Zebulon\"]\n"));
        assert_eq!(l, 2);
        assert!(w.starts_with("not a JSON object"), "{w}");
        // Integers beyond 64 bits (a fuzzing find: polars panicked on them).
        jsonl("{\"a\":\"99999999999999999999\",\"b\":-9223372036854775808,\"c\":1e30}\n").unwrap();
        let (l, w) = line_of(jsonl("{\"a\":1}\n{\"a\": 15333333333333333333}\n"));
        assert_eq!(l, 2);
        assert!(w.contains("column 7") && w.contains("64-bit"), "{w}");
    }
}
