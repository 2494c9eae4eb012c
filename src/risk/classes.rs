//! Equivalence classes on the quasi-identifiers, formed per person.
//!
//! A person is a patient when the data has a patient-id column, otherwise a row. A patient with
//! several records is one person: their key is the *set* of distinct QI tuples across their
//! records (a longitudinal key). When every record of a patient carries the same QI values this
//! is the ordinary tuple; when they differ (e.g. admission dates), the set key is at least as
//! distinguishing as any single encounter, so the risk is never understated.

use crate::data::{Column, MISSING};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// How missing (or suppressed) quasi-identifier values are treated. Always reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPolicy {
    /// A record with a missing QI is unique: it hides in no class and inflates none. Never
    /// lowers any person's risk; the default.
    #[default]
    Conservative,
    /// A missing value is an ordinary value of its own (ARX without a suppression marker,
    /// pyCANON's literal `*`).
    Literal,
    /// Records with a missing QI are left out of n and of every class (ARX's treatment of
    /// suppressed rows). Reported with the number left out.
    Exclude,
}

impl MissingPolicy {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Conservative => "conservative",
            Self::Literal => "literal",
            Self::Exclude => "exclude",
        }
    }
}

/// Persons grouped into equivalence classes.
#[derive(Debug, Clone)]
pub struct Classes {
    /// Class of each person; `None` for persons left out (missing policy `exclude`).
    pub person_class: Vec<Option<u32>>,
    /// Person of each row.
    pub row_person: Vec<u32>,
    /// Size f_j of each class (persons).
    pub sizes: Vec<u64>,
    /// A representative row of each class (for hashing the key).
    pub representative: Vec<u32>,
    /// Persons counted (n).
    pub n: u64,
    /// Rows in the input.
    pub rows: u64,
    /// Persons with at least one missing QI value.
    pub persons_with_missing: u64,
    /// Persons left out by the missing policy.
    pub excluded: u64,
    /// Patients whose records disagree on the QIs (a set key was used).
    pub multi_tuple_persons: u64,
}

/// Folds the QI columns of every row into a dense tuple id; rows with a missing value under the
/// conservative policy get an id of their own. Returns (ids, number of ids, row has missing).
fn row_tuples(qis: &[&Column], policy: MissingPolicy) -> (Vec<u32>, u32, Vec<bool>) {
    let rows = qis.first().map_or(0, |c| c.len());
    let mut key = vec![0u64; rows];
    let mut radix_used: u128 = 1;
    let mut has_missing = vec![false; rows];
    for col in qis {
        // Values 0..len-1, missing → len.
        let width = col.dictionary.len() as u128 + 1;
        if radix_used * width > u128::from(u64::MAX) {
            densify(&mut key);
            radix_used = u128::from(key.iter().copied().max().map_or(0, |m| m + 1));
        }
        let w = width as u64;
        for ((k, &c), miss) in key.iter_mut().zip(&col.codes).zip(has_missing.iter_mut()) {
            let code = if c == MISSING {
                *miss = true;
                w - 1
            } else {
                u64::from(c)
            };
            *k = *k * w + code;
        }
        radix_used *= width;
    }
    let mut ids = Vec::with_capacity(rows);
    let mut map: FxHashMap<u64, u32> = FxHashMap::default();
    let mut next = 0u32;
    for (k, &miss) in key.iter().zip(&has_missing) {
        let id = if miss && policy == MissingPolicy::Conservative {
            next += 1;
            next - 1
        } else {
            *map.entry(*k).or_insert_with(|| {
                next += 1;
                next - 1
            })
        };
        ids.push(id);
    }
    (ids, next, has_missing)
}

/// Replaces keys by dense ids 0..distinct, preserving equality.
fn densify(key: &mut [u64]) {
    let mut map: FxHashMap<u64, u64> = FxHashMap::default();
    for k in key.iter_mut() {
        let len = map.len() as u64;
        *k = *map.entry(*k).or_insert(len);
    }
}

