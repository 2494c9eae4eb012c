//! One synthetic patient: demographics, identifiers, conditions and encounters.

use super::vocab::{Icd, VOCAB};
use crate::date::{days_from_civil, years_between};
use crate::stats::Rng;

/// Reference "today" of the synthetic world: ages are computed against encounter dates, and no
/// date lies after it.
pub const WORLD_END: (i64, u32, u32) = (2024, 12, 31);
/// First encounter date.
pub const WORLD_START: (i64, u32, u32) = (2016, 1, 1);

/// A chronic condition or encounter reason, by ICD-10-CM category prefix.
#[derive(Debug, Clone)]
pub struct Condition {
    /// ICD-10-CM prefix.
    pub prefix: &'static str,
    /// The specific code and title chosen for this patient.
    pub code: String,
    /// Title.
    pub title: String,
}

/// Identifiers and demographics of one patient (every Safe Harbor category that occurs in EHR
/// data).
#[derive(Debug, Clone)]
pub struct Patient {
    /// Patient id `P0000001`.
    pub id: String,
    /// Index 0.. .
    pub index: u64,
    /// `F` or `M`.
    pub sex: &'static str,
    /// First name.
    pub first: String,
    /// Last name.
    pub last: String,
    /// Birth date (days since epoch).
    pub birth: i64,
    /// Death date, when deceased.
    pub death: Option<i64>,
    /// Street address line.
    pub street: String,
    /// City.
    pub city: String,
    /// State.
    pub state: String,
    /// 5-digit ZIP.
    pub zip: String,
    /// Telephone.
    pub phone: String,
    /// Fax, for some.
    pub fax: Option<String>,
    /// Email, for most.
    pub email: Option<String>,
    /// SSN.
    pub ssn: String,
    /// Medical record number.
    pub mrn: String,
    /// Health-plan beneficiary number.
    pub health_plan: String,
    /// Account number.
    pub account: String,
    /// Driver's licence number.
    pub license: String,
    /// Vehicle identification number, for some.
    pub vin: Option<String>,
    /// Implanted device identifier (UDI), for some.
    pub device: Option<String>,
    /// Patient-portal URL.
    pub url: String,
    /// IP address of the last portal login.
    pub ip: String,
    /// Chronic conditions.
    pub conditions: Vec<Condition>,
    /// Obesity flag (drives BMI).
    pub obese: bool,
    /// Member of the training split.
    pub member: bool,
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

fn letters(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'A' + rng.below(26) as u8))
        .collect()
}

fn ssn(rng: &mut Rng) -> String {
    let area = loop {
        let a = rng.range_inclusive(1, 899);
        if a != 666 {
            break a;
        }
    };
    format!(
        "{area:03}-{:02}-{:04}",
        rng.range_inclusive(1, 99),
        rng.range_inclusive(1, 9999)
    )
}

/// North American number: NPA 2xx–9xx (not N11), exchange 2xx–9xx.
pub fn phone(rng: &mut Rng) -> String {
    let npa = loop {
        let n = rng.range_inclusive(201, 989);
        if n % 100 != 11 {
            break n;
        }
    };
    format!(
        "{npa}-{}-{:04}",
        rng.range_inclusive(200, 999),
        rng.range_inclusive(0, 9999)
    )
}

fn vin(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
    (0..17).map(|_| char::from(*rng.pick(ALPHABET))).collect()
}

/// Age in years drawn from a piecewise distribution of a US patient population.
fn draw_age(rng: &mut Rng) -> i64 {
    const BANDS: [(i64, i64, f64); 7] = [
        (0, 17, 0.14),
        (18, 34, 0.19),
        (35, 49, 0.18),
        (50, 64, 0.23),
        (65, 79, 0.18),
        (80, 89, 0.06),
        (90, 104, 0.02),
    ];
    let mut u = rng.unit();
    for (lo, hi, p) in BANDS {
        if u < p {
            return rng.range_inclusive(lo, hi);
        }
        u -= p;
    }
    rng.range_inclusive(35, 49)
}

