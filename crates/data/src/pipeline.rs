//! The whole path from a file to training-ready splits, and the `inspect` summary.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trainbench_metrics::{Phase, PhaseTimers};

use crate::clean::{CleanOptions, CleanReport, clean};
use crate::error::{Error, Result};
use crate::load::{Format, InvalidRow, LoadOptions, Loaded, load};
use crate::prepared::Prepared;
use crate::preprocess::{FittedPreprocessor, PreprocessOptions, Preprocessor};
use crate::split::{Split, SplitOptions, split};
use crate::table::{ColumnData, ColumnKind, MISSING_CODE, Table};

/// One column as `inspect` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    /// Header name.
    pub name: String,
    /// Inferred (or forced) kind.
    pub kind: ColumnKind,
    /// Missing values.
    pub missing: usize,
    /// Distinct non-missing values.
    pub distinct: usize,
    /// Whether this is the label column.
    pub is_label: bool,
}

/// What `trainbench inspect` reports about a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectReport {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Valid rows.
    pub rows: usize,
    /// Rows that could not be read.
    pub invalid_rows: usize,
    /// The first invalid rows (at most 10), with line and reason.
    pub invalid_sample: Vec<InvalidRow>,
    /// Every column.
    pub columns: Vec<ColumnSummary>,
    /// Missing cells over all columns.
    pub missing_total: usize,
    /// The label column.
    pub label: String,
    /// Rows per class (in class order), and rows with no label.
    pub class_balance: Vec<(String, usize)>,
    /// Rows whose label is missing.
    pub missing_labels: usize,
}

/// Describes a loaded file.
pub fn inspect(loaded: &Loaded) -> InspectReport {
    let table = &loaded.table;
    // Distinct counts sort each column: spread the columns over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = table.columns.len().div_ceil(threads).max(1);
    let columns: Vec<ColumnSummary> = std::thread::scope(|s| {
        let handles: Vec<_> = table
            .columns
            .chunks(per_thread)
            .enumerate()
            .map(|(chunk, cols)| {
                s.spawn(move || {
                    cols.iter()
                        .enumerate()
                        .map(|(k, c)| ColumnSummary {
                            name: c.name.clone(),
                            kind: c.kind(),
                            missing: c.missing_count(),
                            distinct: c.distinct_count(),
                            is_label: chunk * per_thread + k == table.label,
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("column summary does not panic")).collect()
    });
    InspectReport {
        path: table.source.clone(),
        format: loaded.format,
        rows: table.rows(),
        invalid_rows: loaded.invalid.len(),
        invalid_sample: loaded.invalid.iter().take(10).cloned().collect(),
        missing_total: columns.iter().map(|c| c.missing).sum(),
        label: table.label_name().to_owned(),
        class_balance: class_balance(table),
        missing_labels: table.label_column().missing_count(),
        columns,
    }
}

fn class_balance(table: &Table) -> Vec<(String, usize)> {
    let ColumnData::Categorical { codes, levels } = &table.label_column().data else { return Vec::new() };
    let mut counts = vec![0usize; levels.len()];
    for &c in codes.iter().filter(|&&c| c != MISSING_CODE) {
        counts[c as usize] += 1;
    }
    table
        .class_names()
        .into_iter()
        .map(|name| {
            let n = levels.iter().position(|l| *l == name).map_or(0, |i| counts[i]);
            (name, n)
        })
        .collect()
}

/// Everything `prepare` needs to know.
#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    /// Reading.
    pub load: LoadOptions,
    /// Cleaning.
    pub clean: CleanOptions,
    /// Splitting (its test fraction is ignored when `test_data` is given).
    pub split: SplitOptions,
    /// Scaling and encoding (its missing-value policy is taken from `clean`).
    pub preprocess: PreprocessOptions,
    /// A separate file of test rows, cleaned the same way.
    pub test_data: Option<PathBuf>,
}

/// Counts of one file through load and clean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Rows set aside as unreadable.
    pub invalid_rows: usize,
    /// What cleaning did.
    pub clean: CleanReport,
}

/// Rows per split and class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// Training rows.
    pub train: usize,
    /// Validation rows.
    pub valid: usize,
    /// Test rows.
    pub test: usize,
    /// Per class: (name, train, valid, test).
    pub per_class: Vec<(String, usize, usize, usize)>,
}

/// What `prepare` did, for the run summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareSummary {
    /// The training file.
    pub source: SourceSummary,
    /// The separate test file, if one was given.
    pub test_source: Option<SourceSummary>,
    /// The label column.
    pub label: String,
    /// Split sizes.
    pub split: SplitSummary,
    /// Input feature columns by kind.
    pub numeric_columns: usize,
    /// Categorical input columns.
    pub categorical_columns: usize,
    /// Output feature width.
    pub features: usize,
    /// Missing cells filled by the imputer across all splits.
    pub imputed_cells: usize,
    /// Unseen categories encoded as "ignore".
    pub unseen_categories: usize,
    /// Rows removed (unreadable or cleaned out), all files.
    pub quarantined_rows: usize,
}

/// Training-ready data.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Rows to train on.
    pub train: Prepared,
    /// Rows for early stopping and tuning (may be empty).
    pub valid: Prepared,
    /// Held-out rows for the final score.
    pub test: Prepared,
    /// The preprocessor fitted on `train`.
    pub preprocessor: FittedPreprocessor,
    /// Counts.
    pub summary: PrepareSummary,
    /// Every removed row, with its file.
    pub quarantine: Vec<(PathBuf, InvalidRow)>,
}

