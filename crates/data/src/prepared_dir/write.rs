//! `trainbench prepare --out DIR`: the three passes over the source, in one process or in each
//! rank of an MPI job over its share (see the module above for what they do).
//!
//! Every step that involves the other processes is an [`exchange`] that every process reaches
//! in the same order, carrying an error when one process failed, so no process waits for
//! another that stopped. With one process each exchange is the value itself, and the steps are
//! exactly the one-process prepare.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trainbench_metrics::{Phase, PhaseTimers};

use super::share::{Share, batches, exchange, exchange_labels, share_of, split_result};
use super::{FORMAT, FileEntry, MANIFEST, Manifest, PartEntry, is_prepared_dir};
use crate::buffer::write_le;
use crate::clean::{CleanReport, MissingPolicy, removed_row};
use crate::error::{Error, Result};
use crate::load::{Format, InvalidRow, InvalidRowPolicy, LoadOptions, detect_format};
use crate::pipeline::{PipelineOptions, PrepareSummary, SourceSummary, SplitSummary};
use crate::preprocess::{ColumnStats, NumericStats, Preprocessor, StatsPiece, StatsPieces, fold_pieces};
use crate::split::{Part, SplitOptions, split_parts};
use crate::table::{ColumnData, ColumnKind, MISSING_CODE, Table, sort_class_names};
use crate::world::world;

/// Rows transformed and written at a time.
const TRANSFORM_ROWS: usize = 4096;
/// Bytes of a prepared file per checksummed block: a process checks only the blocks it reads.
pub(super) const CHECK_BLOCK_BYTES: u64 = 64 << 20;
/// The three parts, in file order.
const PARTS: [Part; 3] = [Part::Train, Part::Valid, Part::Test];
const PART_NAMES: [&str; 3] = ["train", "valid", "test"];

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

/// The quarantine file's columns.
const QUARANTINE_HEADER: [&str; 5] = ["file", "line", "column", "reason", "row"];

/// Writes quarantined rows as they come: `file,line,column,reason,row` (the header only in the
/// file itself, not in a process's piece of it).
struct QuarantineWriter {
    source: String,
    path: PathBuf,
    out: csv::Writer<File>,
    rows: usize,
}

impl QuarantineWriter {
    fn create(path: &Path, source: &Path, header: bool) -> Result<Self> {
        let io = |e: csv::Error| Error::io(path, std::io::Error::other(e));
        let mut out = csv::Writer::from_path(path).map_err(io)?;
        if header {
            out.write_record(QUARANTINE_HEADER).map_err(io)?;
        }
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

/// This process's quarantine: in one process the file itself; under mpirun a piece per rank for
/// the rows removed while cleaning and one for the duplicates, which rank 0 puts together in
/// the one-process order (every removed row by line, then every duplicate by line).
struct Quarantine {
    removed: QuarantineWriter,
    duplicates: Option<QuarantineWriter>,
}

impl Quarantine {
    fn pieces(quarantine: &Path, rank: usize) -> [PathBuf; 2] {
        let name = quarantine.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        [
            quarantine.with_file_name(format!("{name}.rank-{rank}")),
            quarantine.with_file_name(format!("{name}.rank-{rank}.duplicates")),
        ]
    }

    fn create(quarantine: &Path, source: &Path) -> Result<Self> {
        let world = world();
        if world.size() == 1 {
            return Ok(Self { removed: QuarantineWriter::create(quarantine, source, true)?, duplicates: None });
        }
        let [removed, duplicates] = Self::pieces(quarantine, world.rank());
        Ok(Self {
            removed: QuarantineWriter::create(&removed, source, false)?,
            duplicates: Some(QuarantineWriter::create(&duplicates, source, false)?),
        })
    }

    fn duplicate(&mut self, row: &InvalidRow) -> Result<()> {
        self.duplicates.as_mut().unwrap_or(&mut self.removed).add(row)
    }

    fn finish(self) -> Result<usize> {
        let duplicates = match self.duplicates {
            Some(d) => d.finish()?,
            None => 0,
        };
        Ok(self.removed.finish()? + duplicates)
    }

    /// Rank 0, once every process has finished its pieces: the file from them (or no file when
    /// nothing was removed, as the in-memory prepare).
    fn assemble(quarantine: &Path, rows: usize) -> Result<()> {
        let world = world();
        if world.size() > 1 {
            let pieces: Vec<[PathBuf; 2]> = (0..world.size()).map(|r| Self::pieces(quarantine, r)).collect();
            if rows > 0 {
                let mut out = BufWriter::new(File::create(quarantine).map_err(|e| Error::io(quarantine, e))?);
                out.write_all(format!("{}\n", QUARANTINE_HEADER.join(",")).as_bytes())
                    .map_err(|e| Error::io(quarantine, e))?;
                for piece in pieces.iter().map(|p| &p[0]).chain(pieces.iter().map(|p| &p[1])) {
                    let mut from = File::open(piece).map_err(|e| Error::io(piece, e))?;
                    std::io::copy(&mut from, &mut out).map_err(|e| Error::io(quarantine, e))?;
                }
                out.flush().map_err(|e| Error::io(quarantine, e))?;
            }
            for piece in pieces.iter().flatten() {
                std::fs::remove_file(piece).map_err(|e| Error::io(piece, e))?;
            }
        } else if rows == 0 {
            std::fs::remove_file(quarantine).map_err(|e| Error::io(quarantine, e))?;
        }
        Ok(())
    }
}

/// The columns of the source, as the first batch read says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Schema {
    names: Vec<String>,
    kinds: Vec<ColumnKind>,
    label: usize,
}

impl Schema {
    fn of(table: &Table) -> Self {
        Self {
            names: table.columns.iter().map(|c| c.name.clone()).collect(),
            kinds: table.columns.iter().map(|c| c.kind()).collect(),
            label: table.label,
        }
    }

