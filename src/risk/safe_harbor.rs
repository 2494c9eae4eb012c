//! The Safe Harbor checklist (45 CFR 164.514(b)(2)): which of the 18 identifier categories a
//! dataset carries, by declared column role, by column name, and by scanning values and free
//! text with the detector in `phi/`; plus the 3-digit ZIP rule, ages over 89 and date elements
//! finer than the year.

use crate::data::{Column, Dataset, MISSING, Role};
use crate::error::Result;
use crate::evidence::SafeHarborItem;
use crate::phi::{self, RESTRICTED_ZIP3_2000, SafeHarbor};
use std::collections::BTreeMap;

/// Most distinct values of one column scanned by the free-text detector.
const TEXT_SCAN_LIMIT: usize = 50_000;
/// Rows sampled from columns with no declared role.
const SAMPLE_ROWS: usize = 5_000;

/// Guesses a category from a column name (used when no card declares it).
fn category_from_name(name: &str) -> Option<SafeHarbor> {
    let n = name.to_ascii_lowercase().replace(['-', ' '], "_");
    let has = |w: &str| n == w || n.split('_').any(|p| p == w);
    use SafeHarbor::*;
    if has("ssn") || n.contains("social_security") {
        Some(Ssn)
    } else if has("mrn") || n.contains("medical_record") {
        Some(Mrn)
    } else if has("email") || has("e_mail") {
        Some(Email)
    } else if has("fax") {
        Some(Fax)
    } else if has("phone") || has("telephone") || has("mobile") {
        Some(Phone)
    } else if has("zip")
        || has("zipcode")
        || has("postcode")
        || has("address")
        || has("street")
        || has("city")
        || has("county")
    {
        Some(Geographic)
    } else if has("dob")
        || n.contains("birth")
        || has("date")
        || n.ends_with("_date")
        || has("death")
    {
        Some(Date)
    } else if n == "name"
        || [
            "first_name",
            "last_name",
            "surname",
            "full_name",
            "patient_name",
            "given_name",
            "family_name",
        ]
        .iter()
        .any(|w| n.contains(w))
    {
        Some(Name)
    } else if has("url") || has("website") {
        Some(Url)
    } else if has("ip") || n.contains("ip_address") {
        Some(Ip)
    } else if has("vin") || n.contains("license_plate") || has("plate") {
        Some(Vehicle)
    } else if n.contains("device") || has("serial") {
        Some(Device)
    } else if n.contains("license") || n.contains("licence") || n.contains("certificate") {
        Some(License)
    } else if n.contains("account") {
        Some(Account)
    } else if n.contains("beneficiary") || n.contains("health_plan") || n.contains("member_id") {
        Some(HealthPlan)
    } else {
        None
    }
}

fn is_age_column(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "age" || n.starts_with("age_") || n.ends_with("_age")
}

/// Counts cells whose value satisfies `pred`, using the dictionary.
fn count_cells(col: &Column, pred: impl Fn(&str) -> bool) -> usize {
    let hits: Vec<bool> = col.dictionary.iter().map(|v| pred(v)).collect();
    col.codes
        .iter()
        .filter(|&&c| c != MISSING && hits[c as usize])
        .count()
}

fn finer_than_year(v: &str) -> bool {
    let v = v.trim();
    let year_only = v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit());
    if year_only {
        return false;
    }
    let iso_like = v.len() >= 8
        && v.contains('-')
        && v.get(..4)
            .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit()));
    iso_like || !phi::detect(v).is_empty()
}

fn five_digit_zip(v: &str) -> bool {
    let d: String = v
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    d.len() == 5
}

fn restricted_zip3(v: &str) -> bool {
    let v = v.trim();
    v.get(..3)
        .is_some_and(|z3| RESTRICTED_ZIP3_2000.contains(&z3))
}

