//! The processes a fit runs over: one, or the ranks of an MPI job (`mpirun -np N trainbench ...`).
//!
//! Like MPI's `COMM_WORLD`, the set of processes is a property of the process, not of a fit: the
//! binary installs it once at start ([`set_world`], MPI in the CLI's `mpi` feature) and both
//! engines read it ([`world`]). Without `mpirun` it is a single process and every exchange is a
//! copy.
//!
//! Both engines exchange by all-gather, every rank's contribution to every rank, and then combine
//! in a fixed order (the spark engine's tree over partition order; the tensor engine's replicas
//! in replica order). An `MPI_Allreduce` would move less, but the order in which it adds is the MPI
//! library's: the gather keeps results bit-identical to one process with the same partitions or
//! replicas, whatever the number of ranks.

use std::time::Instant;

use crate::{Error, Result};
use trainbench_data::Prepared;
pub use trainbench_data::world::{Collective, SingleProcess, is_primary, owned, set_world, world};

/// A reading of the exchange clock, for [`communication_since`].
pub fn communication_mark() -> f64 {
    world().communication_seconds()
}

/// Exchange seconds since `mark` ([`communication_mark`]); none in a single process.
pub fn communication_since(mark: f64) -> Option<f64> {
    (world().size() > 1).then(|| world().communication_seconds() - mark)
}

/// Values that travel between processes as bytes (little-endian, bit-exact).
pub trait Exchange: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value from the front of `bytes`, advancing it.
    fn decode(bytes: &mut &[u8]) -> Result<Self>;
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if bytes.len() < n {
        return Err(Error::Backend(format!("a message between processes is cut short ({} of {n} bytes)", bytes.len())));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn decode_len(bytes: &mut &[u8]) -> Result<usize> {
    let raw = take(bytes, 8)?;
    Ok(u64::from_le_bytes(raw.try_into().unwrap_or_default()) as usize)
}

macro_rules! exchange_vec {
    ($t:ty, $width:expr) => {
        impl Exchange for Vec<$t> {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&(self.len() as u64).to_le_bytes());
                out.reserve(self.len() * $width);
                for v in self {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            fn decode(bytes: &mut &[u8]) -> Result<Self> {
                let n = decode_len(bytes)?;
                let raw = take(bytes, n.saturating_mul($width))?;
                Ok(raw.chunks_exact($width).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default())).collect())
            }
        }
    };
}

exchange_vec!(f64, 8);
exchange_vec!(f32, 4);
exchange_vec!(u32, 4);
exchange_vec!(u8, 1);

/// Every rank's list of values, concatenated in rank order, on every rank; a message that does not
/// decode ends the job ([`Collective::abort`]). With one process it moves nothing.
pub fn all_gather_or_abort<T: Exchange>(local: Vec<T>) -> Vec<T> {
    all_gather_values(local).unwrap_or_else(|e| world().abort(&e.to_string()))
}

/// Every rank's list of values, concatenated in rank order, on every rank. With one process it
/// moves nothing.
pub fn all_gather_values<T: Exchange>(local: Vec<T>) -> Result<Vec<T>> {
    let world = world();
    if world.size() == 1 {
        return Ok(local);
    }
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(local.len() as u64).to_le_bytes());
    for v in &local {
        v.encode(&mut bytes);
    }
    drop(local);
    let mut all = Vec::new();
    for (rank, message) in world.all_gather(&bytes).into_iter().enumerate() {
        let mut rest = message.as_slice();
        let count = decode_len(&mut rest)?;
        for _ in 0..count {
            all.push(T::decode(&mut rest).map_err(|e| Error::Backend(format!("from rank {rank}: {e}")))?);
        }
    }
    Ok(all)
}

