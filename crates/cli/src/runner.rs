//! One training run, timed and scored the same way for every command (`train`, `compare`,
//! `scale`): fit with resource sampling, predict the test rows, score with the shared metrics.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use trainbench_data::Prepared;
use trainbench_engine::{Engine, ModelSpec, RunContext, TrainLog, TrainedModel};
use trainbench_metrics::{ClassificationReport, ResourceSampler, ResourceSummary};

/// What a run produced.
pub struct RunOutcome {
    /// The trained model.
    pub model: Box<dyn TrainedModel>,
    /// Its training log.
    pub log: TrainLog,
    /// Test-row scores.
    pub report: ClassificationReport,
    /// CPU and memory during the fit (its peak: this fit's, data already in memory included).
    pub fit_resources: ResourceSummary,
    /// The whole process's peak as a `train` of this run alone would reach it: the largest of the
    /// peaks while loading and preparing the data, during the fit, and while predicting.
    pub process_peak_rss_bytes: u64,
    /// Wall seconds of the fit.
    pub fit_seconds: f64,
    /// Wall seconds to predict the test rows.
    pub predict_seconds: f64,
}

/// Trains `spec` with `engine` on `train` (early stopping on `valid`) and scores it on `test`.
/// `prepare_peak_rss_bytes` is the process's peak while the data were loaded and prepared
/// ([`trainbench_metrics::process_peak_rss`] read before the first fit).
pub fn fit_and_score(
    engine: &dyn Engine,
    spec: &ModelSpec,
    data: (&Prepared, &Prepared, &Prepared),
    ctx: &RunContext,
    prepare_peak_rss_bytes: u64,
) -> Result<RunOutcome> {
    let (train, valid, test) = data;
    let sampler = ResourceSampler::start(Duration::from_millis(50));
    let started = Instant::now();
    let fitted = engine.fit(spec, train, valid, ctx);
    let fit_seconds = started.elapsed().as_secs_f64();
    let fit_resources = sampler.stop();
    let (model, log) = fitted.with_context(|| format!("{} {} did not train", engine.name(), spec.kind.name()))?;
    let started = Instant::now();
    let proba = model.predict_proba(&test.features)?;
    let predict_seconds = started.elapsed().as_secs_f64();
    let report =
        ClassificationReport::from_proba(&test.labels, &proba, test.classes()).context("scoring the test rows")?;
    // The high-water mark was reset when the fit started: it now covers the fit and the predictions.
    let process_peak_rss_bytes =
        prepare_peak_rss_bytes.max(fit_resources.peak_rss_bytes).max(trainbench_metrics::process_peak_rss());
    Ok(RunOutcome { model, log, report, fit_resources, process_peak_rss_bytes, fit_seconds, predict_seconds })
}
