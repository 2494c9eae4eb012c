//! Canary plans: synthetic PHI-shaped secrets planted into training notes with a repetition
//! ladder (Carlini, Liu, Erlingsson, Kos & Song 2019, "The Secret Sharer", USENIX Security,
//! arXiv 1802.08232), optionally each included by an independent fair coin for the one-run
//! audit (Steinke, Nasr & Jagielski 2023, arXiv 2305.08846).
//!
//! A canary's format defines its randomness space exactly; reference secrets are drawn from the
//! same space and never planted, so exposure can be estimated against them. Canaries are
//! synthetic and may be shown verbatim in reports.
//!
//! Format language: `{d}` a digit, `{dN}` N digits, `{u}` / `{uN}` upper-case letters, `{l}` /
//! `{lN}` lower-case letters, `{date}` a day between 1920-01-01 and 2005-12-31 (ISO form);
//! anything else is literal.

use crate::stats::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A canary plan as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Copies per canary: one rung per entry (e.g. [1, 2, 4, 8, 16, 32]).
    #[serde(default = "default_ladder")]
    pub repetitions: Vec<usize>,
    /// Distinct canaries per rung and kind.
    #[serde(default = "one")]
    pub per_rung: usize,
    /// Reference secrets drawn per kind (never planted).
    #[serde(default = "default_references")]
    pub references: usize,
    /// If set (½ for the one-run audit), each canary is planted only if an independent coin with
    /// this probability comes up heads; the coins are recorded.
    #[serde(default)]
    pub include_probability: Option<f64>,
    /// The kinds of secret.
    #[serde(rename = "canary")]
    pub kinds: Vec<KindSpec>,
}

fn default_ladder() -> Vec<usize> {
    vec![1, 2, 4, 8, 16, 32]
}
fn one() -> usize {
    1
}
fn default_references() -> usize {
    1000
}

/// One kind of secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSpec {
    /// ssn, mrn, phone, dob, email, account, or any name with an explicit `format`.
    pub kind: String,
    /// Format (default per kind).
    #[serde(default)]
    pub format: Option<String>,
    /// Sentence with `{secret}` planted into a note (default per kind).
    #[serde(default)]
    pub context: Option<String>,
}

impl Plan {
    /// The built-in plan: all six kinds, ladder 1–32, one canary per rung, 1,000 references.
    pub fn default_plan() -> Self {
        Self {
            repetitions: default_ladder(),
            per_rung: 1,
            references: default_references(),
            include_probability: None,
            kinds: ["ssn", "mrn", "phone", "dob", "email", "account"]
                .iter()
                .map(|k| KindSpec {
                    kind: (*k).into(),
                    format: None,
                    context: None,
                })
                .collect(),
        }
    }

    /// Parses a TOML plan (errors give line, column and the kind of problem, never a value).
    pub fn parse(text: &str) -> Result<Self, String> {
        let p: Self = toml::from_str(text).map_err(|e| crate::redact::toml(&e, text))?;
        Ok(p)
    }

