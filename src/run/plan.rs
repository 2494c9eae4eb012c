//! Probe plans: `probes/*.toml` → resolved settings.
//!
//! A plan has an optional `[run]` table and one `[[probe]]` table per probe; each probe table
//! names its `kind` and that kind's settings (unknown keys are refused, so a typo cannot silently
//! fall back to a default). `phiprobe probes` lists the kinds and their settings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::probe::api::{AnySettings, Probe};
use crate::probe::{REGISTRY, Registered};
use crate::{Error, Result};

/// The seed of a run when neither `--seed` nor the plan's `[run] seed` gives one.
pub const DEFAULT_SEED: u64 = 7;

/// `[run]`: settings shared by every probe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Seed (a `--seed` flag overrides it).
    pub seed: Option<u64>,
}

impl RunSettings {
    /// The run's seed: the flag, else the plan's, else [`DEFAULT_SEED`].
    pub fn seed(&self, flag: Option<u64>) -> u64 {
        flag.or(self.seed).unwrap_or(DEFAULT_SEED)
    }
}

/// A resolved plan: `[run]` and the settings of each probe to run, typed by the probe that
/// reads them ([`Plan::get`]), kept in [`REGISTRY`] order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `[run]`.
    pub run: RunSettings,
    probes: Vec<(&'static str, Box<dyn AnySettings>)>,
}

/// Every registered probe with its default settings (`probes/default.toml`'s settings).
impl Default for Plan {
    fn default() -> Self {
        Self {
            run: RunSettings::default(),
            probes: REGISTRY
                .iter()
                .map(|p| (p.kind(), p.default_settings()))
                .collect(),
        }
    }
}

/// Plans are equal when they run the same probes with the same settings.
impl PartialEq for Plan {
    fn eq(&self, other: &Self) -> bool {
        self.run == other.run
            && self.probes.len() == other.probes.len()
            && self
                .probes
                .iter()
                .zip(&other.probes)
                .all(|((k, a), (l, b))| k == l && a.to_json() == b.to_json())
    }
}

/// `{"run": …, "<kind>": settings or null, …}` over every registered probe.
impl Serialize for Plan {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = ser.serialize_map(Some(REGISTRY.len() + 1))?;
        m.serialize_entry("run", &self.run)?;
        for p in REGISTRY {
            m.serialize_entry(p.kind(), &self.get_dyn(p.kind()).map(|s| s.to_json()))?;
        }
        m.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    run: RunSettings,
    #[serde(default)]
    probe: Vec<toml::Table>,
}

fn position(kind: &str) -> usize {
    REGISTRY
        .iter()
        .position(|p| p.kind() == kind)
        .unwrap_or(usize::MAX)
}

impl Plan {
    /// A plan with no probe.
    pub fn empty() -> Self {
        Self {
            run: RunSettings::default(),
            probes: Vec::new(),
        }
    }

    /// The settings of probe `P`, when the plan runs it.
    pub fn get<P: Probe>(&self) -> Option<&P::Settings> {
        self.get_dyn(P::KIND)
            .and_then(|s| s.as_any().downcast_ref())
    }

