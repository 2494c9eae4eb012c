//! Integrity, gating and PHI-bundle commands: `keygen`, `sign`, `verify`, `gate`, `decrypt`,
//! and the run log every run-writing command appends to.

use crate::exit;
use crate::integrity::{bundle, manifest, runlog, sign};
use crate::run::folder::{log_event, log_path, preflight_log, run_result};
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};

/// Options of `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key: an ed25519 pair PREFIX (secret, owner-only) and PREFIX.pub,
    /// or with --bundle one 32-byte AES key file.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Make a key for encrypted PHI-example bundles instead of a signing key pair.
    #[arg(long)]
    pub bundle: bool,
}

/// `phiprobe keygen`.
pub fn keygen_cmd(a: &KeygenArgs, quiet: bool) -> Result<u8> {
    // A secret key inside a run folder would be signed and shipped with the evidence.
    crate::integrity::folder::check_file_output(&a.out, &[])?;
    if a.bundle {
        if a.out.exists() {
            anyhow::bail!(crate::Error::Usage(format!(
                "{} exists; phiprobe never overwrites a key (choose another --out)",
                a.out.display()
            )));
        }
        let key = bundle::Key::generate()?;
        sign::write_new(&a.out, format!("{}\n", key.to_hex()).as_bytes(), true)?;
        if !quiet {
            eprintln!(
                "bundle key: {} (owner-only; give it to the expert through a separate channel)",
                a.out.display()
            );
        }
        return Ok(exit::PASS);
    }
    let (sk, pk, id) = sign::keygen(&a.out)?;
    if !quiet {
        eprintln!(
            "signing key: {} (secret, owner-only)\npublic key:  {} (share it with verifiers)\nkey id:      {id}",
            sk.display(),
            pk.display()
        );
    }
    Ok(exit::PASS)
}

/// Options of `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// A run folder (with manifest.json).
    pub run_dir: PathBuf,
    /// Secret key file from `phiprobe keygen`.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

/// `phiprobe sign`.
pub fn sign_cmd(a: &SignArgs, quiet: bool) -> Result<u8> {
    preflight_log(&a.run_dir)?;
    if !a.run_dir.is_dir() {
        anyhow::bail!(crate::Error::Usage(format!(
            "{}: not a folder; give a run folder (it holds manifest.json)",
            a.run_dir.display()
        )));
    }
    let _lock = crate::integrity::folder::FolderLock::acquire(&a.run_dir)?;
    let s = sign::sign(&a.run_dir, &a.key, Some(&log_path(&a.run_dir)))?;
    let file = crate::report::read_findings(&a.run_dir)?;
    log_event(
        &a.run_dir,
        &file,
        "sign",
        format!("signed with key {}", s.key_id),
        exit::PASS,
    )?;
    if !quiet {
        eprintln!(
            "signed {} (manifest sha256 {}…) with key {}",
            a.run_dir.display(),
            crate::integrity::short(&s.manifest_sha256),
            s.key_id
        );
    }
    Ok(exit::PASS)
}

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A signed run folder.
    pub run_dir: PathBuf,
    /// Public key file of the signer (`PREFIX.pub` from `phiprobe keygen`).
    #[arg(long, value_name = "FILE")]
    pub pubkey: PathBuf,
    /// Also re-hash the input files recorded in the manifest, where they still exist.
    #[arg(long)]
    pub inputs: bool,
}

/// `phiprobe verify`: exit 0 when the signature, every file and the run log check out, 1 when
/// anything does not (each problem named), 2 when the folder or key cannot be read.
pub fn verify_cmd(a: &VerifyArgs, quiet: bool) -> Result<u8> {
    let log = log_path(&a.run_dir);
    let v = sign::verify(&a.run_dir, &a.pubkey, Some(&log))?;
    let mut problems: Vec<String> = v.signature.clone();
    problems.extend(v.files.iter().map(ToString::to_string));
    let (bytes, m) = manifest::read_manifest(&a.run_dir)?;
    let mut notes = Vec::new();
    if a.inputs {
        for i in &m.inputs {
            let p = Path::new(&i.path);
            if !p.is_file() {
                notes.push(format!("input {} not found here; not re-checked", i.path));
                continue;
            }
            let now = crate::model::hash_file(p)?;
            if now.sha256 != i.sha256 {
                problems.push(format!(
                    "input changed: {} (sha256 {}… at run time, {}… now)",
                    i.path,
                    crate::integrity::short(&i.sha256),
                    crate::integrity::short(&now.sha256)
                ));
            }
        }
    }
    let mut logged = None;
    if log.is_file() {
        let rep = runlog::check(&log)?;
        problems.extend(
            rep.problems
                .iter()
                .map(|p| format!("{}: {p}", log.display())),
        );
        let sha = crate::integrity::sha256_hex(&bytes);
        // The folder's current manifest must be one the log recorded; runs of other folders
        // may share its run id (same inputs and seed).
        let here = a.run_dir.display().to_string();
        let matching = rep
            .entries
            .iter()
            .rev()
            .find(|e| e.body.manifest_sha256.as_deref() == Some(sha.as_str()));
        let this_folder = rep.entries.iter().rev().find(|e| {
            e.body.run_id == m.run_id && e.body.run_dir == here && e.body.manifest_sha256.is_some()
        });
        match (matching, this_folder) {
            (Some(e), _) => logged = Some((e.body.seq, true)),
            (None, Some(e)) => problems.push(format!(
                "{}: the latest entry of this folder (seq {}) logged a different manifest",
                log.display(),
                e.body.seq
            )),
            (None, None) => notes.push(format!("no entry of {} logs this manifest", log.display())),
        }
    } else {
        notes.push(format!("no run log at {}", log.display()));
    }
    if !quiet || !problems.is_empty() {
        for p in &problems {
            eprintln!("FAIL {p}");
        }
        for n in &notes {
            eprintln!("note: {n}");
        }
    }
    if problems.is_empty() {
        if !quiet {
            eprintln!(
                "verified {}: signature by key {} valid, {} file(s) match the manifest{}",
                a.run_dir.display(),
                v.key_id.as_deref().unwrap_or("?"),
                v.checked,
                match logged {
                    Some((seq, true)) => format!(", run log chain intact (entry {seq})"),
                    _ => String::new(),
                }
            );
        }
        Ok(exit::PASS)
    } else {
        eprintln!(
            "verification FAILED for {}: {} problem(s)",
            a.run_dir.display(),
            problems.len()
        );
        Ok(exit::POLICY_BREACHED)
    }
}