fn fmt_count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Runs the checklist over every column of the dataset.
///
/// Kept whole: one arm per Safe Harbor category (45 CFR 164.514(b)(2)(i)(A)–(R)), in the rule's
/// order, each adding its evidence to one map.
pub fn check(ds: &Dataset) -> Result<Vec<SafeHarborItem>> {
    let mut evidence: BTreeMap<SafeHarbor, Vec<String>> = BTreeMap::new();
    let mut add = |c: SafeHarbor, e: String| evidence.entry(c).or_default().push(e);
    let has_card = ds.card.is_some();
    let patient = ds.patient_column().map(str::to_owned);
    let record = ds.card.as_ref().and_then(|c| c.record_id.clone());
    for name in ds.source.column_names() {
        let role = ds.role(&name);
        let declared = ds.category(&name);
        let guessed = category_from_name(&name);
        let is_text = role == Some(Role::Text);
        let sample = if has_card && role.is_some() {
            None
        } else {
            Some(SAMPLE_ROWS)
        };
        let col = ds.source.encode(&name, sample)?;
        let cells = col.len() - col.missing();
        let scope = if sample.is_some() && col.len() >= SAMPLE_ROWS {
            format!(" in the first {} rows", fmt_count(col.len()))
        } else {
            String::new()
        };
        if role == Some(Role::Direct) {
            if let Some(cat) = declared {
                add(
                    cat,
                    format!(
                        "column '{name}' (declared direct identifier): {} cells",
                        fmt_count(cells)
                    ),
                );
            }
            continue;
        }
        if Some(&name) == patient.as_ref() || Some(&name) == record.as_ref() {
            // Patient and record ids are identifiers only if derived from PHI (an MRN); the
            // card says which via a category.
            if let Some(cat) = declared {
                add(
                    cat,
                    format!("column '{name}' (id column declared {})", cat.id()),
                );
            }
            continue;
        }
        let cat = declared.or(if has_card && role.is_some() {
            None
        } else {
            guessed
        });
        match cat {
            Some(SafeHarbor::Geographic) => {
                let five = count_cells(&col, five_digit_zip);
                let restricted = count_cells(&col, restricted_zip3);
                let lname = name.to_ascii_lowercase();
                if lname.contains("zip") || lname.contains("post") {
                    if five > 0 {
                        add(
                            SafeHarbor::Geographic,
                            format!(
                                "column '{name}': {} cells with a 5-digit ZIP{scope}",
                                fmt_count(five)
                            ),
                        );
                    }
                    if restricted > 0 {
                        add(
                            SafeHarbor::Geographic,
                            format!(
                                "column '{name}': {} cells in a restricted 3-digit ZIP area not recoded to 000 ({})",
                                fmt_count(restricted),
                                phi::RESTRICTED_ZIP3_VINTAGE
                            ),
                        );
                    }
                } else if lname == "state" {
                    // States are allowed.
                } else if cells > 0 {
                    add(
                        SafeHarbor::Geographic,
                        format!(
                            "column '{name}': {} cells of a sub-state geographic unit{scope}",
                            fmt_count(cells)
                        ),
                    );
                }
            }
            Some(SafeHarbor::Date) => {
                let fine = count_cells(&col, finer_than_year);
                if fine > 0 {
                    add(
                        SafeHarbor::Date,
                        format!(
                            "column '{name}': {} cells with date elements finer than the year{scope}",
                            fmt_count(fine)
                        ),
                    );
                }
            }
            Some(c)
                if cells > 0
                    && (declared.is_some()
                        || role != Some(Role::Quasi) && role != Some(Role::Sensitive)) =>
            {
                let by = if declared.is_some() {
                    "declared category"
                } else {
                    "column name"
                };
                add(
                    c,
                    format!(
                        "column '{name}' (by {by}): {} cells{scope}",
                        fmt_count(cells)
                    ),
                );
            }
            _ => {}
        }
        if is_age_column(&name) {
            let old = count_cells(&col, |v| v.trim().parse::<f64>().is_ok_and(|a| a > 89.0));
            if old > 0 {
                add(
                    SafeHarbor::Date,
                    format!(
                        "column '{name}': {} ages over 89 not aggregated into 90+",
                        fmt_count(old)
                    ),
                );
            }
        }
        // Free text: declared text columns, and long string values in undeclared columns.
        let long = col
            .dictionary
            .iter()
            .take(200)
            .filter(|v| v.len() > 40)
            .count()
            > 20;
        if is_text || (role.is_none() && long) {
            let mut per: BTreeMap<(SafeHarbor, &'static str), usize> = BTreeMap::new();
            let scanned = col.dictionary.len().min(TEXT_SCAN_LIMIT);
            for v in col.dictionary.iter().take(TEXT_SCAN_LIMIT) {
                for m in phi::detect(v) {
                    *per.entry((m.category, m.rule)).or_default() += 1;
                }
            }
            let of = if scanned < col.dictionary.len() {
                format!(
                    "the first {} of {} distinct texts",
                    fmt_count(scanned),
                    fmt_count(col.dictionary.len())
                )
            } else {
                format!("{} distinct texts", fmt_count(scanned))
            };
            for ((c, rule), k) in per {
                add(
                    c,
                    format!(
                        "free text '{name}': {} matches of rule '{rule}' in {of}",
                        fmt_count(k)
                    ),
                );
            }
        }
    }
    Ok(SafeHarbor::ALL
        .iter()
        .map(|&c| {
            let ev = evidence.remove(&c).unwrap_or_default();
            let status = if !ev.is_empty() {
                "present"
            } else if matches!(
                c,
                SafeHarbor::Biometric | SafeHarbor::Photo | SafeHarbor::Other
            ) {
                "not-assessed"
            } else {
                "absent"
            };
            let mut ev = ev;
            if status == "not-assessed" {
                ev.push("no automatic detector for this category; confirm by review".into());
            }
            if c == SafeHarbor::Name && status == "absent" {
                ev.push("names in free text are not yet detected; confirm by review".into());
            }
            SafeHarborItem {
                number: c.number(),
                category: c.title().into(),
                status: status.into(),
                evidence: ev,
            }
        })
        .collect())
}

/// The Safe Harbor generalisation of a dataset's quasi-identifiers (45 CFR
/// 164.514(b)(2)(i)(B), (C)): what a release under Safe Harbor may keep of them.
///
/// - a ZIP column (a geographic column named `zip…`) becomes `<name>3_sh`: its first three
///   digits, or `000` for the prefixes whose three-digit area held 20,000 people or fewer
///   (Census 2000);
/// - every date column `<stem>_date` becomes `<stem>_year_sh`: the year only;
/// - a birth date's year, and an `age`, become `90+` for anyone over 89 at the data's latest
///   date (the elements of dates indicative of such an age are aggregated into one category),
///   the age as `age_sh`.
///
/// Returns the dataset with the derived columns added and their names, in the order derived.
pub fn transform(mut ds: Dataset) -> Result<(Dataset, Vec<String>)> {
    let mut new: Vec<(String, Vec<Option<String>>)> = Vec::new();
    let names = ds.source.column_names();
    let category = |c: &str| ds.category(c).or_else(|| category_from_name(c));
    // Dates: parse each date column once; the latest date anchors "over 89".
    let mut dates: Vec<(String, Vec<Option<i64>>)> = Vec::new();
    for c in &names {
        if category(c) != Some(SafeHarbor::Date) {
            continue;
        }
        let col = ds.source.encode(c, None)?;
        let days: Vec<Option<i64>> = (0..col.codes.len())
            .map(|r| col.value(r).and_then(crate::date::parse_iso))
            .collect();
        if days.iter().any(Option::is_some) {
            dates.push((c.clone(), days));
        }
    }
    let latest = dates
        .iter()
        .flat_map(|(_, d)| d.iter().flatten().copied())
        .max();
    let year = |d: i64| crate::date::civil_from_days(d).0;
    for (c, days) in &dates {
        let birth = c.to_ascii_lowercase().contains("birth") || c.eq_ignore_ascii_case("dob");
        let values = days
            .iter()
            .map(|d| {
                d.map(|d| match latest {
                    Some(l) if birth && age_years(d, l) > 89 => "90+".to_owned(),
                    _ => year(d).to_string(),
                })
            })
            .collect();
        new.push((format!("{}_year_sh", c.trim_end_matches("_date")), values));
    }
    for c in &names {
        let lower = c.to_ascii_lowercase();
        if category(c) == Some(SafeHarbor::Geographic)
            && lower.starts_with("zip")
            && !lower.ends_with('3')
        {
            let col = ds.source.encode(c, None)?;
            let values = (0..col.codes.len())
                .map(|r| {
                    col.value(r).map(|z| {
                        let z3 = z.get(..3).unwrap_or("000");
                        if RESTRICTED_ZIP3_2000.contains(&z3) {
                            "000".to_owned()
                        } else {
                            z3.to_owned()
                        }
                    })
                })
                .collect();
            new.push((format!("{c}3_sh"), values));
        }
        if lower == "age" {
            let col = ds.source.encode(c, None)?;
            let values = (0..col.codes.len())
                .map(|r| {
                    col.value(r).map(|a| match a.parse::<f64>() {
                        Ok(v) if v > 89.0 => "90+".to_owned(),
                        _ => a.to_owned(),
                    })
                })
                .collect();
            new.push(("age_sh".to_owned(), values));
        }
    }
    let mut derived = Vec::new();
    for (name, values) in new {
        ds.source.with_column(&name, values)?;
        derived.push(name);
    }
    Ok((ds, derived))
}

/// Whole years from day `born` to day `on`.
fn age_years(born: i64, on: i64) -> i64 {
    let (y0, m0, d0) = crate::date::civil_from_days(born);
    let (y1, m1, d1) = crate::date::civil_from_days(on);
    y1 - y0 - i64::from((m1, d1) < (m0, d0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transform_keeps_years_zip3_and_ages_under_90() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("d.csv");
        let restricted = RESTRICTED_ZIP3_2000[0];
        std::fs::write(
            &csv,
            format!(
                "birth_date,admission_date,zip,age,sex\n\
                 1930-05-01,2024-03-02,02118,93,F\n\
                 1980-12-31,2024-06-30,{restricted}45,43,M\n\
                 1935-01-01,,90210,89,F\n"
            ),
        )
        .unwrap();
        let ds = Dataset::open(&csv, None, None).unwrap();
        let (ds, derived) = transform(ds).unwrap();
        assert_eq!(
            derived,
            ["birth_year_sh", "admission_year_sh", "zip3_sh", "age_sh"].map(String::from)
        );
        let col = |name: &str| -> Vec<Option<String>> {
            let c = ds.source.encode(name, None).unwrap();
            (0..3).map(|r| c.value(r).map(String::from)).collect()
        };
        let some = |v: &[&str]| v.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
        // Ages at the data's latest date (2024-06-30): 94 → 90+, 43, and 89 stays (not over 89).
        assert_eq!(col("birth_year_sh"), some(&["90+", "1980", "1935"]));
        assert_eq!(
            col("admission_year_sh"),
            vec![Some("2024".into()), Some("2024".into()), None]
        );
        assert_eq!(col("zip3_sh"), some(&["021", "000", "902"]));
        assert_eq!(col("age_sh"), some(&["90+", "43", "89"]));
        assert_eq!(
            age_years(
                crate::date::parse_iso("1935-07-01").unwrap(),
                crate::date::parse_iso("2024-06-30").unwrap()
            ),
            88
        );
    }

    #[test]
    fn names_map_to_categories() {
        assert_eq!(category_from_name("SSN"), Some(SafeHarbor::Ssn));
        assert_eq!(category_from_name("birth_date"), Some(SafeHarbor::Date));
        assert_eq!(category_from_name("zip"), Some(SafeHarbor::Geographic));
        assert_eq!(category_from_name("first_name"), Some(SafeHarbor::Name));
        assert_eq!(category_from_name("diagnosis"), None);
        assert_eq!(category_from_name("lab_name"), None);
        assert_eq!(category_from_name("last_name"), Some(SafeHarbor::Name));
        assert_eq!(category_from_name("age"), None);
    }

    #[test]
    fn zip_and_date_rules() {
        assert!(five_digit_zip("02118"));
        assert!(!five_digit_zip("021"));
        assert!(restricted_zip3("036"));
        assert!(restricted_zip3("03601"));
        assert!(!restricted_zip3("000"));
        assert!(!restricted_zip3("021"));
        assert!(finer_than_year("1984-03-14"));
        assert!(!finer_than_year("1984"));
    }
}
