//! The one way a parser's words reach an error message.
//!
//! Third-party parsers quote what they could not read: serde says ``invalid type: string
//! "078-05-1120", expected u64``, toml prints the whole offending source line, polars quotes the
//! cell it could not parse. In phiprobe's inputs that text is a patient's data, a note or a
//! canary secret, and membership itself is PHI. So no foreign message is ever formatted into an
//! error as it is: it passes through this module, which keeps the *kind* of problem and the
//! position (line, column) and drops every value.
//!
//! - [`json`] and [`toml`]: serde_json and toml errors, as `line L, column C: <kind>`.
//! - [`detail`]: any other parser message (polars, tokenizers), reduced to an allow-listed kind.
//! - [`final_message`]: the chokepoint `main` prints every error through; it re-applies the
//!   same rules to any foreign error that reaches it unconverted, cuts each cause to its first
//!   line and bounds the length.
//!
//! The rules are allow-lists, never scrubs: a message is kept only in the parts whose shape is
//! known to carry no data (serde's fixed words and the expectations it takes from phiprobe's own
//! types, toml's fixed syntax descriptions, numbers of lines and columns).

/// The shapes of value serde names in `invalid type` / `invalid value` messages (its
/// `Unexpected` variants), longest first where one is a prefix of another.
const UNEXPECTED: &[&str] = &[
    "floating point",
    "integer",
    "boolean",
    "character",
    "string",
    "byte array",
    "unit value",
    "unit variant",
    "newtype struct",
    "newtype variant",
    "tuple variant",
    "struct variant",
    "Option value",
    "sequence",
    "map",
    "enum",
    "unit",
    "null",
];

/// Longest a kept key or field name may be.
const MAX_KEY: usize = 64;

/// Longest one message may be once redacted (characters).
pub const MAX_MESSAGE: usize = 600;

/// A key or field name the message may name: short, plain, and not PHI-shaped. Keys are part of
/// a file's schema (a typo in a plan's key must be named to be fixed); one that is not plain is
/// replaced by "a key".
pub fn plain_name(k: &str) -> Option<&str> {
    let plain = !k.is_empty()
        && k.len() <= MAX_KEY
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && k.chars().any(|c| c.is_ascii_alphabetic());
    (plain && crate::phi::detect(k).is_empty()).then_some(k)
}

/// The text between the first pair of backticks after `prefix`, if `msg` starts with it.
fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?;
    let end = rest.find('`')?;
    Some(&rest[..end])
}

/// What serde expected: the text after the *last* `", expected "`. It comes from phiprobe's
/// own types (a field type, a list of variants), never from the input.
fn expectation(msg: &str) -> Option<&str> {
    msg.rsplit_once(", expected ").map(|(_, e)| e)
}

/// A serde (or serde-shaped) message reduced to its kind; values are dropped.
pub fn serde_kind(msg: &str) -> String {
    let msg = msg.lines().next().unwrap_or_default();
    for (prefix, what) in [
        ("invalid type: ", "wrong type"),
        ("invalid value: ", "value not allowed"),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let found = UNEXPECTED
                .iter()
                .find(|u| rest.starts_with(**u))
                .copied()
                .unwrap_or("a value");
            return match expectation(rest) {
                Some(exp) => format!("{what}: found {found}, expected {}", safe_words(exp)),
                None => format!("{what}: found {found}"),
            };
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid length ") {
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return match expectation(rest) {
            Some(exp) if !n.is_empty() => {
                format!(
                    "wrong number of elements: {n}, expected {}",
                    safe_words(exp)
                )
            }
            _ => "wrong number of elements".into(),
        };
    }
    if msg.starts_with("unknown variant ") {
        return match expectation(msg) {
            Some(exp) => format!("value not allowed, expected {}", safe_words(exp)),
            None => "value not allowed".into(),
        };
    }
    for (prefix, what) in [
        ("unknown field `", "unknown key"),
        ("missing field `", "missing key"),
        ("duplicate field `", "duplicate key"),
        ("duplicate key `", "duplicate key"),
    ] {
        if let Some(k) = backticked(msg, prefix) {
            let named = plain_name(k).map_or_else(|| "a key".to_owned(), |k| format!("'{k}'"));
            return match (what, expectation(msg)) {
                ("unknown key", Some(exp)) => {
                    format!("{what} {named}, expected {}", safe_words(exp))
                }
                _ => format!("{what} {named}"),
            };
        }
    }
    safe_words(msg)
}

