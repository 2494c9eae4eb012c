//! Encounters: dates, reason, diagnosis, medication, a lab and vitals, correlated with the
//! patient's age, sex and conditions.

use super::patient::{Condition, Patient, WORLD_END, WORLD_START, pick_code};
use super::vocab::VOCAB;
use crate::date::days_from_civil;
use crate::stats::Rng;

/// One encounter (one record).
#[derive(Debug, Clone)]
pub struct Encounter {
    /// Record id `R00000001`-style, unique across the dataset.
    pub record_id: String,
    /// Admission (or visit) date.
    pub admission: i64,
    /// Discharge date (inpatient stays; same day for visits).
    pub discharge: Option<i64>,
    /// `outpatient`, `inpatient`, `emergency`.
    pub kind: &'static str,
    /// ICD-10-CM code.
    pub icd_code: String,
    /// Diagnosis title.
    pub diagnosis: String,
    /// How the note names the reason.
    pub reason_phrase: String,
    /// Medication.
    pub medication: String,
    /// Dose.
    pub dose: String,
    /// Route.
    pub route: String,
    /// Frequency.
    pub frequency: String,
    /// Lab test.
    pub lab_name: String,
    /// LOINC.
    pub lab_loinc: String,
    /// Value, formatted.
    pub lab_value: String,
    /// Unit.
    pub lab_unit: String,
    /// Reference range text.
    pub lab_range: String,
    /// Systolic blood pressure.
    pub systolic: i64,
    /// Diastolic blood pressure.
    pub diastolic: i64,
    /// Body-mass index.
    pub bmi: f64,
}

const ACUTE: [(&str, &str); 8] = [
    ("J18", "cough and fever"),
    ("N39", "dysuria"),
    ("R07", "chest pain"),
    ("R10", "abdominal pain"),
    ("Z00", "an annual physical"),
    ("Z23", "vaccination"),
    ("U07", "fever and shortness of breath"),
    ("A41", "fever and hypotension"),
];

fn reason_for(prefix: &str) -> &'static str {
    match prefix {
        "I10" => "blood pressure follow-up",
        "E11" | "E10" => "diabetes follow-up",
        "E78" => "cholesterol management",
        "E66" => "weight management",
        "J44" => "shortness of breath",
        "J45" => "wheezing",
        "F32" => "low mood",
        "F41" => "anxiety",
        "M54" => "back pain",
        "K21" => "heartburn",
        "N18" => "kidney function follow-up",
        "I25" => "exertional chest discomfort",
        "M17" => "knee pain",
        "I50" => "leg swelling and dyspnea",
        "I48" => "palpitations",
        "E03" => "fatigue",
        "G43" => "headaches",
        "C50" => "oncology follow-up",
        "C61" => "oncology follow-up",
        "C34" => "oncology follow-up",
        "D64" => "fatigue",
        "O80" => "labor",
        _ => "a clinic visit",
    }
}