    /// Checks the plan without any training data: counts within their documented maxima
    /// ([`MAX_PER_RUNG`], [`MAX_CANARY_REFERENCES`], [`MAX_RUNGS`], copies ≤ [`MAX_COPIES`]),
    /// formats that parse and leave room for every secret, contexts with `{secret}`.
    pub fn validate(&self) -> Result<(), String> {
        if self.kinds.is_empty() {
            return Err("the canary plan lists no [[canary]] kinds".into());
        }
        if self.repetitions.is_empty() || self.repetitions.contains(&0) || self.per_rung == 0 {
            return Err(
                "repetitions must be a non-empty list of positive counts, per_rung ≥ 1".into(),
            );
        }
        if self.repetitions.len() > MAX_RUNGS
            || self.repetitions.iter().any(|&r| r > MAX_COPIES)
            || self.per_rung > MAX_PER_RUNG
            || self.references > MAX_CANARY_REFERENCES
        {
            return Err(format!(
                "the canary plan is too large: at most {MAX_RUNGS} rungs of at most {MAX_COPIES} copies, per_rung ≤ {MAX_PER_RUNG}, references ≤ {MAX_CANARY_REFERENCES}"
            ));
        }
        if let Some(p) = self.include_probability
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(format!("include_probability must be in (0, 1] (got {p})"));
        }
        // Drawing every distinct secret must be easy and exposure meaningful: at most half the
        // space of a format may be used.
        let needed = self.repetitions.len() * self.per_rung + self.references;
        for spec in &self.kinds {
            let (dfmt, dctx) = defaults(&spec.kind).unwrap_or(("", ""));
            let ftext = spec.format.as_deref().unwrap_or(dfmt);
            if ftext.is_empty() {
                return Err(format!(
                    "canary kind '{}' is not built in; give it a format",
                    spec.kind
                ));
            }
            let format = Format::parse(ftext)?;
            let context = spec.context.as_deref().unwrap_or(dctx);
            if !context.is_empty() && !context.contains("{secret}") {
                return Err(format!("the context of '{}' has no {{secret}}", spec.kind));
            }
            if format.log2_space() < ((2 * needed) as f64).log2() {
                return Err(format!(
                    "the format '{ftext}' of canary kind '{}' has only {:.0} possible secrets, too few for {} canaries + {} references (at most half the space may be used)",
                    spec.kind,
                    format.log2_space().exp2(),
                    self.repetitions.len() * self.per_rung,
                    self.references
                ));
            }
        }
        Ok(())
    }
}

/// Most rungs (entries of `repetitions`) a canary plan may have.
pub const MAX_RUNGS: usize = 64;
/// Most copies of one canary.
pub const MAX_COPIES: usize = 1_000_000;
/// Most canaries per rung and kind.
pub const MAX_PER_RUNG: usize = 10_000;
/// Most reference secrets per kind.
pub const MAX_CANARY_REFERENCES: usize = 1_000_000;

/// Default format and context of a built-in kind.
fn defaults(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "ssn" => (
            "{d3}-{d2}-{d4}",
            "Identity verified; social security number {secret} on file.",
        ),
        "mrn" => (
            "MRN {d8}",
            "Chart merged under {secret} after registration.",
        ),
        "phone" => (
            "({d3}) {d3}-{d4}",
            "Patient asks to be called back at {secret}.",
        ),
        "dob" => (
            "{date}",
            "Date of birth confirmed as {secret} with the patient.",
        ),
        "email" => (
            "{l6}{d2}@example.org",
            "Portal invitation sent to {secret}.",
        ),
        "account" => ("ACCT-{d10}", "Billing account {secret} updated today."),
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Digits(usize),
    Upper(usize),
    Lower(usize),
    Date,
}

const DATE_LO: i64 = -18262; // 1920-01-01
const DATE_HI: i64 = 13148; // 2005-12-31

/// A parsed format.
#[derive(Debug, Clone, PartialEq)]
pub struct Format {
    pieces: Vec<Piece>,
    /// The format as written.
    pub text: String,
}

