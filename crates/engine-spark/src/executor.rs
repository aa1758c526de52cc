//! The embedded executor: partitions processed in parallel on a pool of `workers` threads, and
//! their results combined by a tree aggregation in partition order, as Spark's `treeAggregate`.
//!
//! The combination order depends only on the partition index, never on which thread finished
//! first, so a run gives bit-identical results for 1 and N workers over the same partitions.
//!
//! Under `mpirun` the partitions are shared out among the processes (a contiguous block each);
//! every process computes its own, all-gathers the partition results and combines them in the
//! same tree, so the result is the same on every rank and bit-identical to one process's.

use std::ops::Range;

use rayon::prelude::*;
use trainbench_engine::collective::{self, Exchange};
use trainbench_engine::{Result, RunContext};

/// A pool of worker threads.
pub struct Executor {
    pool: rayon::ThreadPool,
}

impl Executor {
    /// A pool of `workers` threads (at least 1).
    pub fn new(workers: usize) -> Result<Self> {
        Ok(Self { pool: RunContext::new(workers, 0).thread_pool("spark-worker")? })
    }

    /// Runs `f` on partitions `0..n` in parallel; results come back in partition order.
    pub fn map_partitions<T: Send>(&self, n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        self.pool.install(|| (0..n).into_par_iter().map(&f).collect())
    }

    /// The partitions of `0..n` this process computes: all of them in a single process, its
    /// block under `mpirun`.
    pub fn owned(&self, n: usize) -> Range<usize> {
        let world = collective::world();
        collective::owned(n, world.rank(), world.size())
    }

    /// Runs `f` on this process's partitions of `0..n` ([`Executor::owned`]) in parallel; the
    /// others' slots hold `T::default()`.
    pub fn map_owned_partitions<T: Send + Default>(&self, n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        let own = self.owned(n);
        self.map_partitions(n, |p| if own.contains(&p) { f(p) } else { T::default() })
    }

    /// Runs `seq` on every partition in parallel, then merges the results pairwise in a binary
    /// tree over partition order: ((p0 + p1) + (p2 + p3)) + ... Under `mpirun` each process runs
    /// its partitions and the results are all-gathered before the same tree.
    pub fn tree_aggregate<T: Send + Exchange>(
        &self,
        n: usize,
        seq: impl Fn(usize) -> T + Sync + Send,
        mut comb: impl FnMut(T, T) -> T,
    ) -> Option<T> {
        let own = self.owned(n);
        let local = self.pool.install(|| own.into_par_iter().map(&seq).collect());
        let mut level = collective::all_gather_or_abort(local);
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len().div_ceil(2));
            let mut items = level.into_iter();
            while let Some(a) = items.next() {
                next.push(match items.next() {
                    Some(b) => comb(a, b),
                    None => a,
                });
            }
            level = next;
        }
        level.into_iter().next()
    }
}

/// Adds `b` into `a` element-wise (the usual combine step for sums of statistics).
pub fn add_into(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    for (x, y) in a.iter_mut().zip(&b) {
        *x += y;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_order_is_fixed_whatever_the_worker_count() {
        // Floating-point sums whose result depends on the order of addition.
        let values: Vec<f64> = (0..37).map(|i| 1.0 / (i as f64 + 1.0) * if i % 2 == 0 { 1e16 } else { 1.0 }).collect();
        let sum = |workers| {
            Executor::new(workers).unwrap().tree_aggregate(values.len(), |p| vec![values[p]], add_into).unwrap()[0]
        };
        let one = sum(1);
        assert_eq!(one.to_bits(), sum(2).to_bits());
        assert_eq!(one.to_bits(), sum(5).to_bits());
        let merged = Executor::new(2).unwrap().tree_aggregate(3, |p| vec![p as f64, 1.0], add_into).unwrap();
        assert_eq!(merged, [3.0, 3.0]);
    }
}
