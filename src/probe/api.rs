//! The one interface every probe implements, and its type-erased form the runner drives.
//!
//! A probe is a settings type (read from its `[[probe]]` table of a plan), an observation type
//! (what the model did, cached as `observations/<FILE>` so an interrupted audit resumes and a
//! finished one can be re-analysed without a model), `observe` (runs the model), `analyze`
//! (pure: observations → findings and detail) and optionally a report view.
//!
//! The runner (`crate::run::audit`) reads nothing probe-specific: it walks [`super::REGISTRY`]
//! in order, so a probe that consumes another's observations ([`Probe::CONSUMES`]) comes after
//! it there.

use std::any::Any;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::text::TextRecords;
use crate::evidence::{Finding, FindingsFile};
use crate::model::LanguageModel;
use crate::report::doc::Section;
use crate::train::run::TrainingRecord;
use crate::{Error, Result};

/// A probe's settings: one `[[probe]]` table of a plan, every key optional (defaults), unknown
/// keys refused. Its doc comments are what `phiprobe probes` prints.
pub trait Settings:
    Serialize + DeserializeOwned + schemars::JsonSchema + Default + Clone + std::fmt::Debug + 'static
{
    /// Checks the values (ranges, documented maxima) before anything runs; the message names
    /// the key, never a value from a file.
    fn validate(&self) -> std::result::Result<(), String>;
}

/// Loads a model by spec; `true`: as the target (with its adapter, its card recorded).
pub type Loader<'a> = dyn FnMut(&str, bool) -> Result<Box<dyn LanguageModel>> + 'a;

/// What the runner hands a probe's `observe`: the audit's inputs, the target (loaded on
/// demand), other probes' observations and a progress callback.
pub struct Observe<'a> {
    /// The dataset card's records (`None` without `--data`).
    pub records: Option<&'a TextRecords>,
    /// What to load as the target (folder, GGUF file or `mock:` fixture).
    pub target: &'a str,
    /// A LoRA adapter merged into the target.
    pub adapter: Option<&'a Path>,
    /// The dataset card (`--data`), named in messages.
    pub card: Option<&'a Path>,
    /// Reference models with known membership: fleet folders or trained model folders.
    pub references: &'a [std::path::PathBuf],
    /// A `fleet.json`-format manifest of reference models.
    pub reference_manifest: Option<&'a Path>,
    /// A reference model without membership (`--reference-model`).
    pub reference_model: Option<&'a str>,
    /// A `--canaries` file for a model phiprobe did not train.
    pub canaries: Option<&'a Path>,
    /// The run's seed.
    pub seed: u64,
    /// Padded tokens per scoring batch.
    pub batch_tokens: usize,
    /// Loads a model by spec; `true`: as the target (with its adapter, its card recorded).
    pub load: &'a mut Loader<'a>,
    /// The observations folder (a probe with [`Stored`] of its own may keep more there).
    pub dir: &'a Path,
    /// Progress: (stage, done, total).
    pub progress: &'a mut dyn FnMut(&str, usize, usize),
    /// Observations of the probes that ran before, by kind.
    pub upstream: &'a Upstream,
    /// The target's training record (`training.json`), read once on first use.
    pub training: &'a TrainingCell,
}

impl Observe<'_> {
    /// Loads the target model.
    pub fn target_model(&mut self) -> Result<Box<dyn LanguageModel>> {
        let spec = self.target.to_owned();
        (self.load)(&spec, true)
    }

    /// Loads another model (a reference), without the target's adapter.
    pub fn model(&mut self, spec: &str) -> Result<Box<dyn LanguageModel>> {
        (self.load)(spec, false)
    }
}

/// The target's training record, read on first use (a model phiprobe did not train has none).
#[derive(Debug)]
pub struct TrainingCell {
    model: String,
    cell: OnceCell<Option<TrainingRecord>>,
}

impl TrainingCell {
    /// The record of the model at `model` (a folder); nothing is read until [`Self::get`].
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            cell: OnceCell::new(),
        }
    }

    /// `training.json` beside the target's weights, when there is one.
    pub fn get(&self) -> Result<Option<&TrainingRecord>> {
        if let Some(r) = self.cell.get() {
            return Ok(r.as_ref());
        }
        let tr = Path::new(&self.model).join("training.json");
        let rec = if tr.is_file() {
            Some(crate::fsx::read_json(
                &tr,
                crate::train::run::TRAINING_FORMAT,
            )?)
        } else {
            None
        };
        Ok(self.cell.get_or_init(|| rec).as_ref())
    }

    /// The record if it was read (analysis never reads files).
    pub fn loaded(&self) -> Option<&TrainingRecord> {
        self.cell.get().and_then(Option::as_ref)
    }
}

