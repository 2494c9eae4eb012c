//! The hostile-input battery (issue 19): every command fed what a careless or hostile user
//! would feed it. Each case runs in its own copy of a small workspace and asserts
//!
//! - the exit code (2 for every refusal, with a message that names the file or argument);
//! - that no planted identifier (a name and an SSN, planted in every input the case writes)
//!   appears on stdout or stderr, and nothing reads like a panic;
//! - that no file outside the run folder changed, and a refusal wrote nothing at all;
//! - that no half-written run folder, working folder or lock file is left behind;
//! - that it ends within a minute (no hang).
//!
//! Fixtures are files, not trained models: the committed micro model and tiny checkpoints.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{data, synth_into};

/// Planted in every input a case writes; must never be printed.
const NAME: &str = "Zebulon Quixote";
const SSN: &str = "078-05-1120";
const LEAKS: [&str; 3] = ["Zebulon", "Quixote", "05-1120"];

/// Longest any case may run.
const LIMIT: Duration = Duration::from_secs(60);

/// What a case expects.
struct Case {
    name: &'static str,
    /// Writes the case's inputs into its workspace.
    setup: fn(&Path),
    args: Vec<String>,
    /// Expected exit code.
    code: i32,
    /// Substrings stderr must contain (the file or argument, the kind of problem).
    says: Vec<&'static str>,
    /// Paths (relative) that a successful run may create or change; everything else must
    /// stay as it was.
    writes: Vec<&'static str>,
    /// Runs with a lock on this folder held by the test (a second writer).
    hold_lock: Option<&'static str>,
}

fn case(name: &'static str, setup: fn(&Path), args: &[&str], says: &[&'static str]) -> Case {
    Case {
        name,
        setup,
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        code: 2,
        says: says.to_vec(),
        writes: Vec::new(),
        hold_lock: None,
    }
}

impl Case {
    fn ok(mut self, code: i32, writes: &[&'static str]) -> Self {
        self.code = code;
        self.writes = writes.to_vec();
        self
    }
    fn locked(mut self, dir: &'static str) -> Self {
        self.hold_lock = Some(dir);
        self
    }
}

fn nothing(_: &Path) {}

fn write(dir: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

/// The shared workspace: synthetic data `d/` (30 patients), a finished risk run `run/`, the
/// committed micro model `m/` (trained by phiprobe on synthetic notes) and a small CSV `t.csv`.
fn base() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        synth_into(dir, "30", "d", "csv");
        write(dir, "t.csv", TABLE);
        let o = crate::phiprobe(
            dir,
            &[
                "-q", "risk", "--data", "t.csv", "--qi", "age,sex", "--out", "run", "--format",
                "json",
            ],
        );
        assert!(o.status.success(), "{}", crate::stderr(&o));
        copy_dir(&data("trained/micro"), &dir.join("m"));
        tmp
    })
    .path()
}

/// A small, clean table: every class ≥ 2.
const TABLE: &str =
    "id,age,sex,zip\n1,30,F,021\n2,30,F,021\n3,40,M,100\n4,40,M,100\n5,50,F,200\n6,50,F,200\n";

