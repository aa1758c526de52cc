//! Cleaning: rows without a label, missing values, exact duplicates. Every row taken out is
//! counted in [`CleanReport`] and returned with its line and reason, so nothing disappears unseen.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::load::InvalidRow;
use crate::table::{ColumnData, Table};

/// What to do with missing feature values.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Drop every row with a missing feature value.
    Drop,
    /// Fill numeric columns with the training mean (categorical: most frequent).
    #[default]
    Mean,
    /// Fill numeric columns with the training median (categorical: most frequent).
    Median,
    /// Fill every column with its most frequent training value.
    MostFrequent,
    /// Fill with this value (parsed as a number in numeric columns).
    Constant(String),
}

impl MissingPolicy {
    /// The name used on the command line and in reports.
    pub fn name(&self) -> String {
        match self {
            MissingPolicy::Drop => "drop".into(),
            MissingPolicy::Mean => "mean".into(),
            MissingPolicy::Median => "median".into(),
            MissingPolicy::MostFrequent => "most-frequent".into(),
            MissingPolicy::Constant(v) => format!("constant:{v}"),
        }
    }
}

/// Cleaning choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanOptions {
    /// Missing feature values: drop the row, or impute (the imputer is fitted on the training
    /// split by the preprocessor, so the test rows do not leak into it).
    pub missing: MissingPolicy,
    /// Drop rows identical in every column to an earlier row.
    pub drop_duplicates: bool,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self { missing: MissingPolicy::default(), drop_duplicates: true }
    }
}

/// Counts of what cleaning found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanReport {
    /// Rows that came in.
    pub rows_in: usize,
    /// Rows dropped because the label was missing.
    pub missing_label_rows: usize,
    /// Missing feature values per column (only columns with any), before any row was dropped.
    pub missing_by_column: Vec<(String, usize)>,
    /// Sum of `missing_by_column`.
    pub missing_cells: usize,
    /// Rows dropped for a missing feature value (policy `drop`).
    pub missing_value_rows_dropped: usize,
    /// Missing cells left for the imputer (policies other than `drop`).
    pub cells_to_impute: usize,
    /// Rows dropped as exact duplicates of an earlier row.
    pub duplicate_rows: usize,
    /// Rows going on to the split.
    pub rows_out: usize,
}

/// Cleans `table`, returning the kept rows, the report, and every removed row with its reason.
/// Takes the table by value so that, when no row is removed, nothing is copied.
pub fn clean(table: Table, options: &CleanOptions) -> Result<(Table, CleanReport, Vec<InvalidRow>)> {
    let rows = table.rows();
    let mut report = CleanReport { rows_in: rows, ..CleanReport::default() };
    let mut removed: Vec<InvalidRow> = Vec::new();
    let mut keep = vec![true; rows];

    let missing_counts: Vec<usize> = table.features().map(|(_, c)| c.missing_count()).collect();
    for ((_, column), &missing) in table.features().zip(&missing_counts) {
        if missing == rows {
            return Err(Error::AllMissing { path: table.source.clone(), name: column.name.clone(), rows });
        }
    }

    let label = table.label_column();
    for (r, k) in keep.iter_mut().enumerate() {
        if label.is_missing(r) {
            *k = false;
            report.missing_label_rows += 1;
            removed.push(removed_row(
                &table,
                r,
                Some(label.name.clone()),
                format!("label '{}' is missing", label.name),
            ));
        }
    }

    let any_missing_cell = missing_counts.iter().any(|&m| m > 0);
    for ((_, column), &total) in table.features().zip(&missing_counts) {
        // Count again only when rows without a label were taken out.
        let missing = if total == 0 || report.missing_label_rows == 0 {
            total
        } else {
            (0..rows).filter(|&r| keep[r] && column.is_missing(r)).count()
        };
        if missing > 0 {
            report.missing_by_column.push((column.name.clone(), missing));
            report.missing_cells += missing;
        }
    }
    if options.missing == MissingPolicy::Drop && any_missing_cell {
        for (r, k) in keep.iter_mut().enumerate() {
            if !*k {
                continue;
            }
            if let Some((_, c)) = table.features().find(|(_, c)| c.is_missing(r)) {
                *k = false;
                report.missing_value_rows_dropped += 1;
                let reason = format!("missing value in column '{}' (policy: drop)", c.name);
                removed.push(removed_row(&table, r, Some(c.name.clone()), reason));
            }
        }
    } else {
        report.cells_to_impute = report.missing_cells;
    }

    if options.drop_duplicates {
        for (r, first) in duplicates(&table, &keep) {
            keep[r] = false;
            report.duplicate_rows += 1;
            let reason = format!("exact duplicate of line {}", table.lines[first]);
            removed.push(removed_row(&table, r, None, reason));
        }
    }

    let kept: Vec<usize> = (0..rows).filter(|&r| keep[r]).collect();
    report.rows_out = kept.len();
    let cleaned = if kept.len() == rows { table } else { table.take(&kept) };
    let classes = cleaned.class_names();
    if classes.len() < 2 {
        return Err(Error::OneClass {
            path: cleaned.source.clone(),
            label: cleaned.label_name().to_owned(),
            classes,
            rows: cleaned.rows(),
        });
    }
    removed.sort_by_key(|r| r.line);
    Ok((cleaned, report, removed))
}

