//! Attribute disclosure: l-diversity (Machanavajjhala et al., ICDE 2006), t-closeness (Li, Li
//! & Venkatasubramanian, ICDE 2007) and δ-disclosure privacy (Brickell & Shmatikov, KDD 2008),
//! with the exact definitions of reference/reid.md §1.7 and §9.
//!
//! Each person contributes each of their distinct sensitive values once (a patient with three
//! encounters coded E11.9 counts once for E11.9). A missing sensitive value is a category of its
//! own, as in sdcMicro.

use super::classes::Classes;
use crate::data::{Column, MISSING};

/// Diversity measures for one sensitive attribute over all classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Diversity {
    /// Distinct values in the table.
    pub distinct_values: u64,
    /// min over classes of distinct values.
    pub distinct_l: u64,
    /// exp(min over classes of the Shannon entropy, natural log).
    pub entropy_l: f64,
    /// min over classes of the largest l with r1 < c·(r_l + … + r_m).
    pub recursive_l: u64,
    /// max over classes of ½Σ|q − p|.
    pub t_equal: f64,
    /// max over classes of (1/(m−1))Σ|Σ_{k≤i}(q_k − p_k)| over numerically ordered values.
    pub t_ordered: Option<f64>,
    /// max over classes and present values of |log_base(q/p)|.
    pub delta: f64,
    /// Classes whose persons all share one value.
    pub homogeneous_classes: u64,
    /// Persons in homogeneous classes.
    pub homogeneous_persons: u64,
    /// Distinct values per class, indexed by class id.
    pub per_class_distinct: Vec<u64>,
}

