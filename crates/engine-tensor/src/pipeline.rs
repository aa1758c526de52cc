//! The input pipeline: a seeded shuffle each epoch, batching, and prefetch on a background thread
//! (tf.data's `shuffle → batch → prefetch`), so the training step does not wait for the gather.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::Scope;

use rand::seq::SliceRandom;
use rand::{RngExt as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainbench_data::Prepared;
use trainbench_engine::collective;

/// Batches prepared ahead of the training step.
const PREFETCH: usize = 2;

/// One global batch, as far as this process computes it: rows gathered in shuffled order.
pub struct Batch {
    /// Step within the epoch, from 1.
    pub step: usize,
    /// Rows in the global batch (the last one of an epoch may be short, as in Keras).
    pub rows: usize,
    /// The global batch's row this process's rows start at: 0 in one process; under mpirun
    /// the first row of this process's replicas' slices (it gathers only those).
    pub first: usize,
    /// `held × n_features`, row-major, for the `held` rows from `first`.
    pub features: Vec<f32>,
    /// Class of each held row.
    pub labels: Vec<u32>,
}

/// The rows of a global batch of `rows` that this process's replicas compute: replica r of
/// `replicas` takes its contiguous slice `r·rows/R..(r+1)·rows/R` (R = `replicas` capped at the
/// rows), and a process's replicas are a contiguous block ([`collective::owned`]).
pub fn held_rows(rows: usize, replicas: usize) -> std::ops::Range<usize> {
    let replicas = replicas.min(rows).max(1);
    let world = collective::world();
    let own = collective::owned(replicas, world.rank(), world.size());
    own.start * rows / replicas..own.end * rows / replicas
}

/// The order of the rows in `epoch`, drawn from (seed, epoch) alone, so a resumed run sees the
/// same batches as an uninterrupted one. Without a buffer, or with one that holds every row, a
/// uniform permutation; with a smaller `buffer`, tf.data's `shuffle(buffer)`: the buffer is
/// filled with the first rows, each next row is drawn from it at random and its place taken by
/// the next row in file order, so the rows are read nearly in order (a file larger than memory
/// is then read sequentially, not at random).
pub fn epoch_order(rows: usize, seed: u64, epoch: usize, buffer: Option<usize>) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let buffer = buffer.unwrap_or(rows).max(1);
    if buffer >= rows {
        let mut order: Vec<usize> = (0..rows).collect();
        order.shuffle(&mut rng);
        return order;
    }
    let mut held: Vec<usize> = (0..buffer).collect();
    let mut next = buffer;
    let mut order = Vec::with_capacity(rows);
    while !held.is_empty() {
        let i = rng.random_range(0..held.len());
        order.push(held[i]);
        if next < rows {
            held[i] = next;
            next += 1;
        } else {
            held.swap_remove(i);
        }
    }
    order
}

/// tf.data's `shuffle(buffer)` over the rows as they lie: the buffer holds copies of the rows
/// (as tf.data's does), filled and refilled in file order, so the rows are read once and
/// sequentially — a prepared directory larger than memory is streamed, not paged at random.
/// It yields the rows in [`epoch_order`]'s order for the same buffer (the same draws).
struct BufferedShuffle<'a> {
    data: &'a Prepared,
    rng: ChaCha8Rng,
    /// Held rows' features (`held_labels.len()` rows) and labels.
    held: Vec<f32>,
    held_labels: Vec<u32>,
    /// The next row to read into the buffer.
    next: usize,
}

impl<'a> BufferedShuffle<'a> {
    fn new(data: &'a Prepared, buffer: usize, seed: u64, epoch: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch as u64);
        let filled = buffer.min(data.rows());
        let d = data.n_features;
        Self {
            data,
            rng,
            held: data.features[..filled * d].to_vec(),
            held_labels: data.labels[..filled].to_vec(),
            next: filled,
        }
    }

    /// Moves the next row of the order to the end of `features` and `labels`; false when all
    /// rows have been drawn.
    fn pop(&mut self, features: &mut Vec<f32>, labels: &mut Vec<u32>) -> bool {
        let held = self.held_labels.len();
        if held == 0 {
            return false;
        }
        let d = self.data.n_features;
        let i = self.rng.random_range(0..held);
        features.extend_from_slice(&self.held[i * d..(i + 1) * d]);
        labels.push(self.held_labels[i]);
        if self.next < self.data.rows() {
            let r = self.next;
            self.held[i * d..(i + 1) * d].copy_from_slice(&self.data.features[r * d..(r + 1) * d]);
            self.held_labels[i] = self.data.labels[r];
            self.next += 1;
        } else {
            // Vec::swap_remove, for both.
            let last = held - 1;
            self.held.copy_within(last * d..held * d, i * d);
            self.held.truncate(last * d);
            self.held_labels.swap_remove(i);
        }
        true
    }
}