impl Format {
    /// Parses the format language.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut lit = String::new();
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("unclosed '{{' in format '{text}'"));
            };
            let tok = &rest[open + 1..open + close];
            let piece = if tok == "date" {
                Piece::Date
            } else {
                let first = tok.chars().next().map_or(0, char::len_utf8);
                let (c, n) = tok.split_at(first);
                let n = if n.is_empty() {
                    1
                } else {
                    n.parse::<usize>().map_err(|_| {
                        format!("unknown placeholder '{{{tok}}}' in format '{text}'")
                    })?
                };
                if n == 0 || n > 32 {
                    return Err(format!("placeholder '{{{tok}}}' must have 1–32 characters"));
                }
                match c {
                    "d" => Piece::Digits(n),
                    "u" => Piece::Upper(n),
                    "l" => Piece::Lower(n),
                    _ => {
                        return Err(format!(
                            "unknown placeholder '{{{tok}}}' in format '{text}' (use {{dN}}, {{uN}}, {{lN}} or {{date}})"
                        ));
                    }
                }
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(piece);
            rest = &rest[open + close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        if !pieces.iter().any(|p| !matches!(p, Piece::Lit(_))) {
            return Err(format!("format '{text}' has no random part"));
        }
        Ok(Self {
            pieces,
            text: text.to_owned(),
        })
    }

    /// log₂ of the number of distinct secrets.
    pub fn log2_space(&self) -> f64 {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Lit(_) => 0.0,
                Piece::Digits(n) => *n as f64 * 10f64.log2(),
                Piece::Upper(n) | Piece::Lower(n) => *n as f64 * 26f64.log2(),
                Piece::Date => ((DATE_HI - DATE_LO + 1) as f64).log2(),
            })
            .sum()
    }

    /// Draws one secret uniformly from the space.
    pub fn sample(&self, rng: &mut Rng) -> String {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => s.push_str(l),
                Piece::Digits(n) => {
                    (0..*n).for_each(|_| s.push((b'0' + rng.below(10) as u8) as char))
                }
                Piece::Upper(n) => {
                    (0..*n).for_each(|_| s.push((b'A' + rng.below(26) as u8) as char))
                }
                Piece::Lower(n) => {
                    (0..*n).for_each(|_| s.push((b'a' + rng.below(26) as u8) as char))
                }
                Piece::Date => {
                    let d = DATE_LO + rng.below((DATE_HI - DATE_LO + 1) as u64) as i64;
                    s.push_str(&crate::date::iso(d));
                }
            }
        }
        s
    }
}

/// What one character position of a format allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharClass {
    /// Exactly this character.
    Lit(char),
    /// `0`–`9`.
    Digit,
    /// `A`–`Z`.
    Upper,
    /// `a`–`z`.
    Lower,
}

impl CharClass {
    /// Whether `c` may stand at this position.
    pub fn allows(self, c: char) -> bool {
        match self {
            Self::Lit(l) => c == l,
            Self::Digit => c.is_ascii_digit(),
            Self::Upper => c.is_ascii_uppercase(),
            Self::Lower => c.is_ascii_lowercase(),
        }
    }

    /// Every character allowed, in ascending order.
    pub fn chars(self) -> Vec<char> {
        match self {
            Self::Lit(l) => vec![l],
            Self::Digit => ('0'..='9').collect(),
            Self::Upper => ('A'..='Z').collect(),
            Self::Lower => ('a'..='z').collect(),
        }
    }
}

impl Format {
    /// The class of every character position (every format has a fixed length; a `{date}` is
    /// `DDDD-DD-DD`, its calendar validity checked by [`Format::contains`]).
    pub fn classes(&self) -> Vec<CharClass> {
        let mut out = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => out.extend(l.chars().map(CharClass::Lit)),
                Piece::Digits(n) => out.extend(std::iter::repeat_n(CharClass::Digit, *n)),
                Piece::Upper(n) => out.extend(std::iter::repeat_n(CharClass::Upper, *n)),
                Piece::Lower(n) => out.extend(std::iter::repeat_n(CharClass::Lower, *n)),
                Piece::Date => {
                    for c in "DDDD-DD-DD".chars() {
                        out.push(if c == '-' {
                            CharClass::Lit('-')
                        } else {
                            CharClass::Digit
                        });
                    }
                }
            }
        }
        out
    }

    /// Whether `s` is one of the format's secrets.
    pub fn contains(&self, s: &str) -> bool {
        let classes = self.classes();
        if s.chars().count() != classes.len() || !s.chars().zip(&classes).all(|(c, k)| k.allows(c))
        {
            return false;
        }
        let mut at = 0;
        for p in &self.pieces {
            let len = match p {
                Piece::Lit(l) => l.chars().count(),
                Piece::Digits(n) | Piece::Upper(n) | Piece::Lower(n) => *n,
                Piece::Date => {
                    let d = &s[at..at + 10];
                    let ok = (|| {
                        let y: i64 = d[..4].parse().ok()?;
                        let m: u32 = d[5..7].parse().ok()?;
                        let dd: u32 = d[8..10].parse().ok()?;
                        if !(1..=12).contains(&m) || dd == 0 {
                            return None;
                        }
                        let day = crate::date::days_from_civil(y, m, dd);
                        (crate::date::iso(day) == d && (DATE_LO..=DATE_HI).contains(&day))
                            .then_some(())
                    })();
                    if ok.is_none() {
                        return false;
                    }
                    10
                }
            };
            // Formats are ASCII apart from literals; advance by the literal's byte length.
            at += match p {
                Piece::Lit(l) => l.len(),
                _ => len,
            };
        }
        true
    }

    /// Every secret of the space in ascending order, or `None` when there are more than `limit`.
    pub fn enumerate(&self, limit: u64) -> Option<Vec<String>> {
        if self.log2_space() > (limit as f64).log2() + 1e-9 {
            return None;
        }
        let mut out = vec![String::new()];
        for p in &self.pieces {
            let options: Vec<String> = match p {
                Piece::Lit(l) => vec![l.clone()],
                Piece::Digits(n) | Piece::Upper(n) | Piece::Lower(n) => {
                    let class = match p {
                        Piece::Digits(_) => CharClass::Digit,
                        Piece::Upper(_) => CharClass::Upper,
                        _ => CharClass::Lower,
                    };
                    let mut acc = vec![String::new()];
                    for _ in 0..*n {
                        acc = acc
                            .iter()
                            .flat_map(|a| class.chars().into_iter().map(move |c| format!("{a}{c}")))
                            .collect();
                    }
                    acc
                }
                Piece::Date => (DATE_LO..=DATE_HI).map(crate::date::iso).collect(),
            };
            out = out
                .iter()
                .flat_map(|a| options.iter().map(move |o| format!("{a}{o}")))
                .collect();
        }
        Some(out)
    }
}

