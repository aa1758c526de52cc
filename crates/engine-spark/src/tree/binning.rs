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
        for i in 0..part.rows() {
            if fraction >= 1.0 || rng.random::<f64>() < fraction {
                for (c, &x) in columns.iter_mut().zip(part.row(i)) {
                    c.push(f64::from(x));
                }
            }
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
}