    fn named(&self, kind: ColumnKind) -> Vec<String> {
        self.features().filter(|&(_, k)| k == kind).map(|(n, _)| n.clone()).collect()
    }

    fn features(&self) -> impl Iterator<Item = (&String, ColumnKind)> {
        self.names.iter().zip(self.kinds.iter().copied()).enumerate().filter(|&(i, _)| i != self.label).map(|(_, c)| c)
    }

    fn check(&self, path: &Path, table: &Table) -> Result<()> {
        let same =
            table.columns.len() == self.names.len() && table.columns.iter().zip(&self.names).all(|(c, n)| &c.name == n);
        if same { Ok(()) } else { Err(changed(path)) }
    }
}

/// What the first pass learned from one process's share, as it travels to the others.
#[derive(Debug, Serialize, Deserialize)]
struct CleanedShare {
    schema: Option<Schema>,
    /// Valid (readable) rows read.
    valid_rows: u64,
    /// Label values in first-seen order.
    label_levels: Vec<String>,
    report: CleanReport,
    missing_all: Vec<usize>,
    missing_labelled: Vec<usize>,
    invalid_rows: usize,
    first_invalid: Option<(u64, String)>,
}

/// What stays on this process from the first pass: for each valid row, kept or not, and each
/// kept row's label (an index into its `label_levels`).
struct CleanedRows {
    kept: Vec<bool>,
    labels: Vec<u32>,
}

/// Finds duplicate rows without holding a table of every row: each candidate row's 128-bit
/// identity, index and line go to one of 64 bucket files by the identity's top bits; each bucket
/// is then sorted alone (1/64 of the rows in memory at a time, 32 bytes a row). Under mpirun the
/// bucket files are in the output directory, which every process sees: each process writes its
/// own, and each then sorts every process's files of some buckets.
struct DuplicateSpill {
    dir: PathBuf,
    /// Rank 0 owns the directory (removed when dropped).
    _owner: Option<tempfile::TempDir>,
    buckets: Vec<BufWriter<File>>,
}

const SPILL_BUCKETS: usize = 64;

impl DuplicateSpill {
    /// Every process reaches this (one exchange: rank 0 makes the directory).
    fn create(near: &Path) -> Result<Self> {
        let world = world();
        let owner = if world.rank() == 0 {
            Some(tempfile::Builder::new().prefix(".duplicates-").tempdir_in(near).map_err(|e| Error::io(near, e)))
        } else {
            None
        };
        let name = owner.as_ref().map(|o| match o {
            Ok(dir) => Ok(dir.path().to_owned()),
            Err(e) => Err(Error::InvalidOption(e.to_string())),
        });
        let names = exchange(name.transpose())?;
        let _owner = owner.transpose()?;
        let dir = names[0].clone().ok_or_else(|| Error::InvalidOption("rank 0 made no duplicates directory".into()))?;
        let rank = world.rank();
        let buckets = (0..SPILL_BUCKETS)
            .map(|b| {
                let path = dir.join(format!("{rank}-{b}"));
                File::create(&path).map(|f| BufWriter::with_capacity(64 << 10, f)).map_err(|e| Error::io(&path, e))
            })
            .collect::<Result<_>>()?;
        Ok(Self { dir, _owner, buckets })
    }

    fn add(&mut self, identity: u128, row: u64, line: u64) -> Result<()> {
        let bucket = (identity >> 122) as usize;
        let mut entry = [0u8; 32];
        entry[..16].copy_from_slice(&identity.to_le_bytes());
        entry[16..24].copy_from_slice(&row.to_le_bytes());
        entry[24..].copy_from_slice(&line.to_le_bytes());
        self.buckets[bucket].write_all(&entry).map_err(|e| Error::io(&self.dir, e))
    }

    /// Writes out and closes this process's bucket files (before the others read them).
    fn close(&mut self) -> Result<()> {
        for writer in self.buckets.drain(..) {
            writer.into_inner().map_err(|e| Error::io(&self.dir, e.into_error()))?;
        }
        Ok(())
    }

