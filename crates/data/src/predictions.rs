//! The file `trainbench predict` writes: for every row, its line (its row number in a Parquet
//! input), one probability per class and the predicted class. CSV, or Parquet for a `.parquet` /
//! `.pq` path, written batch by batch; `-` is CSV on stdout.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};

/// Writes predictions batch by batch.
pub struct PredictionWriter {
    path: PathBuf,
    classes: Vec<String>,
    sink: Sink,
}

enum Sink {
    Csv(BufWriter<Box<dyn Write>>),
    Parquet(Box<polars::io::parquet::write::BatchedWriter<std::fs::File>>),
}

impl PredictionWriter {
    /// Creates `path` (`-`: stdout) for the probabilities of `classes`, writing the CSV header.
    pub fn create(path: &Path, classes: &[String]) -> Result<Self> {
        let columns = Self::columns(classes);
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let sink = if ext == "parquet" || ext == "pq" {
            let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
            let mut schema = Schema::default();
            schema.insert(columns[0].as_str().into(), DataType::UInt64);
            for name in &columns[1..columns.len() - 1] {
                schema.insert(name.as_str().into(), DataType::Float32);
            }
            schema.insert(columns[columns.len() - 1].as_str().into(), DataType::String);
            let writer = ParquetWriter::new(file)
                .batched(&schema)
                .map_err(|e| Error::Parquet { path: path.to_owned(), message: e.to_string() })?;
            Sink::Parquet(Box::new(writer))
        } else {
            let out: Box<dyn Write> = if path == Path::new("-") {
                Box::new(std::io::stdout())
            } else {
                Box::new(std::fs::File::create(path).map_err(|e| Error::io(path, e))?)
            };
            let mut out = BufWriter::with_capacity(1 << 20, out);
            writeln!(out, "{}", columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","))
                .map_err(|e| Error::io(path, e))?;
            Sink::Csv(out)
        };
        Ok(Self { path: path.to_owned(), classes: classes.to_vec(), sink })
    }

    /// The column names: `line`, `p_CLASS` for every class, `prediction`.
    pub fn columns(classes: &[String]) -> Vec<String> {
        std::iter::once("line".to_owned())
            .chain(classes.iter().map(|c| format!("p_{c}")))
            .chain(std::iter::once("prediction".to_owned()))
            .collect()
    }

    /// Writes one batch: `lines[i]`'s probabilities are `proba[i * classes..][..classes]`; the
    /// prediction is the most probable class (the first of a tie).
    pub fn write(&mut self, lines: &[u64], proba: &[f32]) -> Result<()> {
        let k = self.classes.len();
        let predicted: Vec<usize> = proba
            .chunks_exact(k)
            .map(|p| p.iter().enumerate().fold(0, |b, (c, &v)| if v > p[b] { c } else { b }))
            .collect();
        let path = &self.path;
        match &mut self.sink {
            Sink::Csv(out) => {
                let mut line = String::new();
                for ((n, p), &best) in lines.iter().zip(proba.chunks_exact(k)).zip(&predicted) {
                    line.clear();
                    line.push_str(&n.to_string());
                    for v in p {
                        line.push(',');
                        line.push_str(&v.to_string());
                    }
                    line.push(',');
                    line.push_str(&csv_field(&self.classes[best]));
                    writeln!(out, "{line}").map_err(|e| Error::io(path, e))?;
                }
            }
            Sink::Parquet(writer) => {
                let names = Self::columns(&self.classes);
                let mut columns = Vec::with_capacity(k + 2);
                columns.push(Series::new(names[0].as_str().into(), lines.to_vec()).into_column());
                for (c, name) in names[1..=k].iter().enumerate() {
                    let values: Vec<f32> = proba.iter().skip(c).step_by(k).copied().collect();
                    columns.push(Series::new(name.as_str().into(), values).into_column());
                }
                let labels: Vec<&str> = predicted.iter().map(|&c| self.classes[c].as_str()).collect();
                columns.push(Series::new(names[k + 1].as_str().into(), labels).into_column());
                let parquet_error = |e: PolarsError| Error::Parquet { path: path.to_owned(), message: e.to_string() };
                let df = DataFrame::new(lines.len(), columns).map_err(parquet_error)?;
                writer.write_batch(&df).map_err(parquet_error)?;
            }
        }
        Ok(())
    }

    /// Flushes the CSV, or writes the Parquet footer.
    pub fn finish(self) -> Result<()> {
        let path = &self.path;
        match self.sink {
            Sink::Csv(mut out) => out.flush().map_err(|e| Error::io(path, e)),
            Sink::Parquet(writer) => writer
                .finish()
                .map(|_| ())
                .map_err(|e| Error::Parquet { path: path.to_owned(), message: e.to_string() }),
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_and_csv_hold_the_same_predictions() {
        let dir = tempfile::tempdir().unwrap();
        let classes = vec!["no".to_owned(), "yes, sure".to_owned()];
        for name in ["p.csv", "p.parquet"] {
            let path = dir.path().join(name);
            let mut w = PredictionWriter::create(&path, &classes).unwrap();
            w.write(&[2, 3], &[0.25, 0.75, 0.5, 0.5]).unwrap();
            w.write(&[5], &[0.875, 0.125]).unwrap();
            w.finish().unwrap();
        }
        let csv = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
        assert_eq!(
            csv,
            "line,p_no,\"p_yes, sure\",prediction\n2,0.25,0.75,\"yes, sure\"\n3,0.5,0.5,no\n5,0.875,0.125,no\n"
        );
        let file = std::fs::File::open(dir.path().join("p.parquet")).unwrap();
        let df = ParquetReader::new(file).finish().unwrap();
        assert_eq!(df.shape(), (3, 4));
        let line: Vec<Option<u64>> = df.column("line").unwrap().u64().unwrap().iter().collect();
        assert_eq!(line, [Some(2), Some(3), Some(5)]);
        let yes: Vec<Option<f32>> = df.column("p_yes, sure").unwrap().f32().unwrap().iter().collect();
        assert_eq!(yes, [Some(0.75), Some(0.5), Some(0.125)]);
        let predicted: Vec<Option<&str>> = df.column("prediction").unwrap().str().unwrap().iter().collect();
        assert_eq!(predicted, [Some("yes, sure"), Some("no"), Some("no")]);
    }
}