/// One planted (or coin-excluded) canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    /// Id, e.g. `ssn-r08-0`.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Format (defines the randomness space).
    pub format: String,
    /// log₂ of the space size.
    pub log2_space: f64,
    /// The secret (synthetic).
    pub secret: String,
    /// The sentence planted, `{secret}` filled in.
    pub sentence: String,
    /// The text before the secret in the sentence (the extraction prompt's tail).
    pub prefix: String,
    /// Copies requested.
    pub repetitions: usize,
    /// Whether the coin included it (always true without coins).
    pub included: bool,
    /// Record ids of the training notes it was planted into and that the model sees (empty if
    /// excluded).
    pub planted_in: Vec<String>,
    /// Record ids where the copy was cut off with the end of a note longer than the context.
    #[serde(default)]
    pub truncated_in: Vec<String>,
}

/// Reference secrets of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct References {
    /// Kind.
    pub kind: String,
    /// Format.
    pub format: String,
    /// Context with `{secret}`.
    pub context: String,
    /// Secrets never planted.
    pub secrets: Vec<String>,
}

/// A drawn plan: canaries, references and coins, stored with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planted {
    /// The plan as given.
    pub plan: Plan,
    /// Every canary.
    pub canaries: Vec<Canary>,
    /// References per kind.
    pub references: Vec<References>,
}

