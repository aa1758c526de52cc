//! The preprocessor: fitted on the training rows only, then applied to every split and to new
//! data at prediction time, exactly as in training.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::clean::MissingPolicy;
use crate::error::{Error, Result};
use crate::prepared::Prepared;
use crate::table::{Column, ColumnData, ColumnKind, MISSING_CODE, Table};

/// How numeric columns are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// `(x − mean) / std`, with the sample standard deviation (n − 1) as Spark's
    /// StandardScaler; a constant column becomes 0.
    #[default]
    Standard,
    /// `(x − min) / (max − min)` into [0, 1] as Spark's MinMaxScaler; a constant column becomes 0.5.
    MinMax,
    /// Values as they are.
    None,
}

/// How categorical columns become numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One 0/1 column per category seen in training (all categories kept, as scikit-learn's
    /// OneHotEncoder; Spark's drops the last by default).
    #[default]
    OneHot,
    /// One column holding the category's index, most frequent first (Spark's StringIndexer
    /// with `frequencyDesc`, ties alphabetical).
    Index,
}

/// What to do with a category not seen when fitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnseenPolicy {
    /// Refuse with an error naming the column, value and row.
    #[default]
    Error,
    /// One-hot: all zeros; index: one past the last index (Spark's `handleInvalid = "keep"`).
    Ignore,
}

/// Preprocessing choices.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PreprocessOptions {
    /// Numeric scaling.
    pub scaling: Scaling,
    /// Categorical encoding.
    pub encoding: Encoding,
    /// Unseen categories.
    pub unseen: UnseenPolicy,
    /// Missing values: imputed with statistics of the training rows, or (policy `drop`) refused,
    /// since cleaning already dropped such rows from the training data.
    pub missing: MissingPolicy,
}

/// An unfitted preprocessor.
#[derive(Debug, Clone, Default)]
pub struct Preprocessor {
    options: PreprocessOptions,
}

/// What one input column became (read by exporters such as ONNX's, which redo the transform in
/// another runtime).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FittedColumn {
    /// A numeric column: one feature.
    Numeric {
        /// The input column.
        name: String,
        /// Value that replaces a missing one (before scaling); none under the drop policy.
        fill: Option<f64>,
        /// Output is `(x - shift) * scale`, computed in f64 and stored as f32.
        shift: f64,
        /// See `shift`.
        scale: f64,
        /// Output for a constant column under min-max scaling.
        constant: Option<f64>,
    },
    /// A categorical column: one feature per level (one-hot) or the level's index.
    Categorical {
        /// The input column.
        name: String,
        /// Level that replaces a missing value; none under the drop policy.
        fill: Option<String>,
        /// Categories in output order.
        levels: Vec<String>,
        /// One-hot only: one more feature after the levels, set for a missing or unseen value
        /// (Spark's StringIndexer and OneHotEncoder with `handleInvalid = "keep"`); `fill` is
        /// then not used.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        other_slot: bool,
        /// One-hot only: each feature's `(shift, scale)`, the output being `(x - shift) * scale`
        /// of its 0 or 1 in f64 (Spark's StandardScaler over the assembled vector). Empty: 0
        /// and 1 as they are.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        slot_scaling: Vec<(f64, f64)>,
    },
}

impl FittedColumn {
    fn name(&self) -> &str {
        match self {
            FittedColumn::Numeric { name, .. } | FittedColumn::Categorical { name, .. } => name,
        }
    }
}

/// A fitted preprocessor: the only thing that turns a [`Table`] into [`Prepared`] rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedPreprocessor {
    options: PreprocessOptions,
    label: String,
    classes: Vec<String>,
    columns: Vec<FittedColumn>,
    feature_names: Vec<String>,
}

/// Counts from one transform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformCounts {
    /// Missing cells replaced by the imputer.
    pub imputed_cells: usize,
    /// Unseen categories encoded under [`UnseenPolicy::Ignore`].
    pub unseen_categories: usize,
}

impl Preprocessor {
    /// A preprocessor with these options.
    pub fn new(options: PreprocessOptions) -> Self {
        Self { options }
    }

    /// Learns scaling statistics, imputation values and category levels from `rows` of `table`.
    /// `classes` fixes the label order (usually every class of the cleaned table).
    pub fn fit(&self, table: &Table, rows: &[usize], classes: &[String]) -> Result<FittedPreprocessor> {
        if rows.is_empty() {
            return Err(Error::InvalidOption("cannot fit the preprocessor on 0 training rows".into()));
        }
        let mut columns = Vec::new();
        for (_, column) in table.features() {
            columns.push(match &column.data {
                ColumnData::Numeric(v) => {
                    let mut pieces = StatsPieces::new(0..rows.len() as u64, rows.len() as u64);
                    for (i, &r) in rows.iter().enumerate() {
                        pieces.push(i as u64, v[r]);
                    }
                    let stats = fold_pieces(pieces.into_pieces());
                    // Every present value only for a fill that needs them all (median, mode).
                    let mut present = self
                        .needs_all_values()
                        .map(|_| rows.iter().map(|&r| v[r]).filter(|x| !x.is_nan()).collect::<Vec<f64>>());
                    self.numeric_column(&column.name, &stats, rows.len() as u64, present.as_mut())?
                }
                ColumnData::Categorical { codes, levels } => {
                    let mut counts = vec![0u64; levels.len()];
                    for &r in rows {
                        if codes[r] != MISSING_CODE {
                            counts[codes[r] as usize] += 1;
                        }
                    }
                    self.categorical_column(&column.name, levels.iter().map(String::as_str).zip(counts))
                }
            });
        }
        FittedPreprocessor::from_columns(self.options.clone(), table.label_name(), classes, columns)
    }

