//! Sample-based identity risk: prosecutor, journalist and marketer (El Emam 2013; ARX's
//! `RiskModelSampleSummary`), the risk-threshold ↔ class-size mapping, and the
//! Benedetti–Franconi individual risk (Benedetti & Franconi 1998; sdcMicro `indivRisk`).

use serde::{Deserialize, Serialize};

/// How a risk threshold t becomes a minimum class size k(t). Always reported.
///
/// `strict` (the default) is the one rule consistent with the risk test used everywhere else
/// (a person is at risk when 1/f > t): k is the smallest class size with 1/f ≤ t, so "k-anonymous"
/// and "not at risk" are the same statement. The other rules reproduce published tables; when
/// their k differs from the strict one the k-anonymity finding says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum KRule {
    /// k = ⌈1/t⌉, the smallest class size f with 1/f ≤ t (0.09 ↔ 12, 0.1 ↔ 10, 0.33 ↔ 4).
    #[default]
    Strict,
    /// k = ⌊1/t⌋: El Emam's cell-size precedents (0.33 ↔ 3, 0.2 ↔ 5, 0.09 ↔ 11, 0.05 ↔ 20);
    /// classes of ⌊1/t⌋ < 1/t count as k-anonymous though 1/f > t.
    ElEmam,
    /// ARX's `ParameterTranslation`: ⌊1/t⌋, plus one when 1/⌊1/t⌋ exceeds t by ≥ 1 % of t
    /// (0.09 ↔ 12, 0.33 ↔ 4).
    Arx,
}

impl KRule {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::ElEmam => "el-emam",
            Self::Arx => "arx",
        }
    }

    /// Minimum class size for threshold `t` (0 < t ≤ 1).
    pub fn k_for(self, t: f64) -> u64 {
        let base = (1.0 / t + 1e-12).floor().max(1.0);
        match self {
            // The tolerance keeps 1/0.1 (and its like) from rounding up past an exact quotient.
            Self::Strict => (1.0 / t - 1e-9).ceil().max(1.0) as u64,
            Self::ElEmam => base as u64,
            Self::Arx => {
                if 1.0 / base - t >= 0.01 * t {
                    base as u64 + 1
                } else {
                    base as u64
                }
            }
        }
    }
}

/// Prosecutor risk from a class-size histogram (population = sample).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prosecutor {
    /// Persons n.
    pub n: u64,
    /// Classes J.
    pub classes: u64,
    /// Smallest class (k).
    pub k: u64,
    /// 1 / smallest class.
    pub max: f64,
    /// 1 / largest class.
    pub min: f64,
    /// J / n (record-weighted mean of 1/f_j).
    pub avg: f64,
    /// Persons in classes with 1/f > t (strict, raw threshold as in ARX).
    pub at_risk: u64,
    /// Persons in classes of size 1.
    pub uniques: u64,
}

/// Prosecutor risk summary for threshold `t` (ARX semantics; an empty sample gives zeros).
pub fn prosecutor(hist: &[(u64, u64)], t: f64) -> Prosecutor {
    let n: u64 = hist.iter().map(|(s, c)| s * c).sum();
    let classes: u64 = hist.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return Prosecutor {
            n: 0,
            classes: 0,
            k: 0,
            max: 0.0,
            min: 0.0,
            avg: 0.0,
            at_risk: 0,
            uniques: 0,
        };
    }
    let k = hist.first().map_or(0, |h| h.0);
    let largest = hist.last().map_or(0, |h| h.0);
    let at_risk = hist
        .iter()
        .filter(|(s, _)| 1.0 / (*s as f64) > t)
        .map(|(s, c)| s * c)
        .sum();
    let uniques = hist.iter().find(|(s, _)| *s == 1).map_or(0, |h| h.1);
    Prosecutor {
        n,
        classes,
        k,
        max: 1.0 / k as f64,
        min: 1.0 / largest as f64,
        avg: classes as f64 / n as f64,
        at_risk,
        uniques,
    }
}

/// Motwani & Xu's (2007) α-distinction (J/n) and α-separation (share of unordered pairs of
/// persons that differ on the QIs, 1 − Σ C(f_j, 2) / C(n, 2)), as in ARX's `RiskModelAttributes`.
pub fn distinction_separation(hist: &[(u64, u64)]) -> (f64, f64) {
    let n: u64 = hist.iter().map(|(s, c)| s * c).sum();
    let classes: u64 = hist.iter().map(|(_, c)| c).sum();
    if n < 2 {
        return (if n == 0 { 0.0 } else { 1.0 }, 1.0);
    }
    let pairs = |f: u64| (f as f64) * (f as f64 - 1.0) / 2.0;
    let same: f64 = hist.iter().map(|&(s, c)| c as f64 * pairs(s)).sum();
    (classes as f64 / n as f64, 1.0 - same / pairs(n))
}

