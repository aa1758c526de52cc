//! Engines from their kind ([`EngineKind`], the registry in `trainbench-engine`) and the run's
//! options: the one place the CLI builds one.

use trainbench_engine::{Engine, EngineKind};
use trainbench_engine_spark::SparkEngine;
use trainbench_engine_tensor::TensorEngine;

use crate::args::RunArgs;

/// The engine of `kind`, with the run options that concern it.
pub fn build(kind: EngineKind, run: &RunArgs) -> Box<dyn Engine> {
    match kind {
        EngineKind::Spark => Box::new(SparkEngine),
        EngineKind::Tensor => Box::new(TensorEngine::new(run.tensor_options())),
    }
}