impl Encounter {
    /// Encounter `k` of patient `p`, drawn from `rng` (the patient's encounter stream).
    ///
    /// Kept whole: one seeded draw after another; the order of draws is the generator's contract
    /// (same seed, same data).
    pub fn generate(rng: &mut Rng, p: &Patient, record_id: String, admission: i64) -> Self {
        let age = p.age_on(admission);
        // Reason: a chronic condition most of the time, else an acute problem.
        let chronic = !p.conditions.is_empty() && rng.chance(0.65);
        let cond: Condition = if chronic {
            rng.pick(&p.conditions).clone()
        } else if p.sex == "F" && (18..=42).contains(&age) && rng.chance(0.08) {
            pick_code(rng, "O80")
        } else {
            let (prefix, _) = *rng.pick(&ACUTE);
            pick_code(rng, prefix)
        };
        let reason_phrase = ACUTE
            .iter()
            .find(|a| a.0 == cond.prefix)
            .map_or_else(|| reason_for(cond.prefix).to_owned(), |a| a.1.to_owned());
        let kind = match cond.prefix {
            "A41" | "O80" | "I50" if rng.chance(0.8) => "inpatient",
            "R07" | "J18" | "U07" if rng.chance(0.4) => "emergency",
            _ if rng.chance(0.06) => "inpatient",
            _ => "outpatient",
        };
        let end = days_from_civil(WORLD_END.0, WORLD_END.1, WORLD_END.2);
        let discharge = match kind {
            "inpatient" => Some((admission + rng.range_inclusive(1, 9)).min(end)),
            _ => Some(admission),
        };
        // Medication for the reason, else for a chronic condition, else supportive.
        let meds: Vec<_> = VOCAB
            .meds
            .iter()
            .filter(|m| m.indication == cond.prefix)
            .collect();
        let meds = if meds.is_empty() {
            let chronic_prefixes: Vec<&str> = p.conditions.iter().map(|c| c.prefix).collect();
            let m: Vec<_> = VOCAB
                .meds
                .iter()
                .filter(|m| chronic_prefixes.contains(&m.indication.as_str()))
                .collect();
            if m.is_empty() {
                VOCAB.meds.iter().collect()
            } else {
                m
            }
        } else {
            meds
        };
        let med = *rng.pick(&meds);
        // Lab related to the reason, else to a chronic condition, else a basic panel test.
        let related: Vec<_> = VOCAB
            .labs
            .iter()
            .filter(|l| l.related == cond.prefix)
            .collect();
        let labs = if related.is_empty() {
            VOCAB
                .labs
                .iter()
                .filter(|l| {
                    matches!(
                        l.name.as_str(),
                        "Glucose" | "Creatinine" | "Hemoglobin" | "Sodium" | "Potassium"
                    )
                })
                .collect()
        } else {
            related
        };
        let lab = *rng.pick(&labs);
        let affected =
            p.conditions.iter().any(|c| c.prefix == lab.related) || lab.related == cond.prefix;
        let span = lab.high - lab.low;
        let raw = if affected && rng.chance(0.75) {
            if lab.name.starts_with("eGFR")
                || lab.name == "Hemoglobin"
                || lab.name == "HDL cholesterol"
            {
                lab.low - span * (0.05 + 0.5 * rng.unit())
            } else {
                lab.high + span.max(lab.high * 0.2) * (0.05 + 0.8 * rng.unit())
            }
        } else {
            lab.low + span * (0.1 + 0.8 * rng.unit())
        }
        .max(0.0);
        let decimals = if span < 5.0 {
            2
        } else if span < 50.0 {
            1
        } else {
            0
        };
        let htn = p.conditions.iter().any(|c| c.prefix == "I10");
        let systolic = (108.0
            + 0.45 * (age.max(18) - 18) as f64
            + if htn { 16.0 } else { 0.0 }
            + 11.0 * rng.normal())
        .round()
        .clamp(80.0, 220.0) as i64;
        let diastolic = (68.0 + if htn { 9.0 } else { 0.0 } + 7.0 * rng.normal())
            .round()
            .clamp(40.0, 130.0) as i64;
        let bmi = if age < 18 {
            17.0 + 0.3 * age as f64 + 2.0 * rng.normal()
        } else {
            26.0 + if p.obese { 8.0 } else { 0.0 } + 3.5 * rng.normal()
        }
        .clamp(12.0, 60.0);
        Self {
            record_id,
            admission,
            discharge,
            kind,
            icd_code: cond.code,
            diagnosis: cond.title,
            reason_phrase,
            medication: med.name.clone(),
            dose: med.dose.clone(),
            route: med.route.clone(),
            frequency: med.frequency.clone(),
            lab_name: lab.name.clone(),
            lab_loinc: lab.loinc.clone(),
            lab_value: format!("{raw:.decimals$}"),
            lab_unit: lab.unit.clone(),
            lab_range: format!("{}-{}", lab.low, lab.high),
            systolic,
            diastolic,
            bmi: (bmi * 10.0).round() / 10.0,
        }
    }
}

/// Visit dates of a patient: 1 + geometric encounters (more with more conditions), sorted,
/// after birth and before death / the end of the world.
pub fn visit_days(rng: &mut Rng, p: &Patient) -> Vec<i64> {
    let start = days_from_civil(WORLD_START.0, WORLD_START.1, WORLD_START.2).max(p.birth + 1);
    let end = p
        .death
        .unwrap_or_else(|| days_from_civil(WORLD_END.0, WORLD_END.1, WORLD_END.2));
    if end <= start {
        return vec![start];
    }
    let stop = 0.5 - 0.04 * (p.conditions.len().min(6) as f64);
    let mut n = 1;
    while n < 12 && !rng.chance(stop) {
        n += 1;
    }
    let mut days: Vec<i64> = (0..n).map(|_| rng.range_inclusive(start, end)).collect();
    days.sort_unstable();
    days.dedup();
    days
}
