//! ROC curves, AUC with a bootstrap interval, TPR at a fixed FPR as exact counts, and metrics at a
//! threshold calibrated on a separate split.
//!
//! Convention throughout: a **higher score means "member"**, and a record is predicted a member
//! when its score is **≥** the threshold. Tied scores form one ROC vertex (as scikit-learn's
//! `roc_curve`), so the AUC equals the Mann–Whitney statistic with ties counted ½. Scores must be
//! finite; callers drop (and report) records whose score could not be computed.
//!
//! Low-FPR operating points follow Carlini et al., "Membership Inference Attacks From First
//! Principles" (IEEE S&P 2022): report the TPR at a fixed, low FPR, read at the last ROC vertex
//! whose FPR does not exceed the target (never interpolated), with the exact counts and a
//! Clopper–Pearson interval.

use super::interval::{clopper_pearson, wilson};
use super::rng::Rng;

/// An ROC curve: one vertex per distinct score, from the strictest threshold down.
#[derive(Debug, Clone, PartialEq)]
pub struct Roc {
    /// Threshold of each vertex (`+∞` for the first, empty-prediction vertex).
    pub thresholds: Vec<f64>,
    /// Members with score ≥ threshold.
    pub tp: Vec<u64>,
    /// Non-members with score ≥ threshold.
    pub fp: Vec<u64>,
    /// Number of members.
    pub pos: u64,
    /// Number of non-members.
    pub neg: u64,
}