    /// The same fit from statistics gathered while streaming the training rows in file order
    /// (a prepared directory's first pass): equal, to the bit, to [`Preprocessor::fit`] on the
    /// same rows. `columns` are the feature columns in file order; `rows` the training rows.
    pub fn fit_from_stats(
        &self,
        label: &str,
        classes: &[String],
        columns: &[(String, ColumnStats)],
        rows: u64,
    ) -> Result<FittedPreprocessor> {
        if rows == 0 {
            return Err(Error::InvalidOption("cannot fit the preprocessor on 0 training rows".into()));
        }
        let mut fitted = Vec::new();
        for (name, stats) in columns {
            fitted.push(match stats {
                ColumnStats::Numeric(stats) => self.numeric_column(name, stats, rows, None)?,
                ColumnStats::Categorical(counts) => {
                    self.categorical_column(name, counts.iter().map(|(level, &n)| (level.as_str(), n)))
                }
            });
        }
        FittedPreprocessor::from_columns(self.options.clone(), label, classes, fitted)
    }

    /// Whether statistics alone can fit this preprocessor (a median or a numeric mode needs
    /// every value): the reason when not.
    pub fn needs_all_values(&self) -> Option<String> {
        match &self.options.missing {
            MissingPolicy::Median | MissingPolicy::MostFrequent => Some(format!(
                "--missing {} needs every training value of a numeric column in memory; a prepared \
                 directory is fitted from mergeable statistics (count, mean, variance, min, max, \
                 category counts): use --missing mean, constant:V or drop",
                self.options.missing.name()
            )),
            _ => None,
        }
    }

    /// A numeric column from its statistics; `values` (the present training values) only for a
    /// fill that needs them all (median, most frequent).
    fn numeric_column(
        &self,
        name: &str,
        stats: &NumericStats,
        rows: u64,
        values: Option<&mut Vec<f64>>,
    ) -> Result<FittedColumn> {
        if stats.count == 0 {
            return Err(Error::InvalidOption(format!("column '{name}' has no value in the {rows} training rows")));
        }
        let mean = stats.mean;
        let fill = match (&self.options.missing, values) {
            (MissingPolicy::Drop, _) => None,
            (MissingPolicy::Mean, _) => Some(mean),
            (MissingPolicy::Median, Some(values)) => Some(median(values)),
            (MissingPolicy::MostFrequent, Some(values)) => Some(most_frequent_number(values)),
            (MissingPolicy::Median | MissingPolicy::MostFrequent, None) => {
                return Err(Error::InvalidOption(self.needs_all_values().unwrap_or_default()));
            }
            (MissingPolicy::Constant(v), _) => Some(v.trim().parse::<f64>().map_err(|_| {
                Error::InvalidOption(format!("constant '{v}' for missing values is not a number (column '{name}')"))
            })?),
        };
        let (shift, scale, constant) = match self.options.scaling {
            Scaling::None => (0.0, 1.0, None),
            Scaling::Standard => {
                let std = stats.sample_variance().sqrt();
                (mean, if std > 0.0 { 1.0 / std } else { 0.0 }, None)
            }
            Scaling::MinMax => {
                let (lo, hi) = (stats.min, stats.max);
                if hi > lo { (lo, 1.0 / (hi - lo), None) } else { (lo, 0.0, Some(0.5)) }
            }
        };
        Ok(FittedColumn::Numeric { name: name.to_owned(), fill, shift, scale, constant })
    }

    /// A categorical column from each level's count in the training rows.
    fn categorical_column<'a>(&self, name: &str, counts: impl Iterator<Item = (&'a str, u64)>) -> FittedColumn {
        let mut seen: Vec<(&str, u64)> = counts.filter(|&(_, n)| n > 0).collect();
        // Most frequent first, ties alphabetical (Spark's StringIndexer `frequencyDesc`).
        seen.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let levels: Vec<String> = seen.into_iter().map(|(l, _)| l.to_owned()).collect();
        let fill = match &self.options.missing {
            MissingPolicy::Drop => None,
            MissingPolicy::Constant(v) => Some(v.clone()),
            _ => levels.first().cloned(),
        };
        FittedColumn::Categorical { name: name.to_owned(), fill, levels, other_slot: false, slot_scaling: Vec::new() }
    }
}

/// What the fit needs of one feature column, gathered row by row: mergeable, so a file can be
/// read in pieces (or by several processes) and the pieces' statistics combined.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnStats {
    /// A numeric column.
    Numeric(NumericStats),
    /// A categorical column: each level's count.
    Categorical(HashMap<String, u64>),
}

