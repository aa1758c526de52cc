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
//! `manifest.json` says what the files hold: schema, fitted preprocessor, split rule, rows and
//! a CRC-32 per file, the trainbench version. Opening the directory checks sizes and checksums
//! and maps the files ([`Buffer::map`]).

use std::collections::HashMap;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trainbench_metrics::{Phase, PhaseTimers};

use crate::buffer::{Buffer, write_le};
use crate::clean::{CleanReport, MissingPolicy, removed_row};
use crate::error::{Error, Result};
use crate::load::{
    Format, InvalidRow, InvalidRowPolicy, LoadOptions, detect_format, load, read_csv_batches, read_parquet_batches,
};
use crate::pipeline::{PipelineOptions, PrepareSummary, PreparedData, SourceSummary, SplitSummary};
use crate::prepared::Prepared;
use crate::preprocess::{ColumnStats, NumericStats, Preprocessor};
use crate::split::{Part, SplitOptions, split_parts};
use crate::table::{ColumnData, ColumnKind, MISSING_CODE, Table, sort_class_names};

/// The manifest's file name inside a prepared directory.
pub const MANIFEST: &str = "manifest.json";
/// What `format` says in every manifest this code can read.
const FORMAT: &str = "trainbench-prepared/1";
/// Bytes of CSV (or rows of Parquet × 256) read per batch.
const BATCH_BYTES: usize = 4 << 20;
/// Rows transformed and written at a time.
const TRANSFORM_ROWS: usize = 4096;

/// One binary file of a prepared directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name inside the directory.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// CRC-32 (IEEE) of its bytes.
    pub crc32: u32,
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

/// A file read batch by batch: each batch's valid rows and its unreadable ones.
type Batches = Box<dyn Iterator<Item = Result<(Table, Vec<InvalidRow>)>>>;

/// The batches of a file: CSV by segments, Parquet by row groups, IDX (small by nature) whole.
fn batches(path: &Path, options: &LoadOptions) -> Result<Batches> {
    Ok(match detect_format(path)? {
        Format::Parquet => Box::new(read_parquet_batches(path, options, BATCH_BYTES / 256)?),
        Format::Idx => {
            let loaded = load(path, options)?;
            Box::new(std::iter::once(Ok((loaded.table, loaded.invalid))))
        }
        Format::Csv => Box::new(read_csv_batches(path, options, BATCH_BYTES)?),
    })
}

/// A row's identity for finding duplicates: 128 bits of two SipHashes over its values (numbers
/// by their bits with −0 as 0, categories by their text, missing as a marker), so rows read in
/// different batches compare by content. Two different rows share it with probability about
/// n² / 2¹²⁹ (below 10⁻²⁰ for 10⁹ rows).
fn row_identity(table: &Table, r: usize) -> u128 {
    let mut halves = [DefaultHasher::new(), DefaultHasher::new()];
    halves[1].write_u8(0x5a);
    for h in &mut halves {
        for column in &table.columns {
            match &column.data {
                ColumnData::Numeric(v) if v[r].is_nan() => h.write_u8(1),
                ColumnData::Numeric(v) => {
                    h.write_u8(2);
                    h.write_u64((v[r] + 0.0).to_bits());
                }
                ColumnData::Categorical { codes, .. } if codes[r] == MISSING_CODE => h.write_u8(3),
                ColumnData::Categorical { codes, levels } => {
                    h.write_u8(4);
                    levels[codes[r] as usize].hash(h);
                }
            }
        }
    }
    (u128::from(halves[0].finish()) << 64) | u128::from(halves[1].finish())
}

/// Writes quarantined rows as they come: `file,line,column,reason,row`.
struct QuarantineWriter {
    source: String,
    path: PathBuf,
    out: csv::Writer<File>,
    rows: usize,
}

