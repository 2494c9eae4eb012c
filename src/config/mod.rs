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

impl Plan {
    /// Parses a plan's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |m: String| Error::Parse {
            path: path.to_owned(),
            format: "probe plan (TOML)".into(),
            message: m,
        };
        let raw: RawPlan = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
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
                    if plan.membership.is_some() {
                        return Err(bad("two membership probes; merge them into one".into()));
                    }
                    let s: membership::Settings = t
                        .try_into()
                        .map_err(|e| bad(format!("[[probe]] membership: {e}")))?;
                    s.validate()
                        .map_err(|m| bad(format!("[[probe]] membership: {m}")))?;
                    plan.membership = Some(s);
                }
                "canary" => {
                    if plan.canary.is_some() {
                        return Err(bad("two canary probes; merge them into one".into()));
                    }
                    let s: canary::Settings = t
                        .try_into()
                        .map_err(|e| bad(format!("[[probe]] canary: {e}")))?;
                    s.validate()
                        .map_err(|m| bad(format!("[[probe]] canary: {m}")))?;
                    plan.canary = Some(s);
                }
                "extraction" => {
                    if plan.extraction.is_some() {
                        return Err(bad("two extraction probes; merge them into one".into()));
                    }
                    let s: extraction::Settings = t
                        .try_into()
                        .map_err(|e| bad(format!("[[probe]] extraction: {e}")))?;
                    s.validate()
                        .map_err(|m| bad(format!("[[probe]] extraction: {m}")))?;
                    plan.extraction = Some(s);
                }
                "inversion" => {
                    if plan.inversion.is_some() {
                        return Err(bad("two inversion probes; merge them into one".into()));
                    }
                    let s: inversion::Settings = t
                        .try_into()
                        .map_err(|e| bad(format!("[[probe]] inversion: {e}")))?;
                    s.validate()
                        .map_err(|m| bad(format!("[[probe]] inversion: {m}")))?;
                    plan.inversion = Some(s);
                }
                "dp_audit" => {
                    if plan.dp_audit.is_some() {
                        return Err(bad("two dp_audit probes; merge them into one".into()));
                    }
                    let s: dp_audit::Settings = t
                        .try_into()
                        .map_err(|e| bad(format!("[[probe]] dp_audit: {e}")))?;
                    s.validate()
                        .map_err(|m| bad(format!("[[probe]] dp_audit: {m}")))?;
                    plan.dp_audit = Some(s);
                }
                other => {
                    return Err(bad(format!(
                        "[[probe]] #{}: kind '{other}' is not available in this release (available: {})",
                        i + 1,
                        KINDS.join(", ")
                    )));
                }
            }
        }
        Ok(plan)
    }

    /// Reads a plan file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

/// Reads a `determination.toml` (the Expert Determination facts phiprobe cannot measure) and
/// its hash for the manifest. Unknown keys are refused, so a misspelt fact never silently
/// disappears from the report.
pub fn load_determination(
    path: &Path,
) -> Result<(crate::evidence::Determination, crate::evidence::FileHash)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let bad = |message: String| Error::Parse {
        path: path.to_owned(),
        format: "determination (TOML)".into(),
        message,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let mut d: crate::evidence::Determination =
        toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    if d.source.is_some() {
        return Err(bad("`source` is set by phiprobe; remove it".into()));
    }
    if let Some(m) = &d.release.model
        && !["public", "dua", "enclave", "model-api"].contains(&m.as_str())
    {
        return Err(bad(format!(
            "release.model = '{m}': expected public, dua, enclave or model-api"
        )));
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
                "{name} = '{v}': expected an ISO 8601 date (YYYY-MM-DD)"
            )));
        }
    }
    let hash = crate::evidence::FileHash::of(&path.display().to_string(), &bytes);
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