/// Starts a thread in `scope` that sends the batches of `epoch`, at most [`PREFETCH`] ahead.
pub fn prefetch<'scope>(
    scope: &'scope Scope<'scope, '_>,
    data: &'scope Prepared,
    batch_size: usize,
    (seed, epoch): (u64, usize),
    shuffle_buffer: Option<usize>,
    replicas: usize,
) -> Receiver<Batch> {
    let (tx, rx) = sync_channel(PREFETCH);
    scope.spawn(move || {
        let d = data.n_features;
        let rows = data.rows();
        if let Some(buffer) = shuffle_buffer.filter(|&b| b < rows) {
            data.features.advise_sequential(true);
            let mut shuffle = BufferedShuffle::new(data, buffer.max(1), seed, epoch);
            for step in 1.. {
                let mut features = Vec::with_capacity(batch_size * d);
                let mut labels = Vec::with_capacity(batch_size);
                while labels.len() < batch_size && shuffle.pop(&mut features, &mut labels) {}
                if labels.is_empty() {
                    return;
                }
                // Every row passes through the buffer (the draws depend on all of them); the
                // batch keeps this process's rows.
                let rows = labels.len();
                let held = held_rows(rows, replicas);
                if held.len() < rows {
                    features = features[held.start * d..held.end * d].to_vec();
                    labels = labels[held.clone()].to_vec();
                }
                let batch = Batch { step, rows, first: held.start, features, labels };
                if tx.send(batch).is_err() {
                    return; // the training loop stopped early
                }
            }
            return;
        }
        let order = epoch_order(rows, seed, epoch, None);
        for (i, batch_rows) in order.chunks(batch_size).enumerate() {
            // Only the rows this process's replicas compute are read.
            let held = held_rows(batch_rows.len(), replicas);
            let rows = &batch_rows[held.clone()];
            let mut features = Vec::with_capacity(rows.len() * d);
            for &r in rows {
                features.extend_from_slice(&data.features[r * d..(r + 1) * d]);
            }
            let labels = rows.iter().map(|&r| data.labels[r]).collect();
            let batch = Batch { step: i + 1, rows: batch_rows.len(), first: held.start, features, labels };
            if tx.send(batch).is_err() {
                return; // the training loop stopped early
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_buffer_draws_every_row_once_from_a_moving_window() {
        let full = epoch_order(1000, 7, 3, None);
        assert_eq!(epoch_order(1000, 7, 3, Some(1000)), full);
        assert_eq!(epoch_order(1000, 7, 3, Some(5000)), full);
        for buffer in [1, 10, 100] {
            let order = epoch_order(1000, 7, 3, Some(buffer));
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "buffer {buffer}");
            // The k-th row drawn is among the first k + buffer rows.
            assert!(order.iter().enumerate().all(|(k, &r)| r < k + buffer), "buffer {buffer}");
            assert_eq!(order, epoch_order(1000, 7, 3, Some(buffer)));
            if buffer > 1 {
                assert_ne!(order, epoch_order(1000, 7, 4, Some(buffer)));
            }
        }
        assert_eq!(epoch_order(50, 1, 0, Some(1)), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn the_buffer_holds_row_copies_and_yields_the_order_of_epoch_order() {
        let rows = 500;
        let data = Prepared {
            features: (0..rows * 3).map(|v| v as f32).collect(),
            n_features: 3,
            labels: (0..rows as u32).collect(),
            feature_names: vec!["a".into(), "b".into(), "c".into()],
            class_names: vec!["x".into()],
            categorical_features: Vec::new(),
        };
        for buffer in [1, 7, 64, 499] {
            let want = epoch_order(rows, 11, 2, Some(buffer));
            let mut shuffle = BufferedShuffle::new(&data, buffer, 11, 2);
            let (mut features, mut labels) = (Vec::new(), Vec::new());
            while shuffle.pop(&mut features, &mut labels) {}
            let got: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
            assert_eq!(got, want, "buffer {buffer}");
            let gathered: Vec<f32> = want.iter().flat_map(|&r| data.row(r).to_vec()).collect();
            assert_eq!(features, gathered, "buffer {buffer}");
        }
    }
}
