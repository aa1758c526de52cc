//! Apache Parquet through Polars.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::load::{Format, InvalidRow, InvalidRowPolicy, LoadOptions, Loaded, apply_overrides, finish, label_index};
use crate::table::{Column, ColumnData, ColumnKind, MISSING_CODE, Table};

/// Opens `path`, refusing an empty file.
fn open(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().map_err(|e| Error::io(path, e))?.len() == 0 {
        return Err(Error::Parquet { path: path.to_owned(), message: "the file is 0 bytes long".into() });
    }
    Ok(file)
}

pub(super) fn load(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    let file = open(path)?;
    let parquet_error = |e: PolarsError| Error::Parquet { path: path.to_owned(), message: e.to_string() };
    let df = ParquetReader::new(file).finish().map_err(parquet_error)?;
    if df.width() == 0 {
        return Err(Error::EmptyFile { path: path.to_owned() });
    }
    let (table, invalid) = from_dataframe(path, &df, options, 0)?;
    finish(path, table, invalid, Format::Parquet)
}

/// An iterator over batches of a Parquet file's rows, each a [`Table`] of the batch's valid rows
/// and the batch's invalid rows, rows numbered from the file start (from 1). Batches follow the
/// row groups, several small groups together and a large one in slices, so memory stays near
/// one batch whatever the file size.
pub struct ParquetBatches {
    path: PathBuf,
    options: LoadOptions,
    /// The label column was not in the file (new data to predict): an empty one is added.
    synthetic_label: Option<String>,
    /// (first row, rows) of every batch still to read, last first.
    pending: Vec<(usize, usize)>,
}

/// Opens `path` for batch reading, about `batch_rows` rows a batch. When `options.label` names
/// a column that is not in the file, every batch gets an empty column of that name.
pub fn read_parquet_batches(path: &Path, options: &LoadOptions, batch_rows: usize) -> Result<ParquetBatches> {
    read_parquet_share(path, options, batch_rows, 0, 1)
}

/// The batches of process `rank` of `size`'s share of the file: a contiguous run of its row
/// groups, as even as the groups allow ([`crate::world::owned`]).
pub(crate) fn read_parquet_share(
    path: &Path,
    options: &LoadOptions,
    batch_rows: usize,
    rank: usize,
    size: usize,
) -> Result<ParquetBatches> {
    let parquet_error = |e: PolarsError| Error::Parquet { path: path.to_owned(), message: e.to_string() };
    let mut reader = ParquetReader::new(open(path)?);
    let names: Vec<String> = reader.schema().map_err(parquet_error)?.iter_names().map(|n| n.to_string()).collect();
    if names.is_empty() {
        return Err(Error::EmptyFile { path: path.to_owned() });
    }
    let groups: Vec<usize> =
        reader.get_metadata().map_err(parquet_error)?.row_groups.iter().map(|g| g.num_rows()).collect();
    let batch_rows = batch_rows.max(1);
    let share = crate::world::owned(groups.len(), rank, size);
    let (mut pending, mut start, mut open) = (Vec::new(), groups[..share.start].iter().sum(), 0);
    for &rows in &groups[share] {
        if open > 0 && open + rows > batch_rows {
            pending.push((start, open));
            (start, open) = (start + open, 0);
        }
        open += rows;
        while open > batch_rows {
            pending.push((start, batch_rows));
            (start, open) = (start + batch_rows, open - batch_rows);
        }
    }
    if open > 0 {
        pending.push((start, open));
    }
    pending.reverse();
    let synthetic_label = options.label.clone().filter(|l| !names.contains(l));
    let mut options = options.clone();
    if synthetic_label.is_some() {
        // Overrides that name columns absent from new data are not this reader's concern.
        options.numeric.retain(|n| names.contains(n));
        options.categorical.retain(|n| names.contains(n));
    }
    Ok(ParquetBatches { path: path.to_owned(), options, synthetic_label, pending })
}

impl ParquetBatches {
    fn read(&self, (first, rows): (usize, usize)) -> Result<(Table, Vec<InvalidRow>)> {
        let path = &self.path;
        let parquet_error = |e: PolarsError| Error::Parquet { path: path.to_owned(), message: e.to_string() };
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut df = ParquetReader::new(file).with_slice(Some((first, rows))).finish().map_err(parquet_error)?;
        if let Some(label) = &self.synthetic_label {
            let empty = Series::full_null(label.as_str().into(), df.height(), &DataType::String);
            df.with_column(empty.into_column()).map_err(parquet_error)?;
        }
        from_dataframe(path, &df, &self.options, first as u64)
    }
}

impl Iterator for ParquetBatches {
    type Item = Result<(Table, Vec<InvalidRow>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.pending.pop()?;
        Some(self.read(batch))
    }
}

