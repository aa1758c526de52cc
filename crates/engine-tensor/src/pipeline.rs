//! The input pipeline: a seeded shuffle each epoch, batching, and prefetch on a background thread
//! (tf.data's `shuffle → batch → prefetch`), so the training step does not wait for the gather.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::Scope;

use rand::SeedableRng;
use rand::seq::SliceRandom;
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

/// The order of the rows in `epoch`: a permutation drawn from (seed, epoch) alone, so a resumed
/// run sees the same batches as an uninterrupted one.
pub fn epoch_order(rows: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    order.shuffle(&mut rng);
    order
}

/// Starts a thread in `scope` that sends the batches of `epoch`, at most [`PREFETCH`] ahead.
pub fn prefetch<'scope>(
    scope: &'scope Scope<'scope, '_>,
    data: &'scope Prepared,
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Receiver<Batch> {
    let (tx, rx) = sync_channel(PREFETCH);
    scope.spawn(move || {
        let d = data.n_features;
        let order = epoch_order(data.labels.len(), seed, epoch);
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
