//! Reading a data file into a [`Table`]: CSV (and other delimited text), Parquet, IDX images.

mod batches;
mod csv;
mod idx;
mod parquet;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table::{ColumnData, ColumnKind, Table};

#[cfg(test)]
pub(crate) use self::csv::parse as parse_csv;
pub use batches::{CsvBatches, read_csv_batches};
pub use idx::{IdxImages, read_idx_images, read_idx_labels};
pub(crate) use parquet::read_parquet_share;
pub use parquet::{ParquetBatches, read_parquet_batches};

/// What to do with a row that cannot be read (wrong field count, a number that does not parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidRowPolicy {
    /// Set the row aside with its line number and reason, and go on (Spark's DROPMALFORMED,
    /// except that nothing is dropped unseen: the rows are counted and written out).
    #[default]
    Quarantine,
    /// Stop at the first invalid row with an error naming its line (Spark's FAILFAST).
    Fail,
}

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Field delimiter; detected from the header line when `None`.
    pub delimiter: Option<u8>,
    /// Label column; the last column when `None`.
    pub label: Option<String>,
    /// Columns forced to be categorical.
    pub categorical: Vec<String>,
    /// Columns forced to be numeric.
    pub numeric: Vec<String>,
    /// Field values that mean "missing" besides the empty field (UCI files often use `?`).
    pub missing_values: Vec<String>,
    /// What to do with invalid rows.
    pub invalid_rows: InvalidRowPolicy,
    /// Number of rows read to decide whether a column is numeric.
    pub infer_rows: usize,
    /// For IDX images: the labels file; found beside the images file when `None`.
    pub idx_labels: Option<PathBuf>,
    /// Threads used to parse text; all cores when 0.
    pub threads: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            delimiter: None,
            label: None,
            categorical: Vec::new(),
            numeric: Vec::new(),
            missing_values: Vec::new(),
            invalid_rows: InvalidRowPolicy::Quarantine,
            infer_rows: 10_000,
            idx_labels: None,
            threads: 0,
        }
    }
}

impl LoadOptions {
    /// Sets the label column.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the delimiter.
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = Some(delimiter);
        self
    }

    /// Sets the invalid-row policy.
    pub fn with_invalid_rows(mut self, policy: InvalidRowPolicy) -> Self {
        self.invalid_rows = policy;
        self
    }

    /// Forces columns to be categorical.
    pub fn with_categorical(mut self, columns: Vec<String>) -> Self {
        self.categorical = columns;
        self
    }

    /// Forces columns to be numeric.
    pub fn with_numeric(mut self, columns: Vec<String>) -> Self {
        self.numeric = columns;
        self
    }

    /// Adds tokens that mean "missing".
    pub fn with_missing_values(mut self, tokens: Vec<String>) -> Self {
        self.missing_values = tokens;
        self
    }

    pub(crate) fn thread_count(&self) -> usize {
        if self.threads > 0 { self.threads } else { std::thread::available_parallelism().map_or(1, |n| n.get()) }
    }
}

/// A row set aside while loading, with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidRow {
    /// 1-based line in the file (row number for binary formats).
    pub line: u64,
    /// The column at fault, if one is.
    pub column: Option<String>,
    /// What is wrong.
    pub reason: String,
    /// The row as it was written (lossy UTF-8).
    pub raw: String,
}

/// The file formats trainbench reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Delimited text with a header.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// IDX images (MNIST format) with a labels file.
    Idx,
}

/// A table and the rows that could not be read.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The valid rows.
    pub table: Table,
    /// The invalid rows, in line order (empty under [`InvalidRowPolicy::Fail`]).
    pub invalid: Vec<InvalidRow>,
    /// The format read.
    pub format: Format,
}

/// Reads `path`, choosing the format by extension (`.parquet`, `.pq`) or content (IDX magic
/// number); anything else is read as delimited text.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    if path.is_dir() {
        let what = if crate::prepared_dir::is_prepared_dir(path) {
            "a prepared directory: train, compare, scale, tune, run and predict take it as --data; this command reads a data file"
        } else {
            "a directory, not a data file"
        };
        return Err(Error::InvalidOption(format!("{} is {what}", path.display())));
    }
    match detect_format(path)? {
        Format::Parquet => parquet::load(path, options),
        Format::Idx => idx::load(path, options),
        Format::Csv => csv::load(path, options),
    }
}

/// A file's format: Parquet by its extension (`.parquet`, `.pq`), IDX by its magic number,
/// delimited text otherwise.
pub(crate) fn detect_format(path: &Path) -> Result<Format> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    Ok(if ext == "parquet" || ext == "pq" {
        Format::Parquet
    } else if idx::looks_like_idx(path)? {
        Format::Idx
    } else {
        Format::Csv
    })
}

/// Resolves the label column index: the named one, or the last.
pub(crate) fn label_index(path: &Path, names: &[String], label: Option<&str>) -> Result<usize> {
    match label {
        None => Ok(names.len() - 1),
        Some(name) => names.iter().position(|n| n == name).ok_or_else(|| Error::ColumnNotFound {
            path: path.to_owned(),
            role: "label",
            name: name.to_owned(),
            available: names.join(", "),
        }),
    }
}

/// Applies `--categorical` / `--numeric` overrides on top of inferred kinds; the label is
/// always categorical.
pub(crate) fn apply_overrides(
    path: &Path,
    names: &[String],
    kinds: &mut [ColumnKind],
    label: usize,
    options: &LoadOptions,
) -> Result<()> {
    for (list, kind, role) in [
        (&options.categorical, ColumnKind::Categorical, "categorical"),
        (&options.numeric, ColumnKind::Numeric, "numeric"),
    ] {
        for name in list {
            let i = names.iter().position(|n| n == name).ok_or_else(|| Error::ColumnNotFound {
                path: path.to_owned(),
                role,
                name: name.clone(),
                available: names.join(", "),
            })?;
            kinds[i] = kind;
        }
    }
    kinds[label] = ColumnKind::Categorical;
    Ok(())
}

/// Final checks shared by every format.
pub(crate) fn finish(path: &Path, table: Table, invalid: Vec<InvalidRow>, format: Format) -> Result<Loaded> {
    if table.rows() == 0 {
        return Err(match invalid.first() {
            Some(first) => Error::AllRowsInvalid {
                path: path.to_owned(),
                invalid: invalid.len(),
                first_line: first.line,
                first_reason: first.reason.clone(),
            },
            None => Error::NoRows { path: path.to_owned() },
        });
    }
    debug_assert!(matches!(table.label_column().data, ColumnData::Categorical { .. }));
    Ok(Loaded { table, invalid, format })
}