/// Order-preserving map of an `f64` to a `u64` (total order; NaNs sort above +∞; −0 and +0
/// map alike, as they compare equal).
fn key(v: f64) -> u64 {
    let v = if v == 0.0 { 0.0 } else { v };
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Something with a `u64` sort key.
trait Keyed: Copy + Default {
    fn k(&self) -> u64;
}
impl Keyed for u64 {
    fn k(&self) -> u64 {
        *self
    }
}
impl Keyed for (u64, u32) {
    fn k(&self) -> u64 {
        self.0
    }
}

/// The score of a key (inverse of `key`; −0 comes back as +0).
fn unkey(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// Sorts items by ascending key, stably: LSD radix sort, 11 bits per pass, skipping passes in
/// which every key has the same digit.
fn radix_sort<T: Keyed>(items: &mut Vec<T>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    let mut buf = vec![T::default(); items.len()];
    let mut count = vec![0usize; BUCKETS];
    let mut shift = 0;
    while shift < 64 {
        count.fill(0);
        for it in items.iter() {
            count[((it.k() >> shift) as usize) & (BUCKETS - 1)] += 1;
        }
        if count.contains(&items.len()) {
            shift += BITS;
            continue;
        }
        let mut sum = 0;
        for c in count.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        for &it in items.iter() {
            let d = ((it.k() >> shift) as usize) & (BUCKETS - 1);
            buf[count[d]] = it;
            count[d] += 1;
        }
        std::mem::swap(items, &mut buf);
        shift += BITS;
    }
}

/// `(key, index)` of every score, by descending score (ties in index order).
fn sorted_desc(scores: &[f64]) -> Vec<(u64, u32)> {
    let mut keyed: Vec<(u64, u32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (!key(s), i as u32))
        .collect();
    if keyed.len() < 256 {
        keyed.sort_unstable();
    } else {
        radix_sort(&mut keyed);
    }
    keyed
}

/// Indices of `scores` sorted by descending score (ties in index order).
pub fn descending(scores: &[f64]) -> Vec<u32> {
    sorted_desc(scores).into_iter().map(|(_, i)| i).collect()
}

impl Roc {
    /// The ROC of `scores` against `members` (same length). Each class's scores are sorted on
    /// their own (radix sort of order-preserving integer keys), then merged from the top.
    pub fn new(scores: &[f64], members: &[bool]) -> Self {
        assert_eq!(scores.len(), members.len(), "one label per score");
        let np = members.iter().filter(|&&m| m).count();
        let mut kp: Vec<u64> = Vec::with_capacity(np);
        let mut kn: Vec<u64> = Vec::with_capacity(scores.len() - np);
        for (&s, &m) in scores.iter().zip(members) {
            // Complemented: ascending key order is descending score order.
            if m {
                kp.push(!key(s));
            } else {
                kn.push(!key(s));
            }
        }
        let sort = |v: &mut Vec<u64>| {
            if v.len() < 256 {
                v.sort_unstable();
            } else {
                radix_sort(v);
            }
        };
        if scores.len() >= 20_000 {
            // The two classes sort independently: one on another thread.
            std::thread::scope(|sc| {
                sc.spawn(|| sort(&mut kn));
                sort(&mut kp);
            });
        } else {
            sort(&mut kp);
            sort(&mut kn);
        }
        let (pos, neg) = (kp.len() as u64, kn.len() as u64);
        let cap = scores.len() + 1;
        let mut roc = Roc {
            thresholds: Vec::with_capacity(cap),
            tp: Vec::with_capacity(cap),
            fp: Vec::with_capacity(cap),
            pos,
            neg,
        };
        roc.thresholds.push(f64::INFINITY);
        roc.tp.push(0);
        roc.fp.push(0);
        let (mut i, mut j) = (0usize, 0usize);
        while i < kp.len() || j < kn.len() {
            let k = match (kp.get(i), kn.get(j)) {
                (Some(&a), Some(&b)) => a.min(b),
                (Some(&a), None) => a,
                (None, Some(&b)) => b,
                (None, None) => unreachable!(),
            };
            while i < kp.len() && kp[i] == k {
                i += 1;
            }
            while j < kn.len() && kn[j] == k {
                j += 1;
            }
            roc.thresholds.push(unkey(!k));
            roc.tp.push(i as u64);
            roc.fp.push(j as u64);
        }
        roc
    }

    /// True-positive rate of every vertex.
    pub fn tpr(&self) -> Vec<f64> {
        self.tp.iter().map(|&t| ratio(t, self.pos)).collect()
    }

    /// False-positive rate of every vertex.
    pub fn fpr(&self) -> Vec<f64> {
        self.fp.iter().map(|&f| ratio(f, self.neg)).collect()
    }

    /// Area under the curve (trapezoids between vertices; ties count ½). `NaN` without members
    /// or without non-members.
    pub fn auc(&self) -> f64 {
        if self.pos == 0 || self.neg == 0 {
            return f64::NAN;
        }
        let mut twice = 0u128;
        for w in 1..self.tp.len() {
            let dfp = u128::from(self.fp[w] - self.fp[w - 1]);
            twice += dfp * u128::from(self.tp[w] + self.tp[w - 1]);
        }
        twice as f64 / (2.0 * self.pos as f64 * self.neg as f64)
    }

    /// Yeom et al.'s membership advantage at the best (oracle) threshold: max over vertices of
    /// TPR − FPR. Optimistic: the threshold is chosen with the labels it is scored on.
    pub fn max_advantage(&self) -> f64 {
        self.tpr()
            .iter()
            .zip(self.fpr())
            .map(|(t, f)| t - f)
            .fold(0.0, f64::max)
    }

    /// TensorFlow Privacy's PPV with r = non-members / members (see [`max_ppv`]), exact zeros.
    pub fn max_ppv(&self) -> f64 {
        max_ppv(&self.tpr(), &self.fpr(), ratio(self.neg, self.pos), 0.0)
    }

    /// The operating point at the last vertex whose FPR does not exceed `target` (`≤`, as ART
    /// and ML Privacy Meter), with exact counts and a Clopper–Pearson interval on the TPR.
    pub fn tpr_at_fpr(&self, target: f64, confidence: f64) -> TprAtFpr {
        let allowed = allowed_false_positives(target, self.neg);
        // fp is non-decreasing along the vertices: binary search for the last one within budget.
        let w = self.fp.partition_point(|&f| f <= allowed) - 1;
        let (lo, hi) = clopper_pearson(self.tp[w], self.pos, confidence);
        TprAtFpr {
            target,
            tp: self.tp[w],
            pos: self.pos,
            fp: self.fp[w],
            neg: self.neg,
            threshold: self.thresholds[w],
            tpr: ratio(self.tp[w], self.pos),
            fpr: ratio(self.fp[w], self.neg),
            lo,
            hi,
            resolvable: allowed_false_positives(target, self.neg) >= 1,
        }
    }

    /// Up to about `max_points` vertices for plotting on log axes: the highest-TPR vertex of
    /// each FPR, thinned to steps of about 1/`max_points` of the log-FPR range, always keeping
    /// the first vertex, the best vertex at FPR 0 and the last vertex.
    pub fn downsample(&self, max_points: usize) -> Vec<(f64, f64)> {
        let fpr = self.fpr();
        let tpr = self.tpr();
        let n = fpr.len();
        if n <= max_points {
            return fpr.into_iter().zip(tpr).collect();
        }
        let floor = (1.0 / self.neg.max(1) as f64).max(1e-6);
        let lf = |f: f64| f.max(floor).log10();
        let step = -floor.log10() / max_points.max(2) as f64;
        let mut out = Vec::with_capacity(max_points + 2);
        let mut next = f64::NEG_INFINITY;
        for i in 0..n {
            let last_of_fpr = i + 1 == n || fpr[i + 1] > fpr[i];
            let keep =
                i == 0 || i + 1 == n || (last_of_fpr && (fpr[i] == 0.0 || lf(fpr[i]) >= next));
            if keep {
                out.push((fpr[i], tpr[i]));
                if fpr[i] > 0.0 {
                    next = lf(fpr[i]) + step;
                }
            }
        }
        out
    }
}

/// TensorFlow Privacy's PPV over a curve: the maximum over points of TPR / (TPR + r·FPR), where
/// r is the ratio of non-members to members; a point with TPR and FPR both within `tol` of zero
/// counts 1 / (1 + r) (the prior), and a zero denominator counts 0.
pub fn max_ppv(tpr: &[f64], fpr: &[f64], r: f64, tol: f64) -> f64 {
    tpr.iter()
        .zip(fpr)
        .map(|(&t, &f)| {
            if t.abs() <= tol && f.abs() <= tol {
                1.0 / (1.0 + r)
            } else if t + r * f != 0.0 {
                t / (t + r * f)
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max)
}

fn ratio(k: u64, n: u64) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        k as f64 / n as f64
    }
}

/// The number of false positives allowed at FPR ≤ `target` among `neg` non-members (a relative
/// 1e-12 of slack keeps products such as 0.001 · 1000 from flooring to 0 should rounding leave
/// them a hair below the integer).
pub fn allowed_false_positives(target: f64, neg: u64) -> u64 {
    (target * neg as f64 * (1.0 + 1e-12)).floor().max(0.0) as u64
}

/// TPR at a fixed FPR, as exact counts.
#[derive(Debug, Clone, PartialEq)]
pub struct TprAtFpr {
    /// The FPR asked for.
    pub target: f64,
    /// Members above the threshold.
    pub tp: u64,
    /// Members.
    pub pos: u64,
    /// Non-members above the threshold.
    pub fp: u64,
    /// Non-members.
    pub neg: u64,
    /// Score threshold (predict member when score ≥ threshold; `+∞` predicts none).
    pub threshold: f64,
    /// tp / pos.
    pub tpr: f64,
    /// The FPR actually achieved (fp / neg ≤ target).
    pub fpr: f64,
    /// Clopper–Pearson lower bound on the TPR.
    pub lo: f64,
    /// Clopper–Pearson upper bound on the TPR.
    pub hi: f64,
    /// Whether `neg · target ≥ 1`; otherwise the only FPR reachable below the target is 0.
    pub resolvable: bool,
}

/// Percentile bootstrap interval of the AUC: members and non-members are resampled separately
/// (stratified, so every resample keeps both class sizes), `resamples` times. Resample `r` draws
/// from its own stream `Rng::derive(seed, label, r)`, so the interval does not depend on how many
/// threads share the work. Sorts once; each resample is one weighted sweep over the sorted
/// scores, O(n).
pub fn bootstrap_auc(
    scores: &[f64],
    members: &[bool],
    resamples: usize,
    confidence: f64,
    seed: u64,
    label: &str,
) -> Option<(f64, f64)> {
    let order = descending(scores);
    let np = members.iter().filter(|&&m| m).count();
    let nn = members.len() - np;
    if np == 0 || nn == 0 || resamples == 0 {
        return None;
    }
    // Tie groups in ascending score order: slot ranges of members and of non-members, where a
    // class's slots number its records in descending score order.
    let mut groups: Vec<(u32, u32, u32, u32)> = Vec::new();
    let (mut pi, mut ni) = (np, nn);
    let mut j = order.len();
    while j > 0 {
        let s = scores[order[j - 1] as usize];
        let (p_end, n_end) = (pi, ni);
        while j > 0 && scores[order[j - 1] as usize] == s {
            if members[order[j - 1] as usize] {
                pi -= 1;
            } else {
                ni -= 1;
            }
            j -= 1;
        }
        groups.push((pi as u32, p_end as u32, ni as u32, n_end as u32));
    }
    let one = |r: usize, wp: &mut [u32], wn: &mut [u32]| -> f64 {
        let mut rng = Rng::derive(seed, label, r as u64);
        wp.fill(0);
        wn.fill(0);
        for _ in 0..np {
            wp[rng.index(np)] += 1;
        }
        for _ in 0..nn {
            wn[rng.index(nn)] += 1;
        }
        let mut below = 0u64; // non-member weight strictly below the current group
        let mut twice = 0u128;
        for &(p0, p1, n0, n1) in &groups {
            let gp: u64 = wp[p0 as usize..p1 as usize]
                .iter()
                .map(|&w| u64::from(w))
                .sum();
            let gn: u64 = wn[n0 as usize..n1 as usize]
                .iter()
                .map(|&w| u64::from(w))
                .sum();
            twice += u128::from(gp) * u128::from(2 * below + gn);
            below += gn;
        }
        twice as f64 / (2.0 * np as f64 * nn as f64)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(resamples)
        .min(1 + (np + nn).saturating_mul(resamples) / 2_000_000);
    let mut aucs: Vec<f64> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let one = &one;
                sc.spawn(move || {
                    let mut wp = vec![0u32; np];
                    let mut wn = vec![0u32; nn];
                    (t..resamples)
                        .step_by(threads)
                        .map(|r| one(r, &mut wp, &mut wn))
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("bootstrap worker"))
            .collect()
    });
    aucs.sort_unstable_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Some((
        quantile_sorted(&aucs, alpha / 2.0),
        quantile_sorted(&aucs, 1.0 - alpha / 2.0),
    ))
}

/// Linear-interpolated quantile of sorted data (numpy's default, "type 7").
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let h = (v.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// A confusion matrix at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// Members predicted members.
    pub tp: u64,
    /// Members predicted non-members.
    pub fn_: u64,
    /// Non-members predicted members.
    pub fp: u64,
    /// Non-members predicted non-members.
    pub tn: u64,
}

impl Confusion {
    /// Counts at `threshold` (member when score ≥ threshold) over the records `rows`.
    pub fn at(scores: &[f64], members: &[bool], rows: &[usize], threshold: f64) -> Self {
        let mut c = Confusion::default();
        for &r in rows {
            match (members[r], scores[r] >= threshold) {
                (true, true) => c.tp += 1,
                (true, false) => c.fn_ += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    /// TP / (TP + FN).
    pub fn tpr(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// FP / (FP + TN).
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }

    /// (TPR + TNR) / 2.
    pub fn balanced_accuracy(&self) -> f64 {
        0.5 * (self.tpr() + 1.0 - self.fpr())
    }

    /// TPR − FPR.
    pub fn advantage(&self) -> f64 {
        self.tpr() - self.fpr()
    }

    /// (TP + TN) / all.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.fn_ + self.fp + self.tn)
    }

    /// TP / (TP + FP) on these counts (prevalence as sampled).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// Newcombe's hybrid-score interval (method 10, Stat. Med. 1998) for TPR − FPR, from Wilson
    /// intervals of the two independent rates.
    pub fn advantage_interval(&self, confidence: f64) -> (f64, f64) {
        let wil = |k: u64, n: u64| {
            let (c, h) = wilson(k, n, confidence);
            (c - h, c + h)
        };
        let (p1, p2) = (self.tpr(), self.fpr());
        let (l1, u1) = wil(self.tp, self.tp + self.fn_);
        let (l2, u2) = wil(self.fp, self.fp + self.tn);
        let d = p1 - p2;
        (
            d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
            d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
        )
    }

    /// Positive predictive value at member prevalence `pi`:
    /// π·TPR / (π·TPR + (1 − π)·FPR), with a conservative interval from the Clopper–Pearson
    /// bounds of both rates (low TPR with high FPR, and the reverse). Each of the four tails gets
    /// α/4, so the interval covers with at least the stated confidence (union bound).
    pub fn ppv_at(&self, pi: f64, confidence: f64) -> (f64, f64, f64) {
        let f = |t: f64, fp: f64| {
            let den = pi * t + (1.0 - pi) * fp;
            if den == 0.0 { f64::NAN } else { pi * t / den }
        };
        let per_rate = 1.0 - (1.0 - confidence) / 2.0;
        let (tl, th) = clopper_pearson(self.tp, self.tp + self.fn_, per_rate);
        let (fl, fh) = clopper_pearson(self.fp, self.fp + self.tn, per_rate);
        (f(self.tpr(), self.fpr()), f(tl, fh), f(th, fl))
    }
}

/// A seeded, stratified split of `members`' indices into two halves (calibration, evaluation):
/// each class is shuffled and cut in the middle, so both halves keep the class balance.
pub fn split_halves(members: &[bool], rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
    let mut cal = Vec::new();
    let mut eval = Vec::new();
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..members.len())
            .filter(|&i| members[i] == class)
            .collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.index(i + 1));
        }
        let half = idx.len() / 2;
        cal.extend_from_slice(&idx[..half]);
        eval.extend_from_slice(&idx[half..]);
    }
    cal.sort_unstable();
    eval.sort_unstable();
    (cal, eval)
}

