//! The PHI detector for free text: shaped identifiers by pattern and validator, names and places
//! from the dataset's own vocabulary, and identifier shapes learned from the dataset card's
//! columns.
//!
//! Built-in rules (every category with a recognisable surface form): SSNs (area/group/serial
//! rules of the SSA: area 001–899 except 666, group 01–99, serial 0001–9999), NANP telephone and
//! fax numbers (area code and exchange start with 2–9), e-mail addresses, URLs, IPv4 addresses,
//! dates in the common written forms (validated as calendar dates), ages over 89, ZIP codes after
//! a state, street addresses, labelled medical-record, health-plan, account, licence, plate and
//! device numbers, GS1 device identifiers (UDI), VINs, and payment-card numbers (Luhn-checked,
//! account numbers under the rule) and IMEIs (Luhn-checked, device identifiers).
//!
//! [`Detector::with_vocabulary`] adds what only the data can tell: the names, streets and
//! cities that occur in the dataset's identifier columns (whole-word matches; a name that is
//! also a common English word counts only next to another name, a title, or in capitals), and
//! one pattern per identifier shape seen in its MRN, account, health-plan, licence, vehicle and
//! device columns (e.g. eight digits for MRNs).

use super::SafeHarbor;
use regex::Regex;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// One detected span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhiMatch {
    /// Category.
    pub category: SafeHarbor,
    /// Which rule matched (e.g. `ssn`, `date-mdy`, `name-lexicon`).
    pub rule: &'static str,
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset one past the end.
    pub end: usize,
}

type Validator = fn(&str) -> bool;

struct Rule {
    name: &'static str,
    category: SafeHarbor,
    re: Regex,
    /// Capture group holding the identifier itself (0 = whole match).
    group: usize,
    /// Extra check on the identifier's text.
    valid: Option<Validator>,
}

