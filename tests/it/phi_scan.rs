//! The PHI scan of our own outputs: every file of a run folder is read as text (the PDF through
//! its own ToUnicode map, Parquet and other binaries as raw bytes) and searched for the
//! dataset's identifier values, directly and through the PHI detector.

use phiprobe::phi::SafeHarbor;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The text a PDF shows: every `<hex> Tj` of every content stream, mapped through the
/// document's ToUnicode CMap.
pub fn pdf_text(pdf: &[u8]) -> String {
    let mut streams = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&pdf[at..], b">>\nstream\n") {
        let start = at + i + 10;
        let Some(len) = find(&pdf[start..], b"\nendstream") else {
            break;
        };
        let mut z = flate2::read::ZlibDecoder::new(&pdf[start..start + len]);
        let mut out = Vec::new();
        if z.read_to_end(&mut out).is_ok() {
            streams.push(out);
        }
        at = start + len + 10;
    }
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for s in &streams {
        let t = String::from_utf8_lossy(s);
        if !t.contains("beginbfchar") {
            continue;
        }
        for line in t.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [g, u] = parts.as_slice()
                && g.starts_with('<')
                && u.starts_with('<')
            {
                let units: Vec<u16> = (1..u.len() - 1)
                    .step_by(4)
                    .filter_map(|i| u16::from_str_radix(&u[i..i + 4], 16).ok())
                    .collect();
                map.insert(
                    g[1..g.len() - 1].to_owned(),
                    String::from_utf16_lossy(&units),
                );
            }
        }
    }
    assert!(!map.is_empty(), "the PDF has no ToUnicode map");
    // Document and bookmark titles: text strings, ASCII literals or UTF-16BE with a BOM.
    let raw = String::from_utf8_lossy(pdf);
    let mut titles = String::new();
    for line in raw.lines() {
        let Some(bytes) = line.trim().strip_prefix("/Title ").and_then(string_operand) else {
            continue;
        };
        if let Some(utf16) = bytes.strip_prefix(&[0xFE, 0xFF]) {
            let units: Vec<u16> = utf16
                .chunks(2)
                .map(|p| u16::from_be_bytes([p[0], p.get(1).copied().unwrap_or(0)]))
                .collect();
            titles.push_str(&String::from_utf16_lossy(&units));
        } else {
            titles.push_str(&String::from_utf8_lossy(&bytes));
        }
        titles.push('\n');
    }
    let mut text = String::new();
    for s in &streams {
        let t = String::from_utf8_lossy(s);
        for line in t.lines() {
            let Some(operand) = line.strip_suffix(" Tj") else {
                continue;
            };
            let Some(bytes) = string_operand(operand) else {
                continue;
            };
            for pair in bytes.chunks(2) {
                let key = format!("{:02X}{:02X}", pair[0], pair.get(1).copied().unwrap_or(0));
                text.push_str(map.get(&key).map_or("\u{fffd}", String::as_str));
            }
            text.push('\n');
        }
    }
    text.push_str(&titles);
    text
}

