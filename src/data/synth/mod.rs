//! The synthetic PHI-like EHR generator (`phiprobe data synth`).
//!
//! Patients with several encounters each; every Safe Harbor identifier category that occurs in
//! EHR data; clinical content with plausible correlations (age/sex → conditions → diagnoses,
//! medications, labs and vitals); a free-text note per encounter with the character span of
//! every identifier it mentions; a member / non-member split by patient. Names, places and
//! codes come from public-domain vocabularies (`datasets/SOURCES.md`).
//!
//! Determinism: every patient draws from its own stream derived from (seed, patient index), so
//! the output is byte-identical for a seed whatever the number of threads.

mod encounter;
mod note;
mod patient;
pub mod vocab;

pub use note::Span;
pub use patient::Patient;

use super::card::Format;
use crate::date::iso;
use crate::error::{Error, Result};
use crate::stats::Rng;
use polars::prelude as pl;
use polars::prelude::{IntoColumn, NamedFrom, SerWriter};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `phi_spans.jsonl` as read back (character offsets).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SpanRow {
    /// Record id.
    pub record_id: String,
    /// Structured field.
    pub field: String,
    /// Safe Harbor category id.
    pub category: String,
    /// Start (characters).
    pub start: usize,
    /// End (characters, exclusive).
    pub end: usize,
}

/// Reads a `phi_spans.jsonl` ground-truth file.
pub fn read_spans(path: &Path) -> Result<Vec<SpanRow>> {
    let text = crate::fsx::read_text(path, crate::fsx::input::data_limit())?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Parse {
                path: path.to_owned(),
                format: "PHI span list (JSON lines)".into(),
                // serde's own line is always 1 here: the file's line replaces it.
                message: format!(
                    "line {}: {}",
                    i + 1,
                    crate::redact::json(&e).replacen("line 1, ", "", 1)
                ),
            })
        })
        .collect()
}

/// Options of a generation run.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of patients.
    pub patients: u64,
    /// Seed.
    pub seed: u64,
    /// Output format of the records.
    pub format: Format,
    /// Output folder.
    pub out: PathBuf,
    /// Share of patients in the member (training) split.
    pub member_fraction: f64,
}

/// What a generation run wrote.
#[derive(Debug, Clone)]
pub struct SynthSummary {
    /// Patients generated.
    pub patients: u64,
    /// Members among them.
    pub members: u64,
    /// Records (encounters) generated.
    pub records: u64,
    /// Identifier spans recorded in notes.
    pub spans: u64,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// The dataset card written beside the data.
    pub card: PathBuf,
}

/// File name of the records for a format.
pub fn records_file(format: Format) -> String {
    format!("encounters.{}", format.extension())
}

/// The dataset card of the generator's output (committed as `datasets/synthetic-ehr.toml` for
/// the Parquet format, and written beside every generated dataset).
pub fn card_text(format: Format) -> String {
    include_str!("card.toml.in")
        .replace("{RECORDS}", &records_file(format))
        .replace("{FORMAT}", format.name())
}

/// The Safe Harbor form of a ZIP code: its first three digits, or `000` for the restricted
/// prefixes.
pub fn safe_harbor_zip3(zip: &str) -> String {
    let z3 = zip.get(..3).unwrap_or("000");
    if crate::phi::RESTRICTED_ZIP3_2000.contains(&z3) {
        "000".to_owned()
    } else {
        z3.to_owned()
    }
}

/// Columns of the records table, built row by row.
#[derive(Default)]
struct Rows {
    s: Vec<Vec<Option<String>>>,
    age: Vec<i64>,
    birth_year: Vec<i64>,
    sbp: Vec<i64>,
    dbp: Vec<i64>,
    bmi: Vec<f64>,
    spans: Vec<Span>,
    members: u64,
}

/// String columns in output order (then age, systolic_bp, diastolic_bp, bmi, note last).
const STRING_COLUMNS: [&str; 35] = [
    "record_id",
    "patient_id",
    "member",
    "first_name",
    "last_name",
    "sex",
    "birth_date",
    "death_date",
    "street_address",
    "city",
    "state",
    "zip",
    "zip3",
    "phone",
    "fax",
    "email",
    "ssn",
    "mrn",
    "health_plan_id",
    "account_number",
    "license_number",
    "vehicle_vin",
    "device_id",
    "portal_url",
    "ip_address",
    "admission_date",
    "discharge_date",
    "encounter_type",
    "icd10_code",
    "diagnosis",
    "medication",
    "lab_name",
    "lab_loinc",
    "lab_value",
    "note",
];