/// Checks that every rank trains on the same rows: each prepared its copy of the data itself
/// (a shared path or a copy per host), so a different file or preprocessing on one host would
/// otherwise train a model that is no one's. The error names the ranks that differ.
pub fn check_same_data(train: &Prepared) -> Result<()> {
    let world = world();
    if world.size() == 1 {
        return Ok(());
    }
    let mine = fingerprint(train);
    let all = world.all_gather(&mine.to_le_bytes());
    let of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let root = of(&all[0]);
    let differ: Vec<String> =
        all.iter().enumerate().filter(|(_, b)| of(b) != root).map(|(r, _)| r.to_string()).collect();
    if differ.is_empty() {
        Ok(())
    } else {
        Err(Error::Data(format!(
            "rank {} prepared other training rows than rank 0 ({} rows × {} features here): every \
             process must read the same data file with the same options",
            differ.join(", "),
            train.rows(),
            train.n_features
        )))
    }
}

/// A 64-bit hash of the shape, the labels and the features' bits: FNV-1a's multiply over whole
/// words (two features at a time), with a rotation so that a value's high bits reach the low ones
/// (byte-wise FNV took 0.2 s on a million rows × 28 features, inside the fit's time).
/// Rows mapped from a prepared directory are known by their files' checked CRC-32s, so no rank
/// reads rows outside its share to compare them.
fn fingerprint(data: &Prepared) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |word: u64| h = (h ^ word).wrapping_mul(0x0100_0000_01b3).rotate_left(23);
    add(data.rows() as u64);
    add(data.n_features as u64);
    if let (Some(features), Some(labels)) = (data.features.checksum(), data.labels.checksum()) {
        add(u64::from(features) << 32 | u64::from(labels));
        return h;
    }
    data.labels.iter().for_each(|&y| add(u64::from(y)));
    for pair in data.features.chunks(2) {
        let high = pair.get(1).map_or(0, |v| u64::from(v.to_bits()));
        add(u64::from(pair[0].to_bits()) | high << 32);
    }
    h
}

/// Times exchanges for [`Collective::communication_seconds`].
#[derive(Default)]
pub struct CommClock {
    nanos: std::sync::atomic::AtomicU64,
}

impl CommClock {
    /// Runs `f`, adding its wall time.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.nanos.fetch_add(start.elapsed().as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
        out
    }

    /// Seconds so far.
    pub fn seconds(&self) -> f64 {
        self.nanos.load(std::sync::atomic::Ordering::Relaxed) as f64 * 1e-9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_item_once() {
        for n in [0, 1, 5, 8] {
            for size in 1..4 {
                let blocks: Vec<usize> = (0..size).flat_map(|r| owned(n, r, size)).collect();
                assert_eq!(blocks, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn the_fingerprint_sees_one_changed_value_or_label() {
        let data = Prepared {
            features: (0..30).map(|v| v as f32 * 0.1).collect(),
            n_features: 3,
            labels: (0..10).map(|r| r % 2).collect(),
            feature_names: vec!["a".into(), "b".into(), "c".into()],
            class_names: vec!["x".into(), "y".into()],
            categorical_features: Vec::new(),
        };
        let base = fingerprint(&data);
        assert_eq!(base, fingerprint(&data.clone()));
        for i in [0, 1, 17, 29] {
            let mut other = data.clone();
            other.features.to_mut()[i] = f32::from_bits(other.features[i].to_bits() ^ 1);
            assert_ne!(fingerprint(&other), base, "feature value {i}");
        }
        let mut other = data.clone();
        other.labels.to_mut()[9] = 0;
        assert_ne!(fingerprint(&other), base);
    }

    #[test]
    fn values_travel_bit_exact_and_short_messages_are_errors() {
        let v = vec![1.0f64 / 3.0, -0.0, f64::MIN_POSITIVE, 1e300];
        let mut bytes = Vec::new();
        v.encode(&mut bytes);
        vec![7u32, 9].encode(&mut bytes);
        let mut rest = bytes.as_slice();
        let back = Vec::<f64>::decode(&mut rest).unwrap();
        assert!(back.iter().zip(&v).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(Vec::<u32>::decode(&mut rest).unwrap(), [7, 9]);
        assert!(rest.is_empty());
        let mut cut = &bytes[..12];
        assert!(Vec::<f64>::decode(&mut cut).unwrap_err().to_string().contains("cut short"));
        assert_eq!(all_gather_values(vec![vec![1u8, 2]]).unwrap(), [vec![1u8, 2]]);
    }
}