/// Computes the diversity measures of `sensitive` over `classes`.
///
/// Kept whole: one pass over the sorted (class, value, person) triples yields every measure
/// (distinct, entropy and recursive l-diversity, t-closeness, homogeneous classes).
pub fn diversity(classes: &Classes, sensitive: &Column, c: f64, log_base: f64) -> Diversity {
    let missing_code = sensitive.dictionary.len() as u32;
    // (class, value, person) triples, deduplicated per person.
    let mut triples: Vec<(u32, u32, u32)> = sensitive
        .codes
        .iter()
        .enumerate()
        .filter_map(|(r, &v)| {
            let person = classes.row_person[r];
            let class = classes.person_class[person as usize]?;
            let v = if v == MISSING { missing_code } else { v };
            Some((class, v, person))
        })
        .collect();
    triples.sort_unstable();
    triples.dedup();

    let values = missing_code as usize + 1;
    let mut global = vec![0u64; values];
    for t in &triples {
        global[t.1 as usize] += 1;
    }
    let total: u64 = global.iter().sum();
    let p: Vec<f64> = global
        .iter()
        .map(|&g| {
            if total == 0 {
                0.0
            } else {
                g as f64 / total as f64
            }
        })
        .collect();

    // Numeric order for the ordered distance: only when every present value is numeric and no
    // value is missing.
    let numeric_order: Option<Vec<usize>> =
        (sensitive.numeric && global[missing_code as usize] == 0).then(|| {
            let mut order: Vec<usize> = (0..missing_code as usize)
                .filter(|&v| global[v] > 0)
                .collect();
            let num = |v: usize| {
                sensitive.dictionary[v]
                    .trim()
                    .parse::<f64>()
                    .unwrap_or(f64::NAN)
            };
            order.sort_by(|&a, &b| num(a).total_cmp(&num(b)));
            order
        });
    // rank[v] = position of v in the numeric order; prefix[i] = P(values ranked < i).
    let (rank, prefix) = match &numeric_order {
        Some(order) => {
            let mut rank = vec![usize::MAX; values];
            let mut prefix = Vec::with_capacity(order.len() + 1);
            let mut acc = 0.0;
            prefix.push(0.0);
            for (i, &v) in order.iter().enumerate() {
                rank[v] = i;
                acc += p[v];
                prefix.push(acc);
            }
            (rank, prefix)
        }
        None => (Vec::new(), Vec::new()),
    };
    // Prefix sums of the cumulative distribution, for Σ_i P(i) over ranges.
    let cum_prefix: Vec<f64> = {
        let mut s = Vec::with_capacity(prefix.len() + 1);
        let mut acc = 0.0;
        s.push(0.0);
        for &x in prefix.iter().skip(1) {
            acc += x;
            s.push(acc);
        }
        s
    };

    let mut out = Diversity {
        distinct_values: global.iter().filter(|&&g| g > 0).count() as u64,
        distinct_l: u64::MAX,
        entropy_l: f64::INFINITY,
        recursive_l: u64::MAX,
        t_equal: 0.0,
        t_ordered: numeric_order.as_ref().map(|_| 0.0),
        delta: 0.0,
        homogeneous_classes: 0,
        homogeneous_persons: 0,
        per_class_distinct: vec![0; classes.count()],
    };
    let ln_base = log_base.ln();
    let mut i = 0;
    let mut counts: Vec<(u32, u64)> = Vec::new();
    while i < triples.len() {
        let class = triples[i].0;
        counts.clear();
        let mut j = i;
        while j < triples.len() && triples[j].0 == class {
            let v = triples[j].1;
            match counts.last_mut() {
                Some((last, n)) if *last == v => *n += 1,
                _ => counts.push((v, 1)),
            }
            j += 1;
        }
        i = j;
        let n: u64 = counts.iter().map(|x| x.1).sum();
        let nf = n as f64;
        let m = counts.len() as u64;
        out.per_class_distinct[class as usize] = m;
        out.distinct_l = out.distinct_l.min(m);
        if m == 1 {
            out.homogeneous_classes += 1;
            out.homogeneous_persons += classes.sizes[class as usize];
        }
        let entropy: f64 = counts
            .iter()
            .map(|&(_, k)| {
                let q = k as f64 / nf;
                -q * q.ln()
            })
            .sum();
        out.entropy_l = out.entropy_l.min(entropy.exp());
        // Recursive (c, l): counts descending; largest l with r1 < c·Σ_{i≥l} r_i.
        let mut sorted: Vec<u64> = counts.iter().map(|x| x.1).collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let r1 = sorted[0] as f64;
        let mut tail = nf;
        let mut best = 0u64;
        for (idx, &r) in sorted.iter().enumerate() {
            if r1 < c * tail {
                best = idx as u64 + 1;
            }
            tail -= r as f64;
        }
        out.recursive_l = out.recursive_l.min(best);
        // t-closeness, equal distance, and δ-disclosure over present values.
        let mut present_p = 0.0;
        let mut diff = 0.0;
        for &(v, k) in &counts {
            let q = k as f64 / nf;
            let pv = p[v as usize];
            present_p += pv;
            diff += (q - pv).abs();
            let d = (q / pv).ln().abs() / ln_base;
            out.delta = out.delta.max(d);
        }
        let t = 0.5 * (diff + (1.0 - present_p).max(0.0));
        out.t_equal = out.t_equal.max(t);
        if let (Some(order), Some(t_ord)) = (&numeric_order, out.t_ordered.as_mut()) {
            let mut ranked: Vec<(usize, f64)> = counts
                .iter()
                .map(|&(v, k)| (rank[v as usize], k as f64 / nf))
                .collect();
            ranked.sort_unstable_by_key(|x| x.0);
            let d = ordered_emd(&ranked, &prefix, &cum_prefix, order.len());
            *t_ord = t_ord.max(d);
        }
    }
    if triples.is_empty() {
        out.distinct_l = 0;
        out.entropy_l = 0.0;
        out.recursive_l = 0;
    }
    out
}

