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

/// The part a row goes to, as [`split_parts`] assigns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Part {
    /// Training rows.
    Train = 0,
    /// Validation rows.
    Valid = 1,
    /// Test rows.
    Test = 2,
}

/// Splits rows with labels `labels` (class indices below `classes`).
///
/// Stratified: within each class the rows are shuffled and `round(fraction × class size)` go to
/// test, then to validation; the rest train. Not stratified: the same over all rows at once.
/// Chronological: the last `round(test_fraction × rows)` rows test, the validation rows just
/// before them, the first rows train.
pub fn split(labels: &[u32], classes: usize, options: &SplitOptions) -> Result<Split> {
    let parts = split_parts(labels, classes, options)?;
    let mut out = Split::default();
    for (r, part) in parts.into_iter().enumerate() {
        match part {
            Part::Train => out.train.push(r),
            Part::Valid => out.valid.push(r),
            Part::Test => out.test.push(r),
        }
    }
    Ok(out)
}

/// The part of each row, as [`split`] decides it, in one byte a row: what a streaming prepare
/// keeps of a file too large for memory (it needs only the labels, four bytes a row, to decide).
pub fn split_parts(labels: &[u32], classes: usize, options: &SplitOptions) -> Result<Vec<Part>> {
    options.validate()?;
    let n = labels.len();
    let mut parts = vec![Part::Train; n];
    if options.chronological {
        let test = (options.test_fraction * n as f64).round() as usize;
        let valid = ((options.valid_fraction * n as f64).round() as usize).min(n - test);
        let train_end = n - test - valid;
        if train_end == 0 {
            return Err(Error::InvalidOption(format!("no rows left to train on out of {n}")));
        }
        parts[train_end..n - test].fill(Part::Valid);
        parts[n - test..].fill(Part::Test);
        return Ok(parts);
    }
    if u32::try_from(n).is_err() {
        return Err(Error::InvalidOption(format!("{n} rows: at most {} rows can be split", u32::MAX)));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    // Row numbers as u32: half the memory of usize, and the shuffle draws the same indices for
    // either (it depends on the length alone).
    let groups: Vec<Vec<u32>> = if options.stratify {
        let mut sizes = vec![0usize; classes];
        for &l in labels {
            sizes[l as usize] += 1;
        }
        let mut by_class: Vec<Vec<u32>> = sizes.into_iter().map(Vec::with_capacity).collect();
        for (r, &l) in labels.iter().enumerate() {
            by_class[l as usize].push(r as u32);
        }
        by_class
    } else {
        vec![(0..n as u32).collect()]
    };
    let mut train = 0;
    for mut group in groups {
        group.shuffle(&mut rng);
        let size = group.len() as f64;
        let test = (options.test_fraction * size).round() as usize;
        let valid = ((options.valid_fraction * size).round() as usize).min(group.len() - test);
        for &r in &group[..test] {
            parts[r as usize] = Part::Test;
        }
        for &r in &group[test..test + valid] {
            parts[r as usize] = Part::Valid;
        }
        train += group.len() - test - valid;
    }
    if train == 0 {
        return Err(Error::InvalidOption(format!("no rows left to train on out of {n}")));
    }
    Ok(parts)
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
    fn the_one_byte_parts_are_the_split_of_the_usize_shuffle() {
        // The split as it was written before the parts kept one byte a row: a shuffle of usize
        // row numbers. Models trained before must see the same rows.
        fn usize_split(labels: &[u32], classes: usize, o: &SplitOptions) -> Split {
            let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
            let mut by_class = vec![Vec::new(); classes];
            for (r, &l) in labels.iter().enumerate() {
                by_class[l as usize].push(r);
            }
            let mut out = Split::default();
            for mut group in by_class {
                group.shuffle(&mut rng);
                let n = group.len() as f64;
                let test = (o.test_fraction * n).round() as usize;
                let valid = ((o.valid_fraction * n).round() as usize).min(group.len() - test);
                out.test.extend_from_slice(&group[..test]);
                out.valid.extend_from_slice(&group[test..test + valid]);
                out.train.extend_from_slice(&group[test + valid..]);
            }
            out.train.sort_unstable();
            out.valid.sort_unstable();
            out.test.sort_unstable();
            out
        }
        let y: Vec<u32> = (0..5000u32).map(|i| (i * 7919 % 13) % 3).collect();
        for seed in [1, 42, 99] {
            let o = SplitOptions { valid_fraction: 0.1, test_fraction: 0.2, seed, ..SplitOptions::default() };
            assert_eq!(split(&y, 3, &o).unwrap(), usize_split(&y, 3, &o), "seed {seed}");
        }
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
