//! A study's results (`results.json`, `metrics.csv`) and its self-contained `report.html`.
//!
//! The schema of `results.json` is documented in `docs/results.schema.json`; bump
//! [`SCHEMA_VERSION`] when a field changes meaning or goes away.

pub mod svg;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use trainbench_engine::LogEntry;
use trainbench_metrics::ResourceSample;

use self::svg::{Bar, Series, bar_chart, esc, line_chart};

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
    /// ROC AUC (binary, or one-vs-rest macro).
    pub roc_auc: Option<f64>,
    /// Log-loss.
    pub log_loss: Option<f64>,
    /// Confusion matrix, rows = true class.
    pub confusion: Vec<Vec<u64>>,
}

impl Scores {
    /// The shared metrics' report of a run's test rows.
    pub fn from_report(r: &trainbench_metrics::ClassificationReport) -> Self {
        Self {
            accuracy: r.accuracy,
            precision_macro: r.macro_avg.precision,
            recall_macro: r.macro_avg.recall,
            f1_macro: r.macro_avg.f1,
            roc_auc: r.roc_auc,
            log_loss: r.log_loss,
            confusion: r.confusion.counts.clone(),
        }
    }
}

/// Where a run sits in a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Share of the training rows used (above 1: resampled with replacement).
    pub fraction: f64,
    /// Cores the run had.
    pub workers: usize,
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
    /// Replicas each batch was split over (tensor).
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
    /// "ok" or "failed".
    pub status: String,
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

/// Mean and 95 % interval (Student's t) of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Mean.
    pub mean: f64,
    /// Lower end of the 95 % interval (the mean when n = 1).
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Sample size.
    pub n: usize,
}

impl Estimate {
    /// From the values (empty → NaN mean).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        if n < 2 {
            return Self { mean: if n == 0 { f64::NAN } else { mean }, low: mean, high: mean, n };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t_975(n - 1) * (var / n as f64).sqrt();
        Self { mean, low: mean - half, high: mean + half, n }
    }

    /// "0.7512 ± 0.0031" (or just the mean for one value).
    pub fn show(&self, digits: usize) -> String {
        if self.n < 2 {
            format!("{:.digits$}", self.mean)
        } else {
            format!("{:.digits$} ± {:.digits$}", self.mean, (self.high - self.low) / 2.0)
        }
    }
}

/// Student's t 0.975 quantile for `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.saturating_sub(1)).copied().unwrap_or(1.96)
}

/// The runs of one (engine, model, sweep point) over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Engine.
    pub engine: String,
    /// Model.
    pub model: String,
    /// Sweep point.
    pub sweep: Option<SweepPoint>,
    /// Runs that finished.
    pub ok: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Fit seconds.
    pub fit_seconds: Estimate,
    /// Training seconds: the fit without validation scoring.
    pub train_seconds: Estimate,
    /// Time to the family's target accuracy, over the runs that reached it.
    pub time_to_target: Option<Estimate>,
    /// Iterations, levels or epochs.
    pub iterations: Estimate,
    /// Mean seconds per epoch, where the engine has epochs.
    pub epoch_seconds: Option<Estimate>,
    /// Rows per second.
    pub rows_per_second: Estimate,
    /// Accuracy.
    pub accuracy: Estimate,
    /// Macro precision.
    pub precision: Estimate,
    /// Macro recall.
    pub recall: Estimate,
    /// Macro F1.
    pub f1: Estimate,
    /// AUC.
    pub auc: Option<Estimate>,
    /// CPU seconds.
    pub cpu_seconds: Estimate,
    /// Cores busy on average during the fit (CPU seconds / fit seconds).
    pub cores_used: Estimate,
    /// Peak RSS during the fit, in bytes.
    pub peak_rss_bytes: Estimate,
    /// Whole-process peak RSS, in bytes.
    pub process_peak_rss_bytes: Estimate,
}

impl Group {
    /// "engine model".
    pub fn name(&self) -> String {
        format!("{} {}", self.engine, self.model)
    }
}

