//! The contract every trainbench engine implements.
//!
//! An engine takes prepared rows (from `trainbench-data`, the same rows for every engine) and a
//! model specification, trains, and returns a model that gives class probabilities, plus a log of
//! the training. Scoring is not the engine's business: the shared metrics crate scores every
//! engine's probabilities the same way.
#![warn(missing_docs)]

pub mod fastmath;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use trainbench_data::{FittedPreprocessor, Prepared};

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

impl ModelKind {
    /// Every model, in the order the docs list them.
    pub const ALL: [ModelKind; 7] = [
        ModelKind::Lr,
        ModelKind::Tree,
        ModelKind::Mlp,
        ModelKind::Cnn,
        ModelKind::Lstm,
        ModelKind::Gru,
        ModelKind::Cnn2d,
    ];

    /// The model named `name` (as [`ModelKind::name`] writes it).
    pub fn from_name(name: &str) -> Option<ModelKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Lr => "lr",
            ModelKind::Tree => "tree",
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Lstm => "lstm",
            ModelKind::Gru => "gru",
            ModelKind::Cnn2d => "cnn2d",
        }
    }
}

/// Model parameters as the user gave them, by name (`max_iter` → `"50"`), like Spark's ParamMap.
///
/// Each engine reads the ones its model knows into a typed `*Params` struct whose defaults are
/// the upstream library's, then calls [`ParamMap::finish`], which refuses any parameter left
/// over, so a parameter that does not apply to the model is an error rather than ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamMap(pub BTreeMap<String, String>);

impl ParamMap {
    /// An empty map (all defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`.
    pub fn with(mut self, name: &str, value: impl ToString) -> Self {
        self.0.insert(name.to_owned(), value.to_string());
        self
    }

    fn take_parsed<T: std::str::FromStr>(&mut self, name: &str, default: T, expected: &str) -> Result<T> {
        match self.0.remove(name) {
            None => Ok(default),
            Some(v) => v.trim().parse::<T>().map_err(|_| Error::InvalidParam {
                name: name.to_owned(),
                value: v.clone(),
                expected: expected.to_owned(),
            }),
        }
    }

    /// Takes a real number.
    pub fn take_f64(&mut self, name: &str, default: f64) -> Result<f64> {
        self.take_parsed(name, default, "a number")
    }

    /// Takes a non-negative integer.
    pub fn take_usize(&mut self, name: &str, default: usize) -> Result<usize> {
        self.take_parsed(name, default, "a whole number >= 0")
    }

    /// Takes a boolean (`true` / `false`).
    pub fn take_bool(&mut self, name: &str, default: bool) -> Result<bool> {
        self.take_parsed(name, default, "true or false")
    }

    /// Takes a string.
    pub fn take_string(&mut self, name: &str, default: &str) -> String {
        self.0.remove(name).unwrap_or_else(|| default.to_owned())
    }

    /// Takes a comma-separated list of whole numbers.
    pub fn take_usize_list(&mut self, name: &str) -> Result<Option<Vec<usize>>> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(v) => v
                .split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Some)
                .map_err(|_| Error::InvalidParam {
                    name: name.to_owned(),
                    value: v.clone(),
                    expected: "comma-separated whole numbers, e.g. 64,64".to_owned(),
                }),
        }
    }

    /// Fails if any parameter was not taken: it does not apply to `model`.
    pub fn finish(self, model: ModelKind) -> Result<()> {
        match self.0.into_iter().next() {
            None => Ok(()),
            Some((name, value)) => Err(Error::InvalidParam {
                name,
                value,
                expected: format!("no such parameter for model '{}'", model.name()),
            }),
        }
    }
}

/// What to train: a model and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The model.
    pub kind: ModelKind,
    /// Its parameters; unset ones take the engine's defaults.
    pub params: ParamMap,
}

/// Run-wide settings an engine honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    /// Cores the fit may use: every engine runs its parallel work on a pool of this many
    /// threads, so equal `workers` means equal CPU for both paradigms.
    pub workers: usize,
    /// Partitions the training rows are cut into (spark); 0 = two per worker.
    pub partitions: usize,
    /// Replicas each global batch is split over (tensor); 0 = one per worker. Replicas sum their
    /// gradients, so the weights do not depend on their number.
    pub replicas: usize,
    /// Seed for every random choice the engine makes.
    pub seed: u64,
}

