//! Training: a checkpoint written by `phiprobe train` against PyTorch + transformers (fixture
//! made by tests/data/trained/make_expected.py), the train / merge / accountant commands,
//! reference fleets and shards, and every bad input of the training issue.

use std::path::Path;

use phiprobe::model::{LoadOptions, load};
use phiprobe::train::llama::{self, Batch, LlamaConfig, Params};
use serde_json::Value;

use crate::{data, phiprobe, stderr, stdout, synth_into, workspace};

fn expected() -> Value {
    let text = std::fs::read_to_string(data("trained/expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn trained_checkpoint_scores_as_in_transformers() {
    let model = load(
        data("trained/micro").to_str().unwrap(),
        &LoadOptions {
            adapter: None,
            threads: 2,
        },
    )
    .unwrap();
    let mut worst = 0f64;
    for case in expected()["texts"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want_ids = ids(&case["ids"]);
        assert_eq!(
            model.encode(text).unwrap(),
            want_ids,
            "tokenisation of {text:?}"
        );
        let s = model.score(&[want_ids]).unwrap().remove(0);
        let want: Vec<f64> = case["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let got: Vec<f64> = s.scores.iter().map(|t| f64::from(t.logprob)).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            worst = worst.max((g - w).abs());
        }
    }
    eprintln!("phiprobe loader vs transformers: max |Δ log p| = {worst:.2e}");
    assert!(worst < 1e-4, "max |Δ log p| = {worst:.2e}");
}

#[test]
fn training_forward_pass_agrees_with_transformers() {
    // The training graph (primitive ops + fused ops with backward) computes the same log-probs as
    // transformers on the saved weights.
    let dir = data("trained/micro");
    let training: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("training.json")).unwrap()).unwrap();
    let cfg: LlamaConfig = serde_json::from_value(training["config"]["model"].clone()).unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let params = Params::from_tensors(&cfg, tensors).unwrap();
    let mut worst = 0f64;
    for case in expected()["texts"].as_array().unwrap() {
        let seq = ids(&case["ids"]);
        let batch = Batch::new(&[seq.as_slice()]).unwrap();
        let logp = llama::forward(&cfg, &params, &batch, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (j, w) in case["logprobs"].as_array().unwrap().iter().enumerate() {
            worst = worst.max((f64::from(logp[0][j]) - w.as_f64().unwrap()).abs());
        }
    }
    assert!(worst < 1e-4, "max |Δ log p| = {worst:.2e}");
}

/// `phiprobe -q train` of the micro preset on `d/` (1 epoch, batch 8 unless `extra` says).
pub fn train(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "-q",
        "train",
        "--data",
        "d/synthetic-ehr.toml",
        "--preset",
        "micro",
    ];
    for (flag, default) in [("--epochs", "1"), ("--batch-size", "8")] {
        if !extra.contains(&flag) {
            args.extend_from_slice(&[flag, default]);
        }
    }
    args.extend_from_slice(extra);
    phiprobe(dir, &args)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn train_writes_a_checkpoint_with_canaries_that_phiprobe_scores() {
    let tmp = workspace("50");
    let dir = tmp.path();
    let o = train(dir, &["--out", "m", "--canaries", "default", "--seed", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "training.json",
    ] {
        assert!(dir.join("m").join(f).exists(), "{f}");
    }
    assert!(!dir.join(".m.partial").exists(), "working folder removed");
    let t = json(&dir.join("m/training.json"));
    assert_eq!(t["format"], "phiprobe-training-1");
    assert_eq!(t["seed"], 3);
    assert_eq!(t["sampler"], "shuffle");
    let members = t["membership"].as_array().unwrap().len();
    assert!(members > 32, "{members}");
    let canaries = t["canaries"]["canaries"].as_array().unwrap();
    assert_eq!(canaries.len(), 36);
    for c in canaries {
        // Every copy is either seen by the model or recorded as cut off with a long note's tail.
        assert_eq!(
            (c["planted_in"].as_array().unwrap().len()
                + c["truncated_in"].as_array().unwrap().len()) as u64,
            c["repetitions"].as_u64().unwrap()
        );
    }
    assert!(t["log"]["epochs"][0]["val_loss"].as_f64().unwrap() > 0.0);
    // With a short context, copies planted late in long notes are cut off and recorded so.
    let o = train(
        dir,
        &[
            "--out",
            "short",
            "--canaries",
            "default",
            "--seed",
            "3",
            "--max-len",
            "24",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let short = json(&dir.join("short/training.json"));
    let mut cut = 0;
    for c in short["canaries"]["canaries"].as_array().unwrap() {
        let seen = c["planted_in"].as_array().unwrap().len();
        let lost = c["truncated_in"].as_array().unwrap().len();
        assert_eq!((seen + lost) as u64, c["repetitions"].as_u64().unwrap());
        cut += lost;
    }
    assert!(cut > 0, "some copies fall beyond 24 tokens");
    // Same seed → same weights.
    let o = train(
        dir,
        &["--out", "m2", "--canaries", "default", "--seed", "3"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.join("m/model.safetensors")).unwrap(),
        std::fs::read(dir.join("m2/model.safetensors")).unwrap()
    );
    // The model loads and scores through the inference path.
    let o = phiprobe(dir, &["score", "--model", "m", "--text", "Encounter note."]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("logprob"));
    // A finished model is never overwritten.
    let o = train(dir, &["--out", "m"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("already holds a trained model"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dp_training_reports_epsilon() {
    let tmp = workspace("30");
    let dir = tmp.path();
    let o = train(
        dir,
        &[
            "--out",
            "dp",
            "--dp-noise",
            "1.0",
            "--dp-clip",
            "1.0",
            "--epochs",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let t = json(&dir.join("dp/training.json"));
    assert_eq!(t["sampler"], "poisson");
    let p = &t["log"]["privacy"];
    let q = t["config"]["dp"]["sample_rate"].as_f64().unwrap();
    let steps = t["log"]["steps"].as_u64().unwrap();
    assert_eq!(steps, (2.0 / q).round() as u64);
    // The accountant command reports the same ε for the same setting.
    let o = phiprobe(
        dir,
        &[
            "accountant",
            "--noise",
            "1",
            "--sample-rate",
            &q.to_string(),
            "--steps",
            &steps.to_string(),
            "--format",
            "json",
        ],
    );
    let a: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(a["statement"]["epsilon"], p["epsilon"]);
    // A target ε calibrates σ.
    let o = train(dir, &["--out", "dp8", "--dp-epsilon", "8", "--epochs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = json(&dir.join("dp8/training.json"));
    let e = t["log"]["privacy"]["epsilon"].as_f64().unwrap();
    assert!(e <= 8.0 && e > 7.9, "{e}");
}

#[test]
fn reference_fleet_is_balanced_and_shards_merge() {
    let tmp = workspace("24");
    let dir = tmp.path();
    let o = train(dir, &["--out", "fleet", "--references", "8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = json(&dir.join("fleet/fleet.json"));
    let models = f["models"].as_array().unwrap();
    assert_eq!(models.len(), 9);
    assert_eq!(models[0]["role"], "target");
    let records = f["records"].as_array().unwrap().len();
    for i in 0..records {
        let ins = models[1..]
            .iter()
            .filter(|m| m["membership"].as_str().unwrap().as_bytes()[i] == b'1')
            .count();
        assert_eq!(ins, 4, "record {i} is IN for {ins} of 8 references");
    }
    // Complementary pairs.
    for pair in 0..4 {
        let a = models[1 + 2 * pair]["membership"].as_str().unwrap();
        let b = models[2 + 2 * pair]["membership"].as_str().unwrap();
        assert!(a.bytes().zip(b.bytes()).all(|(x, y)| x != y));
    }
    // The same fleet trained as three shards, then merged, gives the same manifest.
    for s in ["0/3", "1/3", "2/3"] {
        let o = train(
            dir,
            &["--out", "sharded", "--references", "8", "--shard", s],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let auto = json(&dir.join("sharded/fleet.json"));
    std::fs::remove_file(dir.join("sharded/fleet.json")).unwrap();
    let o = phiprobe(dir, &["merge", "sharded"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let merged = json(&dir.join("sharded/fleet.json"));
    assert_eq!(auto, merged);
    assert_eq!(merged["models"], f["models"]);
    // An external reference model with its training-record ids.
    let first: Vec<String> = f["records"].as_array().unwrap()[..5]
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    std::fs::write(dir.join("ext-ids.txt"), first.join("\n")).unwrap();
    let o = phiprobe(
        dir,
        &[
            "merge",
            "sharded",
            "--external",
            "fleet/target",
            "--trained-on",
            "ext-ids.txt",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let merged = json(&dir.join("sharded/fleet.json"));
    let ext = &merged["models"][9];
    assert_eq!(ext["role"], "external");
    assert_eq!(ext["membership"].as_str().unwrap().matches('1').count(), 5);
    // A missing shard is reported.
    std::fs::remove_dir_all(dir.join("sharded/references/ref-03")).unwrap();
    let o = phiprobe(dir, &["merge", "sharded"]);
    assert_eq!(o.status.code(), Some(2));
}

fn assert_input_error(o: &std::process::Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "{needle:?} not in: {}",
        stderr(o)
    );
    assert!(!stderr(o).contains("panicked"));
}

#[test]
fn bad_training_inputs_exit_2() {
    let tmp = workspace("20");
    let dir = tmp.path();
    // Empty training split: every record marked non-member (JSONL copy of the data).
    synth_into(dir, "20", "e", "jsonl");
    let path = dir.join("e/encounters.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["member"] = Value::Bool(false);
            v.to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let o = phiprobe(
        dir,
        &[
            "train",
            "--data",
            "e/synthetic-ehr.toml",
            "--out",
            "x",
            "--preset",
            "micro",
        ],
    );
    assert_input_error(&o, "training split is empty");
    // Canary format whose space is too small.
    std::fs::write(
        dir.join("small.toml"),
        "references = 10\n[[canary]]\nkind = \"pin\"\nformat = \"{d1}\"\n",
    )
    .unwrap();
    assert_input_error(
        &train(dir, &["--out", "x", "--canaries", "small.toml"]),
        "too few",
    );
    // q ∉ (0, 1], σ ≤ 0, C ≤ 0, δ ∉ (0, 1).
    assert_input_error(
        &train(
            dir,
            &["--out", "x", "--dp-noise", "1", "--dp-sample-rate", "1.5"],
        ),
        "sampling rate",
    );
    assert_input_error(
        &train(dir, &["--out", "x", "--dp-noise=-1"]),
        "noise multiplier",
    );
    assert_input_error(
        &train(dir, &["--out", "x", "--dp-audit"]),
        "--dp-audit audits DP-SGD",
    );
    // σ = 0 is DP-SGD's clipping and sampling without noise (a sweep's baseline): trained,
    // with a warning and no privacy statement.
    let o = train(dir, &["--out", "nonoise", "--dp-noise", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no privacy guarantee"),
        "{}",
        stderr(&o)
    );
    assert!(json(&dir.join("nonoise/training.json"))["log"]["privacy"].is_null());
    assert_input_error(
        &train(dir, &["--out", "x", "--dp-noise", "1", "--dp-clip", "0"]),
        "clipping norm",
    );
    assert_input_error(
        &train(dir, &["--out", "x", "--dp-noise", "1", "--dp-clip", "inf"]),
        "clipping norm",
    );
    assert_input_error(
        &train(dir, &["--out", "x", "--dp-noise", "1", "--dp-delta", "1"]),
        "δ must be in (0, 1)",
    );
    assert_input_error(
        &phiprobe(
            dir,
            &[
                "accountant",
                "--noise",
                "1",
                "--sample-rate",
                "0",
                "--steps",
                "10",
            ],
        ),
        "sampling rate",
    );
    // Output folder not writable (its parent is a file).
    std::fs::write(dir.join("file"), b"x").unwrap();
    assert_input_error(&train(dir, &["--out", "file/model"]), "cannot write");
    assert!(!dir.join("x").exists());
}

#[cfg(target_os = "linux")]
#[test]
fn disk_full_mid_checkpoint_leaves_no_corrupt_checkpoint() {
    // A file-size limit makes the checkpoint write fail with EFBIG part-way, as a full disk
    // would; SIGXFSZ is ignored (and stays ignored across exec) so the write returns an error.
    let tmp = workspace("20");
    let dir = tmp.path();
    let cmd = format!(
        "trap '' XFSZ; ulimit -f 300; exec '{}' -q train --data d/synthetic-ehr.toml --out m --preset micro --epochs 4 --batch-size 4 --checkpoint-every 2",
        env!("CARGO_BIN_EXE_phiprobe")
    );
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(&cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_input_error(&o, "cannot write");
    assert!(!dir.join("m").exists(), "no output folder");
    let ck = dir.join(".m.partial/checkpoints");
    let left: Vec<String> = std::fs::read_dir(&ck)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|f| !f.ends_with(".tmp") && !f.starts_with("state-")),
        "{left:?}"
    );
    assert!(!ck.join("checkpoint.json").exists());
    // With room to write, the same command completes (and resumes nothing broken).
    let o = train(
        dir,
        &[
            "--out",
            "m",
            "--epochs",
            "4",
            "--batch-size",
            "4",
            "--checkpoint-every",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn accountant_prints_the_opacus_value() {
    let tmp = tempfile::tempdir().unwrap();
    let o = phiprobe(
        tmp.path(),
        &[
            "accountant",
            "--noise",
            "1.5",
            "--sample-rate",
            "0.04",
            "--steps",
            "2250",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ε = 7.3291"), "{}", stdout(&o));
    assert!(stdout(&o).contains("7–12 % lower"));
}

#[test]
fn a_killed_run_resumes_to_the_same_model() {
    let tmp = workspace("20");
    let dir = tmp.path();
    let args = [
        "--epochs",
        "4",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "12",
    ];
    let mut a = args.to_vec();
    a.extend(["--out", "whole"]);
    let o = train(dir, &a);
    assert!(o.status.success(), "{}", stderr(&o));
    // Start the same run elsewhere and kill it once a checkpoint exists.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_phiprobe"));
    cmd.args([
        "-q",
        "train",
        "--data",
        "d/synthetic-ehr.toml",
        "--preset",
        "micro",
        "--out",
        "cut",
    ])
    .args(args)
    .current_dir(dir)
    .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let pointer = dir.join(".cut.partial/checkpoints/checkpoint.json");
    let t0 = std::time::Instant::now();
    while !pointer.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint could be observed"
        );
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint written");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.join("cut").exists());
    let mut b = args.to_vec();
    b.extend(["--out", "cut"]);
    let o = train(dir, &b);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = json(&dir.join("cut/training.json"));
    assert!(
        t["log"]["resumed_from"].as_u64().unwrap() >= 12,
        "{}",
        t["log"]
    );
    assert_eq!(
        std::fs::read(dir.join("whole/model.safetensors")).unwrap(),
        std::fs::read(dir.join("cut/model.safetensors")).unwrap(),
        "the resumed run ends with the same weights"
    );
    assert!(!dir.join(".cut.partial").exists());
}