    /// Every row whose identity an earlier row has, with that earlier row's line, by row (rows
    /// numbered across processes: `offsets[r]` valid rows come before rank r's). Every process
    /// reaches this (one exchange).
    fn duplicates(self, offsets: &[u64]) -> Result<Vec<(u64, u64)>> {
        let world = world();
        let mine = (|| {
            let mut out = Vec::new();
            for b in (0..SPILL_BUCKETS).filter(|b| b % world.size() == world.rank()) {
                let mut entries: Vec<(u128, u64, u64)> = Vec::new();
                for (rank, &offset) in offsets.iter().enumerate() {
                    let path = self.dir.join(format!("{rank}-{b}"));
                    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                    entries.extend(bytes.chunks_exact(32).map(|e| {
                        let long = |a: usize| u64::from_le_bytes(e[a..a + 8].try_into().expect("8 bytes"));
                        (u128::from_le_bytes(e[..16].try_into().expect("16 bytes")), offset + long(16), long(24))
                    }));
                    std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                }
                entries.sort_unstable();
                for run in entries.chunk_by(|a, b| a.0 == b.0) {
                    out.extend(run[1..].iter().map(|&(_, row, _)| (row, run[0].2)));
                }
            }
            Ok(out)
        })();
        let mut all: Vec<(u64, u64)> = exchange(mine)?.concat();
        all.sort_unstable();
        Ok(all)
    }
}

/// Pass 1 over this process's share: quarantine what cleaning removes, keep the labels, spill
/// row identities for finding duplicates.
fn clean_share(
    path: &Path,
    reader: &Reader,
    options: &PipelineOptions,
    spill: &mut Option<DuplicateSpill>,
    quarantine: &mut Quarantine,
) -> Result<(CleanedShare, CleanedRows)> {
    let mut schema: Option<Schema> = None;
    let mut kept = Vec::new();
    let mut labels = Vec::new();
    let mut label_levels: Vec<String> = Vec::new();
    let mut level_index: HashMap<String, u32> = HashMap::new();
    let mut report = CleanReport::default();
    let mut missing_all: Vec<usize> = Vec::new();
    let mut missing_labelled: Vec<usize> = Vec::new();
    let mut invalid_rows = 0;
    let mut first_invalid: Option<(u64, String)> = None;
    let drop_missing = options.clean.missing == MissingPolicy::Drop;
    for batch in reader.batches(&options.load)? {
        let (table, invalid) = batch?;
        if options.load.invalid_rows == InvalidRowPolicy::Fail
            && let Some(bad) = invalid.first()
        {
            return Err(Error::InvalidRow { path: path.to_owned(), line: bad.line, reason: bad.reason.clone() });
        }
        invalid_rows += invalid.len();
        if first_invalid.is_none() {
            first_invalid = invalid.first().map(|r| (r.line, r.reason.clone()));
        }
        for row in &invalid {
            quarantine.removed.add(row)?;
        }
        if schema.is_none() {
            schema = Some(Schema::of(&table));
            missing_all = vec![0; table.columns.len()];
            missing_labelled = vec![0; table.columns.len()];
        }
        let label = table.label_column();
        let ColumnData::Categorical { codes, levels } = &label.data else { unreachable!("labels are categorical") };
        // This batch's label codes as indices into the levels of the whole share.
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
                if let Some(spill) = spill {
                    spill.add(row_identity(&table, r), kept.len() as u64, table.lines[r])?;
                }
                None
            };
            match removed {
                Some((column, reason)) => {
                    quarantine.removed.add(&removed_row(&table, r, column, reason))?;
                    kept.push(false);
                }
                None => {
                    kept.push(true);
                    labels.push(batch_levels[codes[r] as usize]);
                }
            }
        }
    }
    if let Some(spill) = spill {
        spill.close()?;
    }
    let share = CleanedShare {
        schema,
        valid_rows: kept.len() as u64,
        label_levels,
        report,
        missing_all,
        missing_labelled,
        invalid_rows,
        first_invalid,
    };
    Ok((share, CleanedRows { kept, labels }))
}

/// The source as this process reads it.
struct Reader {
    path: PathBuf,
    format: Format,
    share: Share,
}

impl Reader {
    fn batches(&self, options: &LoadOptions) -> Result<super::share::Batches> {
        batches(&self.path, self.format, options, &self.share)
    }
}

/// What the first pass decided, on every process: the source's columns, the cleaning report,
/// the classes, and this process's rows' parts.
struct Decided {
    schema: Schema,
    report: CleanReport,
    invalid_rows: usize,
    classes: Vec<String>,
    /// Rows of each class in each part (all processes).
    per_class: Vec<[usize; 3]>,
    /// This process's valid rows' parts (none for a removed row).
    row_parts: Vec<Option<Part>>,
    /// Rows of each part before this process's rows (where they go in each part's files).
    part_offsets: [u64; 3],
    /// Rows of each part.
    part_rows: [u64; 3],
    /// This process's duplicates (valid-row index here) with the line of the row they repeat.
    duplicates: Vec<(u64, u64)>,
}