impl QuarantineWriter {
    fn create(path: &Path, source: &Path) -> Result<Self> {
        let io = |e: csv::Error| Error::io(path, std::io::Error::other(e));
        let mut out = csv::Writer::from_path(path).map_err(io)?;
        out.write_record(["file", "line", "column", "reason", "row"]).map_err(io)?;
        Ok(Self { source: source.display().to_string(), path: path.to_owned(), out, rows: 0 })
    }

    fn add(&mut self, r: &InvalidRow) -> Result<()> {
        self.rows += 1;
        let line = r.line.to_string();
        let column = r.column.as_deref().unwrap_or_default();
        self.out
            .write_record([self.source.as_str(), &line, column, &r.reason, &r.raw])
            .map_err(|e| Error::io(&self.path, std::io::Error::other(e)))
    }

    fn finish(mut self) -> Result<usize> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.rows)
    }
}

/// What the first pass learns: which valid rows are kept and their labels.
struct Cleaned {
    names: Vec<String>,
    kinds: Vec<ColumnKind>,
    label: usize,
    /// For each valid row: kept or not.
    kept: Vec<bool>,
    /// Each kept row's label, as an index into `label_levels` (first-seen order).
    labels: Vec<u32>,
    label_levels: Vec<String>,
    report: CleanReport,
    invalid_rows: usize,
    /// Duplicate rows (valid-row index) with the line of the first row like them, by index;
    /// quarantined in the second pass, where their text is read again.
    duplicates: Vec<(u64, u64)>,
}

/// Finds duplicate rows without holding a table of every row: each candidate row's 128-bit
/// identity, index and line go to one of 64 bucket files by the identity's top bits; each bucket
/// is then sorted alone (1/64 of the rows in memory at a time, 32 bytes a row).
struct DuplicateSpill {
    dir: tempfile::TempDir,
    buckets: Vec<BufWriter<File>>,
}

const SPILL_BUCKETS: usize = 64;

impl DuplicateSpill {
    fn create(near: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix(".duplicates-").tempdir_in(near).map_err(|e| Error::io(near, e))?;
        let buckets = (0..SPILL_BUCKETS)
            .map(|b| {
                let path = dir.path().join(b.to_string());
                File::create(&path).map(|f| BufWriter::with_capacity(64 << 10, f)).map_err(|e| Error::io(&path, e))
            })
            .collect::<Result<_>>()?;
        Ok(Self { dir, buckets })
    }

    fn add(&mut self, identity: u128, row: u64, line: u64) -> Result<()> {
        let bucket = (identity >> 122) as usize;
        let mut entry = [0u8; 32];
        entry[..16].copy_from_slice(&identity.to_le_bytes());
        entry[16..24].copy_from_slice(&row.to_le_bytes());
        entry[24..].copy_from_slice(&line.to_le_bytes());
        self.buckets[bucket].write_all(&entry).map_err(|e| Error::io(self.dir.path(), e))
    }