/// Row `r` of `table` as a quarantined row: its line, the column at fault, why, and its values.
pub(crate) fn removed_row(table: &Table, r: usize, column: Option<String>, reason: String) -> InvalidRow {
    let raw = table.columns.iter().map(|c| c.display(r)).collect::<Vec<_>>().join(",");
    InvalidRow { line: table.lines[r], column, reason, raw }
}

/// Pairs (duplicate row, first row like it) among the kept rows.
fn duplicates(table: &Table, keep: &[bool]) -> Vec<(usize, usize)> {
    let rows = table.rows();
    let mut hashes = vec![0x243f_6a88_85a3_08d3u64; rows];
    for column in &table.columns {
        match &column.data {
            ColumnData::Numeric(v) => {
                for (h, x) in hashes.iter_mut().zip(v) {
                    *h = mix(*h, (x + 0.0).to_bits());
                }
            }
            ColumnData::Categorical { codes, .. } => {
                for (h, &c) in hashes.iter_mut().zip(codes) {
                    *h = mix(*h, u64::from(c));
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..rows).filter(|&r| keep[r]).collect();
    order.sort_unstable_by_key(|&r| (hashes[r], r));
    let mut out = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && hashes[order[j]] == hashes[order[i]] {
            j += 1;
        }
        // Within one hash, compare for real; each row maps to the earliest row equal to it.
        let group = &order[i..j];
        for (k, &r) in group.iter().enumerate() {
            if let Some(&first) = group[..k].iter().find(|&&f| rows_equal(table, f, r)) {
                out.push((r, first));
            }
        }
        i = j;
    }
    out
}

fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95)
}

fn rows_equal(table: &Table, a: usize, b: usize) -> bool {
    table.columns.iter().all(|c| match &c.data {
        ColumnData::Numeric(v) => (v[a] + 0.0).to_bits() == (v[b] + 0.0).to_bits(),
        ColumnData::Categorical { codes, .. } => codes[a] == codes[b],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadOptions;
    use std::path::Path;

    fn table(text: &str) -> Table {
        crate::load::parse_csv(Path::new("t.csv"), text.as_bytes(), &LoadOptions::default()).unwrap().table
    }

    #[test]
    fn counts_missing_duplicates_and_missing_labels() {
        let t = table("a,b,y\n1,x,p\n1,x,p\n,x,q\n2,,q\n3,y,\n1,x,p\n4,z,q\n");
        let (cleaned, report, removed) = clean(t.clone(), &CleanOptions::default()).unwrap();
        assert_eq!(report.rows_in, 7);
        assert_eq!(report.missing_label_rows, 1);
        assert_eq!(report.missing_by_column, [("a".to_owned(), 1), ("b".to_owned(), 1)]);
        assert_eq!(report.cells_to_impute, 2);
        assert_eq!(report.duplicate_rows, 2);
        assert_eq!(report.rows_out, 4);
        assert_eq!(cleaned.lines, [2, 4, 5, 8]);
        let reasons: Vec<(u64, &str)> = removed.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [(3, "exact duplicate of line 2"), (6, "label 'y' is missing"), (7, "exact duplicate of line 2")]
        );
        let drop = CleanOptions { missing: MissingPolicy::Drop, drop_duplicates: false };
        let (cleaned, report, removed) = clean(t, &drop).unwrap();
        assert_eq!(report.missing_value_rows_dropped, 2);
        assert_eq!(report.duplicate_rows, 0);
        assert_eq!(cleaned.rows(), 4);
        assert_eq!(removed.len(), 3);
        assert_eq!(report.rows_in, report.rows_out + removed.len());
    }

    #[test]
    fn refuses_all_missing_columns_and_one_class() {
        let err = clean(table("a,b,y\n1,,p\n2,,q\n"), &CleanOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "t.csv: column 'b' has only missing values (2 rows)");
        let err = clean(table("a,y\n1,p\n2,p\n"), &CleanOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv: label column 'y' has one class ('p') (2 rows); at least 2 classes are needed"
        );
    }
}
