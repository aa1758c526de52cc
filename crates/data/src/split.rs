//! Train / validation / test splits, stratified by label and seeded; k-fold for tuning.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Fractions of the rows held out; training gets the rest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitOptions {
    /// Fraction for validation (early stopping, tuning).
    pub valid_fraction: f64,
    /// Fraction for the final test.
    pub test_fraction: f64,
    /// Keep each class's share the same in every part.
    pub stratify: bool,
    /// Keep the file's row order: training rows first, then validation, then test (for time
    /// series, where a shuffled split would train on the future); no shuffle, no stratification.
    #[serde(default)]
    pub chronological: bool,
    /// Seed of the shuffle.
    pub seed: u64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        Self { valid_fraction: 0.0, test_fraction: 0.2, stratify: true, chronological: false, seed: 42 }
    }
}

impl SplitOptions {
    /// Checks that the fractions leave rows to train on.
    pub fn validate(&self) -> Result<()> {
        let ok = |f: f64| (0.0..1.0).contains(&f);
        if !ok(self.valid_fraction) || !ok(self.test_fraction) || self.valid_fraction + self.test_fraction >= 1.0 {
            return Err(Error::InvalidOption(format!(
                "validation fraction {} and test fraction {} must each be in [0, 1) and sum to less than 1",
                self.valid_fraction, self.test_fraction
            )));
        }
        Ok(())
    }
}

/// Row indices of each part, each in ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub valid: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
}

/// Splits rows with labels `labels` (class indices below `classes`).
///
/// Stratified: within each class the rows are shuffled and `round(fraction × class size)` go to
/// test, then to validation; the rest train. Not stratified: the same over all rows at once.
/// Chronological: the last `round(test_fraction × rows)` rows test, the validation rows just
/// before them, the first rows train.
pub fn split(labels: &[u32], classes: usize, options: &SplitOptions) -> Result<Split> {
    options.validate()?;
    if options.chronological {
        let n = labels.len();
        let test = (options.test_fraction * n as f64).round() as usize;
        let valid = ((options.valid_fraction * n as f64).round() as usize).min(n - test);
        let train_end = n - test - valid;
        if train_end == 0 {
            return Err(Error::InvalidOption(format!("no rows left to train on out of {n}")));
        }
        return Ok(Split {
            train: (0..train_end).collect(),
            valid: (train_end..n - test).collect(),
            test: (n - test..n).collect(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let groups: Vec<Vec<usize>> = if options.stratify {
        let mut by_class = vec![Vec::new(); classes];
        for (r, &l) in labels.iter().enumerate() {
            by_class[l as usize].push(r);
        }
        by_class
    } else {
        vec![(0..labels.len()).collect()]
    };
    let mut out = Split::default();
    for mut group in groups {
        group.shuffle(&mut rng);
        let n = group.len() as f64;
        let test = (options.test_fraction * n).round() as usize;
        let valid = ((options.valid_fraction * n).round() as usize).min(group.len() - test);
        out.test.extend_from_slice(&group[..test]);
        out.valid.extend_from_slice(&group[test..test + valid]);
        out.train.extend_from_slice(&group[test + valid..]);
    }
    out.train.sort_unstable();
    out.valid.sort_unstable();
    out.test.sort_unstable();
    if out.train.is_empty() {
        return Err(Error::InvalidOption(format!("no rows left to train on out of {}", labels.len())));
    }
    Ok(out)
}

/// Stratified k-fold: `k` pairs (training rows, validation rows); every row is validated once.
pub fn stratified_kfold(labels: &[u32], classes: usize, k: usize, seed: u64) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    if k < 2 || k > labels.len() {
        return Err(Error::InvalidOption(format!("k-fold needs 2 <= k <= rows ({}), got k = {k}", labels.len())));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold_of = vec![0usize; labels.len()];
    // Deal each class's shuffled rows round-robin, continuing the rotation across classes so
    // fold sizes differ by at most one.
    let mut next = 0;
    for class in 0..classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&r| labels[r] as usize == class).collect();
        rows.shuffle(&mut rng);
        for r in rows {
            fold_of[r] = next % k;
            next += 1;
        }
    }
    Ok((0..k)
        .map(|f| {
            let (valid, train): (Vec<usize>, Vec<usize>) = (0..labels.len()).partition(|&r| fold_of[r] == f);
            (train, valid)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<u32> {
        // 700 of class 0, 200 of class 1, 100 of class 2.
        (0..1000)
            .map(|i| {
                if i < 700 {
                    0
                } else if i < 900 {
                    1
                } else {
                    2
                }
            })
            .collect()
    }

    #[test]
    fn stratified_proportions_and_disjoint_cover() {
        let y = labels();
        let opts = SplitOptions { valid_fraction: 0.1, test_fraction: 0.2, seed: 7, ..SplitOptions::default() };
        let s = split(&y, 3, &opts).unwrap();
        let count = |rows: &[usize], c: u32| rows.iter().filter(|&&r| y[r] == c).count();
        assert_eq!([count(&s.test, 0), count(&s.test, 1), count(&s.test, 2)], [140, 40, 20]);
        assert_eq!([count(&s.valid, 0), count(&s.valid, 1), count(&s.valid, 2)], [70, 20, 10]);
        assert_eq!(s.train.len(), 700);
        let mut all: Vec<usize> = s.train.iter().chain(&s.valid).chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        // Same seed, same split; another seed, another split.
        assert_eq!(split(&y, 3, &opts).unwrap(), s);
        assert_ne!(split(&y, 3, &SplitOptions { seed: 8, ..opts }).unwrap().test, s.test);
    }

    #[test]
    fn chronological_keeps_the_row_order() {
        let y = labels();
        let opts = SplitOptions { valid_fraction: 0.1, test_fraction: 0.25, chronological: true, ..Default::default() };
        let s = split(&y, 3, &opts).unwrap();
        assert_eq!(s.train, (0..650).collect::<Vec<_>>());
        assert_eq!(s.valid, (650..750).collect::<Vec<_>>());
        assert_eq!(s.test, (750..1000).collect::<Vec<_>>());
        // The seed plays no part.
        assert_eq!(split(&y, 3, &SplitOptions { seed: 9, ..opts }).unwrap(), s);
    }

    #[test]
    fn rejects_fractions_that_leave_nothing() {
        let bad = SplitOptions { valid_fraction: 0.5, test_fraction: 0.5, ..SplitOptions::default() };
        assert!(split(&labels(), 3, &bad).unwrap_err().to_string().contains("sum to less than 1"));
    }

    #[test]
    fn kfold_validates_every_row_once_with_class_balance() {
        let y = labels();
        let folds = stratified_kfold(&y, 3, 5, 1).unwrap();
        let mut seen = vec![0; y.len()];
        for (train, valid) in &folds {
            assert_eq!(train.len() + valid.len(), y.len());
            assert_eq!(valid.len(), 200);
            assert_eq!(valid.iter().filter(|&&r| y[r] == 2).count(), 20);
            for &r in valid {
                seen[r] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
        assert!(stratified_kfold(&y, 3, 1, 1).is_err());
    }
}
