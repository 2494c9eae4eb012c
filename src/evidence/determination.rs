//! Facts of an Expert Determination that phiprobe cannot measure: who the expert is, who
//! receives the release and under which terms. They come from a `determination.toml` and are
//! kept verbatim in `findings.json`; the report marks every missing one as "not supplied",
//! never inventing it.

use serde::{Deserialize, Serialize};

/// The expert who makes the determination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Expert {
    /// Full name.
    pub name: Option<String>,
    /// Qualifications summary (degrees, experience with health-data de-identification).
    pub qualifications: Option<String>,
    /// Organisation.
    pub organisation: Option<String>,
    /// Contact (address or e-mail of the expert's office).
    pub contact: Option<String>,
}

/// The release the determination covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Release {
    /// Title of the release (data set and/or model).
    pub title: Option<String>,
    /// Anticipated recipient(s).
    pub recipients: Option<String>,
    /// `public`, `dua` (data-use agreement), `enclave` or `model-api`.
    pub model: Option<String>,
    /// Business or research purpose.
    pub purpose: Option<String>,
    /// Intended use by the recipient.
    pub intended_use: Option<String>,
    /// How the data and model flow from the covered entity to the recipient.
    pub data_flow: Option<String>,
    /// Label of the quasi-identifier set that describes the released data (default: every
    /// set evaluated must meet the threshold).
    pub qi_set: Option<String>,
    /// Date of the determination (ISO 8601).
    pub date: Option<String>,
    /// Date the determination expires (ISO 8601).
    pub expires: Option<String>,
}

/// The threat model: who might attempt re-identification, and how likely an attempt is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Threat {
    /// Identification-risk threshold of the determination (default: the run's threshold).
    pub threshold: Option<f64>,
    /// Why that threshold (precedent, invasion-of-privacy level).
    pub threshold_rationale: Option<String>,
    /// Invasion-of-privacy level: `low`, `medium`, `high`.
    pub invasion_of_privacy: Option<String>,
    /// Probability of a re-identification attempt (public release: 1).
    pub attempt_probability: Option<f64>,
    /// The reasoning behind it (motives and capacity, mitigating controls).
    pub attempt_rationale: Option<String>,
    /// External data sources considered reasonably available to the recipient.
    pub external_sources: Vec<String>,
}

/// Privacy-impact-assessment facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Pia {
    /// System or processing description.
    pub system: Option<String>,
    /// Where the data comes from and when it was extracted.
    pub sources: Option<String>,
    /// Retention period and disposal.
    pub retention: Option<String>,
    /// Why the processing is necessary and proportionate.
    pub necessity: Option<String>,
    /// Internal and external sharing.
    pub sharing: Option<String>,
    /// Notice given to individuals and consent obtained.
    pub notice: Option<String>,
    /// How individuals exercise access, correction and redress.
    pub rights: Option<String>,
    /// Security controls in place.
    pub security_controls: Vec<String>,
    /// Sign-offs.
    pub signoff: Vec<Signoff>,
}

/// One sign-off of the PIA.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Signoff {
    /// Role (privacy officer, security officer, DRB / IRB chair …).
    pub role: String,
    /// Name.
    pub name: Option<String>,
    /// Date (ISO 8601).
    pub date: Option<String>,
}

/// The whole `determination.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Determination {
    /// The expert.
    #[serde(default)]
    pub expert: Expert,
    /// The release.
    #[serde(default)]
    pub release: Release,
    /// The threat model.
    #[serde(default)]
    pub threat: Threat,
    /// Terms of the data-use agreement the determination relies on.
    #[serde(default)]
    pub dua_terms: Vec<String>,
    /// Further conditions of the determination.
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Further re-evaluation triggers.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// Further limitations the expert states.
    #[serde(default)]
    pub limitations: Vec<String>,
    /// Further assumptions the expert states.
    #[serde(default)]
    pub assumptions: Vec<String>,
    /// Privacy-impact-assessment facts.
    #[serde(default)]
    pub pia: Pia,
    /// The file these facts were read from (set by phiprobe, not written in the TOML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::FileHash>,
}