/// Σ_{i=0}^{m−1} |Q(i) − P(i)| / (m − 1) where Q(i), P(i) are cumulative distributions up to
/// and including rank i; `ranked` holds the class's (rank, q) ascending, `prefix[i+1] = P(i)`,
/// `cum_prefix[i] = Σ_{r<i} P(r)`. Runs in O(k log m) for k present values.
fn ordered_emd(ranked: &[(usize, f64)], prefix: &[f64], cum_prefix: &[f64], m: usize) -> f64 {
    if m <= 1 {
        return 0.0;
    }
    // Σ_{i=a}^{b−1} |q − P(i)| with Q constant = q on [a, b).
    let segment = |a: usize, b: usize, q: f64| -> f64 {
        if a >= b {
            return 0.0;
        }
        // P(i) = prefix[i + 1] is non-decreasing: split where P(i) ≥ q.
        let split = a + prefix[a + 1..=b].partition_point(|&x| x < q);
        let sum_p = |x: usize, y: usize| cum_prefix[y] - cum_prefix[x];
        let below = q * (split - a) as f64 - sum_p(a, split);
        let above = sum_p(split, b) - q * (b - split) as f64;
        below + above
    };
    let mut total = 0.0;
    let mut q = 0.0;
    let mut start = 0;
    for &(r, qr) in ranked {
        total += segment(start, r, q);
        q += qr;
        start = r;
    }
    total += segment(start, m, q);
    total / (m - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::classes::{MissingPolicy, classify};

    fn col(name: &str, values: &[&str]) -> Column {
        Column::from_values(name, values.iter().map(|s| Some(*s)))
    }

    /// Brute-force ordered EMD straight from the definition.
    fn ordered_brute(q: &[f64], p: &[f64]) -> f64 {
        let mut acc = 0.0;
        let mut s = 0.0;
        for i in 0..q.len() {
            acc += q[i] - p[i];
            s += acc.abs();
        }
        s / (q.len() - 1) as f64
    }

    #[test]
    fn hand_computed_two_classes() {
        // Class A: s = 1, 1, 2 ; class B: s = 3, 3.
        let qi = col("q", &["A", "A", "A", "B", "B"]);
        let s = col("s", &["1", "1", "2", "3", "3"]);
        let classes = classify(&[&qi], None, MissingPolicy::Conservative);
        let d = diversity(&classes, &s, 2.0, 2.0);
        assert_eq!(d.distinct_values, 3);
        assert_eq!(d.distinct_l, 1);
        assert_eq!(d.homogeneous_classes, 1);
        assert_eq!(d.homogeneous_persons, 2);
        // p = (0.4, 0.2, 0.4). Class B q = (0, 0, 1): TVD = ½(0.4 + 0.2 + 0.6) = 0.6.
        assert!((d.t_equal - 0.6).abs() < 1e-12);
        // Ordered: class A q = (2/3, 1/3, 0); class B q = (0, 0, 1).
        let p = [0.4, 0.2, 0.4];
        let want = ordered_brute(&[2.0 / 3.0, 1.0 / 3.0, 0.0], &p)
            .max(ordered_brute(&[0.0, 0.0, 1.0], &p));
        assert!((d.t_ordered.unwrap() - want).abs() < 1e-12);
        // δ: class B, value 3: log2(1/0.4).
        assert!((d.delta - (1.0f64 / 0.4).log2()).abs() < 1e-12);
        // Entropy l: class B has H = 0 → exp(0) = 1.
        assert_eq!(d.entropy_l, 1.0);
    }

    #[test]
    fn recursive_cl_definition() {
        // One class with counts (3, 2, 1): c = 2 → l = 1: 3 < 12 ✓; l = 2: 3 < 2·3 ✓;
        // l = 3: 3 < 2·1 ✗ → l = 2.
        let qi = col("q", &["A"; 6]);
        let s = col("s", &["x", "x", "x", "y", "y", "z"]);
        let classes = classify(&[&qi], None, MissingPolicy::Conservative);
        let d = diversity(&classes, &s, 2.0, 2.0);
        assert_eq!(d.recursive_l, 2);
        assert_eq!(d.distinct_l, 3);
        let h: f64 = -[3.0, 2.0, 1.0]
            .iter()
            .map(|k: &f64| k / 6.0 * (k / 6.0).ln())
            .sum::<f64>();
        assert!((d.entropy_l - h.exp()).abs() < 1e-12);
        // The class equals the table: t = 0, δ = 0.
        assert!(d.t_equal.abs() < 1e-12 && d.delta.abs() < 1e-12);
    }

    #[test]
    fn ordered_emd_matches_brute_force_on_random_data() {
        let mut rng = crate::stats::Rng::new(9);
        for _ in 0..50 {
            let m = 2 + rng.index(12);
            let mut p: Vec<f64> = (0..m).map(|_| rng.unit() + 0.01).collect();
            let sp: f64 = p.iter().sum();
            p.iter_mut().for_each(|x| *x /= sp);
            let mut q: Vec<f64> = (0..m)
                .map(|_| if rng.chance(0.5) { rng.unit() } else { 0.0 })
                .collect();
            q[0] += 0.1;
            let sq: f64 = q.iter().sum();
            q.iter_mut().for_each(|x| *x /= sq);
            let ranked: Vec<(usize, f64)> = q
                .iter()
                .enumerate()
                .filter(|x| *x.1 > 0.0)
                .map(|(i, &x)| (i, x))
                .collect();
            let mut prefix = vec![0.0];
            let mut cum = vec![0.0];
            let mut acc = 0.0;
            for &x in &p {
                acc += x;
                prefix.push(acc);
                cum.push(cum.last().unwrap() + acc);
            }
            let fast = ordered_emd(&ranked, &prefix, &cum, m);
            assert!((fast - ordered_brute(&q, &p)).abs() < 1e-12);
        }
    }
}