/// Groups runs by (engine, model, sweep point) in first-seen order.
pub fn groups(runs: &[RunRecord]) -> Vec<Group> {
    let mut keys: Vec<(String, String, Option<SweepPoint>)> = Vec::new();
    for r in runs {
        let key = (r.engine.clone(), r.model.clone(), r.sweep);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(engine, model, sweep)| {
            let members: Vec<&RunRecord> =
                runs.iter().filter(|r| r.engine == engine && r.model == model && r.sweep == sweep).collect();
            let ok: Vec<&RunRecord> = members.iter().copied().filter(|r| r.scores.is_some()).collect();
            let est = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
                let v: Vec<f64> = ok.iter().filter_map(|r| f(r)).collect();
                (!v.is_empty()).then(|| Estimate::of(&v))
            };
            let nan = Estimate::of(&[]);
            let score = |f: fn(&Scores) -> f64| est(&|r| r.scores.as_ref().map(f)).unwrap_or(nan);
            Group {
                fit_seconds: est(&|r| Some(r.fit_seconds)).unwrap_or(nan),
                train_seconds: est(&|r| Some(r.fit_seconds - r.eval_seconds)).unwrap_or(nan),
                time_to_target: est(&|r| r.time_to_target_seconds),
                iterations: est(&|r| Some(r.iterations as f64)).unwrap_or(nan),
                epoch_seconds: est(&|r| {
                    (!r.epoch_seconds.is_empty())
                        .then(|| r.epoch_seconds.iter().sum::<f64>() / r.epoch_seconds.len() as f64)
                }),
                rows_per_second: est(&|r| Some(r.rows_per_second)).unwrap_or(nan),
                accuracy: score(|s| s.accuracy),
                precision: score(|s| s.precision_macro),
                recall: score(|s| s.recall_macro),
                f1: score(|s| s.f1_macro),
                auc: est(&|r| r.scores.as_ref().and_then(|s| s.roc_auc)),
                cpu_seconds: est(&|r| Some(r.cpu_seconds)).unwrap_or(nan),
                cores_used: est(&|r| Some(r.mean_cpu_percent / 100.0)).unwrap_or(nan),
                peak_rss_bytes: est(&|r| Some(r.peak_rss_bytes as f64)).unwrap_or(nan),
                process_peak_rss_bytes: est(&|r| Some(r.process_peak_rss_bytes as f64)).unwrap_or(nan),
                ok: ok.len(),
                failed: members.len() - ok.len(),
                engine,
                model,
                sweep,
            }
        })
        .collect()
}

/// Least-squares slope of log(y) against log(x): the exponent b of y ≈ a·x^b.
pub fn power_law_exponent(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> =
        points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    if logs.len() < 2 {
        return None;
    }
    let n = logs.len() as f64;
    let (mx, my) = (logs.iter().map(|p| p.0).sum::<f64>() / n, logs.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Writes `results.json`, `metrics.csv` and `report.html` into `dir`.
pub fn write_all(dir: &Path, results: &Results) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("results.json", serde_json::to_string_pretty(results)?)?;
    write("metrics.csv", metrics_csv(results))?;
    write("report.html", html(results))
}

fn metrics_csv(results: &Results) -> String {
    let mut out = String::from(
        "id,engine,model,seed,workers,fraction,train_rows,status,fit_seconds,eval_seconds,iterations,\
         time_to_target_seconds,mean_epoch_seconds,rows_per_second,accuracy,precision_macro,recall_macro,f1_macro,\
         roc_auc,log_loss,cpu_seconds,peak_rss_bytes,process_peak_rss_bytes\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in &results.runs {
        let s = r.scores.as_ref();
        let epoch =
            (!r.epoch_seconds.is_empty()).then(|| r.epoch_seconds.iter().sum::<f64>() / r.epoch_seconds.len() as f64);
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.id,
            r.engine,
            r.model,
            r.seed,
            r.workers,
            r.sweep.map_or(1.0, |s| s.fraction),
            r.train_rows,
            r.status,
            r.fit_seconds,
            r.eval_seconds,
            r.iterations,
            opt(r.time_to_target_seconds),
            opt(epoch),
            r.rows_per_second,
            opt(s.map(|s| s.accuracy)),
            opt(s.map(|s| s.precision_macro)),
            opt(s.map(|s| s.recall_macro)),
            opt(s.map(|s| s.f1_macro)),
            opt(s.and_then(|s| s.roc_auc)),
            opt(s.and_then(|s| s.log_loss)),
            r.cpu_seconds,
            r.peak_rss_bytes,
            r.process_peak_rss_bytes
        );
    }
    out
}