/// Journalist and marketer risk against population class sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Journalist {
    /// 1 / min F_j over classes in the sample.
    pub max: f64,
    /// 1 / max F_j.
    pub min: f64,
    /// ARX's average: max(J / ΣF_j, marketer).
    pub avg: f64,
    /// Persons in classes with 1/F_j > t.
    pub at_risk: u64,
    /// Marketer risk (1/n) Σ f_j / F_j.
    pub marketer: f64,
}

/// Journalist / marketer risk from (f_j, F_j) pairs, F_j ≥ f_j.
pub fn journalist(pairs: &[(u64, f64)], t: f64) -> Journalist {
    let n: u64 = pairs.iter().map(|p| p.0).sum();
    if n == 0 {
        return Journalist {
            max: 0.0,
            min: 0.0,
            avg: 0.0,
            at_risk: 0,
            marketer: 0.0,
        };
    }
    let min_f = pairs.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let max_f = pairs.iter().map(|p| p.1).fold(0.0, f64::max);
    let sum_f: f64 = pairs.iter().map(|p| p.1).sum();
    let marketer = pairs.iter().map(|(f, pf)| *f as f64 / pf).sum::<f64>() / n as f64;
    let at_risk = pairs.iter().filter(|p| 1.0 / p.1 > t).map(|p| p.0).sum();
    Journalist {
        max: 1.0 / min_f,
        min: 1.0 / max_f,
        avg: (pairs.len() as f64 / sum_f).max(marketer),
        at_risk,
        marketer,
    }
}