    /// The settings of the probe of kind `kind`, when the plan runs it.
    pub fn get_dyn(&self, kind: &str) -> Option<&dyn AnySettings> {
        self.probes
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| s.as_ref())
    }

    /// Runs probe `P` with `s` (`None`: not at all).
    pub fn set<P: Probe>(&mut self, s: Option<P::Settings>) {
        self.set_dyn(P::KIND, s.map(|s| Box::new(s) as Box<dyn AnySettings>));
    }

    /// Runs the probe of kind `kind` with `s` (`None`: not at all).
    pub fn set_dyn(&mut self, kind: &'static str, s: Option<Box<dyn AnySettings>>) {
        self.probes.retain(|(k, _)| *k != kind);
        if let Some(s) = s {
            self.probes.push((kind, s));
            self.probes.sort_by_key(|(k, _)| position(k));
        }
    }

    /// Changes the settings of probe `P` in place, when the plan runs it.
    pub fn update<P: Probe>(&mut self, f: impl FnOnce(&mut P::Settings)) {
        if let Some(mut s) = self.get::<P>().cloned() {
            f(&mut s);
            self.set::<P>(Some(s));
        }
    }

    /// The kinds the plan runs, in running order.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.probes.iter().map(|(k, _)| *k)
    }

    /// The registered probes the plan runs, with their settings, in running order.
    pub fn probes(&self) -> impl Iterator<Item = (&'static dyn Registered, &dyn AnySettings)> {
        self.probes
            .iter()
            .filter_map(|(k, s)| crate::probe::find(k).map(|p| (p, s.as_ref())))
    }

    /// Whether the plan runs no probe.
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }

    /// The probes' settings as the manifest records them: every planned probe, and `null` for
    /// the unplanned ones recorded when absent ([`Probe::RECORDED_WHEN_ABSENT`]).
    pub fn recorded(&self) -> serde_json::Map<String, serde_json::Value> {
        REGISTRY
            .iter()
            .filter_map(|p| match self.get_dyn(p.kind()) {
                Some(s) => Some((p.kind().to_owned(), s.to_json())),
                None if p.recorded_when_absent() => {
                    Some((p.kind().to_owned(), serde_json::Value::Null))
                }
                None => None,
            })
            .collect()
    }

    /// Checks every probe's settings; the message names the probe and the key.
    pub fn validate(&self) -> Result<()> {
        for (kind, s) in &self.probes {
            s.validate()
                .map_err(|m| Error::Usage(format!("plan: {kind}: {m}")))?;
        }
        Ok(())
    }

    /// Parses a plan's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |m: String| Error::Parse {
            path: path.to_owned(),
            format: "probe plan (TOML)".into(),
            message: m,
        };
        let raw: RawPlan = toml::from_str(text).map_err(|e| bad(crate::redact::toml(&e, text)))?;
        let mut plan = Plan {
            run: raw.run,
            probes: Vec::new(),
        };
        for (i, mut t) in raw.probe.into_iter().enumerate() {
            let kind = match t.remove("kind") {
                Some(toml::Value::String(k)) => k,
                _ => return Err(bad(format!("[[probe]] #{}: missing `kind`", i + 1))),
            };
            let Some(p) = crate::probe::find(&kind) else {
                return Err(bad(format!(
                    "[[probe]] #{}: kind {} is not available in this release (available: {})",
                    i + 1,
                    crate::redact::plain_name(&kind)
                        .map_or_else(|| "(not a plain name)".to_owned(), |k| format!("'{k}'")),
                    REGISTRY
                        .iter()
                        .map(|p| p.kind())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            if plan.get_dyn(p.kind()).is_some() {
                return Err(bad(format!("two {} probes; merge them into one", p.kind())));
            }
            let s = p
                .parse(t)
                .map_err(|m| bad(format!("[[probe]] {}: {m}", p.kind())))?;
            plan.set_dyn(p.kind(), Some(s));
        }
        Ok(plan)
    }

    /// Reads a plan file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::fsx::read_config(path)?;
        Self::parse(&text, path)
    }
}

/// Reads a `determination.toml` (the Expert Determination facts phiprobe cannot measure) and
/// its hash for the manifest. Unknown keys are refused, so a misspelt fact never silently
/// disappears from the report.
pub fn load_determination(
    path: &Path,
) -> Result<(crate::evidence::Determination, crate::evidence::FileHash)> {
    let bytes = crate::fsx::read_bytes(path, crate::fsx::input::MAX_TEXT_BYTES)?;
    parse_determination(&bytes, path)
}

/// Parses and checks the bytes of a `determination.toml`; `path` names it in errors and in the
/// hash recorded for the manifest.
pub fn parse_determination(
    bytes: &[u8],
    path: &Path,
) -> Result<(crate::evidence::Determination, crate::evidence::FileHash)> {
    let bad = |message: String| Error::Parse {
        path: path.to_owned(),
        format: "determination (TOML)".into(),
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let mut d: crate::evidence::Determination =
        toml::from_str(text).map_err(|e| bad(crate::redact::toml(&e, text)))?;
    if d.source.is_some() {
        return Err(bad("`source` is set by phiprobe; remove it".into()));
    }
    if let Some(m) = &d.release.model
        && !["public", "dua", "enclave", "model-api"].contains(&m.as_str())
    {
        return Err(bad(
            "release.model: expected public, dua, enclave or model-api".into(),
        ));
    }
    if let Some(t) = d.threat.threshold
        && !(t > 0.0 && t <= 1.0)
    {
        return Err(bad(format!(
            "threat.threshold = {t}: expected a probability in (0, 1]"
        )));
    }
    if let Some(p) = d.threat.attempt_probability
        && !(0.0..=1.0).contains(&p)
    {
        return Err(bad(format!(
            "threat.attempt_probability = {p}: expected a probability in [0, 1]"
        )));
    }
    for (name, v) in [
        ("release.date", &d.release.date),
        ("release.expires", &d.release.expires),
    ] {
        if let Some(v) = v
            && crate::date::parse_iso(v).is_none()
        {
            return Err(bad(format!(
                "{name}: expected an ISO 8601 date (YYYY-MM-DD)"
            )));
        }
    }
    let hash = crate::evidence::FileHash::of(&path.display().to_string(), bytes);
    d.source = Some(hash.clone());
    Ok((d, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_plans_parse_and_typos_are_refused() {
        for p in ["probes/default.toml", "probes/quick.toml"] {
            use crate::probe::{canary, extraction, inversion, membership};
            let plan = Plan::load(Path::new(p)).unwrap();
            assert!(plan.get::<membership::Membership>().is_some(), "{p}");
            assert!(plan.get::<canary::Canary>().is_some(), "{p}");
            assert!(plan.get::<extraction::Extraction>().is_some(), "{p}");
            assert!(plan.get::<inversion::Inversion>().is_some(), "{p}");
        }
        let e = Plan::parse(
            "[[probe]]\nkind = \"membership\"\natacks = [\"loss\"]\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x.toml") && e.contains("atacks"), "{e}");
        let e = Plan::parse(
            "[[probe]]\nkind = \"membership\"\nfpr = [2.0]\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("fpr"), "{e}");
        let e = Plan::parse("[[probe]]\nkind = \"teleport\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("teleport"), "{e}");
    }
}