impl RunContext {
    /// `workers` cores, the engines' own defaults for partitions and replicas, and `seed`.
    pub fn new(workers: usize, seed: u64) -> Self {
        Self { workers: workers.max(1), partitions: 0, replicas: 0, seed }
    }

    /// The replicas a tensor fit uses: `replicas`, or one per worker when 0.
    pub fn replicas_or_workers(&self) -> usize {
        if self.replicas == 0 { self.workers.max(1) } else { self.replicas }
    }

    /// The partitions a spark fit uses: `partitions`, or two per worker when 0 (Spark's rule of
    /// thumb of a few tasks per core).
    pub fn partitions_or_default(&self) -> usize {
        if self.partitions == 0 { 2 * self.workers.max(1) } else { self.partitions }
    }

    /// A pool of `workers` threads to run a fit on: the spark engine's partitions and the
    /// tensor engine's replicas and tensor operations (rayon) all run on it.
    pub fn thread_pool(&self, name: &'static str) -> Result<rayon::ThreadPool> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.workers.max(1))
            .thread_name(move |i| format!("{name}-{i}"))
            .build()
            .map_err(|e| Error::Data(format!("cannot start {} worker threads: {e}", self.workers)))
    }
}

impl Default for RunContext {
    fn default() -> Self {
        Self::new(1, 42)
    }
}

/// One entry of a training log: an iteration (spark) or an epoch (tensor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Iteration, level or epoch number, from 1.
    pub step: usize,
    /// Training loss after this step (for trees: weighted impurity of the leaves).
    pub loss: f64,
    /// Validation loss, where a validation set was given.
    pub valid_loss: Option<f64>,
    /// Validation accuracy, where a validation set was given.
    #[serde(default)]
    pub valid_accuracy: Option<f64>,
    /// Seconds of training since the fit started: wall time without the time spent scoring
    /// validation rows, so engines that score every iteration and every epoch compare.
    pub elapsed_seconds: f64,
    /// Model-specific counts (trees: `depth`, `nodes`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
}

/// What happened during training, kept with the model for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    /// One entry per iteration, level or epoch.
    pub entries: Vec<LogEntry>,
    /// Wall seconds of the whole fit.
    pub fit_seconds: f64,
    /// Why training stopped ("gradient converged", "max_epochs", ...).
    pub stop_reason: String,
    /// Seconds of the fit spent scoring validation rows (part of `fit_seconds`).
    #[serde(default)]
    pub eval_seconds: f64,
    /// Epochs taken from a checkpoint instead of trained in this fit (tensor `--resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_epochs: Option<usize>,
}

/// Mean cross-entropy and accuracy of class probabilities (`rows × classes`, row-major) for
/// `labels`: how both engines score validation rows during a fit. A zero probability counts
/// as 1e-15; ties go to the lower class.
pub fn score_probabilities(proba: &[f32], labels: &[u32], classes: usize) -> (f64, f64) {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (p, &y) in proba.chunks_exact(classes.max(1)).zip(labels) {
        loss -= f64::from(p[y as usize]).max(1e-15).ln();
        let best = (0..p.len()).fold(0, |b, c| if p[c] > p[b] { c } else { b });
        correct += usize::from(best == y as usize);
    }
    let n = labels.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// A trained model.
pub trait TrainedModel: Send + Sync {
    /// Number of classes it predicts.
    fn classes(&self) -> usize;

    /// Number of input features it expects.
    fn n_features(&self) -> usize;

    /// Probabilities, `rows × classes` row-major, for `rows × n_features` row-major features.
    fn predict_proba(&self, features: &[f32]) -> Result<Vec<f32>>;

    /// The model's state, for saving; [`Engine::load_model`] reads it back.
    fn to_json(&self) -> serde_json::Value;
}

/// A training paradigm: Spark MLlib's or TensorFlow/Keras's.
pub trait Engine {
    /// The engine's name ("spark", "tensor").
    fn name(&self) -> &'static str;

    /// Trains `spec` on `train`, using `valid` (possibly empty) where the model has a use for it.
    fn fit(
        &self,
        spec: &ModelSpec,
        train: &Prepared,
        valid: &Prepared,
        ctx: &RunContext,
    ) -> Result<(Box<dyn TrainedModel>, TrainLog)>;

    /// Rebuilds a model from [`TrainedModel::to_json`].
    fn load_model(&self, kind: ModelKind, state: &serde_json::Value) -> Result<Box<dyn TrainedModel>>;
}

/// A model file: the engine and model that made it, the fitted preprocessor, the model's state
/// and its training log, so `predict` can transform raw data exactly as in training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedModel {
    /// Format version of this file.
    pub format: u32,
    /// Engine name.
    pub engine: String,
    /// Model and parameters.
    pub spec: ModelSpec,
    /// The preprocessor fitted on the training rows.
    pub preprocessor: FittedPreprocessor,
    /// The engine's model state.
    pub state: serde_json::Value,
    /// The training log.
    pub log: TrainLog,
}

