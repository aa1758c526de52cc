use std::path::PathBuf;

use thiserror::Error as ThisError;

/// What went wrong while loading, cleaning or preprocessing data.
///
/// Every variant that concerns user data names the file and, where it applies, the line and
/// column, so the message alone tells the user what to fix.
#[derive(Debug, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("{}: file is empty (expected a header line)", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The file has a header but no data rows.
    #[error("{}: no data rows after the header (line 1)", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// Every data row was invalid, so nothing is left to train on.
    #[error("{}: all {invalid} data rows are invalid (first: line {first_line}: {first_reason})", path.display())]
    AllRowsInvalid {
        /// The file.
        path: PathBuf,
        /// How many rows were invalid.
        invalid: usize,
        /// Line of the first invalid row.
        first_line: u64,
        /// Why it was invalid.
        first_reason: String,
    },
    /// The header is malformed (duplicate or empty names, invalid UTF-8).
    #[error("{}:1: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A row is invalid and the policy is to fail on invalid rows.
    #[error("{}:{line}: {reason}", path.display())]
    InvalidRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong, naming the column where one is at fault.
        reason: String,
    },
    /// A column named by the user does not exist.
    #[error("{}: {role} column '{name}' not found; columns are: {available}", path.display())]
    ColumnNotFound {
        /// The file.
        path: PathBuf,
        /// Which option named it ("label", "categorical", ...).
        role: &'static str,
        /// The name given.
        name: String,
        /// The columns that do exist, comma-separated.
        available: String,
    },
    /// A column has no value in any row.
    #[error("{}: column '{name}' has only missing values ({rows} rows)", path.display())]
    AllMissing {
        /// The file.
        path: PathBuf,
        /// The column.
        name: String,
        /// Number of rows.
        rows: usize,
    },
    /// The label has fewer than two classes.
    #[error("{}: label column '{label}' has {} ({rows} rows); at least 2 classes are needed", path.display(), describe_classes(classes))]
    OneClass {
        /// The file.
        path: PathBuf,
        /// Label column.
        label: String,
        /// Classes seen.
        classes: Vec<String>,
        /// Rows with a label.
        rows: usize,
    },
    /// The Parquet reader rejected the file.
    #[error("{}: not a readable Parquet file: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// Polars' message.
        message: String,
    },
    /// An IDX (MNIST format) file is malformed.
    #[error("{}: not a valid IDX file: {reason}", path.display())]
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A column's type is not supported.
    #[error("{}: column '{name}' has unsupported type {dtype}", path.display())]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The column.
        name: String,
        /// Its type.
        dtype: String,
    },
    /// New data does not match what the preprocessor was fitted on.
    #[error("{0}")]
    SchemaMismatch(String),
    /// A category never seen during fitting, and the policy is to refuse it.
    #[error(
        "column '{column}': category '{value}' was not seen when the preprocessor was fitted (row {row}); use --unseen ignore to encode it as all zeros"
    )]
    UnseenCategory {
        /// The column.
        column: String,
        /// The category.
        value: String,
        /// Row index within the transformed rows (0-based).
        row: usize,
    },
    /// A label value not among the classes the model knows.
    #[error("label '{value}' (row {row}) is not one of the trained classes: {known}")]
    UnknownLabel {
        /// The label.
        value: String,
        /// Row index (0-based).
        row: usize,
        /// The known classes.
        known: String,
    },
    /// Another process of an MPI job failed while preparing its share.
    #[error("rank {rank} of {size} stopped: {message}")]
    OtherProcess {
        /// The process that failed.
        rank: usize,
        /// Processes in the job.
        size: usize,
        /// Its error.
        message: String,
    },
    /// An option has a value outside its valid range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A saved preprocessor could not be read.
    #[error("{}: cannot read saved preprocessor: {message}", path.display())]
    BadSavedState {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A prepared directory's file does not match its manifest (size, checksum) or cannot be read.
    #[error("{}: prepared data is damaged: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
}

fn describe_classes(classes: &[String]) -> String {
    match classes {
        [] => "no class".to_owned(),
        [one] => format!("one class ('{one}')"),
        many => format!("{} classes", many.len()),
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
