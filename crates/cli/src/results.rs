//! What runs produce, in one model: a [`RunRecord`] per run (what `train --json` prints, what
//! `compare` and `scale` collect, what `tune` scores), and the [`Results`] of a study with the
//! like-for-like [`FamilyComparison`]s. `results.json` is these, serialized; its schema is
//! `docs/results.schema.json` (bump [`SCHEMA_VERSION`] when a field changes meaning or goes away).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trainbench_engine::LogEntry;
use trainbench_metrics::{ClassificationReport, ResourceSample};

use crate::report::Estimate;

/// Whether a run finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// It trained and was scored.
    Ok,
    /// It failed; `error` says why.
    Failed,
}

/// Version of the `results.json` layout. 2: `workers` are the cores a run had (for both
/// engines), log times leave out validation scoring, runs carry both memory peaks, iteration
/// counts and time to target, and the study its like-for-like comparisons.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything a study measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Layout version.
    pub schema_version: u32,
    /// The command that ran (`compare`, `scale`).
    pub command: String,
    /// Seconds since 1970 when the study finished.
    pub created_unix: u64,
    /// trainbench's version.
    pub trainbench_version: String,
    /// Git commit trainbench was built from ("unknown" outside a checkout).
    pub git_commit: String,
    /// Versions of the libraries doing the work.
    pub crate_versions: BTreeMap<String, String>,
    /// The machine.
    pub machine: Machine,
    /// The data.
    pub data: DataInfo,
    /// Every run, failed ones included.
    pub runs: Vec<RunRecord>,
    /// The two paradigms side by side on each model family both ran (the answers' basis).
    #[serde(default)]
    pub comparisons: Vec<FamilyComparison>,
}

/// The machine a study ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu_model: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Total memory.
    pub memory_bytes: u64,
    /// Operating system.
    pub os: String,
}

impl Machine {
    /// Reads /proc for this machine.
    pub fn current() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .map_or(0, |k| k * 1024);
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            os: std::env::consts::OS.to_owned(),
        }
    }
}

/// The data every run used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataInfo {
    /// File it came from.
    pub source: String,
    /// Whether trainbench generated it (the built-in default).
    pub generated: bool,
    /// Training rows.
    pub train_rows: usize,
    /// Validation rows (early stopping).
    pub valid_rows: usize,
    /// Test rows (scores).
    pub test_rows: usize,
    /// Features after preprocessing.
    pub features: usize,
    /// Class names.
    pub classes: Vec<String>,
    /// Seconds to load, clean, split and preprocess (once for all runs).
    pub prepare_seconds: f64,
}

/// Test-row scores of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scores {
    /// Accuracy.
    pub accuracy: f64,
    /// Macro-averaged precision.
    pub precision_macro: f64,
    /// Macro-averaged recall.
    pub recall_macro: f64,
    /// Macro-averaged F1.
    pub f1_macro: f64,
    /// Support-weighted F1.
    #[serde(default)]
    pub f1_weighted: f64,
    /// ROC AUC (binary, or one-vs-rest macro).
    pub roc_auc: Option<f64>,
    /// Log-loss.
    pub log_loss: Option<f64>,
    /// Confusion matrix, rows = true class.
    pub confusion: Vec<Vec<u64>>,
}

impl Scores {
    /// The scores of a classification report on the test rows.
    pub fn from_report(report: &ClassificationReport) -> Self {
        Scores {
            accuracy: report.accuracy,
            precision_macro: report.macro_avg.precision,
            recall_macro: report.macro_avg.recall,
            f1_macro: report.macro_avg.f1,
            f1_weighted: report.weighted_avg.f1,
            roc_auc: report.roc_auc,
            log_loss: report.log_loss,
            confusion: report.confusion.counts.clone(),
        }
    }
}

/// Where a run sits in a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Share of the training rows used (above 1: resampled with replacement).
    pub fraction: f64,
    /// Cores the run had (in each process).
    pub workers: usize,
    /// Processes the run trained across (`scale --processes`, launched with mpirun).
    #[serde(default = "one")]
    pub processes: usize,
}