/// Groups persons into equivalence classes on `qis`.
///
/// `patient` gives each row's patient code (any dense or sparse u32; [`MISSING`] means the row
/// has no patient id and stands alone).
pub fn classify(qis: &[&Column], patient: Option<&Column>, policy: MissingPolicy) -> Classes {
    let rows = qis.first().map_or(0, |c| c.len());
    let (tuple, _tuples, has_missing) = row_tuples(qis, policy);
    let excluded_row = |r: usize| policy == MissingPolicy::Exclude && has_missing[r];

    // Person of each row, and each person's key.
    let (row_person, person_keys, person_missing, multi) = match patient {
        None => {
            let keys: Vec<Option<u64>> = (0..rows)
                .map(|r| (!excluded_row(r)).then_some(u64::from(tuple[r])))
                .collect();
            (
                (0..rows as u32).collect::<Vec<u32>>(),
                keys,
                has_missing.clone(),
                0,
            )
        }
        Some(p) => {
            // Dense person ids in first-seen order; rows without a patient id stand alone.
            let mut pmap: FxHashMap<u32, u32> = FxHashMap::default();
            let mut row_person = Vec::with_capacity(rows);
            let mut persons = 0u32;
            for &code in &p.codes {
                let id = if code == MISSING {
                    persons += 1;
                    persons - 1
                } else {
                    *pmap.entry(code).or_insert_with(|| {
                        persons += 1;
                        persons - 1
                    })
                };
                row_person.push(id);
            }
            let mut missing = vec![false; persons as usize];
            for (r, &m) in has_missing.iter().enumerate() {
                if m {
                    missing[row_person[r] as usize] = true;
                }
            }
            // Under `exclude` a person with any missing QI value is left out whole.
            let excluded_person = |p: u32| policy == MissingPolicy::Exclude && missing[p as usize];
            let mut pairs: Vec<u64> = (0..rows)
                .filter(|&r| !excluded_person(row_person[r]))
                .map(|r| (u64::from(row_person[r]) << 32) | u64::from(tuple[r]))
                .collect();
            pairs.sort_unstable();
            pairs.dedup();
            let mut keys: Vec<Option<u64>> = vec![None; persons as usize];
            let mut sets: FxHashMap<Vec<u32>, u64> = FxHashMap::default();
            let mut multi = 0u64;
            let mut i = 0;
            while i < pairs.len() {
                let person = (pairs[i] >> 32) as u32;
                let mut j = i + 1;
                while j < pairs.len() && (pairs[j] >> 32) as u32 == person {
                    j += 1;
                }
                let key = if j - i == 1 {
                    pairs[i] & 0xFFFF_FFFF
                } else {
                    multi += 1;
                    let set: Vec<u32> = pairs[i..j].iter().map(|&x| x as u32).collect();
                    let len = sets.len() as u64;
                    // Set keys live above the 32-bit tuple ids.
                    *sets.entry(set).or_insert((1 << 32) + len)
                };
                keys[person as usize] = Some(key);
                i = j;
            }
            (row_person, keys, missing, multi)
        }
    };

    let mut class_of: FxHashMap<u64, u32> = FxHashMap::default();
    let mut sizes: Vec<u64> = Vec::new();
    let mut representative: Vec<u32> = Vec::new();
    let mut person_class = Vec::with_capacity(person_keys.len());
    let mut first_row = vec![u32::MAX; person_keys.len()];
    for (r, &p) in row_person.iter().enumerate() {
        if first_row[p as usize] == u32::MAX {
            first_row[p as usize] = r as u32;
        }
    }
    for (p, key) in person_keys.iter().enumerate() {
        match key {
            None => person_class.push(None),
            Some(k) => {
                let c = *class_of.entry(*k).or_insert_with(|| {
                    sizes.push(0);
                    representative.push(first_row[p]);
                    (sizes.len() - 1) as u32
                });
                sizes[c as usize] += 1;
                person_class.push(Some(c));
            }
        }
    }
    let n = sizes.iter().sum();
    let excluded = person_class.iter().filter(|c| c.is_none()).count() as u64;
    Classes {
        person_class,
        row_person,
        sizes,
        representative,
        n,
        rows: rows as u64,
        persons_with_missing: person_missing.iter().filter(|&&m| m).count() as u64,
        excluded,
        multi_tuple_persons: multi,
    }
}