/// Rows removed from a file, each with the file it came from.
type Quarantine = Vec<(PathBuf, InvalidRow)>;

fn load_and_clean(
    path: &Path,
    options: &PipelineOptions,
    timers: &mut PhaseTimers,
) -> Result<(Table, SourceSummary, Quarantine)> {
    let loaded = timers.time(Phase::Load, || load(path, &options.load))?;
    let (format, invalid) = (loaded.format, loaded.invalid);
    let (table, report, removed) = timers.time(Phase::Clean, || clean(loaded.table, &options.clean))?;
    let summary = SourceSummary { path: path.to_owned(), format, invalid_rows: invalid.len(), clean: report };
    let quarantine = invalid.into_iter().chain(removed).map(|r| (path.to_owned(), r)).collect();
    Ok((table, summary, quarantine))
}

/// Loads, cleans, splits and preprocesses `path`, timing each phase into `timers`. A prepared
/// directory (`trainbench prepare --out DIR`) is opened instead: its rows stay in its files,
/// mapped, and its split and preprocessing are the ones it was prepared with.
pub fn prepare(path: &Path, options: &PipelineOptions, timers: &mut PhaseTimers) -> Result<PreparedData> {
    if crate::prepared_dir::is_prepared_dir(path) {
        return timers.time(Phase::Load, || crate::prepared_dir::open_prepared_dir_for(path, &options.split));
    }
    options.split.validate()?;
    if let Some((need, budget, limit)) = too_large_for_memory(path, options) {
        let what = format!("{} needs about {} to prepare in memory", path.display(), gib(need));
        will_not_fit(&what, budget, limit, options)?;
        return prepare_through_directory(path, options, timers);
    }
    let (table, source, mut quarantine) = load_and_clean(path, options, timers)?;
    let test_part = match &options.test_data {
        Some(test_path) => {
            // Read the test file with the training file's label and column kinds.
            let mut test_options = options.clone();
            test_options.load.label = Some(table.label_name().to_owned());
            test_options.load.categorical = kinds_of(&table, ColumnKind::Categorical);
            test_options.load.numeric = kinds_of(&table, ColumnKind::Numeric);
            let (test_table, test_summary, test_quarantine) = load_and_clean(test_path, &test_options, timers)?;
            quarantine.extend(test_quarantine);
            Some((test_table, test_summary))
        }
        None => None,
    };
    let prepared = timers.time(Phase::Preprocess, || {
        let classes = table.class_names();
        let class_index = |t: &Table| -> Vec<u32> {
            let ColumnData::Categorical { codes, levels } = &t.label_column().data else {
                unreachable!("labels are categorical")
            };
            let map: Vec<u32> =
                levels.iter().map(|l| classes.iter().position(|c| c == l).map_or(u32::MAX, |i| i as u32)).collect();
            codes.iter().map(|&c| map[c as usize]).collect()
        };
        let labels = class_index(&table);
        let split_options =
            if test_part.is_some() { SplitOptions { test_fraction: 0.0, ..options.split } } else { options.split };
        let parts: Split = split(&labels, classes.len(), &split_options)?;
        let mut preprocess = options.preprocess.clone();
        preprocess.missing = options.clean.missing.clone();
        let fitted = Preprocessor::new(preprocess).fit(&table, &parts.train, &classes)?;
        let (numeric_columns, categorical_columns) =
            table.features().fold((0, 0), |(n, c), (_, col)| match col.kind() {
                ColumnKind::Numeric => (n + 1, c),
                ColumnKind::Categorical => (n, c + 1),
            });
        let label = table.label_name().to_owned();
        // The prepared rows' size is known now, before they are made: when they would not fit,
        // the rows go through a prepared directory instead (the table is dropped first).
        let rows = table.rows() + test_part.as_ref().map_or(0, |(t, _)| t.rows());
        let need = (rows * (fitted.feature_names().len() + 1) * 4) as u64;
        if let Some((budget, limit)) = trainbench_metrics::memory_budget()
            && need > budget
        {
            will_not_fit(
                &format!("the prepared rows of {} take {}", path.display(), gib(need)),
                budget,
                limit,
                options,
            )?;
            return Ok(None);
        }
        // The table is consumed column by column, so it and the prepared rows are never both
        // whole in memory.
        let (train, valid, test, counts) = match &test_part {
            Some((t, _)) => {
                let mut own = fitted.transform_parts(table, &[&parts.train, &parts.valid])?.into_iter();
                let ((train, c1), (valid, c2)) = (own.next().expect("two parts"), own.next().expect("two parts"));
                let (test, c3) = fitted.transform(t, None)?;
                (train, valid, test, [c1, c2, c3])
            }
            None => {
                let mut own = fitted.transform_parts(table, &[&parts.train, &parts.valid, &parts.test])?.into_iter();
                let (train, c1) = own.next().expect("three parts");
                let (valid, c2) = own.next().expect("three parts");
                let (test, c3) = own.next().expect("three parts");
                (train, valid, test, [c1, c2, c3])
            }
        };
        let per_class = classes
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let count = |p: &Prepared| p.labels.iter().filter(|&&l| l as usize == k).count();
                (name.clone(), count(&train), count(&valid), count(&test))
            })
            .collect();
        let summary = PrepareSummary {
            source,
            test_source: test_part.as_ref().map(|(_, s)| s.clone()),
            label,
            split: SplitSummary { train: train.rows(), valid: valid.rows(), test: test.rows(), per_class },
            numeric_columns,
            categorical_columns,
            features: fitted.feature_names().len(),
            imputed_cells: counts.iter().map(|c| c.imputed_cells).sum(),
            unseen_categories: counts.iter().map(|c| c.unseen_categories).sum(),
            quarantined_rows: quarantine.len(),
        };
        Ok(Some(PreparedData { train, valid, test, preprocessor: fitted, summary, quarantine }))
    })?;
    match prepared {
        Some(data) => Ok(data),
        None => prepare_through_directory(path, options, timers),
    }
}

