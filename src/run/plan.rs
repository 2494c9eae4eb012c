//! Probe plans: `probes/*.toml` → resolved settings.
//!
//! A plan has an optional `[run]` table and one `[[probe]]` table per probe; each probe table
//! names its `kind` and that kind's settings (unknown keys are refused, so a typo cannot silently
//! fall back to a default). `phiprobe probes` lists the kinds and their settings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::probe::{canary, dp_audit, extraction, inversion, membership};
use crate::{Error, Result};

/// `[run]`: settings shared by every probe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Seed (a `--seed` flag overrides it).
    pub seed: Option<u64>,
}

/// A resolved plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `[run]`.
    pub run: RunSettings,
    /// The membership probe's settings, when the plan has one.
    pub membership: Option<membership::Settings>,
    /// The canary probe's settings, when the plan has one.
    pub canary: Option<canary::Settings>,
    /// The extraction probe's settings, when the plan has one.
    pub extraction: Option<extraction::Settings>,
    /// The inversion probe's settings, when the plan has one.
    pub inversion: Option<inversion::Settings>,
    /// The DP audit's settings, when the plan has one.
    #[serde(default)]
    pub dp_audit: Option<dp_audit::Settings>,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            run: RunSettings::default(),
            membership: Some(membership::Settings::default()),
            canary: Some(canary::Settings::default()),
            extraction: Some(extraction::Settings::default()),
            inversion: Some(inversion::Settings::default()),
            dp_audit: Some(dp_audit::Settings::default()),
        }
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

/// Probe kinds this release runs.
pub const KINDS: [&str; 5] = [
    "membership",
    "canary",
    "extraction",
    "inversion",
    "dp_audit",
];

/// A probe's settings from its `[[probe]]` table, checked; errors name the probe and the key,
/// never a value.
fn probe_settings<T: serde::de::DeserializeOwned>(
    t: toml::Table,
    kind: &str,
    validate: impl FnOnce(&T) -> std::result::Result<(), String>,
) -> std::result::Result<T, String> {
    let s: T = t.try_into().map_err(|e: toml::de::Error| {
        format!(
            "[[probe]] {kind}: {}{}",
            crate::redact::serde_kind(e.message()),
            crate::redact::toml_key(&e)
        )
    })?;
    validate(&s).map_err(|m| format!("[[probe]] {kind}: {m}"))?;
    Ok(s)
}

/// Stores a probe's settings, refusing a second probe of the same kind.
fn set_once<T>(slot: &mut Option<T>, s: T, kind: &str) -> std::result::Result<(), String> {
    if slot.is_some() {
        return Err(format!("two {kind} probes; merge them into one"));
    }
    *slot = Some(s);
    Ok(())
}

impl Plan {
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
            membership: None,
            canary: None,
            extraction: None,
            inversion: None,
            dp_audit: None,
        };
        for (i, mut t) in raw.probe.into_iter().enumerate() {
            let kind = match t.remove("kind") {
                Some(toml::Value::String(k)) => k,
                _ => return Err(bad(format!("[[probe]] #{}: missing `kind`", i + 1))),
            };
            match kind.as_str() {
                "membership" => {
                    let s: membership::Settings =
                        probe_settings(t, "membership", membership::Settings::validate)
                            .map_err(bad)?;
                    set_once(&mut plan.membership, s, "membership").map_err(bad)?;
                }
                "canary" => {
                    let s: canary::Settings =
                        probe_settings(t, "canary", canary::Settings::validate).map_err(bad)?;
                    set_once(&mut plan.canary, s, "canary").map_err(bad)?;
                }
                "extraction" => {
                    let s: extraction::Settings =
                        probe_settings(t, "extraction", extraction::Settings::validate)
                            .map_err(bad)?;
                    set_once(&mut plan.extraction, s, "extraction").map_err(bad)?;
                }
                "inversion" => {
                    let s: inversion::Settings =
                        probe_settings(t, "inversion", inversion::Settings::validate)
                            .map_err(bad)?;
                    set_once(&mut plan.inversion, s, "inversion").map_err(bad)?;
                }
                "dp_audit" => {
                    let s: dp_audit::Settings =
                        probe_settings(t, "dp_audit", dp_audit::Settings::validate).map_err(bad)?;
                    set_once(&mut plan.dp_audit, s, "dp_audit").map_err(bad)?;
                }
                other => {
                    return Err(bad(format!(
                        "[[probe]] #{}: kind {} is not available in this release (available: {})",
                        i + 1,
                        crate::redact::plain_name(other)
                            .map_or_else(|| "(not a plain name)".to_owned(), |k| format!("'{k}'")),
                        KINDS.join(", ")
                    )));
                }
            }
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
            let plan = Plan::load(Path::new(p)).unwrap();
            assert!(plan.membership.is_some(), "{p}");
            assert!(plan.canary.is_some(), "{p}");
            assert!(plan.extraction.is_some(), "{p}");
            assert!(plan.inversion.is_some(), "{p}");
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