/// The first pass on every process and what follows from all of them: duplicates, classes,
/// split. Each process keeps only its own rows' parts; every label (4 bytes a row) travels to
/// every process once, since the stratified split is decided from them all.
fn clean_and_split(
    path: &Path,
    reader: &Reader,
    options: &PipelineOptions,
    out: &Path,
    quarantine: &Path,
) -> Result<(Decided, Quarantine)> {
    let world = world();
    let mut spill = if options.clean.drop_duplicates { Some(DuplicateSpill::create(out)?) } else { None };
    let local = Quarantine::create(quarantine, path).and_then(|mut q| {
        let (share, rows) = clean_share(path, reader, options, &mut spill, &mut q)?;
        Ok((share, (rows, q)))
    });
    let (share, rows) = split_result(local);
    let shares = exchange(share)?;
    let (CleanedRows { mut kept, labels }, quarantine) = rows.expect("this process's pass succeeded");

    let Some(schema) = shares.iter().find_map(|s| s.schema.clone()) else {
        return Err(Error::NoRows { path: path.to_owned() });
    };
    if shares.iter().any(|s| s.schema.as_ref().is_some_and(|other| other != &schema)) {
        return Err(changed(path));
    }
    let mut report = CleanReport::default();
    let mut missing_all = vec![0; schema.names.len() - 1];
    let mut missing_labelled = vec![0; schema.names.len() - 1];
    for s in &shares {
        report.rows_in += s.report.rows_in;
        report.missing_label_rows += s.report.missing_label_rows;
        report.missing_value_rows_dropped += s.report.missing_value_rows_dropped;
        missing_all.iter_mut().zip(&s.missing_all).for_each(|(a, b)| *a += b);
        missing_labelled.iter_mut().zip(&s.missing_labelled).for_each(|(a, b)| *a += b);
    }
    let invalid_rows = shares.iter().map(|s| s.invalid_rows).sum();
    if report.rows_in == 0 {
        return Err(match shares.iter().find_map(|s| s.first_invalid.clone()) {
            Some((first_line, first_reason)) => {
                Error::AllRowsInvalid { path: path.to_owned(), invalid: invalid_rows, first_line, first_reason }
            }
            None => Error::NoRows { path: path.to_owned() },
        });
    }
    let feature_names: Vec<&String> = schema.features().map(|(n, _)| n).collect();
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
    if options.clean.missing != MissingPolicy::Drop {
        report.cells_to_impute = report.missing_cells;
    }

    // Duplicates leave the kept rows (each one's earlier twin stays).
    let offsets: Vec<u64> = shares.iter().scan(0, |at, s| Some(std::mem::replace(at, *at + s.valid_rows))).collect();
    let all_duplicates = match spill {
        Some(spill) => spill.duplicates(&offsets)?,
        None => Vec::new(),
    };
    report.duplicate_rows = all_duplicates.len();
    let mine = offsets[world.rank()]..offsets[world.rank()] + kept.len() as u64;
    let duplicates: Vec<(u64, u64)> = all_duplicates
        .iter()
        .filter(|(row, _)| mine.contains(row))
        .map(|&(row, line)| (row - mine.start, line))
        .collect();
    drop(all_duplicates);
    let mut labels = if duplicates.is_empty() {
        labels
    } else {
        let mut dups = duplicates.iter().map(|&(row, _)| row as usize).peekable();
        let mut kept_labels = labels.into_iter();
        let mut left = Vec::with_capacity(kept.len());
        for (r, k) in kept.iter_mut().enumerate().filter(|(_, k)| **k) {
            let label = kept_labels.next().expect("a label per kept row");
            if dups.peek() == Some(&r) {
                dups.next();
                *k = false;
            } else {
                left.push(label);
            }
        }
        left
    };

    // The label values in first-seen order over the whole file, then the classes.
    let mut levels: Vec<String> = Vec::new();
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut my_levels = Vec::new();
    for (rank, s) in shares.iter().enumerate() {
        for level in &s.label_levels {
            let i = *index.entry(level).or_insert_with(|| {
                levels.push(level.clone());
                (levels.len() - 1) as u32
            });
            if rank == world.rank() {
                my_levels.push(i);
            }
        }
    }
    labels.iter_mut().for_each(|l| *l = my_levels[*l as usize]);
    let by_rank = exchange_labels(labels);
    let kept_before: u64 = by_rank[..world.rank()].iter().map(|l| l.len() as u64).sum();
    let mut all_labels: Vec<u32> = by_rank.concat();
    drop(by_rank);
    let mut present = vec![false; levels.len()];
    all_labels.iter().for_each(|&l| present[l as usize] = true);
    let mut classes: Vec<String> = levels.iter().zip(present).filter(|(_, p)| *p).map(|(l, _)| l.clone()).collect();
    sort_class_names(&mut classes);
    report.rows_out = all_labels.len();
    if classes.len() < 2 {
        return Err(Error::OneClass {
            path: path.to_owned(),
            label: schema.names[schema.label].clone(),
            classes,
            rows: report.rows_out,
        });
    }
    let class_of: Vec<u32> =
        levels.iter().map(|l| classes.iter().position(|c| c == l).map_or(u32::MAX, |i| i as u32)).collect();
    all_labels.iter_mut().for_each(|l| *l = class_of[*l as usize]);
    let parts = split_parts(&all_labels, classes.len(), &options.split)?;
    let mut per_class = vec![[0usize; 3]; classes.len()];
    all_labels.iter().zip(&parts).for_each(|(&l, &p)| per_class[l as usize][p as usize] += 1);
    drop(all_labels);
    let count = |parts: &[Part]| {
        let mut n = [0u64; 3];
        parts.iter().for_each(|&p| n[p as usize] += 1);
        n
    };
    let part_offsets = count(&parts[..kept_before as usize]);
    let part_rows = count(&parts);
    let kept_here = kept.iter().filter(|&&k| k).count();
    let mut my_parts = parts[kept_before as usize..kept_before as usize + kept_here].iter().copied();
    let row_parts = kept.iter().map(|&k| if k { my_parts.next() } else { None }).collect();
    let decided =
        Decided { schema, report, invalid_rows, classes, per_class, row_parts, part_offsets, part_rows, duplicates };
    Ok((decided, quarantine))
}

