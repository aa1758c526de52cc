//! The binned rows of one partition (MLlib's `TreePoint`s): one byte per feature, in memory or,
//! when the training rows themselves are mapped from a prepared directory, in an unlinked
//! temporary file mapped read-write, whose pages the kernel writes out and drops under memory
//! pressure and reads back when the next level's pass touches them.

use std::ops::{Deref, DerefMut};

use memmap2::MmapMut;

/// One partition's bins.
#[derive(Default)]
pub(super) enum Bins {
    /// No rows (a partition another process bins).
    #[default]
    Empty,
    /// In memory.
    Memory(Vec<u8>),
    /// In a temporary file (removed when unmapped).
    Disk(MmapMut),
}

impl Bins {
    /// `len` zero bytes, on disk when `on_disk`.
    pub(super) fn zeroed(len: usize, on_disk: bool) -> Result<Self, String> {
        if len == 0 {
            return Ok(Bins::Empty);
        }
        if !on_disk {
            return Ok(Bins::Memory(vec![0; len]));
        }
        let dir = std::env::temp_dir();
        let why = |e: std::io::Error| format!("cannot make a file for the binned rows in {}: {e}", dir.display());
        let file = tempfile::tempfile_in(&dir).map_err(why)?;
        file.set_len(len as u64).map_err(why)?;
        // SAFETY: the file is this process's own, unlinked at creation, so nothing else can
        // truncate or write it while it is mapped.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(why)?;
        Ok(Bins::Disk(map))
    }
}

impl Deref for Bins {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bins::Empty => &[],
            Bins::Memory(v) => v,
            Bins::Disk(m) => m,
        }
    }
}

impl DerefMut for Bins {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Bins::Empty => &mut [],
            Bins::Memory(v) => v,
            Bins::Disk(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_on_disk_hold_what_is_written() {
        for on_disk in [false, true] {
            let mut b = Bins::zeroed(10_000, on_disk).unwrap();
            assert!(b.iter().all(|&v| v == 0));
            b.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 251) as u8);
            assert_eq!(b[9_999], (9_999 % 251) as u8);
            assert_eq!(matches!(b, Bins::Disk(_)), on_disk);
        }
        assert!(Bins::zeroed(0, true).unwrap().is_empty());
    }
}
