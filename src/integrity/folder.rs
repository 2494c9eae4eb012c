//! Output folders: what `--out` may replace, what it may never touch, and who may write it.
//!
//! The rules (README "Data handling"):
//! - **Only phiprobe's own runs are replaced.** An existing `--out` folder is replaced only
//!   when it is empty, or when it is a run folder recognised by its own `manifest.json` and
//!   every file in it is one that manifest lists. Anything else in it (a file the manifest
//!   does not list, a link, a device) stops the run before it starts, naming the file. When a
//!   run folder is replaced, only the files its manifest lists are deleted.
//! - **An output is never an input.** The output may not be an input, lie inside an input
//!   folder, or contain an input.
//! - **One writer per folder.** A run holds an exclusive lock (`.<name>.lock` beside the
//!   folder) from its first check to its last byte; a second phiprobe process with the same
//!   `--out` exits 2 at once, naming the holder's process id.

use super::manifest::{self, MANIFEST, Problem, SIGNATURE};
use crate::error::{Error, Result};
pub use crate::fsx::entry_names;
use std::fs::File;
use std::path::{Component, Path, PathBuf};

fn out_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn werr(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// `path` made absolute, with `.`/`..` folded and the symbolic links of the part that exists
/// resolved: two spellings of one place compare equal.
pub fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    // Canonicalise the deepest existing ancestor, then add back the rest.
    let mut rest = Vec::new();
    let mut probe = clean.clone();
    loop {
        if let Ok(c) = std::fs::canonicalize(&probe) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (probe.file_name().map(ToOwned::to_owned), probe.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                probe = parent.to_owned();
            }
            _ => return clean,
        }
    }
}

/// Refuses an output that is one of `inputs`, lies inside one, or contains one.
pub fn check_not_input(out: &Path, inputs: &[PathBuf]) -> Result<()> {
    let o = resolve(out);
    for input in inputs {
        let i = resolve(input);
        let why = if i == o {
            "is also an input of this run"
        } else if o.starts_with(&i) {
            "lies inside an input of this run"
        } else if i.starts_with(&o) {
            "contains an input of this run"
        } else {
            continue;
        };
        return Err(out_err(
            out,
            format!(
                "{why} ({}); phiprobe never writes over its inputs: choose another --out",
                input.display()
            ),
        ));
    }
    Ok(())
}

/// Checks a single-file output (`score --out`, `gate --junit`, `decrypt --out`, keys): it may
/// not be a folder, an input, or lie inside an input or inside a run folder (a folder with a
/// `manifest.json` above it), whose manifest it would break.
pub fn check_file_output(out: &Path, inputs: &[PathBuf]) -> Result<()> {
    if out.is_dir() {
        return Err(out_err(out, "is a folder; name a file"));
    }
    let o = resolve(out);
    for input in inputs {
        let i = resolve(input);
        if i == o || o.starts_with(&i) {
            return Err(out_err(
                out,
                format!(
                    "{} an input of this run ({}); phiprobe never writes over its inputs",
                    if i == o { "is" } else { "lies inside" },
                    input.display()
                ),
            ));
        }
    }
    let mut dir = o.parent();
    while let Some(d) = dir {
        if d.join(MANIFEST).is_file() {
            return Err(out_err(
                out,
                format!(
                    "lies inside the run folder {}, whose manifest it would break; write it elsewhere",
                    d.display()
                ),
            ));
        }
        dir = d.parent();
    }
    Ok(())
}

/// What an existing output folder holds, once checked replaceable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// Nothing is there.
    Absent,
    /// An empty folder.
    Empty,
    /// A phiprobe run folder: the files its manifest lists (relative, `/`-separated).
    Run(Vec<String>),
}

