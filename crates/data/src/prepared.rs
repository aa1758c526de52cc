//! The form every engine trains on: dense f32 features, row-major, with u32 labels.

use std::borrow::Cow;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::buffer::Buffer;

/// Features and labels ready for training or scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    /// `rows × n_features` values, row after row: in memory, or mapped from a prepared directory.
    pub features: Buffer<f32>,
    /// Width of a row.
    pub n_features: usize,
    /// Class index of each row (into `class_names`).
    pub labels: Buffer<u32>,
    /// Name of each feature column (one-hot columns are `column=value`).
    pub feature_names: Vec<String>,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Features that hold a category index (encoding `index`), with their number of
    /// categories, so trees can split them as categories; empty with one-hot encoding.
    #[serde(default)]
    pub categorical_features: Vec<(usize, usize)>,
}

/// How rows are assigned to partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    /// Consecutive runs of rows, as a file is split into blocks.
    Contiguous,
    /// Rows shuffled with the seed first (as after a repartition).
    Shuffled {
        /// Seed of the shuffle.
        seed: u64,
    },
}

/// A borrowed slice of consecutive rows.
#[derive(Debug, Clone, Copy)]
pub struct PartitionView<'a> {
    /// `rows × n_features` values.
    pub features: &'a [f32],
    /// One label per row.
    pub labels: &'a [u32],
    /// Width of a row.
    pub n_features: usize,
}

impl PartitionView<'_> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }
}

impl Prepared {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }

    /// The whole set as one partition.
    pub fn view(&self) -> PartitionView<'_> {
        PartitionView { features: &self.features, labels: &self.labels, n_features: self.n_features }
    }

    /// The rows `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Prepared {
        let mut features = Vec::with_capacity(rows.len() * self.n_features);
        for &r in rows {
            features.extend_from_slice(self.row(r));
        }
        Prepared {
            features: features.into(),
            n_features: self.n_features,
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            feature_names: self.feature_names.clone(),
            class_names: self.class_names.clone(),
            categorical_features: self.categorical_features.clone(),
        }
    }

    /// Rows per class, index = label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Splits into `n` partitions whose sizes differ by at most one row (the first ones get the
    /// extra rows). Contiguous partitions borrow the rows; with [`Partitioning::Shuffled`] the
    /// rows are shuffled into a copy first.
    pub fn partitioned(&self, n: usize, how: Partitioning) -> Partitioned<'_> {
        let data = match how {
            Partitioning::Contiguous => Cow::Borrowed(self),
            Partitioning::Shuffled { seed } => {
                let mut order: Vec<usize> = (0..self.rows()).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
                Cow::Owned(self.take(&order))
            }
        };
        let n = n.clamp(1, data.rows().max(1));
        let (base, extra) = (data.rows() / n, data.rows() % n);
        let mut bounds = vec![0];
        for p in 0..n {
            bounds.push(bounds[p] + base + usize::from(p < extra));
        }
        Partitioned { data, bounds }
    }
}

/// Rows cut into partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Partitioned<'a> {
    /// All rows, in partition order.
    pub data: Cow<'a, Prepared>,
    /// Partition `p` is rows `bounds[p]..bounds[p + 1]`.
    pub bounds: Vec<usize>,
}

impl Partitioned<'_> {
    /// Number of partitions.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Whether there is no partition (never: at least one is made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Partition `p`.
    pub fn partition(&self, p: usize) -> PartitionView<'_> {
        let (a, b) = (self.bounds[p], self.bounds[p + 1]);
        let d = self.data.n_features;
        PartitionView { features: &self.data.features[a * d..b * d], labels: &self.data.labels[a..b], n_features: d }
    }

    /// Every partition in order.
    pub fn partitions(&self) -> Vec<PartitionView<'_>> {
        (0..self.len()).map(|p| self.partition(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rows: usize) -> Prepared {
        Prepared {
            features: (0..rows * 2).map(|v| v as f32).collect(),
            n_features: 2,
            labels: (0..rows as u32).map(|r| r % 2).collect(),
            feature_names: vec!["a".into(), "b".into()],
            class_names: vec!["x".into(), "y".into()],
            categorical_features: Vec::new(),
        }
    }

    #[test]
    fn contiguous_partitions_cover_rows_in_order() {
        let data = sample(10);
        let parts = data.partitioned(3, Partitioning::Contiguous);
        let sizes: Vec<usize> = parts.partitions().iter().map(|p| p.rows()).collect();
        assert_eq!(sizes, [4, 3, 3]);
        assert_eq!(parts.partition(1).row(0), [8.0, 9.0]);
        assert_eq!(sample(2).partitioned(5, Partitioning::Contiguous).len(), 2);
    }

    #[test]
    fn shuffled_partitions_keep_rows_whole_and_depend_on_seed() {
        let data = sample(50);
        let a = data.partitioned(4, Partitioning::Shuffled { seed: 3 });
        let b = data.partitioned(4, Partitioning::Shuffled { seed: 3 });
        let c = data.partitioned(4, Partitioning::Shuffled { seed: 4 });
        assert_eq!(a, b);
        assert_ne!(a.data.labels, c.data.labels);
        for i in 0..50 {
            let row = a.data.row(i);
            // Row r holds (2r, 2r + 1) and label r % 2.
            let r = row[0] as usize / 2;
            assert_eq!(row[1], row[0] + 1.0);
            assert_eq!(a.data.labels[i], (r % 2) as u32);
        }
        assert_eq!(a.data.class_counts(), [25, 25]);
    }
}
