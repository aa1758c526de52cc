//! `trainbench predict`: a saved model on new raw data, streamed batch by batch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use trainbench_data::{
    ColumnKind, InvalidRow, InvalidRowPolicy, LoadOptions, PredictionWriter, Table, is_prepared_dir, open_prepared_dir,
    read_csv_batches, read_parquet_batches, write_quarantine,
};
use trainbench_engine::{EngineKind, SavedModel, TrainedModel};
use trainbench_metrics::ClassificationReport;

use crate::args::{LoadArgs, RunArgs};
use crate::{engines, output};

/// Rows of new data are read this many bytes of CSV at a time, so any file size fits in memory.
const BATCH_BYTES: usize = 32 << 20;
/// ... and this many rows of Parquet (a batch holds whole row groups where they are smaller).
const BATCH_ROWS: usize = 256 << 10;
/// ... and this many rows of a prepared directory's test rows.
const PREPARED_ROWS: usize = 64 << 10;

/// Apply a saved model to new data: each row's class probabilities and predicted class.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A model saved by `trainbench train --save`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// New data with the training columns (any order; the label column is optional — when it
    /// is there, the metrics are printed too). Or a prepared directory (`prepare --out`): its
    /// test rows, already transformed, for a model trained on that directory.
    #[arg(long, value_name = "FILE|DIR")]
    pub data: PathBuf,
    /// Output: line (a Parquet input's row number), one probability column per class,
    /// prediction. Parquet for a .parquet or .pq name, CSV otherwise; `-` writes CSV to stdout
    /// (the summary then goes to stderr).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Field delimiter of the data (default: detected).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// Values that mean "missing" besides an empty field, comma-separated.
    #[arg(long, value_name = "TOKENS", value_delimiter = ',')]
    pub na_values: Vec<String>,
    /// Where unreadable rows are written, with line and reason.
    #[arg(long, value_name = "FILE", default_value = "trainbench-quarantine.csv")]
    pub quarantine: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let started = Instant::now();
    let saved = SavedModel::load(&args.model)?;
    let kind: EngineKind = saved.engine.parse().map_err(|_| {
        anyhow::anyhow!("the model was saved by engine '{}', which this build does not have", saved.engine)
    })?;
    let engine = engines::build(kind, &RunArgs::default());
    let model = engine.load_model(saved.spec.kind, &saved.state).context("loading the model")?;
    let pre = &saved.preprocessor;
    let classes = pre.classes().to_vec();

    // Read the new data with the kinds the model was trained on; other columns stay text.
    let load_args = LoadArgs {
        label: Some(pre.label().to_owned()),
        delimiter: args.delimiter.clone(),
        categorical: Vec::new(),
        numeric: Vec::new(),
        na_values: args.na_values.clone(),
        invalid_rows: InvalidRowPolicy::Quarantine,
        idx_labels: None,
    };
    let mut options: LoadOptions = load_args.to_options()?;
    for (name, kind) in pre.input_columns() {
        match kind {
            ColumnKind::Numeric => options.numeric.push(name),
            ColumnKind::Categorical => options.categorical.push(name),
        }
    }
    let mut out = PredictionWriter::create(&args.out, &classes)?;
    let mut scored = Scored::default();
    let mut invalid: Vec<InvalidRow> = Vec::new();
    let ext = args.data.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if is_prepared_dir(&args.data) {
        // The rows are transformed already: only a model fitted with the same preprocessor
        // reads them as it was trained to.
        let data = open_prepared_dir(&args.data)?;
        if data.preprocessor != *pre {
            anyhow::bail!(
                "{}: the model was trained with another preprocessor than this prepared directory's; \
                 predict on the raw file instead",
                args.data.display()
            );
        }
        let test = &data.test;
        let d = test.n_features.max(1);
        for (block, labels) in test.features.chunks(PREPARED_ROWS * d).zip(test.labels.chunks(PREPARED_ROWS)) {
            let proba = model.predict_proba(block)?;
            // The test part's row numbers, from 1.
            let lines: Vec<u64> = (scored.rows as u64 + 1..).take(labels.len()).collect();
            out.write(&lines, &proba)?;
            scored.labels.extend_from_slice(labels);
            scored.proba.extend_from_slice(&proba);
            scored.rows += labels.len();
        }
    } else if ext == "parquet" || ext == "pq" {
        let batches = read_parquet_batches(&args.data, &options, BATCH_ROWS)?;
        for batch in batches {
            let (table, bad) = batch?;
            invalid.extend(bad);
            scored.add(&table, model.as_ref(), pre, &classes, &mut out)?;
        }
    } else {
        let size = std::fs::metadata(&args.data).map(|m| m.len()).unwrap_or(0);
        let bar = output::bar(size, "predicting (bytes)", args.json);
        let mut batches = read_csv_batches(&args.data, &options, BATCH_BYTES)?;
        while let Some(batch) = batches.next() {
            let (table, bad) = batch?;
            invalid.extend(bad);
            scored.add(&table, model.as_ref(), pre, &classes, &mut out)?;
            bar.set_position(batches.bytes_read());
        }
        bar.finish_and_clear();
    }
    out.finish()?;
    if !invalid.is_empty() {
        let rows: Vec<_> = invalid.into_iter().map(|r| (args.data.clone(), r)).collect();
        write_quarantine(&args.quarantine, &rows)?;
        scored.invalid = rows.len();
    }
    let report = if scored.labels.is_empty() {
        None
    } else {
        Some(ClassificationReport::from_proba(&scored.labels, &scored.proba, classes.len())?)
    };
    let seconds = started.elapsed().as_secs_f64();
    // With the predictions on stdout, the summary goes to stderr.
    let mut summary = Vec::new();
    if args.json {
        let value = serde_json::json!({
            "rows": scored.rows,
            "invalid_rows": scored.invalid,
            "out": args.out,
            "seconds": seconds,
            "engine": saved.engine,
            "model": saved.spec.kind.name(),
            "accuracy": report.as_ref().map(|r| r.accuracy),
            "f1_macro": report.as_ref().map(|r| r.macro_avg.f1),
            "labelled_rows": scored.labels.len(),
        });
        summary.push(value.to_string());
    } else {
        summary.push(format!("{} rows predicted into {} in {seconds:.2} s", scored.rows, args.out.display()));
        if scored.invalid > 0 {
            summary.push(format!(
                "{} unreadable rows written to {} (line and reason for each)",
                scored.invalid,
                args.quarantine.display()
            ));
        }
        if let Some(r) = report {
            summary.push(format!(
                "on the {} labelled rows: accuracy {:.4}, macro F1 {:.4}",
                scored.labels.len(),
                r.accuracy,
                r.macro_avg.f1
            ));
        }
    }
    for line in summary {
        if args.out == Path::new("-") { eprintln!("{line}") } else { println!("{line}") }
    }
    Ok(())
}

/// What has been predicted so far; labels and probabilities are kept only for labelled rows.
#[derive(Default)]
struct Scored {
    rows: usize,
    invalid: usize,
    labels: Vec<u32>,
    proba: Vec<f32>,
}

impl Scored {
    fn add(
        &mut self,
        table: &Table,
        model: &dyn TrainedModel,
        pre: &trainbench_data::FittedPreprocessor,
        classes: &[String],
        out: &mut PredictionWriter,
    ) -> Result<()> {
        let rows: Vec<usize> = (0..table.rows()).collect();
        let (features, _) = pre.transform_features(table, &rows)?;
        let proba = model.predict_proba(&features)?;
        out.write(&table.lines, &proba)?;
        let label = table.label_column();
        for (i, p) in proba.chunks_exact(classes.len()).enumerate() {
            let truth = label.display(i);
            if let Some(c) = classes.iter().position(|c| *c == truth) {
                self.labels.push(c as u32);
                self.proba.extend_from_slice(p);
            }
        }
        self.rows += table.rows();
        Ok(())
    }
}