/// Every file under `dir` (relative path → content hash), and every folder.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
            if ft.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(root, &p, out);
            } else if ft.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(rel, phiprobe::integrity::sha256_hex(&bytes));
            } else {
                out.insert(rel, "special".into());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs the binary with a deadline; returns (exit code, stdout, stderr, elapsed).
fn run(dir: &Path, args: &[String]) -> (Option<i32>, String, String, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_phiprobe"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("PHIPROBE_BUNDLE_KEY")
        .env_remove("RAYON_NUM_THREADS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the phiprobe binary runs");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t0.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let so = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let se = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    (code, so, se, t0.elapsed())
}

/// Runs one case; returns what went wrong (empty: it held).
fn check(c: &Case) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(base(), dir);
    (c.setup)(dir);
    let before = snapshot(dir);
    let _held = c.hold_lock.map(|d| {
        let lock = dir.join(format!(".{d}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .unwrap();
        f.lock().unwrap();
        (f, lock)
    });
    let (code, so, se, took) = run(dir, &c.args);
    if let Some((f, lock)) = _held {
        drop(f);
        std::fs::remove_file(lock).unwrap();
    }
    let mut bad = Vec::new();
    match code {
        None => bad.push(format!("no exit within {LIMIT:?} (hang, killed)")),
        Some(k) if k != c.code => bad.push(format!("exit {k}, expected {}", c.code)),
        _ => {}
    }
    for s in &c.says {
        if !se.contains(s) {
            bad.push(format!("stderr does not say {s:?}"));
        }
    }
    for leak in LEAKS {
        if so.contains(leak) || se.contains(leak) {
            bad.push(format!("a planted value ({leak}) was printed"));
        }
    }
    if se.contains("panicked") || se.contains("internal error") {
        bad.push("a panic".into());
    }
    let after = snapshot(dir);
    let allowed = |p: &str| {
        c.writes
            .iter()
            .any(|w| p == *w || p.starts_with(&format!("{w}/")) || p == format!("{w}/"))
    };
    for (p, h) in &before {
        match after.get(p) {
            None if !allowed(p) => bad.push(format!("{p} was deleted")),
            Some(h2) if h2 != h && !allowed(p) => bad.push(format!("{p} was changed")),
            _ => {}
        }
    }
    for p in after.keys() {
        if before.contains_key(p) {
            continue;
        }
        if !allowed(p) {
            bad.push(format!("{p} was written"));
        }
        let name = p.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        if name.contains(".tmp")
            || name.ends_with(".partial")
            || name.ends_with(".lock")
            || name.contains(".old-")
        {
            bad.push(format!("{p} was left behind"));
        }
    }
    // Every run folder written is complete: its manifest matches it.
    for p in after
        .keys()
        .filter(|p| p.ends_with("findings.json") && !before.contains_key(*p))
    {
        let run = dir.join(p).parent().unwrap().to_owned();
        match phiprobe::integrity::manifest::read_manifest(&run) {
            Ok((_, m)) => {
                let problems = phiprobe::integrity::manifest::check(&run, &m).unwrap();
                if !problems.is_empty() {
                    bad.push(format!(
                        "{} does not match its manifest: {problems:?}",
                        run.display()
                    ));
                }
            }
            Err(e) => bad.push(format!("half-written run folder {}: {e}", run.display())),
        }
    }
    if !bad.is_empty() {
        bad.push(format!(
            "(took {:.1} s) stderr: {}",
            took.as_secs_f64(),
            se.chars().take(600).collect::<String>()
        ));
    }
    bad
}

// ---- fixtures ---------------------------------------------------------------------------------

fn user_folder_with_findings(dir: &Path) {
    write(dir, "out/findings.json", "{}");
    write(dir, "out/thesis.docx", "my thesis");
}

fn run_with_extra_file(dir: &Path) {
    write(dir, "run/observations/notes.txt", "mine");
}

fn planted_csv(dir: &Path) {
    write(dir, "p.csv", format!("age,name\n30,\"{SSN} {NAME}\n"));
}

fn headerless_csv(dir: &Path) {
    write(dir, "h.csv", format!("{SSN},{NAME}\n41,M\n42,F\n"));
}

fn ragged_csv(dir: &Path) {
    write(dir, "r.csv", format!("age,sex\n30,F\n{SSN},{NAME},extra\n"));
}

fn broken_jsonl(dir: &Path) {
    write(
        dir,
        "b.jsonl",
        format!("{{\"age\":30}}\n{{\"age\":\"{SSN} {NAME}\"\n"),
    );
}

fn array_jsonl(dir: &Path) {
    write(dir, "a.jsonl", format!("[\"{SSN}\", \"{NAME}\"]\n"));
}

fn fake_parquet(dir: &Path) {
    write(dir, "f.parquet", format!("{SSN} {NAME} not parquet at all"));
}

fn dup_header(dir: &Path) {
    write(dir, "dup.csv", "age,sex,age\n30,F,31\n40,M,41\n");
}

fn card_wrong_type(dir: &Path) {
    write(
        dir,
        "c.toml",
        format!("name = \"c\"\nfiles = \"{SSN} {NAME}\"\n"),
    );
}

fn card_syntax(dir: &Path) {
    write(
        dir,
        "c.toml",
        format!("name = \"c\"\nfiles = [\"t.csv\"\n# {SSN}\nx = \"{NAME}\n"),
    );
}

fn card_dup_ids(dir: &Path) {
    write(dir, "ids.csv", format!("id,age\n{SSN},30\n{SSN},31\n"));
    write(
        dir,
        "c.toml",
        "name = \"c\"\nfiles = [\"ids.csv\"]\nrecord_id = \"id\"\n[[column]]\nname = \"age\"\nrole = \"quasi\"\n",
    );
}

fn card_unmatched_members(dir: &Path) {
    write(
        dir,
        "pt.csv",
        "pid,age,sex\np1,30,F\np2,30,F\np3,40,M\np4,40,M\n",
    );
    write(dir, "members.txt", format!("p1\np3\n{SSN}\n{NAME}\n"));
    write(dir, "others.txt", "p2\np4\n");
    write(
        dir,
        "c.toml",
        "name = \"c\"\nfiles = [\"pt.csv\"]\npatient_id = \"pid\"\n[membership]\nmembers = \"members.txt\"\nnon_members = \"others.txt\"\n[[column]]\nname = \"age\"\nrole = \"quasi\"\n[[column]]\nname = \"sex\"\nrole = \"quasi\"\n",
    );
}

fn card_fifo_data(dir: &Path) {
    mkfifo(&dir.join("pipe.csv"));
    write(
        dir,
        "c.toml",
        "name = \"c\"\nfiles = [\"pipe.csv\"]\n[[column]]\nname = \"age\"\nrole = \"quasi\"\n",
    );
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo");
}

fn fifo(dir: &Path) {
    mkfifo(&dir.join("pipe"));
}

fn plan_bootstrap(dir: &Path) {
    write(
        dir,
        "plan.toml",
        "[[probe]]\nkind = \"membership\"\nbootstrap = 1000000000000\n",
    );
}

fn plan_planted(dir: &Path) {
    write(
        dir,
        "plan.toml",
        format!("[[probe]]\nkind = \"membership\"\nbootstrap = \"{SSN} {NAME}\"\n"),
    );
}

fn plan_syntax(dir: &Path) {
    write(
        dir,
        "plan.toml",
        format!("[[probe]\nkind = \"{NAME} {SSN}\"\n"),
    );
}

fn plan_unknown_kind(dir: &Path) {
    write(dir, "plan.toml", format!("[[probe]]\nkind = \"{SSN}\"\n"));
}

fn policy_planted(dir: &Path) {
    write(
        dir,
        "policy.toml",
        format!("[[rule]]\nmetric = \"mia.auc\"\nmax = \"{SSN} {NAME}\"\n"),
    );
}

fn determination_planted(dir: &Path) {
    write(
        dir,
        "det.toml",
        format!("[release]\nmodel = \"{NAME}\"\ndate = \"{SSN}\"\n"),
    );
}

fn determination_syntax(dir: &Path) {
    write(
        dir,
        "det.toml",
        format!("[release\nmodel = \"{NAME} {SSN}\"\n"),
    );
}

fn canaries_bad_secret(dir: &Path) {
    write(
        dir,
        "can.toml",
        format!(
            "[[canary]]\nsecret = \"{SSN}x\"\nformat = \"{{d3}}-{{d2}}-{{d4}}\"\ncontext = \"SSN {{secret}} on file.\"\nrepetitions = 1\n"
        ),
    );
    write(dir, "plan.toml", "[[probe]]\nkind = \"canary\"\n");
}

fn canary_plan_planted(dir: &Path) {
    write(
        dir,
        "cp.toml",
        format!("per_rung = \"{SSN} {NAME}\"\n[[canary]]\nkind = \"ssn\"\n"),
    );
}

fn canary_plan_huge(dir: &Path) {
    write(
        dir,
        "cp.toml",
        "per_rung = 1000000000000\n[[canary]]\nkind = \"ssn\"\n",
    );
}

fn spans_planted(dir: &Path) {
    write(
        dir,
        "spans.jsonl",
        format!(
            "{{\"record_id\": \"r1\", \"field\": \"note\", \"category\": \"ssn\", \"start\": \"{SSN} {NAME}\", \"end\": 3}}\n"
        ),
    );
}

fn fleet_planted(dir: &Path) {
    write(
        dir,
        "fleet/fleet.json",
        format!(
            "{{\"format\": \"phiprobe-fleet-1\", \"seed\": \"{SSN}\", \"records\": [\"{NAME}\"]}}"
        ),
    );
    write(dir, "plan.toml", "[[probe]]\nkind = \"membership\"\n");
}

fn training_planted(dir: &Path) {
    copy_dir(&dir.join("m"), &dir.join("fleet/target"));
    write(
        dir,
        "fleet/target/training.json",
        format!("{{\"format\": \"{SSN}\", \"data\": \"{NAME}\"}}"),
    );
}

fn findings_planted(dir: &Path) {
    write(
        dir,
        "bad/findings.json",
        format!("{{\"schema_version\": \"{SSN} {NAME}\"}}"),
    );
}

fn manifest_planted(dir: &Path) {
    write(
        dir,
        "run/manifest.json",
        format!("{{\"format\": \"{SSN}\", \"run_id\": \"{NAME}\"}}"),
    );
}

fn runlog_planted(dir: &Path) {
    write(dir, "log.jsonl", format!("{{\"seq\": \"{SSN} {NAME}\"}}\n"));
}

fn mock_planted(dir: &Path) {
    write(
        dir,
        "mock.json",
        format!("{{\"format\": \"phiprobe-mock\", \"seed\": \"{SSN} {NAME}\"}}"),
    );
}

fn model_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    copy_dir(&data("models/tiny-qwen2"), &dir.join("tq"));
    let p = dir.join("tq/config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn tokenizer_planted(dir: &Path) {
    copy_dir(&data("models/tiny-qwen2"), &dir.join("tq"));
    write(
        dir,
        "tq/tokenizer.json",
        format!("{{\"version\": \"1.0\", \"model\": \"{SSN} {NAME}\"}}"),
    );
}

fn config_layers(dir: &Path) {
    model_config(dir, |v| v["num_hidden_layers"] = 1_000_000_000u64.into());
}

fn config_rope_zero(dir: &Path) {
    model_config(dir, |v| v["rope_theta"] = 0.0.into());
}

fn config_eps_string(dir: &Path) {
    model_config(dir, |v| v["rms_norm_eps"] = format!("{SSN} {NAME}").into());
}

fn config_planted_type(dir: &Path) {
    model_config(dir, |v| v["vocab_size"] = format!("{SSN} {NAME}").into());
}

fn model_without_tokenizer(dir: &Path) {
    copy_dir(&dir.join("m"), &dir.join("nt"));
    std::fs::remove_file(dir.join("nt/tokenizer.json")).unwrap();
    write(dir, "plan.toml", "[[probe]]\nkind = \"membership\"\n");
}

/// tiny-qwen2 with its final norm's weights overwritten by NaN.
fn nan_weights(dir: &Path) {
    copy_dir(&data("models/tiny-qwen2"), &dir.join("tq"));
    let p = dir.join("tq/model.safetensors");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).unwrap();
    let n = u64::from_le_bytes(len) as usize;
    let mut header = vec![0u8; n];
    f.read_exact(&mut header).unwrap();
    let h: serde_json::Value = serde_json::from_slice(&header).unwrap();
    let offs = &h["model.norm.weight"]["data_offsets"];
    let (a, b) = (offs[0].as_u64().unwrap(), offs[1].as_u64().unwrap());
    f.seek(SeekFrom::Start(8 + n as u64 + a)).unwrap();
    // 0xFF… is NaN in f32, f16 and bf16 alike.
    f.write_all(&vec![0xFF; (b - a) as usize]).unwrap();
}

/// The committed SentencePiece GGUF with one piece of metadata or tensor info patched.
fn gguf_patched(dir: &Path, patch: fn(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(data("spm/tiny-llama-spm.gguf")).unwrap();
    patch(&mut bytes);
    write(dir, "g.gguf", bytes);
}

fn find(bytes: &[u8], what: &[u8]) -> usize {
    bytes
        .windows(what.len())
        .position(|w| w == what)
        .unwrap_or_else(|| panic!("{} not in the fixture", String::from_utf8_lossy(what)))
}

/// Overwrites the value of metadata `key` (the type tag follows the key, then the value).
fn patch_meta(bytes: &mut [u8], key: &str, value: &[u8]) {
    let at = find(bytes, key.as_bytes()) + key.len() + 4;
    bytes[at..at + value.len()].copy_from_slice(value);
}

fn gguf_blocks(dir: &Path) {
    gguf_patched(dir, |b| {
        patch_meta(b, "llama.block_count", &1_000_000_000u32.to_le_bytes())
    });
}

fn gguf_eps_nan(dir: &Path) {
    gguf_patched(dir, |b| {
        patch_meta(
            b,
            "llama.attention.layer_norm_rms_epsilon",
            &f32::NAN.to_le_bytes(),
        )
    });
}

fn gguf_unaligned(dir: &Path) {
    gguf_patched(dir, |b| {
        // Tensor info: name, n_dims (u32), dims (u64 each), type (u32), offset (u64).
        let name = b"token_embd.weight";
        let at = find(b, name) + name.len();
        let n_dims = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let off = at + 4 + 8 * n_dims + 4;
        let old = u64::from_le_bytes(b[off..off + 8].try_into().unwrap());
        b[off..off + 8].copy_from_slice(&(old + 1).to_le_bytes());
    });
}

fn sweep_data(dir: &Path) {
    let _ = dir;
}

fn keypair(dir: &Path) {
    let o = crate::phiprobe(dir, &["-q", "keygen", "--out", "k"]);
    assert!(o.status.success(), "{}", crate::stderr(&o));
}

fn risk_args(out: &str) -> Vec<&str> {
    vec![
        "-q", "risk", "--data", "t.csv", "--qi", "age,sex", "--format", "json", "--out", out,
    ]
}

fn cases() -> Vec<Case> {
    let card = "d/synthetic-ehr.toml";
    let audit = |out: &'static str, extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec![
            "-q",
            "audit",
            "--model",
            "m",
            "--data",
            card,
            "--plan",
            "plan.toml",
            "--out",
            out,
        ];
        a.extend_from_slice(extra);
        a
    };
    let mut v = vec![
        // 1. --out never costs a user's file.
        case(
            "risk over a user folder with findings.json",
            user_folder_with_findings,
            &risk_args("out"),
            &["out/findings.json", "not part of a phiprobe run"],
        ),
        case(
            "audit over a user folder",
            |d| {
                user_folder_with_findings(d);
                write(d, "plan.toml", "[[probe]]\nkind = \"membership\"\n");
            },
            &audit("out", &[]),
            &["out/findings.json", "not part of a phiprobe run"],
        ),
        case(
            "compare over a user folder",
            user_folder_with_findings,
            &["-q", "compare", "run", "--out", "out"],
            &["out/findings.json"],
        ),
        case(
            "risk over a run holding an unlisted file",
            run_with_extra_file,
            &risk_args("run"),
            &["run/observations/notes.txt", "not listed"],
        ),
        case(
            "compare A --out A",
            nothing,
            &["-q", "compare", "run", "--out", "run"],
            &["run", "is also an input"],
        ),
        case(
            "risk --out a folder holding the data",
            |d| write(d, "dd/x.csv", TABLE),
            &[
                "-q", "risk", "--data", "dd/x.csv", "--qi", "age,sex", "--out", "dd",
            ],
            &["dd", "contains an input"],
        ),
        case(
            "audit --out inside the model folder",
            |d| write(d, "plan.toml", "[[probe]]\nkind = \"membership\"\n"),
            &audit("m/audit", &[]),
            &["m/audit", "inside an input"],
        ),
        case(
            "risk --out an existing file",
            |d| write(d, "f.txt", "mine"),
            &risk_args("f.txt"),
            &["f.txt", "not a folder"],
        ),
        case(
            "data synth over a user folder",
            |d| write(d, "s/encounters.csv", "mine"),
            &["-q", "data", "synth", "--patients", "5", "--out", "s"],
            &[
                "s/encounters.csv",
                "not part of a dataset phiprobe generated",
            ],
        ),
        case(
            "data synth --out a file",
            |d| write(d, "s", "mine"),
            &["-q", "data", "synth", "--patients", "5", "--out", "s"],
            &["s", "not a folder"],
        ),
        case(
            "score --out the dataset card",
            nothing,
            &["-q", "score", "--model", "m", "--data", card, "--out", card],
            &["synthetic-ehr.toml", "input"],
        ),
        case(
            "gate --junit inside the run folder",
            |d| write(d, "policy.toml", "[[rule]]\nmetric = \"reid.k\"\nmin = 2\n"),
            &[
                "-q",
                "gate",
                "run",
                "--policy",
                "policy.toml",
                "--junit",
                "run/gate.xml",
            ],
            &["run/gate.xml", "inside"],
        ),
        case(
            "keygen --out inside a run folder",
            nothing,
            &["-q", "keygen", "--out", "run/key"],
            &["run/key", "inside the run folder"],
        ),
        case(
            "train --out a non-empty folder",
            |d| write(d, "out/mine.txt", "x"),
            &[
                "-q", "train", "--data", card, "--preset", "micro", "--epochs", "1", "--out", "out",
            ],
            &["out", "not empty"],
        ),
        case(
            "--run-log inside the run folder",
            nothing,
            &[
                "-q",
                "--run-log",
                "out/log.jsonl",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age,sex",
                "--out",
                "out",
            ],
            &["log.jsonl", "inside the run folder"],
        ),
        case(
            "--run-log is the data",
            nothing,
            &[
                "-q",
                "--run-log",
                "t.csv",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age,sex",
                "--out",
                "out",
            ],
            &["t.csv"],
        ),
        case(
            "report on a file",
            nothing,
            &["-q", "report", "t.csv"],
            &["t.csv", "not a folder"],
        ),
        // Successful replacement of phiprobe's own run (the control for the refusals above).
        case("risk replaces its own run", nothing, &risk_args("run"), &[])
            .ok(0, &["run", "runs.log.jsonl"]),
        case(
            "risk into a new folder",
            nothing,
            &risk_args("new/deep/out"),
            &[],
        )
        .ok(0, &["new"]),
        // 2. Sizes from files are checked before anything is allocated.
        case(
            "config.json with 1e9 layers",
            config_layers,
            &["-q", "score", "--model", "tq", "--text", "hello"],
            &["tq", "layer"],
        ),
        case(
            "GGUF block_count 1e9",
            gguf_blocks,
            &["-q", "score", "--model", "g.gguf", "--text", "hello"],
            &["g.gguf", "layer"],
        ),
        case(
            "plan bootstrap 1e12",
            plan_bootstrap,
            &audit("out", &[]),
            &["plan", "bootstrap"],
        ),
        case(
            "canary plan with 1e12 per rung",
            canary_plan_huge,
            &[
                "-q",
                "train",
                "--data",
                card,
                "--preset",
                "micro",
                "--canaries",
                "cp.toml",
                "--out",
                "out",
            ],
            &["too large"],
        ),
        // 3. No value of an input reaches a message.
        case(
            "CSV with an unclosed quote",
            planted_csv,
            &[
                "-q", "risk", "--data", "p.csv", "--qi", "age", "--out", "out",
            ],
            &["p.csv", "line 2", "never closed"],
        ),
        case(
            "headerless CSV",
            headerless_csv,
            &[
                "-q", "risk", "--data", "h.csv", "--qi", "age", "--out", "out",
            ],
            &["h.csv", "no column 'age'", "2 columns"],
        ),
        case(
            "JSONL line not valid JSON",
            broken_jsonl,
            &[
                "-q", "risk", "--data", "b.jsonl", "--qi", "age", "--out", "out",
            ],
            &["b.jsonl", "line 2"],
        ),
        case(
            "JSONL line not an object",
            array_jsonl,
            &[
                "-q", "risk", "--data", "a.jsonl", "--qi", "age", "--out", "out",
            ],
            &["a.jsonl", "line 1", "not a JSON object"],
        ),
        case(
            "Parquet that is text",
            fake_parquet,
            &[
                "-q",
                "risk",
                "--data",
                "f.parquet",
                "--qi",
                "age",
                "--out",
                "out",
            ],
            &["f.parquet"],
        ),
        case(
            "card with a wrong type",
            card_wrong_type,
            &["-q", "risk", "--data", "c.toml", "--out", "out"],
            &["c.toml", "line 2", "wrong type"],
        ),
        case(
            "card with a syntax error",
            card_syntax,
            &["-q", "risk", "--data", "c.toml", "--out", "out"],
            &["c.toml", "line"],
        ),
        case(
            "card with duplicated record ids",
            card_dup_ids,
            &["-q", "risk", "--data", "c.toml", "--out", "out"],
            &["ids.csv", "duplicated"],
        ),
        case(
            "plan with a wrong type",
            plan_planted,
            &audit("out", &[]),
            &["plan.toml", "bootstrap"],
        ),
        case(
            "plan with a syntax error",
            plan_syntax,
            &audit("out", &[]),
            &["plan.toml", "line 1"],
        ),
        case(
            "plan with an unknown kind",
            plan_unknown_kind,
            &audit("out", &[]),
            &["plan.toml", "not available"],
        ),
        case(
            "policy with a wrong type",
            policy_planted,
            &[
                "-q",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age,sex",
                "--policy",
                "policy.toml",
                "--out",
                "out",
            ],
            &["policy.toml", "line 3"],
        ),
        case(
            "gate with a planted policy",
            policy_planted,
            &["-q", "gate", "run", "--policy", "policy.toml"],
            &["policy.toml"],
        ),
        case(
            "determination with planted values",
            determination_planted,
            &[
                "-q",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age,sex",
                "--determination",
                "det.toml",
                "--out",
                "out",
            ],
            &["det.toml", "release.model"],
        ),
        case(
            "determination with a syntax error",
            determination_syntax,
            &[
                "-q",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age,sex",
                "--determination",
                "det.toml",
                "--out",
                "out",
            ],
            &["det.toml", "line 1"],
        ),
        case(
            "canary secret that does not fit its format",
            canaries_bad_secret,
            &[
                "-q",
                "audit",
                "--model",
                "m",
                "--canaries",
                "can.toml",
                "--plan",
                "plan.toml",
                "--out",
                "out",
            ],
            &["can.toml", "does not fit"],
        ),
        case(
            "canary plan with a wrong type",
            canary_plan_planted,
            &[
                "-q",
                "train",
                "--data",
                card,
                "--preset",
                "micro",
                "--canaries",
                "cp.toml",
                "--out",
                "out",
            ],
            &["cp.toml", "per_rung"],
        ),
        case(
            "spans file with a wrong type",
            spans_planted,
            &[
                "-q",
                "data",
                "detect",
                "--data",
                card,
                "--spans",
                "spans.jsonl",
            ],
            &["spans.jsonl", "line 1", "wrong type"],
        ),
        case(
            "fleet.json with wrong types",
            fleet_planted,
            &audit("out", &["--references", "fleet"]),
            &["fleet"],
        ),
        case(
            "training.json with wrong types (merge)",
            training_planted,
            &["-q", "merge", "fleet"],
            &["training.json"],
        ),
        case(
            "findings.json with a wrong type",
            findings_planted,
            &["-q", "report", "bad"],
            &["bad/findings.json"],
        ),
        case(
            "compare with a planted findings.json",
            findings_planted,
            &["-q", "compare", "bad", "--out", "out"],
            &["bad/findings.json"],
        ),
        case(
            "manifest.json with wrong types",
            manifest_planted,
            &[
                "-q", "risk", "--data", "t.csv", "--qi", "age,sex", "--out", "run",
            ],
            &["manifest.json"],
        ),
        case(
            "run log that is not a log",
            runlog_planted,
            &[
                "-q",
                "--run-log",
                "log.jsonl",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age,sex",
                "--out",
                "out",
            ],
            &["log.jsonl", "line 1"],
        ),
        case(
            "mock fixture with a wrong type",
            mock_planted,
            &["-q", "score", "--model", "mock:mock.json", "--text", "hi"],
            &["mock.json"],
        ),
        case(
            "JSONL integer beyond 64 bits (a fuzzing find)",
            |d| {
                write(
                    d,
                    "w.jsonl",
                    "{\"age\": 30}\n{\"age\": 444444444444444444444444}\n",
                )
            },
            &[
                "-q", "risk", "--data", "w.jsonl", "--qi", "age", "--out", "out",
            ],
            &["w.jsonl", "line 2", "64-bit"],
        ),
        case(
            "plan naming an attack with a line break (a fuzzing find)",
            |d| {
                write(
                    d,
                    "plan.toml",
                    "[[probe]]\nkind = \"membership\"\nattacks = [\"loss\\nQuixote\"]\n",
                )
            },
            &[
                "-q",
                "audit",
                "--model",
                "m",
                "--data",
                "d/synthetic-ehr.toml",
                "--plan",
                "plan.toml",
                "--out",
                "out",
            ],
            &["plan.toml", "unknown attack (not a plain name)"],
        ),
        case(
            "tokenizer.json with planted values",
            tokenizer_planted,
            &["-q", "score", "--model", "tq", "--text", "hi"],
            &["tokenizer.json", "cannot load the tokenizer"],
        ),
        case(
            "model config with a planted wrong type",
            config_planted_type,
            &["-q", "score", "--model", "tq", "--text", "hi"],
            &["config.json", "vocab_size"],
        ),
        case(
            "unknown column in a card",
            |d| {
                write(
                    d,
                    "c.toml",
                    "name = \"c\"\nfiles = [\"t.csv\"]\n[[column]]\nname = \"zipp\"\nrole = \"quasi\"\n",
                )
            },
            &["-q", "risk", "--data", "c.toml", "--out", "out"],
            &["t.csv", "no column 'zipp'", "did you mean 'zip'"],
        ),
        // 4. Bounded work.
        case(
            "generate --beam 100000",
            nothing,
            &[
                "-q",
                "generate",
                "--model",
                "m",
                "--prompt",
                "Patient",
                "--beam",
                "100000",
                "--max-new-tokens",
                "4",
            ],
            &["beam width"],
        ),
        case(
            "score --threads 100000",
            nothing,
            &[
                "-q",
                "score",
                "--model",
                "m",
                "--text",
                "hi",
                "--threads",
                "100000",
            ],
            &["--threads 100000", "logical CPU"],
        ),
        case(
            "audit --threads 100000",
            |d| write(d, "plan.toml", "[[probe]]\nkind = \"membership\"\n"),
            &audit("out", &["--threads", "100000"]),
            &["--threads"],
        ),
        case(
            "risk --data /dev/zero",
            nothing,
            &[
                "-q",
                "risk",
                "--data",
                "/dev/zero",
                "--qi",
                "a",
                "--out",
                "out",
            ],
            &["/dev/zero", "not a regular file"],
        ),
        case(
            "risk --data a FIFO",
            fifo,
            &["-q", "risk", "--data", "pipe", "--qi", "a", "--out", "out"],
            &["pipe", "not a regular file"],
        ),
        case(
            "risk --data a folder",
            |d| std::fs::create_dir(d.join("folder")).unwrap(),
            &[
                "-q", "risk", "--data", "folder", "--qi", "a", "--out", "out",
            ],
            &["folder", "is a folder"],
        ),
        case(
            "card naming a FIFO",
            card_fifo_data,
            &["-q", "risk", "--data", "c.toml", "--out", "out"],
            &["pipe.csv", "not a regular file"],
        ),
        case(
            "score --model /dev/zero",
            nothing,
            &["-q", "score", "--model", "/dev/zero", "--text", "hi"],
            &["/dev/zero", "not a regular file"],
        ),
        case(
            "audit --plan /dev/zero",
            nothing,
            &[
                "-q",
                "audit",
                "--model",
                "m",
                "--plan",
                "/dev/zero",
                "--out",
                "out",
            ],
            &["/dev/zero", "not a regular file"],
        ),
        case(
            "risk --policy a FIFO",
            fifo,
            &[
                "-q", "risk", "--data", "t.csv", "--qi", "age", "--policy", "pipe", "--out", "out",
            ],
            &["pipe", "not a regular file"],
        ),
        case(
            "--run-log /dev/zero",
            nothing,
            &[
                "-q",
                "--run-log",
                "/dev/zero",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age",
                "--out",
                "out",
            ],
            &["/dev/zero", "not a regular file"],
        ),
        case(
            "train --canaries a FIFO",
            fifo,
            &[
                "-q",
                "train",
                "--data",
                card,
                "--preset",
                "micro",
                "--canaries",
                "pipe",
                "--out",
                "out",
            ],
            &["pipe", "not a regular file"],
        ),
        case(
            "verify --pubkey /dev/zero",
            nothing,
            &["-q", "verify", "run", "--pubkey", "/dev/zero"],
            &["/dev/zero"],
        ),
        // 5. Invalid numbers are refused at the boundary.
        case(
            "config rope_theta = 0",
            config_rope_zero,
            &["-q", "score", "--model", "tq", "--text", "hello"],
            &["tq", "rope_theta"],
        ),
        case(
            "config rms_norm_eps not a number",
            config_eps_string,
            &["-q", "score", "--model", "tq", "--text", "hello"],
            &["tq", "epsilon"],
        ),
        case(
            "GGUF rms epsilon NaN",
            gguf_eps_nan,
            &["-q", "score", "--model", "g.gguf", "--text", "hello"],
            &["g.gguf", "epsilon"],
        ),
        case(
            "GGUF tensor offset not aligned",
            gguf_unaligned,
            &["-q", "score", "--model", "g.gguf", "--text", "hello"],
            &["g.gguf", "alignment"],
        ),
        case(
            "NaN weights",
            nan_weights,
            &["-q", "score", "--model", "tq", "--text", "hello there"],
            &["non-finite"],
        ),
        case(
            "train --lr NaN",
            nothing,
            &[
                "-q", "train", "--data", card, "--preset", "micro", "--lr", "NaN", "--out", "out",
            ],
            &["--lr"],
        ),
        case(
            "train --warmup 2",
            nothing,
            &[
                "-q", "train", "--data", card, "--preset", "micro", "--warmup", "2", "--out", "out",
            ],
            &["--warmup"],
        ),
        case(
            "train --epochs inf",
            nothing,
            &[
                "-q", "train", "--data", card, "--preset", "micro", "--epochs", "inf", "--out",
                "out",
            ],
            &["--epochs"],
        ),
        case(
            "train --batch-size 0",
            nothing,
            &[
                "-q",
                "train",
                "--data",
                card,
                "--preset",
                "micro",
                "--batch-size",
                "0",
                "--out",
                "out",
            ],
            &["batch"],
        ),
        case(
            "accountant --epsilon=-1",
            nothing,
            &[
                "accountant",
                "--noise",
                "1",
                "--sample-rate",
                "0.01",
                "--epochs",
                "1",
                "--epsilon=-1",
            ],
            &["--epsilon"],
        ),
        case(
            "accountant with 1e24 steps",
            nothing,
            &[
                "accountant",
                "--noise",
                "1",
                "--epochs",
                "1e15",
                "--sample-rate",
                "1e-9",
            ],
            &["2^53"],
        ),
        case(
            "accountant --steps 0",
            nothing,
            &[
                "accountant",
                "--noise",
                "1",
                "--sample-rate",
                "0.01",
                "--steps",
                "0",
            ],
            &["--steps"],
        ),
        case(
            "accountant --noise NaN",
            nothing,
            &[
                "accountant",
                "--noise",
                "NaN",
                "--sample-rate",
                "0.01",
                "--steps",
                "10",
            ],
            &["noise"],
        ),
        case(
            "sweep --delta NaN",
            nothing,
            &[
                "-q", "sweep", "--data", card, "--grid", "noise=1", "--delta", "NaN", "--out", "sw",
            ],
            &["--delta"],
        ),
        case(
            "generate --max-new-tokens huge",
            nothing,
            &[
                "-q",
                "generate",
                "--model",
                "m",
                "--prompt",
                "Patient",
                "--max-new-tokens",
                "18446744073709551615",
            ],
            &["context"],
        ),
        // 6. Nothing is written before everything is checked.
        case(
            "risk --run-log garbage",
            runlog_planted,
            &[
                "-q",
                "--run-log",
                "log.jsonl",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age,sex",
                "--out",
                "out",
            ],
            &["log.jsonl"],
        ),
        case(
            "sweep --references 3",
            sweep_data,
            &[
                "-q",
                "sweep",
                "--data",
                card,
                "--grid",
                "noise=1",
                "--references",
                "3",
                "--out",
                "sw",
            ],
            &["--references must be even"],
        ),
        case(
            "sweep with a bad setting",
            sweep_data,
            &[
                "-q",
                "sweep",
                "--data",
                card,
                "--grid",
                "noise=1;lr=100",
                "--out",
                "sw",
            ],
            &["lr"],
        ),
        case(
            "report --determination bad",
            determination_planted,
            &["-q", "report", "run", "--determination", "det.toml"],
            &["det.toml"],
        ),
        case(
            "risk with a bad policy",
            |d| write(d, "policy.toml", "[[rule]]\nmetric = \"x\"\n"),
            &[
                "-q",
                "risk",
                "--data",
                "t.csv",
                "--qi",
                "age,sex",
                "--policy",
                "policy.toml",
                "--out",
                "out",
            ],
            &["policy.toml"],
        ),
        case(
            "audit with a bad plan",
            plan_bootstrap,
            &audit("out", &[]),
            &["bootstrap"],
        ),
        case(
            "audit of a model without a tokenizer",
            model_without_tokenizer,
            &[
                "-q",
                "audit",
                "--model",
                "nt",
                "--data",
                card,
                "--plan",
                "plan.toml",
                "--out",
                "out",
            ],
            &["nt", "tokenizer"],
        ),
        // 7. One writer per folder.
        case(
            "risk while another process holds --out",
            nothing,
            &risk_args("out"),
            &["another phiprobe process"],
        )
        .locked("out"),
        case(
            "risk replacing a run another process holds",
            nothing,
            &risk_args("run"),
            &["another phiprobe process"],
        )
        .locked("run"),
        case(
            "report while another process holds the run",
            nothing,
            &["-q", "report", "run"],
            &["another phiprobe process"],
        )
        .locked("run"),
        case(
            "audit while another process holds --out",
            |d| write(d, "plan.toml", "[[probe]]\nkind = \"membership\"\n"),
            &audit("out", &[]),
            &["another phiprobe process"],
        )
        .locked("out"),
        case(
            "sign while another process holds the run",
            keypair,
            &["-q", "sign", "run", "--key", "k"],
            &["another phiprobe process"],
        )
        .locked("run"),
        // 8. Data-file errors name the line.
        case(
            "ragged CSV row",
            ragged_csv,
            &[
                "-q", "risk", "--data", "r.csv", "--qi", "age", "--out", "out",
            ],
            &["r.csv", "line 3", "3 field(s) where the header has 2"],
        ),
        case(
            "ragged TSV row",
            |d| write(d, "r.tsv", "a\tb\n1\t2\n3\n"),
            &["-q", "risk", "--data", "r.tsv", "--qi", "a", "--out", "out"],
            &["r.tsv", "line 3", "1 field(s)"],
        ),
        case(
            "data file not UTF-8",
            |d| write(d, "u.csv", b"a,b\n1,\xff\n".as_slice()),
            &["-q", "risk", "--data", "u.csv", "--qi", "a", "--out", "out"],
            &["u.csv", "line 2"],
        ),
        // 9. Settled acceptances.
        case(
            "duplicated header",
            dup_header,
            &[
                "-q", "risk", "--data", "dup.csv", "--qi", "age", "--out", "out",
            ],
            &["dup.csv", "header columns 1 and 3 have the same name"],
        ),
        case(
            "member ids that match no patient",
            card_unmatched_members,
            &[
                "-q", "risk", "--data", "c.toml", "--out", "out", "--format", "json",
            ],
            &[
                "members.txt",
                "2 of 4 listed patient id(s) match no patient",
            ],
        )
        .ok(0, &["out", "runs.log.jsonl"]),
        // Plain bad arguments.
        case(
            "risk --data missing",
            nothing,
            &["-q", "risk", "--data", "nope.csv", "--qi", "a"],
            &["nope.csv"],
        ),
        case(
            "score --model missing",
            nothing,
            &["-q", "score", "--model", "nope", "--text", "a"],
            &["nope"],
        ),
        case(
            "audit --model without a config",
            |d| {
                std::fs::create_dir(d.join("empty")).unwrap();
                write(d, "plan.toml", "[[probe]]\nkind = \"membership\"\n");
            },
            &[
                "-q",
                "audit",
                "--model",
                "empty",
                "--data",
                card,
                "--plan",
                "plan.toml",
                "--out",
                "out",
            ],
            &["empty"],
        ),
        case(
            "verify a folder that is not a run",
            |d| {
                keypair(d);
                std::fs::create_dir(d.join("e")).unwrap();
            },
            &["-q", "verify", "e", "--pubkey", "k.pub"],
            &["e"],
        ),
        case(
            "sign with a key that is not a key",
            |d| write(d, "k", format!("{SSN} {NAME}")),
            &["-q", "sign", "run", "--key", "k"],
            &["k"],
        ),
        case(
            "decrypt with a bad bundle",
            |d| {
                write(d, "b.bundle", format!("{SSN} {NAME}"));
                write(d, "key", "00".repeat(32));
            },
            &[
                "-q",
                "decrypt",
                "b.bundle",
                "--key",
                "key",
                "--out",
                "plain.json",
            ],
            &["b.bundle"],
        ),
        case(
            "decrypt --out inside a run folder",
            |d| {
                write(d, "b.bundle", "x");
                write(d, "key", "00".repeat(32));
            },
            &[
                "-q",
                "decrypt",
                "b.bundle",
                "--key",
                "key",
                "--out",
                "run/plain.json",
            ],
            &["run/plain.json", "inside the run folder"],
        ),
        case(
            "merge a folder that is not a fleet",
            nothing,
            &["-q", "merge", "m"],
            &["m"],
        ),
        case(
            "compare a folder that is not a run",
            |d| std::fs::create_dir(d.join("e")).unwrap(),
            &["-q", "compare", "e", "--out", "out"],
            &["e/findings.json"],
        ),
    ];
    // Bad numbers on the risk command.
    for (flag, value) in [
        ("--threshold", "NaN"),
        ("--sampling-fraction", "2"),
        ("--confidence", "1.5"),
    ] {
        let mut c = case(
            "risk with an out-of-range number",
            nothing,
            &[
                "-q", "risk", "--data", "t.csv", "--qi", "age,sex", "--out", "out",
            ],
            &[],
        );
        c.args.extend([flag.to_owned(), value.to_owned()]);
        c.says = vec![flag];
        v.push(c);
    }
    v
}

