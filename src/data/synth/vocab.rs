//! The public-domain vocabularies the generator draws from (`datasets/vocab/`, see
//! `datasets/SOURCES.md`), compiled into the binary so that it reads no files at run time.

use crate::stats::Weighted;
use std::sync::LazyLock;

/// Splits one CSV line into fields (RFC 4180 quoting; no embedded newlines in our files).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(fields)
        .collect()
}

/// A weighted list of names.
pub struct Names {
    /// The names.
    pub names: Vec<String>,
    /// Sampling table over `names`.
    pub table: Weighted,
}

fn names(text: &str) -> Names {
    let r = rows(text);
    let table = Weighted::new(r.iter().map(|f| f[1].parse::<f64>().unwrap_or(0.0)))
        .expect("embedded name list has weights");
    Names {
        names: r.into_iter().map(|mut f| f.swap_remove(0)).collect(),
        table,
    }
}

/// A ZIP code with its place.
pub struct Zip {
    /// Five digits.
    pub zip: String,
    /// City name.
    pub city: String,
    /// State abbreviation.
    pub state: String,
}

/// ZIP codes weighted by population.
pub struct Zips {
    /// Entries.
    pub zips: Vec<Zip>,
    /// Sampling table by population (ZIPs without a population count get weight 100).
    pub table: Weighted,
}

/// An ICD-10-CM code.
pub struct Icd {
    /// Code with dot, e.g. `E11.9`.
    pub code: String,
    /// Official title.
    pub title: String,
}

/// A medication and what it treats.
pub struct Medication {
    /// Generic name.
    pub name: String,
    /// ICD-10-CM category prefix of the indication.
    pub indication: String,
    /// Dose.
    pub dose: String,
    /// Route.
    pub route: String,
    /// Frequency.
    pub frequency: String,
}

/// A laboratory test with its normal range.
pub struct Lab {
    /// Test name.
    pub name: String,
    /// LOINC code.
    pub loinc: String,
    /// Unit.
    pub unit: String,
    /// Lower normal limit.
    pub low: f64,
    /// Upper normal limit.
    pub high: f64,
    /// ICD-10-CM prefix the test monitors.
    pub related: String,
}

/// Every vocabulary.
pub struct Vocab {
    /// Female first names.
    pub female: Names,
    /// Male first names.
    pub male: Names,
    /// Surnames.
    pub surnames: Names,
    /// ZIP codes.
    pub zips: Zips,
    /// Street base names.
    pub streets: Vec<String>,
    /// ICD-10-CM codes.
    pub icd: Vec<Icd>,
    /// Medications.
    pub meds: Vec<Medication>,
    /// Labs.
    pub labs: Vec<Lab>,
}

impl Vocab {
    /// ICD codes whose category starts with `prefix`.
    pub fn icd_with_prefix(&self, prefix: &str) -> Vec<&Icd> {
        self.icd
            .iter()
            .filter(|c| c.code.starts_with(prefix))
            .collect()
    }
}

/// The embedded vocabularies, parsed once.
pub static VOCAB: LazyLock<Vocab> = LazyLock::new(|| {
    let zip_rows = rows(include_str!("../../../datasets/vocab/zip_codes.csv"));
    let table = Weighted::new(zip_rows.iter().map(|f| {
        f.get(3)
            .and_then(|p| p.parse::<f64>().ok())
            .unwrap_or(100.0)
    }))
    .expect("embedded ZIP list has weights");
    Vocab {
        female: names(include_str!(
            "../../../datasets/vocab/first_names_female.csv"
        )),
        male: names(include_str!("../../../datasets/vocab/first_names_male.csv")),
        surnames: names(include_str!("../../../datasets/vocab/surnames.csv")),
        zips: Zips {
            zips: zip_rows
                .into_iter()
                .map(|f| Zip {
                    zip: f[0].clone(),
                    city: f[1].clone(),
                    state: f[2].clone(),
                })
                .collect(),
            table,
        },
        streets: rows(include_str!("../../../datasets/vocab/streets.csv"))
            .into_iter()
            .map(|mut f| f.swap_remove(0))
            .collect(),
        icd: rows(include_str!("../../../datasets/vocab/icd10cm.csv"))
            .into_iter()
            .map(|f| Icd {
                code: f[0].clone(),
                title: f[1].clone(),
            })
            .collect(),
        meds: rows(include_str!("../../../datasets/vocab/medications.csv"))
            .into_iter()
            .map(|f| Medication {
                name: f[0].clone(),
                indication: f[1].clone(),
                dose: f[2].clone(),
                route: f[3].clone(),
                frequency: f[4].clone(),
            })
            .collect(),
        labs: rows(include_str!("../../../datasets/vocab/labs.csv"))
            .into_iter()
            .map(|f| Lab {
                name: f[0].clone(),
                loinc: f[1].clone(),
                unit: f[2].clone(),
                low: f[3].parse().unwrap_or(0.0),
                high: f[4].parse().unwrap_or(1.0),
                related: f[5].clone(),
            })
            .collect(),
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_parse() {
        let v = &*VOCAB;
        assert_eq!(v.female.names.len(), 1000);
        assert_eq!(v.surnames.names.len(), 3000);
        assert!(v.zips.zips.len() > 20_000);
        assert!(
            v.zips
                .zips
                .iter()
                .all(|z| z.zip.len() == 5 && z.state.len() == 2)
        );
        assert!(v.icd.iter().any(|c| c.code == "E11.9"));
        assert!(v.icd.iter().all(|c| !c.title.starts_with('"')));
        assert!(v.meds.len() > 50 && v.labs.len() > 20);
        assert_eq!(fields("a,\"b, c\",\"d\"\"e\""), vec!["a", "b, c", "d\"e"]);
    }
}