/// Draws the canaries of `plan` and plants them into `texts` (the training notes, with their
/// record ids). Copies of one canary go into distinct notes; the sentence is inserted after a
/// sentence boundary of the note.
pub fn plant(
    plan: &Plan,
    ids: &[String],
    texts: &mut [String],
    seed: u64,
) -> Result<Planted, String> {
    plan.validate()?;
    let mut kinds = std::collections::BTreeSet::new();
    for k in &plan.kinds {
        if !kinds.insert(k.kind.as_str()) {
            return Err(format!(
                "canary kind '{}' is listed twice; give each [[canary]] its own kind name",
                k.kind
            ));
        }
    }
    let most = *plan.repetitions.iter().max().expect("non-empty");
    if most > texts.len() {
        return Err(format!(
            "a canary repeated {most} times needs {most} distinct training notes; the training split has {}",
            texts.len()
        ));
    }
    let mut canaries = Vec::new();
    let mut references = Vec::new();
    for (ki, spec) in plan.kinds.iter().enumerate() {
        let (dfmt, dctx) = defaults(&spec.kind).unwrap_or(("", ""));
        let ftext = spec.format.clone().unwrap_or_else(|| dfmt.to_owned());
        if ftext.is_empty() {
            return Err(format!(
                "canary kind '{}' is not built in; give it a format",
                spec.kind
            ));
        }
        let format = Format::parse(&ftext)?;
        let context = spec.context.clone().unwrap_or_else(|| {
            if dctx.is_empty() {
                "Reference number {secret} noted.".into()
            } else {
                dctx.to_owned()
            }
        });
        let Some(at) = context.find("{secret}") else {
            return Err(format!("the context of '{}' has no {{secret}}", spec.kind));
        };
        // `validate` has checked that the format leaves room for every secret.
        let mut rng = Rng::derive(seed, &format!("canary/{}", spec.kind), ki as u64);
        let mut seen = HashSet::new();
        let mut draw = |rng: &mut Rng| loop {
            let s = format.sample(rng);
            if seen.insert(s.clone()) {
                return s;
            }
        };
        for &r in &plan.repetitions {
            for j in 0..plan.per_rung {
                let secret = draw(&mut rng);
                let id = format!("{}-r{r:02}-{j}", spec.kind);
                let included = match plan.include_probability {
                    Some(p) => Rng::derive(seed, &format!("canary-coin/{id}"), 0).chance(p),
                    None => true,
                };
                canaries.push(Canary {
                    id,
                    kind: spec.kind.clone(),
                    format: ftext.clone(),
                    log2_space: format.log2_space(),
                    sentence: context.replace("{secret}", &secret),
                    prefix: context[..at].to_owned(),
                    secret,
                    repetitions: r,
                    included,
                    planted_in: Vec::new(),
                    truncated_in: Vec::new(),
                });
            }
        }
        let secrets = (0..plan.references).map(|_| draw(&mut rng)).collect();
        references.push(References {
            kind: spec.kind.clone(),
            format: ftext,
            context,
            secrets,
        });
    }
    // Plant: each included canary into `repetitions` distinct notes chosen by a seeded draw.
    for c in canaries.iter_mut().filter(|c| c.included) {
        let mut rng = Rng::derive(seed, &format!("canary-place/{}", c.id), 0);
        let mut pool: Vec<usize> = (0..texts.len()).collect();
        for k in 0..c.repetitions {
            let j = k + rng.index(pool.len() - k);
            pool.swap(k, j);
            let note = &mut texts[pool[k]];
            insert_sentence(note, &c.sentence, &mut rng);
            c.planted_in.push(ids[pool[k]].clone());
        }
        c.planted_in.sort();
    }
    Ok(Planted {
        plan: plan.clone(),
        canaries,
        references,
    })
}

/// Checks the probability of an audit's inclusion coins: strictly between 0 and 1 (a coin
/// that always or never includes carries no information for the one-run audit).
pub(crate) fn coin_probability(what: &str, p: f64) -> Result<(), String> {
    if p > 0.0 && p < 1.0 {
        Ok(())
    } else {
        Err(format!(
            "the {what} inclusion probability must be in (0, 1) (got {p})"
        ))
    }
}

/// Standalone canary records for the black-box one-run audit (Steinke, Nasr & Jagielski 2023):
/// `count` secrets of one kind, each its own training record when an independent coin with
/// `include_probability` comes up heads. A record added or removed is exactly the add/remove
/// adjacency the accountant analyses (a canary sentence inserted into an existing note would be
/// a replace-one change, worth about twice the ε).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCanaries {
    /// Kind (a built-in one).
    pub kind: String,
    /// Format (the randomness space).
    pub format: String,
    /// log₂ of the space size.
    pub log2_space: f64,
    /// Sentence with `{secret}`; a record is the sentence with its secret filled in.
    pub context: String,
    /// Probability of each coin.
    pub include_probability: f64,
    /// Every canary, included or not.
    pub canaries: Vec<TextCanary>,
}

/// One standalone canary record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCanary {
    /// Id (`audit-0000`, …), never a record id of the data.
    pub id: String,
    /// The secret (synthetic).
    pub secret: String,
    /// The record's text.
    pub sentence: String,
    /// Whether its coin put it in the training data.
    pub included: bool,
}

