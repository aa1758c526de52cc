//! One training run, timed, measured and scored the same way for every command (`train`,
//! `compare`, `scale`, `tune`): fit with resource sampling, predict the test rows, score with
//! the shared metrics, and record it all as a [`RunRecord`].

use std::time::{Duration, Instant};

use anyhow::Result;
use trainbench_data::Prepared;
use trainbench_engine::{Engine, EngineKind, ModelSpec, Precision, RunContext, TrainLog, TrainedModel};
use trainbench_metrics::{ClassificationReport, ResourceSampler, ResourceSummary};

use crate::progress::LiveProgress;
use crate::results::{RunRecord, RunStatus, Scores, SweepPoint};

/// A run failed after it started (exit code 1), as opposed to a command that could not start
/// one because of its input (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunFailed(pub String);

/// An engine's error, as the command reports it: bad parameters and bad data are the user's to
/// fix (exit 2); anything else is a run that failed (exit 1).
pub fn engine_error(e: trainbench_engine::Error) -> anyhow::Error {
    use trainbench_engine::Error;
    match e {
        Error::InvalidParam { .. } | Error::Data(_) => e.into(),
        other => anyhow::Error::new(RunFailed(other.to_string())),
    }
}

/// What a run is before it starts: where it sits and how it is configured.
pub struct RunPlan<'a> {
    /// `engine/model/seedS` (plus the sweep point).
    pub id: String,
    /// The engine.
    pub engine: EngineKind,
    /// The model and its parameters.
    pub spec: &'a ModelSpec,
    /// Cores, partitions, replicas, seed.
    pub ctx: RunContext,
    /// The arithmetic.
    pub precision: Precision,
    /// Where it sits in a sweep.
    pub sweep: Option<SweepPoint>,
}

impl RunPlan<'_> {
    /// The record of this run before it ran: failed until filled in.
    pub fn record(&self, train_rows: usize) -> RunRecord {
        RunRecord {
            id: self.id.clone(),
            engine: self.engine.name().to_owned(),
            model: self.spec.kind.name().to_owned(),
            seed: self.ctx.seed,
            workers: self.ctx.workers,
            processes: trainbench_engine::collective::world().size(),
            replicas: (self.engine == EngineKind::Tensor).then(|| self.ctx.replicas_or_workers()),
            partitions: (self.engine == EngineKind::Spark).then(|| self.ctx.partitions_or_default()),
            precision: self.precision.name().to_owned(),
            train_rows,
            params: self.spec.params.as_text(),
            sweep: self.sweep,
            status: RunStatus::Failed,
            error: None,
            fit_seconds: 0.0,
            eval_seconds: 0.0,
            predict_seconds: 0.0,
            epoch_seconds: Vec::new(),
            iterations: 0,
            evaluations: None,
            time_to_target_seconds: None,
            rows_per_second: 0.0,
            cpu_seconds: 0.0,
            mean_cpu_percent: 0.0,
            peak_rss_bytes: 0,
            process_peak_rss_bytes: 0,
            scores: None,
            stop_reason: String::new(),
            resumed_epochs: None,
            communication_seconds: None,
            log: Vec::new(),
            resources: Vec::new(),
            cluster: None,
        }
    }
}

/// A run that trained: its record, the model, and the full test-row report.
pub struct Trained {
    /// What a study keeps of the run.
    pub record: RunRecord,
    /// The model.
    pub model: Box<dyn TrainedModel>,
    /// Its training log, as a saved model keeps it.
    pub log: TrainLog,
    /// The test rows' scores, per class included.
    pub report: ClassificationReport,
}

/// Training rows per second of fit: rows × passes (the tensor engine's epochs; one for a spark
/// fit, whose iterations each read every row but produce one model), the one definition every
/// table uses.
pub fn rows_per_second(train_rows: usize, epochs: usize, fit_seconds: f64) -> f64 {
    (train_rows * epochs.max(1)) as f64 / fit_seconds.max(1e-9)
}

/// Trains `plan` with `engine` on `train` (early stopping on `valid`) and scores it on `test`,
/// showing the fit's progress in `progress`. `prepare_peak_rss_bytes` is the process's peak
/// while the data were loaded and prepared ([`trainbench_metrics::process_peak_rss`] read before
/// the first fit).
pub fn fit_and_score(
    engine: &dyn Engine,
    plan: &RunPlan,
    (train, valid, test): (&Prepared, &Prepared, &Prepared),
    prepare_peak_rss_bytes: u64,
    progress: &LiveProgress,
) -> Result<Trained> {
    let sampler = ResourceSampler::start(Duration::from_millis(50));
    let started = Instant::now();
    let fitted = engine.fit_with_progress(plan.spec, train, valid, &plan.ctx, progress);
    let fit_seconds = started.elapsed().as_secs_f64();
    let fit_resources = sampler.stop();
    let (model, log) = fitted.map_err(engine_error)?;
    progress.finish(&log);
    let started = Instant::now();
    let proba = model.predict_proba(&test.features).map_err(engine_error)?;
    let predict_seconds = started.elapsed().as_secs_f64();
    let report = ClassificationReport::from_proba(&test.labels, &proba, test.classes())
        .map_err(|e| RunFailed(format!("scoring the test rows: {e}")))?;
    // The high-water mark was reset when the fit started: it now covers the fit and the predictions.
    let process_peak =
        prepare_peak_rss_bytes.max(fit_resources.peak_rss_bytes).max(trainbench_metrics::process_peak_rss());
    let mut record = plan.record(train.rows());
    fill(&mut record, &log, fit_seconds, predict_seconds, &fit_resources, process_peak);
    record.scores = Some(Scores::from_report(&report));
    Ok(Trained { record, model, log, report })
}

/// The fit's measurements into `record`.
fn fill(
    record: &mut RunRecord,
    log: &TrainLog,
    fit_seconds: f64,
    predict_seconds: f64,
    resources: &ResourceSummary,
    process_peak_rss_bytes: u64,
) {
    let epochs: Vec<f64> = log.entries.iter().filter_map(|e| e.extra.get("epoch_seconds").copied()).collect();
    record.status = RunStatus::Ok;
    record.fit_seconds = fit_seconds;
    record.eval_seconds = log.eval_seconds;
    record.predict_seconds = predict_seconds;
    record.rows_per_second = rows_per_second(record.train_rows, epochs.len(), fit_seconds);
    record.epoch_seconds = epochs;
    record.iterations = log.entries.len();
    record.evaluations = log.entries.last().and_then(|e| e.extra.get("evaluations")).map(|&n| n as u64);
    record.cpu_seconds = resources.cpu_seconds;
    // Over the fit's own seconds, so cores used = CPU seconds / fit seconds exactly.
    record.mean_cpu_percent = 100.0 * resources.cpu_seconds / fit_seconds.max(1e-9);
    record.peak_rss_bytes = resources.peak_rss_bytes;
    record.process_peak_rss_bytes = process_peak_rss_bytes;
    record.stop_reason = log.stop_reason.clone();
    record.resumed_epochs = log.resumed_epochs;
    record.communication_seconds = log.communication_seconds;
    record.log = log.entries.clone();
    record.resources = resources.samples.clone();
}