/// Observations of the probes that ran so far, by kind.
#[derive(Default)]
pub struct Upstream(HashMap<&'static str, Box<dyn Any>>);

impl Upstream {
    /// The observations of probe `P`, when it ran and observed something.
    pub fn get<P: Probe>(&self) -> Option<&P::Observations> {
        self.0.get(P::KIND).and_then(|b| b.downcast_ref())
    }
}

/// What `analyze` may read besides its own observations (nothing here does I/O).
pub struct Analyze<'a> {
    /// Findings of the probes analysed before (e.g. the membership probe's ε lower bound).
    pub findings: &'a [Finding],
    /// Observations of the probes analysed before, by kind.
    pub upstream: &'a Upstream,
    /// The target's training record, when one was read while observing.
    pub training: Option<&'a TrainingRecord>,
    /// The run's seed.
    pub seed: u64,
}

/// A probe. Implement it in one file, cite the paper there, and add one line to
/// [`super::REGISTRY`].
pub trait Probe: 'static {
    /// The kind in plans (`kind = "…"`) and in findings (`probe`).
    const KIND: &'static str;
    /// One line for `phiprobe probes`: the question the probe answers and its paper.
    const TITLE: &'static str;
    /// File under `observations/` that caches the observations.
    const FILE: &'static str;
    /// Kinds whose observations or findings this probe reads (they run before it).
    const CONSUMES: &'static [&'static str] = &[];
    /// Whether the probe needs the dataset card's records (`--data`).
    const NEEDS_DATA: bool = false;
    /// Whether re-analysis recomputes it from its observations (`false`: kept as recorded).
    const REANALYSE: bool = true;
    /// Whether a plan without this probe records it as `null` in the manifest (the probes of
    /// earlier releases are, and their run ids hash it; new probes are recorded only when
    /// planned).
    const RECORDED_WHEN_ABSENT: bool = false;
    /// The settings.
    type Settings: Settings;
    /// What `observe` records; cached (as JSON: [`stored_as_json!`](crate::stored_as_json)),
    /// so analysis can be redone without a model.
    type Observations: Stored;

    /// What must stay the same for an interrupted audit's cached observations to be reused
    /// (default: the settings).
    fn resume_key(s: &Self::Settings, _cx: &Observe<'_>) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(s).unwrap_or_default())
    }

    /// Checks, before any model is loaded, that the inputs this probe needs are there.
    fn preflight(_s: Option<&Self::Settings>, _cx: &Observe<'_>) -> Result<()> {
        Ok(())
    }

    /// Runs the model. `None`: nothing to observe; `analyze` then says why it was not measured.
    fn observe(s: &Self::Settings, cx: &mut Observe<'_>) -> Result<Option<Self::Observations>>;

    /// Pure: findings and detail from the observations, stored in `out`.
    fn analyze(
        s: &Self::Settings,
        obs: Option<&Self::Observations>,
        cx: &Analyze<'_>,
        out: &mut FindingsFile,
    ) -> Result<()>;

    /// Carries this probe's findings and detail over unchanged from `old` (re-analysis when
    /// [`Self::REANALYSE`] is false or nothing was observed).
    fn keep(old: &FindingsFile, out: &mut FindingsFile) {
        out.findings.extend(
            old.findings
                .iter()
                .filter(|f| f.probe == Self::KIND)
                .cloned(),
        );
        if let Some(d) = old.probes.get(Self::KIND) {
            out.probes.insert(Self::KIND.to_owned(), d.clone());
        }
    }

    /// The settings a finished run recorded for this probe (re-analysis without new ones).
    fn recorded(old: &FindingsFile) -> Option<serde_json::Value> {
        old.manifest
            .plan
            .get(Self::KIND)
            .filter(|v| !v.is_null())
            .cloned()
    }

    /// Input files the observations depend on (models scored), pinned in the manifest.
    fn inputs(_obs: &Self::Observations) -> Vec<crate::evidence::FileHash> {
        Vec::new()
    }

    /// The report section of this probe (sections of the probes that came with phiprobe are
    /// built by `report::doc`).
    fn view(_file: &FindingsFile) -> Option<Section> {
        None
    }
}

/// How a probe's observations are kept in a run folder (`observations/<FILE>`).
pub trait Stored: Sized + 'static {
    /// Reads them back; `what` names them in errors.
    fn read(path: &Path, what: &str) -> Result<Self>;
    /// Writes them, atomically.
    fn write(&self, path: &Path) -> Result<()>;
}

