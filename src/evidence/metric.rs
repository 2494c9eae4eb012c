//! Metric ids: every `Finding::metric` phiprobe writes, as one closed enum ([`Metric`]) that
//! serialises to the same `<area>.<measure>` ids `findings.json` and policies have always used.
//! Code names a metric by its constant (`metric::MIA_AUC`) or variant, so a mistyped id is a
//! compile error; a policy or findings file naming an unknown id is refused when it is read,
//! with the list of known ids.
//!
//! A probe that reports a new measure adds one line to the `metrics!` table below (the one
//! place every id is listed, so that policies, reports and `phiprobe probes` can name it).

use std::borrow::Cow;
use std::fmt;

/// Declares [`Metric`], its ids and one constant per metric.
macro_rules! metrics {
    ($( #[doc = $doc:literal] $konst:ident / $variant:ident = $id:literal; )*) => {
        /// A metric phiprobe reports: serialised as its id (`mia.auc`, `reid.prosecutor.max`, …).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $( #[doc = concat!("`", $id, "`: ", $doc)] $variant, )*
        }

        impl Metric {
            /// Every metric, in the order of their ids.
            pub const ALL: &[Metric] = &[$(Metric::$variant),*];

            /// The stable id written to `findings.json` and read from policies.
            pub const fn id(self) -> &'static str {
                match self {
                    $(Metric::$variant => $id,)*
                }
            }
        }

        $(
            #[doc = concat!("`", $id, "`: ", $doc)]
            pub const $konst: Metric = Metric::$variant;
        )*
    };
}

metrics! {
    /// Canary exposure.
    CANARY_EXPOSURE / CanaryExposure = "canary.exposure";
    /// Canary exposure.
    CANARY_EXPOSURE_MEAN / CanaryExposureMean = "canary.exposure.mean";
    /// Canary exposure.
    CANARY_EXPOSURE_TREND / CanaryExposureTrend = "canary.exposure.trend";
    /// Differential privacy.
    DP_CONSISTENCY_VIOLATIONS / DpConsistencyViolations = "dp.consistency_violations";
    /// Differential privacy.
    DP_EPSILON / DpEpsilon = "dp.epsilon";
    /// Differential privacy.
    DP_EPSILON_LB / DpEpsilonLb = "dp.epsilon_lb";
    /// Training-data extraction.
    EXTRACTION_COOCCURRENCE / ExtractionCooccurrence = "extraction.cooccurrence";
    /// Training-data extraction.
    EXTRACTION_EXCESS / ExtractionExcess = "extraction.excess";
    /// Training-data extraction.
    EXTRACTION_K_EXTRACTABLE / ExtractionKExtractable = "extraction.k_extractable";
    /// Training-data extraction.
    EXTRACTION_RATE / ExtractionRate = "extraction.rate";
    /// Attribute inference (model inversion).
    INFERENCE_DIFFERENCE / InferenceDifference = "inference.difference";
    /// Attribute inference (model inversion).
    INFERENCE_MEMBERSHIP_POSTERIOR / InferenceMembershipPosterior = "inference.membership_posterior";
    /// Attribute inference (model inversion).
    INFERENCE_RESIDUAL_RISK / InferenceResidualRisk = "inference.residual_risk";
    /// Attribute inference (model inversion).
    INFERENCE_TOP1 / InferenceTop1 = "inference.top1";
    /// Attribute inference (model inversion).
    INFERENCE_TOPK / InferenceTopk = "inference.topk";
    /// Linkage: the model's added identification probability over the release alone.
    LINKAGE_ADDED_RISK / LinkageAddedRisk = "linkage.added_risk";
    /// Linkage of model leakage to identity.
    LINKAGE_IDENTIFICATION_ABOVE / LinkageIdentificationAbove = "linkage.identification.above";
    /// Linkage of model leakage to identity.
    LINKAGE_IDENTIFICATION_MAX / LinkageIdentificationMax = "linkage.identification.max";
    /// Linkage of model leakage to identity.
    LINKAGE_IDENTIFICATION_MEAN / LinkageIdentificationMean = "linkage.identification.mean";
    /// Linkage of model leakage to identity.
    LINKAGE_MEMORISED_PATIENTS / LinkageMemorisedPatients = "linkage.memorised_patients";
    /// Linkage: patients the model's answers raise above a threshold the release alone keeps them under.
    LINKAGE_RAISED_ABOVE / LinkageRaisedAbove = "linkage.raised_above";
    /// Membership inference.
    MIA_ADVANTAGE / MiaAdvantage = "mia.advantage";
    /// Membership inference.
    MIA_AUC / MiaAuc = "mia.auc";
    /// Membership inference.
    MIA_BALANCED_ACCURACY / MiaBalancedAccuracy = "mia.balanced_accuracy";
    /// Membership inference.
    MIA_PPV / MiaPpv = "mia.ppv";
    /// Membership inference.
    MIA_SHIFT_AUC / MiaShiftAuc = "mia.shift_auc";
    /// Membership inference.
    MIA_TPR_AT_FPR / MiaTprAtFpr = "mia.tpr_at_fpr";
    /// Record reconstruction.
    RECONSTRUCTION_RATE / ReconstructionRate = "reconstruction.rate";
    /// Re-identification risk of the data.
    REID_CLASSES / ReidClasses = "reid.classes";
    /// Re-identification risk of the data.
    REID_DELTA_DISCLOSURE / ReidDeltaDisclosure = "reid.delta_disclosure";
    /// Re-identification risk of the data.
    REID_HOMOGENEOUS_PERSONS / ReidHomogeneousPersons = "reid.homogeneous.persons";
    /// Re-identification risk of the data.
    REID_JOURNALIST_AVG / ReidJournalistAvg = "reid.journalist.avg";
    /// Re-identification risk of the data.
    REID_JOURNALIST_MAX / ReidJournalistMax = "reid.journalist.max";
    /// Re-identification risk of the data.
    REID_JOURNALIST_RECORDS_AT_RISK / ReidJournalistRecordsAtRisk = "reid.journalist.records_at_risk";
    /// Re-identification risk of the data.
    REID_K / ReidK = "reid.k";
    /// Re-identification risk of the data.
    REID_K_ANONYMITY_VIOLATIONS / ReidKAnonymityViolations = "reid.k_anonymity.violations";
    /// Re-identification risk of the data.
    REID_LDIVERSITY_DISTINCT / ReidLdiversityDistinct = "reid.ldiversity.distinct";
    /// Re-identification risk of the data.
    REID_LDIVERSITY_ENTROPY / ReidLdiversityEntropy = "reid.ldiversity.entropy";
    /// Re-identification risk of the data.
    REID_LDIVERSITY_RECURSIVE / ReidLdiversityRecursive = "reid.ldiversity.recursive";
    /// Re-identification risk of the data.
    REID_MARKETER_AVG / ReidMarketerAvg = "reid.marketer.avg";
    /// Re-identification risk of the data.
    REID_MISSING_PERSONS / ReidMissingPersons = "reid.missing.persons";
    /// Re-identification risk of the data.
    REID_MULTI_TUPLE_PATIENTS / ReidMultiTuplePatients = "reid.multi_tuple_patients";
    /// Re-identification risk of the data.
    REID_PERSONS / ReidPersons = "reid.persons";
    /// Re-identification risk of the data.
    REID_PROSECUTOR_AVG / ReidProsecutorAvg = "reid.prosecutor.avg";
    /// Re-identification risk of the data.
    REID_PROSECUTOR_MAX / ReidProsecutorMax = "reid.prosecutor.max";
    /// Re-identification risk of the data.
    REID_PROSECUTOR_MIN / ReidProsecutorMin = "reid.prosecutor.min";
    /// Re-identification risk of the data.
    REID_PROSECUTOR_RECORDS_AT_RISK / ReidProsecutorRecordsAtRisk = "reid.prosecutor.records_at_risk";
    /// Re-identification risk of the data.
    REID_QI_DISTINCTION / ReidQiDistinction = "reid.qi.distinction";
    /// Re-identification risk of the data.
    REID_QI_SEPARATION / ReidQiSeparation = "reid.qi.separation";
    /// Re-identification risk of the data.
    REID_TCLOSENESS_EQUAL / ReidTclosenessEqual = "reid.tcloseness.equal";
    /// Re-identification risk of the data.
    REID_TCLOSENESS_ORDERED / ReidTclosenessOrdered = "reid.tcloseness.ordered";
    /// Re-identification risk of the data.
    REID_UNIQUENESS_POPULATION / ReidUniquenessPopulation = "reid.uniqueness.population";
    /// Re-identification risk of the data.
    REID_UNIQUENESS_POPULATION_COUNT / ReidUniquenessPopulationCount = "reid.uniqueness.population_count";
    /// Re-identification risk of the data.
    REID_UNIQUENESS_SAMPLE / ReidUniquenessSample = "reid.uniqueness.sample";
    /// Safe Harbor identifier categories present in the data.
    SAFEHARBOR_CATEGORIES_PRESENT / SafeharborCategoriesPresent = "safeharbor.categories_present";
    /// Model utility.
    UTILITY_VALIDATION_PERPLEXITY / UtilityValidationPerplexity = "utility.validation_perplexity";
}