fn clamp01(x: f64) -> f64 {
    x.clamp(0.0, 1.0)
}

/// Picks a code under `prefix`, preferring the unspecified / most common form half the time.
pub fn pick_code(rng: &mut Rng, prefix: &'static str) -> Condition {
    let codes: Vec<&Icd> = VOCAB.icd_with_prefix(prefix);
    let common: Vec<&&Icd> = codes
        .iter()
        .filter(|c| c.code.len() <= 3 || c.code.ends_with('9') || c.code.ends_with(".0"))
        .collect();
    let c = if !common.is_empty() && rng.chance(0.5) {
        *rng.pick(&common)
    } else if codes.is_empty() {
        return Condition {
            prefix,
            code: prefix.to_owned(),
            title: prefix.to_owned(),
        };
    } else {
        rng.pick(&codes)
    };
    Condition {
        prefix,
        code: c.code.clone(),
        title: c.title.clone(),
    }
}

/// Chronic conditions from age and sex (rough US prevalences; correlated: CKD follows
/// diabetes/hypertension, heart failure follows hypertension).
fn conditions(rng: &mut Rng, age: i64, female: bool) -> (Vec<Condition>, bool) {
    let a = age as f64;
    let mut out = Vec::new();
    let has = |rng: &mut Rng, p: f64, prefix: &'static str, out: &mut Vec<Condition>| {
        let yes = rng.chance(p);
        if yes {
            out.push(pick_code(rng, prefix));
        }
        yes
    };
    let adult = age >= 18;
    let obese = adult && rng.chance(0.32);
    if obese {
        out.push(pick_code(rng, "E66"));
    }
    let htn = adult
        && has(
            rng,
            0.6 / (1.0 + libm::exp(-(a - 55.0) / 9.0)),
            "I10",
            &mut out,
        );
    let dm = adult
        && has(
            rng,
            0.02 + 0.22 * clamp01((a - 30.0) / 50.0) + if obese { 0.08 } else { 0.0 },
            "E11",
            &mut out,
        );
    if !adult {
        has(rng, 0.003, "E10", &mut out);
    }
    if adult {
        has(
            rng,
            0.05 + 0.35 * clamp01((a - 30.0) / 45.0),
            "E78",
            &mut out,
        );
        has(rng, 0.12 * clamp01((a - 45.0) / 30.0), "J44", &mut out);
        has(rng, if female { 0.11 } else { 0.06 }, "F32", &mut out);
        has(rng, if female { 0.12 } else { 0.07 }, "F41", &mut out);
        has(rng, 0.1, "M54", &mut out);
        has(rng, 0.09, "K21", &mut out);
    }
    has(rng, 0.08, "J45", &mut out);
    if age >= 50 {
        has(
            rng,
            0.03 + if dm { 0.15 } else { 0.0 } + if htn { 0.07 } else { 0.0 },
            "N18",
            &mut out,
        );
        has(rng, if female { 0.05 } else { 0.1 }, "I25", &mut out);
        has(rng, 0.12, "M17", &mut out);
    }
    if age >= 60 {
        has(rng, 0.03 + if htn { 0.06 } else { 0.0 }, "I50", &mut out);
        has(rng, 0.07, "I48", &mut out);
    }
    if female {
        has(rng, 0.08, "E03", &mut out);
        if (15..50).contains(&age) {
            has(rng, 0.1, "G43", &mut out);
        }
        if age >= 40 {
            has(rng, 0.025, "C50", &mut out);
        }
    } else if age >= 55 {
        has(rng, 0.05, "C61", &mut out);
    }
    if age >= 55 {
        has(rng, 0.01, "C34", &mut out);
    }
    has(rng, 0.04, "D64", &mut out);
    (out, obese)
}

