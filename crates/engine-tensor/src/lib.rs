//! The tensor engine: deep learning the way TensorFlow/Keras trains, on Burn.
//!
//! Mini-batches come from a shuffling, prefetching input pipeline ([`pipeline`]); each global
//! batch is split over the run's replicas (one per worker by default) whose gradients are summed
//! before one optimizer step, all on a pool of the run's `workers` threads ([`train`]); models are built with Keras's layer defaults
//! ([`model`]); per-epoch scalars go to TensorBoard event files ([`tensorboard`]).
#![warn(missing_docs)]

mod exchange;
pub mod fused;
pub mod model;
pub mod params;
pub mod pipeline;
pub mod tensorboard;
pub mod train;

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use trainbench_data::Prepared;
use trainbench_engine::{
    Engine, EngineKind, Error, ModelKind, ModelSpec, Progress, Result, RunContext, TrainLog, TrainedModel,
};

use crate::model::Net;
use crate::params::Architecture;
pub use crate::train::{Backend, TrainOptions};
pub use trainbench_engine::Precision;

/// The tensor engine with its run options.
#[derive(Debug, Clone, Default)]
pub struct TensorEngine {
    /// Precision, device, TensorBoard and checkpoint settings.
    pub options: TrainOptions,
}

impl TensorEngine {
    /// An engine with `options`.
    pub fn new(options: TrainOptions) -> Self {
        Self { options }
    }
}

/// A trained network, ready to predict on the CPU.
pub struct TensorModel {
    net: Net,
    device: Device,
}

#[derive(Serialize, Deserialize)]
struct SavedNet {
    architecture: Architecture,
    weights: String,
}

/// A saved network's parameters, for export (ONNX).
pub fn exported_net(state: &serde_json::Value) -> Result<model::ExportedNet> {
    let saved: SavedNet = serde_json::from_value(state.clone())
        .map_err(|e| Error::ModelState(format!("not a tensor-engine model: {e}")))?;
    let device = Device::flex();
    train::decode_weights(Net::new(&saved.architecture, &device)?, &saved.weights)?.export()
}

impl TensorModel {
    /// The network's architecture.
    pub fn architecture(&self) -> &Architecture {
        self.net.architecture()
    }
}

impl TrainedModel for TensorModel {
    fn classes(&self) -> usize {
        self.net.architecture().classes
    }

    fn n_features(&self) -> usize {
        self.net.architecture().n_features
    }

    fn predict_proba(&self, features: &[f32]) -> Result<Vec<f32>> {
        let d = self.n_features();
        if !features.len().is_multiple_of(d) {
            return Err(Error::Data(format!("{} values are not whole rows of {d} features", features.len())));
        }
        Ok(train::predict_proba(&self.net, features, d, &self.device))
    }

    fn to_json(&self) -> Result<serde_json::Value> {
        let weights = train::encode_weights(&self.net)?;
        serde_json::to_value(SavedNet { architecture: self.architecture().clone(), weights })
            .map_err(|e| Error::ModelState(format!("cannot encode the model: {e}")))
    }
}

impl Engine for TensorEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tensor
    }

    fn fit_with_progress(
        &self,
        spec: &ModelSpec,
        train: &Prepared,
        valid: &Prepared,
        ctx: &RunContext,
        progress: &dyn Progress,
    ) -> Result<(Box<dyn TrainedModel>, TrainLog)> {
        let classes = train.class_names.len();
        if train.labels.is_empty() {
            return Err(Error::Data("no training rows".into()));
        }
        if classes < 2 {
            return Err(Error::Data(format!("the label has {classes} class; at least 2 are needed")));
        }
        EngineKind::Tensor.check_model(spec.kind)?;
        let (arch, params) = params::parse(spec.kind, &spec.params, train.n_features, classes)?;
        let (net, log) = train::fit(&arch, &params, train, valid, ctx, &self.options, progress)?;
        // Predictions run on the CPU whatever the training device, like a saved Keras model
        // loaded for inference.
        let device = Device::flex();
        let net = net.to_device(&device);
        Ok((Box::new(TensorModel { net, device }), log))
    }

    fn load_model(&self, kind: ModelKind, state: &serde_json::Value) -> Result<Box<dyn TrainedModel>> {
        let saved: SavedNet = serde_json::from_value(state.clone())
            .map_err(|e| Error::ModelState(format!("not a tensor-engine model: {e}")))?;
        if saved.architecture.kind != kind {
            return Err(Error::ModelState(format!(
                "the model file holds a {} network, not {}",
                saved.architecture.kind.name(),
                kind.name()
            )));
        }
        let device = Device::flex();
        let net = train::decode_weights(Net::new(&saved.architecture, &device)?, &saved.weights)?;
        Ok(Box::new(TensorModel { net, device }))
    }
}