fn mib(bytes: f64) -> f64 {
    bytes / (1u64 << 20) as f64
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

/// How far below the lower paradigm's best validation accuracy the default target sits.
pub const TARGET_MARGIN: f64 = 0.005;

/// The best validation accuracy a run's log reached.
fn best_valid_accuracy(r: &RunRecord) -> Option<f64> {
    r.log.iter().filter_map(|e| e.valid_accuracy).fold(None, |b, a| Some(b.map_or(a, |b: f64| b.max(a))))
}

/// Training seconds until the validation accuracy first reached `target` (MLPerf's rule).
fn time_to(r: &RunRecord, target: f64) -> Option<f64> {
    r.log.iter().find(|e| e.valid_accuracy.is_some_and(|a| a >= target)).map(|e| e.elapsed_seconds)
}

/// Compares the paradigms on every model family both ran (outside sweeps), and records each of
/// those runs' time to the family's target: `target` if given, else the lower of the two
/// paradigms' best validation accuracy (mean over seeds of each run's best) minus 0.5 pp.
pub fn compare_families(runs: &mut [RunRecord], target: Option<f64>) -> Vec<FamilyComparison> {
    let ok = |r: &RunRecord, engine: &str, model: &str| {
        r.sweep.is_none() && r.scores.is_some() && r.engine == engine && r.model == model
    };
    let mut models: Vec<String> = Vec::new();
    for r in runs.iter().filter(|r| r.sweep.is_none() && r.scores.is_some()) {
        if !models.contains(&r.model) {
            models.push(r.model.clone());
        }
    }
    let shared: Vec<String> =
        models.into_iter().filter(|m| ["spark", "tensor"].iter().all(|e| runs.iter().any(|r| ok(r, e, m)))).collect();
    let mut out = Vec::new();
    for model in shared {
        let best = |engine: &str| {
            let bests: Vec<f64> =
                runs.iter().filter(|r| ok(r, engine, &model)).filter_map(best_valid_accuracy).collect();
            (!bests.is_empty()).then(|| Estimate::of(&bests))
        };
        let (spark_best, tensor_best) = (best("spark"), best("tensor"));
        let (target_accuracy, target_rule) = match (target, spark_best, tensor_best) {
            (Some(t), _, _) => (Some(t), "given (--target-accuracy)".to_owned()),
            (None, Some(s), Some(t)) => (
                Some(s.mean.min(t.mean) - TARGET_MARGIN),
                format!(
                    "the lower of the paradigms' best validation accuracy (spark {:.4}, tensor {:.4}, means over seeds) \
                     minus 0.5 pp",
                    s.mean, t.mean
                ),
            ),
            _ => (None, "none: the runs scored no validation rows (--valid-fraction 0)".to_owned()),
        };
        for r in runs.iter_mut().filter(|r| r.sweep.is_none() && r.scores.is_some() && r.model == model) {
            r.time_to_target_seconds = target_accuracy.and_then(|t| time_to(r, t));
        }
        let sides = ["spark", "tensor"]
            .iter()
            .map(|&engine| {
                let mine: Vec<&RunRecord> = runs.iter().filter(|r| ok(r, engine, &model)).collect();
                let of = |f: &dyn Fn(&RunRecord) -> f64| Estimate::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
                let times: Vec<f64> = mine.iter().filter_map(|r| r.time_to_target_seconds).collect();
                let bests: Vec<f64> = mine.iter().filter_map(|r| best_valid_accuracy(r)).collect();
                Side {
                    engine: engine.to_owned(),
                    runs: mine.len(),
                    reached: times.len(),
                    time_to_target_seconds: (!times.is_empty()).then(|| Estimate::of(&times)),
                    train_seconds: of(&|r| r.fit_seconds - r.eval_seconds),
                    iterations: of(&|r| r.iterations as f64),
                    best_valid_accuracy: (!bests.is_empty()).then(|| Estimate::of(&bests)),
                    accuracy: of(&|r| r.scores.as_ref().map_or(f64::NAN, |s| s.accuracy)),
                    f1: of(&|r| r.scores.as_ref().map_or(f64::NAN, |s| s.f1_macro)),
                    cpu_seconds: of(&|r| r.cpu_seconds),
                    cores_used: of(&|r| r.mean_cpu_percent / 100.0),
                    peak_rss_bytes: of(&|r| r.peak_rss_bytes as f64),
                    process_peak_rss_bytes: of(&|r| r.process_peak_rss_bytes as f64),
                }
            })
            .collect();
        out.push(FamilyComparison { model, target_accuracy, target_rule, sides });
    }
    out
}

/// Whether two estimates differ beyond the noise of the seeds, in words.
fn noise(a: &Estimate, b: &Estimate) -> &'static str {
    if a.n < 2 || b.n < 2 {
        "with a single value on a side there is no interval: rerun with --seeds 3 or more to know whether this is noise"
    } else if a.low <= b.high && b.low <= a.high {
        "inside the noise: the 95 % intervals overlap, so these seeds do not tell the two apart"
    } else {
        "beyond the noise: the 95 % intervals do not overlap"
    }
}

