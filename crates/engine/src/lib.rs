//! The contract every trainbench engine implements.
//!
//! An engine takes prepared rows (from `trainbench-data`, the same rows for every engine) and a
//! model specification, trains, and returns a model that gives class probabilities, plus a log of
//! the training. Scoring is not the engine's business: the shared metrics crate scores every
//! engine's probabilities the same way.
#![warn(missing_docs)]

use std::path::Path;

use serde::{Deserialize, Serialize};
use trainbench_data::Prepared;

/// What went wrong in an engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is outside its valid range; says which, what was given and what is allowed.
    #[error("invalid parameter {name} = {value}: {expected}")]
    InvalidParam {
        /// Parameter name as the user writes it.
        name: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// Training stopped because the loss became NaN or infinite.
    #[error("training diverged at iteration {iteration}: loss is {loss}")]
    Diverged {
        /// Iteration (or epoch) where it happened.
        iteration: usize,
        /// The loss value.
        loss: f64,
    },
    /// The data cannot be used (one class, non-finite values, wrong width).
    #[error("bad training data: {0}")]
    Data(String),
    /// Reading or writing a model file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The models trainbench knows, across engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Logistic regression.
    Lr,
    /// Decision tree.
    Tree,
    /// Multilayer perceptron.
    Mlp,
    /// 1-D convolutional network over the feature vector.
    Cnn,
    /// LSTM recurrent network.
    Lstm,
    /// GRU recurrent network.
    Gru,
    /// 2-D convolutional network over images.
    Cnn2d,
}

/// Run-wide settings an engine honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    /// Parallel workers (spark: threads over partitions; tensor: replicas).
    pub workers: usize,
    /// Seed for every random choice the engine makes.
    pub seed: u64,
}

/// One entry of a training log: an iteration (spark) or an epoch (tensor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Iteration or epoch number, from 1.
    pub step: usize,
    /// Training loss after this step.
    pub loss: f64,
    /// Validation loss, where a validation set was given.
    pub valid_loss: Option<f64>,
    /// Wall seconds since training started.
    pub elapsed_seconds: f64,
}

/// What happened during training, kept with the model for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    /// One entry per iteration or epoch.
    pub entries: Vec<LogEntry>,
    /// Wall seconds of the whole fit.
    pub fit_seconds: f64,
}

/// A trained model.
pub trait TrainedModel: Send + Sync {
    /// Number of classes it predicts.
    fn classes(&self) -> usize;

    /// Probabilities, `rows × classes` row-major, for `rows × n_features` row-major features.
    fn predict_proba(&self, features: &[f32], n_features: usize) -> Result<Vec<f32>>;

    /// Writes the model to `path`.
    fn save(&self, path: &Path) -> Result<()>;
}

/// A training paradigm: Spark MLlib's or TensorFlow/Keras's.
pub trait Engine {
    /// The engine's name ("spark", "tensor").
    fn name(&self) -> &'static str;

    /// Trains `model` on `train`, using `valid` (possibly empty) where the model has a use for it.
    fn fit(
        &self,
        model: ModelKind,
        train: &Prepared,
        valid: &Prepared,
        ctx: &RunContext,
    ) -> Result<(Box<dyn TrainedModel>, TrainLog)>;
}
