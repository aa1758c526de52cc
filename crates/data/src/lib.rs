//! Data for trainbench: loading (CSV, Parquet, IDX), cleaning, splitting, preprocessing, sliding
//! windows over time series, and synthetic generators. Both engines train on what this crate
//! produces, so they see the same rows transformed the same way.
//!
//! # Example
//!
//! ```
//! use trainbench_data::{CleanOptions, LoadOptions, PreprocessOptions, Preprocessor, clean, load};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("d.csv");
//! std::fs::write(&path, "size,colour,label\n1.5,red,yes\n2.5,blue,no\n,red,yes\n").unwrap();
//!
//! let loaded = load(&path, &LoadOptions::default().with_label("label")).unwrap();
//! let (table, report, _removed) = clean(loaded.table, &CleanOptions::default()).unwrap();
//! assert_eq!(report.cells_to_impute, 1);
//!
//! let rows: Vec<usize> = (0..table.rows()).collect();
//! let fitted = Preprocessor::new(PreprocessOptions::default()).fit(&table, &rows, &table.class_names()).unwrap();
//! let (prepared, _) = fitted.transform(&table, None).unwrap();
//! assert_eq!(prepared.feature_names, ["size", "colour=red", "colour=blue"]);
//! assert_eq!(prepared.labels, [1, 0, 1]);
//! ```
#![warn(missing_docs)]

mod buffer;
mod clean;
mod error;
mod generator;
mod load;
mod names;
mod pipeline;
mod predictions;
mod prepared;
mod prepared_dir;
mod preprocess;
mod split;
mod table;
mod window;
pub mod world;

pub use buffer::{Buffer, Plain, ToLe, write_le};
pub use clean::{CleanOptions, CleanReport, MissingPolicy, clean};
pub use error::{Error, Result};
pub use generator::{GenOptions, GenSummary, Generator, generate};
pub use load::{
    CsvBatches, Format, IdxImages, InvalidRow, InvalidRowPolicy, LoadOptions, Loaded, ParquetBatches, load,
    read_csv_batches, read_idx_images, read_idx_labels, read_parquet_batches,
};
pub use pipeline::{
    ColumnSummary, InspectReport, PipelineOptions, PrepareSummary, PreparedData, SourceSummary, SplitSummary, inspect,
    prepare, write_quarantine,
};
pub use predictions::PredictionWriter;
pub use prepared::{PartitionView, Partitioned, Partitioning, Prepared};
pub use prepared_dir::{FileEntry, MANIFEST, Manifest, PartEntry, is_prepared_dir, open_prepared_dir, prepare_to_dir};
pub use preprocess::{
    ColumnStats, Encoding, FittedColumn, FittedPreprocessor, NumericStats, PreprocessOptions, Preprocessor, Scaling,
    TransformCounts, UnseenPolicy,
};
pub use split::{Part, Split, SplitOptions, split, split_parts, stratified_kfold};
pub use table::{Column, ColumnData, ColumnKind, MISSING_CODE, Table};
pub use window::{WindowOptions, WindowSummary, write_windows};