/// One numeric column's pieces, or a categorical column's counts, as they travel (values by
/// their bits, so every process folds the same numbers).
#[derive(Debug, Serialize, Deserialize)]
enum StatsShare {
    Numeric(Vec<WirePiece>),
    Categorical(Vec<(String, u64)>),
}

/// A [`StatsPiece`] as it travels: block, whole, count, (mean, m2, min, max) and values as bits.
type WirePiece = (u64, bool, u64, [u64; 4], Vec<u64>);

fn piece_out(p: StatsPiece) -> WirePiece {
    let s = p.stats;
    (
        p.block,
        p.whole,
        s.count,
        [s.mean, s.m2, s.min, s.max].map(f64::to_bits),
        p.values.iter().map(|v| v.to_bits()).collect(),
    )
}

fn piece_in((block, whole, count, [mean, m2, min, max], values): WirePiece) -> StatsPiece {
    let [mean, m2, min, max] = [mean, m2, min, max].map(f64::from_bits);
    StatsPiece {
        block,
        whole,
        stats: NumericStats { count, mean, m2, min, max },
        values: values.into_iter().map(f64::from_bits).collect(),
    }
}

/// Pass 2 over this process's share: the training rows' statistics by block, and the
/// duplicates quarantined with their text.
fn gather_statistics(
    path: &Path,
    reader: &Reader,
    load: &LoadOptions,
    decided: &Decided,
    quarantine: &mut Quarantine,
) -> Result<Vec<StatsShare>> {
    let first_train = decided.part_offsets[0];
    let train_here = decided.row_parts.iter().filter(|&&p| p == Some(Part::Train)).count() as u64;
    let mut numeric: Vec<Option<StatsPieces>> = Vec::new();
    let mut categorical: Vec<HashMap<String, u64>> = Vec::new();
    for (_, kind) in decided.schema.features() {
        let mine = first_train..first_train + train_here;
        numeric.push((kind == ColumnKind::Numeric).then(|| StatsPieces::new(mine, decided.part_rows[0])));
        categorical.push(HashMap::new());
    }
    let (mut next, mut train_row, mut duplicates_done) = (0, first_train, 0);
    for batch in reader.batches(load)? {
        let (table, _) = batch?;
        decided.schema.check(path, &table)?;
        while let Some(&(row, first_line)) = decided.duplicates.get(duplicates_done)
            && (row as usize) < next + table.rows()
        {
            let reason = format!("exact duplicate of line {first_line}");
            quarantine.duplicate(&removed_row(&table, row as usize - next, None, reason))?;
            duplicates_done += 1;
        }
        let Some(batch_parts) = decided.row_parts.get(next..next + table.rows()) else {
            return Err(changed(path));
        };
        let train: Vec<usize> = (0..table.rows()).filter(|&r| batch_parts[r] == Some(Part::Train)).collect();
        next += table.rows();
        for (((_, column), pieces), counts) in table.features().zip(&mut numeric).zip(&mut categorical) {
            match (&column.data, pieces) {
                (ColumnData::Numeric(v), Some(pieces)) => {
                    train.iter().enumerate().for_each(|(i, &r)| pieces.push(train_row + i as u64, v[r]));
                }
                (ColumnData::Categorical { codes, levels }, None) => {
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
        train_row += train.len() as u64;
    }
    if next != decided.row_parts.len() {
        return Err(changed(path));
    }
    Ok(numeric
        .into_iter()
        .zip(categorical)
        .map(|(pieces, counts)| match pieces {
            Some(p) => StatsShare::Numeric(p.into_pieces().into_iter().map(piece_out).collect()),
            None => StatsShare::Categorical(counts.into_iter().collect()),
        })
        .collect())
}

/// Every process's statistics, column by column, in rank order.
fn merge_statistics(schema: &Schema, shares: Vec<Vec<StatsShare>>) -> Result<Vec<(String, ColumnStats)>> {
    let names: Vec<String> = schema.features().map(|(n, _)| n.clone()).collect();
    let mut columns: Vec<Vec<StatsShare>> = names.iter().map(|_| Vec::new()).collect();
    for share in shares {
        if share.len() != names.len() {
            return Err(Error::InvalidOption("the processes read different columns".into()));
        }
        share.into_iter().zip(&mut columns).for_each(|(s, c)| c.push(s));
    }
    Ok(names
        .into_iter()
        .zip(columns)
        .map(|(name, shares)| {
            let stats = if matches!(shares.first(), Some(StatsShare::Numeric(_))) {
                ColumnStats::Numeric(fold_pieces(shares.into_iter().flat_map(|s| match s {
                    StatsShare::Numeric(p) => p.into_iter().map(piece_in).collect(),
                    StatsShare::Categorical(_) => Vec::new(),
                })))
            } else {
                let mut counts: HashMap<String, u64> = HashMap::new();
                for s in shares {
                    if let StatsShare::Categorical(c) = s {
                        c.into_iter().for_each(|(level, n)| *counts.entry(level).or_insert(0) += n);
                    }
                }
                ColumnStats::Categorical(counts)
            };
            (name, stats)
        })
        .collect())
}

/// A piece of a prepared file one process wrote: start, length, CRC-32; cut at every block edge.
type CrcPiece = (u64, u64, u32);

/// Writes this process's rows of a file from byte `at`, checksumming them in pieces.
struct RegionWriter {
    path: PathBuf,
    out: BufWriter<File>,
    at: u64,
    piece: (u64, crc32fast::Hasher),
    pieces: Vec<CrcPiece>,
}

impl RegionWriter {
    fn open(path: PathBuf, at: u64) -> Result<Self> {
        let mut file = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        file.seek(SeekFrom::Start(at)).map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            at,
            piece: (at, crc32fast::Hasher::new()),
            pieces: Vec::new(),
        })
    }

    fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let room = CHECK_BLOCK_BYTES - self.at % CHECK_BLOCK_BYTES;
            let n = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.out.write_all(&bytes[..n]).map_err(|e| Error::io(&self.path, e))?;
            self.piece.1.update(&bytes[..n]);
            self.at += n as u64;
            bytes = &bytes[n..];
            if self.at.is_multiple_of(CHECK_BLOCK_BYTES) {
                self.close_piece();
            }
        }
        Ok(())
    }

    fn close_piece(&mut self) {
        let (start, hasher) = std::mem::replace(&mut self.piece, (self.at, crc32fast::Hasher::new()));
        if self.at > start {
            self.pieces.push((start, self.at - start, hasher.finalize()));
        }
    }

    fn finish(mut self) -> Result<Vec<CrcPiece>> {
        self.close_piece();
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.out.get_ref().sync_all().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.pieces)
    }
}

