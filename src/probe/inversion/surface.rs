//! How a structured value is written in a text: find a record's value in its note, and write
//! every candidate value the same way, so that candidates differ from the truth only in the
//! value itself (case, date style and digit grouping held fixed).

/// Separators a digit identifier may carry between its digits (phone `(555) 123-4567`, SSN
/// `123-45-6789`, dates `03/02/1957`).
const DIGIT_SEPARATORS: &[char] = &['-', '.', '(', ')', ' ', '/'];

/// A way of writing values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    /// As stored.
    Verbatim,
    /// ASCII lower case.
    Lower,
    /// ASCII upper case.
    Upper,
    /// An ISO date (`YYYY-MM-DD`) written in style `0..DATE_STYLES`: `1957-03-02`,
    /// `03/02/1957`, `3/2/1957`, `March 2, 1957`, `2 March 1957`.
    Date(u8),
    /// The value's digits poured into a template (`None`: a digit slot; `Some(c)`: a literal).
    Digits(Vec<Option<char>>),
}

/// Number of date styles.
pub const DATE_STYLES: u8 = 5;

/// Where a value stands in a text (byte offsets) and how it is written there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// How it is written.
    pub style: Style,
}

/// `(year, month, day)` of an ISO `YYYY-MM-DD` value.
fn iso_parts(value: &str) -> Option<(i64, u32, u32)> {
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = value[..4].parse().ok()?;
    let m: u32 = value[5..7].parse().ok()?;
    let d: u32 = value[8..10].parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

fn digits_of(value: &str) -> String {
    value.chars().filter(char::is_ascii_digit).collect()
}

/// Whether `value` is a digit identifier: at least four digits, and nothing but separators
/// between them.
fn is_digit_value(value: &str) -> bool {
    value.chars().filter(char::is_ascii_digit).count() >= 4
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || DIGIT_SEPARATORS.contains(&c))
}

/// `value` written in `style`; `None` when it cannot be (a non-date in a date style, a digit
/// count that does not fit the template).
pub fn render(value: &str, style: &Style) -> Option<String> {
    match style {
        Style::Verbatim => Some(value.to_owned()),
        Style::Lower => Some(value.to_ascii_lowercase()),
        Style::Upper => Some(value.to_ascii_uppercase()),
        Style::Date(k) => {
            let (y, m, d) = iso_parts(value)?;
            let month = crate::date::MONTHS[m as usize - 1];
            Some(match k {
                0 => format!("{y:04}-{m:02}-{d:02}"),
                1 => format!("{m:02}/{d:02}/{y:04}"),
                2 => format!("{m}/{d}/{y}"),
                3 => format!("{month} {d}, {y}"),
                _ => format!("{d} {month} {y}"),
            })
        }
        Style::Digits(template) => {
            if !is_digit_value(value) {
                return None;
            }
            let digits = digits_of(value);
            if template.iter().filter(|c| c.is_none()).count() != digits.len() {
                return None;
            }
            let mut ds = digits.chars();
            Some(
                template
                    .iter()
                    .map(|c| c.unwrap_or_else(|| ds.next().unwrap_or('0')))
                    .collect(),
            )
        }
    }
}

fn boundary_ok(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

/// First whole-word occurrence of `needle` in `text` (exact bytes).
fn find_word(text: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    text.match_indices(needle)
        .map(|(i, _)| i)
        .find(|&i| boundary_ok(text, i, i + needle.len()))
}

/// First occurrence of a digit identifier with `digits`, written with separators.
fn find_digits(text: &str, digits: &str) -> Option<Occurrence> {
    let want: Vec<char> = digits.chars().collect();
    for (i, c) in text.char_indices() {
        let starts = c.is_ascii_digit() || c == '(';
        if !starts
            || text[..i]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        let mut got = 0;
        let mut template = Vec::new();
        let mut end = i;
        for (j, ch) in text[i..].char_indices() {
            if ch.is_ascii_digit() {
                if got == want.len() || ch != want[got] {
                    break;
                }
                got += 1;
                template.push(None);
                end = i + j + 1;
                if got == want.len() {
                    break;
                }
            } else if DIGIT_SEPARATORS.contains(&ch) {
                template.push(Some(ch));
            } else {
                break;
            }
        }
        if got == want.len()
            && !text[end..]
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric)
        {
            // Separators after the last digit are not part of the value.
            while template.last().is_some_and(Option::is_some) {
                template.pop();
            }
            return Some(Occurrence {
                start: i,
                end,
                style: Style::Digits(template),
            });
        }
    }
    None
}

