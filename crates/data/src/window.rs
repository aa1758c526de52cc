//! Sliding windows over a time series, as Keras's `timeseries_dataset_from_array`: every output
//! row holds `window` consecutive input rows' features, oldest first, and the label of the row
//! `horizon` rows after the window's last one. A recurrent model then reads each output row as
//! `window` time steps of one value per feature column (`step_features` = feature columns).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table::{ColumnData, Table};

/// How windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowOptions {
    /// Rows (time steps) per window.
    pub window: usize,
    /// Rows between a window's last row and the row whose label it gets (0: its own last row).
    pub horizon: usize,
    /// Rows between the starts of consecutive windows.
    pub stride: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// Input rows (time steps) read.
    pub input_rows: usize,
    /// Windows written, one per output row.
    pub windows: usize,
    /// Values per time step: the feature columns of the input.
    pub step_features: usize,
    /// Output columns, label last.
    pub columns: Vec<String>,
}

/// Writes the windows of `table` (rows in time order) to the CSV file `out`. Every feature
/// column must be numeric; a missing value stays missing (an empty field) for cleaning to
/// handle.
pub fn write_windows(table: &Table, options: &WindowOptions, out: &Path) -> Result<WindowSummary> {
    let WindowOptions { window, horizon, stride } = *options;
    if window == 0 || stride == 0 {
        return Err(Error::InvalidOption(format!("window ({window}) and stride ({stride}) must be at least 1")));
    }
    let mut series: Vec<(&str, &[f64])> = Vec::new();
    for (_, column) in table.features() {
        match &column.data {
            ColumnData::Numeric(values) => series.push((&column.name, values)),
            ColumnData::Categorical { .. } => {
                return Err(Error::UnsupportedType {
                    path: table.source.clone(),
                    name: column.name.clone(),
                    dtype: "categorical: windows are cut from numeric columns (use --numeric if it holds numbers)"
                        .into(),
                });
            }
        }
    }
    let rows = table.rows();
    let span = window + horizon;
    if rows < span {
        return Err(Error::InvalidOption(format!(
            "{}: {rows} rows are too few for a window of {window} rows and a horizon of {horizon}",
            table.source.display()
        )));
    }
    let mut columns = Vec::with_capacity(window * series.len() + 1);
    for t in 0..window {
        let lag = window - 1 - t;
        for (name, _) in &series {
            columns.push(if lag == 0 { format!("{name}_t0") } else { format!("{name}_t-{lag}") });
        }
    }
    columns.push(table.label_name().to_owned());

    let io = |e: csv::Error| Error::io(out, std::io::Error::other(e));
    let mut writer = csv::Writer::from_path(out).map_err(io)?;
    writer.write_record(&columns).map_err(io)?;
    let label = table.label_column();
    let mut record: Vec<String> = Vec::with_capacity(columns.len());
    let mut windows = 0;
    for start in (0..=rows - span).step_by(stride) {
        record.clear();
        for r in start..start + window {
            for (_, values) in &series {
                let v = values[r];
                record.push(if v.is_nan() { String::new() } else { v.to_string() });
            }
        }
        record.push(label.display(start + window - 1 + horizon));
        writer.write_record(&record).map_err(io)?;
        windows += 1;
    }
    writer.flush().map_err(|e| Error::io(out, e))?;
    Ok(WindowSummary { input_rows: rows, windows, step_features: series.len(), columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load};

    fn series(dir: &Path, text: &str) -> Table {
        let path = dir.join("s.csv");
        std::fs::write(&path, text).unwrap();
        load(&path, &LoadOptions::default().with_label("y")).unwrap().table
    }

    #[test]
    fn windows_hold_consecutive_rows_oldest_first_and_a_later_label() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("a,b,y\n");
        for i in 0..7 {
            // Row 3 misses its b: it stays missing in every window that holds it.
            let b = if i == 3 { String::new() } else { (i * 10).to_string() };
            text.push_str(&format!("{i},{b},{}\n", ["up", "down"][i % 2]));
        }
        let table = series(dir.path(), &text);
        let out = dir.path().join("w.csv");
        let summary = write_windows(&table, &WindowOptions { window: 3, horizon: 1, stride: 2 }, &out).unwrap();
        // Starts 0 and 2 (start 4 would need row 7 for its label).
        assert_eq!(summary.windows, 2);
        assert_eq!(summary.step_features, 2);
        assert_eq!(summary.columns, ["a_t-2", "b_t-2", "a_t-1", "b_t-1", "a_t0", "b_t0", "y"]);
        let written = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines[0], "a_t-2,b_t-2,a_t-1,b_t-1,a_t0,b_t0,y");
        // Window of rows 0..3, labelled with row 3's label.
        assert_eq!(lines[1], "0,0,1,10,2,20,down");
        // Window of rows 2..5, labelled with row 5's label; row 3's b is empty.
        assert_eq!(lines[2], "2,20,3,,4,40,down");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn bad_windows_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let table = series(dir.path(), "a,c,y\n1,u,p\n2,v,q\n3,u,p\n");
        let out = dir.path().join("w.csv");
        let err = write_windows(&table, &WindowOptions { window: 2, horizon: 0, stride: 1 }, &out).unwrap_err();
        assert!(err.to_string().contains("column 'c'") && err.to_string().contains("numeric"), "{err}");
        let table = series(dir.path(), "a,y\n1,p\n2,q\n3,p\n");
        let err = write_windows(&table, &WindowOptions { window: 3, horizon: 1, stride: 1 }, &out).unwrap_err();
        assert!(err.to_string().contains("3 rows are too few for a window of 3 rows and a horizon of 1"), "{err}");
        let err = write_windows(&table, &WindowOptions { window: 0, horizon: 0, stride: 1 }, &out).unwrap_err();
        assert!(err.to_string().contains("must be at least 1"), "{err}");
    }
}