/// The threshold that maximises `objective(confusion)` over the records `rows`, scanning every
/// distinct score (predict member when score ≥ threshold). Ties in the objective keep the
/// stricter (higher) threshold.
pub fn best_threshold(
    scores: &[f64],
    members: &[bool],
    rows: &[usize],
    objective: impl Fn(&Confusion) -> f64,
) -> f64 {
    let sub_scores: Vec<f64> = rows.iter().map(|&r| scores[r]).collect();
    let sub_members: Vec<bool> = rows.iter().map(|&r| members[r]).collect();
    let roc = Roc::new(&sub_scores, &sub_members);
    let mut best = (f64::NEG_INFINITY, f64::INFINITY);
    for w in 0..roc.thresholds.len() {
        let c = Confusion {
            tp: roc.tp[w],
            fn_: roc.pos - roc.tp[w],
            fp: roc.fp[w],
            tn: roc.neg - roc.fp[w],
        };
        let v = objective(&c);
        if v > best.0 {
            best = (v, roc.thresholds[w]);
        }
    }
    best.1
}

/// [`best_threshold`] for an objective that is expensive to evaluate but never exceeds a cheap
/// `upper` bound, and that only improves as either error count falls (true of every
/// error-rate-based objective here). Only ROC corners are candidates — the last vertex of each
/// false-positive count that is also the first of its false-negative count — and candidates are
/// tried in decreasing order of their bound until no remaining bound can beat the best value
/// found (branch and bound; the objective reached equals the exhaustive search's, though among
/// thresholds reaching the same value another may be chosen).
pub fn best_threshold_bounded(
    scores: &[f64],
    members: &[bool],
    rows: &[usize],
    objective: impl Fn(&Confusion) -> f64,
    upper: impl Fn(&Confusion) -> f64,
) -> f64 {
    let sub_scores: Vec<f64> = rows.iter().map(|&r| scores[r]).collect();
    let sub_members: Vec<bool> = rows.iter().map(|&r| members[r]).collect();
    let roc = Roc::new(&sub_scores, &sub_members);
    let conf = |w: usize| Confusion {
        tp: roc.tp[w],
        fn_: roc.pos - roc.tp[w],
        fp: roc.fp[w],
        tn: roc.neg - roc.fp[w],
    };
    let last = roc.tp.len() - 1;
    let mut cand: Vec<(f64, usize)> = (0..=last)
        .filter(|&w| {
            (w == last || roc.fp[w + 1] > roc.fp[w]) && (w == 0 || roc.tp[w - 1] < roc.tp[w])
        })
        .map(|w| (upper(&conf(w)), w))
        .collect();
    // Highest bound first; equal bounds keep the stricter threshold (lower vertex index) first.
    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut best = (f64::NEG_INFINITY, usize::MAX);
    for (bound, w) in cand {
        if bound <= best.0 {
            break;
        }
        let v = objective(&conf(w));
        if v > best.0 || (v == best.0 && w < best.1) {
            best = (v, w);
        }
    }
    if best.1 == usize::MAX {
        f64::INFINITY
    } else {
        roc.thresholds[best.1]
    }
}