/// Options of `gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// A run folder (with findings.json).
    pub run_dir: PathBuf,
    /// Release policy (TOML): thresholds on findings, per-probe severity.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Write the verdicts as JUnit XML for CI systems.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// `phiprobe gate`: applies a policy to a finished run; exit 0 pass, 1 breached, 2 error.
/// The run folder is not modified (it may be signed).
pub fn gate_cmd(a: &GateArgs, quiet: bool) -> Result<u8> {
    let policy = crate::gate::Policy::load(&a.policy)?;
    if let Some(j) = &a.junit {
        crate::integrity::folder::check_file_output(j, &[a.run_dir.clone(), a.policy.clone()])?;
    }
    preflight_log(&a.run_dir)?;
    // Gate only what the run wrote: a folder that no longer matches its manifest is refused.
    if a.run_dir.join(manifest::MANIFEST).is_file() {
        let (_, m) = manifest::read_manifest(&a.run_dir)?;
        let problems = manifest::check(&a.run_dir, &m)?;
        if !problems.is_empty() {
            anyhow::bail!(crate::Error::Report {
                path: a.run_dir.clone(),
                message: format!(
                    "does not match its manifest, nothing gated: {}",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            });
        }
    }
    let mut file = crate::report::read_findings(&a.run_dir)?;
    crate::gate::reset(&mut file.findings);
    let outcome = crate::gate::apply(&policy, &a.policy, &mut file.findings)?;
    let record = outcome.record(crate::model::hash_file(&a.policy)?);
    print!("{}", crate::report::gate::table(&record));
    if let Some(j) = &a.junit {
        crate::fsx::write_atomic(
            j,
            crate::report::gate::junit(&record, &file.manifest.run_id).as_bytes(),
        )?;
        if !quiet {
            eprintln!("junit: {}", j.display());
        }
    }
    let code = if record.passed {
        exit::PASS
    } else {
        exit::POLICY_BREACHED
    };
    file.gate = Some(record);
    let (result, _) = run_result(&file);
    log_event(&a.run_dir, &file, "gate", result, code)?;
    Ok(code)
}

/// Options of `decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// An encrypted bundle (`phi-examples.bundle` of a run folder).
    pub bundle: PathBuf,
    /// Key file (64 hex digits); default: the PHIPROBE_BUNDLE_KEY environment variable.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Where to write the decrypted JSON (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `phiprobe decrypt`.
pub fn decrypt_cmd(a: &DecryptArgs, quiet: bool) -> Result<u8> {
    if a.out != Path::new("-") {
        let inputs: Vec<PathBuf> = std::iter::once(a.bundle.clone())
            .chain(a.key.clone())
            .collect();
        crate::integrity::folder::check_file_output(&a.out, &inputs)?;
    }
    let key = bundle::Key::load(a.key.as_deref())?;
    let bytes = crate::integrity::read(&a.bundle)?;
    let (run_id, plain) = bundle::open(&key, &a.bundle, &bytes)?;
    if a.out == Path::new("-") {
        super::write_output(None, &String::from_utf8_lossy(&plain))?;
    } else {
        if a.out.exists() {
            anyhow::bail!(crate::Error::Usage(format!(
                "{} exists; choose a new file for decrypted PHI",
                a.out.display()
            )));
        }
        sign::write_new(&a.out, &plain, true)?;
    }
    if !quiet {
        eprintln!(
            "decrypted the PHI examples of run {run_id} to {} (contains PHI: keep it on this machine)",
            a.out.display()
        );
    }
    Ok(exit::PASS)
}
