//! A first, pattern-based PHI detector for free text.
//!
//! It finds the Safe Harbor categories that have a recognisable surface form: SSNs, phone and
//! fax numbers, email addresses, dates, ZIP codes, medical record numbers and other labelled
//! identifiers, URLs and IP addresses. Names and street addresses need a dictionary or a model
//! and are detected later; this detector is deliberately high-recall on shaped identifiers.

use super::SafeHarbor;
use regex::Regex;
use std::sync::LazyLock;

/// One detected span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhiMatch {
    /// Category.
    pub category: SafeHarbor,
    /// Which rule matched (e.g. `ssn`, `date-mdy`).
    pub rule: &'static str,
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset one past the end.
    pub end: usize,
}

struct Rule {
    name: &'static str,
    category: SafeHarbor,
    re: Regex,
    /// Capture group holding the identifier itself (0 = whole match).
    group: usize,
}

fn rule(name: &'static str, category: SafeHarbor, pattern: &str, group: usize) -> Rule {
    Rule {
        name,
        category,
        re: Regex::new(pattern).expect("built-in PHI pattern is valid"),
        group,
    }
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    use SafeHarbor::*;
    vec![
        rule(
            "email",
            Email,
            r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b",
            0,
        ),
        rule(
            "url",
            Url,
            r"(?i)\bhttps?://[^\s<>]*[^\s<>.,;:!?)\]'\x22]|\bwww\.[a-z0-9-]+\.[a-z]{2,}(?:/[^\s<>]*[^\s<>.,;:!?)\]'\x22])?",
            0,
        ),
        rule(
            "ipv4",
            Ip,
            r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
            0,
        ),
        rule("ssn", Ssn, r"\b\d{3}-\d{2}-\d{4}\b", 0),
        rule(
            "ssn-labelled",
            Ssn,
            r"(?i)\b(?:ssn|social security(?: number| no\.?)?)[:#\s]*(\d{9})\b",
            1,
        ),
        rule(
            "fax",
            Fax,
            r"(?i)\bfax(?: number| no\.?)?[:\s]*((?:\+?1[\s.-])?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4})\b",
            1,
        ),
        rule(
            "phone",
            Phone,
            r"(?:\+?1[\s.-])?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b",
            0,
        ),
        rule(
            "mrn",
            Mrn,
            r"(?i)\b(?:mrn|medical record(?: number| no\.?| #)?)[:#\s]*([A-Z0-9-]{5,})\b",
            1,
        ),
        rule(
            "health-plan",
            HealthPlan,
            r"(?i)\b(?:member id|beneficiary(?: number| id)?|health plan(?: id| number)?|policy(?: number| no\.?)?)[:#\s]*([A-Z0-9-]{6,})\b",
            1,
        ),
        rule(
            "account",
            Account,
            r"(?i)\b(?:account|acct)(?: number| no\.?| #)?[:#\s]*([A-Z0-9-]{6,})\b",
            1,
        ),
        rule(
            "license",
            License,
            r"(?i)\b(?:licen[cs]e|certificate|dea)(?: number| no\.?| #)?[:#\s]*([A-Z]{0,3}\d[A-Z0-9-]{4,})\b",
            1,
        ),
        rule("vehicle-vin", Vehicle, r"\b[A-HJ-NPR-Z0-9]{17}\b", 0),
        rule(
            "vehicle-plate",
            Vehicle,
            r"(?i)\b(?:plate|license plate|tag)(?: number| no\.?)?[:#\s]*([A-Z0-9-]{4,8})\b",
            1,
        ),
        rule(
            "device",
            Device,
            r"(?i)\b(?:serial(?: number| no\.?)?|device id|udi|s/n)[:#\s]*([A-Z0-9-]{6,})\b",
            1,
        ),
        rule(
            "date-iso",
            Date,
            r"\b(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b",
            0,
        ),
        rule(
            "date-mdy",
            Date,
            r"\b(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:\d{4}|\d{2})\b",
            0,
        ),
        rule(
            "date-text",
            Date,
            r"(?i)\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.? \d{1,2}(?:st|nd|rd|th)?,? (?:19|20)\d{2}\b",
            0,
        ),
        rule(
            "date-dmy-text",
            Date,
            r"(?i)\b\d{1,2} (?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?) (?:19|20)\d{2}\b",
            0,
        ),
        rule(
            "age-over-89",
            Date,
            r"(?i)\b(9\d|1[01]\d)[- ](?:year|yr)s?[- ]old\b",
            0,
        ),
        rule("zip", Geographic, r"\b[A-Z]{2},? (\d{5})(?:-\d{4})?\b", 1),
    ]
});

/// Finds PHI-shaped spans in `text`, sorted by start; overlapping matches keep the earliest
/// (and, on ties, the longest).
pub fn detect(text: &str) -> Vec<PhiMatch> {
    let mut found: Vec<PhiMatch> = Vec::new();
    for r in RULES.iter() {
        for caps in r.re.captures_iter(text) {
            if let Some(m) = caps.get(r.group) {
                found.push(PhiMatch {
                    category: r.category,
                    rule: r.name,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
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
                 Email jane.doe@example.org, portal https://example.org/p/9, IP 10.0.0.12. MRN: A1234567.";
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
    }

    #[test]
    fn clinical_numbers_are_not_phi() {
        assert!(
            detect("HbA1c 7.2 %, BP 142/88, creatinine 1.1 mg/dL, metformin 500 mg BID").is_empty()
        );
    }

    #[test]
    fn ages_over_89_and_zip_in_address() {
        let got = cats("A 93-year-old woman from Boston, MA 02118.");
        assert!(
            got.contains(&(SafeHarbor::Date, "93-year-old".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&(SafeHarbor::Geographic, "02118".into())),
            "{got:?}"
        );
        assert!(cats("A 45-year-old man").is_empty());
    }
}
