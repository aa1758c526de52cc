//! Synthetic data sets of any size, written row batch by row batch so memory stays flat.
//!
//! Each generator draws features, computes a fixed noiseless rule, and draws the label from
//! that rule plus noise. The share of rows where the noiseless rule agrees with the drawn label
//! is printed as the ceiling: no model should expect to beat it by more than chance.

use std::io::{BufWriter, Write};
use std::path::Path;

use polars::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Rows generated and written per batch.
const BATCH_ROWS: usize = 65_536;

/// Which data set to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generator {
    /// 28 numeric features as in the UCI HIGGS set (21 "low-level", 7 derived "high-level");
    /// binary label from a nonlinear rule plus logistic noise.
    HiggsLike,
    /// `features` numeric features, `classes` classes from a nonlinear score per class plus
    /// Gumbel noise.
    Multiclass {
        /// Number of classes (2–100).
        classes: usize,
        /// Number of features (1–10 000).
        features: usize,
    },
    /// Numeric and categorical (string) features with missing values; string label yes/no.
    Mixed,
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenOptions {
    /// The data set.
    pub generator: Generator,
    /// Number of rows.
    pub rows: u64,
    /// Seed: the same seed gives the same file.
    pub seed: u64,
}

/// What was generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenSummary {
    /// Rows written.
    pub rows: u64,
    /// Column names, label last.
    pub columns: Vec<String>,
    /// Accuracy of the noiseless rule on these rows: the best a model can expect.
    pub ceiling_accuracy: f64,
    /// Rows per label value, in label order.
    pub class_counts: Vec<(String, u64)>,
    /// Missing cells written.
    pub missing_cells: u64,
}

#[derive(Clone, Copy)]
enum Value {
    Number(f64),
    Category(&'static str),
    Missing,
}

const CITIES: [&str; 6] = ["Lisbon", "Porto", "Madrid", "Paris", "Berlin", "Rome"];
const DEVICES: [&str; 3] = ["mobile", "desktop", "tablet"];

impl Generator {
    fn columns(&self) -> Vec<String> {
        let mut names: Vec<String> = match self {
            Generator::HiggsLike => (0..21)
                .map(|i| format!("lowlevel_{i}"))
                .chain(["m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb"].map(String::from))
                .collect(),
            Generator::Multiclass { features, .. } => (0..*features).map(|i| format!("x{i}")).collect(),
            Generator::Mixed => {
                ["age", "income", "city", "device", "visits", "basket", "rating", "tenure"].map(String::from).to_vec()
            }
        };
        names.push("label".into());
        names
    }

    fn labels(&self) -> Vec<String> {
        match self {
            Generator::HiggsLike => vec!["0".into(), "1".into()],
            Generator::Multiclass { classes, .. } => (0..*classes).map(|c| c.to_string()).collect(),
            Generator::Mixed => vec!["no".into(), "yes".into()],
        }
    }

