//! Metric ids: every `Finding::metric` phiprobe writes, spelled once. Code names them by
//! constant, so a mistyped id is a compile error; `findings.json` and policies keep the ids
//! (`<area>.<measure>`). A probe added later may declare its own ids beside its code (the
//! `<kind>.` prefix is its own).

/// `canary.exposure`: canary exposure.
pub const CANARY_EXPOSURE: &str = "canary.exposure";

/// `canary.exposure.mean`: canary exposure.
pub const CANARY_EXPOSURE_MEAN: &str = "canary.exposure.mean";

/// `canary.exposure.trend`: canary exposure.
pub const CANARY_EXPOSURE_TREND: &str = "canary.exposure.trend";

/// `dp.consistency_violations`: differential privacy.
pub const DP_CONSISTENCY_VIOLATIONS: &str = "dp.consistency_violations";

/// `dp.epsilon`: differential privacy.
pub const DP_EPSILON: &str = "dp.epsilon";

/// `dp.epsilon_lb`: differential privacy.
pub const DP_EPSILON_LB: &str = "dp.epsilon_lb";

/// `extraction.cooccurrence`: training-data extraction.
pub const EXTRACTION_COOCCURRENCE: &str = "extraction.cooccurrence";

/// `extraction.excess`: training-data extraction.
pub const EXTRACTION_EXCESS: &str = "extraction.excess";

/// `extraction.k_extractable`: training-data extraction.
pub const EXTRACTION_K_EXTRACTABLE: &str = "extraction.k_extractable";

/// `extraction.rate`: training-data extraction.
pub const EXTRACTION_RATE: &str = "extraction.rate";

/// `inference.difference`: attribute inference (model inversion).
pub const INFERENCE_DIFFERENCE: &str = "inference.difference";

/// `inference.membership_posterior`: attribute inference (model inversion).
pub const INFERENCE_MEMBERSHIP_POSTERIOR: &str = "inference.membership_posterior";

/// `inference.residual_risk`: attribute inference (model inversion).
pub const INFERENCE_RESIDUAL_RISK: &str = "inference.residual_risk";

/// `inference.top1`: attribute inference (model inversion).
pub const INFERENCE_TOP1: &str = "inference.top1";

/// `inference.topk`: attribute inference (model inversion).
pub const INFERENCE_TOPK: &str = "inference.topk";

/// `linkage.identification.above`: linkage of model leakage to identity.
pub const LINKAGE_IDENTIFICATION_ABOVE: &str = "linkage.identification.above";

/// `linkage.identification.max`: linkage of model leakage to identity.
pub const LINKAGE_IDENTIFICATION_MAX: &str = "linkage.identification.max";

/// `linkage.identification.mean`: linkage of model leakage to identity.
pub const LINKAGE_IDENTIFICATION_MEAN: &str = "linkage.identification.mean";

/// `linkage.memorised_patients`: linkage of model leakage to identity.
pub const LINKAGE_MEMORISED_PATIENTS: &str = "linkage.memorised_patients";

/// `mia.advantage`: membership inference.
pub const MIA_ADVANTAGE: &str = "mia.advantage";

/// `mia.auc`: membership inference.
pub const MIA_AUC: &str = "mia.auc";

/// `mia.balanced_accuracy`: membership inference.
pub const MIA_BALANCED_ACCURACY: &str = "mia.balanced_accuracy";

/// `mia.ppv`: membership inference.
pub const MIA_PPV: &str = "mia.ppv";

/// `mia.shift_auc`: membership inference.
pub const MIA_SHIFT_AUC: &str = "mia.shift_auc";

/// `mia.tpr_at_fpr`: membership inference.
pub const MIA_TPR_AT_FPR: &str = "mia.tpr_at_fpr";

/// `reconstruction.rate`: record reconstruction.
pub const RECONSTRUCTION_RATE: &str = "reconstruction.rate";

/// `reid.classes`: re-identification risk of the data.
pub const REID_CLASSES: &str = "reid.classes";

/// `reid.delta_disclosure`: re-identification risk of the data.
pub const REID_DELTA_DISCLOSURE: &str = "reid.delta_disclosure";

/// `reid.homogeneous.persons`: re-identification risk of the data.
pub const REID_HOMOGENEOUS_PERSONS: &str = "reid.homogeneous.persons";

/// `reid.journalist.avg`: re-identification risk of the data.
pub const REID_JOURNALIST_AVG: &str = "reid.journalist.avg";

/// `reid.journalist.max`: re-identification risk of the data.
pub const REID_JOURNALIST_MAX: &str = "reid.journalist.max";

/// `reid.journalist.records_at_risk`: re-identification risk of the data.
pub const REID_JOURNALIST_RECORDS_AT_RISK: &str = "reid.journalist.records_at_risk";

/// `reid.k`: re-identification risk of the data.
pub const REID_K: &str = "reid.k";

/// `reid.k_anonymity.violations`: re-identification risk of the data.
pub const REID_K_ANONYMITY_VIOLATIONS: &str = "reid.k_anonymity.violations";

/// `reid.ldiversity.distinct`: re-identification risk of the data.
pub const REID_LDIVERSITY_DISTINCT: &str = "reid.ldiversity.distinct";

/// `reid.ldiversity.entropy`: re-identification risk of the data.
pub const REID_LDIVERSITY_ENTROPY: &str = "reid.ldiversity.entropy";

/// `reid.ldiversity.recursive`: re-identification risk of the data.
pub const REID_LDIVERSITY_RECURSIVE: &str = "reid.ldiversity.recursive";