/// Keeps a message only when it is made of plain words: no quotes, digits only as counts
/// inside words the parser wrote. Anything else becomes "invalid content".
fn safe_words(msg: &str) -> String {
    let msg = msg.lines().next().unwrap_or_default().trim();
    // Backticked literals of one or two punctuation characters (toml's "expected `]`") and
    // backticked plain names (serde's variant and field lists) are kept; any other quoted text
    // is a value.
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(['`', '"', '\'']) {
        out.push_str(&rest[..i]);
        let q = rest[i..].chars().next().unwrap_or('`');
        let after = &rest[i + q.len_utf8()..];
        let Some(j) = after.find(q) else {
            // An unclosed quote: everything after it may be a value.
            out.push('…');
            rest = "";
            break;
        };
        let inner = &after[..j];
        let literal = !inner.is_empty()
            && inner.chars().count() <= 2
            && inner.chars().all(|c| c.is_ascii_punctuation());
        if literal || plain_name(inner).is_some() && q == '`' {
            out.push(q);
            out.push_str(inner);
            out.push(q);
        } else {
            out.push('…');
        }
        rest = &after[j + q.len_utf8()..];
    }
    out.push_str(rest);
    // Only words that could come from a parser: letters, spaces, punctuation; numbers as
    // counts. A long digit run or an identifier shape is data.
    if out.is_empty() || !crate::phi::detect(&out).is_empty() {
        return "invalid content".into();
    }
    let out: String = out.chars().take(200).collect();
    out
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut cut = offset;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &text[..cut];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A serde_json error as `line L, column C: <kind>`, with no value of the input.
pub fn json(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = if e.line() > 0 {
        format!("line {}, column {}: ", e.line(), e.column())
    } else {
        String::new()
    };
    let full = e.to_string();
    // serde_json appends " at line L column C" to every message.
    let bare = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m);
    let kind = match e.classify() {
        // Syntax and end-of-file messages are serde_json's own fixed words.
        Category::Syntax | Category::Eof => safe_words(bare),
        Category::Data => serde_kind(bare),
        Category::Io => "read error".into(),
    };
    format!("{at}{kind}")
}

/// A toml error as `line L, column C: <kind>`: never its `Display`, which prints the source
/// line. `text` is the document it came from.
pub fn toml(e: &toml::de::Error, text: &str) -> String {
    let at = e.span().map_or_else(String::new, |s| {
        let (l, c) = line_col(text, s.start);
        format!("line {l}, column {c}: ")
    });
    let kind = serde_kind(e.message());
    let mut key = toml_key(e);
    if key.is_empty()
        && let Some(s) = e.span()
    {
        // The key of a `key = value` line whose value the error points at.
        let start = text[..s.start.min(text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = &text[start..s.start.min(text.len())];
        if let Some((k, _)) = line.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && k.len() <= MAX_KEY && k.split('.').all(|p| plain_name(p).is_some())
            {
                key = format!(" (key {k})");
            }
        }
    }
    format!("{at}{kind}{key}")
}

/// The key a toml error is about (its `in `a.b`` line), when every part is a plain name.
pub fn toml_key(e: &toml::de::Error) -> String {
    let shown = e.to_string();
    let Some(path) = shown
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("in `")?.strip_suffix('`'))
    else {
        return String::new();
    };
    if path.len() <= MAX_KEY && path.split('.').all(|k| plain_name(k).is_some()) {
        format!(" (key {path})")
    } else {
        String::new()
    }
}

/// Any other parser's message (polars, tokenizers, candle) reduced to the words it shares with
/// an allow-list of kinds; a message that matches none is "unreadable content".
pub fn detail(msg: &str) -> String {
    const KINDS: &[(&str, &str)] = &[
        (
            "more fields than defined",
            "a row has more fields than the header",
        ),
        (
            "not properly escaped",
            "a quoted field is not properly escaped",
        ),
        ("unclosed", "a quoted field is never closed"),
        ("expected", "a row does not match the header"),
        ("malformed", "a row does not match the header"),
        ("utf-8", "not valid UTF-8"),
        ("utf8", "not valid UTF-8"),
        (
            "could not parse",
            "a value does not parse as its column's type",
        ),
        (
            "cannot parse",
            "a value does not parse as its column's type",
        ),
        ("json object", "a line is not a JSON object"),
        ("error parsing line", "a line is not valid JSON"),
        ("duplicate", "a column name occurs twice"),
        ("not found", "a column is missing"),
        ("lengths don't match", "columns of different lengths"),
        ("schema", "the columns differ from the expected schema"),
        ("parquet", "not a readable Parquet file"),
        ("out of spec", "not a readable file of this format"),
        ("empty", "no data"),
    ];
    let lower = msg.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(k, _)| lower.contains(k))
        .map_or("unreadable content", |(_, what)| what)
        .to_owned()
}