/// Checks that `dir` may be replaced by a run folder: absent, empty, or a run folder whose
/// every file its own `manifest.json` lists. The first file that is not phiprobe's is named.
pub fn replaceable(dir: &Path) -> Result<Existing> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Absent),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    if meta.file_type().is_symlink() {
        return Err(out_err(
            dir,
            "is a symbolic link; name the folder itself as --out",
        ));
    }
    if !meta.is_dir() {
        return Err(out_err(
            dir,
            "exists and is not a folder; choose another --out",
        ));
    }
    let names = entry_names(dir)?;
    if names.is_empty() {
        return Ok(Existing::Empty);
    }
    if !dir.join(MANIFEST).is_file() {
        let first = names.first().map_or("", String::as_str);
        return Err(out_err(
            &dir.join(first),
            format!(
                "is not part of a phiprobe run: {} has no {MANIFEST}, and phiprobe replaces only folders it wrote; move the file or choose another --out",
                dir.display()
            ),
        ));
    }
    let (_, m) = manifest::read_manifest(dir)?;
    for p in manifest::check(dir, &m)? {
        let (rel, why) = match &p {
            Problem::Added(rel) => (rel, "is not listed in the folder's manifest.json"),
            Problem::NotAFile(rel) => (rel, "is not a regular file"),
            Problem::Missing(_) | Problem::Changed { .. } => continue,
        };
        return Err(out_err(
            &dir.join(rel),
            format!(
                "{why}, so it is not phiprobe's to delete; replacing the run folder {} would lose it. Move it or choose another --out",
                dir.display()
            ),
        ));
    }
    Ok(Existing::Run(
        m.outputs.iter().map(|h| h.path.clone()).collect(),
    ))
}

/// An exclusive lock on a folder, held as `.<name>.lock` beside it; released (and the file
/// removed) on drop.
#[derive(Debug)]
pub struct FolderLock {
    file: File,
    path: PathBuf,
}

#[cfg(unix)]
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

impl FolderLock {
    /// The lock file of `dir`.
    pub fn path_for(dir: &Path) -> PathBuf {
        let name = dir
            .file_name()
            .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
        dir.with_file_name(format!(".{name}.lock"))
    }

