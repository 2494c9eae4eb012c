//! A small, version-stable pseudo-random generator.
//!
//! phiprobe promises "same seed and inputs → same findings" across releases, so it does not
//! depend on the stream of an external RNG crate (whose algorithms may change between
//! versions). The generator is xoshiro256** (Blackman & Vigna, 2018) seeded through SplitMix64,
//! with Lemire's unbiased bounded integers.

/// SplitMix64 step, used to expand a 64-bit seed into generator state and to derive streams.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic pseudo-random number generator (xoshiro256**).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s }
    }

    /// An independent stream derived from `seed` and a label (e.g. a probe id or a patient
    /// index), so that adding one consumer never shifts another consumer's stream.
    pub fn derive(seed: u64, label: &str, index: u64) -> Self {
        // FNV-1a over the label, mixed with the seed and index through SplitMix64.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        let mut si = index;
        let mut sm = seed ^ h.rotate_left(17);
        let mixed = splitmix64(&mut sm) ^ splitmix64(&mut si).rotate_left(29);
        Self::new(mixed)
    }

    /// A 64-bit seed for a sub-stream (e.g. a model call's sampling seed).
    pub fn derive_seed(seed: u64, label: &str, index: u64) -> u64 {
        Self::derive(seed, label, index).next_u64()
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform integer in `0..n` (Lemire's nearly divisionless method, unbiased).
    ///
    /// # Panics
    /// Never for `n > 0`; `n == 0` returns 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Uniform index into a slice of length `n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform integer in the inclusive range `lo..=hi`.
    pub fn range_inclusive(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        let span = (hi - lo) as u64 + 1;
        lo + self.below(span) as i64
    }

    /// Uniform float in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal deviate (Box–Muller; one of the pair is discarded for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        // libm rather than the platform's maths library: the same stream on every platform.
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(std::f64::consts::TAU * u2)
    }

    /// A uniformly chosen element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
}

/// Weighted sampling table: O(log n) draws by binary search over cumulative weights.
#[derive(Debug, Clone)]
pub struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    /// Builds the table; non-finite or negative weights count as zero. Returns `None` when the
    /// total weight is zero.
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut total = 0.0;
        let cumulative: Vec<f64> = weights
            .into_iter()
            .map(|w| {
                if w.is_finite() && w > 0.0 {
                    total += w;
                }
                total
            })
            .collect();
        (total > 0.0).then_some(Self { cumulative })
    }

    /// Draws an index with probability proportional to its weight.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().expect("non-empty by construction");
        let x = rng.unit() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Whether the table is empty (never true for a constructed table).
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream is phiprobe's reproducibility promise: pinned to reference values, so a change
    /// that would shift any seeded finding fails here first. The expected values come from the
    /// published test vectors (xoshiro256** from state {1, 2, 3, 4}; SplitMix64 from 0) and from
    /// an independent Python implementation of the algorithms as this file documents them.
    #[test]
    fn the_stream_is_pinned_to_reference_values() {
        let mut r = Rng { s: [1, 2, 3, 4] };
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
        assert_eq!(splitmix64(&mut 0), 0xe220_a839_7b1d_cdaf);
        let mut r = Rng::new(7);
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                12923355070828475994,
                5142052590334782674,
                15488392906492639638,
                18098058644649177664
            ]
        );
        assert_eq!(Rng::derive_seed(7, "bootstrap", 3), 4896411650336575919);
        let mut r = Rng::new(7);
        let got: Vec<u64> = (0..5).map(|_| r.below(1000)).collect();
        assert_eq!(got, [700, 278, 839, 981, 990]);
        let mut r = Rng::new(7);
        let got: Vec<f64> = (0..3).map(|_| r.unit()).collect();
        assert_eq!(
            got,
            [0.7005764821796896, 0.2787512294737843, 0.8396274618764198]
        );
        let mut r = Rng::new(7);
        for want in [-0.2790239910251981, 1.8997685786889567, 2.136306014732201] {
            let got = r.normal();
            assert!(
                (got - want).abs() <= 4.0 * f64::EPSILON * want.abs(),
                "{got} vs {want}"
            );
        }
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn derived_streams_differ_by_label_and_index() {
        let x = Rng::derive(1, "a", 0).next_u64();
        assert_ne!(x, Rng::derive(1, "b", 0).next_u64());
        assert_ne!(x, Rng::derive(1, "a", 1).next_u64());
        assert_eq!(x, Rng::derive(1, "a", 0).next_u64());
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = Rng::new(3);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[r.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(11);
        let xs: Vec<f64> = (0..50_000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }

    #[test]
    fn weighted_follows_weights_and_skips_zero() {
        let w = Weighted::new([1.0, 0.0, 3.0]).unwrap();
        let mut r = Rng::new(5);
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[w.sample(&mut r)] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = f64::from(counts[2]) / f64::from(counts[0]);
        assert!((ratio - 3.0).abs() < 0.2, "{ratio}");
        assert!(Weighted::new([0.0, 0.0]).is_none());
    }
}
