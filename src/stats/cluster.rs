//! The patient as the unit: per-patient aggregation of record scores and bootstraps that
//! resample patients (clusters), not records.
//!
//! Membership of a health dataset is assigned per patient, and a patient's records share
//! their patient's features and fate: counting records as independent makes intervals too
//! narrow (Field & Welsh 2007, "Bootstrapping clustered data", JRSS B 69(3): the cluster
//! bootstrap — resample whole clusters — is consistent when clusters are independent). Here a
//! cluster is a patient and the strata are members and non-members, which are assigned per
//! patient, so every resample keeps both classes' patient counts.

use super::Rng;
use super::roc::{descending, quantile_sorted};

/// How a patient's record scores become one patient score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// The highest record score: the attacker's best record of the patient (the one an
    /// attacker holding all of a patient's records would test).
    Max,
    /// The mean record score.
    Mean,
}

impl Aggregation {
    /// The id recorded with a finding.
    pub fn id(self) -> &'static str {
        match self {
            Self::Max => "max",
            Self::Mean => "mean",
        }
    }
}

/// Per-patient scores: `(scores, members)` with one entry per patient that has at least one
/// finite score, in order of the patient's first record. A patient is a member when its first
/// scored record is (membership is assigned per patient; see [`mixed_clusters`]).
pub fn aggregate(
    scores: &[f64],
    members: &[bool],
    clusters: &[u32],
    how: Aggregation,
) -> (Vec<f64>, Vec<bool>) {
    let mut slot: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut acc: Vec<(f64, u32, bool)> = Vec::new();
    for ((&s, &m), &c) in scores.iter().zip(members).zip(clusters) {
        if !s.is_finite() {
            continue;
        }
        let i = *slot.entry(c).or_insert_with(|| {
            acc.push((
                match how {
                    Aggregation::Max => f64::NEG_INFINITY,
                    Aggregation::Mean => 0.0,
                },
                0,
                m,
            ));
            acc.len() - 1
        });
        let a = &mut acc[i];
        match how {
            Aggregation::Max => a.0 = a.0.max(s),
            Aggregation::Mean => a.0 += s,
        }
        a.1 += 1;
    }
    acc.into_iter()
        .map(|(v, n, m)| match how {
            Aggregation::Max => (v, m),
            Aggregation::Mean => (v / f64::from(n), m),
        })
        .unzip()
}

/// Patients whose records disagree on membership (a split that was not made per patient).
pub fn mixed_clusters(members: &[bool], clusters: &[u32]) -> usize {
    let mut seen: std::collections::HashMap<u32, (bool, bool)> = std::collections::HashMap::new();
    for (&m, &c) in members.iter().zip(clusters) {
        let e = seen.entry(c).or_insert((false, false));
        if m {
            e.0 = true;
        } else {
            e.1 = true;
        }
    }
    seen.values().filter(|(a, b)| *a && *b).count()
}

/// Whether any patient has more than one record (otherwise patient = record).
pub fn clustered(clusters: &[u32]) -> bool {
    let mut seen = std::collections::HashSet::new();
    clusters.iter().any(|c| !seen.insert(*c))
}