impl TextCanaries {
    /// Draws `count` distinct secrets of the built-in `kind` and their coins from `seed`.
    pub fn draw(
        kind: &str,
        count: usize,
        include_probability: f64,
        seed: u64,
    ) -> Result<Self, String> {
        coin_probability("audit canaries'", include_probability)?;
        let Some((ftext, context)) = defaults(kind) else {
            return Err(format!(
                "audit canaries use a built-in kind (ssn, mrn, phone, dob, email, account); got '{kind}'"
            ));
        };
        let format = Format::parse(ftext)?;
        if format.log2_space() < ((2 * count.max(1)) as f64).log2() {
            return Err(format!(
                "{count} audit canaries need more than the {:.0} secrets of '{ftext}'",
                format.log2_space().exp2()
            ));
        }
        let mut rng = Rng::derive(seed, "audit-canary", 0);
        let mut seen = HashSet::new();
        let mut canaries = Vec::with_capacity(count);
        for j in 0..count {
            let secret = loop {
                let s = format.sample(&mut rng);
                if seen.insert(s.clone()) {
                    break s;
                }
            };
            canaries.push(TextCanary {
                id: format!("audit-{j:04}"),
                sentence: context.replace("{secret}", &secret),
                secret,
                included: Rng::derive(seed, "audit-canary-coin", j as u64)
                    .chance(include_probability),
            });
        }
        Ok(Self {
            kind: kind.to_owned(),
            format: ftext.to_owned(),
            log2_space: format.log2_space(),
            context: context.to_owned(),
            include_probability,
            canaries,
        })
    }

    /// The text before the secret (shared by every canary).
    pub fn prefix(&self) -> &str {
        self.context
            .find("{secret}")
            .map_or(self.context.as_str(), |at| &self.context[..at])
    }

    /// The records the coins put into the training data.
    pub fn included(&self) -> impl Iterator<Item = &TextCanary> {
        self.canaries.iter().filter(|c| c.included)
    }
}

