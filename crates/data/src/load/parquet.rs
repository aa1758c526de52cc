//! Apache Parquet through Polars.

use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::load::{Format, InvalidRow, InvalidRowPolicy, LoadOptions, Loaded, apply_overrides, finish, label_index};
use crate::table::{Column, ColumnData, ColumnKind, MISSING_CODE, Table};

pub(super) fn load(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size == 0 {
        return Err(Error::Parquet { path: path.to_owned(), message: "the file is 0 bytes long".into() });
    }
    let parquet_error = |e: PolarsError| Error::Parquet { path: path.to_owned(), message: e.to_string() };
    let df = ParquetReader::new(file).finish().map_err(parquet_error)?;
    if df.width() == 0 {
        return Err(Error::EmptyFile { path: path.to_owned() });
    }
    from_dataframe(path, &df, options)
}

/// Converts a Polars frame: integer, float and boolean columns become numeric, strings
/// categorical, subject to the overrides; nulls are missing values.
fn from_dataframe(path: &Path, df: &DataFrame, options: &LoadOptions) -> Result<Loaded> {
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
                return Err(Error::InvalidRow { path: path.to_owned(), line: r as u64 + 1, reason: reason.clone() });
            }
            let raw = (0..names.len())
                .map(|k| cell_text(&numeric_values[k], &text_values[k], r))
                .collect::<Vec<_>>()
                .join(",");
            invalid.push(InvalidRow {
                line: r as u64 + 1,
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
    let lines = valid.iter().map(|&r| r as u64 + 1).collect();
    finish(path, Table { source: path.to_owned(), columns, label, lines }, invalid, Format::Parquet)
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