/// Benedetti–Franconi individual risk r = E[1/F | f] under the negative-binomial
/// super-population model with p = f/F ("approx" form for f ≥ 3), as in sdcMicro's
/// `indivRisk` (reference/reid.md §2.2). F = f gives 1/f. Returns NaN for p > 1.
pub fn benedetti_franconi(f: u64, big_f: f64) -> f64 {
    let ff = f as f64;
    if (big_f - ff).abs() < 1e-12 {
        return 1.0 / ff;
    }
    let p = ff / big_f;
    if !(0.0..1.0).contains(&p) {
        return f64::NAN;
    }
    let odds = p / (1.0 - p);
    match f {
        0 => 0.0,
        1 => odds * (1.0 / p).ln(),
        2 => odds - odds * odds * (1.0 / p).ln(),
        _ => p / (ff - (1.0 - p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_to_k_both_rules() {
        // reference/reid.md §1.6 (ARX, reproduced) and §6.3 (El Emam's precedents).
        let arx = [
            (0.5, 2),
            (0.33, 4),
            (1.0 / 3.0, 3),
            (0.2, 5),
            (0.1, 10),
            (0.09, 12),
            (0.075, 14),
            (0.05, 20),
            (0.04, 25),
        ];
        for (t, k) in arx {
            assert_eq!(KRule::Arx.k_for(t), k, "arx t={t}");
        }
        for (t, k) in [(0.33, 3), (0.2, 5), (0.09, 11), (0.05, 20)] {
            assert_eq!(KRule::ElEmam.k_for(t), k, "el-emam t={t}");
        }
        // Strict: exactly the class sizes the risk test 1/f > t does not flag.
        for t in [
            0.5,
            0.33,
            1.0 / 3.0,
            0.2,
            0.1,
            0.09,
            0.075,
            0.05,
            0.04,
            0.01,
            1.0,
        ] {
            let k = KRule::Strict.k_for(t);
            assert!(1.0 / k as f64 <= t + 1e-12, "t={t}: k = {k} is at risk");
            assert!(
                k == 1 || 1.0 / (k - 1) as f64 > t,
                "t={t}: k − 1 = {} is not",
                k - 1
            );
        }
        assert_eq!(KRule::Strict.k_for(0.09), 12);
        assert_eq!(KRule::Strict.k_for(0.1), 10);
    }

    /// ARX `TestRiskMetrics`: 7 unique records → average and highest 1.0; after 2-anonymity
    /// (classes 2, 2, 3) average 3/7 and highest 0.5.
    #[test]
    fn arx_toy_fixture() {
        let p = prosecutor(&[(1, 7)], 0.2);
        assert_eq!((p.avg, p.max), (1.0, 1.0));
        let p = prosecutor(&[(2, 2), (3, 1)], 0.2);
        assert_eq!(p.avg, 0.428_571_428_571_428_55);
        assert_eq!(p.max, 0.5);
        assert_eq!(p.at_risk, 7);
        let empty = prosecutor(&[], 0.2);
        assert_eq!((empty.avg, empty.max), (0.0, 0.0));
    }

    /// ARX `TestRiskQuasiIdentifiers` (reference/reid.md §1.8): 5 records (age, sex, state).
    #[test]
    fn arx_distinction_separation_fixture() {
        use crate::data::Column;
        use crate::risk::classes::{MissingPolicy, classify};
        let age = Column::from_values("age", ["20", "30", "40", "20", "40"].map(Some));
        let sex = Column::from_values("sex", ["F", "F", "F", "M", "M"].map(Some));
        let state = Column::from_values("state", ["CA", "CA", "TX", "NY", "CA"].map(Some));
        let cases: [(&[&Column], f64, f64); 7] = [
            (&[&sex], 0.4, 0.6),
            (&[&state], 0.6, 0.7),
            (&[&age], 0.6, 0.8),
            (&[&sex, &state], 0.8, 0.9),
            (&[&age, &sex], 1.0, 1.0),
            (&[&age, &state], 1.0, 1.0),
            (&[&age, &sex, &state], 1.0, 1.0),
        ];
        for (qis, dist, sep) in cases {
            let h = classify(qis, None, MissingPolicy::Conservative).histogram();
            let (d, s) = distinction_separation(&h);
            assert!(
                (d - dist).abs() < 1e-12 && (s - sep).abs() < 1e-12,
                "{d} {s} vs {dist} {sep}"
            );
        }
    }

    /// sdcMicro `test_freqCalc.R` keys (reference/reid.md §2.1): per-record frequencies
    /// f = (3, 1, 3, 1, 2, 2, 1, 3).
    #[test]
    fn sdcmicro_freqcalc_fixture() {
        use crate::data::Column;
        use crate::risk::classes::{MissingPolicy, classify};
        let a = Column::from_values("A", ["2", "3", "2", "2", "3", "3", "1", "2"].map(Some));
        let b = Column::from_values("B", ["3", "3", "3", "3", "3", "3", "4", "3"].map(Some));
        let c = Column::from_values("C", ["1", "3", "1", "2", "1", "1", "1", "1"].map(Some));
        let classes = classify(&[&a, &b, &c], None, MissingPolicy::Conservative);
        let f: Vec<u64> = classes
            .person_class
            .iter()
            .map(|c| classes.sizes[c.unwrap() as usize])
            .collect();
        assert_eq!(f, vec![3, 1, 3, 1, 2, 2, 1, 3]);
        let h = classes.histogram();
        assert_eq!(h.iter().find(|x| x.0 == 1).unwrap().1, 3); // n1
        assert_eq!(h.iter().find(|x| x.0 == 2).unwrap().1, 1); // one class of 2 → n2 = 2 records
    }

    #[test]
    fn journalist_closed_form() {
        // Two classes, f = (1, 2), F = (4, 2): marketer = (1/4 + 2/2)/3, J/ΣF = 2/6.
        let j = journalist(&[(1, 4.0), (2, 2.0)], 0.3);
        assert!((j.marketer - (0.25 + 1.0) / 3.0).abs() < 1e-15);
        assert!((j.avg - j.marketer).abs() < 1e-15);
        assert_eq!((j.max, j.min), (0.5, 0.25));
        assert_eq!(j.at_risk, 2);
    }

    /// sdcMicro `test_indivRisk.R` fixture (reference/reid.md §2.2): f and F of the 8 weighted
    /// records and the expected approximate individual risks.
    #[test]
    fn benedetti_franconi_matches_sdcmicro() {
        let f = [3u64, 1, 3, 1, 2, 2, 1, 3];
        let big_f = [108.0, 45.5, 108.0, 17.0, 100.0, 100.0, 123.5, 108.0];
        let want = [
            0.013_698_63,
            0.085_791_29,
            0.013_698_63,
            0.177_075_83,
            0.018_778_83,
            0.018_778_83,
            0.039_316_25,
            0.013_698_63,
        ];
        for i in 0..8 {
            let r = benedetti_franconi(f[i], big_f[i]);
            assert!((r - want[i]).abs() < 5e-9, "row {i}: {r} vs {}", want[i]);
        }
    }
}