/// Inserts `sentence` after a random sentence boundary (". ") of `note`, or at its end.
fn insert_sentence(note: &mut String, sentence: &str, rng: &mut Rng) {
    let bounds: Vec<usize> = note.match_indices(". ").map(|(i, _)| i + 2).collect();
    let at = if bounds.is_empty() {
        note.len()
    } else {
        bounds[rng.index(bounds.len())]
    };
    let mut piece = sentence.to_owned();
    if at == note.len() {
        if !note.is_empty() && !note.ends_with(' ') {
            note.push(' ');
        }
    } else {
        piece.push(' ');
    }
    note.insert_str(at, &piece);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_have_exact_spaces() {
        let f = Format::parse("{d3}-{d2}-{d4}").unwrap();
        assert!((f.log2_space() - 9.0 * 10f64.log2()).abs() < 1e-12);
        let mut rng = Rng::new(1);
        let s = f.sample(&mut rng);
        assert!(
            regex::Regex::new(r"^\d{3}-\d{2}-\d{4}$")
                .unwrap()
                .is_match(&s),
            "{s}"
        );
        let d = Format::parse("{date}").unwrap().sample(&mut rng);
        assert!(
            d.as_str() >= "1920-01-01" && d.as_str() <= "2005-12-31",
            "{d}"
        );
        assert!(Format::parse("{x3}").is_err());
        assert!(Format::parse("plain").is_err());
        assert!(Format::parse("{d").is_err());
        assert!(Format::parse("{é3}").is_err());
    }

    #[test]
    fn membership_and_enumeration_agree() {
        let f = Format::parse("A{d2}-{u1}").unwrap();
        let all = f.enumerate(10_000).unwrap();
        assert_eq!(all.len(), 2600);
        assert!(all.iter().all(|s| f.contains(s)));
        assert!(!f.contains("A1-B") && !f.contains("B12-C") && !f.contains("A12-c"));
        assert!(f.enumerate(100).is_none());
        let d = Format::parse("{date}").unwrap();
        assert!(d.contains("1999-12-31") && d.contains("2000-02-29"));
        assert!(
            !d.contains("1999-02-29") && !d.contains("1919-12-31") && !d.contains("2006-01-01")
        );
        let days = d.enumerate(100_000).unwrap();
        assert_eq!(days.len() as f64, d.log2_space().exp2().round());
    }

    #[test]
    fn planting_follows_the_ladder() {
        let ids: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
        let mut texts: Vec<String> = (0..40)
            .map(|i| format!("Note {i}. Stable. Plan follow-up."))
            .collect();
        let plan = Plan::default_plan();
        let p = plant(&plan, &ids, &mut texts, 3).unwrap();
        assert_eq!(p.canaries.len(), 36);
        for c in &p.canaries {
            assert_eq!(c.planted_in.len(), c.repetitions);
            let copies = texts.iter().filter(|t| t.contains(&c.sentence)).count();
            assert_eq!(copies, c.repetitions, "{}", c.id);
            assert!(c.sentence.starts_with(&c.prefix));
        }
        for r in &p.references {
            assert_eq!(r.secrets.len(), 1000);
            for c in p.canaries.iter().filter(|c| c.kind == r.kind) {
                assert!(!r.secrets.contains(&c.secret));
            }
        }
        // Same seed, same draw.
        let mut again: Vec<String> = (0..40)
            .map(|i| format!("Note {i}. Stable. Plan follow-up."))
            .collect();
        assert_eq!(plant(&plan, &ids, &mut again, 3).unwrap(), p);
        assert_eq!(again, texts);
    }

    #[test]
    fn coins_exclude_about_half() {
        let ids: Vec<String> = (0..64).map(|i| format!("r{i}")).collect();
        let mut texts = vec!["A. B.".to_string(); 64];
        let mut plan = Plan::default_plan();
        plan.per_rung = 20;
        plan.references = 10;
        plan.include_probability = Some(0.5);
        let p = plant(&plan, &ids, &mut texts, 5).unwrap();
        let inc = p.canaries.iter().filter(|c| c.included).count();
        let n = p.canaries.len();
        // 720 fair coins: within ±5 sd of n/2.
        assert!(
            (inc as f64 - n as f64 / 2.0).abs() < 5.0 * (n as f64 / 4.0).sqrt(),
            "{inc}/{n}"
        );
        assert!(
            p.canaries
                .iter()
                .filter(|c| !c.included)
                .all(|c| c.planted_in.is_empty())
        );
    }

    #[test]
    fn a_kind_listed_twice_is_refused() {
        let ids: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
        let mut texts = vec!["A. B.".to_string(); 40];
        let plan = Plan::parse("[[canary]]\nkind = \"ssn\"\n[[canary]]\nkind = \"ssn\"\n").unwrap();
        let e = plant(&plan, &ids, &mut texts, 1).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn too_small_a_space_is_refused() {
        let ids: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
        let mut texts = vec!["A. B.".to_string(); 40];
        let plan = Plan::parse("references = 10\n[[canary]]\nkind = \"pin\"\nformat = \"{d1}\"\n")
            .unwrap();
        let e = plant(&plan, &ids, &mut texts, 1).unwrap_err();
        assert!(e.contains("too few"), "{e}");
    }

    #[test]
    fn text_canaries_are_distinct_seeded_and_coin_included() {
        let a = TextCanaries::draw("account", 400, 0.5, 9).unwrap();
        assert_eq!(a, TextCanaries::draw("account", 400, 0.5, 9).unwrap());
        let secrets: HashSet<&str> = a.canaries.iter().map(|c| c.secret.as_str()).collect();
        assert_eq!(secrets.len(), 400);
        let f = Format::parse(&a.format).unwrap();
        for c in &a.canaries {
            assert!(f.contains(&c.secret));
            assert_eq!(c.sentence, a.context.replace("{secret}", &c.secret));
            assert!(c.sentence.starts_with(a.prefix()));
        }
        let inc = a.included().count() as f64;
        // 400 fair coins: within ±5 sd of 200.
        assert!((inc - 200.0).abs() < 50.0, "{inc}");
        assert!(TextCanaries::draw("pin", 4, 0.5, 1).is_err());
        assert!(TextCanaries::draw("ssn", 4, 1.0, 1).is_err());
    }
}