    fn validate(&self) -> Result<()> {
        if let Generator::Multiclass { classes, features } = self
            && (!(2..=100).contains(classes) || !(1..=10_000).contains(features))
        {
            return Err(Error::InvalidOption(format!(
                "multiclass needs 2-100 classes and 1-10000 features, got {classes} classes and {features} features"
            )));
        }
        Ok(())
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; 1 - u keeps the logarithm finite.
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn logistic_noise(rng: &mut ChaCha8Rng, scale: f64) -> f64 {
    let u: f64 = rng.random::<f64>().clamp(1e-12, 1.0 - 1e-12);
    scale * (u / (1.0 - u)).ln()
}

/// Per-run constants of the multiclass rule, drawn from the seed.
struct MulticlassRule {
    weights: Vec<Vec<f64>>,
    waves: Vec<Vec<f64>>,
}

impl MulticlassRule {
    fn new(rng: &mut ChaCha8Rng, classes: usize, features: usize) -> Self {
        let draw = |rng: &mut ChaCha8Rng| (0..classes).map(|_| (0..features).map(|_| normal(rng)).collect()).collect();
        let weights = draw(rng);
        let waves = draw(rng);
        Self { weights, waves }
    }
}

/// Draws one row into `out`; returns (drawn label, noiseless label).
fn draw_row(
    generator: &Generator,
    rule: Option<&MulticlassRule>,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Value>,
) -> (usize, usize) {
    out.clear();
    match generator {
        Generator::HiggsLike => {
            let x: Vec<f64> = (0..21).map(|_| normal(rng)).collect();
            // Derived "invariant masses": smooth nonlinear functions of the low-level features.
            let m_jj = (x[0] * x[0] + x[1] * x[1]).sqrt();
            let m_jjj = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
            let m_lv = (x[3] - x[4]).abs();
            let m_jlv = (x[3] * x[5]).tanh();
            let m_bb = (x[6] + x[7]).powi(2) / 2.0;
            let m_wbb = (x[8] * 1.5).sin() + x[9] * 0.3;
            let m_wwbb = (m_bb + m_lv).ln_1p();
            out.extend(x.iter().map(|&v| Value::Number(v)));
            out.extend([m_jj, m_jjj, m_lv, m_jlv, m_bb, m_wbb, m_wwbb].map(Value::Number));
            let score = 1.2 * x[0] * x[1] - 0.8 * (x[2] * x[2] - 1.0) + 1.0 * (2.0 * x[3]).sin() + 0.9 * x[4]
                - 0.7 * x[5]
                + 0.6 * (x[6].abs() - 0.8)
                - 0.8 * x[7] * x[8]
                + 0.5 * x[9]
                + 0.8 * (m_bb - 1.0)
                - 0.6 * (m_lv - 1.13);
            let label = usize::from(score + logistic_noise(rng, 0.6) > 0.0);
            (label, usize::from(score > 0.0))
        }
        Generator::Multiclass { classes, features } => {
            let rule = rule.expect("multiclass has a rule");
            let x: Vec<f64> = (0..*features).map(|_| normal(rng)).collect();
            out.extend(x.iter().map(|&v| Value::Number(v)));
            let scores: Vec<f64> = (0..*classes)
                .map(|k| {
                    let linear: f64 = rule.weights[k].iter().zip(&x).map(|(w, v)| w * v).sum();
                    let wave: f64 = rule.waves[k].iter().zip(&x).map(|(w, v)| w * v).sum();
                    linear / (*features as f64).sqrt() + wave.sin()
                })
                .collect();
            let argmax = |s: &[f64]| s.iter().enumerate().fold(0, |b, (i, &v)| if v > s[b] { i } else { b });
            let noisy: Vec<f64> = scores
                .iter()
                .map(|s| {
                    let u: f64 = rng.random::<f64>().clamp(1e-12, 1.0 - 1e-12);
                    s - 0.3 * (-u.ln()).ln()
                })
                .collect();
            (argmax(&noisy), argmax(&scores))
        }
        Generator::Mixed => {
            let age = (40.0 + 12.0 * normal(rng)).clamp(18.0, 90.0).round();
            let income = (10.5 + 0.5 * normal(rng)).exp().round();
            let city = rng.random_range(0..CITIES.len());
            let device = rng.random_range(0..DEVICES.len());
            let visits = (rng.random::<f64>() * 30.0).floor();
            let basket = (3.0 + normal(rng)).exp() / 10.0;
            let rating = (1.0 + rng.random::<f64>() * 4.0 * 10.0).round() / 10.0;
            let tenure = (rng.random::<f64>() * 120.0).round();
            let city_effect = [0.6, -0.4, 0.2, 0.0, -0.6, 0.3][city];
            let device_effect = [0.4, -0.3, 0.0][device];
            let score = 0.04 * (age - 40.0)
                + 0.8 * (income.ln() - 10.5)
                + city_effect
                + device_effect
                + 0.08 * (visits - 15.0)
                + 0.7 * (rating - 3.0) * (tenure / 60.0 - 1.0)
                + 0.5 * (basket.ln() - 1.0);
            let label = usize::from(score + logistic_noise(rng, 0.5) > 0.0);
            let values = [
                Value::Number(age),
                Value::Number(income),
                Value::Category(CITIES[city]),
                Value::Category(DEVICES[device]),
                Value::Number(visits),
                Value::Number((basket * 100.0).round() / 100.0),
                Value::Number(rating),
                Value::Number(tenure),
            ];
            // About 5% of feature cells are missing (never the label).
            for v in values {
                out.push(if rng.random::<f64>() < 0.05 { Value::Missing } else { v });
            }
            (label, usize::from(score > 0.0))
        }
    }
}

/// Writes `options.rows` rows to `path` (Parquet for `.parquet` / `.pq`, CSV otherwise),
/// calling `progress` with the rows written so far after each batch.
pub fn generate(path: &Path, options: &GenOptions, progress: &mut dyn FnMut(u64)) -> Result<GenSummary> {
    options.generator.validate()?;
    if options.rows == 0 {
        return Err(Error::InvalidOption("--rows must be at least 1".into()));
    }
    let columns = options.generator.columns();
    let label_names = options.generator.labels();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let rule = match options.generator {
        Generator::Multiclass { classes, features } => Some(MulticlassRule::new(&mut rng, classes, features)),
        _ => None,
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let mut sink: Box<dyn Sink> = if ext == "parquet" || ext == "pq" {
        Box::new(ParquetSink::create(path, &columns, &options.generator)?)
    } else {
        Box::new(CsvSink::create(path, &columns)?)
    };
    let mut counts = vec![0u64; label_names.len()];
    let (mut agree, mut missing, mut written) = (0u64, 0u64, 0u64);
    let mut batch: Vec<(Vec<Value>, usize)> = Vec::with_capacity(BATCH_ROWS);
    while written < options.rows {
        let n = (options.rows - written).min(BATCH_ROWS as u64) as usize;
        batch.clear();
        for _ in 0..n {
            let mut row = Vec::with_capacity(columns.len());
            let (label, noiseless) = draw_row(&options.generator, rule.as_ref(), &mut rng, &mut row);
            counts[label] += 1;
            agree += u64::from(label == noiseless);
            missing += row.iter().filter(|v| matches!(v, Value::Missing)).count() as u64;
            batch.push((row, label));
        }
        sink.write_batch(&batch, &label_names).map_err(|e| Error::io(path, e))?;
        written += n as u64;
        progress(written);
    }
    sink.finish().map_err(|e| Error::io(path, e))?;
    Ok(GenSummary {
        rows: written,
        columns,
        ceiling_accuracy: agree as f64 / written as f64,
        class_counts: label_names.into_iter().zip(counts).collect(),
        missing_cells: missing,
    })
}

trait Sink {
    fn write_batch(&mut self, rows: &[(Vec<Value>, usize)], labels: &[String]) -> std::io::Result<()>;
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

struct CsvSink {
    out: BufWriter<std::fs::File>,
}

impl CsvSink {
    fn create(path: &Path, columns: &[String]) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        writeln!(out, "{}", columns.join(",")).map_err(|e| Error::io(path, e))?;
        Ok(Self { out })
    }
}

impl Sink for CsvSink {
    fn write_batch(&mut self, rows: &[(Vec<Value>, usize)], labels: &[String]) -> std::io::Result<()> {
        for (row, label) in rows {
            for v in row {
                match v {
                    // Six decimals keep files small; the rule is computed before rounding,
                    // which changes no label at this precision in practice.
                    Value::Number(x) => write!(self.out, "{}", trim_number(*x))?,
                    Value::Category(s) => self.out.write_all(s.as_bytes())?,
                    Value::Missing => {}
                }
                self.out.write_all(b",")?;
            }
            writeln!(self.out, "{}", labels[*label])?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `x` with six decimals, trailing zeros removed ("3", "0.25", "-1.123457").
fn trim_number(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

struct ParquetSink {
    writer: polars::io::parquet::write::BatchedWriter<std::fs::File>,
    names: Vec<String>,
    numeric: Vec<bool>,
}

impl ParquetSink {
    fn create(path: &Path, columns: &[String], generator: &Generator) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let numeric: Vec<bool> = columns
            .iter()
            .map(|c| !(matches!(generator, Generator::Mixed) && (c == "city" || c == "device" || c == "label")))
            .collect();
        let mut schema = Schema::default();
        for (name, &is_number) in columns.iter().zip(&numeric) {
            let dtype = if name == "label" && is_number {
                DataType::Int64
            } else if is_number {
                DataType::Float64
            } else {
                DataType::String
            };
            schema.insert(name.as_str().into(), dtype);
        }
        let writer = ParquetWriter::new(file)
            .batched(&schema)
            .map_err(|e| Error::Parquet { path: path.to_owned(), message: e.to_string() })?;
        Ok(Self { writer, names: columns.to_vec(), numeric })
    }
}

impl Sink for ParquetSink {
    fn write_batch(&mut self, rows: &[(Vec<Value>, usize)], labels: &[String]) -> std::io::Result<()> {
        let last = self.names.len() - 1;
        let mut series = Vec::with_capacity(self.names.len());
        for (c, name) in self.names.iter().enumerate() {
            let name = PlSmallStr::from(name.as_str());
            let s = if c == last && self.numeric[c] {
                Series::new(name, rows.iter().map(|(_, l)| *l as i64).collect::<Vec<_>>())
            } else if c == last {
                Series::new(name, rows.iter().map(|(_, l)| labels[*l].as_str()).collect::<Vec<_>>())
            } else if self.numeric[c] {
                let values: Vec<Option<f64>> = rows
                    .iter()
                    .map(|(r, _)| match r[c] {
                        Value::Number(x) => Some(x),
                        _ => None,
                    })
                    .collect();
                Series::new(name, values)
            } else {
                let values: Vec<Option<&str>> = rows
                    .iter()
                    .map(|(r, _)| match r[c] {
                        Value::Category(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                Series::new(name, values)
            };
            series.push(s.into_column());
        }
        let df = DataFrame::new(rows.len(), series).map_err(std::io::Error::other)?;
        self.writer.write_batch(&df).map_err(std::io::Error::other)
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        self.writer.finish().map(|_| ()).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load};

    fn gen_to(path: &Path, generator: Generator, rows: u64, seed: u64) -> GenSummary {
        generate(path, &GenOptions { generator, rows, seed }, &mut |_| {}).unwrap()
    }

    #[test]
    fn same_seed_same_file_other_seed_other_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a.csv"), dir.path().join("b.csv"), dir.path().join("c.csv"));
        let sa = gen_to(&a, Generator::HiggsLike, 2_000, 5);
        gen_to(&b, Generator::HiggsLike, 2_000, 5);
        gen_to(&c, Generator::HiggsLike, 2_000, 6);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
        assert_eq!(sa.columns.len(), 29);
        // The rule is learnable but noisy: the ceiling is well above chance and below 1.
        assert!((0.8..0.97).contains(&sa.ceiling_accuracy), "{}", sa.ceiling_accuracy);
        let ones = sa.class_counts[1].1 as f64 / 2_000.0;
        assert!((0.35..0.65).contains(&ones), "class balance {ones}");
        let t = load(&a, &LoadOptions::default()).unwrap().table;
        assert_eq!(t.rows(), 2_000);
        assert_eq!(t.class_names(), ["0", "1"]);
    }

    #[test]
    fn mixed_has_strings_and_missing_values_in_csv_and_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("m.csv");
        let pq = dir.path().join("m.parquet");
        let s = gen_to(&csv, Generator::Mixed, 3_000, 1);
        gen_to(&pq, Generator::Mixed, 3_000, 1);
        assert!(s.missing_cells > 600 && s.missing_cells < 1_400, "{}", s.missing_cells);
        let a = load(&csv, &LoadOptions::default()).unwrap().table;
        let b = load(&pq, &LoadOptions::default()).unwrap().table;
        assert_eq!(a.column("city").unwrap().kind(), crate::table::ColumnKind::Categorical);
        let missing: usize = a.features().map(|(_, c)| c.missing_count()).sum();
        assert_eq!(missing as u64, s.missing_cells);
        assert_eq!(b.class_names(), ["no", "yes"]);
        for name in ["age", "city", "rating", "label"] {
            let (ca, cb) = (a.column(name).unwrap(), b.column(name).unwrap());
            for r in [0, 17, 2_999] {
                assert_eq!(ca.display(r), cb.display(r), "{name} row {r}");
            }
        }
    }

    #[test]
    fn multiclass_labels_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.csv");
        let s = gen_to(&p, Generator::Multiclass { classes: 5, features: 8 }, 5_000, 3);
        assert_eq!(s.class_counts.len(), 5);
        assert!(s.class_counts.iter().all(|(_, n)| *n > 300), "{:?}", s.class_counts);
        assert!(s.ceiling_accuracy > 0.6, "{}", s.ceiling_accuracy);
        let bad = GenOptions { generator: Generator::Multiclass { classes: 1, features: 8 }, rows: 10, seed: 0 };
        assert!(generate(&p, &bad, &mut |_| {}).is_err());
        assert_eq!(trim_number(-0.0000001), "0");
        assert_eq!(trim_number(2.5), "2.5");
    }
}
