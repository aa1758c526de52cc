//! A prepared data set on disk (`trainbench prepare --out DIR`): a file of any size is read in
//! batches three times, in bounded memory, and written as binary files the engines map into
//! memory, so training never loads it whole.
//!
//! 1. **Clean** (CSV by segments, Parquet by row groups): unreadable rows, rows without a label,
//!    rows with a missing value under `--missing drop` and duplicates are quarantined as they
//!    are met, with their line; each kept row's label is kept (4 bytes a row, and a byte for
//!    whether it is kept). Duplicates are found through bucket files on disk: each row's 128-bit
//!    identity goes to one of 64 files, sorted one at a time after the pass (and quarantined in
//!    the second pass, when their text is read again). The split is then decided from the
//!    labels alone, by the same stratified shuffle as the in-memory path ([`split_parts`]), so
//!    it does not depend on how the rows were read.
//! 2. **Fit**: the training rows' statistics (count, mean and variance by Welford's update,
//!    min, max, category counts; mergeable) give the same fitted preprocessor, to the bit, as
//!    the in-memory fit, which gathers them the same way in the same row order.
//! 3. **Transform**: each batch's rows go through the fitted preprocessor and are appended to
//!    `train|valid|test.features.f32` (row-major little-endian f32) and `.labels.u32`.
//!
//! Under `mpirun` (`mpirun -np P trainbench prepare ...`) each rank reads and prepares only its
//! share of the source ([`share`]): the statistics, label values, duplicates and checksums of
//! the shares are exchanged, and each rank writes its rows at their place in the shared files.
//! The directory is the one one process writes, to the byte.
//!
//! `manifest.json` says what the files hold: schema, fitted preprocessor, split rule, rows, a
//! CRC-32 per file and per 64 MiB block, the trainbench version. Opening the directory checks
//! sizes and checksums (under mpirun each rank checks its share of the blocks) and maps the
//! files ([`Buffer::map`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::buffer::Buffer;
use crate::error::{Error, Result};
use crate::pipeline::{PrepareSummary, PreparedData};
use crate::prepared::Prepared;
use crate::split::SplitOptions;
use crate::world::{owned, world};

mod share;
mod write;

pub use write::prepare_to_dir;

/// The manifest's file name inside a prepared directory.
pub const MANIFEST: &str = "manifest.json";
/// What `format` says in every manifest this code can read.
const FORMAT: &str = "trainbench-prepared/1";

/// One binary file of a prepared directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name inside the directory.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// CRC-32 (IEEE) of its bytes.
    pub crc32: u32,
    /// Bytes per checksummed block (0 in a directory written before blocks were checksummed).
    #[serde(default)]
    pub block_bytes: u64,
    /// CRC-32 of each block of `block_bytes`, the last one shorter: a process that reads part of
    /// the file checks only the blocks it reads.
    #[serde(default)]
    pub block_crc32: Vec<u32>,
}

/// The rows of one part (train, validation or test) on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartEntry {
    /// Rows.
    pub rows: u64,
    /// `rows × features` f32, row-major, little-endian.
    pub features: FileEntry,
    /// `rows` u32 class indices, little-endian.
    pub labels: FileEntry,
}

/// `manifest.json`: everything needed to use the files without the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `trainbench-prepared/1`.
    pub format: String,
    /// The trainbench version that wrote it.
    pub trainbench_version: String,
    /// The source file and what reading and cleaning it did.
    pub summary: PrepareSummary,
    /// How the rows were split (the same rule as the in-memory path: a stratified shuffle of
    /// the kept rows by seed, decided from the labels alone).
    pub split: SplitOptions,
    /// The split rule in words.
    pub split_rule: String,
    /// Output feature names.
    pub feature_names: Vec<String>,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Features holding a category index, with their number of categories.
    pub categorical_features: Vec<(usize, usize)>,
    /// The fitted preprocessor (what `predict` applies to new data).
    pub preprocessor: crate::preprocess::FittedPreprocessor,
    /// Training rows.
    pub train: PartEntry,
    /// Validation rows.
    pub valid: PartEntry,
    /// Test rows.
    pub test: PartEntry,
}

/// Whether `path` is a prepared directory (holds a manifest).
pub fn is_prepared_dir(path: &Path) -> bool {
    path.is_dir() && path.join(MANIFEST).is_file()
}