    /// Every row whose identity an earlier row has, with that earlier row's line, by row.
    fn duplicates(self) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        for (b, writer) in self.buckets.into_iter().enumerate() {
            let path = self.dir.path().join(b.to_string());
            writer.into_inner().map_err(|e| Error::io(&path, e.into_error()))?;
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let mut entries: Vec<(u128, u64, u64)> = bytes
                .chunks_exact(32)
                .map(|e| {
                    let long = |a: usize| u64::from_le_bytes(e[a..a + 8].try_into().expect("8 bytes"));
                    (u128::from_le_bytes(e[..16].try_into().expect("16 bytes")), long(16), long(24))
                })
                .collect();
            drop(bytes);
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            entries.sort_unstable();
            for run in entries.chunk_by(|a, b| a.0 == b.0) {
                out.extend(run[1..].iter().map(|&(_, row, _)| (row, run[0].2)));
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

fn clean_pass(
    path: &Path,
    options: &PipelineOptions,
    out: &Path,
    quarantine: &mut QuarantineWriter,
) -> Result<Cleaned> {
    let mut first: Option<(Vec<String>, Vec<ColumnKind>, usize)> = None;
    let mut kept = Vec::new();
    let mut labels = Vec::new();
    let mut label_levels: Vec<String> = Vec::new();
    let mut level_index: HashMap<String, u32> = HashMap::new();
    let mut spill = if options.clean.drop_duplicates { Some(DuplicateSpill::create(out)?) } else { None };
    let mut report = CleanReport::default();
    let mut missing_all: Vec<usize> = Vec::new();
    let mut missing_labelled: Vec<usize> = Vec::new();
    let mut invalid_rows = 0;
    let mut first_invalid: Option<InvalidRow> = None;
    let drop_missing = options.clean.missing == MissingPolicy::Drop;
    for batch in batches(path, &options.load)? {
        let (table, invalid) = batch?;
        if options.load.invalid_rows == InvalidRowPolicy::Fail
            && let Some(bad) = invalid.first()
        {
            return Err(Error::InvalidRow { path: path.to_owned(), line: bad.line, reason: bad.reason.clone() });
        }
        invalid_rows += invalid.len();
        if first_invalid.is_none() {
            first_invalid = invalid.first().cloned();
        }
        for row in &invalid {
            quarantine.add(row)?;
        }
        if first.is_none() {
            let kinds = table.columns.iter().map(|c| c.kind()).collect();
            let names = table.columns.iter().map(|c| c.name.clone()).collect();
            first = Some((names, kinds, table.label));
            missing_all = vec![0; table.columns.len()];
            missing_labelled = vec![0; table.columns.len()];
        }
        let label = table.label_column();
        let ColumnData::Categorical { codes, levels } = &label.data else { unreachable!("labels are categorical") };
        // This batch's label codes as indices into the levels of the whole file.
        let batch_levels: Vec<u32> = levels
            .iter()
            .map(|l| {
                *level_index.entry(l.clone()).or_insert_with(|| {
                    label_levels.push(l.clone());
                    (label_levels.len() - 1) as u32
                })
            })
            .collect();
        for r in 0..table.rows() {
            report.rows_in += 1;
            let has_label = codes[r] != MISSING_CODE;
            let mut first_missing = None;
            for (i, (_, column)) in table.features().enumerate() {
                if column.is_missing(r) {
                    missing_all[i] += 1;
                    if has_label {
                        missing_labelled[i] += 1;
                    }
                    first_missing.get_or_insert(&column.name);
                }
            }
            let removed = if !has_label {
                report.missing_label_rows += 1;
                Some((Some(label.name.clone()), format!("label '{}' is missing", label.name)))
            } else if let (true, Some(column)) = (drop_missing, first_missing) {
                report.missing_value_rows_dropped += 1;
                Some((Some(column.clone()), format!("missing value in column '{column}' (policy: drop)")))
            } else {
                if let Some(spill) = &mut spill {
                    spill.add(row_identity(&table, r), kept.len() as u64, table.lines[r])?;
                }
                None
            };
            match removed {
                Some((column, reason)) => {
                    quarantine.add(&removed_row(&table, r, column, reason))?;
                    kept.push(false);
                }
                None => {
                    kept.push(true);
                    labels.push(batch_levels[codes[r] as usize]);
                }
            }
        }
    }
    let Some((names, kinds, label)) = first else {
        return Err(Error::NoRows { path: path.to_owned() });
    };
    if report.rows_in == 0 {
        return Err(if let Some(first) = first_invalid {
            Error::AllRowsInvalid {
                path: path.to_owned(),
                invalid: invalid_rows,
                first_line: first.line,
                first_reason: first.reason,
            }
        } else {
            Error::NoRows { path: path.to_owned() }
        });
    }
    let feature_names: Vec<&String> = names.iter().enumerate().filter(|&(i, _)| i != label).map(|(_, n)| n).collect();
    for (name, &missing) in feature_names.iter().zip(&missing_all) {
        if missing == report.rows_in {
            return Err(Error::AllMissing { path: path.to_owned(), name: (*name).clone(), rows: report.rows_in });
        }
    }
    for (name, &missing) in feature_names.iter().zip(&missing_labelled) {
        if missing > 0 {
            report.missing_by_column.push(((*name).clone(), missing));
            report.missing_cells += missing;
        }
    }
    if !drop_missing {
        report.cells_to_impute = report.missing_cells;
    }
    // Duplicates leave the kept rows (each one's earlier twin stays).
    let duplicates = match spill {
        Some(spill) => spill.duplicates()?,
        None => Vec::new(),
    };
    if !duplicates.is_empty() {
        let mut dups = duplicates.iter().map(|&(row, _)| row as usize).peekable();
        let mut kept_labels = labels.into_iter();
        labels = Vec::with_capacity(report.rows_in);
        for (r, k) in kept.iter_mut().enumerate().filter(|(_, k)| **k) {
            let label = kept_labels.next().expect("a label per kept row");
            if dups.peek() == Some(&r) {
                dups.next();
                *k = false;
            } else {
                labels.push(label);
            }
        }
    }
    report.duplicate_rows = duplicates.len();
    report.rows_out = labels.len();
    Ok(Cleaned { names, kinds, label, kept, labels, label_levels, report, invalid_rows, duplicates })
}

/// Appends one part's rows to its two files, checksumming as it goes.
struct PartWriter {
    dir: PathBuf,
    name: &'static str,
    features: (BufWriter<File>, crc32fast::Hasher, u64),
    labels: (BufWriter<File>, crc32fast::Hasher, u64),
    rows: u64,
}

impl PartWriter {
    fn create(dir: &Path, name: &'static str) -> Result<Self> {
        let open = |file: String| -> Result<(BufWriter<File>, crc32fast::Hasher, u64)> {
            let path = dir.join(file);
            let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
            Ok((BufWriter::with_capacity(1 << 20, f), crc32fast::Hasher::new(), 0))
        };
        Ok(Self {
            dir: dir.to_owned(),
            name,
            features: open(format!("{name}.features.f32"))?,
            labels: open(format!("{name}.labels.u32"))?,
            rows: 0,
        })
    }

    fn append(&mut self, rows: &Prepared) -> Result<()> {
        let path = self.dir.join(format!("{}.features.f32", self.name));
        let mut bytes = Vec::new();
        write_le(&mut bytes, &rows.features).map_err(|e| Error::io(&path, e))?;
        self.features.1.update(&bytes);
        self.features.2 += bytes.len() as u64;
        self.features.0.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
        bytes.clear();
        write_le(&mut bytes, &rows.labels).map_err(|e| Error::io(&path, e))?;
        self.labels.1.update(&bytes);
        self.labels.2 += bytes.len() as u64;
        self.labels.0.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
        self.rows += rows.rows() as u64;
        Ok(())
    }

    fn finish(self) -> Result<PartEntry> {
        let close = |(mut w, h, bytes): (BufWriter<File>, crc32fast::Hasher, u64), file: String| {
            let path = self.dir.join(&file);
            w.flush().map_err(|e| Error::io(&path, e))?;
            w.get_ref().sync_all().map_err(|e| Error::io(&path, e))?;
            Ok::<_, Error>(FileEntry { name: file, bytes, crc32: h.finalize() })
        };
        let features = close(self.features, format!("{}.features.f32", self.name))?;
        let labels = close(self.labels, format!("{}.labels.u32", self.name))?;
        Ok(PartEntry { rows: self.rows, features, labels })
    }
}

/// Prepares `path` into the directory `out` (created; its manifest written last, so a
/// directory without one is an unfinished prepare) in bounded memory, quarantining removed
/// rows into `quarantine`. Returns the manifest.
pub fn prepare_to_dir(
    path: &Path,
    options: &PipelineOptions,
    out: &Path,
    quarantine: &Path,
    timers: &mut PhaseTimers,
) -> Result<Manifest> {
    options.split.validate()?;
    if is_prepared_dir(path) {
        return Err(Error::InvalidOption(format!(
            "{} is a prepared directory already; pass it as --data to train, compare, scale, tune, run or predict",
            path.display()
        )));
    }
    if options.test_data.is_some() {
        return Err(Error::InvalidOption(
            "a separate test file cannot be prepared into a directory yet; prepare without --test-data".into(),
        ));
    }
    let mut preprocess = options.preprocess.clone();
    preprocess.missing = options.clean.missing.clone();
    let preprocessor = Preprocessor::new(preprocess);
    if let Some(reason) = preprocessor.needs_all_values() {
        return Err(Error::InvalidOption(reason));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    // A manifest left by an earlier prepare would describe files about to be replaced.
    let manifest_path = out.join(MANIFEST);
    if manifest_path.exists() {
        std::fs::remove_file(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    }
    let format = detect_format(path)?;

    // Pass 1: clean, keep labels; then split from them.
    let mut quarantined = QuarantineWriter::create(quarantine, path)?;
    let cleaned = timers.time(Phase::Clean, || clean_pass(path, options, out, &mut quarantined))?;
    let mut classes = {
        let mut present = vec![false; cleaned.label_levels.len()];
        cleaned.labels.iter().for_each(|&l| present[l as usize] = true);
        cleaned.label_levels.iter().zip(present).filter(|(_, p)| *p).map(|(l, _)| l.clone()).collect::<Vec<_>>()
    };
    sort_class_names(&mut classes);
    let label_name = cleaned.names[cleaned.label].clone();
    if classes.len() < 2 {
        return Err(Error::OneClass {
            path: path.to_owned(),
            label: label_name,
            classes,
            rows: cleaned.report.rows_out,
        });
    }
    let class_of: Vec<u32> = cleaned
        .label_levels
        .iter()
        .map(|l| classes.iter().position(|c| c == l).map_or(u32::MAX, |i| i as u32))
        .collect();
    let labels: Vec<u32> = cleaned.labels.iter().map(|&l| class_of[l as usize]).collect();
    let parts = split_parts(&labels, classes.len(), &options.split)?;
    drop(labels);
    // Each valid row's part, or none when cleaning removed it.
    let mut kept_parts = parts.into_iter();
    let row_parts: Vec<Option<Part>> = cleaned.kept.iter().map(|&k| if k { kept_parts.next() } else { None }).collect();

    // Pass 2: the training rows' statistics, in file order.
    let load = LoadOptions {
        label: Some(label_name.clone()),
        categorical: kinds_named(&cleaned, ColumnKind::Categorical),
        numeric: kinds_named(&cleaned, ColumnKind::Numeric),
        ..options.load.clone()
    };
    let fitted = timers.time(Phase::Preprocess, || -> Result<_> {
        let mut stats: Vec<(String, ColumnStats)> = Vec::new();
        let mut train_rows = 0u64;
        let mut next = 0;
        let mut duplicates_done = 0;
        for batch in batches(path, &load)? {
            let (table, _) = batch?;
            check_schema(path, &table, &cleaned)?;
            if stats.is_empty() {
                stats = table
                    .features()
                    .map(|(_, c)| {
                        let s = match c.kind() {
                            ColumnKind::Numeric => ColumnStats::Numeric(NumericStats::default()),
                            ColumnKind::Categorical => ColumnStats::Categorical(HashMap::new()),
                        };
                        (c.name.clone(), s)
                    })
                    .collect();
            }
            // The duplicates found after the first pass, quarantined with their text.
            while let Some(&(row, first_line)) = cleaned.duplicates.get(duplicates_done)
                && (row as usize) < next + table.rows()
            {
                let reason = format!("exact duplicate of line {first_line}");
                quarantined.add(&removed_row(&table, row as usize - next, None, reason))?;
                duplicates_done += 1;
            }
            let train: Vec<usize> = (0..table.rows()).filter(|&r| row_parts[next + r] == Some(Part::Train)).collect();
            next += table.rows();
            train_rows += train.len() as u64;
            for ((_, column), (_, s)) in table.features().zip(&mut stats) {
                match (&column.data, s) {
                    (ColumnData::Numeric(v), ColumnStats::Numeric(s)) => {
                        train.iter().map(|&r| v[r]).filter(|x| !x.is_nan()).for_each(|x| s.push(x));
                    }
                    (ColumnData::Categorical { codes, levels }, ColumnStats::Categorical(counts)) => {
                        let mut batch_counts = vec![0u64; levels.len()];
                        train.iter().filter(|&&r| codes[r] != MISSING_CODE).for_each(|&r| {
                            batch_counts[codes[r] as usize] += 1;
                        });
                        for (level, n) in levels.iter().zip(batch_counts).filter(|&(_, n)| n > 0) {
                            *counts.entry(level.clone()).or_insert(0) += n;
                        }
                    }
                    _ => unreachable!("kinds are fixed by the first pass"),
                }
            }
        }
        if next != row_parts.len() {
            return Err(changed(path));
        }
        preprocessor.fit_from_stats(&label_name, &classes, &stats, train_rows)
    })?;
    let quarantined_rows = quarantined.finish()?;
    if quarantined_rows == 0 {
        // As the in-memory prepare, no quarantine file when nothing was removed.
        std::fs::remove_file(quarantine).map_err(|e| Error::io(quarantine, e))?;
    }

    // Pass 3: transform and write.
    let (split, counts) = timers.time(Phase::Preprocess, || -> Result<_> {
        let mut writers =
            [PartWriter::create(out, "train")?, PartWriter::create(out, "valid")?, PartWriter::create(out, "test")?];
        let mut per_class = vec![[0usize; 3]; classes.len()];
        let (mut imputed, mut unseen) = (0, 0);
        let mut next = 0;
        for batch in batches(path, &load)? {
            let (table, _) = batch?;
            check_schema(path, &table, &cleaned)?;
            for (p, writer) in [Part::Train, Part::Valid, Part::Test].into_iter().zip(&mut writers) {
                let rows: Vec<usize> = (0..table.rows()).filter(|&r| row_parts[next + r] == Some(p)).collect();
                // A few thousand rows at a time: one-hot columns can make the rows many times
                // the size of the text they came from.
                for block in rows.chunks(TRANSFORM_ROWS) {
                    let (prepared, c) = fitted.transform(&table, Some(block)).map_err(|e| at_line(e, &table, block))?;
                    imputed += c.imputed_cells;
                    unseen += c.unseen_categories;
                    prepared.labels.iter().for_each(|&l| per_class[l as usize][p as usize] += 1);
                    writer.append(&prepared)?;
                }
            }
            next += table.rows();
        }
        if next != row_parts.len() {
            return Err(changed(path));
        }
        let [train, valid, test] = writers;
        Ok(((train.finish()?, valid.finish()?, test.finish()?, per_class), (imputed, unseen)))
    })?;
    let (train, valid, test, per_class) = split;
    let (numeric_columns, categorical_columns) =
        cleaned.kinds.iter().enumerate().filter(|&(i, _)| i != cleaned.label).fold((0, 0), |(n, c), (_, k)| match k {
            ColumnKind::Numeric => (n + 1, c),
            ColumnKind::Categorical => (n, c + 1),
        });
    let summary = PrepareSummary {
        source: SourceSummary {
            path: path.to_owned(),
            format,
            invalid_rows: cleaned.invalid_rows,
            clean: cleaned.report.clone(),
        },
        test_source: None,
        label: label_name,
        split: SplitSummary {
            train: train.rows as usize,
            valid: valid.rows as usize,
            test: test.rows as usize,
            per_class: classes.iter().zip(&per_class).map(|(c, n)| (c.clone(), n[0], n[1], n[2])).collect(),
        },
        numeric_columns,
        categorical_columns,
        features: fitted.feature_names().len(),
        imputed_cells: counts.0,
        unseen_categories: counts.1,
        quarantined_rows,
    };
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        trainbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        summary,
        split: options.split,
        split_rule: split_rule(&options.split),
        feature_names: fitted.feature_names().to_vec(),
        class_names: classes,
        categorical_features: fitted.categorical_features(),
        preprocessor: fitted,
        train,
        valid,
        test,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| Error::io(&manifest_path, e.into()))?;
    let partial = out.join(format!("{MANIFEST}.partial"));
    std::fs::write(&partial, text).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, &manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    Ok(manifest)
}

fn split_rule(split: &SplitOptions) -> String {
    if split.chronological {
        "chronological: the kept rows in file order, training first, then validation, then test".into()
    } else if split.stratify {
        format!(
            "stratified: within each class the kept rows, in file order, are shuffled by ChaCha8 seeded with {}; \
             round(fraction x class rows) go to test, then validation",
            split.seed
        )
    } else {
        format!(
            "random: the kept rows shuffled by ChaCha8 seeded with {}; round(fraction x rows) to test, then validation",
            split.seed
        )
    }
}

fn kinds_named(cleaned: &Cleaned, kind: ColumnKind) -> Vec<String> {
    cleaned
        .names
        .iter()
        .zip(&cleaned.kinds)
        .enumerate()
        .filter(|&(i, (_, k))| i != cleaned.label && *k == kind)
        .map(|(_, (n, _))| n.clone())
        .collect()
}

fn check_schema(path: &Path, table: &Table, cleaned: &Cleaned) -> Result<()> {
    let same = table.columns.len() == cleaned.names.len()
        && table.columns.iter().zip(&cleaned.names).all(|(c, n)| &c.name == n);
    if same { Ok(()) } else { Err(changed(path)) }
}

fn changed(path: &Path) -> Error {
    Error::InvalidOption(format!("{}: the file changed while it was being prepared; prepare it again", path.display()))
}

/// An error about a transformed row, named by its line in the file.
fn at_line(e: Error, table: &Table, rows: &[usize]) -> Error {
    match e {
        Error::UnseenCategory { column, value, row } => Error::InvalidRow {
            path: table.source.clone(),
            line: table.lines[rows[row]],
            reason: format!(
                "column '{column}': category '{value}' was not seen in the training rows; use --unseen ignore \
                 to encode it as all zeros"
            ),
        },
        other => other,
    }
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
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= manifest.class_names.len()) {
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
    Ok(PreparedData {
        train: open(&manifest.train)?,
        valid: open(&manifest.valid)?,
        test: open(&manifest.test)?,
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

fn map_checked<T: crate::buffer::Plain>(dir: &Path, entry: &FileEntry) -> Result<Buffer<T>> {
    let path = dir.join(&entry.name);
    let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let bytes = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    if bytes != entry.bytes {
        return Err(Error::Corrupt { path, reason: format!("{bytes} bytes, the manifest says {}", entry.bytes) });
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut chunk).map_err(|e| Error::io(&path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    let crc = hasher.finalize();
    if crc != entry.crc32 {
        return Err(Error::Corrupt {
            path,
            reason: format!("CRC-32 {crc:08x}, the manifest says {:08x}", entry.crc32),
        });
    }
    Buffer::map(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::CleanOptions;
    use crate::generator::{GenOptions, Generator, generate};
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
        assert!(err.contains("train.features.f32: prepared data is damaged: CRC-32"), "{err}");
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