/// Every id, in order (for messages and schema).
pub fn ids() -> impl Iterator<Item = &'static str> {
    Metric::ALL.iter().map(|m| m.id())
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A metric id that names no metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric id '{0}' (known: {known})", known = ids().collect::<Vec<_>>().join(", "))]
pub struct UnknownMetric(pub String);

impl std::str::FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .iter()
            .copied()
            .find(|m| m.id() == s)
            .ok_or_else(|| UnknownMetric(s.to_owned()))
    }
}

impl PartialEq<str> for Metric {
    fn eq(&self, other: &str) -> bool {
        self.id() == other
    }
}

impl serde::Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl<'de> serde::Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Metric {
    fn schema_name() -> Cow<'static, str> {
        "Metric".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A metric id: `<area>.<measure>`.",
            "type": "string",
            "enum": ids().collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sorted_and_area_dot_measure() {
        let all: Vec<&str> = ids().collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        for id in all {
            let (area, measure) = id.split_once('.').expect("area.measure");
            assert!(!area.is_empty() && !measure.is_empty(), "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._".contains(c)),
                "{id}"
            );
        }
    }

    #[test]
    fn metrics_round_trip_through_their_ids() {
        for m in Metric::ALL {
            let json = serde_json::to_string(m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.id()));
            assert_eq!(serde_json::from_str::<Metric>(&json).unwrap(), *m);
            assert_eq!(m.id().parse::<Metric>().unwrap(), *m);
        }
        let err = serde_json::from_str::<Metric>("\"mia.acu\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown metric id 'mia.acu'"),
            "{err}"
        );
        assert!("reid.k".parse::<Metric>().is_ok());
    }
}