/// Opens a prepared directory: checks the manifest, each file's size and CRC-32 (one
/// sequential read), and maps the files. Nothing is loaded: the rows stay in the files.
pub fn open_prepared_dir(dir: &Path) -> Result<PreparedData> {
    open_with_manifest(dir, read_manifest(dir)?)
}

fn open_with_manifest(dir: &Path, manifest: Manifest) -> Result<PreparedData> {
    let width = manifest.feature_names.len();
    let open = |part: &PartEntry| -> Result<Prepared> {
        let features: Buffer<f32> = map_checked(dir, &part.features)?;
        let labels: Buffer<u32> = map_checked(dir, &part.labels)?;
        if labels.len() as u64 != part.rows || features.len() != labels.len() * width {
            return Err(Error::Corrupt {
                path: dir.join(&part.features.name),
                reason: format!(
                    "{} values and {} labels for {} rows of {width} features",
                    features.len(),
                    labels.len(),
                    part.rows
                ),
            });
        }
        let world = world();
        let mine = owned(labels.len(), world.rank(), world.size());
        if let Some(&bad) = labels[mine].iter().find(|&&l| l as usize >= manifest.class_names.len()) {
            return Err(Error::Corrupt { path: dir.join(&part.labels.name), reason: format!("class index {bad}") });
        }
        Ok(Prepared {
            features,
            n_features: width,
            labels,
            feature_names: manifest.feature_names.clone(),
            class_names: manifest.class_names.clone(),
            categorical_features: manifest.categorical_features.clone(),
        })
    };
    // Under mpirun every process checked a share: all fail if one found damage.
    let opened = (|| Ok((open(&manifest.train)?, open(&manifest.valid)?, open(&manifest.test)?)))();
    let (opened, parts) = share::split_result(opened.map(|parts| ((), parts)));
    share::exchange(opened)?;
    let (train, valid, test) = parts.expect("opened on this process");
    Ok(PreparedData {
        train,
        valid,
        test,
        preprocessor: manifest.preprocessor,
        summary: manifest.summary,
        quarantine: Vec::new(),
    })
}

/// Opens a prepared directory (see [`open_prepared_dir`]) for a command whose own split options
/// are `split`: the directory's split stands, and a difference is said on stderr, since the rows
/// were split when the directory was prepared.
pub(crate) fn open_prepared_dir_for(dir: &Path, split: &SplitOptions) -> Result<PreparedData> {
    let manifest = read_manifest(dir)?;
    let own = &manifest.split;
    if (own.valid_fraction, own.test_fraction, own.seed, own.stratify, own.chronological)
        != (split.valid_fraction, split.test_fraction, split.seed, split.stratify, split.chronological)
    {
        eprintln!(
            "note: {} was prepared with validation fraction {}, test fraction {}, seed {}; those stand (this \
             command asked for {}, {}, seed {}: prepare again with --valid-fraction, --test-fraction, --seed \
             to change them)",
            dir.display(),
            own.valid_fraction,
            own.test_fraction,
            own.seed,
            split.valid_fraction,
            split.test_fraction,
            split.seed
        );
    }
    open_with_manifest(dir, manifest)
}

/// Reads and checks a prepared directory's manifest.
fn read_manifest(dir: &Path) -> Result<Manifest> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::Corrupt { path: manifest_path.clone(), reason: format!("not a manifest: {e}") })?;
    if manifest.format != FORMAT {
        return Err(Error::Corrupt {
            path: manifest_path,
            reason: format!("format '{}', this trainbench reads '{FORMAT}'", manifest.format),
        });
    }
    Ok(manifest)
}