/// The chokepoint: the message printed for an error that ends a run. phiprobe's own error
/// types are printed as they are (their messages are built from positions, names and paths);
/// any foreign error in the chain (serde_json, toml, I/O) is reduced by the rules above; every
/// cause is cut to its first line; the whole is bounded to [`MAX_MESSAGE`] characters.
pub fn final_message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = if let Some(j) = cause.downcast_ref::<serde_json::Error>() {
            json(j)
        } else if let Some(t) = cause.downcast_ref::<toml::de::Error>() {
            // No source text here: the position is in the span, the words in the message.
            serde_kind(t.message())
        } else if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            // An I/O error made from another error's text (`io::Error::other`) carries it.
            match io.get_ref() {
                Some(inner) if inner.downcast_ref::<std::io::Error>().is_none() => {
                    detail(&inner.to_string())
                }
                _ => io.to_string(),
            }
        } else {
            cause.to_string()
        };
        let first = text.lines().next().unwrap_or_default().trim().to_owned();
        if first.is_empty() || parts.iter().any(|p| p.contains(&first)) {
            continue;
        }
        parts.push(first);
    }
    let joined = parts.join(": ");
    if joined.chars().count() <= MAX_MESSAGE {
        joined
    } else {
        let mut cut: String = joined.chars().take(MAX_MESSAGE).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "Zebulon";
    const SSN: &str = "078-05-1120";

    fn clean(s: &str) {
        assert!(!s.contains(NAME) && !s.contains(SSN), "leaked: {s}");
        assert!(!s.contains("Quixote") && !s.contains("1120"), "leaked: {s}");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Span {
        start: u64,
        kind: Kind,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Name,
        Ssn,
    }

    #[test]
    fn json_errors_keep_position_and_kind_and_drop_values() {
        let cases = [
            (
                format!(r#"{{"start": "{SSN} {NAME} Quixote", "kind": "name"}}"#),
                "wrong type: found string, expected u64",
            ),
            (
                format!(r#"{{"start": 1, "kind": "{NAME}"}}"#),
                "value not allowed, expected `name` or `ssn`",
            ),
            (
                format!(r#"{{"start": 1, "kind": "ssn", "{NAME}": 2}}"#),
                "unknown key 'Zebulon'",
            ),
            (
                format!(r#"{{"start": 1, "{SSN}": 2}}"#),
                "unknown key a key",
            ),
            (format!(r#"{{"start": 1 "{SSN}"}}"#), "expected `,` or `}`"),
            (format!(r#"{{"start": "{SSN} Quixote"#), "EOF while parsing"),
            (format!(r#"{{"start": 1.5e{SSN}}}"#), ""),
        ];
        for (text, want) in cases {
            let e = serde_json::from_str::<Span>(&text).unwrap_err();
            let raw = e.to_string();
            let got = json(&e);
            if want == "unknown key 'Zebulon'" {
                // A key in plain letters is named (it is a typo to fix, not a value).
                assert!(got.contains(want), "{got}");
                continue;
            }
            clean(&got);
            assert!(got.starts_with("line 1, column "), "{got} (from {raw})");
            assert!(got.contains(want), "{got} (from {raw})");
        }
    }

    #[test]
    fn toml_errors_never_print_the_source_line() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Plan {
            bootstrap: u64,
        }
        for text in [
            format!("bootstrap = \"{SSN} {NAME} Quixote\"\n"),
            format!("bootstrap = {SSN}\n"),
            format!("bootstrap = 1\n[x\nsecret = \"{SSN}\"\n"),
            format!("\"{NAME} Quixote {SSN}\" = 1\nbootstrap = 2\n\"{NAME} Quixote {SSN}\" = 3\n"),
        ] {
            let e = toml::from_str::<Plan>(&text).unwrap_err();
            let got = toml(&e, &text);
            clean(&got);
            assert!(got.starts_with("line "), "{got}");
        }
        let text = format!("bootstrap = \"{SSN}\"\n");
        let got = toml(&toml::from_str::<Plan>(&text).unwrap_err(), &text);
        assert_eq!(
            got,
            "line 1, column 13: wrong type: found string, expected u64 (key bootstrap)"
        );
    }

    #[test]
    fn other_parsers_are_reduced_to_a_kind() {
        let polars = format!(
            "could not parse `{SSN} {NAME} Quixote` as dtype `i64` at column 'age' (column number 3)"
        );
        assert_eq!(
            detail(&polars),
            "a value does not parse as its column's type"
        );
        assert_eq!(detail(&format!("weird {NAME}")), "unreadable content");
    }

    #[test]
    fn the_chokepoint_redacts_foreign_causes_and_bounds_length() {
        let e = serde_json::from_str::<Span>(&format!(r#"{{"start": "{SSN}"}}"#)).unwrap_err();
        let any = anyhow::Error::new(e).context("reading spans.jsonl");
        let got = final_message(&any);
        clean(&got);
        assert!(got.starts_with("reading spans.jsonl: line 1"), "{got}");
        let io = std::io::Error::other(format!("could not parse `{SSN}` as i64"));
        let got = final_message(&anyhow::Error::new(io));
        clean(&got);
        let long = anyhow::anyhow!("{}", "x".repeat(5000));
        assert_eq!(final_message(&long).chars().count(), MAX_MESSAGE + 1);
        let multi = anyhow::anyhow!("first line\n{SSN} second");
        assert_eq!(final_message(&multi), "first line");
    }

    #[test]
    fn safe_words_keep_parser_words_and_literals_only() {
        assert_eq!(safe_words("expected `]`"), "expected `]`");
        assert_eq!(safe_words("unclosed `'abc"), "unclosed …");
        assert_eq!(safe_words(&format!("bad '{NAME}' here")), "bad … here");
        assert_eq!(safe_words(&format!("bad {SSN}")), "invalid content");
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab\ncd", 99), (2, 3));
    }
}