fn generate_range(seed: u64, from: u64, to: u64, member_fraction: f64) -> Rows {
    let mut rows = Rows {
        s: vec![Vec::new(); STRING_COLUMNS.len()],
        ..Rows::default()
    };
    for i in from..to {
        let p = Patient::generate(seed, i, member_fraction);
        rows.members += u64::from(p.member);
        let mut rng = Rng::derive(seed, "synth.encounters", i);
        for (k, day) in encounter::visit_days(&mut rng, &p).into_iter().enumerate() {
            let rid = format!("{}-E{:02}", p.id, k + 1);
            let e = encounter::Encounter::generate(&mut rng, &p, rid, day);
            let (note, spans) = note::write(&mut rng, &p, &e);
            let values: [Option<String>; 35] = [
                Some(e.record_id.clone()),
                Some(p.id.clone()),
                Some(p.member.to_string()),
                Some(p.first.clone()),
                Some(p.last.clone()),
                Some(p.sex.to_owned()),
                Some(iso(p.birth)),
                p.death.map(iso),
                Some(p.street.clone()),
                Some(p.city.clone()),
                Some(p.state.clone()),
                Some(p.zip.clone()),
                Some(safe_harbor_zip3(&p.zip)),
                Some(p.phone.clone()),
                p.fax.clone(),
                p.email.clone(),
                Some(p.ssn.clone()),
                Some(p.mrn.clone()),
                Some(p.health_plan.clone()),
                Some(p.account.clone()),
                Some(p.license.clone()),
                p.vin.clone(),
                p.device.clone(),
                Some(p.url.clone()),
                Some(p.ip.clone()),
                Some(iso(e.admission)),
                e.discharge.map(iso),
                Some(e.kind.to_owned()),
                Some(e.icd_code.clone()),
                Some(e.diagnosis.clone()),
                Some(format!(
                    "{} {} {} {}",
                    e.medication, e.dose, e.route, e.frequency
                )),
                Some(e.lab_name.clone()),
                Some(e.lab_loinc.clone()),
                Some(format!("{} {}", e.lab_value, e.lab_unit)),
                Some(note),
            ];
            for (col, v) in rows.s.iter_mut().zip(values) {
                col.push(v);
            }
            rows.age.push(p.age_on(e.admission));
            rows.birth_year
                .push(crate::date::civil_from_days(p.birth).0);
            rows.sbp.push(e.systolic);
            rows.dbp.push(e.diastolic);
            rows.bmi.push(e.bmi);
            rows.spans.extend(spans);
        }
    }
    rows
}

/// Generates all patients on the available cores, in deterministic order.
fn generate_all(opts: &SynthOptions, progress: &(dyn Fn(u64) + Sync)) -> Rows {
    const CHUNK: u64 = 2_000;
    let chunks: Vec<(u64, u64)> = (0..opts.patients.div_ceil(CHUNK))
        .map(|c| (c * CHUNK, ((c + 1) * CHUNK).min(opts.patients)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(chunks.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Rows>>> =
        chunks.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(from, to)) = chunks.get(c) else {
                        break;
                    };
                    let rows = generate_range(opts.seed, from, to, opts.member_fraction);
                    *results[c]
                        .lock()
                        .expect("no thread panics while holding the lock") = Some(rows);
                    progress(to - from);
                }
            });
        }
    });
    let mut all = Rows {
        s: vec![Vec::new(); STRING_COLUMNS.len()],
        ..Rows::default()
    };
    for r in results {
        let r = r
            .into_inner()
            .expect("lock not poisoned")
            .expect("every chunk ran");
        for (a, b) in all.s.iter_mut().zip(r.s) {
            a.extend(b);
        }
        all.age.extend(r.age);
        all.birth_year.extend(r.birth_year);
        all.sbp.extend(r.sbp);
        all.dbp.extend(r.dbp);
        all.bmi.extend(r.bmi);
        all.spans.extend(r.spans);
        all.members += r.members;
    }
    all
}

fn frame(rows: &Rows) -> pl::PolarsResult<pl::DataFrame> {
    let mut cols: Vec<pl::Column> = Vec::new();
    for (name, values) in STRING_COLUMNS.iter().zip(&rows.s) {
        if *name == "note" {
            continue;
        }
        cols.push(pl::Series::new((*name).into(), values).into_column());
        if *name == "birth_date" {
            cols.push(pl::Series::new("birth_year".into(), &rows.birth_year).into_column());
            cols.push(pl::Series::new("age".into(), &rows.age).into_column());
        }
    }
    cols.push(pl::Series::new("systolic_bp".into(), &rows.sbp).into_column());
    cols.push(pl::Series::new("diastolic_bp".into(), &rows.dbp).into_column());
    cols.push(pl::Series::new("bmi".into(), &rows.bmi).into_column());
    cols.push(pl::Series::new("note".into(), rows.s.last().expect("note column")).into_column());
    pl::DataFrame::new_infer_height(cols)
}