    /// Takes the lock on `dir` (its parent must exist), or fails at once naming the process
    /// that holds it.
    pub fn acquire(dir: &Path) -> Result<FolderLock> {
        use std::io::{Read as _, Seek as _, Write as _};
        let path = Self::path_for(dir);
        for _ in 0..64 {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(werr(&path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder: String = holder
                        .trim()
                        .chars()
                        .filter(char::is_ascii_digit)
                        .take(12)
                        .collect();
                    return Err(Error::Busy {
                        path: dir.to_owned(),
                        message: format!(
                            "another phiprobe process{} is writing this folder (lock {}); wait for it to finish or choose another --out",
                            if holder.is_empty() {
                                String::new()
                            } else {
                                format!(" (pid {holder})")
                            },
                            path.display()
                        ),
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(Error::Write { path, source });
                }
            }
            // The previous holder removes the file as it lets go: a lock on a file no longer
            // at the path guards nothing. Try again with the one there now.
            if !same_file(&file, &path) {
                continue;
            }
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = write!(file, "{}", std::process::id());
            return Ok(FolderLock { file, path });
        }
        Err(out_err(
            dir,
            "could not take the folder's lock (its lock file keeps changing); try again",
        ))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Remove while still holding the lock, so no one takes a lock on a file about to go.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// A run folder this process has claimed: its path was checked against the inputs, whatever
/// is there was checked replaceable, and the folder's lock is held until drop.
#[derive(Debug)]
pub struct RunFolder {
    path: PathBuf,
    lock: Option<FolderLock>,
    /// Parent folders the claim created, deepest first: removed again (when empty) if the run
    /// ends without installing its folder.
    created: Vec<PathBuf>,
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        // The lock file lives in the parent: let go of it first.
        drop(self.lock.take());
        if !self.path.exists() {
            for d in &self.created {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// Creates the missing ancestors of `dir`; returns the ones created, deepest first.
fn create_parents(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut p = dir.parent();
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
        if d.exists() {
            break;
        }
        missing.push(d.to_owned());
        p = d.parent();
    }
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Write {
                    path: d.clone(),
                    source,
                });
            }
        }
    }
    Ok(missing)
}

impl RunFolder {
    /// Claims `out` for a run reading `inputs`: refuses an output that is (or holds, or lies
    /// in) an input, takes the folder's lock, and refuses a folder holding anything phiprobe did
    /// not write. Nothing but the lock file (and missing parent folders) is written, and those
    /// are removed again if the claim is refused or the run ends without installing a folder.
    pub fn claim(out: &Path, inputs: &[PathBuf]) -> Result<RunFolder> {
        if out.as_os_str().is_empty() || out.file_name().is_none() {
            return Err(out_err(
                out,
                "is not a folder name phiprobe can write (use a path ending in a folder name)",
            ));
        }
        check_not_input(out, inputs)?;
        // Reject what can be seen without writing anything first.
        replaceable(out)?;
        let created = create_parents(out)?;
        let claimed = (|| {
            let lock = FolderLock::acquire(out)?;
            // Checked again under the lock: another process may have written it meanwhile.
            replaceable(out)?;
            Ok(lock)
        })();
        match claimed {
            Ok(lock) => Ok(RunFolder {
                path: out.to_owned(),
                lock: Some(lock),
                created,
            }),
            Err(e) => {
                for d in &created {
                    let _ = std::fs::remove_dir(d);
                }
                Err(e)
            }
        }
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sibling working folder (`.<name>.<suffix>`), covered by this folder's lock.
    pub fn sibling(&self, suffix: &str) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        self.path.with_file_name(format!(".{name}.{suffix}"))
    }

    /// Moves the complete folder `built` into place. A previous run there is moved aside and
    /// only the files its manifest lists are deleted; anything else that appeared in it keeps
    /// the old folder and is reported.
    pub fn install(&self, built: &Path) -> Result<()> {
        let existing = replaceable(&self.path)?;
        match existing {
            Existing::Absent => std::fs::rename(built, &self.path).map_err(werr(&self.path)),
            Existing::Empty => {
                std::fs::remove_dir(&self.path).map_err(werr(&self.path))?;
                std::fs::rename(built, &self.path).map_err(werr(&self.path))
            }
            Existing::Run(listed) => {
                let old = self.sibling(&format!("old-{}", std::process::id()));
                if old.exists() {
                    remove_run(&old)?;
                }
                std::fs::rename(&self.path, &old).map_err(werr(&self.path))?;
                if let Err(e) = std::fs::rename(built, &self.path) {
                    // Put the previous run back rather than leave no folder at all.
                    let _ = std::fs::rename(&old, &self.path);
                    return Err(werr(&self.path)(e));
                }
                remove_listed(&old, &listed);
                Ok(())
            }
        }
    }
}

/// Deletes a run folder that [`replaceable`] accepts (only the files its manifest lists).
pub fn remove_run(dir: &Path) -> Result<()> {
    match replaceable(dir)? {
        Existing::Absent => Ok(()),
        Existing::Empty => std::fs::remove_dir(dir).map_err(werr(dir)),
        Existing::Run(listed) => {
            remove_listed(dir, &listed);
            if dir.exists() {
                return Err(out_err(
                    dir,
                    "still holds files after its listed files were removed; remove it by hand",
                ));
            }
            Ok(())
        }
    }
}

/// Removes the listed files of a run folder, then its manifest and signature, then every folder
/// left empty; a folder that still holds something stays, with a warning.
fn remove_listed(dir: &Path, listed: &[String]) {
    let mut folders = std::collections::BTreeSet::new();
    for rel in listed
        .iter()
        .map(String::as_str)
        .chain([MANIFEST, SIGNATURE])
    {
        // Listed paths are relative and `/`-separated; anything else is not ours to follow.
        if rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            continue;
        }
        let p = dir.join(rel);
        let _ = std::fs::remove_file(&p);
        let mut parent = Path::new(rel).parent();
        while let Some(f) = parent.filter(|f| !f.as_os_str().is_empty()) {
            folders.insert(f.to_owned());
            parent = f.parent();
        }
    }
    // Deepest first.
    let mut folders: Vec<PathBuf> = folders.into_iter().collect();
    folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
    for f in folders {
        let _ = std::fs::remove_dir(dir.join(f));
    }
    if std::fs::remove_dir(dir).is_err() && dir.exists() {
        tracing::warn!(
            "kept {}: it holds files the previous run's manifest did not list",
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::manifest::tests::run as run_manifest;

    fn fake_run(dir: &Path) {
        std::fs::create_dir_all(dir.join("observations")).unwrap();
        std::fs::write(dir.join("findings.json"), b"{}").unwrap();
        std::fs::write(dir.join("observations/a.parquet"), b"x").unwrap();
        manifest::write(dir, &run_manifest()).unwrap();
    }

    #[test]
    fn only_empty_folders_and_manifested_runs_are_replaceable() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        assert_eq!(replaceable(&out).unwrap(), Existing::Absent);
        std::fs::create_dir(&out).unwrap();
        assert_eq!(replaceable(&out).unwrap(), Existing::Empty);
        // A findings.json alone does not make a run folder.
        std::fs::write(out.join("findings.json"), b"{}").unwrap();
        std::fs::write(out.join("thesis.docx"), b"x").unwrap();
        let e = replaceable(&out).unwrap_err().to_string();
        assert!(
            e.contains("findings.json") && e.contains("no manifest.json"),
            "{e}"
        );
        std::fs::remove_dir_all(&out).unwrap();
        fake_run(&out);
        assert!(matches!(replaceable(&out).unwrap(), Existing::Run(l) if l.len() == 2));
        std::fs::write(out.join("observations/notes.txt"), b"mine").unwrap();
        let e = replaceable(&out).unwrap_err().to_string();
        assert!(
            e.contains("observations/notes.txt") && e.contains("not listed"),
            "{e}"
        );
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(
            replaceable(&f)
                .unwrap_err()
                .to_string()
                .contains("not a folder")
        );
    }

    #[test]
    fn install_deletes_only_what_the_old_manifest_lists() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        fake_run(&out);
        let claim = RunFolder::claim(&out, &[]).unwrap();
        let built = claim.sibling("tmp");
        std::fs::create_dir(&built).unwrap();
        std::fs::write(built.join("findings.json"), b"{\"new\":1}").unwrap();
        claim.install(&built).unwrap();
        assert_eq!(
            std::fs::read(out.join("findings.json")).unwrap(),
            b"{\"new\":1}"
        );
        assert!(!out.join("observations").exists());
        drop(claim);
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(
            left.len(),
            1,
            "no old folder and no lock file left: {left:?}"
        );
    }

    #[test]
    fn outputs_that_are_inputs_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("data.csv"), b"x").unwrap();
        let data = a.join("data.csv");
        for (out, inputs, why) in [
            (a.clone(), vec![a.clone()], "is also an input"),
            (a.join("sub"), vec![a.clone()], "lies inside an input"),
            (a.clone(), vec![data.clone()], "contains an input"),
            (
                d.path().join("x/../a/./"),
                vec![a.clone()],
                "is also an input",
            ),
        ] {
            let e = check_not_input(&out, &inputs).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        check_not_input(&d.path().join("b"), &[a, data]).unwrap();
    }

    #[test]
    fn a_second_claim_is_refused_while_the_first_holds_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("deep/er/out");
        let first = RunFolder::claim(&out, &[]).unwrap();
        let e = RunFolder::claim(&out, &[]).unwrap_err().to_string();
        assert!(e.contains("another phiprobe process"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(first);
        let again = RunFolder::claim(&out, &[]).unwrap();
        drop(again);
        assert!(!FolderLock::path_for(&out).exists());
    }

    #[test]
    fn a_refused_claim_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("mine");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("thesis.docx"), b"x").unwrap();
        assert!(RunFolder::claim(&out, &[]).is_err());
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(std::fs::read(out.join("thesis.docx")).unwrap(), b"x");
    }
}