/// One training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// `engine/model/seed` (plus the sweep point).
    pub id: String,
    /// Engine name.
    pub engine: String,
    /// Model name.
    pub model: String,
    /// Seed of the run.
    pub seed: u64,
    /// Cores the fit had (the threads of its pool, for either engine); 0 for a run on a Spark
    /// cluster.
    pub workers: usize,
    /// Processes of the MPI job the run was one rank of (`mpirun -np N`); 1 without mpirun.
    #[serde(default = "one")]
    pub processes: usize,
    /// Replicas each batch was split over in each process (tensor).
    #[serde(default)]
    pub replicas: Option<usize>,
    /// Partitions of the training rows (spark).
    #[serde(default)]
    pub partitions: Option<usize>,
    /// Arithmetic of the fit: f64 (spark, as MLlib; or its MLP's f32 option), f32, bf16, f16.
    #[serde(default)]
    pub precision: String,
    /// Training rows.
    pub train_rows: usize,
    /// Parameters set for the run (others: the engine's defaults).
    pub params: BTreeMap<String, String>,
    /// Sweep point, for `scale`.
    pub sweep: Option<SweepPoint>,
    /// Whether it finished.
    pub status: RunStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Wall seconds of the fit.
    pub fit_seconds: f64,
    /// Seconds of the fit spent scoring validation rows (every iteration or level for spark,
    /// every epoch for tensor); `fit_seconds − eval_seconds` is the training time.
    #[serde(default)]
    pub eval_seconds: f64,
    /// Wall seconds to predict the test rows.
    pub predict_seconds: f64,
    /// Seconds per epoch (tensor engine).
    pub epoch_seconds: Vec<f64>,
    /// Iterations (spark: L-BFGS iterations as MLlib's totalIterations counts them, or tree
    /// levels) or epochs (tensor).
    #[serde(default)]
    pub iterations: usize,
    /// Passes over the training rows (spark L-BFGS: the line search may take more than one per
    /// iteration).
    #[serde(default)]
    pub evaluations: Option<u64>,
    /// Training seconds (validation scoring left out) until the validation accuracy first
    /// reached the study's target for this model family (MLPerf's rule); none if never.
    #[serde(default)]
    pub time_to_target_seconds: Option<f64>,
    /// Training rows per second of fit (rows × epochs for the tensor engine).
    pub rows_per_second: f64,
    /// CPU seconds of the fit (all threads).
    pub cpu_seconds: f64,
    /// Mean CPU use during the fit, in % of one core.
    pub mean_cpu_percent: f64,
    /// Peak resident memory during the fit (the prepared data in memory included).
    pub peak_rss_bytes: u64,
    /// Peak resident memory of the whole process as this run alone would reach it: loading and
    /// preparing the data, the fit and the predictions.
    #[serde(default)]
    pub process_peak_rss_bytes: u64,
    /// Test-row scores.
    pub scores: Option<Scores>,
    /// Why training stopped.
    pub stop_reason: String,
    /// Epochs taken from a checkpoint rather than trained in this run (tensor `--resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_epochs: Option<usize>,
    /// Seconds of the fit rank 0 spent exchanging with the other processes (under mpirun).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication_seconds: Option<f64>,
    /// Per-iteration / per-epoch log.
    pub log: Vec<LogEntry>,
    /// CPU % and RSS sampled during the fit (of the Spark Connect server, for a cluster run on
    /// this machine).
    pub resources: Vec<ResourceSample>,
    /// For a run on Spark through Spark Connect: where, and what Spark itself measured.
    #[serde(default)]
    pub cluster: Option<ClusterInfo>,
}

/// A run trained by real Spark MLlib through Spark Connect (`--spark-remote`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The server's address.
    pub remote: String,
    /// Its Spark version.
    pub spark_version: String,
    /// Class names, in Spark's label order.
    pub classes: Vec<String>,
    /// Width of the assembled feature vector.
    pub features: usize,
    /// Test rows of Spark's split.
    pub test_rows: usize,
    /// Rows dropped because their label was missing.
    pub unlabeled_rows: usize,
    /// Seconds to read and cache the file on the cluster.
    pub read_seconds: f64,
    /// Seconds to split, fit the preprocessing stages and cache the prepared rows.
    pub preprocess_seconds: f64,
    /// Accuracy by Spark's MulticlassClassificationEvaluator (the scores are trainbench's).
    pub spark_accuracy: f64,
    /// Class-weighted F1 by Spark's MulticlassClassificationEvaluator.
    pub spark_f1_weighted: f64,
}

/// The two paradigms side by side on one model family both ran, over seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FamilyComparison {
    /// The model family (the model name both engines use, e.g. `mlp`).
    pub model: String,
    /// The validation accuracy whose first reaching is timed (MLPerf's time to target); none
    /// when the runs scored no validation rows.
    pub target_accuracy: Option<f64>,
    /// How the target was chosen.
    pub target_rule: String,
    /// One side per paradigm, spark first.
    pub sides: Vec<Side>,
}

/// One paradigm's runs of a family.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    /// Engine.
    pub engine: String,
    /// Runs that finished.
    pub runs: usize,
    /// Runs whose validation accuracy reached the target.
    pub reached: usize,
    /// Time to the target over the runs that reached it.
    pub time_to_target_seconds: Option<Estimate>,
    /// Training seconds of the whole fit (validation scoring left out).
    pub train_seconds: Estimate,
    /// Iterations (spark) or epochs (tensor).
    pub iterations: Estimate,
    /// Best validation accuracy of each run.
    pub best_valid_accuracy: Option<Estimate>,
    /// Test accuracy.
    pub accuracy: Estimate,
    /// Test macro F1.
    pub f1: Estimate,
    /// CPU seconds of the fit.
    pub cpu_seconds: Estimate,
    /// Cores busy on average.
    pub cores_used: Estimate,
    /// Peak RSS during the fit.
    pub peak_rss_bytes: Estimate,
    /// Whole-process peak RSS.
    pub process_peak_rss_bytes: Estimate,
}

fn one() -> usize {
    1
}
