//! The processes of a run: one, or the ranks of an MPI job started by `mpirun` / `srun` (the
//! runtime Horovod uses; on Kubernetes the MPI Operator starts it). MPI comes with the `mpi`
//! cargo feature (Open MPI: Debian's `libopenmpi-dev openmpi-bin`); a build without it refuses
//! to run as several processes rather than train N separate models.

use anyhow::{Result, bail};

/// How many processes the launcher started, from the environment it gives each one (Open MPI,
/// MPICH / Slurm's PMI, PMIx); 1 when started without a launcher.
fn launched_processes() -> usize {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1)
}

/// Joins the job when started by an MPI launcher, installing the world the engines exchange
/// through; the guard ends MPI when dropped (at the end of `main`).
pub fn join() -> Result<Option<Guard>> {
    let launched = launched_processes();
    #[cfg(feature = "mpi")]
    if launched > 1 || std::env::var_os("OMPI_COMM_WORLD_RANK").is_some() {
        return mpi_world::join().map(Some);
    }
    if launched > 1 {
        bail!(
            "started as {launched} processes (mpirun), but this trainbench was built without MPI; \
             build it with `--features mpi` (needs Open MPI: apt-get install libopenmpi-dev openmpi-bin libclang-dev)"
        );
    }
    Ok(None)
}

/// Ends MPI when dropped.
pub struct Guard {
    #[cfg(feature = "mpi")]
    _universe: mpi::environment::Universe,
}

/// The commands that run across processes: their fits exchange every iteration or step, and
/// `prepare --out` has each rank prepare its share of the file.
const ACROSS_PROCESSES: [&str; 4] = ["prepare", "train", "compare", "scale"];

/// Refuses, under mpirun, a command that runs in one process only.
pub fn check_command(command: &str) -> Result<()> {
    let world = trainbench_engine::collective::world();
    if world.size() > 1 && !ACROSS_PROCESSES.contains(&command) {
        bail!(
            "`{command}` runs in one process; start it without mpirun ({} run under mpirun)",
            ACROSS_PROCESSES.join(", ")
        );
    }
    Ok(())
}

/// Refuses, under mpirun, runs on a Spark cluster: every rank would submit the same job.
pub fn check_local(spark_remote: Option<&str>) -> Result<()> {
    if trainbench_engine::collective::world().size() > 1 && spark_remote.is_some() {
        bail!("--spark-remote runs on the Spark cluster's own executors; start it without mpirun");
    }
    Ok(())
}

/// Waits until rank 0 has reached this point too (a no-op in one process).
pub fn wait_for_primary() {
    let world = trainbench_engine::collective::world();
    if world.size() > 1 {
        world.broadcast(0, Vec::new());
    }
}

/// Rank 0 prints and writes files; the others stay quiet.
pub fn quiet_unless_primary() {
    if trainbench_engine::collective::is_primary() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            // SAFETY: dup2 on two open descriptors; stdout now goes to /dev/null.
            unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
        }
    }
}

#[cfg(feature = "mpi")]
mod mpi_world {
    use std::sync::Mutex;

    use anyhow::{Result, anyhow, bail};
    use mpi::Threading;
    use mpi::datatype::PartitionMut;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;
    use trainbench_engine::collective::{self, Collective, CommClock};

    use super::Guard;

    /// `MPI_COMM_WORLD`, one call at a time.
    struct MpiWorld {
        comm: Mutex<Comm>,
        rank: usize,
        size: usize,
        clock: CommClock,
    }

    struct Comm(SimpleCommunicator);

    // SAFETY: MPI is initialized with MPI_THREAD_SERIALIZED, which allows calls from any thread
    // as long as no two run at once; the mutex around the communicator guarantees that.
    unsafe impl Send for Comm {}

    pub fn join() -> Result<Guard> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| anyhow!("MPI was already initialized"))?;
        if threading < Threading::Serialized {
            bail!("the MPI library gives thread level {threading:?}; trainbench needs Serialized");
        }
        let comm = universe.world();
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        let world = MpiWorld { comm: Mutex::new(Comm(comm)), rank, size, clock: CommClock::default() };
        if !collective::set_world(Box::new(world)) {
            bail!("the process's world was set before MPI started");
        }
        Ok(Guard { _universe: universe })
    }

    impl MpiWorld {
        fn with<T>(&self, f: impl FnOnce(&SimpleCommunicator) -> T) -> T {
            let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
            self.clock.time(|| f(&comm.0))
        }
    }

    impl Collective for MpiWorld {
        fn rank(&self) -> usize {
            self.rank
        }

        fn size(&self) -> usize {
            self.size
        }

        fn all_gather(&self, local: &[u8]) -> Vec<Vec<u8>> {
            let Ok(len) = i32::try_from(local.len()) else {
                self.abort(&format!("a message of {} bytes is over MPI's 2 GiB limit", local.len()));
            };
            self.with(|comm| {
                let mut counts = vec![0i32; self.size];
                comm.all_gather_into(&len, &mut counts[..]);
                let displs: Vec<i32> = counts
                    .iter()
                    .scan(0i64, |at, &c| {
                        let d = *at;
                        *at += i64::from(c);
                        Some(i32::try_from(d).unwrap_or(i32::MAX))
                    })
                    .collect();
                let total: usize = counts.iter().map(|&c| c as usize).sum();
                if total > i32::MAX as usize {
                    self.abort(&format!("the gathered messages, {total} bytes, are over MPI's 2 GiB limit"));
                }
                let mut all = vec![0u8; total];
                {
                    let mut parts = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
                    comm.all_gather_varcount_into(local, &mut parts);
                }
                counts.iter().zip(&displs).map(|(&c, &d)| all[d as usize..d as usize + c as usize].to_vec()).collect()
            })
        }

        fn broadcast(&self, root: usize, mut bytes: Vec<u8>) -> Vec<u8> {
            self.with(|comm| {
                let process = comm.process_at_rank(root as i32);
                let mut len = bytes.len() as u64;
                process.broadcast_into(&mut len);
                bytes.resize(len as usize, 0);
                // An empty buffer is an invalid argument to MPI_Bcast.
                if len > 0 {
                    process.broadcast_into(&mut bytes[..]);
                }
                bytes
            })
        }

        fn communication_seconds(&self) -> f64 {
            self.clock.seconds()
        }

        fn abort(&self, message: &str) -> ! {
            eprintln!("error: rank {} of {}: {message}", self.rank, self.size);
            // Not through `with`: the lock may be held by the exchange that failed.
            SimpleCommunicator::world().abort(1)
        }
    }
}