/// Converts a Polars frame whose first row is row `first_row` (from 0) of its file: integer,
/// float and boolean columns become numeric, strings categorical, subject to the overrides;
/// nulls are missing values. Returns the valid rows and the invalid ones.
fn from_dataframe(
    path: &Path,
    df: &DataFrame,
    options: &LoadOptions,
    first_row: u64,
) -> Result<(Table, Vec<InvalidRow>)> {
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let label = label_index(path, &names, options.label.as_deref())?;
    let mut kinds = Vec::with_capacity(names.len());
    for column in df.columns() {
        let dtype = column.dtype();
        kinds.push(if dtype.is_primitive_numeric() || dtype.is_bool() {
            ColumnKind::Numeric
        } else if dtype.is_string() {
            ColumnKind::Categorical
        } else {
            return Err(Error::UnsupportedType {
                path: path.to_owned(),
                name: column.name().to_string(),
                dtype: dtype.to_string(),
            });
        });
    }
    apply_overrides(path, &names, &mut kinds, label, options)?;

    let rows = df.height();
    // A row is invalid when a numeric column holds NaN or infinity, or a forced-numeric
    // string does not parse; collect them first, then build the columns from the valid rows.
    let mut fault: Vec<Option<(usize, String)>> = vec![None; rows];
    let mut numeric_values: Vec<Option<Vec<f64>>> = vec![None; names.len()];
    let mut text_values: Vec<Option<Vec<Option<String>>>> = vec![None; names.len()];
    for (c, column) in df.columns().iter().enumerate() {
        let series = column.as_materialized_series();
        match kinds[c] {
            ColumnKind::Numeric if !series.dtype().is_string() => {
                let cast = series
                    .cast(&DataType::Float64)
                    .map_err(|e| Error::Parquet { path: path.to_owned(), message: e.to_string() })?;
                let values: Vec<f64> = cast
                    .f64()
                    .map_err(|e| Error::Parquet { path: path.to_owned(), message: e.to_string() })?
                    .iter()
                    .enumerate()
                    .map(|(r, v)| match v {
                        None => f64::NAN,
                        Some(x) if x.is_finite() => x,
                        Some(x) => {
                            fault[r].get_or_insert((c, format!("{x} is not allowed in numeric column '{}'", names[c])));
                            f64::NAN
                        }
                    })
                    .collect();
                numeric_values[c] = Some(values);
            }
            ColumnKind::Numeric => {
                let strings = string_values(path, series)?;
                let values = strings
                    .iter()
                    .enumerate()
                    .map(|(r, s)| match s.as_deref().map(str::trim) {
                        None | Some("") => f64::NAN,
                        Some(t) => match t.parse::<f64>() {
                            Ok(x) if x.is_finite() => x,
                            _ => {
                                fault[r].get_or_insert((
                                    c,
                                    format!("column '{}' is numeric but '{t}' is not a number", names[c]),
                                ));
                                f64::NAN
                            }
                        },
                    })
                    .collect();
                numeric_values[c] = Some(values);
            }
            ColumnKind::Categorical => text_values[c] = Some(string_values(path, series)?),
        }
    }
    let valid: Vec<usize> = (0..rows).filter(|&r| fault[r].is_none()).collect();
    let mut invalid = Vec::new();
    for (r, f) in fault.iter().enumerate() {
        if let Some((c, reason)) = f {
            if options.invalid_rows == InvalidRowPolicy::Fail {
                return Err(Error::InvalidRow {
                    path: path.to_owned(),
                    line: first_row + r as u64 + 1,
                    reason: reason.clone(),
                });
            }
            let raw = (0..names.len())
                .map(|k| cell_text(&numeric_values[k], &text_values[k], r))
                .collect::<Vec<_>>()
                .join(",");
            invalid.push(InvalidRow {
                line: first_row + r as u64 + 1,
                column: Some(names[*c].clone()),
                reason: reason.clone(),
                raw,
            });
        }
    }
    let columns = names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let data = match (&numeric_values[c], &text_values[c]) {
                (Some(v), _) => ColumnData::Numeric(valid.iter().map(|&r| v[r]).collect()),
                (None, Some(t)) => categorical(valid.iter().map(|&r| t[r].as_deref())),
                (None, None) => unreachable!("every column is numeric or text"),
            };
            Column { name: name.clone(), data }
        })
        .collect();
    // Parquet has no lines: rows are numbered from 1.
    let lines = valid.iter().map(|&r| first_row + r as u64 + 1).collect();
    Ok((Table { source: path.to_owned(), columns, label, lines }, invalid))
}