/// Percentile cluster-bootstrap interval of the record-level AUC: member patients and
/// non-member patients are resampled separately, with replacement, and every record of a drawn
/// patient enters with its patient's multiplicity. Non-finite scores are left out. Resample `r`
/// draws from `Rng::derive(seed, label, r)`. `None` without both classes.
pub fn cluster_bootstrap_auc(
    scores: &[f64],
    members: &[bool],
    clusters: &[u32],
    resamples: usize,
    confidence: f64,
    seed: u64,
    label: &str,
) -> Option<(f64, f64)> {
    let keep: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i].is_finite())
        .collect();
    // Dense patient numbers per stratum; a patient's stratum is its first record's.
    let mut number: std::collections::HashMap<u32, (bool, usize)> =
        std::collections::HashMap::new();
    let (mut np, mut nn) = (0usize, 0usize);
    let mut patient_of = Vec::with_capacity(keep.len());
    for &i in &keep {
        let (m, k) = *number.entry(clusters[i]).or_insert_with(|| {
            if members[i] {
                np += 1;
                (true, np - 1)
            } else {
                nn += 1;
                (false, nn - 1)
            }
        });
        patient_of.push((m, k));
    }
    if np == 0 || nn == 0 || resamples == 0 {
        return None;
    }
    let s: Vec<f64> = keep.iter().map(|&i| scores[i]).collect();
    let order = descending(&s);
    let mut wp = vec![0u64; np];
    let mut wn = vec![0u64; nn];
    let mut aucs = Vec::with_capacity(resamples);
    for r in 0..resamples {
        let mut rng = Rng::derive(seed, label, r as u64);
        wp.fill(0);
        wn.fill(0);
        for _ in 0..np {
            wp[rng.index(np)] += 1;
        }
        for _ in 0..nn {
            wn[rng.index(nn)] += 1;
        }
        // One sweep from the lowest score up: each member record counts the non-member weight
        // strictly below it plus half the weight tied with it.
        let (mut below, mut twice, mut total_p) = (0u128, 0u128, 0u128);
        let mut j = order.len();
        while j > 0 {
            let v = s[order[j - 1] as usize];
            let (mut gp, mut gn) = (0u128, 0u128);
            while j > 0 && s[order[j - 1] as usize] == v {
                let (m, k) = patient_of[order[j - 1] as usize];
                if m {
                    gp += u128::from(wp[k]);
                } else {
                    gn += u128::from(wn[k]);
                }
                j -= 1;
            }
            twice += gp * (2 * below + gn);
            below += gn;
            total_p += gp;
        }
        if total_p > 0 && below > 0 {
            aucs.push(twice as f64 / (2.0 * total_p as f64 * below as f64));
        }
    }
    if aucs.is_empty() {
        return None;
    }
    aucs.sort_unstable_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Some((
        quantile_sorted(&aucs, alpha / 2.0),
        quantile_sorted(&aucs, 1.0 - alpha / 2.0),
    ))
}