/// `reid.marketer.avg`: re-identification risk of the data.
pub const REID_MARKETER_AVG: &str = "reid.marketer.avg";

/// `reid.missing.persons`: re-identification risk of the data.
pub const REID_MISSING_PERSONS: &str = "reid.missing.persons";

/// `reid.multi_tuple_patients`: re-identification risk of the data.
pub const REID_MULTI_TUPLE_PATIENTS: &str = "reid.multi_tuple_patients";

/// `reid.persons`: re-identification risk of the data.
pub const REID_PERSONS: &str = "reid.persons";

/// `reid.prosecutor.avg`: re-identification risk of the data.
pub const REID_PROSECUTOR_AVG: &str = "reid.prosecutor.avg";

/// `reid.prosecutor.max`: re-identification risk of the data.
pub const REID_PROSECUTOR_MAX: &str = "reid.prosecutor.max";

/// `reid.prosecutor.min`: re-identification risk of the data.
pub const REID_PROSECUTOR_MIN: &str = "reid.prosecutor.min";

/// `reid.prosecutor.records_at_risk`: re-identification risk of the data.
pub const REID_PROSECUTOR_RECORDS_AT_RISK: &str = "reid.prosecutor.records_at_risk";

/// `reid.qi.distinction`: re-identification risk of the data.
pub const REID_QI_DISTINCTION: &str = "reid.qi.distinction";

/// `reid.qi.separation`: re-identification risk of the data.
pub const REID_QI_SEPARATION: &str = "reid.qi.separation";

/// `reid.tcloseness.equal`: re-identification risk of the data.
pub const REID_TCLOSENESS_EQUAL: &str = "reid.tcloseness.equal";

/// `reid.tcloseness.ordered`: re-identification risk of the data.
pub const REID_TCLOSENESS_ORDERED: &str = "reid.tcloseness.ordered";

/// `reid.uniqueness.population`: re-identification risk of the data.
pub const REID_UNIQUENESS_POPULATION: &str = "reid.uniqueness.population";

/// `reid.uniqueness.population_count`: re-identification risk of the data.
pub const REID_UNIQUENESS_POPULATION_COUNT: &str = "reid.uniqueness.population_count";

/// `reid.uniqueness.sample`: re-identification risk of the data.
pub const REID_UNIQUENESS_SAMPLE: &str = "reid.uniqueness.sample";

/// `safeharbor.categories_present`: Safe Harbor identifier categories present in the data.
pub const SAFEHARBOR_CATEGORIES_PRESENT: &str = "safeharbor.categories_present";

/// `utility.validation_perplexity`: model utility.
pub const UTILITY_VALIDATION_PERPLEXITY: &str = "utility.validation_perplexity";

/// Every id above, sorted.
pub const ALL: &[&str] = &[
    CANARY_EXPOSURE,
    CANARY_EXPOSURE_MEAN,
    CANARY_EXPOSURE_TREND,
    DP_CONSISTENCY_VIOLATIONS,
    DP_EPSILON,
    DP_EPSILON_LB,
    EXTRACTION_COOCCURRENCE,
    EXTRACTION_EXCESS,
    EXTRACTION_K_EXTRACTABLE,
    EXTRACTION_RATE,
    INFERENCE_DIFFERENCE,
    INFERENCE_MEMBERSHIP_POSTERIOR,
    INFERENCE_RESIDUAL_RISK,
    INFERENCE_TOP1,
    INFERENCE_TOPK,
    LINKAGE_IDENTIFICATION_ABOVE,
    LINKAGE_IDENTIFICATION_MAX,
    LINKAGE_IDENTIFICATION_MEAN,
    LINKAGE_MEMORISED_PATIENTS,
    MIA_ADVANTAGE,
    MIA_AUC,
    MIA_BALANCED_ACCURACY,
    MIA_PPV,
    MIA_SHIFT_AUC,
    MIA_TPR_AT_FPR,
    RECONSTRUCTION_RATE,
    REID_CLASSES,
    REID_DELTA_DISCLOSURE,
    REID_HOMOGENEOUS_PERSONS,
    REID_JOURNALIST_AVG,
    REID_JOURNALIST_MAX,
    REID_JOURNALIST_RECORDS_AT_RISK,
    REID_K,
    REID_K_ANONYMITY_VIOLATIONS,
    REID_LDIVERSITY_DISTINCT,
    REID_LDIVERSITY_ENTROPY,
    REID_LDIVERSITY_RECURSIVE,
    REID_MARKETER_AVG,
    REID_MISSING_PERSONS,
    REID_MULTI_TUPLE_PATIENTS,
    REID_PERSONS,
    REID_PROSECUTOR_AVG,
    REID_PROSECUTOR_MAX,
    REID_PROSECUTOR_MIN,
    REID_PROSECUTOR_RECORDS_AT_RISK,
    REID_QI_DISTINCTION,
    REID_QI_SEPARATION,
    REID_TCLOSENESS_EQUAL,
    REID_TCLOSENESS_ORDERED,
    REID_UNIQUENESS_POPULATION,
    REID_UNIQUENESS_POPULATION_COUNT,
    REID_UNIQUENESS_SAMPLE,
    SAFEHARBOR_CATEGORIES_PRESENT,
    UTILITY_VALIDATION_PERPLEXITY,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn ids_are_unique_sorted_and_area_dot_measure() {
        assert!(ALL.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        for id in ALL {
            let (area, measure) = id.split_once('.').expect("area.measure");
            assert!(!area.is_empty() && !measure.is_empty(), "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._".contains(c)),
                "{id}"
            );
        }
    }
}