impl Classes {
    /// Number of classes J.
    pub fn count(&self) -> usize {
        self.sizes.len()
    }

    /// Class-size histogram: (size, number of classes), ascending by size.
    pub fn histogram(&self) -> Vec<(u64, u64)> {
        let mut h: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
        for &s in &self.sizes {
            *h.entry(s).or_default() += 1;
        }
        h.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, values: &[Option<&str>]) -> Column {
        Column::from_values(name, values.iter().copied())
    }

    #[test]
    fn rows_as_persons() {
        let a = col(
            "a",
            &[Some("1"), Some("1"), Some("2"), Some("2"), Some("2")],
        );
        let b = col(
            "b",
            &[Some("x"), Some("x"), Some("y"), Some("y"), Some("z")],
        );
        let c = classify(&[&a, &b], None, MissingPolicy::Conservative);
        assert_eq!(c.n, 5);
        assert_eq!(c.histogram(), vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn several_records_of_one_patient_are_one_person() {
        // Patient P1 has three identical encounters; P2 and P3 share a QI value.
        let q = col(
            "q",
            &[Some("a"), Some("a"), Some("a"), Some("b"), Some("b")],
        );
        let p = col(
            "p",
            &[Some("P1"), Some("P1"), Some("P1"), Some("P2"), Some("P3")],
        );
        let c = classify(&[&q], Some(&p), MissingPolicy::Conservative);
        assert_eq!(c.n, 3);
        assert_eq!(c.histogram(), vec![(1, 1), (2, 1)]);
        // Without the patient column the three encounters would look like a class of 3.
        let rows = classify(&[&q], None, MissingPolicy::Conservative);
        assert_eq!(rows.histogram(), vec![(2, 1), (3, 1)]);
    }

    #[test]
    fn patients_with_differing_records_get_a_set_key() {
        let q = col(
            "q",
            &[Some("a"), Some("b"), Some("a"), Some("b"), Some("a")],
        );
        let p = col(
            "p",
            &[Some("1"), Some("1"), Some("2"), Some("2"), Some("3")],
        );
        let c = classify(&[&q], Some(&p), MissingPolicy::Conservative);
        // Patients 1 and 2 both have {a, b}; patient 3 has {a}.
        assert_eq!(c.histogram(), vec![(1, 1), (2, 1)]);
        assert_eq!(c.multi_tuple_persons, 2);
    }

    #[test]
    fn missing_policies() {
        let q = col("q", &[Some("a"), None, None, Some("a")]);
        let cons = classify(&[&q], None, MissingPolicy::Conservative);
        assert_eq!(cons.histogram(), vec![(1, 2), (2, 1)]);
        assert_eq!(cons.persons_with_missing, 2);
        let lit = classify(&[&q], None, MissingPolicy::Literal);
        assert_eq!(lit.histogram(), vec![(2, 2)]);
        let exc = classify(&[&q], None, MissingPolicy::Exclude);
        assert_eq!(exc.histogram(), vec![(2, 1)]);
        assert_eq!((exc.n, exc.excluded), (2, 2));
    }

    #[test]
    fn exclude_leaves_out_the_whole_patient() {
        let q = col("q", &[Some("a"), None, Some("a"), Some("b")]);
        let p = col("p", &[Some("1"), Some("1"), Some("2"), Some("3")]);
        let c = classify(&[&q], Some(&p), MissingPolicy::Exclude);
        assert_eq!((c.n, c.excluded), (2, 1));
        assert_eq!(c.histogram(), vec![(1, 2)]);
    }

    #[test]
    fn many_wide_columns_do_not_overflow_the_key() {
        // 8 columns of 1000 distinct values each exceed 64 bits of radix: densify must kick in.
        let rows = 3000;
        let vals: Vec<String> = (0..rows).map(|i| format!("{}", i % 1000)).collect();
        let cols: Vec<Column> = (0..8)
            .map(|j| Column::from_values(&format!("c{j}"), vals.iter().map(|s| Some(s.as_str()))))
            .collect();
        let refs: Vec<&Column> = cols.iter().collect();
        let c = classify(&refs, None, MissingPolicy::Literal);
        assert_eq!(c.histogram(), vec![(3, 1000)]);
    }
}
