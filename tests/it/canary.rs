//! Canary exposure on a real (micro) model with a byte-level BPE tokenizer: the exact rank from
//! the token-tree search equals brute-force enumeration, and `audit --canaries` works on a model
//! phiprobe did not plant the canaries in itself.

use serde_json::Value;

use crate::{phiprobe, stderr, workspace};
use phiprobe::probe::canary::search;
use phiprobe::train::canary::Format;

const PLAN: &str = r#"
repetitions = [1, 8, 32]
references = 100
[[canary]]
kind = "pin"
format = "{d3}"
context = "Door code {secret} for the ward."
"#;

#[test]
fn exact_rank_matches_enumeration_and_audit_takes_a_canary_file() {
    let tmp = workspace("40");
    let dir = tmp.path();
    std::fs::write(dir.join("canaries.toml"), PLAN).unwrap();
    let o = crate::train::train(
        dir,
        &[
            "--epochs",
            "8",
            "--out",
            "m",
            "--canaries",
            "canaries.toml",
            "--seed",
            "4",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let model = phiprobe::model::load(
        dir.join("m").to_str().unwrap(),
        &phiprobe::model::LoadOptions::default(),
    )
    .unwrap();
    let training: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m/training.json")).unwrap())
            .unwrap();
    let canaries = training["canaries"]["canaries"].as_array().unwrap().clone();
    let format = Format::parse("{d3}").unwrap();
    let context = "Door code {secret} for the ward.";
    let surfaces = search::Surfaces::of(model.as_ref()).unwrap();
    let mut secrets: Vec<String> = canaries
        .iter()
        .map(|c| c["secret"].as_str().unwrap().to_owned())
        .collect();
    secrets.extend(["000".to_owned(), "505".into(), "999".into()]);
    for secret in &secrets {
        let q = search::Query {
            format: &format,
            context,
            secret,
        };
        let limits = search::Limits {
            max_expansions: 100_000,
            batch: 97,
        };
        let got = search::exact_rank(model.as_ref(), &surfaces, &q, limits).unwrap();
        let e = search::brute_rank(model.as_ref(), &q, 10_000, 128)
            .unwrap()
            .unwrap();
        assert!(got.exact, "{secret}: {got:?}");
        assert_eq!(e.scored, 1000);
        // The two code paths (batched next-token rows with a shared-prefix KV cache vs whole
        // sentences) agree to float precision; near-ties within 1e-3 nats may go either way.
        assert!(
            (got.logprob - e.logprob).abs() < 1e-3,
            "{secret}: {} vs {}",
            got.logprob,
            e.logprob
        );
        let sure = 1 + e.others.iter().filter(|&&x| x >= e.logprob + 1e-3).count() as u64;
        let maybe = 1 + e.others.iter().filter(|&&x| x >= e.logprob - 1e-3).count() as u64;
        assert!(
            (sure..=maybe).contains(&got.rank),
            "{secret}: search rank {} vs enumeration {} (tie window {sure}..={maybe})",
            got.rank,
            e.rank
        );
        eprintln!(
            "{secret}: rank {} with {} prefix calls (enumeration: 1000 sentences)",
            got.rank, got.expansions
        );
    }

    // The same canaries as a user's --canaries file, every one searched.
    let mut list = String::new();
    for c in &canaries {
        list.push_str(&format!(
            "[[canary]]\nid = \"{}\"\nsecret = \"{}\"\nformat = \"{{d3}}\"\ncontext = \"{context}\"\nrepetitions = {}\n\n",
            c["id"].as_str().unwrap(),
            c["secret"].as_str().unwrap(),
            c["planted_in"].as_array().unwrap().len()
        ));
    }
    std::fs::write(dir.join("mine.toml"), list).unwrap();
    std::fs::write(
        dir.join("plan.toml"),
        "[[probe]]\nkind = \"canary\"\nreferences = 200\nsearch = \"always\"\n",
    )
    .unwrap();
    // A copy of the model without its training record: the canaries must come from the file.
    std::fs::create_dir_all(dir.join("bare")).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(dir.join("m").join(f), dir.join("bare").join(f)).unwrap();
    }
    let o = phiprobe(
        dir,
        &[
            "-q",
            "audit",
            "--model",
            "bare",
            "--canaries",
            "mine.toml",
            "--plan",
            "plan.toml",
            "--out",
            "run",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/findings.json")).unwrap())
            .unwrap();
    let rows = f["canary"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert!(r["exact_rank"][1].as_bool().unwrap(), "{r}");
        let e = r["exposure"].as_f64().unwrap();
        assert!((0.0..=1000f64.log2() + 1e-9).contains(&e), "{r}");
        assert!(r["exposure_skewnorm"].as_f64().is_some());
    }
    assert!(dir.join("run/observations/canary.json").is_file());
    let md = std::fs::read_to_string(dir.join("run/report.md")).unwrap();
    assert!(md.contains("## Canary exposure") && md.contains("--canaries mine.toml"));
    insta::assert_snapshot!(
        "canary_section",
        crate::report_section(&md, "Canary exposure", dir, crate::Digits::Redact)
    );
    // Re-analysis from observations alone reproduces the findings.
    let o = phiprobe(dir, &["-q", "report", "run", "--reanalyze"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/findings.json")).unwrap())
            .unwrap();
    assert_eq!(f["findings"], g["findings"]);
    // A canary that does not fit its format is refused with exit 2.
    std::fs::write(
        dir.join("bad.toml"),
        "[[canary]]\nsecret = \"12a\"\nformat = \"{d3}\"\ncontext = \"x {secret}\"\nrepetitions = 1\n",
    )
    .unwrap();
    let o = phiprobe(
        dir,
        &[
            "-q",
            "audit",
            "--model",
            "bare",
            "--canaries",
            "bad.toml",
            "--plan",
            "plan.toml",
            "--out",
            "run2",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml") && stderr(&o).contains("does not fit"),
        "{}",
        stderr(&o)
    );
}