impl Patient {
    /// Generates patient `index` from its own stream (independent of every other patient).
    pub fn generate(seed: u64, index: u64, member_fraction: f64) -> Self {
        let mut rng = Rng::derive(seed, "synth.patient", index);
        let female = rng.chance(0.51);
        let sex = if female { "F" } else { "M" };
        let end = days_from_civil(WORLD_END.0, WORLD_END.1, WORLD_END.2);
        let age = draw_age(&mut rng);
        let birth = end - age * 365 - rng.range_inclusive(0, 364) - age / 4;
        let first_names = if female { &VOCAB.female } else { &VOCAB.male };
        let first = first_names.names[first_names.table.sample(&mut rng)].clone();
        let last = VOCAB.surnames.names[VOCAB.surnames.table.sample(&mut rng)].clone();
        let zip = &VOCAB.zips.zips[VOCAB.zips.table.sample(&mut rng)];
        const SUFFIXES: [&str; 8] = ["St", "Ave", "Rd", "Dr", "Ln", "Ct", "Blvd", "Way"];
        let mut street = format!(
            "{} {} {}",
            rng.range_inclusive(1, 9999),
            rng.pick(&VOCAB.streets),
            rng.pick(&SUFFIXES)
        );
        if rng.chance(0.15) {
            street.push_str(&format!(" Apt {}", rng.range_inclusive(1, 40)));
        }
        let (conditions, obese) = conditions(&mut rng, age, female);
        let email = rng.chance(0.75).then(|| {
            const DOMAINS: [&str; 4] = [
                "example.com",
                "example.net",
                "example.org",
                "mail.example.com",
            ];
            let sep = *rng.pick(&[".", "_", ""]);
            let num = if rng.chance(0.5) {
                rng.range_inclusive(1, 99).to_string()
            } else {
                String::new()
            };
            format!(
                "{}{sep}{}{num}@{}",
                first.to_lowercase(),
                last.to_lowercase(),
                rng.pick(&DOMAINS)
            )
        });
        let mrn = digits(&mut rng, 8);
        let dead = age >= 60 && rng.chance(0.02 + 0.1 * clamp01((age as f64 - 60.0) / 40.0));
        let death = dead.then(|| end - rng.range_inclusive(0, 700));
        let device = conditions
            .iter()
            .any(|c| matches!(c.prefix, "I50" | "I48" | "E10"))
            .then(|| {
                format!(
                    "(01){}(17){}(21){}",
                    digits(&mut rng, 14),
                    digits(&mut rng, 6),
                    letters(&mut rng, 2) + &digits(&mut rng, 6)
                )
            })
            .filter(|_| rng.chance(0.6));
        Self {
            id: format!("P{:07}", index + 1),
            index,
            sex,
            first,
            last,
            birth,
            death,
            street,
            city: zip.city.clone(),
            state: zip.state.clone(),
            zip: zip.zip.clone(),
            phone: phone(&mut rng),
            fax: rng.chance(0.12).then(|| phone(&mut rng)),
            email,
            ssn: ssn(&mut rng),
            url: format!("https://portal.example-health.org/patients/{mrn}"),
            mrn,
            health_plan: format!("{}{}", letters(&mut rng, 3), digits(&mut rng, 9)),
            account: digits(&mut rng, 10),
            license: format!("{}{}", letters(&mut rng, 1), digits(&mut rng, 8)),
            vin: (age >= 16 && rng.chance(0.45)).then(|| vin(&mut rng)),
            device,
            ip: format!(
                "{}.{}.{}.{}",
                rng.range_inclusive(11, 223),
                rng.range_inclusive(0, 255),
                rng.range_inclusive(0, 255),
                rng.range_inclusive(1, 254)
            ),
            conditions,
            obese,
            member: rng.chance(member_fraction),
        }
    }

    /// Age in whole years on `day`.
    pub fn age_on(&self, day: i64) -> i64 {
        years_between(self.birth, day)
    }
}
