//! The `spark` engine: Spark MLlib's algorithms and execution model, embedded.
//!
//! Training rows are cut into partitions; every iteration each partition computes its part
//! (loss and gradient, or split statistics) on a pool of `workers` threads, the parts are
//! combined by a tree aggregation in a fixed order, and the driver updates the model — the
//! bulk-synchronous pattern of MLlib's `treeAggregate`. Defaults are MLlib's.
//!
//! # Example
//!
//! ```
//! use trainbench_data::Prepared;
//! use trainbench_engine::{Engine, ModelKind, ModelSpec, RunContext};
//! use trainbench_engine_spark::SparkEngine;
//!
//! // y = 1 exactly when x > 0, with some overlap so the optimum is finite.
//! let xs: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) / 50.0).collect();
//! let labels: Vec<u32> = xs.iter().enumerate().map(|(i, &x)| u32::from(x > 0.0) ^ u32::from(i % 10 == 0)).collect();
//! let train = Prepared {
//!     features: xs.into(),
//!     n_features: 1,
//!     labels: labels.into(),
//!     feature_names: vec!["x".into()],
//!     class_names: vec!["neg".into(), "pos".into()],
//!     categorical_features: vec![],
//! };
//! let spec = ModelSpec::new(ModelKind::Lr);
//! let ctx = RunContext { partitions: 4, ..RunContext::new(2, 1) };
//! let (model, log) = SparkEngine.fit(&spec, &train, &train.take(&[]), &ctx).unwrap();
//! let p = model.predict_proba(&[1.5, -1.5]).unwrap();
//! assert!(p[1] > 0.5 && p[3] < 0.5);
//! assert!(!log.entries.is_empty());
//! ```
#![warn(missing_docs)]

#[cfg(feature = "connect")]
pub mod connect;
mod executor;
mod logistic;
mod mlp;
mod optim;
mod params;
mod tree;

use trainbench_data::{Partitioning, Prepared};
use trainbench_engine::{
    Engine, EngineKind, Error, ModelKind, ModelSpec, Progress, Result, RunContext, TrainLog, TrainedModel,
    check_finite, collective,
};

pub use executor::Executor;
pub use logistic::LogisticModel;
pub use mlp::MlpModel;
pub use params::{BYTES_PER_WEIGHT, Impurity, LrParams, MAX_MLP_WEIGHTS, MlpParams, MlpSolver, TreeParams};
pub use tree::{FeatureSplits, Node, Rule, TreeModel, continuous_thresholds};

/// The per-partition passes that take most of the training time, public so the criterion
/// benchmarks in `bench/kernels/spark_kernels.rs` time the same code the engine runs.
pub mod kernels {
    pub use crate::logistic::loss_gradient_sums as lr_loss_gradient_sums;
    pub use crate::mlp::{MlpWorkspace, Network as MlpNetwork};
    pub use crate::tree::add_bin_counts as tree_bin_counts;
}

/// Spark MLlib's paradigm, embedded: partitions on a thread pool, tree aggregation per iteration.
#[derive(Debug, Clone, Copy, Default)]
pub struct SparkEngine;

impl Engine for SparkEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Spark
    }

    fn fit_with_progress(
        &self,
        spec: &ModelSpec,
        train: &Prepared,
        valid: &Prepared,
        ctx: &RunContext,
        progress: &dyn Progress,
    ) -> Result<(Box<dyn TrainedModel>, TrainLog)> {
        if train.rows() == 0 {
            return Err(Error::Data("no training rows".into()));
        }
        EngineKind::Spark.check_model(spec.kind)?;
        check_finite(train)?;
        let classes = train.classes();
        // Every model here needs two classes to tell apart; say so once, before any work.
        let present = train.class_counts().iter().filter(|&&c| c > 0).count();
        if present < 2 {
            return Err(Error::Data(format!(
                "{} needs training rows of at least 2 classes; they have {present}",
                spec.kind.name()
            )));
        }
        // Under mpirun every rank prepared its own copy of the rows: they must be the same.
        collective::check_same_data(train)?;
        let mark = collective::communication_mark();
        let exec = Executor::new(ctx.workers)?;
        let partitions = ctx.partitions_or_default();
        let data = train.partitioned(partitions, Partitioning::Contiguous);
        // Validation rows, where given, are scored after every iteration or level (for the
        // report's time to accuracy); that time is kept out of the log's training times.
        let valid = (valid.rows() > 0).then_some(valid);
        if let Some(v) = valid {
            check_finite(v)?;
        }
        let (model, mut log): (Box<dyn TrainedModel>, TrainLog) = match spec.kind {
            ModelKind::Lr => {
                let p = LrParams::from_params(&spec.params)?;
                let (m, log) = logistic::fit(&exec, &data, classes, &p, valid, progress)?;
                (Box::new(m), log)
            }
            ModelKind::Tree => {
                let p = TreeParams::from_params(&spec.params)?;
                let (m, log) = tree::fit(&exec, &data, &p, ctx.seed, valid, progress)?;
                (Box::new(m), log)
            }
            ModelKind::Mlp => {
                let p = MlpParams::from_params(&spec.params)?;
                let (m, log) = mlp::fit(&exec, &data, classes, &p, ctx.seed, valid, progress)?;
                (Box::new(m), log)
            }
            other => {
                return Err(EngineKind::Spark.check_model(other).err().unwrap_or_else(|| unreachable_model(other)));
            }
        };
        log.communication_seconds = collective::communication_since(mark);
        Ok((model, log))
    }

    fn load_model(&self, kind: ModelKind, state: &serde_json::Value) -> Result<Box<dyn TrainedModel>> {
        let bad = |e: serde_json::Error| Error::ModelState(format!("saved {} model is malformed: {e}", kind.name()));
        Ok(match kind {
            ModelKind::Lr => Box::new(serde_json::from_value::<LogisticModel>(state.clone()).map_err(bad)?),
            ModelKind::Tree => Box::new(serde_json::from_value::<TreeModel>(state.clone()).map_err(bad)?),
            ModelKind::Mlp => Box::new(serde_json::from_value::<MlpModel>(state.clone()).map_err(bad)?),
            other => {
                return Err(EngineKind::Spark.check_model(other).err().unwrap_or_else(|| unreachable_model(other)));
            }
        })
    }
}

/// Mean cross-entropy and accuracy of `model` on validation rows (NaN if it cannot predict them).
fn validation_scores(model: &dyn TrainedModel, valid: &Prepared) -> (f64, f64) {
    match model.predict_proba(&valid.features) {
        Ok(proba) => trainbench_engine::score_probabilities(&proba, &valid.labels, model.classes()),
        Err(_) => (f64::NAN, f64::NAN),
    }
}

/// A model the engine lists but does not dispatch: a bug here, reported as an error anyway.
fn unreachable_model(kind: ModelKind) -> Error {
    Error::ModelState(format!("the spark engine lists '{}' but has no code for it", kind.name()))
}

/// A model's state as JSON.
fn encode(model: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(model).map_err(|e| Error::ModelState(format!("cannot encode the model: {e}")))
}