/// Percentile bootstrap interval of `mean(xs) − mean(ys)` (or of `mean(xs)` when `ys` is
/// empty), each sample resampled on its own; one value per patient, so patients are the unit.
/// `None` when `xs` is empty.
pub fn bootstrap_mean_difference(
    xs: &[f64],
    ys: &[f64],
    resamples: usize,
    confidence: f64,
    seed: u64,
    label: &str,
) -> Option<(f64, f64)> {
    if xs.is_empty() || resamples == 0 {
        return None;
    }
    let mean_of = |v: &[f64], rng: &mut Rng| -> f64 {
        (0..v.len()).map(|_| v[rng.index(v.len())]).sum::<f64>() / v.len() as f64
    };
    let mut d: Vec<f64> = (0..resamples)
        .map(|r| {
            let mut rng = Rng::derive(seed, label, r as u64);
            let a = mean_of(xs, &mut rng);
            if ys.is_empty() {
                a
            } else {
                a - mean_of(ys, &mut rng)
            }
        })
        .collect();
    d.sort_unstable_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Some((
        quantile_sorted(&d, alpha / 2.0),
        quantile_sorted(&d, 1.0 - alpha / 2.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::roc::{Roc, bootstrap_auc};

    #[test]
    fn aggregation_takes_each_patients_max_or_mean_and_skips_unscored_records() {
        let scores = [1.0, 3.0, f64::NAN, 2.0, 0.0];
        let members = [true, true, false, false, false];
        let clusters = [7, 7, 9, 9, 4];
        assert_eq!(
            aggregate(&scores, &members, &clusters, Aggregation::Max),
            (vec![3.0, 2.0, 0.0], vec![true, false, false])
        );
        assert_eq!(
            aggregate(&scores, &members, &clusters, Aggregation::Mean).0,
            vec![2.0, 2.0, 0.0]
        );
        assert!(clustered(&clusters));
        assert!(!clustered(&[1, 2, 3]));
        assert_eq!(mixed_clusters(&[true, false, true], &[1, 1, 2]), 1);
    }

    #[test]
    fn one_record_per_patient_gives_the_record_bootstraps_sampling_distribution() {
        // With singleton clusters the cluster bootstrap is the stratified record bootstrap;
        // the two use different streams, so compare the intervals loosely.
        let mut rng = Rng::new(3);
        let n = 400;
        let members: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let scores: Vec<f64> = members
            .iter()
            .map(|&m| rng.normal() + if m { 0.5 } else { 0.0 })
            .collect();
        let clusters: Vec<u32> = (0..n as u32).collect();
        let a = cluster_bootstrap_auc(&scores, &members, &clusters, 2000, 0.95, 1, "t").unwrap();
        let b = bootstrap_auc(&scores, &members, 2000, 0.95, 1, "t").unwrap();
        assert!(
            (a.0 - b.0).abs() < 0.01 && (a.1 - b.1).abs() < 0.01,
            "{a:?} {b:?}"
        );
        let auc = Roc::new(&scores, &members).auc();
        assert!(a.0 < auc && auc < a.1);
    }

    /// Coverage on clustered scores with no membership signal (true AUC 0.5): each patient
    /// has its own level, shared by its eight records. The record bootstrap treats 640
    /// correlated records as independent and under-covers; the cluster bootstrap stays near
    /// the nominal 95 %.
    #[test]
    fn the_cluster_bootstrap_covers_where_the_record_bootstrap_does_not() {
        let (patients, per, trials) = (40usize, 8usize, 200u64);
        let (mut cluster_hits, mut record_hits) = (0u32, 0u32);
        for t in 0..trials {
            let mut rng = Rng::derive(11, "coverage", t);
            let mut scores = Vec::new();
            let mut members = Vec::new();
            let mut clusters = Vec::new();
            for p in 0..2 * patients {
                let level = rng.normal();
                for _ in 0..per {
                    scores.push(level + 0.3 * rng.normal());
                    members.push(p < patients);
                    clusters.push(p as u32);
                }
            }
            let (lo, hi) =
                cluster_bootstrap_auc(&scores, &members, &clusters, 200, 0.95, t, "c").unwrap();
            cluster_hits += u32::from(lo <= 0.5 && 0.5 <= hi);
            let (lo, hi) = bootstrap_auc(&scores, &members, 200, 0.95, t, "r").unwrap();
            record_hits += u32::from(lo <= 0.5 && 0.5 <= hi);
        }
        let cover = |h: u32| f64::from(h) / trials as f64;
        eprintln!(
            "coverage of AUC 0.5 over {trials} trials: cluster {}, record {}",
            cover(cluster_hits),
            cover(record_hits)
        );
        assert!(
            (0.88..=0.99).contains(&cover(cluster_hits)),
            "cluster bootstrap coverage {}",
            cover(cluster_hits)
        );
        assert!(
            cover(record_hits) < 0.75,
            "record bootstrap coverage {}",
            cover(record_hits)
        );
    }

    #[test]
    fn mean_difference_interval_brackets_the_difference_and_shrinks_with_n() {
        let mut rng = Rng::new(5);
        let small_x: Vec<f64> = (0..30).map(|_| 0.2 + 0.1 * rng.normal()).collect();
        let small_y: Vec<f64> = (0..30).map(|_| 0.1 + 0.1 * rng.normal()).collect();
        let big_x: Vec<f64> = (0..3000).map(|_| 0.2 + 0.1 * rng.normal()).collect();
        let big_y: Vec<f64> = (0..3000).map(|_| 0.1 + 0.1 * rng.normal()).collect();
        let (a, b) = bootstrap_mean_difference(&small_x, &small_y, 1000, 0.95, 1, "d").unwrap();
        let (c, d) = bootstrap_mean_difference(&big_x, &big_y, 1000, 0.95, 1, "d").unwrap();
        assert!(c < 0.1 && 0.1 < d, "{c} {d}");
        assert!(d - c < (b - a) / 5.0);
        // Normal theory: half-width ≈ 1.96·√(2·0.01/3000) ≈ 0.0051.
        assert!(((d - c) / 2.0 - 0.0051).abs() < 0.0008, "{}", (d - c) / 2.0);
        assert!(bootstrap_mean_difference(&[], &small_y, 10, 0.95, 1, "d").is_none());
    }
}
