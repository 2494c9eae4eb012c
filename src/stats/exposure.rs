//! Canary exposure by rank (Carlini et al., "The Secret Sharer", USENIX Security 2019).
//!
//! A secret is ranked among reference secrets drawn from the same randomness space and never
//! inserted: rank = 1 + the number of references whose perplexity is **≤** the secret's (ties
//! count against the secret, as TensorFlow Privacy's `secret_sharer`), and
//! exposure = log2(number of references) − log2(rank). Exposure is capped at log2(#references)
//! and is negative when the secret is less likely than every reference. Ranks depend only on the
//! order of perplexities, so any monotone transform (log-perplexity, mean NLL) gives the same
//! exposure.

/// Rank of a secret with perplexity `secret` among `references` (1 = more likely than all).
pub fn rank(secret: f64, references: &[f64]) -> usize {
    1 + references.iter().filter(|&&r| r <= secret).count()
}

/// Exposure by interpolation, in bits: log2(|references|) − log2(rank).
pub fn exposure(secret: f64, references: &[f64]) -> f64 {
    (references.len() as f64).log2() - (rank(secret, references) as f64).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TF Privacy exposures_test.py (reference/attacks.md §B.2): references 1..16.
    #[test]
    fn matches_tf_privacy_interpolation_cases() {
        let refs: Vec<f64> = (1..=16).map(f64::from).collect();
        assert_eq!(exposure(0.0, &refs), 4.0);
        assert_eq!(exposure(0.1, &refs), 4.0);
        assert_eq!(exposure(20.0, &refs), 4.0 - 17f64.log2());
        assert!(exposure(20.0, &refs) < 0.0);
        assert_eq!(rank(3.5, &refs), 4);
        assert_eq!(exposure(3.5, &refs), 2.0);
        // Ties count against the secret.
        assert_eq!(rank(3.0, &refs), 4);
    }
}