fn rule(
    name: &'static str,
    category: SafeHarbor,
    pattern: &str,
    group: usize,
    valid: Option<Validator>,
) -> Rule {
    Rule {
        name,
        category,
        re: Regex::new(pattern).expect("built-in PHI pattern is valid"),
        group,
        valid,
    }
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// SSA rules: area 001–899 except 666, group 01–99, serial 0001–9999.
pub fn valid_ssn(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 9 {
        return false;
    }
    let area = d[0] * 100 + d[1] * 10 + d[2];
    let group = d[3] * 10 + d[4];
    let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
    (1..=899).contains(&area) && area != 666 && group != 0 && serial != 0
}

/// North American Numbering Plan: 10 digits (after an optional leading 1) whose area code and
/// exchange start with 2–9.
pub fn valid_nanp(s: &str) -> bool {
    let mut d = digits(s);
    if d.len() == 11 && d[0] == 1 {
        d.remove(0);
    }
    d.len() == 10 && d[0] >= 2 && d[3] >= 2
}

/// The Luhn (mod 10) check used by payment cards and IMEIs.
pub fn luhn(s: &str) -> bool {
    let d = digits(s);
    if d.len() < 2 {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = 2 * x;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Labelled identifiers hold at least one digit ("serial troponins" names no device).
fn has_digit(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
}

fn valid_card(s: &str) -> bool {
    (13..=19).contains(&digits(s).len()) && luhn(s)
}

fn valid_imei(s: &str) -> bool {
    digits(s).len() == 15 && luhn(s)
}

fn valid_date(s: &str) -> bool {
    parse_date(s).is_some()
}

fn valid_vin(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
        && s.chars().filter(|c| c.is_ascii_uppercase()).count() >= 2
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month_of(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    let full = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    MONTHS
        .iter()
        .zip(full)
        .position(|(short, long)| long.starts_with(&w) && (w.starts_with(short) || w == "sept"))
        .map(|i| i as u32 + 1)
}

fn ymd(y: i64, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > 31 {
        return None;
    }
    let days = crate::date::days_from_civil(y, m, d);
    (crate::date::civil_from_days(days) == (y, m, d)).then_some(days)
}

/// Days since 1970-01-01 of a date written as `YYYY-MM-DD`, `M/D/YYYY` (or `M/D/YY`, read as
/// 19YY above the current century's 30), `Month D, YYYY` or `D Month YYYY`; `None` otherwise
/// or when the calendar date does not exist.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some((y, rest)) = s.split_once('-')
        && let Some((m, d)) = rest.split_once('-')
        && y.len() == 4
    {
        return ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    }
    if s.contains('/') {
        let p: Vec<&str> = s.split('/').collect();
        if p.len() != 3 {
            return None;
        }
        let mut y: i64 = p[2].parse().ok()?;
        if p[2].len() == 2 {
            y += if y <= 30 { 2000 } else { 1900 };
        }
        return ymd(y, p[0].parse().ok()?, p[1].parse().ok()?);
    }
    let words: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() != 3 {
        return None;
    }
    let day = |w: &str| -> Option<u32> {
        w.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse()
            .ok()
    };
    if let Some(m) = month_of(words[0]) {
        return ymd(words[2].parse().ok()?, m, day(words[1])?);
    }
    let m = month_of(words[1])?;
    ymd(words[2].parse().ok()?, m, day(words[0])?)
}

const MONTH_RE: &str = "(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    use SafeHarbor::*;
    vec![
        rule(
            "email",
            Email,
            r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b",
            0,
            None,
        ),
        rule(
            "url",
            Url,
            r"(?i)\bhttps?://[^\s<>]*[^\s<>.,;:!?)\]'\x22]|\bwww\.[a-z0-9-]+\.[a-z]{2,}(?:/[^\s<>]*[^\s<>.,;:!?)\]'\x22])?",
            0,
            None,
        ),
        rule(
            "ipv4",
            Ip,
            r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
            0,
            None,
        ),
        rule("ssn", Ssn, r"\b\d{3}-\d{2}-\d{4}\b", 0, Some(valid_ssn)),
        rule(
            "ssn-labelled",
            Ssn,
            r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\b[:#\s]*(\d{9}|\d{3} \d{2} \d{4})\b",
            1,
            Some(valid_ssn),
        ),
        rule(
            "fax",
            Fax,
            r"(?i)\bfax(?: number| no\.?)?\b[:\s]*((?:\+?1[\s.-])?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4})\b",
            1,
            Some(valid_nanp),
        ),
        rule(
            "phone",
            Phone,
            r"(?:\+?1[\s.-])?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b",
            0,
            Some(valid_nanp),
        ),
        rule(
            "mrn",
            Mrn,
            r"(?i)\b(?:mrn|medical record(?: number| no\.?| #)?)\b[:#\s]*([A-Z0-9-]{5,})\b",
            1,
            Some(has_digit),
        ),
        rule(
            "health-plan",
            HealthPlan,
            r"(?i)\b(?:member id|beneficiary(?: number| id)?|health plan(?: id| number)?|policy(?: number| no\.?)?)\b[:#\s]*([A-Z0-9-]{6,})\b",
            1,
            Some(has_digit),
        ),
        rule(
            "account",
            Account,
            r"(?i)\b(?:account|acct)(?: number| no\.?| #)?\b[:#\s]*([A-Z0-9-]{6,})\b",
            1,
            Some(has_digit),
        ),
        rule(
            "payment-card",
            Account,
            r"\b(?:\d{4}[ -]){3}\d{1,7}\b|\b\d{13,19}\b",
            0,
            Some(valid_card),
        ),
        rule(
            "license",
            License,
            r"(?i)\b(?:licen[cs]e|certificate|dea)(?: number| no\.?| #)?\b[:#\s]*([A-Z]{0,3}\d[A-Z0-9-]{4,})\b",
            1,
            None,
        ),
        rule(
            "vehicle-vin",
            Vehicle,
            r"\b[A-HJ-NPR-Z0-9]{17}\b",
            0,
            Some(valid_vin),
        ),
        rule(
            "vehicle-plate",
            Vehicle,
            r"(?i)\b(?:plate|license plate|tag)(?: number| no\.?)?\b[:#\s]*([A-Z0-9-]{4,8})\b",
            1,
            Some(has_digit),
        ),
        rule(
            "device-udi",
            Device,
            r"\(01\)\d{14}(?:\(\d{2}\)[A-Za-z0-9]+)*",
            0,
            None,
        ),
        rule(
            "device",
            Device,
            r"(?i)\b(?:serial(?: number| no\.?)?|device id|udi|s/n)\b[:#\s]*([A-Z0-9-]{6,})\b",
            1,
            Some(has_digit),
        ),
        rule(
            "imei",
            Device,
            r"(?i)\bimei[:#\s]*(\d{15})\b",
            1,
            Some(valid_imei),
        ),
        rule(
            "date-iso",
            Date,
            r"\b(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b",
            0,
            Some(valid_date),
        ),
        rule(
            "date-mdy",
            Date,
            r"\b(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:\d{4}|\d{2})\b",
            0,
            Some(valid_date),
        ),
        rule(
            "date-text",
            Date,
            &format!(r"(?i)\b{MONTH_RE}\.? \d{{1,2}}(?:st|nd|rd|th)?,? (?:19|20)\d{{2}}\b"),
            0,
            Some(valid_date),
        ),
        rule(
            "date-dmy-text",
            Date,
            &format!(r"(?i)\b\d{{1,2}} {MONTH_RE} (?:19|20)\d{{2}}\b"),
            0,
            Some(valid_date),
        ),
        rule(
            "age-over-89",
            Date,
            r"(?i)\b(9\d|1[01]\d)[- ](?:year|yr)s?[- ]old\b",
            0,
            None,
        ),
        rule(
            "zip",
            Geographic,
            r"\b[A-Z]{2},? (\d{5})(?:-\d{4})?\b",
            1,
            None,
        ),
        rule(
            "street-address",
            Geographic,
            r"\b\d{1,5}(?: [A-Z][a-z]+){1,3} (?:St|Street|Ave|Avenue|Rd|Road|Dr|Drive|Ln|Lane|Ct|Court|Blvd|Boulevard|Way|Pl|Place|Ter|Terrace|Cir|Circle|Pkwy|Parkway|Hwy|Highway)\b\.?(?: (?:Apt|Suite|Unit) \d+[A-Z]?)?",
            0,
            None,
        ),
    ]
});

/// Common English words that are also given names or surnames: in the vocabulary they count as
/// names only next to another name, after a title, or written in capitals.
const AMBIGUOUS: [&str; 64] = [
    "will", "may", "mark", "bill", "grant", "hope", "faith", "june", "april", "august", "art",
    "rose", "joy", "rich", "long", "young", "white", "black", "brown", "green", "gray", "grey",
    "king", "hill", "wood", "bell", "cook", "wells", "miles", "page", "price", "rice", "ward",
    "west", "north", "south", "east", "park", "lane", "case", "chase", "dean", "frank", "ray",
    "guy", "jack", "sterling", "summer", "autumn", "dawn", "eve", "iris", "lily", "ivy", "pat",
    "don", "gene", "sage", "stone", "hunter", "rock", "day", "love", "major",
];

const TITLES: [&str; 6] = ["mr", "mrs", "ms", "dr", "miss", "mx"];

/// Identifier columns of a dataset: what the detector learns from.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Given names and surnames (any case).
    pub names: Vec<String>,
    /// Street addresses and city names.
    pub places: Vec<String>,
    /// Values of shaped identifier columns, by category.
    pub shaped: Vec<(SafeHarbor, Vec<String>)>,
}

/// The detector: built-in rules plus what a dataset's vocabulary adds.
#[derive(Debug, Default)]
pub struct Detector {
    names: HashSet<String>,
    /// Place phrases by their first word (lower case), longest first.
    places: HashMap<String, Vec<Vec<String>>>,
    shapes: Vec<(SafeHarbor, Regex)>,
}

/// The shape of an identifier: digit runs `\d{n}`, letter runs `[A-Z]{n}` / `[a-z]{n}`, other
/// characters literal.
pub fn shape_of(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        let class = |x: char| {
            if x.is_ascii_digit() {
                1
            } else if x.is_ascii_uppercase() {
                2
            } else if x.is_ascii_lowercase() {
                3
            } else {
                0
            }
        };
        let k = class(c);
        if k == 0 {
            out.push_str(&regex::escape(&c.to_string()));
            continue;
        }
        let mut n = 1;
        while chars.peek().is_some_and(|&x| class(x) == k) {
            chars.next();
            n += 1;
        }
        out.push_str(match k {
            1 => r"\d",
            2 => "[A-Z]",
            _ => "[a-z]",
        });
        out.push_str(&format!("{{{n}}}"));
    }
    out
}