/// Count, mean, sum of squared deviations (Welford's update; pieces merged as Chan, Golub and
/// LeVeque merge them), minimum and maximum of a column's present values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericStats {
    /// Values seen.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Default for NumericStats {
    fn default() -> Self {
        Self { count: 0, mean: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl NumericStats {
    /// Adds one value (not NaN).
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Adds the values `other` summarizes (Chan et al.'s pairwise update).
    pub fn merge(&mut self, other: &NumericStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let (n1, n2) = (self.count as f64, other.count as f64);
        let n = n1 + n2;
        let delta = other.mean - self.mean;
        self.mean += delta * n2 / n;
        self.m2 += other.m2 + delta * delta * n1 * n2 / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The sample variance (n − 1), 0 for fewer than two values.
    pub fn sample_variance(&self) -> f64 {
        if self.count > 1 { self.m2 / (self.count - 1) as f64 } else { 0.0 }
    }
}

/// Training rows per block of numeric statistics. A column's statistics are gathered block by
/// block (Welford's update within a block, from zero) and the blocks merged in order (Chan et
/// al.): the blocks are fixed by the training rows' order alone, so processes that each read a
/// share of a file reach the same bits as one process reading all of it.
pub const STATS_BLOCK_ROWS: u64 = 4096;

/// One block's contribution from the rows one process read: the block's statistics when it read
/// the whole block, or its present values, in order, when the block spans processes.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsPiece {
    /// Index of the block (training row / [`STATS_BLOCK_ROWS`]).
    pub block: u64,
    /// The whole block's statistics; or, for a block read in part, of `values`.
    pub stats: NumericStats,
    /// The present values of a block read in part; empty for a whole block.
    pub values: Vec<f64>,
    /// Whether this process read every row of the block.
    pub whole: bool,
}

/// Gathers one numeric column's [`StatsPiece`]s from a process's training rows `mine` (their
/// indices among all `total` training rows, in order).
#[derive(Debug, Clone)]
pub struct StatsPieces {
    mine: std::ops::Range<u64>,
    total: u64,
    pieces: Vec<StatsPiece>,
}

impl StatsPieces {
    /// No values yet, for training rows `mine` of `total`.
    pub fn new(mine: std::ops::Range<u64>, total: u64) -> Self {
        Self { mine, total, pieces: Vec::new() }
    }

    /// Adds training row `row`'s value (missing values, NaN, are skipped); rows come in order.
    pub fn push(&mut self, row: u64, x: f64) {
        if x.is_nan() {
            return;
        }
        let block = row / STATS_BLOCK_ROWS;
        if self.pieces.last().is_none_or(|p| p.block != block) {
            let (start, end) = (block * STATS_BLOCK_ROWS, ((block + 1) * STATS_BLOCK_ROWS).min(self.total));
            let whole = self.mine.start <= start && end <= self.mine.end;
            self.pieces.push(StatsPiece { block, stats: NumericStats::default(), values: Vec::new(), whole });
        }
        let piece = self.pieces.last_mut().expect("pushed above");
        piece.stats.push(x);
        if !piece.whole {
            piece.values.push(x);
        }
    }

    /// The pieces, in block order.
    pub fn into_pieces(self) -> Vec<StatsPiece> {
        self.pieces
    }
}

/// The column's statistics from every process's pieces in process order: a block read in parts
/// is gathered again from its values in order, then the blocks are merged in order.
pub fn fold_pieces(pieces: impl IntoIterator<Item = StatsPiece>) -> NumericStats {
    let mut total = NumericStats::default();
    let mut open: Option<StatsPiece> = None;
    let close = |piece: StatsPiece, total: &mut NumericStats| {
        if piece.whole {
            total.merge(&piece.stats);
        } else {
            let mut block = NumericStats::default();
            piece.values.iter().for_each(|&x| block.push(x));
            total.merge(&block);
        }
    };
    for piece in pieces {
        match &mut open {
            Some(o) if o.block == piece.block => o.values.extend(piece.values),
            _ => {
                if let Some(done) = open.replace(piece) {
                    close(done, &mut total);
                }
            }
        }
    }
    if let Some(done) = open {
        close(done, &mut total);
    }
    total
}

/// A block of rows to transform: index of its first row, the rows, and its part of the output.
type Block<'a, 'b> = (usize, &'a [usize], &'b mut [f32]);

/// The row an error is about, for choosing the first of several (errors without one sort last).
fn error_row(e: &Error) -> usize {
    match e {
        Error::UnseenCategory { row, .. } => *row,
        _ => usize::MAX,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// Most frequent value; the smallest on ties (as scikit-learn's SimpleImputer).
fn most_frequent_number(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let (mut best, mut best_count) = (sorted[0], 0);
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().position(|&x| x != sorted[i]).map_or(sorted.len(), |k| i + k);
        if j - i > best_count {
            (best, best_count) = (sorted[i], j - i);
        }
        i = j;
    }
    best
}

impl FittedPreprocessor {
    /// A preprocessor from fitted columns, as another system fitted them (Spark's stages, read
    /// back from a cluster); the columns' order is the features' order.
    pub fn from_columns(
        options: PreprocessOptions,
        label: &str,
        classes: &[String],
        columns: Vec<FittedColumn>,
    ) -> Result<Self> {
        let mut feature_names = Vec::new();
        for column in &columns {
            match column {
                FittedColumn::Numeric { name, .. } => feature_names.push(name.clone()),
                FittedColumn::Categorical { name, levels, other_slot, slot_scaling, .. } => {
                    if options.encoding == Encoding::Index {
                        if *other_slot || !slot_scaling.is_empty() {
                            return Err(Error::InvalidOption(format!(
                                "column '{name}': an extra slot and per-slot scaling need one-hot encoding"
                            )));
                        }
                        feature_names.push(name.clone());
                        continue;
                    }
                    let width = levels.len() + usize::from(*other_slot);
                    if !slot_scaling.is_empty() && slot_scaling.len() != width {
                        return Err(Error::InvalidOption(format!(
                            "column '{name}': {} slot scalings for {width} one-hot features",
                            slot_scaling.len()
                        )));
                    }
                    feature_names.extend(levels.iter().map(|l| format!("{name}={l}")));
                    if *other_slot {
                        feature_names.push(format!("{name}=(other)"));
                    }
                }
            }
        }
        Ok(FittedPreprocessor { options, label: label.to_owned(), classes: classes.to_vec(), columns, feature_names })
    }

    /// What each input column became, in feature order.
    pub fn fitted_columns(&self) -> &[FittedColumn] {
        &self.columns
    }

    /// Output feature names, in order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Class names, index = label.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The label column's name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The options it was fitted with.
    pub fn options(&self) -> &PreprocessOptions {
        &self.options
    }

    /// Output features that hold a category index, with their number of categories (one more
    /// than the fitted levels when unseen categories are kept as an extra index).
    pub fn categorical_features(&self) -> Vec<(usize, usize)> {
        if self.options.encoding != Encoding::Index {
            return Vec::new();
        }
        let extra = usize::from(self.options.unseen == UnseenPolicy::Ignore);
        let mut out = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            if let FittedColumn::Categorical { levels, .. } = c {
                out.push((i, levels.len() + extra));
            }
        }
        out
    }

    /// Input columns with the kind they were fitted as, so new data can be read the same way.
    pub fn input_columns(&self) -> Vec<(String, ColumnKind)> {
        self.columns
            .iter()
            .map(|c| match c {
                FittedColumn::Numeric { name, .. } => (name.clone(), ColumnKind::Numeric),
                FittedColumn::Categorical { name, .. } => (name.clone(), ColumnKind::Categorical),
            })
            .collect()
    }

    /// Transforms `rows` of `table` (all rows when `None`), labels included.
    pub fn transform(&self, table: &Table, rows: Option<&[usize]>) -> Result<(Prepared, TransformCounts)> {
        let all: Vec<usize>;
        let rows = match rows {
            Some(r) => r,
            None => {
                all = (0..table.rows()).collect();
                &all
            }
        };
        let labels = self.encode_labels(self.label_column(table)?, rows)?;
        let (features, counts) = self.transform_features(table, rows)?;
        Ok((self.prepared(features, labels), counts))
    }

    /// Transforms several sets of rows of `table` (train, validation, test) column by column,
    /// freeing each of the table's feature columns as soon as every set has its values: memory
    /// then peaks near the table alone (or twice the transformed rows) instead of the table
    /// plus the transformed rows. Errors come column by column (the first row of the first
    /// column that has one).
    pub fn transform_parts(&self, mut table: Table, parts: &[&[usize]]) -> Result<Vec<(Prepared, TransformCounts)>> {
        let label_column = self.label_column(&table)?;
        let labels: Vec<Vec<u32>> =
            parts.iter().map(|rows| self.encode_labels(label_column, rows)).collect::<Result<_>>()?;
        let mut counts = vec![TransformCounts::default(); parts.len()];
        // blocks[p][k]: column k's output features for the rows of part p, `width_of(k)` wide.
        let mut blocks: Vec<Vec<(usize, Vec<f32>)>> = parts.iter().map(|_| Vec::new()).collect();
        for (k, fitted) in self.columns.iter().enumerate() {
            let w = self.width_of(fitted);
            for ((rows, part_blocks), count) in parts.iter().zip(&mut blocks).zip(&mut counts) {
                let mut block = vec![0f32; rows.len() * w];
                let c = self.transform_columns(&table, rows, &mut block, k..k + 1, w)?;
                count.imputed_cells += c.imputed_cells;
                count.unseen_categories += c.unseen_categories;
                part_blocks.push((w, block));
            }
            if let Some(column) = table.columns.iter_mut().find(|c| c.name == fitted.name()) {
                match &mut column.data {
                    ColumnData::Numeric(values) => *values = Vec::new(),
                    ColumnData::Categorical { codes, .. } => *codes = Vec::new(),
                }
            }
        }
        drop(table);
        // Interleave a few thousand rows at a time, so each stretch of output stays in cache
        // while every column's block writes into it.
        const CHUNK_ROWS: usize = 4096;
        let width = self.feature_names.len();
        let mut out = Vec::with_capacity(parts.len());
        for ((part_blocks, labels), count) in blocks.into_iter().zip(labels).zip(counts) {
            let mut features = vec![0f32; labels.len() * width];
            for (c, chunk) in features.chunks_mut(CHUNK_ROWS * width.max(1)).enumerate() {
                let first = c * CHUNK_ROWS;
                let mut offset = 0;
                for (w, block) in part_blocks.iter().filter(|(w, _)| *w > 0) {
                    let source = &block[first * w..][..chunk.len() / width * w];
                    for (row, values) in chunk.chunks_exact_mut(width).zip(source.chunks_exact(*w)) {
                        row[offset..offset + w].copy_from_slice(values);
                    }
                    offset += w;
                }
            }
            out.push((self.prepared(features, labels), count));
        }
        Ok(out)
    }

    fn label_column<'t>(&self, table: &'t Table) -> Result<&'t Column> {
        table.column(&self.label).ok_or_else(|| {
            Error::SchemaMismatch(format!(
                "{}: label column '{}' not found; columns are: {}",
                table.source.display(),
                self.label,
                table.column_list()
            ))
        })
    }

    fn prepared(&self, features: Vec<f32>, labels: Vec<u32>) -> Prepared {
        Prepared {
            features: features.into(),
            n_features: self.feature_names.len(),
            labels: labels.into(),
            feature_names: self.feature_names.clone(),
            class_names: self.classes.clone(),
            categorical_features: self.categorical_features(),
        }
    }

    /// Output features a fitted column fills.
    fn width_of(&self, fitted: &FittedColumn) -> usize {
        match fitted {
            FittedColumn::Numeric { .. } => 1,
            FittedColumn::Categorical { levels, other_slot, .. } if self.options.encoding == Encoding::OneHot => {
                levels.len() + usize::from(*other_slot)
            }
            FittedColumn::Categorical { .. } => 1,
        }
    }

    fn encode_labels(&self, column: &Column, rows: &[usize]) -> Result<Vec<u32>> {
        let ColumnData::Categorical { codes, levels } = &column.data else {
            return Err(Error::SchemaMismatch(format!("label column '{}' must be categorical", column.name)));
        };
        let index: HashMap<&str, u32> = self.classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
        let level_to_class: Vec<Option<u32>> = levels.iter().map(|l| index.get(l.as_str()).copied()).collect();
        rows.iter()
            .enumerate()
            .map(|(i, &r)| {
                let code = codes[r];
                if code == MISSING_CODE {
                    return Err(Error::UnknownLabel { value: String::new(), row: i, known: self.classes.join(", ") });
                }
                level_to_class[code as usize].ok_or_else(|| Error::UnknownLabel {
                    value: levels[code as usize].clone(),
                    row: i,
                    known: self.classes.join(", "),
                })
            })
            .collect()
    }

    /// Features only (the label may be absent), row-major.
    pub fn transform_features(&self, table: &Table, rows: &[usize]) -> Result<(Vec<f32>, TransformCounts)> {
        let mut out = vec![0f32; rows.len() * self.feature_names.len()];
        let counts = self.transform_columns(table, rows, &mut out, 0..self.columns.len(), self.feature_names.len())?;
        Ok((out, counts))
    }

    /// Writes the fitted columns `columns` of `rows` into `out`, row-major with `width` values
    /// per row (the features of those columns, in order), in parallel over blocks of rows.
    fn transform_columns(
        &self,
        table: &Table,
        rows: &[usize],
        out: &mut [f32],
        columns: Range<usize>,
        width: usize,
    ) -> Result<TransformCounts> {
        const BLOCK_ROWS: usize = 16_384;
        if rows.is_empty() || width == 0 {
            return Ok(TransformCounts::default());
        }
        // Blocks of rows keep the column-by-column writes within cache; threads take turns.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(rows.len().div_ceil(BLOCK_ROWS));
        let blocks: Vec<Block> = rows
            .chunks(BLOCK_ROWS)
            .zip(out.chunks_mut(BLOCK_ROWS * width))
            .enumerate()
            .map(|(b, (r, o))| (b * BLOCK_ROWS, r, o))
            .collect();
        let mut per_thread: Vec<Vec<Block>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, block) in blocks.into_iter().enumerate() {
            per_thread[i % threads].push(block);
        }
        let results: Vec<Result<TransformCounts>> = std::thread::scope(|s| {
            let handles: Vec<_> = per_thread
                .into_iter()
                .map(|blocks| {
                    let columns = columns.clone();
                    s.spawn(move || {
                        let mut counts = TransformCounts::default();
                        for (first, rows, out) in blocks {
                            let c = self.transform_block(table, rows, first, out, columns.clone(), width)?;
                            counts.imputed_cells += c.imputed_cells;
                            counts.unseen_categories += c.unseen_categories;
                        }
                        Ok(counts)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("transform does not panic")).collect()
        });
        let mut counts = TransformCounts::default();
        // The first error in row order, as a sequential pass would report.
        let mut first_error: Option<Error> = None;
        for r in results {
            match r {
                Ok(c) => {
                    counts.imputed_cells += c.imputed_cells;
                    counts.unseen_categories += c.unseen_categories;
                }
                Err(e) => {
                    if first_error.as_ref().is_none_or(|f| error_row(&e) < error_row(f)) {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(counts),
        }
    }

    /// Transforms the fitted columns `columns` of `rows` (the first of which is row `first` of
    /// the whole request) into `out`, `width` values per row.
    fn transform_block(
        &self,
        table: &Table,
        rows: &[usize],
        first: usize,
        out: &mut [f32],
        columns: Range<usize>,
        width: usize,
    ) -> Result<TransformCounts> {
        let mut counts = TransformCounts::default();
        let mut offset = 0;
        for fitted in &self.columns[columns] {
            let name = match fitted {
                FittedColumn::Numeric { name, .. } | FittedColumn::Categorical { name, .. } => name,
            };
            let column = table.column(name).ok_or_else(|| {
                Error::SchemaMismatch(format!(
                    "{}: column '{name}', used in training, not found; columns are: {}",
                    table.source.display(),
                    table.column_list()
                ))
            })?;
            let missing_error = |i: usize| {
                Error::SchemaMismatch(format!(
                    "{}:{}: column '{name}' is missing and the model was trained with missing-value policy 'drop', which cannot fill it",
                    table.source.display(),
                    table.lines[rows[i]]
                ))
            };
            match (fitted, &column.data) {
                (FittedColumn::Numeric { fill, shift, scale, constant, .. }, ColumnData::Numeric(values)) => {
                    for (i, &r) in rows.iter().enumerate() {
                        let mut x = values[r];
                        if x.is_nan() {
                            x = fill.ok_or_else(|| missing_error(i))?;
                            counts.imputed_cells += 1;
                        }
                        let y = constant.unwrap_or((x - shift) * scale);
                        out[i * width + offset] = y as f32;
                    }
                    offset += 1;
                }
                (
                    FittedColumn::Categorical { fill, levels: fitted_levels, other_slot, slot_scaling, .. },
                    ColumnData::Categorical { codes, levels },
                ) => {
                    let index: HashMap<&str, usize> =
                        fitted_levels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
                    let fill_index = fill.as_deref().map(|f| index.get(f).copied());
                    let code_to_index: Vec<Option<usize>> =
                        levels.iter().map(|l| index.get(l.as_str()).copied()).collect();
                    let one_hot = self.options.encoding == Encoding::OneHot;
                    let other = other_slot.then_some(fitted_levels.len());
                    let slots = fitted_levels.len() + usize::from(*other_slot);
                    for (i, &r) in rows.iter().enumerate() {
                        let code = codes[r];
                        let position = if code == MISSING_CODE && other.is_some() {
                            other
                        } else if code == MISSING_CODE {
                            counts.imputed_cells += 1;
                            fill_index.ok_or_else(|| missing_error(i))?
                        } else {
                            code_to_index[code as usize]
                        };
                        let position = match position {
                            Some(p) => Some(p),
                            None if other.is_some() || self.options.unseen == UnseenPolicy::Ignore => {
                                counts.unseen_categories += 1;
                                other
                            }
                            None => {
                                // The value is named only here: no string per row on the way.
                                let value = if code == MISSING_CODE { fill.clone() } else { None };
                                return Err(Error::UnseenCategory {
                                    column: name.clone(),
                                    value: value.unwrap_or_else(|| levels[code as usize].clone()),
                                    row: first + i,
                                });
                            }
                        };
                        let row = &mut out[i * width + offset..];
                        if !one_hot {
                            // An unseen level is one past the last index.
                            row[0] = position.unwrap_or(fitted_levels.len()) as f32;
                        } else if !slot_scaling.is_empty() {
                            for (k, (y, (shift, scale))) in row[..slots].iter_mut().zip(slot_scaling).enumerate() {
                                let x = if position == Some(k) { 1.0 } else { 0.0 };
                                *y = ((x - shift) * scale) as f32;
                            }
                        } else if let Some(p) = position {
                            row[p] = 1.0;
                        }
                    }
                    offset += if one_hot { slots } else { 1 };
                }
                (_, data) => {
                    let found = match data {
                        ColumnData::Numeric(_) => "numeric",
                        ColumnData::Categorical { .. } => "categorical",
                    };
                    return Err(Error::SchemaMismatch(format!(
                        "{}: column '{name}' is {found} here but was {} in training",
                        table.source.display(),
                        if found == "numeric" { "categorical" } else { "numeric" }
                    )));
                }
            }
        }
        Ok(counts)
    }

    /// Writes the fitted state as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        std::fs::write(path, json).map_err(|e| Error::io(path, e))
    }

    /// Reads a state written by [`FittedPreprocessor::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadSavedState { path: path.to_owned(), message: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadOptions;

    fn table(text: &str) -> Table {
        crate::load::parse_csv(Path::new("t.csv"), text.as_bytes(), &LoadOptions::default()).unwrap().table
    }

    const TRAIN: &str = "x,colour,y\n1,red,a\n2,blue,b\n3,red,a\n,green,b\n6,,a\n";

    #[test]
    fn standard_scaling_one_hot_and_mean_imputation() {
        let t = table(TRAIN);
        let classes = t.class_names();
        let fitted = Preprocessor::default().fit(&t, &[0, 1, 2, 3, 4], &classes).unwrap();
        assert_eq!(fitted.feature_names(), ["x", "colour=red", "colour=blue", "colour=green"]);
        let (p, counts) = fitted.transform(&t, None).unwrap();
        assert_eq!(counts.imputed_cells, 2);
        // x: values 1, 2, 3, 6 -> mean 3, sample std sqrt(14/3); the missing one becomes the mean.
        let std = (14.0f64 / 3.0).sqrt();
        let xs: Vec<f32> = (0..5).map(|r| p.row(r)[0]).collect();
        let want: Vec<f32> = [1.0, 2.0, 3.0, 3.0, 6.0].iter().map(|v| ((v - 3.0) / std) as f32).collect();
        assert_eq!(xs, want);
        assert_eq!(p.row(0)[1..], [1.0, 0.0, 0.0]);
        assert_eq!(p.row(3)[1..], [0.0, 0.0, 1.0]);
        // Missing colour is filled with the most frequent, red.
        assert_eq!(p.row(4)[1..], [1.0, 0.0, 0.0]);
        assert_eq!(p.labels, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn transforming_parts_column_by_column_gives_what_each_transform_gives() {
        // Rows past one block (16 384) so that threads and blocks take part; a categorical
        // column between numeric ones, missing cells in both kinds.
        let mut text = String::from("x,colour,z,y\n");
        for i in 0..40_000 {
            let x = if i % 97 == 0 { String::new() } else { format!("{}", i % 13) };
            let colour = ["red", "blue", "", "green"][i % 4];
            text.push_str(&format!("{x},{colour},{},{}\n", (i * 7) % 11, ["a", "b"][i % 2]));
        }
        let t = table(&text);
        let (train, valid, test): (Vec<usize>, Vec<usize>, Vec<usize>) =
            ((0..30_000).collect(), (30_000..31_000).rev().collect(), (31_000..40_000).step_by(3).collect());
        for encoding in [Encoding::OneHot, Encoding::Index] {
            let opts = PreprocessOptions { encoding, ..PreprocessOptions::default() };
            let fitted = Preprocessor::new(opts).fit(&t, &train, &t.class_names()).unwrap();
            let each: Vec<(Prepared, TransformCounts)> =
                [&train, &valid, &test].iter().map(|rows| fitted.transform(&t, Some(rows)).unwrap()).collect();
            let parts = fitted.transform_parts(t.clone(), &[&train, &valid, &test]).unwrap();
            assert_eq!(parts, each, "{encoding:?}");
            assert!(parts[0].1.imputed_cells > 0);
        }
    }

    #[test]
    fn fitted_on_training_rows_only() {
        let t = table(TRAIN);
        let opts = PreprocessOptions { scaling: Scaling::MinMax, ..PreprocessOptions::default() };
        let fitted = Preprocessor::new(opts).fit(&t, &[0, 1], &t.class_names()).unwrap();
        // Trained on x = 1, 2: x = 3 maps outside [0, 1] and 'green' was never seen.
        assert_eq!(fitted.feature_names(), ["x", "colour=blue", "colour=red"]);
        let (p, _) = fitted.transform(&t, Some(&[2])).unwrap();
        assert_eq!(p.row(0), [2.0, 0.0, 1.0]);
        let err = fitted.transform(&t, Some(&[3])).unwrap_err().to_string();
        assert!(err.contains("category 'green' was not seen"), "{err}");
    }

    #[test]
    fn unseen_categories_can_be_ignored_or_indexed() {
        let t = table(TRAIN);
        let ignore = PreprocessOptions { unseen: UnseenPolicy::Ignore, ..PreprocessOptions::default() };
        let fitted = Preprocessor::new(ignore.clone()).fit(&t, &[0, 1, 2], &t.class_names()).unwrap();
        let (p, counts) = fitted.transform(&t, Some(&[3])).unwrap();
        assert_eq!(counts.unseen_categories, 1);
        assert_eq!(p.row(0)[1..], [0.0, 0.0]);
        let index = PreprocessOptions { encoding: Encoding::Index, ..ignore };
        let fitted = Preprocessor::new(index).fit(&t, &[0, 1, 2], &t.class_names()).unwrap();
        assert_eq!(fitted.feature_names(), ["x", "colour"]);
        assert_eq!(fitted.categorical_features(), [(1, 3)]);
        let (p, _) = fitted.transform(&t, Some(&[0, 1, 3])).unwrap();
        // red (2 rows) = 0, blue = 1, unseen green = 2.
        assert_eq!([p.row(0)[1], p.row(1)[1], p.row(2)[1]], [0.0, 1.0, 2.0]);
    }

    #[test]
    fn spark_style_columns_keep_an_other_slot_and_scale_every_slot() {
        let t = table(TRAIN);
        let colour = |slot_scaling| FittedColumn::Categorical {
            name: "colour".into(),
            fill: None,
            levels: vec!["red".into(), "blue".into()],
            other_slot: true,
            slot_scaling,
        };
        let x = FittedColumn::Numeric { name: "x".into(), fill: Some(3.0), shift: 3.0, scale: 0.5, constant: None };
        let columns = vec![x.clone(), colour(vec![(0.5, 2.0), (0.25, 4.0), (0.25, 2.0)])];
        let pre =
            FittedPreprocessor::from_columns(PreprocessOptions::default(), "y", &t.class_names(), columns).unwrap();
        assert_eq!(pre.feature_names(), ["x", "colour=red", "colour=blue", "colour=(other)"]);
        let (p, counts) = pre.transform(&t, None).unwrap();
        assert_eq!(p.row(0), [-1.0, 1.0, -1.0, -0.5]);
        // Unseen green and a missing colour both take the other slot.
        assert_eq!(p.row(3), [0.0, -1.0, -1.0, 1.5]);
        assert_eq!(p.row(4), [1.5, -1.0, -1.0, 1.5]);
        assert_eq!((counts.imputed_cells, counts.unseen_categories), (1, 1));
        // Without scaling, the slots are 0 and 1.
        let pre = FittedPreprocessor::from_columns(
            PreprocessOptions::default(),
            "y",
            &t.class_names(),
            vec![x.clone(), colour(Vec::new())],
        )
        .unwrap();
        assert_eq!(pre.transform(&t, Some(&[3])).unwrap().0.row(0)[1..], [0.0, 0.0, 1.0]);
        let err = FittedPreprocessor::from_columns(
            PreprocessOptions::default(),
            "y",
            &t.class_names(),
            vec![x, colour(vec![(0.0, 1.0)])],
        )
        .unwrap_err();
        assert!(err.to_string().contains("1 slot scalings for 3 one-hot features"), "{err}");
    }

    #[test]
    fn save_load_round_trip_transforms_new_data_identically() {
        let t = table(TRAIN);
        let opts = PreprocessOptions { missing: MissingPolicy::Median, ..PreprocessOptions::default() };
        let fitted = Preprocessor::new(opts).fit(&t, &[0, 1, 2, 3, 4], &t.class_names()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pre.json");
        fitted.save(&path).unwrap();
        let loaded = FittedPreprocessor::load(&path).unwrap();
        assert_eq!(loaded, fitted);
        // New raw data with columns in another order and no label.
        let new = table("colour,x,other\nblue,10,z\n,,z\n");
        let a = fitted.transform_features(&new, &[0, 1]).unwrap();
        let b = loaded.transform_features(&new, &[0, 1]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.1.imputed_cells, 2);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(FittedPreprocessor::load(&path).unwrap_err().to_string().contains("cannot read saved preprocessor"));
    }

    #[test]
    fn statistics_helpers() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(most_frequent_number(&[2.0, 1.0, 2.0, 1.0, 3.0]), 1.0);
    }

    #[test]
    fn streamed_statistics_agree_with_a_float64_two_pass_and_merge() {
        let values: Vec<f64> = (0..10_001).map(|i| 1e6 + ((i * 7919) % 1000) as f64 * 0.37 - (i % 7) as f64).collect();
        let mut all = NumericStats::default();
        values.iter().for_each(|&x| all.push(x));
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        assert!((all.mean - mean).abs() <= 1e-12 * mean.abs(), "{} vs {mean}", all.mean);
        assert!((all.sample_variance() - var).abs() <= 1e-9 * var, "{} vs {var}", all.sample_variance());
        // Pieces merged give the whole's statistics (to rounding), whatever the cut.
        for cut in [1, 17, 5000, 10_000] {
            let (mut a, mut b) = (NumericStats::default(), NumericStats::default());
            values[..cut].iter().for_each(|&x| a.push(x));
            values[cut..].iter().for_each(|&x| b.push(x));
            a.merge(&b);
            assert_eq!(a.count, all.count);
            assert_eq!((a.min, a.max), (all.min, all.max));
            assert!((a.mean - all.mean).abs() <= 1e-12 * mean.abs(), "cut {cut}");
            assert!((a.sample_variance() - var).abs() <= 1e-9 * var, "cut {cut}");
        }
        let mut empty = NumericStats::default();
        empty.merge(&all);
        assert_eq!(empty, all);
    }

    #[test]
    fn statistics_in_blocks_are_the_same_bits_whoever_reads_which_rows() {
        let total = 3 * STATS_BLOCK_ROWS + 123;
        let value = |i: u64| if i.is_multiple_of(11) { f64::NAN } else { 1e3 + ((i * 7919) % 1013) as f64 * 0.731 };
        let pieces_of = |mine: std::ops::Range<u64>| {
            let mut p = StatsPieces::new(mine.clone(), total);
            mine.for_each(|i| p.push(i, value(i)));
            p.into_pieces()
        };
        let one = fold_pieces(pieces_of(0..total));
        let present: Vec<f64> = (0..total).map(value).filter(|x| !x.is_nan()).collect();
        assert_eq!(one.count, present.len() as u64);
        let mean = present.iter().sum::<f64>() / present.len() as f64;
        assert!((one.mean - mean).abs() <= 1e-12 * mean);
        // Cuts inside blocks, on block edges, and a share smaller than a block.
        for cuts in [vec![1], vec![STATS_BLOCK_ROWS], vec![100, 200, 5000], vec![4095, 4097, 8192, 12_000]] {
            let mut edges = vec![0];
            edges.extend(&cuts);
            edges.push(total);
            let shared = fold_pieces(edges.windows(2).flat_map(|w| pieces_of(w[0]..w[1])));
            assert_eq!(shared.count, one.count);
            assert_eq!(shared.mean.to_bits(), one.mean.to_bits(), "cuts {cuts:?}");
            assert_eq!(shared.m2.to_bits(), one.m2.to_bits(), "cuts {cuts:?}");
            assert_eq!((shared.min, shared.max), (one.min, one.max));
        }
    }
}