#[test]
fn hostile_input_battery() {
    let cases = cases();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let t0 = Instant::now();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let bad = check(c);
            (!bad.is_empty()).then(|| format!("{}: {}", c.name, bad.join("; ")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed ({:.0} s):\n{}",
        failures.len(),
        cases.len(),
        t0.elapsed().as_secs_f64(),
        failures.join("\n")
    );
}

#[test]
fn two_concurrent_audits_one_folder() {
    // Two real processes: the second finds the lock and exits 2 at once; the first completes.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_dir(base(), dir);
    write(
        dir,
        "plan.toml",
        "[[probe]]\nkind = \"membership\"\nbootstrap = 50\n",
    );
    let args: Vec<String> = [
        "-q",
        "audit",
        "--model",
        "m",
        "--data",
        "d/synthetic-ehr.toml",
        "--plan",
        "plan.toml",
        "--out",
        "out",
        "--threads",
        "1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let first = {
        let args = args.clone();
        let dir = dir.to_owned();
        std::thread::spawn(move || run(&dir, &args))
    };
    // Wait until the first holds the lock, then start the second.
    let lock = dir.join(".out.lock");
    let t0 = Instant::now();
    while !lock.exists() && t0.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = run(dir, &args);
    let first = first.join().unwrap();
    assert_eq!(first.0, Some(0), "first: {}", first.2);
    assert_eq!(second.0, Some(2), "second: {}", second.2);
    assert!(
        second.2.contains("another phiprobe process"),
        "{}",
        second.2
    );
    assert!(dir.join("out/manifest.json").is_file());
    assert!(!lock.exists() && !dir.join(".out.partial").exists());
}