/// Keeps a serde type's observations as pretty JSON: `stored_as_json!(Observations);`.
#[macro_export]
macro_rules! stored_as_json {
    ($t:ty) => {
        impl $crate::probe::api::Stored for $t {
            fn read(path: &::std::path::Path, what: &str) -> $crate::Result<Self> {
                $crate::fsx::read_json(path, what)
            }
            fn write(&self, path: &::std::path::Path) -> $crate::Result<()> {
                $crate::fsx::write_json(path, self)
            }
        }
    };
}

/// A probe's settings behind a trait object (what a resolved plan holds).
pub trait AnySettings: std::fmt::Debug {
    /// The settings as JSON (what the manifest records).
    fn to_json(&self) -> serde_json::Value;
    /// A copy.
    fn clone_box(&self) -> Box<dyn AnySettings>;
    /// For downcasting to the probe's settings type.
    fn as_any(&self) -> &dyn Any;
    /// [`Settings::validate`].
    fn validate(&self) -> std::result::Result<(), String>;
}

impl<T: Settings> AnySettings for T {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn clone_box(&self) -> Box<dyn AnySettings> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn validate(&self) -> std::result::Result<(), String> {
        Settings::validate(self)
    }
}

impl Clone for Box<dyn AnySettings> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// One setting of a probe as `phiprobe probes` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingHelp {
    /// The key.
    pub key: String,
    /// The first paragraph of its doc comment.
    pub doc: String,
    /// Its default, as TOML-ish JSON.
    pub default: String,
}

/// The runner's view of a probe: [`Probe`] without its types.
pub trait Registered: Sync {
    /// [`Probe::KIND`].
    fn kind(&self) -> &'static str;
    /// [`Probe::TITLE`].
    fn title(&self) -> &'static str;
    /// [`Probe::CONSUMES`].
    fn consumes(&self) -> &'static [&'static str];
    /// [`Probe::NEEDS_DATA`].
    fn needs_data(&self) -> bool;
    /// [`Probe::RECORDED_WHEN_ABSENT`].
    fn recorded_when_absent(&self) -> bool;
    /// The default settings.
    fn default_settings(&self) -> Box<dyn AnySettings>;
    /// Settings from a `[[probe]]` table (without its `kind`), checked; the message names the
    /// key and the kind of problem, never a value.
    fn parse(&self, t: toml::Table) -> std::result::Result<Box<dyn AnySettings>, String>;
    /// Settings from JSON (a run's recorded plan).
    fn parse_json(
        &self,
        v: &serde_json::Value,
    ) -> std::result::Result<Box<dyn AnySettings>, String>;
    /// The settings' keys with their docs and defaults (from the settings type's doc comments).
    fn help(&self) -> Vec<SettingHelp>;
    /// The settings type's own doc comment (its paragraphs after the first say what the probe
    /// needs).
    fn about(&self) -> String;
    /// [`Probe::recorded`], parsed (`None` when nothing was recorded); the message says why
    /// recorded settings are not usable.
    fn recorded(
        &self,
        old: &FindingsFile,
    ) -> std::result::Result<Option<Box<dyn AnySettings>>, String>;
    /// [`Probe::resume_key`].
    fn resume_key(&self, s: &dyn AnySettings, cx: &Observe<'_>) -> Result<serde_json::Value>;
    /// [`Probe::preflight`].
    fn preflight(&self, s: Option<&dyn AnySettings>, cx: &Observe<'_>) -> Result<()>;
    /// Observes (or reads the cached observations in `dir`), then analyses into `out`, and
    /// leaves the observations in `upstream` for the probes after it.
    fn run(
        &self,
        s: &dyn AnySettings,
        dir: &Path,
        cx: &mut Observe<'_>,
        out: &mut FindingsFile,
    ) -> Result<Option<Box<dyn Any>>>;
    /// Re-analyses from the observations cached in `dir`, or keeps what `old` recorded.
    fn reanalyse(
        &self,
        s: &dyn AnySettings,
        dir: &Path,
        old: &FindingsFile,
        upstream: &mut Upstream,
        out: &mut FindingsFile,
        seed: u64,
    ) -> Result<()>;
    /// Whether `dir` holds this probe's cached observations.
    fn observed(&self, dir: &Path) -> bool;
    /// [`Probe::inputs`] of observations `run` returned.
    fn inputs(&self, obs: &dyn Any) -> Vec<crate::evidence::FileHash>;
    /// [`Probe::view`].
    fn view(&self, file: &FindingsFile) -> Option<Section>;
}

/// The zero-sized [`Registered`] form of a probe `P`: `&Entry::<P>::NEW` in the registry.
pub struct Entry<P>(std::marker::PhantomData<fn() -> P>);

impl<P: Probe> Entry<P> {
    /// The registry entry.
    pub const NEW: Self = Self(std::marker::PhantomData);

    fn settings<'s>(&self, s: &'s dyn AnySettings) -> Result<&'s P::Settings> {
        s.as_any().downcast_ref().ok_or_else(|| {
            Error::Compute(format!(
                "internal: settings of another probe given to {}",
                P::KIND
            ))
        })
    }
}

