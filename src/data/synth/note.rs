//! Free-text clinical notes that mention identifiers and clinical facts in varied phrasings,
//! with the character span of every identifier recorded as ground truth.

use super::encounter::Encounter;
use super::patient::Patient;
use crate::date::civil_from_days;
use crate::phi::SafeHarbor;
use crate::stats::Rng;
use serde::Serialize;

/// Where one identifier occurs in a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Record (encounter) id.
    pub record_id: String,
    /// The structured field whose value appears (e.g. `ssn`, `last_name`, `admission_date`).
    pub field: &'static str,
    /// Safe Harbor category id.
    pub category: &'static str,
    /// Start, in characters (Unicode scalar values) from the note's start.
    pub start: usize,
    /// End (exclusive), in characters.
    pub end: usize,
}

/// Builds a note while tracking identifier spans.
struct Note<'a> {
    text: String,
    chars: usize,
    spans: Vec<Span>,
    record_id: &'a str,
}

impl<'a> Note<'a> {
    fn new(record_id: &'a str) -> Self {
        Self {
            text: String::with_capacity(600),
            chars: 0,
            spans: Vec::new(),
            record_id,
        }
    }

    fn t(&mut self, s: &str) {
        self.text.push_str(s);
        self.chars += s.chars().count();
    }

    fn phi(&mut self, field: &'static str, category: SafeHarbor, value: &str) {
        let start = self.chars;
        self.t(value);
        self.spans.push(Span {
            record_id: self.record_id.to_owned(),
            field,
            category: category.id(),
            start,
            end: self.chars,
        });
    }
}

const NO_HISTORY: [&str; 3] = [
    "No significant past medical history. ",
    "PMH: none. ",
    "Otherwise healthy. ",
];
const DISCHARGE: [&str; 3] = [
    "Discharged on ",
    "Discharge date ",
    "Patient was discharged ",
];
const CLOSINGS: [&str; 5] = [
    "Follow up in 3 months.",
    "Return if symptoms worsen.",
    "Follow-up with PCP in 2 weeks.",
    "RTC 6 weeks.",
    "Will reassess at next visit.",
];

/// A date in one of several clinical writing styles.
fn date_text(rng: &mut Rng, day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    match rng.below(5) {
        0 => format!("{y:04}-{m:02}-{d:02}"),
        1 => format!("{m:02}/{d:02}/{y:04}"),
        2 => format!("{m}/{d}/{y}"),
        3 => format!("{} {d}, {y}", crate::date::MONTHS[m as usize - 1]),
        _ => format!("{d} {} {y}", crate::date::MONTHS[m as usize - 1]),
    }
}

fn phone_text(rng: &mut Rng, phone: &str) -> String {
    let p: Vec<&str> = phone.split('-').collect();
    match rng.below(3) {
        0 => phone.to_owned(),
        1 => format!("({}) {}-{}", p[0], p[1], p[2]),
        _ => format!("{}.{}.{}", p[0], p[1], p[2]),
    }
}

