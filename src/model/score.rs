//! The output head, chunk by chunk: per scored position, log p(actual token) and the mean and
//! variance of log p under the model's own next-token distribution (Min-K%++, Zhang et al. 2024),
//! without ever holding a batch × sequence × vocabulary logits tensor.

use candle_core::Tensor;

use super::TokenScore;
use super::transformer::ce;

/// Rows of logits computed at once (`rows × vocab` floats).
pub const CHUNK_ROWS: usize = 256;

/// Statistics of one row of logits `l` for target `y`.
///
/// With `m = max l`, `S = Σ e^(l−m)`: `log p(y) = l_y − m − ln S`;
/// `μ = Σ p log p = E_p[l − m] − ln S`; `σ² = E_p[(l − m)²] − E_p[l − m]²` (log p and l differ by a
/// constant, so their variances agree). Sums run in f64.
pub fn row_stats(l: &[f32], y: u32) -> TokenScore {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut s, mut a, mut b) = (0f64, 0f64, 0f64);
    for &v in l {
        let d = v - m;
        let e = d.exp();
        s += f64::from(e);
        a += f64::from(e * d);
        b += f64::from(e * d * d);
    }
    let ln_s = s.ln();
    let ea = a / s;
    TokenScore {
        token: y,
        logprob: (f64::from(l[y as usize] - m) - ln_s) as f32,
        mean: (ea - ln_s) as f32,
        var: (b / s - ea * ea).max(0.0) as f32,
    }
}

/// log p(v) for every entry of one row of logits, computed as in [`row_stats`]
/// (`l_v − m − ln Σ e^(l−m)`, the sum in f64).
pub fn log_softmax(l: &[f32]) -> Vec<f32> {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f64 = l.iter().map(|&v| f64::from((v - m).exp())).sum();
    let ln_s = s.ln();
    l.iter()
        .map(|&v| (f64::from(v - m) - ln_s) as f32)
        .collect()
}

/// The error for a forward pass that produced a NaN or infinite logit: never a score.
pub fn non_finite() -> crate::Error {
    crate::Error::Compute(
        "the model produced a non-finite log-probability (NaN or infinite logits): its weights or configuration are invalid (NaN/inf weights, a zero RoPE base, a bad norm epsilon); nothing was concluded".into(),
    )
}

/// Scores `rows` (`[n, hidden]` hidden states) against `targets` through `head_t` (`[hidden, vocab]`),
/// `threads` workers on the per-row statistics.
pub fn head_scores(
    rows: &Tensor,
    head_t: &Tensor,
    targets: &[u32],
    threads: usize,
) -> crate::Result<Vec<TokenScore>> {
    let n = targets.len();
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = CHUNK_ROWS.min(n - start);
        let logits = rows
            .narrow(0, start, len)
            .and_then(|r| r.matmul(head_t))
            .map_err(ce)?;
        let vocab = logits.dim(1).map_err(ce)?;
        let flat: Vec<f32> = logits.flatten_all().and_then(|t| t.to_vec1()).map_err(ce)?;
        let tg = &targets[start..start + len];
        let per = len.div_ceil(threads.max(1));
        let parts: Vec<Vec<TokenScore>> = std::thread::scope(|s| {
            let handles: Vec<_> = flat
                .chunks(per * vocab)
                .zip(tg.chunks(per))
                .map(|(rows, ys)| {
                    s.spawn(move || {
                        rows.chunks(vocab)
                            .zip(ys)
                            .map(|(r, &y)| row_stats(r, y))
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("scoring worker panicked"))
                .collect()
        });
        out.extend(parts.into_iter().flatten());
        start += len;
    }
    // A non-finite score would reach the findings as `null`: it is an error instead.
    if out
        .iter()
        .any(|s| !(s.logprob.is_finite() && s.mean.is_finite() && s.var.is_finite()))
    {
        return Err(non_finite());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_stats_match_the_definition() {
        let l = [1.0f32, 2.0, 0.5, -3.0];
        let z: f64 = l.iter().map(|&v| f64::from(v).exp()).sum();
        let logp: Vec<f64> = l.iter().map(|&v| f64::from(v) - z.ln()).collect();
        let p: Vec<f64> = logp.iter().map(|v| v.exp()).collect();
        let mu: f64 = p.iter().zip(&logp).map(|(p, l)| p * l).sum();
        let var: f64 = p.iter().zip(&logp).map(|(p, l)| p * (l - mu).powi(2)).sum();
        let s = row_stats(&l, 2);
        assert!((f64::from(s.logprob) - logp[2]).abs() < 1e-6);
        assert!((f64::from(s.mean) - mu).abs() < 1e-6);
        assert!((f64::from(s.var) - var).abs() < 1e-6);
    }

    #[test]
    fn uniform_rows_have_zero_variance() {
        let s = row_stats(&[0.25; 8], 3);
        assert!((f64::from(s.logprob) + 8f64.ln()).abs() < 1e-6);
        assert!((f64::from(s.mean) + 8f64.ln()).abs() < 1e-6);
        assert!(s.var.abs() < 1e-9);
    }
}