impl<P: Probe> Registered for Entry<P> {
    fn kind(&self) -> &'static str {
        P::KIND
    }
    fn title(&self) -> &'static str {
        P::TITLE
    }
    fn consumes(&self) -> &'static [&'static str] {
        P::CONSUMES
    }
    fn needs_data(&self) -> bool {
        P::NEEDS_DATA
    }
    fn recorded_when_absent(&self) -> bool {
        P::RECORDED_WHEN_ABSENT
    }
    fn default_settings(&self) -> Box<dyn AnySettings> {
        Box::new(P::Settings::default())
    }
    fn parse(&self, t: toml::Table) -> std::result::Result<Box<dyn AnySettings>, String> {
        let s: P::Settings = t.try_into().map_err(|e: toml::de::Error| {
            format!(
                "{}{}",
                crate::redact::serde_kind(e.message()),
                crate::redact::toml_key(&e)
            )
        })?;
        Settings::validate(&s)?;
        Ok(Box::new(s))
    }
    fn parse_json(
        &self,
        v: &serde_json::Value,
    ) -> std::result::Result<Box<dyn AnySettings>, String> {
        let s: P::Settings =
            serde_json::from_value(v.clone()).map_err(|e| crate::redact::json(&e))?;
        Ok(Box::new(s))
    }
    fn help(&self) -> Vec<SettingHelp> {
        settings_help(
            &schemars::schema_for!(P::Settings),
            &serde_json::to_value(P::Settings::default()).unwrap_or_default(),
        )
    }
    fn recorded(
        &self,
        old: &FindingsFile,
    ) -> std::result::Result<Option<Box<dyn AnySettings>>, String> {
        P::recorded(old).map(|v| self.parse_json(&v)).transpose()
    }
    fn about(&self) -> String {
        schemars::schema_for!(P::Settings)
            .as_object()
            .and_then(|o| o.get("description"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    }
    fn resume_key(&self, s: &dyn AnySettings, cx: &Observe<'_>) -> Result<serde_json::Value> {
        P::resume_key(self.settings(s)?, cx)
    }
    fn preflight(&self, s: Option<&dyn AnySettings>, cx: &Observe<'_>) -> Result<()> {
        let s = match s {
            Some(s) => Some(self.settings(s)?),
            None => None,
        };
        P::preflight(s, cx)
    }
    fn run(
        &self,
        s: &dyn AnySettings,
        dir: &Path,
        cx: &mut Observe<'_>,
        out: &mut FindingsFile,
    ) -> Result<Option<Box<dyn Any>>> {
        let s = self.settings(s)?;
        let path = dir.join(P::FILE);
        let obs: Option<P::Observations> = if path.is_file() {
            Some(P::Observations::read(
                &path,
                &format!("{} observations", P::KIND),
            )?)
        } else {
            let o = P::observe(s, cx)?;
            if let Some(o) = &o {
                o.write(&path)?;
            }
            o
        };
        let acx = Analyze {
            findings: &out.findings.clone(),
            upstream: cx.upstream,
            training: cx.training.loaded(),
            seed: cx.seed,
        };
        P::analyze(s, obs.as_ref(), &acx, out)?;
        Ok(obs.map(|o| Box::new(o) as Box<dyn Any>))
    }
    fn reanalyse(
        &self,
        s: &dyn AnySettings,
        dir: &Path,
        old: &FindingsFile,
        upstream: &mut Upstream,
        out: &mut FindingsFile,
        seed: u64,
    ) -> Result<()> {
        let s = self.settings(s)?;
        let path = dir.join(P::FILE);
        if !P::REANALYSE || !path.is_file() {
            P::keep(old, out);
            return Ok(());
        }
        let obs = P::Observations::read(&path, &format!("{} observations", P::KIND))?;
        let acx = Analyze {
            findings: &out.findings.clone(),
            upstream,
            training: None,
            seed,
        };
        P::analyze(s, Some(&obs), &acx, out)?;
        upstream.0.insert(P::KIND, Box::new(obs));
        Ok(())
    }
    fn observed(&self, dir: &Path) -> bool {
        dir.join(P::FILE).is_file()
    }
    fn inputs(&self, obs: &dyn Any) -> Vec<crate::evidence::FileHash> {
        obs.downcast_ref::<P::Observations>()
            .map_or_else(Vec::new, P::inputs)
    }
    fn view(&self, file: &FindingsFile) -> Option<Section> {
        P::view(file)
    }
}

impl Upstream {
    /// Records the observations of probe `kind`.
    pub fn insert(&mut self, kind: &'static str, obs: Box<dyn Any>) {
        self.0.insert(kind, obs);
    }
}

/// The settings' keys, their docs and defaults, read from the settings type's JSON schema
/// (whose descriptions are the fields' doc comments).
fn settings_help(schema: &schemars::Schema, defaults: &serde_json::Value) -> Vec<SettingHelp> {
    let Some(props) = schema
        .as_object()
        .and_then(|o| o.get("properties"))
        .and_then(serde_json::Value::as_object)
    else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(key, p)| {
            let doc = p
                .get("description")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .split("\n\n")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace("[`", "`")
                .replace("`]", "`");
            let default = defaults.get(key).map_or_else(String::new, show);
            SettingHelp {
                key: key.clone(),
                doc,
                default,
            }
        })
        .collect()
}