fn werr(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

fn write_records(df: &mut pl::DataFrame, format: Format, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).map_err(werr(path))?;
    let mut w = std::io::BufWriter::new(file);
    let res = match format {
        Format::Csv => pl::CsvWriter::new(&mut w).include_header(true).finish(df),
        Format::Parquet => pl::ParquetWriter::new(&mut w).finish(df).map(|_| ()),
        Format::Jsonl => pl::JsonWriter::new(&mut w)
            .with_json_format(pl::JsonFormat::JsonLines)
            .finish(df),
    };
    res.map_err(|e| Error::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    w.flush().map_err(werr(path))
}

/// Checks that a dataset may be generated into `out`: absent, empty, or an earlier output of
/// the generator (its card is the generator's and every file is one the generator writes).
/// Anything else is named and nothing is written: the generator never overwrites a user's file.
fn check_out(out: &Path) -> Result<()> {
    let refuse = |p: &Path, why: &str| Error::Output {
        path: p.to_owned(),
        message: format!(
            "{why}; `data synth` writes only into an empty folder or one it wrote before. Choose another --out"
        ),
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Read {
                path: out.to_owned(),
                source,
            });
        }
        Ok(m) if !m.is_dir() => return Err(refuse(out, "exists and is not a folder")),
        Ok(_) => {}
    }
    let names = crate::fsx::entry_names(out)?;
    if names.is_empty() {
        return Ok(());
    }
    let card = out.join("synthetic-ehr.toml");
    let ours = std::fs::read_to_string(&card)
        .is_ok_and(|t| Format::ALL.iter().any(|&f| t == card_text(f)));
    if !ours {
        return Err(refuse(
            &out.join(&names[0]),
            "is not part of a dataset phiprobe generated",
        ));
    }
    let generated: Vec<String> = Format::ALL
        .iter()
        .map(|&f| records_file(f))
        .chain(["phi_spans.jsonl", "split.csv", "synthetic-ehr.toml"].map(String::from))
        .collect();
    if let Some(other) = names.iter().find(|n| !generated.contains(n)) {
        return Err(refuse(
            &out.join(other),
            "is not a file the generator writes",
        ));
    }
    Ok(())
}

/// Generates a dataset into `opts.out` (files are written under temporary names and renamed
/// into place, so a failed run leaves no half-written file).
pub fn generate(opts: &SynthOptions, progress: &(dyn Fn(u64) + Sync)) -> Result<SynthSummary> {
    if opts.patients == 0 || opts.patients > 100_000_000 {
        return Err(Error::Usage(
            "--patients must be between 1 and 100,000,000".into(),
        ));
    }
    if !(0.0..=1.0).contains(&opts.member_fraction) {
        return Err(Error::Usage("--member-fraction must be in [0, 1]".into()));
    }
    check_out(&opts.out)?;
    std::fs::create_dir_all(&opts.out).map_err(werr(&opts.out))?;
    let rows = generate_all(opts, progress);
    let records = rows.age.len() as u64;
    let tmp = |name: &str| opts.out.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut written: Vec<(PathBuf, PathBuf)> = Vec::new();

    let rec_name = records_file(opts.format);
    let mut df =
        frame(&rows).map_err(|e| Error::Usage(format!("cannot build the records table: {e}")))?;
    write_records(&mut df, opts.format, &tmp(&rec_name))?;
    written.push((tmp(&rec_name), opts.out.join(&rec_name)));

    let spans_path = tmp("phi_spans.jsonl");
    {
        let f = std::fs::File::create(&spans_path).map_err(werr(&spans_path))?;
        let mut w = std::io::BufWriter::new(f);
        for s in &rows.spans {
            serde_json::to_writer(&mut w, s).map_err(|e| werr(&spans_path)(e.into()))?;
            w.write_all(b"\n").map_err(werr(&spans_path))?;
        }
        w.flush().map_err(werr(&spans_path))?;
    }
    written.push((spans_path, opts.out.join("phi_spans.jsonl")));

    let split_path = tmp("split.csv");
    {
        let mut text = String::from("patient_id,member\n");
        let mut last = "";
        for (pid, m) in rows.s[1].iter().zip(&rows.s[2]) {
            let pid = pid.as_deref().unwrap_or_default();
            if pid != last {
                text.push_str(&format!("{pid},{}\n", m.as_deref().unwrap_or_default()));
                last = pid;
            }
        }
        std::fs::write(&split_path, text).map_err(werr(&split_path))?;
    }
    written.push((split_path, opts.out.join("split.csv")));

    let card_path = tmp("synthetic-ehr.toml");
    std::fs::write(&card_path, card_text(opts.format)).map_err(werr(&card_path))?;
    written.push((card_path, opts.out.join("synthetic-ehr.toml")));

    let mut files = Vec::new();
    for (from, to) in written {
        std::fs::rename(&from, &to).map_err(werr(&to))?;
        files.push(to);
    }
    Ok(SynthSummary {
        patients: opts.patients,
        members: rows.members,
        records,
        spans: rows.spans.len() as u64,
        card: opts.out.join("synthetic-ehr.toml"),
        files,
    })
}