/// "spark 1.23 ± 0.05 s" style: the faster (lower) side first, with the ratio.
fn faster(model: &str, what: &str, a: (&str, &Estimate), b: (&str, &Estimate)) -> String {
    let (fast, slow) = if a.1.mean <= b.1.mean { (a, b) } else { (b, a) };
    format!(
        "{what}: {} {model} {} s, {} {model} {} s; {} is {:.2}× faster, {}.",
        fast.0,
        fast.1.show(2),
        slow.0,
        slow.1.show(2),
        fast.0,
        slow.1.mean / fast.1.mean.max(1e-12),
        noise(a.1, b.1)
    )
}

/// The models of `engine` outside the like-for-like comparisons.
fn unpaired(main: &[&Group], comparisons: &[FamilyComparison], engine: &str) -> Vec<String> {
    main.iter()
        .filter(|g| g.engine == engine && !comparisons.iter().any(|c| c.model == g.model))
        .map(|g| g.model.clone())
        .collect()
}

/// The four answers, in words: speed, accuracy and resources on the model families both
/// paradigms ran (same model, same rows, same cores), scaling from the sweeps.
pub fn answers(results: &Results) -> Vec<(String, String)> {
    let all = groups(&results.runs);
    let main: Vec<&Group> = all.iter().filter(|g| g.sweep.is_none() && g.ok > 0).collect();
    let comparisons = &results.comparisons;
    let mut out = Vec::new();
    let none = || {
        let list = |e: &str| {
            let m = unpaired(&main, comparisons, e);
            if m.is_empty() { "none".to_owned() } else { m.join(", ") }
        };
        format!(
            "No model family finished in both paradigms (spark: {}; tensor: {}), so there is no like-for-like answer; \
             different models are not compared here (see the table). Run the same model on both, e.g. \
             --runs spark:mlp,tensor:mlp.",
            list("spark"),
            list("tensor")
        )
    };
    let others = || {
        let (s, t) = (unpaired(&main, comparisons, "spark"), unpaired(&main, comparisons, "tensor"));
        if s.is_empty() && t.is_empty() {
            String::new()
        } else {
            format!(
                " Models only one paradigm has ({}) are in the table, not in this answer.",
                s.iter()
                    .map(|m| format!("spark {m}"))
                    .chain(t.iter().map(|m| format!("tensor {m}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let side = |c: &FamilyComparison, e: &str| c.sides.iter().find(|s| s.engine == e).cloned();

    let mut speed = Vec::new();
    for c in comparisons {
        let (Some(s), Some(t)) = (side(c, "spark"), side(c, "tensor")) else { continue };
        let mut parts = Vec::new();
        match (c.target_accuracy, &s.time_to_target_seconds, &t.time_to_target_seconds) {
            (Some(target), Some(a), Some(b)) => parts.push(format!(
                "{} Target: validation accuracy {target:.4} ({}); reached by {} of {} spark and {} of {} tensor runs.",
                faster(&c.model, "Time to target", ("spark", a), ("tensor", b)),
                c.target_rule,
                s.reached,
                s.runs,
                t.reached,
                t.runs
            )),
            (Some(target), a, b) => parts.push(format!(
                "Time to target (validation accuracy {target:.4}): {}.",
                [("spark", a, &s), ("tensor", b, &t)]
                    .iter()
                    .map(|(e, x, side)| match x {
                        Some(x) => format!("{e} {} s ({} of {} runs)", x.show(2), side.reached, side.runs),
                        None => format!("{e} never reached it"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (None, _, _) => parts.push(format!("No time to target: {}.", c.target_rule)),
        }
        parts.push(format!(
            "{} (spark {} iterations, tensor {} epochs; same training rows, same cores.)",
            faster(&c.model, "Whole fits", ("spark", &s.train_seconds), ("tensor", &t.train_seconds)),
            s.iterations.show(0),
            t.iterations.show(0)
        ));
        speed.push(format!("{}: {}", c.model.to_uppercase(), parts.join(" ")));
    }
    out.push((
        "Which trains faster?".into(),
        if speed.is_empty() { none() } else { format!("{}{}", speed.join(" "), others()) },
    ));

    let mut accuracy = Vec::new();
    for c in comparisons {
        let (Some(s), Some(t)) = (side(c, "spark"), side(c, "tensor")) else { continue };
        let (hi, lo) = if s.accuracy.mean >= t.accuracy.mean { (&s, &t) } else { (&t, &s) };
        accuracy.push(format!(
            "{}: test accuracy spark {} (F1 {}), tensor {} (F1 {}); {} is {:.2} percentage points higher, {}.",
            c.model.to_uppercase(),
            s.accuracy.show(4),
            s.f1.show(4),
            t.accuracy.show(4),
            t.f1.show(4),
            hi.engine,
            100.0 * (hi.accuracy.mean - lo.accuracy.mean),
            noise(&s.accuracy, &t.accuracy)
        ));
    }
    let best_any = ["spark", "tensor"]
        .iter()
        .filter_map(|e| {
            main.iter()
                .filter(|g| g.engine == *e)
                .max_by(|a, b| a.accuracy.mean.total_cmp(&b.accuracy.mean))
                .map(|g| format!("{e} {} {}", g.model, g.accuracy.show(4)))
        })
        .collect::<Vec<_>>();
    if !accuracy.is_empty() && best_any.len() == 2 {
        accuracy.push(format!("Best of each paradigm, any model: {}.", best_any.join("; ")));
    }
    out.push(("Which is more accurate?".into(), if accuracy.is_empty() { none() } else { accuracy.join(" ") }));

    let mut lean = Vec::new();
    for c in comparisons {
        let (Some(s), Some(t)) = (side(c, "spark"), side(c, "tensor")) else { continue };
        let less = |a: &Estimate, b: &Estimate| if a.mean <= b.mean { "spark" } else { "tensor" };
        lean.push(format!(
            "{}: peak memory during the fit spark {:.0} MiB, tensor {:.0} MiB ({} less; whole process {:.0} vs {:.0} MiB, \
             data loading included); CPU time per fit spark {} s, tensor {} s ({} less, {}), on {:.2} and {:.2} busy cores.",
            c.model.to_uppercase(),
            mib(s.peak_rss_bytes.mean),
            mib(t.peak_rss_bytes.mean),
            less(&s.peak_rss_bytes, &t.peak_rss_bytes),
            mib(s.process_peak_rss_bytes.mean),
            mib(t.process_peak_rss_bytes.mean),
            s.cpu_seconds.show(1),
            t.cpu_seconds.show(1),
            less(&s.cpu_seconds, &t.cpu_seconds),
            noise(&s.cpu_seconds, &t.cpu_seconds),
            s.cores_used.mean,
            t.cores_used.mean
        ));
    }
    out.push((
        "Which uses fewer resources?".into(),
        if lean.is_empty() {
            none()
        } else {
            format!(
                "{} Both engines run in one process on the same prepared rows, so the fit's peak (the data included) is \
                 what tells them apart.",
                lean.join(" ")
            )
        },
    ));
    out.push(("Which scales better?".into(), scaling_answer(&all)));
    out
}

fn scaling_answer(all: &[Group]) -> String {
    let sweeps: Vec<&Group> = all.iter().filter(|g| g.sweep.is_some() && g.ok > 0).collect();
    if sweeps.is_empty() {
        return "This study has no sweep; `trainbench scale` measures time against rows and speedup against workers."
            .into();
    }
    let mut parts = Vec::new();
    for (engine, model) in unique_models(&sweeps) {
        let mine: Vec<&&Group> = sweeps.iter().filter(|g| g.engine == engine && g.model == model).collect();
        let max_w = mine.iter().filter_map(|g| g.sweep).map(|s| s.workers).max().unwrap_or(1);
        let by_rows: Vec<(f64, f64)> = mine
            .iter()
            .filter(|g| g.sweep.is_some_and(|s| s.workers == max_w))
            .map(|g| (g.sweep.map_or(1.0, |s| s.fraction), g.fit_seconds.mean))
            .collect();
        let exp = power_law_exponent(&by_rows).map_or("n/a".into(), |e| format!("{e:.2}"));
        let t = |w: usize| {
            mine.iter()
                .find(|g| g.sweep.is_some_and(|s| s.workers == w && s.fraction == 1.0))
                .map(|g| g.fit_seconds.mean)
        };
        let speed = match (t(1), t(max_w)) {
            (Some(a), Some(b)) if max_w > 1 => format!(
                ", {max_w} workers {:.2}× faster than 1 (efficiency {:.0} %)",
                a / b,
                100.0 * a / b / max_w as f64
            ),
            _ => String::new(),
        };
        // How many cores each worker count kept busy: the check that a run had what it was given.
        let mut busy: Vec<(usize, f64)> = mine
            .iter()
            .filter_map(|g| g.sweep.filter(|s| s.fraction == 1.0).map(|s| (s.workers, g.cores_used.mean)))
            .collect();
        busy.sort_by_key(|b| b.0);
        let busy = if busy.is_empty() {
            String::new()
        } else {
            format!(
                " (cores busy: {})",
                busy.iter().map(|(w, c)| format!("{c:.2} of {w}")).collect::<Vec<_>>().join(", ")
            )
        };
        parts.push(format!("{engine} {model}: time ∝ rows^{exp}{speed}{busy}"));
    }
    format!(
        "{}. An exponent near 1 is linear; below 1, fixed costs dominate at these sizes. A run with W workers has W \
         cores for either engine.",
        parts.join("; ")
    )
}

fn unique_models(groups: &[&Group]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for g in groups {
        let k = (g.engine.clone(), g.model.clone());
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

fn html(results: &Results) -> String {
    let all = groups(&results.runs);
    let main: Vec<&Group> = all.iter().filter(|g| g.sweep.is_none()).collect();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>trainbench {}: Spark MLlib's paradigm vs TensorFlow/Keras's</h1><p class=meta>{} runs on {} ({} train / {} valid / {} test rows, {} features, {} classes) · {} · {} cores · {:.1} GiB · trainbench {} ({})</p>",
        esc(&results.command),
        results.runs.len(),
        esc(&results.data.source),
        results.data.train_rows,
        results.data.valid_rows,
        results.data.test_rows,
        results.data.features,
        results.data.classes.len(),
        esc(&results.machine.cpu_model),
        results.machine.cores,
        results.machine.memory_bytes as f64 / (1u64 << 30) as f64,
        esc(&results.trainbench_version),
        esc(&results.git_commit),
    );
    body.push_str("<h2>The answers</h2><dl>");
    for (q, a) in answers(results) {
        let _ = write!(body, "<dt>{}</dt><dd>{}</dd>", esc(&q), esc(&a));
    }
    body.push_str("</dl><p class=caveat>How it is measured: both engines train on the same prepared rows with the same cores (--workers: the threads of each fit's pool); training times leave out loading (prepared once for all runs) and the scoring of validation rows; time to target is MLPerf's rule, the training time until a run's validation accuracy first reaches the target; memory is the process's peak during the fit (the prepared data included) and, beside it, the whole process's peak as a lone run would reach it. The spark engine is trainbench's embedded Spark-MLlib engine (MLlib's algorithms, Breeze's L-BFGS and stopping rule, threads over partitions, no JVM); the tensor engine runs Burn's CPU (flex) backend.</p>");
    if !results.comparisons.is_empty() {
        body.push_str("<h2>Like for like</h2><table><tr><th>model</th><th>engine</th><th>runs</th><th>time to target s</th><th>reached</th><th>training s</th><th>iterations / epochs</th><th>best valid accuracy</th><th>test accuracy</th><th>F1</th><th>CPU s</th><th>cores busy</th><th>peak MiB (fit)</th><th>peak MiB (process)</th></tr>");
        for c in &results.comparisons {
            for side in &c.sides {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.0}</td><td>{:.0}</td></tr>",
                    esc(&c.model),
                    esc(&side.engine),
                    side.runs,
                    side.time_to_target_seconds.map_or("-".into(), |e| e.show(2)),
                    side.reached,
                    side.train_seconds.show(2),
                    side.iterations.show(0),
                    side.best_valid_accuracy.map_or("-".into(), |e| e.show(4)),
                    side.accuracy.show(4),
                    side.f1.show(4),
                    side.cpu_seconds.show(1),
                    side.cores_used.mean,
                    mib(side.peak_rss_bytes.mean),
                    mib(side.process_peak_rss_bytes.mean),
                );
            }
            let _ = write!(
                body,
                "<tr><td colspan=14 class=note>{} target: {} — {}</td></tr>",
                esc(&c.model),
                c.target_accuracy.map_or("none".into(), |t| format!("{t:.4}")),
                esc(&c.target_rule)
            );
        }
        body.push_str("</table>");
    }

    body.push_str("<h2>Summary</h2><table><tr><th>engine</th><th>model</th><th>runs</th><th>fit s</th><th>iterations / epochs</th><th>s/epoch</th><th>rows/s</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>AUC</th><th>CPU s</th><th>cores busy</th><th>peak MiB (fit)</th><th>peak MiB (process)</th></tr>");
    for g in &all {
        let sweep = g.sweep.map_or(String::new(), |s| format!(" (×{} rows, {} workers)", s.fraction, s.workers));
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.0}</td><td>{:.0}</td></tr>",
            esc(&g.engine),
            esc(&g.model),
            sweep,
            g.ok,
            if g.failed > 0 { format!(" ({} failed)", g.failed) } else { String::new() },
            g.fit_seconds.show(2),
            g.iterations.show(0),
            g.epoch_seconds.map_or("-".into(), |e| e.show(2)),
            g.rows_per_second.mean,
            g.accuracy.show(4),
            g.precision.show(4),
            g.recall.show(4),
            g.f1.show(4),
            g.auc.map_or("-".into(), |e| e.show(4)),
            g.cpu_seconds.mean,
            g.cores_used.mean,
            mib(g.peak_rss_bytes.mean),
            mib(g.process_peak_rss_bytes.mean),
        );
    }
    body.push_str("</table>");
    let failed: Vec<&RunRecord> = results.runs.iter().filter(|r| r.scores.is_none()).collect();
    if !failed.is_empty() {
        body.push_str("<h3>Failed runs</h3><ul>");
        for r in failed {
            let _ = write!(body, "<li>{}: {}</li>", esc(&r.id), esc(r.error.as_deref().unwrap_or("unknown")));
        }
        body.push_str("</ul>");
    }

    let series_of = |g: &Group| usize::from(g.engine == "tensor");
    let bars = |f: &dyn Fn(&Group) -> Estimate| -> Vec<Bar> {
        main.iter()
            .filter(|g| g.ok > 0)
            .map(|g| {
                let e = f(g);
                Bar {
                    label: g.name(),
                    value: e.mean,
                    interval: (e.n > 1).then_some((e.low, e.high)),
                    series: series_of(g),
                }
            })
            .collect()
    };
    body.push_str("<h2>Accuracy and F1</h2><p>Test rows; bars show the mean over seeds and, with several seeds, the 95 % interval. Blue: spark, orange: tensor.</p>");
    body.push_str(&bar_chart("chart-accuracy", "Test accuracy", "accuracy", &bars(&|g| g.accuracy), false));
    body.push_str(&bar_chart("chart-f1", "Test macro F1", "F1", &bars(&|g| g.f1), false));
    body.push_str("<h2>Training time</h2>");
    body.push_str(&bar_chart("chart-fit-time", "Fit time", "seconds", &bars(&|g| g.fit_seconds), true));

    // One run per (engine, model): the first seed's, for the curves.
    let mut firsts: Vec<&RunRecord> = Vec::new();
    for r in results.runs.iter().filter(|r| r.sweep.is_none() && r.scores.is_some()) {
        if !firsts.iter().any(|f| f.engine == r.engine && f.model == r.model) {
            firsts.push(r);
        }
    }
    let name = |r: &RunRecord| format!("{} {}", r.engine, r.model);
    let loss: Vec<Series> = firsts
        .iter()
        .map(|r| Series { name: name(r), points: r.log.iter().map(|e| (e.elapsed_seconds, e.loss)).collect() })
        .collect();
    body.push_str("<h2>Loss curves</h2><p>Training loss after each iteration (spark) or epoch (tensor), against wall time (log scale); for trees, the weighted impurity of the leaves after each level.</p>");
    body.push_str(&line_chart("chart-loss", "Training loss", ("seconds", "loss"), &loss, (true, false), false));
    let tta: Vec<Series> = firsts
        .iter()
        .map(|r| {
            let pts: Vec<(f64, f64)> =
                r.log.iter().filter_map(|e| e.valid_accuracy.map(|a| (e.elapsed_seconds, a))).collect();
            Series { name: name(r), points: pts }
        })
        .collect();
    body.push_str("<h2>Time to accuracy</h2><p>Validation accuracy after each iteration or level (spark) and epoch (tensor) against training seconds (validation scoring left out), first seed of each model; the like-for-like table gives the time to target over seeds.</p>");
    body.push_str(&line_chart(
        "chart-time-to-accuracy",
        "Accuracy against time",
        ("seconds", "accuracy"),
        &tta,
        (true, false),
        false,
    ));
    let res = |f: fn(&ResourceSample) -> f64| -> Vec<Series> {
        firsts
            .iter()
            .map(|r| Series { name: name(r), points: r.resources.iter().map(|s| (s.t_seconds, f(s))).collect() })
            .collect()
    };
    body.push_str("<h2>CPU and memory during the fit</h2>");
    body.push_str(&line_chart(
        "chart-cpu",
        "CPU use",
        ("seconds", "% of one core"),
        &res(|s| s.cpu_percent),
        (false, false),
        false,
    ));
    body.push_str(&line_chart(
        "chart-rss",
        "Resident memory",
        ("seconds", "MiB"),
        &res(|s| mib(s.rss_bytes as f64)),
        (false, false),
        false,
    ));

    if results.runs.iter().any(|r| r.sweep.is_some()) {
        let sweeps: Vec<&Group> = all.iter().filter(|g| g.sweep.is_some() && g.ok > 0).collect();
        let models = unique_models(&sweeps);
        let rows_series: Vec<Series> = models
            .iter()
            .map(|(e, m)| {
                let mine: Vec<&&Group> = sweeps.iter().filter(|g| &g.engine == e && &g.model == m).collect();
                let max_w = mine.iter().filter_map(|g| g.sweep).map(|s| s.workers).max().unwrap_or(1);
                let mut pts: Vec<(f64, f64)> = mine
                    .iter()
                    .filter(|g| g.sweep.is_some_and(|s| s.workers == max_w))
                    .map(|g| (g.sweep.map_or(1.0, |s| s.fraction) * results.data.train_rows as f64, g.fit_seconds.mean))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { name: format!("{e} {m}"), points: pts }
            })
            .collect();
        let worker_series: Vec<Series> = models
            .iter()
            .map(|(e, m)| {
                let mine: Vec<&&Group> = sweeps
                    .iter()
                    .filter(|g| &g.engine == e && &g.model == m && g.sweep.is_some_and(|s| s.fraction == 1.0))
                    .collect();
                let base = mine.iter().find(|g| g.sweep.is_some_and(|s| s.workers == 1)).map(|g| g.fit_seconds.mean);
                let mut pts: Vec<(f64, f64)> = mine
                    .iter()
                    .filter_map(|g| base.map(|b| (g.sweep.map_or(1, |s| s.workers) as f64, b / g.fit_seconds.mean)))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { name: format!("{e} {m}"), points: pts }
            })
            .collect();
        body.push_str("<h2>Scaling</h2>");
        body.push_str(&line_chart(
            "chart-scale-rows",
            "Fit time against training rows",
            ("training rows", "seconds"),
            &rows_series,
            (true, true),
            false,
        ));
        body.push_str(&line_chart(
            "chart-scale-workers",
            "Speedup against workers",
            ("workers / replicas", "speedup over 1"),
            &worker_series,
            (false, false),
            false,
        ));
    }

    body.push_str("<h2>Confusion matrices</h2><div class=grid>");
    for r in &firsts {
        let Some(s) = &r.scores else { continue };
        let _ =
            write!(body, "<table class=confusion><caption>{}</caption><tr><th>true \\ predicted</th>", esc(&name(r)));
        for c in &results.data.classes {
            let _ = write!(body, "<th>{}</th>", esc(c));
        }
        body.push_str("</tr>");
        for (c, row) in results.data.classes.iter().zip(&s.confusion) {
            let _ = write!(body, "<tr><th>{}</th>", esc(c));
            for v in row {
                let _ = write!(body, "<td>{v}</td>");
            }
            body.push_str("</tr>");
        }
        body.push_str("</table>");
    }
    body.push_str("</div>");

    format!(
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>trainbench report</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f4f4f4}td:first-child,td:nth-child(2){text-align:left}.meta,.caveat{color:#555}\
dt{font-weight:bold;margin-top:.6em}svg.chart{display:block;margin:1em 0;background:#fff}\
svg .title{font-size:15px;font-weight:bold}svg .tick,svg .legend,svg .value{font-size:11px}svg .label{font-size:12px}\
.grid{display:flex;flex-wrap:wrap;gap:1em}table.confusion caption{font-weight:bold}td.note{text-align:left;color:#555}";