/// A default as a reader wants it: numbers as the report prints them (an `f32` 0.7 is 0.7, not
/// 0.699999988079071), `unset` for none.
fn show(v: &serde_json::Value) -> String {
    use serde_json::Value as V;
    match v {
        V::Null => "unset".to_owned(),
        V::Number(n) if n.is_f64() => n
            .as_f64()
            .map_or_else(|| n.to_string(), crate::evidence::num),
        V::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        V::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_reads_doc_comments_and_defaults_from_the_schema() {
        /// Settings of a test probe.
        #[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields, default)]
        struct S {
            /// How many draws.
            ///
            /// Not this paragraph.
            draws: usize,
            /// An optional level.
            level: Option<f64>,
        }
        impl Default for S {
            fn default() -> Self {
                Self {
                    draws: 3,
                    level: None,
                }
            }
        }
        let h = settings_help(
            &schemars::schema_for!(S),
            &serde_json::to_value(S::default()).unwrap(),
        );
        assert_eq!(
            h,
            vec![
                SettingHelp {
                    key: "draws".into(),
                    doc: "How many draws.".into(),
                    default: "3".into()
                },
                SettingHelp {
                    key: "level".into(),
                    doc: "An optional level.".into(),
                    default: "unset".into()
                },
            ]
        );
    }

    #[test]
    fn unknown_findings_kinds_are_kept_on_reanalysis() {
        // `keep` is what re-analysis does for a probe that is not recomputed.
        struct P;
        impl Probe for P {
            const KIND: &'static str = "p";
            const TITLE: &'static str = "p";
            const FILE: &'static str = "p.json";
            type Settings = NoSettings;
            type Observations = NoObservations;
            fn observe(_: &NoSettings, _: &mut Observe<'_>) -> Result<Option<NoObservations>> {
                Ok(None)
            }
            fn analyze(
                _: &NoSettings,
                _: Option<&NoObservations>,
                _: &Analyze<'_>,
                _: &mut FindingsFile,
            ) -> Result<()> {
                Ok(())
            }
        }
        let manifest = crate::evidence::RunManifest {
            schema_version: 1,
            tool_version: String::new(),
            git_commit: None,
            run_id: "r".into(),
            command: "audit".into(),
            seed: 7,
            plan: serde_json::Value::Null,
            inputs: Vec::new(),
            started_at: String::new(),
        };
        let mut old = FindingsFile::new(manifest.clone());
        old.findings.push(Finding::new(
            "p",
            crate::evidence::metric::MIA_AUC,
            Some(1.0),
        ));
        old.findings.push(Finding::new(
            "q",
            crate::evidence::metric::REID_K,
            Some(2.0),
        ));
        old.probes.insert("p".into(), serde_json::json!({"a": 1}));
        let mut out = FindingsFile::new(manifest);
        P::keep(&old, &mut out);
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].probe, "p");
        assert_eq!(out.probes["p"], serde_json::json!({"a": 1}));
    }

    /// Observations of a probe that observes nothing.
    #[derive(Debug, Serialize, serde::Deserialize)]
    struct NoObservations {}
    crate::stored_as_json!(NoObservations);

    /// Settings of a probe without settings.
    #[derive(Debug, Clone, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
    struct NoSettings {}
    impl Settings for NoSettings {
        fn validate(&self) -> std::result::Result<(), String> {
            Ok(())
        }
    }
}
