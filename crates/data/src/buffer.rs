//! The values of a [`Prepared`](crate::Prepared) set: in memory, or mapped from a file of a
//! prepared directory. Engines read either through the same slice, so there is one code path
//! whether the rows fit in memory or not; mapped pages the kernel drops under memory pressure are
//! read back from the file when touched again (as Spark reads a spilled block).

use std::fmt;
use std::fs::File;
use std::marker::PhantomData;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Plain little-endian numbers that any bit pattern of the right size is a valid value of.
pub trait Plain: Copy + Send + Sync + 'static {}
impl Plain for f32 {}
impl Plain for u32 {}

/// Values owned in memory or mapped read-only from a file.
#[derive(Clone)]
pub struct Buffer<T: Plain> {
    inner: Inner<T>,
}

#[derive(Clone)]
enum Inner<T: Plain> {
    Owned(Vec<T>),
    /// `crc32`: the file's CRC-32 as its manifest gives it, once checked.
    Mapped {
        map: Arc<Mmap>,
        len: usize,
        crc32: Option<u32>,
        _values: PhantomData<T>,
    },
}

impl<T: Plain> Buffer<T> {
    /// Maps `path`, a file of little-endian values (as [`Buffer::write_le`] writes them), read-only.
    pub fn map(path: &Path) -> Result<Self> {
        if cfg!(target_endian = "big") {
            return Err(Error::InvalidOption("prepared directories are little-endian; this machine is not".into()));
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let bytes = file.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
        let size = std::mem::size_of::<T>();
        if !bytes.is_multiple_of(size) {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                reason: format!("{bytes} bytes is not a whole number of {size}-byte values"),
            });
        }
        if bytes == 0 {
            return Ok(Vec::new().into());
        }
        // SAFETY: the mapping is read-only and private to this process. The prepared directory's
        // files are written whole before the manifest names them and never modified in place
        // afterwards; a file truncated by someone else while mapped would fault (SIGBUS), as it
        // would for any reader of memory-mapped files.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        // Mappings start on a page boundary, so the values are aligned.
        debug_assert_eq!(map.as_ptr() as usize % std::mem::align_of::<T>(), 0);
        Ok(Buffer { inner: Inner::Mapped { map: Arc::new(map), len: bytes / size, crc32: None, _values: PhantomData } })
    }

    /// Records the mapped file's checked CRC-32, so that processes can compare what they map
    /// without reading it again ([`Buffer::checksum`]). Values in memory have none.
    pub fn with_checksum(mut self, crc: u32) -> Self {
        if let Inner::Mapped { crc32, .. } = &mut self.inner {
            *crc32 = Some(crc);
        }
        self
    }

    /// The mapped file's checked CRC-32, if [`Buffer::with_checksum`] recorded one.
    pub fn checksum(&self) -> Option<u32> {
        match self.inner {
            Inner::Mapped { crc32, .. } => crc32,
            Inner::Owned(_) => None,
        }
    }

    /// Whether the values are mapped from a file rather than held in memory.
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner, Inner::Mapped { .. })
    }

    /// Tells the kernel the values will be read in order (read-ahead) or at random (none).
    pub fn advise_sequential(&self, sequential: bool) {
        #[cfg(unix)]
        if let Inner::Mapped { map, .. } = &self.inner {
            let advice = if sequential { memmap2::Advice::Sequential } else { memmap2::Advice::Random };
            // Advice only: a kernel that refuses it reads the pages all the same.
            let _ = map.advise(advice);
        }
        #[cfg(not(unix))]
        let _ = sequential;
    }

    /// The values to change: copied into memory first when mapped (copy on write).
    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if let Inner::Mapped { .. } = self.inner {
            self.inner = Inner::Owned(self.deref().to_vec());
        }
        match &mut self.inner {
            Inner::Owned(v) => v,
            Inner::Mapped { .. } => unreachable!("copied above"),
        }
    }

    /// The values as a vector (a copy when mapped).
    pub fn into_vec(self) -> Vec<T> {
        match self.inner {
            Inner::Owned(v) => v,
            Inner::Mapped { .. } => self.deref().to_vec(),
        }
    }
}

/// Writes `values` to `out` as little-endian bytes.
pub fn write_le<W: std::io::Write, T: Plain + ToLe>(out: &mut W, values: &[T]) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(std::mem::size_of_val(values));
    for v in values {
        v.put_le(&mut bytes);
    }
    out.write_all(&bytes)
}

/// A value's little-endian bytes.
pub trait ToLe {
    /// Appends the bytes to `out`.
    fn put_le(&self, out: &mut Vec<u8>);
}

impl ToLe for f32 {
    fn put_le(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl ToLe for u32 {
    fn put_le(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl<T: Plain> Deref for Buffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.inner {
            Inner::Owned(v) => v,
            // SAFETY: the map holds `len` values of `T` (checked when mapped), aligned (page
            // boundary), every bit pattern is a valid `T` (`Plain`), and the map lives as long as
            // `self`.
            Inner::Mapped { map, len, .. } => unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<T>(), *len) },
        }
    }
}

impl<'a, T: Plain> IntoIterator for &'a Buffer<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Plain> Default for Buffer<T> {
    fn default() -> Self {
        Vec::new().into()
    }
}

impl<T: Plain> From<Vec<T>> for Buffer<T> {
    fn from(values: Vec<T>) -> Self {
        Buffer { inner: Inner::Owned(values) }
    }
}

impl<T: Plain> FromIterator<T> for Buffer<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<T>>().into()
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_mapped() {
            write!(f, "mapped ")?;
        }
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Plain + PartialEq> PartialEq for Buffer<T> {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl<T: Plain + PartialEq> PartialEq<Vec<T>> for Buffer<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self[..] == other[..]
    }
}

impl<T: Plain + PartialEq> PartialEq<[T]> for Buffer<T> {
    fn eq(&self, other: &[T]) -> bool {
        self[..] == *other
    }
}

impl<T: Plain + PartialEq, const N: usize> PartialEq<[T; N]> for Buffer<T> {
    fn eq(&self, other: &[T; N]) -> bool {
        self[..] == other[..]
    }
}

impl<T: Plain + Serialize> Serialize for Buffer<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.deref().serialize(s)
    }
}

impl<'de, T: Plain + Deserialize<'de>> Deserialize<'de> for Buffer<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(Buffer::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_file_reads_as_the_values_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.f32");
        let values: Vec<f32> = (0..10_000).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut file = File::create(&path).unwrap();
        write_le(&mut file, &values).unwrap();
        drop(file);
        let mapped = Buffer::<f32>::map(&path).unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(mapped, values);
        assert_eq!(mapped.clone().into_vec(), values);
        let owned: Buffer<f32> = values.clone().into();
        assert_eq!(owned, mapped);
        std::fs::write(&path, [0u8; 7]).unwrap();
        let err = Buffer::<u32>::map(&path).unwrap_err().to_string();
        assert!(err.contains("7 bytes is not a whole number of 4-byte values"), "{err}");
        std::fs::write(&path, []).unwrap();
        assert!(Buffer::<u32>::map(&path).unwrap().is_empty());
    }
}
