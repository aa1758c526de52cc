//! The IDX format of MNIST and Fashion-MNIST: a magic number (two zero bytes, a type byte, the
//! number of dimensions), the dimensions as big-endian u32, then the values. Images are
//! unsigned bytes of shape (n, height, width[, channels]); labels are unsigned bytes of shape (n).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::load::parquet::categorical;
use crate::load::{Format, LoadOptions, Loaded, finish};
use crate::table::{Column, ColumnData, Table};

const UNSIGNED_BYTE: u8 = 0x08;

/// Images read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
    /// Channels per pixel (1 for MNIST).
    pub channels: usize,
    /// `count × height × width × channels` bytes, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// Whether the file starts with an IDX magic number for unsigned bytes.
pub(super) fn looks_like_idx(path: &Path) -> Result<bool> {
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let n = file.read(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(n == 4 && head[0] == 0 && head[1] == 0 && head[2] == UNSIGNED_BYTE && (1..=4).contains(&head[3]))
}

fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: String| Error::Idx { path: path.to_owned(), reason };
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        return Err(bad("the file is gzip-compressed; decompress it first (gunzip)".into()));
    }
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("missing the magic number (two zero bytes, type, dimensions)".into()));
    }
    if bytes[2] != UNSIGNED_BYTE {
        return Err(bad(format!("value type 0x{:02x} is not supported (only unsigned bytes, 0x08)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad(format!("header declares {ndim} dimensions but the file ends at byte {}", bytes.len())));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let expected: usize = dims.iter().product();
    let found = bytes.len() - header;
    if found != expected {
        return Err(bad(format!("dimensions {dims:?} need {expected} bytes of data, found {found}")));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads an IDX images file of 3 (n, h, w) or 4 (n, h, w, c) dimensions.
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = read_idx(path)?;
    let (count, height, width, channels) = match dims[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] => (n, h, w, c),
        _ => {
            return Err(Error::Idx {
                path: path.to_owned(),
                reason: format!("images need 3 or 4 dimensions, found {}", dims.len()),
            });
        }
    };
    Ok(IdxImages { count, height, width, channels, pixels })
}

/// Reads an IDX labels file (one dimension).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let (dims, labels) = read_idx(path)?;
    if dims.len() != 1 {
        return Err(Error::Idx {
            path: path.to_owned(),
            reason: format!("labels need 1 dimension, found {}", dims.len()),
        });
    }
    Ok(labels)
}

/// The labels file beside an images file: `train-images-idx3-ubyte` → `train-labels-idx1-ubyte`.
fn sibling_labels(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    let labels = name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1");
    (labels != name).then(|| images.with_file_name(labels))
}

/// Images as a table: one numeric column per pixel (`px_<row>_<col>[_<channel>]`, values 0–255)
/// and a `label` column.
pub(super) fn load(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    let images = read_idx_images(path)?;
    let labels_path = options.idx_labels.clone().or_else(|| sibling_labels(path)).ok_or_else(|| Error::Idx {
        path: path.to_owned(),
        reason: "no labels file: name it with --idx-labels".into(),
    })?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != images.count {
        return Err(Error::Idx {
            path: labels_path,
            reason: format!("{} labels for {} images in {}", labels.len(), images.count, path.display()),
        });
    }
    let pixels_per_image = images.height * images.width * images.channels;
    let mut columns = Vec::with_capacity(pixels_per_image + 1);
    for p in 0..pixels_per_image {
        let (row, rest) = (p / (images.width * images.channels), p % (images.width * images.channels));
        let (col, channel) = (rest / images.channels, rest % images.channels);
        let name = if images.channels == 1 { format!("px_{row}_{col}") } else { format!("px_{row}_{col}_{channel}") };
        let values = images.pixels.iter().skip(p).step_by(pixels_per_image).map(|&v| f64::from(v)).collect();
        columns.push(Column { name, data: ColumnData::Numeric(values) });
    }
    let label_text: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    columns.push(Column { name: "label".into(), data: categorical(label_text.iter().map(|s| Some(s.as_str()))) });
    let table = Table {
        source: path.to_owned(),
        label: columns.len() - 1,
        columns,
        lines: (1..=images.count as u64).collect(),
    };
    finish(path, table, Vec::new(), Format::Idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
        let mut bytes = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(data);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn reads_images_and_labels_into_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("train-images-idx3-ubyte");
        let pixels: Vec<u8> = (0..2 * 2 * 3).map(|i| i as u8 * 10).collect();
        write_idx(&images, &[2, 2, 3], &pixels);
        write_idx(&dir.path().join("train-labels-idx1-ubyte"), &[2], &[7, 3]);
        let loaded = crate::load::load(&images, &LoadOptions::default()).unwrap();
        let t = loaded.table;
        assert_eq!(loaded.format, Format::Idx);
        assert_eq!(t.rows(), 2);
        assert_eq!(t.columns.len(), 7);
        assert_eq!(t.columns[4].name, "px_1_1");
        // Image 1, pixel (1, 1) is byte 6 + 4 = 10 -> 100.
        assert_eq!(t.columns[4].display(1), "100");
        assert_eq!(t.class_names(), ["3", "7"]);
    }

    #[test]
    fn rejects_truncated_and_mismatched_files() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("x-images-idx3-ubyte");
        write_idx(&images, &[2, 2, 2], &[0; 7]);
        let err = read_idx_images(&images).unwrap_err().to_string();
        assert!(err.contains("need 8 bytes of data, found 7"), "{err}");
        write_idx(&images, &[2, 2, 2], &[0; 8]);
        write_idx(&dir.path().join("x-labels-idx1-ubyte"), &[3], &[0; 3]);
        let err = crate::load::load(&images, &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.contains("3 labels for 2 images"), "{err}");
    }
}