/// Preparing in memory would not fit (`what` needs more than `budget` bytes, which `limit`
/// leaves): an error where the rows cannot be streamed, else the note, on stderr, that they go
/// through a temporary prepared directory.
fn will_not_fit(what: &str, budget: u64, limit: &str, options: &PipelineOptions) -> Result<()> {
    let why = format!("{what}, and {limit} leaves {}", gib(budget));
    if options.test_data.is_some() || fitted_needs_all_values(options) {
        return Err(Error::InvalidOption(format!(
            "{why}; prepare it first with `trainbench prepare --data FILE --out DIR` (without --test-data and \
             with --missing mean, constant or drop) and pass the directory as --data"
        )));
    }
    eprintln!("note: {why}: preparing it through a temporary prepared directory (streamed, then mapped)");
    Ok(())
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Whether the preprocessor needs every value in memory (median, numeric mode): then it cannot
/// be fitted while streaming.
fn fitted_needs_all_values(options: &PipelineOptions) -> bool {
    let mut preprocess = options.preprocess.clone();
    preprocess.missing = options.clean.missing.clone();
    Preprocessor::new(preprocess).needs_all_values().is_some()
}

/// Whether preparing `path` in memory would not fit: (bytes needed, bytes left, the limit's
/// name). The estimate is the peak of loading (f64 columns) and transforming (f32 rows), from the
/// file's size: three times a CSV (its f64 columns are about as large as the text, the parse
/// buffers and the f32 rows add as much again, and freed parse memory is not always returned to
/// the system), four times a compressed Parquet file. Erring large costs only speed: the
/// prepared directory gives the same rows.
fn too_large_for_memory(path: &Path, options: &PipelineOptions) -> Option<(u64, u64, &'static str)> {
    let files = std::iter::once(path).chain(options.test_data.as_deref());
    let mut need = 0u64;
    for file in files {
        let bytes = std::fs::metadata(file).ok()?.len();
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        need += if ext == "parquet" || ext == "pq" { bytes * 4 } else { bytes * 3 };
    }
    let (budget, limit) = trainbench_metrics::memory_budget()?;
    (need > budget).then_some((need, budget, limit))
}

/// Prepares `path` into a temporary prepared directory and maps it; the directory is removed at
/// once (the mapped files live on until unmapped), its quarantine read back.
fn prepare_through_directory(path: &Path, options: &PipelineOptions, timers: &mut PhaseTimers) -> Result<PreparedData> {
    // The ranks of an MPI job would each decide this from their own memory, into their own
    // temporary directory: the shared directory is for the user to name.
    let world = crate::world::world();
    if world.size() > 1 {
        return Err(Error::InvalidOption(format!(
            "rank {} of {}: {} does not fit in this process's memory; prepare it first, each rank its share, into \
             a directory every rank sees (mpirun -np {} trainbench prepare --data {} --out DIR) and pass --data DIR",
            world.rank(),
            world.size(),
            path.display(),
            world.size(),
            path.display()
        )));
    }
    let base = std::env::temp_dir();
    let temp =
        tempfile::Builder::new().prefix("trainbench-prepared-").tempdir_in(&base).map_err(|e| Error::io(&base, e))?;
    let quarantine_path = temp.path().join("quarantine.csv");
    crate::prepared_dir::prepare_to_dir(path, options, temp.path(), &quarantine_path, timers)?;
    let mut data = crate::prepared_dir::open_prepared_dir(temp.path())?;
    if quarantine_path.exists() {
        let io = |e: csv::Error| Error::io(&quarantine_path, std::io::Error::other(e));
        let mut reader = csv::Reader::from_path(&quarantine_path).map_err(io)?;
        for record in reader.records() {
            let r = record.map_err(io)?;
            let field = |i: usize| r.get(i).unwrap_or_default().to_owned();
            let column = Some(field(2)).filter(|c| !c.is_empty());
            let row = InvalidRow { line: field(1).parse().unwrap_or(0), column, reason: field(3), raw: field(4) };
            data.quarantine.push((path.to_owned(), row));
        }
    }
    Ok(data)
}

fn kinds_of(table: &Table, kind: ColumnKind) -> Vec<String> {
    table.features().filter(|(_, c)| c.kind() == kind).map(|(_, c)| c.name.clone()).collect()
}

/// Writes removed rows as CSV: `file,line,column,reason,row`.
pub fn write_quarantine(path: &Path, rows: &[(PathBuf, InvalidRow)]) -> Result<()> {
    let io = |e: csv::Error| Error::io(path, std::io::Error::other(e));
    let mut w = csv::Writer::from_path(path).map_err(io)?;
    w.write_record(["file", "line", "column", "reason", "row"]).map_err(io)?;
    for (file, r) in rows {
        w.write_record([
            file.display().to_string(),
            r.line.to_string(),
            r.column.clone().unwrap_or_default(),
            r.reason.clone(),
            r.raw.clone(),
        ])
        .map_err(io)?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::MissingPolicy;

    #[test]
    fn prepare_with_a_separate_test_file_and_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train.csv");
        let test = dir.path().join("test.csv");
        let mut text = String::from("x,c,y\n");
        for i in 0..40 {
            text.push_str(&format!("{},{},{}\n", i, ["u", "v"][i % 2], ["a", "b"][i % 2]));
        }
        text.push_str("oops,u,a\n");
        std::fs::write(&train, text).unwrap();
        std::fs::write(&test, "y,c,x\na,u,1.5\nb,,2\n").unwrap();
        let options = PipelineOptions {
            test_data: Some(test.clone()),
            clean: CleanOptions { missing: MissingPolicy::MostFrequent, drop_duplicates: true },
            split: SplitOptions { valid_fraction: 0.25, ..SplitOptions::default() },
            ..PipelineOptions::default()
        };
        let mut timers = PhaseTimers::new();
        let data = prepare(&train, &options, &mut timers).unwrap();
        assert_eq!(data.summary.split.train + data.summary.split.valid, 40);
        assert_eq!(data.summary.split.valid, 10);
        assert_eq!(data.test.rows(), 2);
        assert_eq!(data.test.labels, [0, 1]);
        assert_eq!(data.summary.imputed_cells, 1);
        assert_eq!(data.quarantine.len(), 1);
        assert_eq!(data.quarantine[0].1.line, 42);
        for phase in [Phase::Load, Phase::Clean, Phase::Preprocess] {
            assert!(timers.seconds(phase).is_some(), "{phase:?}");
        }
        let q = dir.path().join("q.csv");
        write_quarantine(&q, &data.quarantine).unwrap();
        let written = std::fs::read_to_string(&q).unwrap();
        assert!(
            written
                .lines()
                .nth(1)
                .unwrap()
                .ends_with(",42,x,column 'x' is numeric but 'oops' is not a number,\"oops,u,a\""),
            "{written}"
        );
    }

    #[test]
    fn inspect_counts_missing_distinct_and_balance() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, "a,b,y\n1,x,p\n,x,q\n3,,p\n3,z,\n").unwrap();
        let report = inspect(&load(&p, &LoadOptions::default()).unwrap());
        assert_eq!(report.rows, 4);
        assert_eq!(report.missing_total, 3);
        assert_eq!(report.columns[0].missing, 1);
        assert_eq!(report.columns[0].distinct, 2);
        assert_eq!(report.columns[1].kind, ColumnKind::Categorical);
        assert_eq!(report.class_balance, [("p".to_owned(), 2), ("q".to_owned(), 1)]);
        assert_eq!(report.missing_labels, 1);
    }
}