/// SACRO-ML's FMAX/FMIN/FDIF/PDIF: the member fraction among the n = ⌈x·len⌉ highest and lowest
/// scores, their difference, and ln of the one-sided normal-approximation p-value of that
/// difference, 1 − Φ(FDIF / √(2π(1 − π)/n)) with π the overall member fraction (floored at
/// −115.13, SACRO's ln 1e-50). Returns (fmax, fmin, fdif, ln p).
pub fn top_bottom_member_fraction(
    scores: &[f64],
    members: &[bool],
    x: f64,
) -> (f64, f64, f64, f64) {
    let len = scores.len();
    let n = ((len as f64 * x).ceil() as usize).clamp(1, len.max(1));
    let order = descending(scores);
    let frac = |idx: &[u32]| {
        idx.iter().filter(|&&i| members[i as usize]).count() as f64 / idx.len().max(1) as f64
    };
    let fmax = frac(&order[..n.min(len)]);
    let fmin = frac(&order[len.saturating_sub(n)..]);
    let fdif = fmax - fmin;
    let pi = members.iter().filter(|&&m| m).count() as f64 / len.max(1) as f64;
    let sd = (2.0 * pi * (1.0 - pi) / n as f64).sqrt();
    let p = 1.0 - super::special::normal_cdf(fdif / sd);
    let lp = if p < 1e-50 { -115.13 } else { p.ln() };
    (fmax, fmin, fdif, lp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// TF Privacy epsilon_lower_bound_test.py TP/FP enumeration (reference/attacks.md §B.1).
    #[test]
    fn tp_fp_enumeration_matches_tf_privacy() {
        let pos = [9.0, 4.0, 5.0, 0.0];
        let neg = [3.0, 8.0, 6.0, 1.0, 2.0, 7.0];
        let scores: Vec<f64> = pos.iter().chain(&neg).copied().collect();
        let members: Vec<bool> = (0..10).map(|i| i < 4).collect();
        let roc = Roc::new(&scores, &members);
        assert_eq!(roc.tp[1..], [1, 1, 1, 1, 2, 3, 3, 3, 3, 4]);
        assert_eq!(roc.fp[1..], [0, 1, 2, 3, 3, 3, 4, 5, 6, 6]);
        // With thresholds 9.5, 8.5, 5.5, 3.5, 0.5, −1 (strictly above = at or above the next
        // score): read the curve at each.
        let at = |t: f64| Confusion::at(&scores, &members, &(0..10).collect::<Vec<_>>(), t);
        let want = [(0, 0), (1, 0), (1, 3), (3, 3), (3, 6), (4, 6)];
        for (t, (tp, fp)) in [9.5, 8.5, 5.5, 3.5, 0.5, -1.0].iter().zip(want) {
            let c = at(t + 1e-9);
            assert_eq!((c.tp, c.fp), (tp, fp), "threshold {t}");
        }
    }

    /// ART test_worst_case_mia_score.py fixtures, including the tie at 0.6 (§B.4).
    #[test]
    fn tpr_at_fpr_matches_art_with_ties() {
        let labels = [true, false, true, true, true, false];
        let scores = [0.35, 0.33, 0.32, 0.6, 0.6, 0.2];
        let roc = Roc::new(&scores, &labels);
        let p = roc.tpr_at_fpr(0.0, 0.95);
        assert_eq!((p.fpr, p.tpr, p.threshold), (0.0, 0.75, 0.35));
        let p = roc.tpr_at_fpr(0.5, 0.95);
        assert_eq!((p.fpr, p.tpr, p.threshold), (0.5, 1.0, 0.32));
        let roc = Roc::new(&[0.35, 0.3, 0.33, 0.6], &[true, false, true, true]);
        let p = roc.tpr_at_fpr(0.001, 0.95);
        assert_eq!((p.fpr, p.tpr, p.threshold), (0.0, 1.0, 0.33));
        assert!(!p.resolvable, "one non-member cannot resolve FPR 0.1 %");
        assert_eq!((p.tp, p.pos, p.fp, p.neg), (3, 3, 0, 1));
    }

    /// TF Privacy data_structures_test.py (§B.3): chance and perfect curves.
    #[test]
    fn chance_and_perfect_curves() {
        // Scores 1,1 / 0,0 split evenly between classes: vertices (0,0), (.5,.5), (1,1).
        let roc = Roc::new(&[1.0, 1.0, 0.0, 0.0], &[true, false, true, false]);
        assert_eq!(roc.tpr(), [0.0, 0.5, 1.0]);
        assert_eq!(roc.fpr(), [0.0, 0.5, 1.0]);
        assert_eq!(roc.auc(), 0.5);
        assert_eq!(roc.max_advantage(), 0.0);
        assert_eq!(roc.max_ppv(), 0.5);
        let roc = Roc::new(&[2.0, 1.0], &[true, false]);
        assert_eq!(
            (roc.auc(), roc.max_advantage(), roc.max_ppv()),
            (1.0, 1.0, 1.0)
        );
        // PPV at tiny rates, tolerance 1e-4, for test/train ratios 0.001, 1000 and 1.
        let tpr = [0.00001, 0.0001, 0.002];
        let fpr = [0.00002, 0.0002, 0.002];
        assert!(close(max_ppv(&tpr, &fpr, 0.001, 1e-4), 1.0, 1e-3));
        assert!(close(max_ppv(&tpr, &fpr, 1000.0, 1e-4), 0.0, 1e-3));
        assert!(close(max_ppv(&tpr, &fpr, 1.0, 1e-4), 0.5, 1e-3));
        assert!(close(
            max_ppv(&tpr, &fpr, 0.001, 1e-4),
            0.999_000_999_000_999_1,
            1e-15
        ));
    }

    /// SACRO-ML test_metrics.py's 6-sample toy (§B.6): true [0,0,0,1,1,1].
    #[test]
    fn sacro_toy_metrics() {
        // PROBS[:, 1] of the fixture; SACRO predicts class 1 when p1 > p0, i.e. p1 > 0.5.
        let members = [false, false, false, true, true, true];
        let scores = [0.1, 0.6, 0.2, 0.45, 0.9, 0.99];
        let c = Confusion::at(&scores, &members, &[0, 1, 2, 3, 4, 5], 0.5);
        assert!(close(c.tpr(), 2.0 / 3.0, 1e-15));
        assert!(close(c.fpr(), 1.0 / 3.0, 1e-15));
        assert!(close(c.precision(), 2.0 / 3.0, 1e-15));
        assert!(close(c.accuracy(), 4.0 / 6.0, 1e-15));
        assert!(close(c.advantage(), 1.0 / 3.0, 1e-15));
        assert!(close(Roc::new(&scores, &members).auc(), 8.0 / 9.0, 1e-15));
        // FMAX/FMIN/FDIF: default 10 % (one record each end), and 50 %.
        let (fmax, fmin, fdif, lp) = top_bottom_member_fraction(&scores, &members, 0.1);
        assert_eq!((fmax, fmin, fdif), (1.0, 0.0, 1.0));
        assert!(close(lp, 0.078_649_603_525_142_61f64.ln(), 1e-9));
        let (fmax, fmin, fdif, _) = top_bottom_member_fraction(&scores, &members, 0.5);
        assert!(close(fmax, 2.0 / 3.0, 1e-15) && close(fmin, 1.0 / 3.0, 1e-15));
        assert!(close(fdif, 1.0 / 3.0, 1e-15));
        // Extreme case: 25 members in 50,000 records, n = 5,000.
        let y: Vec<bool> = (0..50_000).map(|i| i < 25).collect();
        let right: Vec<f64> = y.iter().map(|&m| f64::from(u8::from(m))).collect();
        let wrong: Vec<f64> = right.iter().map(|v| 1.0 - v).collect();
        let (fmax, fmin, _, lp) = top_bottom_member_fraction(&right, &y, 0.1);
        assert_eq!((fmax, fmin, lp), (0.005, 0.0, -115.13));
        let (_, _, fdif, lp) = top_bottom_member_fraction(&wrong, &y, 0.1);
        assert!(close(fdif, -0.005, 1e-15) && close(lp, 0.0, 1e-9));
    }

    fn random_case(rng: &mut Rng, n: usize, tie_levels: usize) -> (Vec<f64>, Vec<bool>) {
        let scores = (0..n)
            .map(|_| {
                if tie_levels > 0 {
                    rng.index(tie_levels) as f64
                } else {
                    rng.unit()
                }
            })
            .collect();
        let members = (0..n)
            .map(|i| i == 0 || (i > 1 && rng.unit() < 0.4))
            .collect();
        (scores, members)
    }

    /// Mann–Whitney with ties ½, by brute force.
    fn brute_auc(scores: &[f64], members: &[bool]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..scores.len() {
            for j in 0..scores.len() {
                if members[i] && !members[j] {
                    den += 1.0;
                    num += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    /// Properties on random inputs (with and without ties): AUC is Mann–Whitney, AUC(−s) =
    /// 1 − AUC(s), permuting (score, label) pairs changes nothing, the bootstrap interval holds
    /// the point estimate, and TPR@FPR never exceeds its FPR budget.
    #[test]
    fn roc_properties() {
        let mut rng = Rng::new(11);
        for case in 0..200 {
            let n = 2 + rng.index(60);
            let (s, m) = random_case(&mut rng, n, [0, 3, 10][case % 3]);
            let roc = Roc::new(&s, &m);
            let auc = roc.auc();
            assert!(close(auc, brute_auc(&s, &m), 1e-12));
            let neg: Vec<f64> = s.iter().map(|v| -v).collect();
            assert!(close(Roc::new(&neg, &m).auc(), 1.0 - auc, 1e-12));
            let mut perm: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                perm.swap(i, rng.index(i + 1));
            }
            let ps: Vec<f64> = perm.iter().map(|&i| s[i]).collect();
            let pm: Vec<bool> = perm.iter().map(|&i| m[i]).collect();
            assert_eq!(Roc::new(&ps, &pm), roc);
            for t in [0.0, 0.01, 0.1, 0.3] {
                let p = roc.tpr_at_fpr(t, 0.95);
                assert!(p.fpr <= t + 1e-12 && p.lo <= p.tpr && p.tpr <= p.hi);
                // No vertex within the budget has a higher TPR.
                let best = (0..roc.tp.len())
                    .filter(|&w| roc.fp[w] as f64 <= t * roc.neg as f64 + 1e-9)
                    .map(|w| roc.tp[w])
                    .max()
                    .unwrap();
                assert_eq!(p.tp, best);
            }
            let (lo, hi) = bootstrap_auc(&s, &m, 200, 0.95, case as u64, "t").unwrap();
            assert!(lo <= hi && lo >= 0.0 && hi <= 1.0);
        }
    }

    /// The weighted-sweep bootstrap equals recomputing the AUC of each resample from scratch.
    #[test]
    fn bootstrap_matches_explicit_resamples() {
        let mut rng = Rng::new(3);
        let (s, m) = random_case(&mut rng, 40, 5);
        let got = bootstrap_auc(&s, &m, 50, 0.9, 9, "t").unwrap();
        // Replay the same draws explicitly.
        let order = descending(&s);
        let pos: Vec<usize> = order
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| m[i])
            .collect();
        let neg: Vec<usize> = order
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| !m[i])
            .collect();
        let mut aucs = Vec::new();
        for i in 0..50 {
            let mut r = Rng::derive(9, "t", i);
            let mut rs = Vec::new();
            let mut rm = Vec::new();
            for _ in 0..pos.len() {
                rs.push(s[pos[r.index(pos.len())]]);
                rm.push(true);
            }
            for _ in 0..neg.len() {
                rs.push(s[neg[r.index(neg.len())]]);
                rm.push(false);
            }
            aucs.push(Roc::new(&rs, &rm).auc());
        }
        aucs.sort_unstable_by(f64::total_cmp);
        let want = (quantile_sorted(&aucs, 0.05), quantile_sorted(&aucs, 0.95));
        assert!(close(got.0, want.0, 1e-12) && close(got.1, want.1, 1e-12));
    }

    /// Branch and bound over ROC corners finds what the exhaustive scan finds.
    #[test]
    fn bounded_search_equals_exhaustive_search() {
        use crate::stats::epsilon::{epsilon_from_rates, epsilon_lower_bound};
        let mut rng = Rng::new(21);
        for case in 0..60 {
            let n = 5 + rng.index(300);
            let (s, m) = random_case(&mut rng, n, [0, 4, 40][case % 3]);
            let rows: Vec<usize> = (0..n).collect();
            let obj = |c: &Confusion| epsilon_lower_bound(c.tp, c.fn_, c.fp, c.tn, 1e-5, 0.95);
            let up = |c: &Confusion| epsilon_from_rates(c.fpr(), 1.0 - c.tpr(), 1e-5);
            let floor = |n: u64| 1.0 - 0.025f64.powf(1.0 / n.max(1) as f64);
            let tight = |c: &Confusion| {
                epsilon_from_rates(
                    c.fpr().max(floor(c.fp + c.tn)),
                    (1.0 - c.tpr()).max(floor(c.tp + c.fn_)),
                    1e-5,
                )
            };
            let a = best_threshold(&s, &m, &rows, obj);
            let b = best_threshold_bounded(&s, &m, &rows, obj, up);
            let at = |t: f64| obj(&Confusion::at(&s, &m, &rows, t));
            assert_eq!(at(a), at(b), "case {case}: thresholds {a} vs {b}");
            let c = best_threshold_bounded(&s, &m, &rows, obj, tight);
            assert_eq!(at(a), at(c), "case {case}: tight bound");
        }
    }

    #[test]
    fn radix_order_equals_a_comparison_sort() {
        let mut rng = Rng::new(4);
        for n in [0, 1, 255, 256, 3000] {
            let s: Vec<f64> = (0..n)
                .map(|i| match i % 7 {
                    0 => -0.0,
                    1 => 0.0,
                    2 => rng.index(5) as f64,
                    3 => -1e300 * rng.unit(),
                    _ => rng.normal(),
                })
                .collect();
            let mut want: Vec<u32> = (0..n as u32).collect();
            want.sort_by(|&a, &b| s[b as usize].total_cmp(&s[a as usize]).then(a.cmp(&b)));
            // total_cmp orders −0 below +0; they are one tie here: compare as scores.
            let got = descending(&s);
            let gs: Vec<f64> = got.iter().map(|&i| s[i as usize]).collect();
            let ws: Vec<f64> = want.iter().map(|&i| s[i as usize]).collect();
            assert_eq!(gs, ws);
            for w in got.windows(2) {
                if s[w[0] as usize] == s[w[1] as usize] {
                    assert!(w[0] < w[1], "ties keep index order");
                }
            }
        }
    }

    /// The plotted curve keeps the best TPR at FPR 0 and the end point, and stays small.
    #[test]
    fn downsampling_keeps_the_low_fpr_end() {
        let mut rng = Rng::new(8);
        let n = 5000;
        let members: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let scores: Vec<f64> = (0..n)
            .map(|i| rng.normal() + if members[i] { 1.0 } else { 0.0 })
            .collect();
        let roc = Roc::new(&scores, &members);
        let d = roc.downsample(300);
        assert!(d.len() <= 2 * 300, "{}", d.len());
        let at_zero = (0..roc.tp.len())
            .filter(|&w| roc.fp[w] == 0)
            .map(|w| roc.tp[w])
            .max()
            .unwrap() as f64
            / roc.pos as f64;
        assert!(d.iter().any(|&(f, t)| f == 0.0 && t == at_zero));
        assert_eq!(*d.last().unwrap(), (1.0, 1.0));
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn calibrated_split_keeps_balance_and_newcombe_brackets() {
        let members: Vec<bool> = (0..101).map(|i| i % 3 == 0).collect();
        let (cal, eval) = split_halves(&members, &mut Rng::new(1));
        assert_eq!(cal.len() + eval.len(), 101);
        let mc = cal.iter().filter(|&&i| members[i]).count();
        let me = eval.iter().filter(|&&i| members[i]).count();
        assert!(mc.abs_diff(me) <= 1);
        let c = Confusion {
            tp: 30,
            fn_: 20,
            fp: 10,
            tn: 40,
        };
        let (lo, hi) = c.advantage_interval(0.95);
        assert!(lo < c.advantage() && c.advantage() < hi);
        // Newcombe (1998) Table II example: 56/70 vs 48/80 → difference 0.2, interval
        // (0.0524, 0.3339).
        let c = Confusion {
            tp: 56,
            fn_: 14,
            fp: 48,
            tn: 32,
        };
        let (lo, hi) = c.advantage_interval(0.95);
        assert!(
            close(lo, 0.0524, 5e-4) && close(hi, 0.3339, 5e-4),
            "{lo} {hi}"
        );
        let (ppv, plo, phi) = c.ppv_at(0.5, 0.95);
        assert!(plo <= ppv && ppv <= phi);
    }
}