/// The first occurrence of `value` in `text`, as stored, in lower or upper case, in a date
/// style (ISO dates) or as the same digits with other separators (digit identifiers).
pub fn find(text: &str, value: &str) -> Option<Occurrence> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let mut best: Option<Occurrence> = None;
    let mut consider = |start: Option<usize>, len: usize, style: Style| {
        if let Some(s) = start
            && best.as_ref().is_none_or(|b| s < b.start)
        {
            best = Some(Occurrence {
                start: s,
                end: s + len,
                style,
            });
        }
    };
    for style in [Style::Verbatim, Style::Lower, Style::Upper] {
        let r = render(value, &style).expect("case styles always render");
        consider(find_word(text, &r), r.len(), style);
    }
    if iso_parts(value).is_some() {
        for k in 0..DATE_STYLES {
            let r = render(value, &Style::Date(k)).expect("an ISO date renders");
            consider(find_word(text, &r), r.len(), Style::Date(k));
        }
    }
    if best.is_none() && is_digit_value(value) {
        best = find_digits(text, &digits_of(value));
    }
    best
}

/// Whether `text` holds `value` in any of the ways [`find`] knows.
pub fn contains(text: &str, value: &str) -> bool {
    find(text, value).is_some()
}

/// What follows a value in its text, kept after every candidate so that a candidate which is a
/// prefix of another cannot win by stopping early: the whitespace after it and then one unit
/// (a run of letters and digits, or one other character). Empty at the end of the text.
pub fn terminator(rest: &str) -> &str {
    let ws = rest.len() - rest.trim_start().len();
    let after = &rest[ws..];
    let mut chars = after.char_indices();
    let unit = match chars.next() {
        None => 0,
        Some((_, c)) if c.is_alphanumeric() => after
            .char_indices()
            .find(|(_, c)| !c.is_alphanumeric())
            .map_or(after.len(), |(i, _)| i),
        Some((_, c)) => c.len_utf8(),
    };
    &rest[..ws + unit]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_in_case_date_and_digit_styles() {
        let t = "Impression: essential hypertension. DOB: March 2, 1957. Call (555) 123-4567.";
        let o = find(t, "Essential hypertension").unwrap();
        assert_eq!(&t[o.start..o.end], "essential hypertension");
        assert_eq!(o.style, Style::Lower);
        assert_eq!(
            render("Type 2 diabetes", &o.style).unwrap(),
            "type 2 diabetes"
        );
        let o = find(t, "1957-03-02").unwrap();
        assert_eq!(&t[o.start..o.end], "March 2, 1957");
        assert_eq!(render("1960-11-30", &o.style).unwrap(), "November 30, 1960");
        let o = find(t, "555-123-4567").unwrap();
        assert_eq!(&t[o.start..o.end], "(555) 123-4567");
        assert_eq!(render("212-555-0100", &o.style).unwrap(), "(212) 555-0100");
        // A different digit count does not fit the template.
        assert_eq!(render("12-34", &o.style), None);
        assert!(find(t, "hypertension essential").is_none());
    }

    #[test]
    fn matches_whole_words_only() {
        assert!(find("BMI 27.2 today", "7.2").is_none());
        assert!(find("HbA1c 7.2 %", "7.2").is_some());
        assert!(find("MRN 09164376.", "9164376").is_none());
        assert!(contains("MRN 09164376.", "09164376"));
        assert!(!contains("", "x"));
        assert!(!contains("abc", ""));
    }

    #[test]
    fn earliest_occurrence_wins() {
        let t = "PMH: asthma. Assessment: Asthma.";
        let o = find(t, "Asthma").unwrap();
        assert_eq!(o.start, 5);
        assert_eq!(o.style, Style::Lower);
    }

    #[test]
    fn terminators_are_one_unit() {
        assert_eq!(terminator(" (I10). Plan"), " (");
        assert_eq!(terminator(". Plan"), ".");
        assert_eq!(terminator(" 500 mg daily"), " 500");
        assert_eq!(terminator(""), "");
        assert_eq!(terminator("   "), "   ");
    }
}
