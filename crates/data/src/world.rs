//! The processes a run spans: one, or the ranks of an MPI job (`mpirun -np N trainbench ...`).
//!
//! Like MPI's `COMM_WORLD`, the set of processes is a property of the process, not of a run: the
//! binary installs it once at start ([`set_world`], MPI in the CLI's `mpi` feature) and every
//! layer reads it ([`world`]): the data layer, where each rank prepares its share of a file, and
//! both engines (`trainbench_engine::collective`). Without `mpirun` it is a single process and
//! every exchange is a copy.

use std::ops::Range;
use std::sync::OnceLock;

/// The communication one fit needs between processes.
pub trait Collective: Send + Sync {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Every rank's `local` bytes (lengths may differ), in rank order, on every rank.
    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>>;
    /// Rank `root`'s `bytes` on every rank (`bytes` is only read on the root).
    fn broadcast(&self, root: usize, bytes: Vec<u8>) -> Vec<u8>;
    /// Seconds this process has spent in exchanges (waiting included) since it started.
    fn communication_seconds(&self) -> f64;
    /// Ends every process of the job after an exchange went wrong (MPI's rule: a communication
    /// error is fatal to the job), saying `message` and this rank on stderr.
    fn abort(&self, message: &str) -> !;
}

/// One process: nothing to exchange.
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
        vec![local.to_vec()]
    }
    fn broadcast(&self, _root: usize, bytes: Vec<u8>) -> Vec<u8> {
        bytes
    }
    fn communication_seconds(&self) -> f64 {
        0.0
    }
    fn abort(&self, message: &str) -> ! {
        eprintln!("error: {message}");
        std::process::exit(1)
    }
}

static WORLD: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// Installs the process's world; once, before any fit. False if one was already installed.
pub fn set_world(world: Box<dyn Collective>) -> bool {
    WORLD.set(world).is_ok()
}

/// The processes this one trains with ([`SingleProcess`] unless [`set_world`] installed others).
pub fn world() -> &'static dyn Collective {
    WORLD.get_or_init(|| Box::new(SingleProcess)).as_ref()
}

/// Whether this process writes the run's files (checkpoints, TensorBoard, reports): rank 0.
pub fn is_primary() -> bool {
    world().rank() == 0
}

/// The items of `0..n` rank `rank` of `size` owns: a contiguous block, as even as can be.
pub fn owned(n: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    rank * n / size..(rank + 1) * n / size
}