/// A file's entry from every process's pieces of it: the CRC-32 of each block and of the whole.
fn file_entry(name: String, bytes: u64, pieces: &[CrcPiece]) -> Result<FileEntry> {
    let mut blocks: Vec<crc32fast::Hasher> = Vec::new();
    let mut end = 0;
    for &(start, len, crc) in pieces {
        if start != end {
            return Err(Error::InvalidOption(format!("{name}: bytes {end}..{start} were not written")));
        }
        let block = (start / CHECK_BLOCK_BYTES) as usize;
        if blocks.len() <= block {
            blocks.resize_with(block + 1, crc32fast::Hasher::new);
        }
        blocks[block].combine(&crc32fast::Hasher::new_with_initial_len(crc, len));
        end = start + len;
    }
    if end != bytes {
        return Err(Error::InvalidOption(format!("{name}: {end} of {bytes} bytes were written")));
    }
    let mut whole = crc32fast::Hasher::new();
    blocks.iter().for_each(|b| whole.combine(b));
    Ok(FileEntry {
        name,
        bytes,
        crc32: whole.finalize(),
        block_bytes: CHECK_BLOCK_BYTES,
        block_crc32: blocks.into_iter().map(crc32fast::Hasher::finalize).collect(),
    })
}

/// What pass 3 did on one process.
#[derive(Debug, Serialize, Deserialize)]
struct WrittenShare {
    /// Pieces of each part's features file, then of its labels file.
    pieces: [[Vec<CrcPiece>; 2]; 3],
    imputed: usize,
    unseen: usize,
}

