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
    /// CPU and memory during the fit.
    pub fit_resources: ResourceSummary,
    /// Wall seconds of the fit.
    pub fit_seconds: f64,
    /// Wall seconds to predict the test rows.
    pub predict_seconds: f64,
}

/// Trains `spec` with `engine` on `train` (early stopping on `valid`) and scores it on `test`.
pub fn fit_and_score(
    engine: &dyn Engine,
    spec: &ModelSpec,
    train: &Prepared,
    valid: &Prepared,
    test: &Prepared,
    ctx: &RunContext,
) -> Result<RunOutcome> {
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
    Ok(RunOutcome { model, log, report, fit_resources, fit_seconds, predict_seconds })
}