impl Detector {
    /// The built-in rules only.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Built-in rules plus the names, places and identifier shapes of a dataset. A shape is
    /// kept when it covers at least 5 % of its column's values, has at least 6 characters and
    /// at least 5 digits (so it cannot match ordinary words or short numbers), and no other
    /// category has the same shape.
    pub fn with_vocabulary(v: &Vocabulary) -> Self {
        let names = v
            .names
            .iter()
            .map(|n| n.trim().to_lowercase())
            .filter(|n| n.chars().count() >= 2)
            .collect();
        let mut places: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for p in &v.places {
            let words: Vec<String> = words_of(p).into_iter().map(|(_, _, w)| w).collect();
            if words.is_empty() || (words.len() == 1 && words[0].chars().count() < 3) {
                continue;
            }
            places.entry(words[0].clone()).or_default().push(words);
        }
        for list in places.values_mut() {
            list.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            list.dedup();
        }
        let mut by_shape: HashMap<String, HashSet<SafeHarbor>> = HashMap::new();
        let mut candidates = Vec::new();
        for (cat, values) in &v.shaped {
            let mut counts: HashMap<String, usize> = HashMap::new();
            let n = values.iter().filter(|x| !x.is_empty()).count();
            for x in values.iter().filter(|x| !x.is_empty()) {
                *counts.entry(shape_of(x)).or_default() += 1;
            }
            let mut shapes: Vec<(String, usize)> = counts.into_iter().collect();
            shapes.sort();
            for (shape, c) in shapes {
                let example = values.iter().find(|x| shape_of(x) == shape);
                let ok = example.is_some_and(|e| {
                    e.chars().count() >= 6 && e.chars().filter(char::is_ascii_digit).count() >= 5
                });
                if ok && c * 20 >= n {
                    by_shape.entry(shape.clone()).or_default().insert(*cat);
                    candidates.push((*cat, shape));
                }
            }
        }
        let shapes = candidates
            .into_iter()
            .filter(|(_, s)| by_shape[s].len() == 1)
            .filter_map(|(c, s)| {
                Regex::new(&format!(r"(?:^|[^A-Za-z0-9]){s}(?:$|[^A-Za-z0-9])"))
                    .ok()
                    .map(|re| (c, re))
            })
            .collect();
        Self {
            names,
            places,
            shapes,
        }
    }

