//! Views of a release gate's outcome: the terminal verdict table and JUnit XML for CI
//! systems. The verdicts themselves come from [`crate::gate`].

use crate::evidence::{GateRecord, Verdict};
use std::fmt::Write as _;

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Info => "not measured",
        Verdict::Pass => "pass",
        Verdict::Warn => "WARN",
        Verdict::Fail => "FAIL",
    }
}

/// A readable verdict table (one row per rule and finding) and the gate's conclusion.
pub fn table(outcome: &GateRecord) -> String {
    let num = |v: Option<f64>| v.map_or_else(|| "no value".to_owned(), crate::evidence::num);
    let rows: Vec<[String; 6]> = outcome
        .evaluations
        .iter()
        .map(|e| {
            [
                e.rule.to_string(),
                e.finding.clone(),
                match e.number {
                    Some(_) => format!("{} {}", e.compared, num(e.number)),
                    None => "no value".into(),
                },
                e.condition.clone(),
                e.severity.clone(),
                verdict_word(e.verdict).into(),
            ]
        })
        .collect();
    let header = [
        "rule", "finding", "compared", "required", "severity", "verdict",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let line = |cells: &[&str], s: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        let _ = writeln!(s, "  {}", parts.join("  ").trim_end());
    };
    line(&header, &mut s);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>(), &mut s);
    }
    let _ = writeln!(
        s,
        "gate: {} — {} rule comparison(s), {} breach(es) failing the gate, {} warning(s)",
        if outcome.passed { "PASS" } else { "FAIL" },
        outcome.evaluations.len(),
        outcome
            .evaluations
            .iter()
            .filter(|e| e.verdict == Verdict::Fail)
            .count(),
        outcome
            .evaluations
            .iter()
            .filter(|e| e.verdict == Verdict::Warn)
            .count(),
    );
    s
}

/// XML text: control characters (not allowed in XML 1.0) become spaces, then HTML escaping
/// (which is valid XML).
fn xml(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect();
    super::render::esc(&clean)
}

/// JUnit XML of the gate for CI systems: one test case per (rule, finding); a breach of error
/// severity is a `<failure>`, a warning passes with the breach in `<system-out>`.
pub fn junit(outcome: &GateRecord, run_id: &str) -> String {
    let policy_name = outcome.policy.path.as_str();
    let num = |v: Option<f64>| v.map_or_else(|| "no value".to_owned(), crate::evidence::num);
    let failures = outcome
        .evaluations
        .iter()
        .filter(|e| e.verdict == Verdict::Fail)
        .count();
    let n = outcome.evaluations.len();
    let skipped = outcome
        .evaluations
        .iter()
        .filter(|e| e.verdict == Verdict::Info)
        .count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"phiprobe gate\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\">"
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        xml(&format!("{policy_name} on {run_id}"))
    );
    for e in &outcome.evaluations {
        let what = match e.number {
            Some(_) => format!(
                "{} {} (required {})",
                e.compared,
                num(e.number),
                e.condition
            ),
            None => format!("no value (required {})", e.condition),
        };
        let _ = write!(
            s,
            "    <testcase classname=\"phiprobe.{}\" name=\"{}\"",
            xml(&e.probe),
            xml(&format!("rule {}: {}", e.rule, e.finding))
        );
        match e.verdict {
            Verdict::Fail => {
                let _ = writeln!(
                    s,
                    ">\n      <failure type=\"threshold\" message=\"{}\"/>\n    </testcase>",
                    xml(&what)
                );
            }
            Verdict::Warn => {
                let _ = writeln!(
                    s,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml(&format!("warning: {what}"))
                );
            }
            Verdict::Info => {
                let _ = writeln!(
                    s,
                    ">\n      <skipped message=\"not measured: no value\"/>\n    </testcase>"
                );
            }
            Verdict::Pass => {
                let _ = writeln!(s, "/>");
            }
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{FileHash, Finding};
    use crate::gate::{Policy, apply};
    use std::path::Path;

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    #[test]
    fn table_names_the_conclusion_and_each_breach() {
        let p = policy(
            "[severity]\nextraction='warning'\n[[rule]]\nmetric='extraction.rate'\nmax=0\n[[rule]]\nmetric='mia.auc'\nmax=0\n[[rule]]\nmetric='mia.ppv'\nmax=1\nmissing='skip'\n",
        );
        let mut fs = vec![
            Finding::new(
                "extraction",
                crate::evidence::metric::EXTRACTION_RATE,
                Some(1.0),
            ),
            Finding::new("membership", crate::evidence::metric::MIA_AUC, Some(1.0)),
            Finding::new("membership", crate::evidence::metric::MIA_PPV, None),
        ];
        let out = apply(&p, Path::new("p"), &mut fs).unwrap();
        let t = table(&out.record(FileHash::of("p.toml", b"")));
        assert!(t.contains("gate: FAIL") && t.contains("WARN"), "{t}");
        assert!(t.contains("not measured"), "{t}");
    }

    #[test]
    fn junit_marks_failures_and_escapes() {
        let p = policy("[[rule]]\nmetric='mia.auc'\nmax=0.5\n[[rule]]\nmetric='reid.k'\nmax=0.5\n");
        let mut fs = vec![
            Finding::new("risk", crate::evidence::metric::MIA_AUC, Some(0.6))
                .with_param("set", "<x&y>"),
            Finding::new("risk", crate::evidence::metric::REID_K, Some(0.1)),
        ];
        let out = apply(&p, Path::new("p"), &mut fs).unwrap();
        let x = crate::report::gate::junit(&out.record(FileHash::of("policy.toml", b"")), "run-1");
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("&lt;x&amp;y&gt;") && !x.contains("<x&y>"), "{x}");
        assert_eq!(x.matches("<failure").count(), 1);
    }
}
