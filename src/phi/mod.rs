//! Protected health information: the 18 Safe Harbor categories of 45 CFR 164.514(b)(2), a
//! pattern-based detector for the categories that have a recognisable shape, and masking of our
//! own outputs.

mod detect;
pub mod eval;
mod mask;

pub use detect::{
    Detector, PhiMatch, Vocabulary, detect, luhn, parse_date, shape_of, valid_nanp, valid_ssn,
};
pub use mask::{mask, salted_hash};

use serde::{Deserialize, Serialize};

/// The 18 identifier categories of the HIPAA Safe Harbor method, 45 CFR 164.514(b)(2)(i)(A)–(R).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafeHarbor {
    /// (A) Names.
    Name,
    /// (B) Geographic subdivisions smaller than a state (street, city, county, ZIP…).
    Geographic,
    /// (C) All elements of dates (except year) related to an individual; ages over 89.
    Date,
    /// (D) Telephone numbers.
    Phone,
    /// (E) Fax numbers.
    Fax,
    /// (F) Email addresses.
    Email,
    /// (G) Social Security numbers.
    Ssn,
    /// (H) Medical record numbers.
    Mrn,
    /// (I) Health plan beneficiary numbers.
    HealthPlan,
    /// (J) Account numbers.
    Account,
    /// (K) Certificate / licence numbers.
    License,
    /// (L) Vehicle identifiers and serial numbers, including licence plates.
    Vehicle,
    /// (M) Device identifiers and serial numbers.
    Device,
    /// (N) Web URLs.
    Url,
    /// (O) IP addresses.
    Ip,
    /// (P) Biometric identifiers, including finger and voice prints.
    Biometric,
    /// (Q) Full-face photographs and comparable images.
    Photo,
    /// (R) Any other unique identifying number, characteristic or code.
    Other,
}

impl SafeHarbor {
    /// All 18 categories in regulatory order.
    pub const ALL: [SafeHarbor; 18] = [
        Self::Name,
        Self::Geographic,
        Self::Date,
        Self::Phone,
        Self::Fax,
        Self::Email,
        Self::Ssn,
        Self::Mrn,
        Self::HealthPlan,
        Self::Account,
        Self::License,
        Self::Vehicle,
        Self::Device,
        Self::Url,
        Self::Ip,
        Self::Biometric,
        Self::Photo,
        Self::Other,
    ];

    /// 1-based position in the rule's list.
    pub fn number(self) -> u8 {
        Self::ALL.iter().position(|&c| c == self).unwrap_or(17) as u8 + 1
    }

    /// Stable snake-case id, as used in dataset cards.
    pub fn id(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Geographic => "geographic",
            Self::Date => "date",
            Self::Phone => "phone",
            Self::Fax => "fax",
            Self::Email => "email",
            Self::Ssn => "ssn",
            Self::Mrn => "mrn",
            Self::HealthPlan => "health_plan",
            Self::Account => "account",
            Self::License => "license",
            Self::Vehicle => "vehicle",
            Self::Device => "device",
            Self::Url => "url",
            Self::Ip => "ip",
            Self::Biometric => "biometric",
            Self::Photo => "photo",
            Self::Other => "other",
        }
    }

    /// Parses an id as written by [`SafeHarbor::id`].
    pub fn from_id(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == s)
    }

    /// Human-readable name as in the rule.
    pub fn title(self) -> &'static str {
        match self {
            Self::Name => "Names",
            Self::Geographic => "Geographic subdivisions smaller than a state",
            Self::Date => "Dates (except year) and ages over 89",
            Self::Phone => "Telephone numbers",
            Self::Fax => "Fax numbers",
            Self::Email => "Email addresses",
            Self::Ssn => "Social Security numbers",
            Self::Mrn => "Medical record numbers",
            Self::HealthPlan => "Health plan beneficiary numbers",
            Self::Account => "Account numbers",
            Self::License => "Certificate/license numbers",
            Self::Vehicle => "Vehicle identifiers and serial numbers",
            Self::Device => "Device identifiers and serial numbers",
            Self::Url => "Web URLs",
            Self::Ip => "IP addresses",
            Self::Biometric => "Biometric identifiers",
            Self::Photo => "Full-face photographs and comparable images",
            Self::Other => "Any other unique identifying number, characteristic or code",
        }
    }
}

/// The 3-digit ZIP prefixes whose combined population is 20,000 or fewer (2000 Census, as
/// listed in the HHS de-identification guidance); under Safe Harbor they must become `000`.
/// The rule says "current" Census data: this table is versioned by its vintage.
pub const RESTRICTED_ZIP3_2000: [&str; 17] = [
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
    "879", "884", "890", "893",
];

/// Vintage of [`RESTRICTED_ZIP3_2000`].
pub const RESTRICTED_ZIP3_VINTAGE: &str = "US Census 2000 (HHS OCR guidance, 2012)";

/// The comparable form of an identifier: dates as their day number, names, places, e-mail
/// addresses and URLs in lower case with single spaces, everything else as upper-case letters
/// and digits only (so `617-555-0123`, `(617) 555-0123` and `617.555.0123` agree). `None` for
/// an unparsable date or a value with nothing left.
pub fn normalize(category: SafeHarbor, value: &str) -> Option<String> {
    let v = value.trim();
    let out = match category {
        SafeHarbor::Date => return parse_date(v).map(|d| format!("day:{d}")),
        SafeHarbor::Name | SafeHarbor::Geographic => v
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        SafeHarbor::Email | SafeHarbor::Url => v.to_lowercase(),
        _ => v
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    };
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod normalize_tests {
    use super::*;

    #[test]
    fn forms_of_one_identifier_agree() {
        let p = |s| normalize(SafeHarbor::Phone, s);
        assert_eq!(p("617-555-0123"), p("(617) 555-0123"));
        assert_eq!(p("617.555.0123"), Some("6175550123".into()));
        let d = |s| normalize(SafeHarbor::Date, s);
        assert_eq!(d("2021-03-04"), d("March 4, 2021"));
        assert_eq!(d("3/4/2021"), d("4 March 2021"));
        assert_eq!(d("not a date"), None);
        assert_eq!(
            normalize(SafeHarbor::Name, " SMITH, "),
            Some("smith".into())
        );
        assert_eq!(normalize(SafeHarbor::Mrn, "--"), None);
    }
}