/// Writes the note of one encounter; returns the text and the identifier spans.
///
/// Kept whole: the note is written section by section in reading order from one seeded stream; the
/// order of draws is the generator's contract (same seed, same notes), which helpers threading the
/// stream and the growing note would obscure.
pub fn write(rng: &mut Rng, p: &Patient, e: &Encounter) -> (String, Vec<Span>) {
    let mut n = Note::new(&e.record_id);
    let age = p.age_on(e.admission);
    let (title, pronoun, possessive) = if p.sex == "F" {
        ("Ms.", "She", "her")
    } else {
        ("Mr.", "He", "his")
    };
    let man = if p.sex == "F" { "woman" } else { "man" };
    let sex_word = if p.sex == "F" { "female" } else { "male" };
    // Opening: who and when.
    match rng.below(6) {
        0 => {
            n.t("Patient: ");
            n.phi("last_name", SafeHarbor::Name, &p.last.to_uppercase());
            n.t(", ");
            n.phi("first_name", SafeHarbor::Name, &p.first.to_uppercase());
            n.t(". DOB: ");
            let d = date_text(rng, p.birth);
            n.phi("birth_date", SafeHarbor::Date, &d);
            n.t(". MRN: ");
            n.phi("mrn", SafeHarbor::Mrn, &p.mrn);
            n.t(". Date of service: ");
            let d = date_text(rng, e.admission);
            n.phi("admission_date", SafeHarbor::Date, &d);
            n.t(".\n");
        }
        1 => {
            n.phi("first_name", SafeHarbor::Name, &p.first);
            n.t(" ");
            n.phi("last_name", SafeHarbor::Name, &p.last);
            n.t(&format!(" is a {age}-year-old {man} seen on "));
            let d = date_text(rng, e.admission);
            n.phi("admission_date", SafeHarbor::Date, &d);
            n.t(&format!(" for {}. ", e.reason_phrase));
        }
        2 => {
            n.t(title);
            n.t(" ");
            n.phi("last_name", SafeHarbor::Name, &p.last);
            n.t(&format!(" ({age} y/o {sex_word}, medical record number "));
            n.phi("mrn", SafeHarbor::Mrn, &p.mrn);
            n.t(") presented on ");
            let d = date_text(rng, e.admission);
            n.phi("admission_date", SafeHarbor::Date, &d);
            n.t(&format!(" with {}. ", e.reason_phrase));
        }
        3 => {
            n.t("CHIEF COMPLAINT: ");
            n.t(&e.reason_phrase);
            n.t(".\nHPI: ");
            n.phi("first_name", SafeHarbor::Name, &p.first);
            n.t(&format!(" is a {age} yo {sex_word} born "));
            let d = date_text(rng, p.birth);
            n.phi("birth_date", SafeHarbor::Date, &d);
            n.t(". ");
        }
        4 => {
            n.t("Encounter ");
            let d = date_text(rng, e.admission);
            n.phi("admission_date", SafeHarbor::Date, &d);
            n.t(" - ");
            n.phi("last_name", SafeHarbor::Name, &p.last);
            n.t(", ");
            n.phi("first_name", SafeHarbor::Name, &p.first);
            n.t(" (MRN ");
            n.phi("mrn", SafeHarbor::Mrn, &p.mrn);
            n.t(&format!(
                "), {age}{}. ",
                if p.sex == "F" { "F" } else { "M" }
            ));
        }
        _ => {
            n.t(&format!("{pronoun} is a pleasant {age}-year-old {man}, "));
            n.phi("first_name", SafeHarbor::Name, &p.first);
            n.t(" ");
            n.phi("last_name", SafeHarbor::Name, &p.last);
            n.t(", who comes in today (");
            let d = date_text(rng, e.admission);
            n.phi("admission_date", SafeHarbor::Date, &d);
            n.t(&format!(") because of {}. ", e.reason_phrase));
        }
    }
    // History.
    if !p.conditions.is_empty() {
        let list: Vec<String> = p
            .conditions
            .iter()
            .take(4)
            .map(|c| c.title.to_lowercase())
            .collect();
        match rng.below(3) {
            0 => n.t(&format!(
                "Past medical history is notable for {}. ",
                list.join(", ")
            )),
            1 => n.t(&format!("PMH: {}. ", list.join("; "))),
            _ => n.t(&format!(
                "{pronoun} has a history of {}. ",
                list.join(" and ")
            )),
        }
    } else {
        {
            let phrase = NO_HISTORY[rng.index(NO_HISTORY.len())];
            n.t(phrase);
        }
    }
    // Contact and address details, in some notes.
    if rng.chance(0.45) {
        match rng.below(3) {
            0 => {
                n.t("Lives at ");
                n.phi("street_address", SafeHarbor::Geographic, &p.street);
                n.t(", ");
                n.phi("city", SafeHarbor::Geographic, &p.city);
                n.t(&format!(", {} ", p.state));
                n.phi("zip", SafeHarbor::Geographic, &p.zip);
                n.t(". ");
            }
            1 => {
                n.t("Best contact number ");
                let ph = phone_text(rng, &p.phone);
                n.phi("phone", SafeHarbor::Phone, &ph);
                n.t(". ");
            }
            _ => {
                n.t(&format!("Called {possessive} phone at "));
                let ph = phone_text(rng, &p.phone);
                n.phi("phone", SafeHarbor::Phone, &ph);
                n.t(" to confirm the visit. ");
            }
        }
    }
    if let (Some(email), true) = (&p.email, rng.chance(0.2)) {
        n.t("Portal messages to ");
        n.phi("email", SafeHarbor::Email, email);
        n.t(". ");
    }
    if let (Some(fax), true) = (&p.fax, rng.chance(0.5)) {
        n.t("Records faxed to fax: ");
        n.phi("fax", SafeHarbor::Fax, fax);
        n.t(". ");
    }
    if rng.chance(0.1) {
        n.t("SSN ");
        n.phi("ssn", SafeHarbor::Ssn, &p.ssn);
        n.t(" verified at registration. ");
    }
    if rng.chance(0.1) {
        n.t("Insurance member ID: ");
        n.phi("health_plan_id", SafeHarbor::HealthPlan, &p.health_plan);
        n.t(". ");
    }
    if rng.chance(0.05) {
        n.t("Billing account # ");
        n.phi("account_number", SafeHarbor::Account, &p.account);
        n.t(". ");
    }
    if let (Some(dev), true) = (&p.device, rng.chance(0.4)) {
        n.t("Device UDI: ");
        n.phi("device_id", SafeHarbor::Device, dev);
        n.t(". ");
    }
    if let (Some(vin), true) = (&p.vin, rng.chance(0.03)) {
        n.t("MVC; vehicle VIN ");
        n.phi("vehicle_vin", SafeHarbor::Vehicle, vin);
        n.t(" noted by EMS. ");
    }
    if rng.chance(0.04) {
        n.t("Driver's license number ");
        n.phi("license_number", SafeHarbor::License, &p.license);
        n.t(" on file. ");
    }
    if rng.chance(0.05) {
        n.t("Results released to ");
        n.phi("portal_url", SafeHarbor::Url, &p.url);
        n.t(" (login from ");
        n.phi("ip_address", SafeHarbor::Ip, &p.ip);
        n.t("). ");
    }
    // Objective.
    match rng.below(3) {
        0 => n.t(&format!(
            "Vitals: BP {}/{}, BMI {:.1}. ",
            e.systolic, e.diastolic, e.bmi
        )),
        1 => n.t(&format!(
            "Blood pressure {} over {}; body mass index {:.1}. ",
            e.systolic, e.diastolic, e.bmi
        )),
        _ => n.t(&format!("BP {}/{} mmHg. ", e.systolic, e.diastolic)),
    }
    match rng.below(3) {
        0 => n.t(&format!("{} {} {}. ", e.lab_name, e.lab_value, e.lab_unit)),
        1 => n.t(&format!(
            "Labs notable for {} of {} {}. ",
            e.lab_name, e.lab_value, e.lab_unit
        )),
        _ => n.t(&format!(
            "{} was {} {} (ref {}). ",
            e.lab_name, e.lab_value, e.lab_unit, e.lab_range
        )),
    }
    // Assessment and plan.
    match rng.below(4) {
        0 => n.t(&format!("Assessment: {} ({}). ", e.diagnosis, e.icd_code)),
        1 => n.t(&format!("Dx: {} - {}. ", e.icd_code, e.diagnosis)),
        2 => n.t(&format!("Impression: {}. ", e.diagnosis.to_lowercase())),
        _ => n.t(&format!(
            "Diagnosis {} coded as {}. ",
            e.diagnosis, e.icd_code
        )),
    }
    match rng.below(3) {
        0 => n.t(&format!(
            "Plan: start {} {} {} {}. ",
            e.medication, e.dose, e.route, e.frequency
        )),
        1 => n.t(&format!(
            "Continue {} {} {}. ",
            e.medication, e.dose, e.frequency
        )),
        _ => n.t(&format!(
            "Rx: {} {} {} {}. ",
            e.medication, e.dose, e.route, e.frequency
        )),
    }
    if let Some(dis) = e.discharge.filter(|&d| d != e.admission) {
        {
            let phrase = DISCHARGE[rng.index(DISCHARGE.len())];
            n.t(phrase);
        }
        let d = date_text(rng, dis);
        n.phi("discharge_date", SafeHarbor::Date, &d);
        n.t(". ");
    }
    {
        let phrase = CLOSINGS[rng.index(CLOSINGS.len())];
        n.t(phrase);
    }
    (n.text, n.spans)
}
