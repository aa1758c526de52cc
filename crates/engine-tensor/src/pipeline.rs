//! The input pipeline: a seeded shuffle each epoch, batching, and prefetch on a background thread
//! (tf.data's `shuffle → batch → prefetch`), so the training step does not wait for the gather.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::Scope;

use rand::seq::SliceRandom;
use rand::{RngExt as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainbench_data::Prepared;

/// Batches prepared ahead of the training step.
const PREFETCH: usize = 2;

/// One global batch: rows gathered in shuffled order.
pub struct Batch {
    /// Step within the epoch, from 1.
    pub step: usize,
    /// Rows in this batch (the last one of an epoch may be short, as in Keras).
    pub rows: usize,
    /// `rows × n_features`, row-major.
    pub features: Vec<f32>,
    /// Class of each row.
    pub labels: Vec<u32>,
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

/// Starts a thread in `scope` that sends the batches of `epoch`, at most [`PREFETCH`] ahead.
pub fn prefetch<'scope>(
    scope: &'scope Scope<'scope, '_>,
    data: &'scope Prepared,
    batch_size: usize,
    seed: u64,
    epoch: usize,
    shuffle_buffer: Option<usize>,
) -> Receiver<Batch> {
    let (tx, rx) = sync_channel(PREFETCH);
    scope.spawn(move || {
        let d = data.n_features;
        let order = epoch_order(data.labels.len(), seed, epoch, shuffle_buffer);
        for (i, rows) in order.chunks(batch_size).enumerate() {
            let mut features = Vec::with_capacity(rows.len() * d);
            for &r in rows {
                features.extend_from_slice(&data.features[r * d..(r + 1) * d]);
            }
            let labels = rows.iter().map(|&r| data.labels[r]).collect();
            let batch = Batch { step: i + 1, rows: rows.len(), features, labels };
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
}
