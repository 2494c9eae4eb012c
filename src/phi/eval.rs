//! Precision and recall of the detector per Safe Harbor category against ground-truth spans
//! (the synthetic notes record where every identifier was written).

use super::{Detector, SafeHarbor};
use serde::Serialize;

/// One ground-truth identifier span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthSpan {
    /// Index of the text it lies in.
    pub text: usize,
    /// Category.
    pub category: SafeHarbor,
    /// Byte offsets.
    pub start: usize,
    /// One past the end.
    pub end: usize,
}

/// Counts for one category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CategoryScore {
    /// Category.
    pub category: Option<SafeHarbor>,
    /// Ground-truth spans.
    pub truth: u64,
    /// Of those, overlapped by a detection of the same category (recall's numerator).
    pub found: u64,
    /// Of those, matched with exactly the same boundaries.
    pub exact: u64,
    /// Detections of this category (rules in scope).
    pub detections: u64,
    /// Of those, overlapping a ground-truth span of the same category (precision's numerator).
    pub correct: u64,
}

/// Runs `detector` over `texts` and scores it per category. A detection counts as correct when
/// it overlaps a ground-truth span of its category; a truth span is found when a detection of
/// its category overlaps it. Detections by rules in `out_of_scope` (things the ground truth
/// does not label, such as ages over 89) are left out of precision.
pub fn evaluate(
    detector: &Detector,
    texts: &[&str],
    truth: &[TruthSpan],
    out_of_scope: &[&str],
) -> Vec<CategoryScore> {
    let mut by_text: Vec<Vec<&TruthSpan>> = vec![Vec::new(); texts.len()];
    for t in truth {
        if t.text < texts.len() {
            by_text[t.text].push(t);
        }
    }
    let mut scores: std::collections::BTreeMap<SafeHarbor, CategoryScore> = Default::default();
    let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
    for (i, text) in texts.iter().enumerate() {
        let found = detector.detect(text);
        for t in &by_text[i] {
            let s = scores.entry(t.category).or_default();
            s.truth += 1;
            let hits: Vec<_> = found
                .iter()
                .filter(|m| {
                    m.category == t.category && overlaps((m.start, m.end), (t.start, t.end))
                })
                .collect();
            if !hits.is_empty() {
                s.found += 1;
            }
            if hits.iter().any(|m| m.start == t.start && m.end == t.end) {
                s.exact += 1;
            }
        }
        for m in found.iter().filter(|m| !out_of_scope.contains(&m.rule)) {
            let s = scores.entry(m.category).or_default();
            s.detections += 1;
            if by_text[i]
                .iter()
                .any(|t| t.category == m.category && overlaps((m.start, m.end), (t.start, t.end)))
            {
                s.correct += 1;
            }
        }
    }
    scores
        .into_iter()
        .map(|(c, mut s)| {
            s.category = Some(c);
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_overlaps_and_boundaries() {
        let texts = [
            "SSN 123-45-6789 and call 617-555-0123.",
            "Nothing here 2021-13-01.",
        ];
        let truth = vec![
            TruthSpan {
                text: 0,
                category: SafeHarbor::Ssn,
                start: 4,
                end: 15,
            },
            TruthSpan {
                text: 0,
                category: SafeHarbor::Phone,
                start: 25,
                end: 33,
            },
            TruthSpan {
                text: 1,
                category: SafeHarbor::Date,
                start: 13,
                end: 23,
            },
        ];
        let s = evaluate(&Detector::builtin(), &texts, &truth, &[]);
        let get = |c| s.iter().find(|x| x.category == Some(c)).unwrap().clone();
        let ssn = get(SafeHarbor::Ssn);
        assert_eq!(
            (ssn.truth, ssn.found, ssn.exact, ssn.detections, ssn.correct),
            (1, 1, 1, 1, 1)
        );
        // The phone truth span is shorter than the detection: found, not exact.
        let ph = get(SafeHarbor::Phone);
        assert_eq!((ph.found, ph.exact, ph.correct), (1, 0, 1));
        // Month 13 is no date: missed.
        let d = get(SafeHarbor::Date);
        assert_eq!((d.truth, d.found, d.detections), (1, 0, 0));
    }
}
