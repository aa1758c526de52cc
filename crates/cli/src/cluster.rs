//! `--spark-remote sc://HOST:PORT`: the spark engine's runs on real Spark MLlib through Spark
//! Connect, recorded as any run is ([`fill_record`]). Spark reads the file, splits and preprocesses it with its own ML stages; the
//! predictions come back and are scored by trainbench's metrics, beside Spark's evaluator.

use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;
use trainbench_data::FittedPreprocessor;
use trainbench_engine::ModelSpec;
use trainbench_metrics::{ClassificationReport, ResourceSummary};

use crate::args::{LoadArgs, PrepArgs};
use crate::results::{ClusterInfo, RunRecord, RunStatus, Scores};
use crate::runner::rows_per_second;

/// A finished cluster run, scored by trainbench's metrics.
pub struct ClusterOutcome {
    /// trainbench's scores of the collected predictions.
    pub report: ClassificationReport,
    /// The label column Spark used.
    pub label: String,
    /// Class names, in the order of the report's classes.
    pub classes: Vec<String>,
    /// Training rows.
    pub train_rows: usize,
    /// Width of the assembled feature vector.
    pub features: usize,
    /// Wall seconds of the fit.
    pub fit_seconds: f64,
    /// MLlib's iterations (tree: depth), where the server said.
    pub iterations: Option<u64>,
    /// Wall seconds to predict the test rows and bring them back.
    pub predict_seconds: f64,
    /// The server's CPU and memory during the fit, when it runs on this machine.
    pub server_fit_resources: Option<ResourceSummary>,
    /// The rest, for the report.
    pub info: ClusterInfo,
    /// The fitted stages and model read back from Spark, when asked for.
    pub read_back: Option<ReadBackModel>,
}

/// A model fitted on the cluster, read back to be saved as any trainbench model.
pub struct ReadBackModel {
    /// Spark's fitted stages as trainbench's preprocessor.
    pub preprocessor: FittedPreprocessor,
    /// The spark engine's model state.
    pub state: serde_json::Value,
    /// How well it reproduces Spark's own probabilities.
    pub check: ReadBackCheck,
}

/// Spark's probabilities on test rows against the read-back model's on the same rows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReadBackCheck {
    /// Test rows compared.
    pub rows: usize,
    /// Largest difference of a probability.
    pub max_gap: f64,
}

/// Trains `kind` on the cluster at `remote` with the data and split options of a command; with
/// `read_back`, brings the fitted stages and model back too.
#[cfg(feature = "spark-connect")]
#[allow(clippy::too_many_arguments)]
pub fn fit_on_cluster(
    remote: &str,
    data: &Path,
    load: &LoadArgs,
    prep: &PrepArgs,
    spec: &ModelSpec,
    seed: u64,
    train_fraction: f64,
    read_back: bool,
) -> Result<ClusterOutcome> {
    use trainbench_engine_spark::connect::{ClusterJob, run_on_cluster};
    if load.delimiter.is_some()
        || !load.categorical.is_empty()
        || !load.numeric.is_empty()
        || !load.na_values.is_empty()
    {
        bail!(
            "--delimiter, --categorical, --numeric and --na-values are not used with --spark-remote: Spark reads the \
             file itself (CSV with a header row and inferred types, or Parquet)"
        );
    }
    // The server resolves a relative path against its own working folder: send local files whole.
    let as_server_sees = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    let job = ClusterJob {
        data: as_server_sees(data),
        label: load.label.clone(),
        kind: spec.kind,
        params: spec.params.clone(),
        seed,
        test_fraction: prep.test_fraction,
        test_data: prep.test_data.as_deref().map(as_server_sees),
        train_fraction,
        read_back,
    };
    let mut run = run_on_cluster(remote, &job)?;
    let report = ClassificationReport::from_proba(&run.labels, &run.proba, run.classes.len())?;
    let read_back = match run.read_back.take() {
        Some(r) => Some(ReadBackModel {
            state: r.model.to_json()?,
            preprocessor: r.preprocessor,
            check: ReadBackCheck { rows: r.checked_rows, max_gap: r.max_gap },
        }),
        None => None,
    };
    Ok(ClusterOutcome {
        read_back,
        report,
        info: ClusterInfo {
            remote: remote.to_owned(),
            spark_version: run.spark_version,
            classes: run.classes.clone(),
            features: run.features,
            test_rows: run.test_rows as usize,
            unlabeled_rows: run.unlabeled_rows as usize,
            read_seconds: run.phases.read_seconds,
            preprocess_seconds: run.phases.preprocess_seconds,
            spark_accuracy: run.spark_accuracy,
            spark_f1_weighted: run.spark_f1_weighted,
        },
        label: run.label,
        classes: run.classes,
        train_rows: run.train_rows as usize,
        features: run.features,
        fit_seconds: run.phases.fit_seconds,
        iterations: run.iterations,
        predict_seconds: run.phases.predict_seconds,
        server_fit_resources: run.server_fit_resources,
    })
}

/// Without the `spark-connect` feature there is no cluster mode; say how to get it.
#[cfg(not(feature = "spark-connect"))]
#[allow(clippy::too_many_arguments)]
pub fn fit_on_cluster(
    remote: &str,
    _data: &Path,
    _load: &LoadArgs,
    _prep: &PrepArgs,
    _spec: &ModelSpec,
    _seed: u64,
    _train_fraction: f64,
    _read_back: bool,
) -> Result<ClusterOutcome> {
    bail!(
        "--spark-remote {remote}: this trainbench was built without Spark Connect support; rebuild with the \
         `spark-connect` feature (on by default; it needs protoc)"
    )
}

/// The cluster's side of a run record.
pub fn fill_record(record: &mut RunRecord, o: ClusterOutcome) {
    record.status = RunStatus::Ok;
    record.workers = 0;
    record.replicas = None;
    record.partitions = None;
    record.train_rows = o.train_rows;
    record.fit_seconds = o.fit_seconds;
    record.iterations = o.iterations.unwrap_or(0) as usize;
    record.predict_seconds = o.predict_seconds;
    record.rows_per_second = rows_per_second(o.train_rows, 1, o.fit_seconds);
    if let Some(r) = &o.server_fit_resources {
        record.cpu_seconds = r.cpu_seconds;
        record.mean_cpu_percent = r.mean_cpu_percent;
        record.peak_rss_bytes = r.peak_rss_bytes;
        record.resources = r.samples.clone();
    }
    record.stop_reason = "fitted by Spark MLlib".into();
    record.scores = Some(Scores::from_report(&o.report));
    record.cluster = Some(o.info);
}