fn cell_text(numeric: &Option<Vec<f64>>, text: &Option<Vec<Option<String>>>, r: usize) -> String {
    match (numeric, text) {
        (Some(v), _) if v[r].is_nan() => String::new(),
        (Some(v), _) => v[r].to_string(),
        (None, Some(t)) => t[r].clone().unwrap_or_default(),
        (None, None) => String::new(),
    }
}

fn string_values(path: &Path, series: &Series) -> Result<Vec<Option<String>>> {
    let cast =
        series.cast(&DataType::String).map_err(|e| Error::Parquet { path: path.to_owned(), message: e.to_string() })?;
    let ca = cast.str().map_err(|e| Error::Parquet { path: path.to_owned(), message: e.to_string() })?;
    Ok(ca.iter().map(|v| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())).collect())
}

/// Dictionary-codes strings in first-seen order.
pub(crate) fn categorical<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ColumnData {
    let mut index = std::collections::HashMap::new();
    let mut levels: Vec<String> = Vec::new();
    let codes = values
        .map(|v| match v {
            None => MISSING_CODE,
            Some(s) => *index.entry(s.to_owned()).or_insert_with(|| {
                levels.push(s.to_owned());
                (levels.len() - 1) as u32
            }),
        })
        .collect();
    ColumnData::Categorical { codes, levels }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Parquet file of row groups of `groups` rows: x (with a NaN in row 1000, an invalid row),
    /// city (strings, some missing), label; without the label column when `label` is false.
    fn write_groups(path: &Path, groups: &[usize], label: bool) {
        let mut schema = Schema::default();
        schema.insert("x".into(), DataType::Float64);
        schema.insert("city".into(), DataType::String);
        if label {
            schema.insert("label".into(), DataType::String);
        }
        let mut writer = ParquetWriter::new(std::fs::File::create(path).unwrap()).batched(&schema).unwrap();
        let mut start = 0;
        for &n in groups {
            let rows = start..start + n;
            let x: Vec<f64> = rows.clone().map(|r| if r == 1000 { f64::NAN } else { r as f64 / 7.0 }).collect();
            let city: Vec<Option<&str>> = rows.clone().map(|r| ["a", "b", "c"].get(r % 4).copied()).collect();
            let mut columns =
                vec![Series::new("x".into(), x).into_column(), Series::new("city".into(), city).into_column()];
            if label {
                let y: Vec<&str> = rows.map(|r| if r % 3 == 0 { "yes" } else { "no" }).collect();
                columns.push(Series::new("label".into(), y).into_column());
            }
            writer.write_batch(&DataFrame::new(n, columns).unwrap()).unwrap();
            start += n;
        }
        writer.finish().unwrap();
    }

    fn cells(table: &Table) -> Vec<Vec<String>> {
        table.columns.iter().map(|c| (0..table.rows()).map(|i| c.display(i)).collect()).collect()
    }

    #[test]
    fn batches_follow_the_row_groups_and_match_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.parquet");
        write_groups(&path, &[100, 100, 900, 50, 350], true);
        let options = LoadOptions::default();
        let whole = load(&path, &options).unwrap();
        assert_eq!(whole.invalid.len(), 1);
        let batches = read_parquet_batches(&path, &options, 300).unwrap();
        // Small groups together, the large one in slices, never past a group's end when a
        // group starts.
        let sizes: Vec<usize> = batches.pending.iter().rev().map(|b| b.1).collect();
        assert_eq!(sizes, [200, 300, 300, 300, 50, 300, 50]);
        let (mut lines, mut invalid, mut columns) = (Vec::new(), Vec::new(), vec![Vec::new(); 3]);
        for batch in batches {
            let (table, bad) = batch.unwrap();
            lines.extend(table.lines.clone());
            invalid.extend(bad);
            for (all, some) in columns.iter_mut().zip(cells(&table)) {
                all.extend(some);
            }
        }
        assert_eq!(lines, whole.table.lines);
        assert_eq!(invalid, whole.invalid);
        assert_eq!(columns, cells(&whole.table));
    }

    #[test]
    fn new_data_without_the_label_gets_an_empty_label_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.parquet");
        write_groups(&path, &[10], false);
        let options = LoadOptions::default().with_label("label").with_categorical(vec!["city".into(), "gone".into()]);
        let (table, invalid) = read_parquet_batches(&path, &options, 1000).unwrap().next().unwrap().unwrap();
        assert!(invalid.is_empty());
        assert_eq!(table.label_name(), "label");
        assert_eq!(table.label_column().missing_count(), 10);
        assert_eq!(table.column("city").unwrap().kind(), ColumnKind::Categorical);
        assert_eq!(table.lines, (1..=10).collect::<Vec<u64>>());
    }
}
