use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Code of a missing value in a categorical column.
pub const MISSING_CODE: u32 = u32::MAX;

/// Whether a column holds numbers or categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Real numbers.
    Numeric,
    /// Strings, each a category.
    Categorical,
}

impl ColumnKind {
    /// The name shown to users.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Categorical => "categorical",
        }
    }
}

/// A column's values.
#[derive(Debug, Clone)]
pub enum ColumnData {
    /// Numbers; a missing value is NaN (loading refuses NaN written in the data, so NaN can
    /// only mean "missing" here).
    Numeric(Vec<f64>),
    /// Categories as codes into `levels`; a missing value is [`MISSING_CODE`].
    Categorical {
        /// One code per row.
        codes: Vec<u32>,
        /// The distinct strings, in order of first appearance.
        levels: Vec<String>,
    },
}

/// Equal when the values are; two missing values (NaN) are equal, as both mean "missing".
impl PartialEq for ColumnData {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ColumnData::Numeric(a), ColumnData::Numeric(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || x == y)
            }
            (ColumnData::Categorical { codes: a, levels: la }, ColumnData::Categorical { codes: b, levels: lb }) => {
                a == b && la == lb
            }
            _ => false,
        }
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header name.
    pub name: String,
    /// Values.
    pub data: ColumnData,
}

impl Column {
    /// Numeric or categorical.
    pub fn kind(&self) -> ColumnKind {
        match self.data {
            ColumnData::Numeric(_) => ColumnKind::Numeric,
            ColumnData::Categorical { .. } => ColumnKind::Categorical,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match &self.data {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical { codes, .. } => codes.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` is missing.
    pub fn is_missing(&self, i: usize) -> bool {
        match &self.data {
            ColumnData::Numeric(v) => v[i].is_nan(),
            ColumnData::Categorical { codes, .. } => codes[i] == MISSING_CODE,
        }
    }

    /// Number of missing values.
    pub fn missing_count(&self) -> usize {
        match &self.data {
            ColumnData::Numeric(v) => v.iter().filter(|x| x.is_nan()).count(),
            ColumnData::Categorical { codes, .. } => codes.iter().filter(|&&c| c == MISSING_CODE).count(),
        }
    }

    /// Number of distinct non-missing values.
    pub fn distinct_count(&self) -> usize {
        match &self.data {
            ColumnData::Numeric(v) => {
                // -0.0 and 0.0 are one value.
                let mut bits: Vec<u64> = v.iter().filter(|x| !x.is_nan()).map(|&x| (x + 0.0).to_bits()).collect();
                bits.sort_unstable();
                bits.dedup();
                bits.len()
            }
            ColumnData::Categorical { codes, levels } => {
                let mut seen = vec![false; levels.len()];
                for &c in codes.iter().filter(|&&c| c != MISSING_CODE) {
                    seen[c as usize] = true;
                }
                seen.iter().filter(|&&s| s).count()
            }
        }
    }

    /// Row `i` as text ("" when missing), for messages and the quarantine file.
    pub fn display(&self, i: usize) -> String {
        match &self.data {
            ColumnData::Numeric(v) if v[i].is_nan() => String::new(),
            ColumnData::Numeric(v) => v[i].to_string(),
            ColumnData::Categorical { codes, .. } if codes[i] == MISSING_CODE => String::new(),
            ColumnData::Categorical { codes, levels } => levels[codes[i] as usize].clone(),
        }
    }

    /// The same column restricted to `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Column {
        let data = match &self.data {
            ColumnData::Numeric(v) => ColumnData::Numeric(rows.iter().map(|&r| v[r]).collect()),
            ColumnData::Categorical { codes, levels } => {
                ColumnData::Categorical { codes: rows.iter().map(|&r| codes[r]).collect(), levels: levels.clone() }
            }
        };
        Column { name: self.name.clone(), data }
    }
}

/// A loaded data set: named columns of equal length, the label column among them, and the
/// source line of every row so later stages can name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Where the rows came from.
    pub source: PathBuf,
    /// The columns, in file order.
    pub columns: Vec<Column>,
    /// Index of the label column in `columns` (always categorical).
    pub label: usize,
    /// 1-based source line (row number for non-text formats) of each row.
    pub lines: Vec<u64>,
}

impl Table {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }

    /// The file the table came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The label column.
    pub fn label_column(&self) -> &Column {
        &self.columns[self.label]
    }

    /// The label column's name.
    pub fn label_name(&self) -> &str {
        &self.columns[self.label].name
    }

    /// Feature columns (every column but the label), with their index.
    pub fn features(&self) -> impl Iterator<Item = (usize, &Column)> {
        self.columns.iter().enumerate().filter(move |(i, _)| *i != self.label)
    }

    /// Finds a column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Column names joined by ", " (for error messages).
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The rows `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Table {
        Table {
            source: self.source.clone(),
            columns: self.columns.iter().map(|c| c.take(rows)).collect(),
            label: self.label,
            lines: rows.iter().map(|&r| self.lines[r]).collect(),
        }
    }

    /// Class names of the label in a stable order: numerically when every class is a number,
    /// otherwise alphabetically. Missing labels are not a class.
    pub fn class_names(&self) -> Vec<String> {
        let ColumnData::Categorical { codes, levels } = &self.label_column().data else {
            return Vec::new();
        };
        let mut used = vec![false; levels.len()];
        for &c in codes.iter().filter(|&&c| c != MISSING_CODE) {
            used[c as usize] = true;
        }
        let mut names: Vec<String> = levels.iter().zip(&used).filter(|(_, u)| **u).map(|(l, _)| l.clone()).collect();
        sort_class_names(&mut names);
        names
    }
}

/// Numbers sort numerically ("2" before "10"); anything else alphabetically.
pub(crate) fn sort_class_names(names: &mut [String]) {
    let numbers: Option<Vec<f64>> = names.iter().map(|n| n.trim().parse::<f64>().ok()).collect();
    if numbers.is_some() {
        names.sort_by(|a, b| {
            let (x, y) = (a.trim().parse::<f64>().unwrap_or(0.0), b.trim().parse::<f64>().unwrap_or(0.0));
            x.total_cmp(&y).then_with(|| a.cmp(b))
        });
    } else {
        names.sort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_sort_numbers_numerically() {
        let mut n = vec!["10".to_owned(), "2".to_owned(), "1".to_owned()];
        sort_class_names(&mut n);
        assert_eq!(n, ["1", "2", "10"]);
        let mut s = vec!["b".to_owned(), "10".to_owned(), "a".to_owned()];
        sort_class_names(&mut s);
        assert_eq!(s, ["10", "a", "b"]);
    }

    #[test]
    fn distinct_and_missing_counts() {
        let c = Column { name: "x".into(), data: ColumnData::Numeric(vec![1.0, f64::NAN, 1.0, -0.0, 0.0]) };
        assert_eq!(c.missing_count(), 1);
        assert_eq!(c.distinct_count(), 2);
        let k = Column {
            name: "k".into(),
            data: ColumnData::Categorical { codes: vec![0, MISSING_CODE, 0], levels: vec!["a".into(), "b".into()] },
        };
        assert_eq!(k.missing_count(), 1);
        assert_eq!(k.distinct_count(), 1);
        assert_eq!(k.display(1), "");
        assert_eq!(k.take(&[2, 0]).display(0), "a");
    }
}
