//! Flags shared by the commands that read data, turned into library options.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use trainbench_data::{InvalidRowPolicy, LoadOptions};

/// How to read a data file.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Label column (default: the last column). Labels may be strings or numbers.
    #[arg(long, value_name = "COL")]
    pub label: Option<String>,
    /// Field delimiter: one character, or "tab" (default: detected from the header).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// Columns to treat as categorical, comma-separated (overrides inference).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Columns to treat as numeric, comma-separated (overrides inference).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub numeric: Vec<String>,
    /// Values that mean "missing" besides an empty field, comma-separated (e.g. "?,NA").
    #[arg(long, value_name = "TOKENS", value_delimiter = ',')]
    pub na_values: Vec<String>,
    /// Rows that cannot be read: set aside in the quarantine file, or stop with an error.
    #[arg(long, value_enum, default_value_t = InvalidRowsArg::Quarantine)]
    pub invalid_rows: InvalidRowsArg,
    /// For IDX images: the labels file (default: the matching *-labels-idx1-ubyte beside it).
    #[arg(long, value_name = "FILE")]
    pub idx_labels: Option<PathBuf>,
}

/// `--invalid-rows`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRowsArg {
    /// Set invalid rows aside, count and report them, and go on.
    Quarantine,
    /// Stop at the first invalid row.
    Fail,
}

impl LoadArgs {
    /// Checks the flags and builds the library's options.
    pub fn to_options(&self) -> Result<LoadOptions> {
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some("tab" | "\\t") => Some(b'\t'),
            Some(d) if d.len() == 1 && d.is_ascii() && d != "\"" && d != "\n" => Some(d.as_bytes()[0]),
            Some(d) => bail!("--delimiter must be one ASCII character (not a quote or newline) or \"tab\", got {d:?}"),
        };
        Ok(LoadOptions {
            delimiter,
            label: self.label.clone(),
            categorical: self.categorical.clone(),
            numeric: self.numeric.clone(),
            missing_values: self.na_values.clone(),
            invalid_rows: match self.invalid_rows {
                InvalidRowsArg::Quarantine => InvalidRowPolicy::Quarantine,
                InvalidRowsArg::Fail => InvalidRowPolicy::Fail,
            },
            idx_labels: self.idx_labels.clone(),
            ..LoadOptions::default()
        })
    }
}
