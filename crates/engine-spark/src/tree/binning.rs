//! Split candidates and bins, as MLlib's `RandomForest.findSplits` and `TreePoint`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use trainbench_data::Partitioned;
use trainbench_engine::{Error, Result};

use crate::executor::Executor;

/// How one feature is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FeatureSplits {
    /// Thresholds, ascending; bin `b` holds `thresholds[b-1] < x <= thresholds[b]`.
    Continuous(Vec<f64>),
    /// A category index feature with this many categories; bin = category.
    Categorical(usize),
}

impl FeatureSplits {
    /// Number of bins.
    pub fn bins(&self) -> usize {
        match self {
            FeatureSplits::Continuous(t) => t.len() + 1,
            FeatureSplits::Categorical(arity) => *arity,
        }
    }
}

/// MLlib samples `max(maxBins², 10000)` rows to choose the thresholds.
fn required_samples(max_bins: usize) -> usize {
    (max_bins * max_bins).max(10_000)
}

/// Chooses split candidates for every feature from a seeded sample of the rows.
pub fn find_splits(
    exec: &Executor,
    data: &Partitioned,
    categorical: &[(usize, usize)],
    max_bins: usize,
    seed: u64,
) -> Result<Vec<FeatureSplits>> {
    let d = data.data.n_features;
    let n = data.data.rows();
    let fraction = (required_samples(max_bins) as f64 / n as f64).min(1.0);
    // Each partition samples with its own seeded stream, so the sample is the same for any
    // number of workers.
    let samples: Vec<Vec<Vec<f64>>> = exec.map_partitions(data.len(), |p| {
        let part = data.partition(p);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (p as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut columns = vec![Vec::new(); d];
        // Bernoulli sampling by gaps, as Spark's sampler does for small fractions: the number
        // of rows skipped before the next one taken is geometric, so one random draw per row
        // taken instead of one per row.
        let ln_q = (-fraction).ln_1p();
        let mut gap = || if fraction >= 1.0 { 0 } else { (rng.random::<f64>().max(f64::EPSILON).ln() / ln_q) as usize };
        let mut i = gap();
        while i < part.rows() {
            for (c, &x) in columns.iter_mut().zip(part.row(i)) {
                c.push(f64::from(x));
            }
            i = i.saturating_add(1 + gap());
        }
        columns
    });
    // Features are independent: sort their samples on the workers too.
    exec.map_partitions(d, |j| {
        if let Some(&(_, arity)) = categorical.iter().find(|(f, _)| *f == j) {
            if arity > max_bins {
                return Err(Error::InvalidParam {
                    name: "max_bins".into(),
                    value: max_bins.to_string(),
                    expected: format!("at least the {arity} categories of feature {j} (as MLlib requires)"),
                });
            }
            return Ok(FeatureSplits::Categorical(arity.max(1)));
        }
        let mut values: Vec<f64> = samples.iter().flat_map(|s| s[j].iter().copied()).collect();
        Ok(FeatureSplits::Continuous(continuous_thresholds(&mut values, max_bins - 1)))
    })
    .into_iter()
    .collect()
}

/// MLlib's `findSplitsForContinuousFeature`: midpoints between all distinct values when there are
/// few enough; otherwise thresholds at approximately equal-count quantiles of the sample.
pub fn continuous_thresholds(values: &mut [f64], num_splits: usize) -> Vec<f64> {
    if values.is_empty() {
        return Vec::new();
    }
    values.sort_unstable_by(f64::total_cmp);
    let mut counts: Vec<(f64, usize)> = Vec::new();
    for &v in values.iter() {
        match counts.last_mut() {
            Some((last, c)) if *last == v => *c += 1,
            _ => counts.push((v, 1)),
        }
    }
    let possible = counts.len() - 1;
    if possible == 0 {
        return Vec::new();
    }
    if possible <= num_splits {
        return (1..counts.len()).map(|i| (counts[i - 1].0 + counts[i].0) / 2.0).collect();
    }
    let stride = values.len() as f64 / (num_splits + 1) as f64;
    let mut out = Vec::with_capacity(num_splits);
    let mut current = counts[0].1 as f64;
    let mut target = stride;
    for i in 1..counts.len() {
        let previous = current;
        current += counts[i].1 as f64;
        if (previous - target).abs() < (current - target).abs() {
            out.push((counts[i - 1].0 + counts[i].0) / 2.0);
            target += stride;
        }
    }
    out
}

/// Bins whole rows, as MLlib's `TreePoint` does once before growing the tree. A continuous
/// feature's bin is the number of its thresholds below the value. Counted for all features of a
/// row at once, the comparisons run as vector instructions across features, with no
/// data-dependent branches (a binary search per value took three times as long).
pub struct RowBinner {
    d: usize,
    /// Thresholds as f32 rounded down, so for every f32 value x `t32 < x` exactly when `t < x`
    /// in f64. Features go in groups of [`LANES`]; group g's threshold k of its feature l is at
    /// `[(g * most + k) * LANES + l]`. +∞ pads features with fewer thresholds (and categorical
    /// ones): +∞ < x never holds for the finite values the tree sees.
    thresholds: Vec<f32>,
    /// The most thresholds any feature has.
    most: usize,
    /// (feature, arity) of the categorical features.
    categorical: Vec<(usize, usize)>,
}

/// Features compared at once: one AVX2 vector of f32.
const LANES: usize = 8;

impl RowBinner {
    /// A binner for rows with one value per entry of `splits`.
    pub fn new(splits: &[FeatureSplits]) -> Self {
        let d = splits.len();
        let most = splits
            .iter()
            .map(|s| match s {
                FeatureSplits::Continuous(t) => t.len(),
                FeatureSplits::Categorical(_) => 0,
            })
            .max()
            .unwrap_or(0);
        let mut thresholds = vec![f32::INFINITY; d.div_ceil(LANES) * most * LANES];
        let mut categorical = Vec::new();
        for (j, s) in splits.iter().enumerate() {
            match s {
                FeatureSplits::Continuous(t) => {
                    for (k, &th) in t.iter().enumerate() {
                        thresholds[((j / LANES) * most + k) * LANES + j % LANES] = f32_at_or_below(th);
                    }
                }
                FeatureSplits::Categorical(arity) => categorical.push((j, *arity)),
            }
        }
        Self { d, thresholds, most, categorical }
    }

    /// Writes the bins of `rows` (row-major, `d` values each) to `out`, one byte per value.
    /// Fails on a categorical value that is not one of its feature's category indices.
    pub fn bin_rows(&self, rows: &[f32], out: &mut [u8]) -> std::result::Result<(), String> {
        let d = self.d;
        assert_eq!(rows.len(), out.len(), "bin_rows: one byte per value");
        if self.most == 0 {
            // Every feature categorical or constant: the counting loops below write nothing.
            out.fill(0);
        }
        #[cfg(target_arch = "x86_64")]
        let done = std::arch::is_x86_feature_detected!("avx2") && {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.count_rows_avx2(rows, out) };
            true
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = false;
        if !done {
            self.count_rows(rows, out);
        }
        for &(j, arity) in &self.categorical {
            for (i, (x, bins)) in rows.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
                bins[j] = bin_of(&FeatureSplits::Categorical(arity), x[j])
                    .map_err(|e| format!("row {i} of the partition, feature {j}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The rows' threshold counts, one group of features at a time.
    fn count_rows(&self, rows: &[f32], out: &mut [u8]) {
        for (x, bins) in rows.chunks_exact(self.d).zip(out.chunks_exact_mut(self.d)) {
            for ((x, bins), group) in x.chunks(LANES).zip(bins.chunks_mut(LANES)).zip(self.groups()) {
                let mut count = [0u8; LANES];
                for t in group.chunks_exact(LANES) {
                    for l in 0..x.len() {
                        count[l] += u8::from(t[l] < x[l]);
                    }
                }
                bins.copy_from_slice(&count[..bins.len()]);
            }
        }
    }

    /// [`Self::count_rows`] with AVX2: one instruction compares eight features with one
    /// threshold each. Written with intrinsics, and so with its own feature check rather than
    /// `kernels::vectorized` (which recompiles portable code and runs it on any CPU): compiled
    /// that way, the portable loop vectorized along the thresholds instead and took 1.7–3× longer.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn count_rows_avx2(&self, rows: &[f32], out: &mut [u8]) {
        use std::arch::x86_64::*;
        for (x, bins) in rows.chunks_exact(self.d).zip(out.chunks_exact_mut(self.d)) {
            for ((x, bins), group) in x.chunks(LANES).zip(bins.chunks_mut(LANES)).zip(self.groups()) {
                let mut v = [f32::NEG_INFINITY; LANES];
                v[..x.len()].copy_from_slice(x);
                let mut count = [0u32; LANES];
                // SAFETY: each load reads one LANES-long chunk of f32, the store writes LANES
                // u32; the unaligned forms need no alignment.
                unsafe {
                    let v = _mm256_loadu_ps(v.as_ptr());
                    // −1 in each lane where the threshold lies below the value.
                    let below =
                        |t: &[f32]| _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_loadu_ps(t.as_ptr()), v));
                    // Two counters, so consecutive comparisons do not wait on each other.
                    let (mut c0, mut c1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    let pairs = group.chunks_exact(2 * LANES);
                    let rest = pairs.remainder();
                    for t in pairs {
                        c0 = _mm256_sub_epi32(c0, below(&t[..LANES]));
                        c1 = _mm256_sub_epi32(c1, below(&t[LANES..]));
                    }
                    if !rest.is_empty() {
                        c0 = _mm256_sub_epi32(c0, below(rest));
                    }
                    _mm256_storeu_si256(count.as_mut_ptr().cast(), _mm256_add_epi32(c0, c1));
                }
                for (b, c) in bins.iter_mut().zip(count) {
                    *b = c as u8;
                }
            }
        }
    }

    /// The threshold groups, [`LANES`] features each, in feature order.
    fn groups(&self) -> std::slice::ChunksExact<'_, f32> {
        self.thresholds.chunks_exact((self.most * LANES).max(1))
    }
}

/// The largest f32 at or below `t`: for f32 values x, `x > result` exactly when `x > t`.
fn f32_at_or_below(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) > t { r.next_down() } else { r }
}

/// The bin of `x`: the first threshold at or above it (or the last bin), or the category.
pub fn bin_of(splits: &FeatureSplits, x: f32) -> std::result::Result<u8, String> {
    match splits {
        FeatureSplits::Continuous(t) => {
            let x = f64::from(x);
            Ok(t.partition_point(|&th| th < x) as u8)
        }
        FeatureSplits::Categorical(arity) => {
            let c = x as i64;
            if x.fract() != 0.0 || c < 0 || c as usize >= *arity {
                Err(format!("category index {x} is not a whole number below {arity}"))
            } else {
                Ok(c as u8)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoints_when_few_distinct_values() {
        let mut v = vec![3.0, 1.0, 2.0, 2.0, 1.0];
        assert_eq!(continuous_thresholds(&mut v, 31), [1.5, 2.5]);
        assert!(continuous_thresholds(&mut [4.0, 4.0], 31).is_empty());
    }

    #[test]
    fn quantiles_when_many() {
        let mut v: Vec<f64> = (0..1000).map(f64::from).collect();
        let t = continuous_thresholds(&mut v, 3);
        assert_eq!(t, [249.5, 499.5, 749.5]);
        let s = FeatureSplits::Continuous(t);
        assert_eq!(bin_of(&s, 249.5).unwrap(), 0);
        assert_eq!(bin_of(&s, 250.0).unwrap(), 1);
        assert_eq!(bin_of(&s, 1e9).unwrap(), 3);
        assert!(bin_of(&FeatureSplits::Categorical(3), 3.0).is_err());
    }

    /// The row binner against the binary search, value by value: values at, just below and just
    /// above every threshold (in f32) and random ones; thresholds that f32 cannot hold; a
    /// categorical feature, one with fewer thresholds, one with none; 11 features (a full
    /// group of 8 and a partial one); the AVX2 path (on a CPU that has it) and the portable one.
    #[test]
    fn row_binner_agrees_with_the_binary_search() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = 11;
        let splits: Vec<FeatureSplits> = (0..d)
            .map(|j| match j {
                4 => FeatureSplits::Categorical(5),
                7 => FeatureSplits::Continuous(vec![0.1, 0.3]),
                9 => FeatureSplits::Continuous(vec![]),
                _ => {
                    let mut v: Vec<f64> = (0..500).map(|_| rng.random::<f64>() * 4.0 - 2.0).collect();
                    FeatureSplits::Continuous(continuous_thresholds(&mut v, 31))
                }
            })
            .collect();
        let mut rows = Vec::new();
        for r in 0..400 {
            for s in &splits {
                rows.push(match s {
                    FeatureSplits::Categorical(arity) => (r % arity) as f32,
                    FeatureSplits::Continuous(t) if !t.is_empty() && r < 300 => {
                        let th = t[r % t.len()] as f32;
                        [th.next_down(), th, th.next_up()][r / 100]
                    }
                    FeatureSplits::Continuous(_) => rng.random::<f32>() * 5.0 - 2.5,
                });
            }
        }
        let expected: Vec<u8> = rows.iter().enumerate().map(|(i, &x)| bin_of(&splits[i % d], x).unwrap()).collect();
        let binner = RowBinner::new(&splits);
        let mut out = vec![0; rows.len()];
        binner.bin_rows(&rows, &mut out).unwrap();
        assert_eq!(out, expected);
        assert!(expected.iter().step_by(d).any(|&b| b == 31), "values above the last threshold");
        // The portable loop counts thresholds only: the categorical feature's bins stay 0.
        let mut portable = vec![0; rows.len()];
        binner.count_rows(&rows, &mut portable);
        let continuous =
            |v: &[u8]| v.iter().enumerate().filter(|(i, _)| i % d != 4).map(|(_, &b)| b).collect::<Vec<_>>();
        assert_eq!(continuous(&portable), continuous(&expected));

        // No thresholds anywhere: every continuous bin is 0, the categories are kept.
        let flat = RowBinner::new(&[FeatureSplits::Continuous(vec![]), FeatureSplits::Categorical(3)]);
        let mut bins = [9; 4];
        flat.bin_rows(&[5.0, 2.0, -1.0, 1.0], &mut bins).unwrap();
        assert_eq!(bins, [0, 2, 0, 1]);

        rows[d + 4] = 7.0;
        let err = binner.bin_rows(&rows, &mut out).unwrap_err();
        assert!(err.contains("row 1") && err.contains("feature 4") && err.contains("below 5"), "{err}");
    }
}