/// The bytes of a PDF string operand: `<hex>` or `(literal)` with its escapes.
fn string_operand(op: &str) -> Option<Vec<u8>> {
    if let Some(hex) = op.strip_prefix('<').and_then(|o| o.strip_suffix('>')) {
        return (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
    }
    let lit = op.strip_prefix('(')?.strip_suffix(')')?.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lit.len() {
        if lit[i] != b'\\' {
            out.push(lit[i]);
            i += 1;
            continue;
        }
        i += 1;
        match lit.get(i)? {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            d @ b'0'..=b'7' => {
                let mut v = u32::from(d - b'0');
                let mut j = 1;
                while j < 3 && matches!(lit.get(i + j), Some(b'0'..=b'7')) {
                    v = v * 8 + u32::from(lit[i + j] - b'0');
                    j += 1;
                }
                out.push(v as u8);
                i += j - 1;
            }
            other => out.push(*other),
        }
        i += 1;
    }
    Some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Scans every file of `run` against the identifier values of the dataset behind `card`;
/// panics naming the file, the category and the record on a hit. Returns the files scanned.
pub fn scan_run(run: &Path, card: &Path) -> usize {
    let recs = phiprobe::data::text::TextRecords::load(card, None).unwrap();
    // Values long enough not to collide with ordinary words and numbers of a report.
    let mut values: Vec<(String, SafeHarbor, String)> = Vec::new();
    let mut normalised: HashSet<(SafeHarbor, String)> = HashSet::new();
    for col in &recs.identifiers {
        // Dates: birth dates only (an encounter date may be the day the test runs, which the
        // manifest records).
        let checked = match col.category {
            SafeHarbor::Name | SafeHarbor::Geographic => false,
            SafeHarbor::Date => col.name == "birth_date",
            _ => true,
        };
        for (r, v) in col.values.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            if (col.category != SafeHarbor::Date || checked)
                && let Some(n) = phiprobe::phi::normalize(col.category, v)
            {
                normalised.insert((col.category, n));
            }
            let street = col.category == SafeHarbor::Geographic
                && v.chars().any(|c| c.is_ascii_digit())
                && v.contains(' ');
            if (checked || street) && v.len() >= 6 {
                values.push((v.clone(), col.category, recs.ids[r].clone()));
            }
        }
    }
    // Full names, first and last together.
    let first = recs.identifiers.iter().find(|c| c.name == "first_name");
    let last = recs.identifiers.iter().find(|c| c.name == "last_name");
    if let (Some(f), Some(l)) = (first, last) {
        for r in 0..recs.len() {
            if !f.values[r].is_empty() && !l.values[r].is_empty() {
                values.push((
                    format!("{} {}", f.values[r], l.values[r]),
                    SafeHarbor::Name,
                    recs.ids[r].clone(),
                ));
            }
        }
    }
    assert!(
        values.len() > 100,
        "too few identifier values to scan for: {}",
        values.len()
    );
    // Membership is PHI: no record or patient id of an audited record (member or not) may
    // appear; reports name records by salted pseudonyms. Synthetic `row-N` ids are too short
    // and common to scan for.
    let ids: BTreeSet<&str> = (0..recs.ids.len())
        .filter(|&r| recs.member[r].is_some())
        .flat_map(|r| [recs.ids[r].as_str(), recs.patients[r].as_str()])
        .filter(|id| id.len() >= 6 && !id.starts_with("row-"))
        .collect();
    let mut all = Vec::new();
    files(run, &mut all);
    for p in &all {
        let bytes = std::fs::read(p).unwrap();
        let text = if p.extension().is_some_and(|e| e == "pdf") {
            // Lines of the PDF are joined too, so a value wrapped across lines is found.
            let t = pdf_text(&bytes);
            let joined = t.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{t}\n{joined}")
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        if let Some(id) = ids.iter().find(|id| text.contains(**id)) {
            panic!(
                "{}: the record or patient id {id} of an audited record appears",
                p.display()
            );
        }
        for (v, cat, id) in &values {
            assert!(
                !text.contains(v.as_str()),
                "{}: a {} value of record {id} appears",
                p.display(),
                cat.id()
            );
        }
        for m in phiprobe::phi::detect(&text) {
            let found = &text[m.start..m.end];
            if let Some(n) = phiprobe::phi::normalize(m.category, found) {
                assert!(
                    !normalised.contains(&(m.category, n)),
                    "{}: the detector found a {} value of the dataset ({} rule)",
                    p.display(),
                    m.category.id(),
                    m.rule
                );
            }
        }
    }
    all.len()
}

#[test]
fn the_scan_finds_a_value_hidden_in_a_pdf() {
    use phiprobe::report::doc::{Block, ReportDoc, Section};
    let tmp = crate::workspace("12");
    let card = tmp.path().join("d/synthetic-ehr.toml");
    let recs = phiprobe::data::text::TextRecords::load(&card, None).unwrap();
    let ssn = recs
        .identifiers
        .iter()
        .find(|c| c.category == SafeHarbor::Ssn)
        .and_then(|c| c.values.iter().find(|v| !v.is_empty()))
        .unwrap()
        .clone();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let doc = |text: String| ReportDoc {
        title: "t".into(),
        sections: vec![Section {
            title: "s".into(),
            blocks: vec![Block::Para(text)],
        }],
    };
    let clean = phiprobe::report::pdf::render(&doc("nothing to see".into()), "f").unwrap();
    std::fs::write(run.join("report.pdf"), clean).unwrap();
    assert_eq!(scan_run(&run, &card), 1);
    let leaky =
        phiprobe::report::pdf::render(&doc(format!("patient SSN {ssn} here")), "f").unwrap();
    assert!(
        !leaky.windows(ssn.len()).any(|w| w == ssn.as_bytes()),
        "not visible in the raw bytes"
    );
    std::fs::write(run.join("report.pdf"), leaky).unwrap();
    let message = scan_failure(&run, &card);
    assert!(
        message.contains("report.pdf") && message.contains("ssn"),
        "{message}"
    );
}

/// The message of the panic `scan_run` raises on `run` (empty when it passes).
fn scan_failure(run: &Path, card: &Path) -> String {
    std::panic::catch_unwind(|| scan_run(run, card))
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn the_scan_finds_a_member_id_and_passes_its_pseudonym() {
    let tmp = crate::workspace("12");
    let card = tmp.path().join("d/synthetic-ehr.toml");
    let recs = phiprobe::data::text::TextRecords::load(&card, None).unwrap();
    let r = (0..recs.len())
        .find(|&r| recs.member[r] == Some(true))
        .unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let pseudonym = recs.pseudonym(r);
    assert!(pseudonym.starts_with("rec-") && !pseudonym.contains(&recs.ids[r]));
    std::fs::write(
        run.join("report.md"),
        format!("most exposed: {pseudonym}\n"),
    )
    .unwrap();
    assert_eq!(scan_run(&run, &card), 1);
    std::fs::write(
        run.join("report.md"),
        format!("most exposed: {}\n", recs.ids[r]),
    )
    .unwrap();
    let message = scan_failure(&run, &card);
    assert!(
        message.contains("report.md") && message.contains("audited record"),
        "{message}"
    );
}