/// Pass 3 over this process's share: each row transformed and written at its place in its
/// part's files (rank 0 made them at their full size first).
fn write_share(
    path: &Path,
    reader: &Reader,
    load: &LoadOptions,
    decided: &Decided,
    fitted: &crate::preprocess::FittedPreprocessor,
    out: &Path,
) -> Result<WrittenShare> {
    let width = fitted.feature_names().len() as u64;
    let mut writers = Vec::new();
    for (p, name) in PART_NAMES.iter().enumerate() {
        let at = decided.part_offsets[p];
        writers.push([
            RegionWriter::open(out.join(format!("{name}.features.f32")), at * width * 4)?,
            RegionWriter::open(out.join(format!("{name}.labels.u32")), at * 4)?,
        ]);
    }
    let (mut imputed, mut unseen, mut next) = (0, 0, 0);
    let mut bytes = Vec::new();
    for batch in reader.batches(load)? {
        let (table, _) = batch?;
        decided.schema.check(path, &table)?;
        let Some(batch_parts) = decided.row_parts.get(next..next + table.rows()) else {
            return Err(changed(path));
        };
        for (part, [features, labels]) in PARTS.into_iter().zip(&mut writers) {
            let rows: Vec<usize> = (0..table.rows()).filter(|&r| batch_parts[r] == Some(part)).collect();
            // A few thousand rows at a time: one-hot columns can make the rows many times the
            // size of the text they came from.
            for block in rows.chunks(TRANSFORM_ROWS) {
                let (prepared, c) = fitted.transform(&table, Some(block)).map_err(|e| at_line(e, &table, block))?;
                imputed += c.imputed_cells;
                unseen += c.unseen_categories;
                if let Some(i) = prepared.features.iter().position(|v| !v.is_finite()) {
                    return Err(not_finite(&table, block, &prepared, i));
                }
                bytes.clear();
                write_le(&mut bytes, &prepared.features).map_err(|e| Error::io(&features.path, e))?;
                features.write(&bytes)?;
                bytes.clear();
                write_le(&mut bytes, &prepared.labels).map_err(|e| Error::io(&labels.path, e))?;
                labels.write(&bytes)?;
            }
        }
        next += table.rows();
    }
    if next != decided.row_parts.len() {
        return Err(changed(path));
    }
    let mut pieces: [[Vec<CrcPiece>; 2]; 3] = Default::default();
    for (p, [features, labels]) in writers.into_iter().enumerate() {
        pieces[p] = [features.finish()?, labels.finish()?];
    }
    Ok(WrittenShare { pieces, imputed, unseen })
}