/// Checks a file's size and checksums and maps it. Each process checks its share of the blocks
/// (all of them in one process); a directory written before blocks were checksummed is checked
/// whole.
fn map_checked<T: crate::buffer::Plain>(dir: &Path, entry: &FileEntry) -> Result<Buffer<T>> {
    let path = dir.join(&entry.name);
    let bytes = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
    if bytes != entry.bytes {
        return Err(Error::Corrupt { path, reason: format!("{bytes} bytes, the manifest says {}", entry.bytes) });
    }
    let crc_of = |from: u64, len: u64| -> Result<u32> {
        let mut hasher = crc32fast::Hasher::new();
        share::read_range(&path, from..from + len, |_, bytes| {
            hasher.update(bytes);
            true
        })?;
        Ok(hasher.finalize())
    };
    if entry.block_bytes == 0 {
        let crc = crc_of(0, bytes)?;
        if crc != entry.crc32 {
            return Err(Error::Corrupt {
                path,
                reason: format!("CRC-32 {crc:08x}, the manifest says {:08x}", entry.crc32),
            });
        }
    } else {
        let world = world();
        for block in owned(entry.block_crc32.len(), world.rank(), world.size()) {
            let from = block as u64 * entry.block_bytes;
            let crc = crc_of(from, entry.block_bytes.min(bytes - from))?;
            if crc != entry.block_crc32[block] {
                return Err(Error::Corrupt {
                    path,
                    reason: format!(
                        "bytes {from}..{}: CRC-32 {crc:08x}, the manifest says {:08x}",
                        (from + entry.block_bytes).min(bytes),
                        entry.block_crc32[block]
                    ),
                });
            }
        }
    }
    Ok(Buffer::map(&path)?.with_checksum(entry.crc32))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use trainbench_metrics::PhaseTimers;

    use super::*;
    use crate::clean::CleanOptions;
    use crate::clean::MissingPolicy;
    use crate::generator::{GenOptions, Generator, generate};
    use crate::load::LoadOptions;
    use crate::pipeline::PipelineOptions;
    use crate::pipeline::prepare;
    use crate::preprocess::{Encoding, PreprocessOptions, Scaling};

    /// A mixed file (string categories, missing cells) with duplicates, a row without a label
    /// and unreadable rows added, in CSV and Parquet.
    fn messy_csv(dir: &Path, rows: u64) -> PathBuf {
        let path = dir.join("mixed.csv");
        generate(&path, &GenOptions { generator: Generator::Mixed, rows, seed: 5 }, &mut |_| {}).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let (dup_a, dup_b) = (lines[3].to_owned(), lines[700].to_owned());
        let header_width = lines[0].split(',').count();
        let mut out: Vec<String> = lines.drain(..).map(str::to_owned).collect();
        out.insert(1500, dup_a);
        out.insert(2500, dup_b);
        out.insert(100, "not,enough".into());
        let unlabelled = {
            let mut fields: Vec<&str> = out[50].split(',').collect();
            *fields.last_mut().unwrap() = "";
            fields.join(",")
        };
        out.insert(60, unlabelled);
        assert_eq!(out[60].split(',').count(), header_width);
        std::fs::write(&path, out.join("\n") + "\n").unwrap();
        path
    }

    fn assert_same(memory: &PreparedData, disk: &PreparedData) {
        assert_eq!(memory.preprocessor, disk.preprocessor);
        for (m, d) in [(&memory.train, &disk.train), (&memory.valid, &disk.valid), (&memory.test, &disk.test)] {
            assert!(d.features.is_mapped() || d.rows() == 0);
            assert_eq!(m.rows(), d.rows());
            assert_eq!(m.labels, d.labels);
            assert!(m.features.iter().zip(d.features.iter()).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(m, d);
        }
        assert_eq!(memory.summary.split, disk.summary.split);
        assert_eq!(memory.summary.source.clean, disk.summary.source.clean);
        assert_eq!(memory.summary.source.invalid_rows, disk.summary.source.invalid_rows);
        assert_eq!(memory.summary.imputed_cells, disk.summary.imputed_cells);
        assert_eq!(memory.summary.quarantined_rows, disk.summary.quarantined_rows);
    }

    #[test]
    fn a_prepared_directory_holds_what_the_in_memory_path_prepares_to_the_bit() {
        let dir = tempfile::tempdir().unwrap();
        let csv = messy_csv(dir.path(), 6_000);
        for (encoding, scaling) in [(Encoding::OneHot, Scaling::Standard), (Encoding::Index, Scaling::MinMax)] {
            let options = PipelineOptions {
                load: LoadOptions { label: Some("label".into()), ..LoadOptions::default() },
                split: SplitOptions { valid_fraction: 0.1, test_fraction: 0.2, seed: 3, ..SplitOptions::default() },
                preprocess: PreprocessOptions { encoding, scaling, ..PreprocessOptions::default() },
                clean: CleanOptions::default(),
                test_data: None,
            };
            let memory = prepare(&csv, &options, &mut PhaseTimers::new()).unwrap();
            let out = dir.path().join(format!("prepared-{encoding:?}"));
            let q = dir.path().join("q.csv");
            let manifest = prepare_to_dir(&csv, &options, &out, &q, &mut PhaseTimers::new()).unwrap();
            assert!(is_prepared_dir(&out));
            assert_eq!(manifest.summary.source.clean.duplicate_rows, 2);
            assert_eq!(manifest.summary.source.clean.missing_label_rows, 1);
            assert_eq!(manifest.summary.source.invalid_rows, 1);
            assert!(manifest.summary.imputed_cells > 0);
            let disk = prepare(&out, &options, &mut PhaseTimers::new()).unwrap();
            assert_same(&memory, &disk);
            // Every removed row is in the quarantine file, with its line.
            let written = std::fs::read_to_string(&q).unwrap();
            assert_eq!(written.lines().count() - 1, memory.quarantine.len());
            for (_, row) in &memory.quarantine {
                assert!(written.contains(&format!(",{},", row.line)), "line {} missing: {written}", row.line);
            }
            assert!(written.contains("exact duplicate of line"), "{written}");
        }
    }

    #[test]
    fn parquet_prepares_to_the_same_rows_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let pq = dir.path().join("mixed.parquet");
        generate(&pq, &GenOptions { generator: Generator::Mixed, rows: 3_000, seed: 9 }, &mut |_| {}).unwrap();
        let options = PipelineOptions {
            split: SplitOptions { valid_fraction: 0.1, ..SplitOptions::default() },
            ..PipelineOptions::default()
        };
        let memory = prepare(&pq, &options, &mut PhaseTimers::new()).unwrap();
        let out = dir.path().join("p");
        prepare_to_dir(&pq, &options, &out, &dir.path().join("q.csv"), &mut PhaseTimers::new()).unwrap();
        assert_same(&memory, &open_prepared_dir(&out).unwrap());

        // A flipped byte fails the checksum, a cut file the size, each naming the file.
        let file = out.join("train.features.f32");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let err = open_prepared_dir(&out).unwrap_err().to_string();
        assert!(err.contains("train.features.f32: prepared data is damaged: bytes 0.."), "{err}");
        assert!(err.contains("CRC-32"), "{err}");
        std::fs::write(&file, &bytes[..bytes.len() - 4]).unwrap();
        let err = open_prepared_dir(&out).unwrap_err().to_string();
        assert!(err.contains("bytes, the manifest says"), "{err}");
    }

    #[test]
    fn statistics_that_need_every_value_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let csv = messy_csv(dir.path(), 3_000);
        let options = PipelineOptions {
            clean: CleanOptions { missing: MissingPolicy::Median, drop_duplicates: true },
            ..PipelineOptions::default()
        };
        let err =
            prepare_to_dir(&csv, &options, &dir.path().join("p"), &dir.path().join("q.csv"), &mut PhaseTimers::new())
                .unwrap_err()
                .to_string();
        assert!(err.contains("--missing median needs every training value"), "{err}");
    }

    #[test]
    fn bad_inputs_get_the_in_memory_path_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("empty.csv", "", "file is empty"),
            ("header.csv", "a,b,y\n", "no data rows after the header"),
            ("one.csv", "a,y\n1,p\n2,p\n", "has one class ('p')"),
            ("bad.csv", "a,b,y\n1,2\n3\n", "all 2 data rows are invalid (first: line 2: expected 3 fields, found 2)"),
            ("gap.csv", "a,b,y\n1,,p\n2,,q\n", "column 'b' has only missing values (2 rows)"),
        ];
        let options = PipelineOptions::default();
        for (name, text, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let q = dir.path().join("q.csv");
            let disk = prepare_to_dir(&path, &options, &dir.path().join("out"), &q, &mut PhaseTimers::new());
            let memory = prepare(&path, &options, &mut PhaseTimers::new());
            let (disk, memory) = (disk.unwrap_err().to_string(), memory.unwrap_err().to_string());
            assert!(disk.contains(want), "{name}: {disk}");
            assert!(memory.contains(want), "{name}: {memory}");
        }
        let good = messy_csv(dir.path(), 3_000);
        let out = dir.path().join("p");
        prepare_to_dir(&good, &options, &out, &dir.path().join("q.csv"), &mut PhaseTimers::new()).unwrap();
        let again =
            prepare_to_dir(&out, &options, &dir.path().join("p2"), &dir.path().join("q.csv"), &mut PhaseTimers::new());
        assert!(again.unwrap_err().to_string().contains("is a prepared directory already"));
    }
}