impl SavedModel {
    /// The current file format.
    pub const FORMAT: u32 = 1;

    /// Writes the file (JSON).
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io { path: path.to_owned(), source };
        let bytes = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(path, bytes).map_err(io)
    }

    /// Reads a file written by [`SavedModel::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: path.to_owned(), source };
        let bytes = std::fs::read(path).map_err(io)?;
        let saved: SavedModel = serde_json::from_slice(&bytes).map_err(|e| {
            io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not a trainbench model file: {e}")))
        })?;
        if saved.format != Self::FORMAT {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("model file format {} is not supported (expected {})", saved.format, Self::FORMAT),
            )));
        }
        Ok(saved)
    }
}

/// Checks that every feature value is finite, naming the first row and feature that is not.
pub fn check_finite(data: &Prepared) -> Result<()> {
    match data.features.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => {
            let (row, col) = (i / data.n_features.max(1), i % data.n_features.max(1));
            Err(Error::Data(format!(
                "feature '{}' of row {row} is {}; features must be finite",
                data.feature_names.get(col).map_or("?", String::as_str),
                data.features[i]
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_scores_are_mean_cross_entropy_and_accuracy() {
        let proba = [0.9, 0.1, 0.4, 0.6, 0.5, 0.5];
        let (loss, accuracy) = score_probabilities(&proba, &[0, 0, 1], 2);
        let want = -((0.9f32 as f64).ln() + (0.4f32 as f64).ln() + 0.5f64.ln()) / 3.0;
        assert!((loss - want).abs() < 1e-12, "{loss} vs {want}");
        // Row 3 is a tie: class 0 wins, so only row 1 is right.
        assert_eq!(accuracy, 1.0 / 3.0);
    }

    #[test]
    fn param_map_types_defaults_and_leftovers() {
        let mut p = ParamMap::new().with("max_iter", 50).with("tol", "1e-4").with("bogus", 1);
        assert_eq!(p.take_usize("max_iter", 100).unwrap(), 50);
        assert_eq!(p.take_f64("tol", 1e-6).unwrap(), 1e-4);
        assert_eq!(p.take_f64("reg_param", 0.0).unwrap(), 0.0);
        let err = p.finish(ModelKind::Lr).unwrap_err().to_string();
        assert_eq!(err, "invalid parameter bogus = 1: no such parameter for model 'lr'");
        let mut q = ParamMap::new().with("layers", "64,x");
        assert!(q.take_usize_list("layers").unwrap_err().to_string().contains("comma-separated"));
        let mut r = ParamMap::new().with("fit_intercept", "yes");
        assert!(r.take_bool("fit_intercept", true).is_err());
    }

    #[test]
    fn finite_check_names_row_and_feature() {
        let data = Prepared {
            features: vec![1.0, 2.0, 3.0, f32::NAN],
            n_features: 2,
            labels: vec![0, 1],
            feature_names: vec!["a".into(), "b".into()],
            class_names: vec!["x".into(), "y".into()],
            categorical_features: Vec::new(),
        };
        assert_eq!(
            check_finite(&data).unwrap_err().to_string(),
            "bad training data: feature 'b' of row 1 is NaN; features must be finite"
        );
    }
}
