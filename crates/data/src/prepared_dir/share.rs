//! Which part of the source a process reads, and how processes exchange what they learned.
//!
//! Under `mpirun` rank r of P reads only its share of the file: a CSV file's bytes cut into P
//! even ranges, each moved on to the next record start (found from the quote parity and line
//! count of the ranges before it, exchanged first, so a quoted line end never splits a record
//! and every row keeps its line number); a Parquet file's row groups, a contiguous run each; an
//! IDX file (small by nature) on rank 0. In one process the share is the whole file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::load::{Format, InvalidRow, LoadOptions, load, read_csv_batches, read_parquet_batches, read_parquet_share};
use crate::table::Table;
use crate::world::{owned, world};

/// Bytes of CSV (or rows of Parquet × 256) read per batch.
pub(super) const BATCH_BYTES: usize = 4 << 20;

/// What one process reads of the source.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Share {
    /// All of it (one process).
    Whole,
    /// The records in these bytes of a CSV file, the first on line `first_line`.
    Bytes { range: Range<u64>, first_line: u64 },
    /// Row groups of a Parquet file: rank `rank` of `size`'s run of them.
    Groups { rank: usize, size: usize },
    /// Nothing (another rank reads the IDX file).
    Nothing,
}

impl Share {
    /// What this process's share is, said on stderr under mpirun.
    pub(super) fn describe(&self, path: &Path) -> Option<String> {
        let world = world();
        let who = format!("rank {} of {}", world.rank(), world.size());
        match self {
            Share::Whole => None,
            Share::Bytes { range, first_line } => Some(format!(
                "{who} reads bytes {}..{} of {} (from line {first_line})",
                range.start,
                range.end,
                path.display()
            )),
            Share::Groups { rank, size } => {
                Some(format!("{who} reads row-group share {rank}/{size} of {}", path.display()))
            }
            Share::Nothing => Some(format!("{who} reads nothing of {} (rank 0 reads an IDX file)", path.display())),
        }
    }
}

/// A file read batch by batch: each batch's valid rows and its unreadable ones.
pub(super) type Batches = Box<dyn Iterator<Item = Result<(Table, Vec<InvalidRow>)>>>;

/// The batches of this process's share: CSV by segments, Parquet by row groups, IDX whole.
pub(super) fn batches(path: &Path, format: Format, options: &LoadOptions, share: &Share) -> Result<Batches> {
    Ok(match (format, share) {
        (_, Share::Nothing) => Box::new(std::iter::empty()),
        (Format::Parquet, &Share::Groups { rank, size }) => {
            Box::new(read_parquet_share(path, options, BATCH_BYTES / 256, rank, size)?)
        }
        (Format::Parquet, _) => Box::new(read_parquet_batches(path, options, BATCH_BYTES / 256)?),
        (Format::Idx, _) => {
            let loaded = load(path, options)?;
            Box::new(std::iter::once(Ok((loaded.table, loaded.invalid))))
        }
        (Format::Csv, share) => {
            let mut reader = read_csv_batches(path, options, BATCH_BYTES)?;
            if let Share::Bytes { range, first_line } = share {
                reader.restrict(range.clone(), *first_line)?;
            }
            Box::new(reader)
        }
    })
}

/// This process's share of `path`.
pub(super) fn share_of(path: &Path, format: Format, options: &LoadOptions) -> Result<Share> {
    let world = world();
    if world.size() == 1 {
        return Ok(Share::Whole);
    }
    match format {
        Format::Parquet => Ok(Share::Groups { rank: world.rank(), size: world.size() }),
        Format::Idx => Ok(if world.rank() == 0 { Share::Whole } else { Share::Nothing }),
        Format::Csv => csv_share(path, options),
    }
}

/// Rank r's records: those starting in its even share of the data bytes (after the header), so
/// the shares meet at record starts. Two exchanges: each range's quotes and line ends (a range
/// starts inside a quoted field when the quotes before it are odd), then each share's start.
fn csv_share(path: &Path, options: &LoadOptions) -> Result<Share> {
    let world = world();
    let (rank, size) = (world.rank(), world.size());
    let local = (|| {
        let reader = read_csv_batches(path, options, BATCH_BYTES)?;
        let (data_start, header_line) = (reader.data_start(), reader.first_line());
        let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        let data = usize::try_from(len - data_start).unwrap_or(usize::MAX);
        let nominal = owned(data, rank, size);
        let range = data_start + nominal.start as u64..data_start + nominal.end as u64;
        let (quotes, line_ends) = count_quotes_and_line_ends(path, range.clone())?;
        Ok((data_start, header_line, len, range.start, quotes, line_ends))
    })();
    let counts = exchange(local)?;
    let (data_start, header_line, len, nominal_start, ..) = counts[rank];
    let (quotes_before, line_ends_before) = counts[..rank].iter().fold((0u64, 0u64), |(q, l), c| (q + c.4, l + c.5));
    let start = if rank == 0 {
        Ok((data_start, header_line))
    } else {
        next_record_start(path, nominal_start, quotes_before % 2 == 1, len)
            .map(|(at, line_ends)| (at, header_line + line_ends_before + line_ends))
    };
    let starts = exchange(start)?;
    let (from, first_line) = starts[rank];
    let to = starts.get(rank + 1).map_or(len, |s| s.0).max(from);
    Ok(Share::Bytes { range: from..to, first_line })
}