    /// Finds PHI spans in `text`, sorted by start; overlapping matches keep the earliest (and,
    /// on ties, the longest; then the built-in rules before learned ones).
    pub fn detect(&self, text: &str) -> Vec<PhiMatch> {
        let mut found: Vec<PhiMatch> = Vec::new();
        for r in RULES.iter() {
            for caps in r.re.captures_iter(text) {
                if let Some(m) = caps.get(r.group)
                    && r.valid.is_none_or(|v| v(m.as_str()))
                {
                    found.push(PhiMatch {
                        category: r.category,
                        rule: r.name,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        for (cat, re) in &self.shapes {
            for m in re.find_iter(text) {
                // Trim the boundary characters the pattern consumed.
                let s = m.as_str();
                let lead = s
                    .chars()
                    .next()
                    .filter(|c| !c.is_ascii_alphanumeric())
                    .map_or(0, char::len_utf8);
                let trail = s
                    .chars()
                    .last()
                    .filter(|c| !c.is_ascii_alphanumeric() && s.len() > lead)
                    .map_or(0, char::len_utf8);
                found.push(PhiMatch {
                    category: *cat,
                    rule: "card-shape",
                    start: m.start() + lead,
                    end: m.end() - trail,
                });
            }
        }
        if !self.names.is_empty() || !self.places.is_empty() {
            self.lexicon(text, &mut found);
        }
        found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out: Vec<PhiMatch> = Vec::with_capacity(found.len());
        for m in found {
            if out.last().is_none_or(|l| m.start >= l.end) {
                out.push(m);
            }
        }
        out
    }

    fn lexicon(&self, text: &str, found: &mut Vec<PhiMatch>) {
        let words = words_of(text);
        let is_name = |i: usize| self.names.contains(&words[i].2);
        let name_context = |i: usize| {
            (i > 0 && TITLES.contains(&words[i - 1].2.as_str()))
                || (i > 0 && is_name(i - 1) && adjacent(text, &words, i - 1))
                || (i + 1 < words.len() && is_name(i + 1) && adjacent(text, &words, i))
        };
        let mut i = 0;
        while i < words.len() {
            // Places: the longest phrase starting here, written with capitals (a one-word
            // place that is also a name next to a name or a title is the name).
            if let Some(list) = self.places.get(&words[i].2)
                && !(is_name(i) && name_context(i))
            {
                let hit = list.iter().find(|p| {
                    i + p.len() <= words.len()
                        && p.iter().zip(&words[i..]).all(|(a, b)| *a == b.2)
                        && text[words[i].0..].starts_with(|c: char| c.is_uppercase())
                });
                if let Some(p) = hit {
                    let end = words[i + p.len() - 1].1;
                    found.push(PhiMatch {
                        category: SafeHarbor::Geographic,
                        rule: "place-lexicon",
                        start: words[i].0,
                        end,
                    });
                    i += p.len();
                    continue;
                }
            }
            if is_name(i) {
                let raw = &text[words[i].0..words[i].1];
                let capital = raw.starts_with(|c: char| c.is_uppercase());
                let caps = raw.len() > 1 && raw.chars().all(|c| !c.is_lowercase());
                let ambiguous = AMBIGUOUS.contains(&words[i].2.as_str());
                if capital && (!ambiguous || caps || name_context(i)) {
                    found.push(PhiMatch {
                        category: SafeHarbor::Name,
                        rule: "name-lexicon",
                        start: words[i].0,
                        end: words[i].1,
                    });
                }
            }
            i += 1;
        }
    }
}

/// Whether words `i` and `i + 1` are separated only by a space or ", ".
fn adjacent(text: &str, words: &[(usize, usize, String)], i: usize) -> bool {
    matches!(&text[words[i].1..words[i + 1].0], " " | ", ")
}

/// Words (letters, apostrophes and inner hyphens) with byte spans and lower-case form.
fn words_of(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let part = c.is_alphabetic() || ((c == '\'' || c == '-') && start.is_some());
        match (part, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push_word(text, s, i, &mut out);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        push_word(text, s, text.len(), &mut out);
    }
    out
}

fn push_word(text: &str, s: usize, e: usize, out: &mut Vec<(usize, usize, String)>) {
    let w = text[s..e].trim_end_matches(['\'', '-']);
    if !w.is_empty() {
        out.push((s, s + w.len(), w.to_lowercase()));
    }
}

static BUILTIN: LazyLock<Detector> = LazyLock::new(Detector::builtin);

/// Finds PHI-shaped spans in `text` with the built-in rules (see [`Detector::detect`]).
pub fn detect(text: &str) -> Vec<PhiMatch> {
    BUILTIN.detect(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(text: &str) -> Vec<(SafeHarbor, String)> {
        detect(text)
            .into_iter()
            .map(|m| (m.category, text[m.start..m.end].to_owned()))
            .collect()
    }

    #[test]
    fn finds_shaped_identifiers() {
        let t = "Pt seen 03/14/2021, SSN 123-45-6789, call (617) 555-0123 or fax: 617-555-0199. \
                 Email jane.doe@example.org, portal https://example.org/p/9, IP 10.0.0.12. MRN: A1234567. \
                 Device UDI: (01)00844588003288(17)141120(21)AB123456. Card 4111 1111 1111 1111.";
        let got = cats(t);
        let has = |c: SafeHarbor, s: &str| got.iter().any(|(gc, gs)| *gc == c && gs == s);
        assert!(has(SafeHarbor::Date, "03/14/2021"), "{got:?}");
        assert!(has(SafeHarbor::Ssn, "123-45-6789"));
        assert!(has(SafeHarbor::Phone, "(617) 555-0123"));
        assert!(has(SafeHarbor::Fax, "617-555-0199"));
        assert!(has(SafeHarbor::Email, "jane.doe@example.org"));
        assert!(has(SafeHarbor::Url, "https://example.org/p/9"));
        assert!(has(SafeHarbor::Ip, "10.0.0.12"));
        assert!(has(SafeHarbor::Mrn, "A1234567"));
        assert!(
            has(
                SafeHarbor::Device,
                "(01)00844588003288(17)141120(21)AB123456"
            ),
            "{got:?}"
        );
        assert!(has(SafeHarbor::Account, "4111 1111 1111 1111"), "{got:?}");
    }

    #[test]
    fn validators_reject_impossible_identifiers() {
        // SSA: area 000, 666 and 9xx, group 00 and serial 0000 are never issued.
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert!(cats(bad).is_empty(), "{bad}");
        }
        // NANP: area codes and exchanges do not start with 0 or 1.
        assert!(cats("call 017-555-0123").is_empty());
        assert!(cats("call 617-155-0123").is_empty());
        // Calendar: no 30 February.
        assert!(cats("seen 02/30/2021").is_empty());
        assert!(cats("seen 2021-02-30").is_empty());
        // Luhn: 4111 1111 1111 1112 fails the check.
        assert!(cats("card 4111 1111 1111 1112").is_empty());
        assert!(luhn("79927398713") && !luhn("79927398710"));
        assert!(valid_ssn("078-05-1120"));
    }

    #[test]
    fn dates_parse_in_every_written_form() {
        let d = crate::date::days_from_civil(2021, 3, 4);
        for s in [
            "2021-03-04",
            "03/04/2021",
            "3/4/2021",
            "3/4/21",
            "March 4, 2021",
            "4 March 2021",
            "Mar. 4th, 2021",
        ] {
            assert_eq!(parse_date(s), Some(d), "{s}");
        }
        assert_eq!(parse_date("2/30/2021"), None);
        assert_eq!(parse_date("Foo 4, 2021"), None);
    }

    #[test]
    fn labels_followed_by_words_are_not_identifiers() {
        for t in [
            "Trend serial troponins overnight.",
            "Medical record review completed.",
            "Taking into account patient preference.",
            "Per hospital policy regarding visitors.",
            "Skin tag removed in clinic.",
        ] {
            assert!(cats(t).is_empty(), "{t}: {:?}", cats(t));
        }
        assert!(!cats("Serial number SN-20931 logged.").is_empty());
    }

    #[test]
    fn clinical_numbers_are_not_phi() {
        assert!(
            detect("HbA1c 7.2 %, BP 142/88, creatinine 1.1 mg/dL, metformin 500 mg BID").is_empty()
        );
    }

    #[test]
    fn ages_over_89_zip_and_street() {
        let got = cats("A 93-year-old woman from 12 Oak Hill Rd Apt 4, Boston, MA 02118.");
        assert!(
            got.contains(&(SafeHarbor::Date, "93-year-old".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&(SafeHarbor::Geographic, "02118".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&(SafeHarbor::Geographic, "12 Oak Hill Rd Apt 4".into())),
            "{got:?}"
        );
        assert!(cats("A 45-year-old man").is_empty());
    }

    #[test]
    fn vocabulary_adds_names_places_and_shapes() {
        let v = Vocabulary {
            names: vec!["Smith".into(), "Will".into(), "Jones".into(), "Anna".into()],
            places: vec!["San Antonio".into(), "Boston".into()],
            shaped: vec![
                (SafeHarbor::Mrn, vec!["00412345".into(), "99887766".into()]),
                (SafeHarbor::Account, vec!["1234567890".into()]),
            ],
        };
        let d = Detector::with_vocabulary(&v);
        let t = "Anna Smith of San Antonio; Will reassess. SMITH, WILL seen. Ref 00412345 and 5550001112.";
        let got: Vec<(SafeHarbor, &str)> = d
            .detect(t)
            .into_iter()
            .map(|m| (m.category, &t[m.start..m.end]))
            .collect();
        assert!(got.contains(&(SafeHarbor::Name, "Anna")), "{got:?}");
        assert!(got.contains(&(SafeHarbor::Name, "Smith")));
        assert!(got.contains(&(SafeHarbor::Geographic, "San Antonio")));
        // "Will reassess" is a verb; "SMITH, WILL" is a name.
        assert!(!got.contains(&(SafeHarbor::Name, "Will")), "{got:?}");
        assert!(got.contains(&(SafeHarbor::Name, "WILL")));
        assert!(got.contains(&(SafeHarbor::Mrn, "00412345")), "{got:?}");
        assert!(
            got.contains(&(SafeHarbor::Account, "5550001112")),
            "{got:?}"
        );
        assert_eq!(shape_of("ABC123456789"), r"[A-Z]{3}\d{9}");
    }
}