/// Rank 0: each part's two files at their full size, before any process writes into them.
fn create_files(out: &Path, width: u64, part_rows: &[u64; 3]) -> Result<()> {
    for (name, &rows) in PART_NAMES.iter().zip(part_rows) {
        for (file, bytes) in
            [(format!("{name}.features.f32"), rows * width * 4), (format!("{name}.labels.u32"), rows * 4)]
        {
            let path = out.join(file);
            let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
            f.set_len(bytes).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Prepares `path` into the directory `out` (created; its manifest written last, so a
/// directory without one is an unfinished prepare) in bounded memory, quarantining removed
/// rows into `quarantine`. Returns the manifest.
///
/// Under mpirun every rank calls it with the same arguments (`out` and `quarantine` where every
/// rank sees them, as hosts share a file system): each reads and prepares only its share of the
/// file, and the directory is the one one process would write, to the byte.
pub fn prepare_to_dir(
    path: &Path,
    options: &PipelineOptions,
    out: &Path,
    quarantine: &Path,
    timers: &mut PhaseTimers,
) -> Result<Manifest> {
    let world = world();
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
    let manifest_path = out.join(MANIFEST);
    let setup = (|| {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        // A manifest left by an earlier prepare would describe files about to be replaced.
        if world.rank() == 0 && manifest_path.exists() {
            std::fs::remove_file(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
        }
        detect_format(path)
    })();
    let format = exchange(setup)?[world.rank()];
    let share = share_of(path, format, &options.load)?;
    if let Some(note) = share.describe(path) {
        // One write, so that the ranks' lines do not interleave on a shared stderr.
        let _ = std::io::stderr().write_all(format!("note: {note}\n").as_bytes());
    }
    let reader = Reader { path: path.to_owned(), format, share };

    // Pass 1: clean, keep labels; then the split from them.
    let (decided, mut quarantined) =
        timers.time(Phase::Clean, || clean_and_split(path, &reader, options, out, quarantine))?;

    // Pass 2: the training rows' statistics, by block, in file order.
    let schema = &decided.schema;
    let load = LoadOptions {
        label: Some(schema.names[schema.label].clone()),
        categorical: schema.named(ColumnKind::Categorical),
        numeric: schema.named(ColumnKind::Numeric),
        ..options.load.clone()
    };
    let fitted = timers.time(Phase::Preprocess, || -> Result<_> {
        let local = gather_statistics(path, &reader, &load, &decided, &mut quarantined);
        let stats = merge_statistics(schema, exchange(local)?)?;
        preprocessor.fit_from_stats(&schema.names[schema.label], &decided.classes, &stats, decided.part_rows[0])
    })?;
    let quarantined_here = quarantined.finish();
    let quarantined_rows: usize = exchange(quarantined_here)?.iter().sum();

    // Pass 3: transform and write, each process its rows at their place.
    let width = fitted.feature_names().len() as u64;
    let written = timers.time(Phase::Preprocess, || -> Result<_> {
        let made = if world.rank() == 0 {
            Quarantine::assemble(quarantine, quarantined_rows)
                .and_then(|()| create_files(out, width, &decided.part_rows))
        } else {
            Ok(())
        };
        exchange(made)?;
        exchange(write_share(path, &reader, &load, &decided, &fitted, out))
    })?;
    let mut entries = Vec::new();
    for (p, name) in PART_NAMES.iter().enumerate() {
        let pieces = |f: usize| written.iter().flat_map(|w| w.pieces[p][f].iter().copied()).collect::<Vec<_>>();
        let rows = decided.part_rows[p];
        entries.push(PartEntry {
            rows,
            features: file_entry(format!("{name}.features.f32"), rows * width * 4, &pieces(0))?,
            labels: file_entry(format!("{name}.labels.u32"), rows * 4, &pieces(1))?,
        });
    }
    let [train, valid, test]: [PartEntry; 3] = entries.try_into().expect("three parts");
    let (numeric_columns, categorical_columns) = schema.features().fold((0, 0), |(n, c), (_, k)| match k {
        ColumnKind::Numeric => (n + 1, c),
        ColumnKind::Categorical => (n, c + 1),
    });
    let summary = PrepareSummary {
        source: SourceSummary {
            path: path.to_owned(),
            format,
            invalid_rows: decided.invalid_rows,
            clean: decided.report.clone(),
        },
        test_source: None,
        label: schema.names[schema.label].clone(),
        split: SplitSummary {
            train: train.rows as usize,
            valid: valid.rows as usize,
            test: test.rows as usize,
            per_class: decided
                .classes
                .iter()
                .zip(&decided.per_class)
                .map(|(c, n)| (c.clone(), n[0], n[1], n[2]))
                .collect(),
        },
        numeric_columns,
        categorical_columns,
        features: fitted.feature_names().len(),
        imputed_cells: written.iter().map(|w| w.imputed).sum(),
        unseen_categories: written.iter().map(|w| w.unseen).sum(),
        quarantined_rows,
    };
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        trainbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        summary,
        split: options.split,
        split_rule: split_rule(&options.split),
        feature_names: fitted.feature_names().to_vec(),
        class_names: decided.classes.clone(),
        categorical_features: fitted.categorical_features(),
        preprocessor: fitted,
        train,
        valid,
        test,
    };
    let manifest_written = if world.rank() == 0 { write_manifest(out, &manifest) } else { Ok(()) };
    exchange(manifest_written)?;
    Ok(manifest)
}

/// Writes the manifest last, through a rename, so a directory with one is complete.
fn write_manifest(out: &Path, manifest: &Manifest) -> Result<()> {
    let manifest_path = out.join(MANIFEST);
    let text = serde_json::to_string_pretty(manifest).map_err(|e| Error::io(&manifest_path, e.into()))?;
    let partial = out.join(format!("{MANIFEST}.partial"));
    std::fs::write(&partial, text).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, &manifest_path).map_err(|e| Error::io(&manifest_path, e))
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

fn changed(path: &Path) -> Error {
    Error::InvalidOption(format!("{}: the file changed while it was being prepared; prepare it again", path.display()))
}

/// A value that is not finite after preprocessing (an `inf` in the file, or one beyond f32's
/// range): a prepared directory holds finite rows only, so the engines need not read every row to
/// check.
fn not_finite(table: &Table, rows: &[usize], prepared: &crate::prepared::Prepared, i: usize) -> Error {
    let (row, column) = (i / prepared.n_features.max(1), i % prepared.n_features.max(1));
    Error::InvalidRow {
        path: table.source.clone(),
        line: table.lines[rows[row]],
        reason: format!(
            "feature '{}' is {} after preprocessing; features must be finite",
            prepared.feature_names.get(column).map_or("?", String::as_str),
            prepared.features[i]
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_put_together_from_pieces_are_the_files() {
        let block = CHECK_BLOCK_BYTES as usize;
        let bytes: Vec<u8> = (0..block + 5000).map(|i| (i * 7 % 251) as u8).collect();
        // Pieces as three processes write them: cut where their rows meet and at the block edge.
        let cuts = [0, 1234, block - 10, block, block + 4000, bytes.len()];
        let pieces: Vec<CrcPiece> =
            cuts.windows(2).map(|w| (w[0] as u64, (w[1] - w[0]) as u64, crc32fast::hash(&bytes[w[0]..w[1]]))).collect();
        let entry = file_entry("f".into(), bytes.len() as u64, &pieces).unwrap();
        assert_eq!(entry.crc32, crc32fast::hash(&bytes));
        assert_eq!(entry.block_crc32, [crc32fast::hash(&bytes[..block]), crc32fast::hash(&bytes[block..])]);
        // A gap or a short file is an error, not a checksum.
        assert!(file_entry("f".into(), bytes.len() as u64, &pieces[1..]).is_err());
        assert!(file_entry("f".into(), bytes.len() as u64 + 1, &pieces).is_err());
    }
}