/// Reads `range` of `path` in 4 MiB pieces, calling `each` on them in order until it says stop.
pub(super) fn read_range(path: &Path, range: Range<u64>, mut each: impl FnMut(u64, &[u8]) -> bool) -> Result<()> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(range.start)).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; BATCH_BYTES];
    let mut at = range.start;
    while at < range.end {
        let want = usize::try_from(range.end - at).unwrap_or(usize::MAX).min(buf.len());
        let n = file.read(&mut buf[..want]).map_err(|e| Error::io(path, e))?;
        if n == 0 || !each(at, &buf[..n]) {
            break;
        }
        at += n as u64;
    }
    Ok(())
}

fn count_quotes_and_line_ends(path: &Path, range: Range<u64>) -> Result<(u64, u64)> {
    let (mut quotes, mut line_ends) = (0, 0);
    read_range(path, range, |_, bytes| {
        quotes += memchr::memchr_iter(b'"', bytes).count() as u64;
        line_ends += memchr::memchr_iter(b'\n', bytes).count() as u64;
        true
    })?;
    Ok((quotes, line_ends))
}

/// The first record start at or after `from` (the byte after a line end outside quotes), and
/// the line ends between `from` and it; the file's end when none follows.
fn next_record_start(path: &Path, from: u64, in_quotes: bool, len: u64) -> Result<(u64, u64)> {
    let (mut odd, mut line_ends, mut found) = (in_quotes, 0, None);
    read_range(path, from..len, |at, bytes| {
        for i in memchr::memchr2_iter(b'"', b'\n', bytes) {
            if bytes[i] == b'"' {
                odd = !odd;
                continue;
            }
            line_ends += 1;
            if !odd {
                found = Some(at + i as u64 + 1);
                return false;
            }
        }
        true
    })?;
    Ok((found.unwrap_or(len), line_ends))
}

/// Every process's `local`, in rank order; or, when one process failed, its error there and on
/// the others an error naming it (so no process waits for another that stopped). In one
/// process, `local` itself. Values travel as JSON (numbers that must keep their bits travel as
/// bits).
pub(super) fn exchange<T: Serialize + DeserializeOwned>(local: Result<T>) -> Result<Vec<T>> {
    let world = world();
    if world.size() == 1 {
        return local.map(|t| vec![t]);
    }
    let (message, mine) = match local {
        Ok(value) => (serde_json::to_vec(&Ok::<T, String>(value)), None),
        Err(e) => (serde_json::to_vec(&Err::<T, String>(e.to_string())), Some(e)),
    };
    let message =
        message.map_err(|e| Error::InvalidOption(format!("cannot encode a message to the other processes: {e}")))?;
    let all = world.all_gather(&message);
    if let Some(e) = mine {
        return Err(e);
    }
    let mut values = Vec::with_capacity(all.len());
    for (rank, bytes) in all.iter().enumerate() {
        let decoded: std::result::Result<T, String> = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidOption(format!("rank {rank} sent a message this process cannot read: {e}")))?;
        match decoded {
            Ok(value) => values.push(value),
            Err(message) => return Err(Error::OtherProcess { rank, size: world.size(), message }),
        }
    }
    Ok(values)
}

/// Splits a result into what travels and what stays, for [`exchange`].
pub(super) fn split_result<A, B>(r: Result<(A, B)>) -> (Result<A>, Option<B>) {
    match r {
        Ok((a, b)) => (Ok(a), Some(b)),
        Err(e) => (Err(e), None),
    }
}

/// Every process's labels, by rank (4 bytes a row, as they are).
pub(super) fn exchange_labels(local: Vec<u32>) -> Vec<Vec<u32>> {
    let world = world();
    if world.size() == 1 {
        return vec![local];
    }
    let bytes: Vec<u8> = local.iter().flat_map(|l| l.to_le_bytes()).collect();
    drop(local);
    world
        .all_gather(&bytes)
        .iter()
        .map(|b| b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_starts_skip_quoted_line_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        std::fs::write(&path, "a,b\n1,\"x\ny\"\n2,z\n").unwrap();
        // From the record with a quoted line end, and from inside its quotes: the record after it.
        assert_eq!(next_record_start(&path, 4, false, 16).unwrap(), (12, 2));
        assert_eq!(next_record_start(&path, 9, true, 16).unwrap(), (12, 1));
        assert_eq!(next_record_start(&path, 13, false, 16).unwrap(), (16, 1));
        assert_eq!(count_quotes_and_line_ends(&path, 4..12).unwrap(), (2, 2));
    }
}
