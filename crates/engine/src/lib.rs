//! The contract every trainbench engine implements.
//!
//! An engine takes prepared rows (from `trainbench-data`, the same rows for every engine) and a
//! model specification, trains, and returns a model that gives class probabilities, plus a log of
//! the training. Scoring is not the engine's business: the shared metrics crate scores every
//! engine's probabilities the same way.
#![warn(missing_docs)]

pub mod collective;
pub mod kernels;
pub mod params;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use trainbench_data::{FittedPreprocessor, Prepared};

pub use params::{ParamMap, Params, Precision};

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
    #[error("training diverged at {at}: loss is {loss}{}", if *checkpoint_kept { "; the last good checkpoint is kept" } else { "" })]
    Diverged {
        /// Where: "iteration 12", "epoch 1, step 40".
        at: String,
        /// The loss value.
        loss: f64,
        /// Whether a checkpoint of the last good epoch is on disk.
        checkpoint_kept: bool,
    },
    /// The training data cannot be used (one class, non-finite values, wrong width).
    #[error("bad training data: {0}")]
    Data(String),
    /// A model's state cannot be read or written: a malformed model file or checkpoint, weights
    /// that do not encode, an architecture that does not match.
    #[error("{0}")]
    ModelState(String),
    /// The compute backend cannot do what was asked (a precision, a device, a replica that
    /// failed).
    #[error("{0}")]
    Backend(String),
    /// The machine cannot give what the run needs (memory, threads).
    #[error("{0}")]
    Resources(String),
    /// Reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// Divergence at `at` ("iteration 12"), with no checkpoint to fall back on.
    pub fn diverged(at: impl Into<String>, loss: f64) -> Self {
        Error::Diverged { at: at.into(), loss, checkpoint_kept: false }
    }
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

    /// The names, as the command line writes them.
    pub const NAMES: &'static [&'static str] = &["lr", "tree", "mlp", "cnn", "lstm", "gru", "cnn2d"];

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

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s).ok_or_else(|| Error::InvalidParam {
            name: "model".into(),
            value: s.into(),
            expected: Self::NAMES.join(", "),
        })
    }
}

/// The two paradigms: the registry of engines, their names and their models. The CLI builds an
/// engine from its kind and run options (`cli::engines::build`); nothing else names engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// Spark MLlib's: partitions, tree aggregation, L-BFGS (embedded, or on Spark through Spark
    /// Connect).
    Spark,
    /// TensorFlow/Keras's: mini-batches, replicas, Adam (on Burn).
    Tensor,
}

impl EngineKind {
    /// Both engines, spark first (the order of every table).
    pub const ALL: [EngineKind; 2] = [EngineKind::Spark, EngineKind::Tensor];

    /// The names, as the command line writes them.
    pub const NAMES: &'static [&'static str] = &["spark", "tensor"];

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Spark => "spark",
            EngineKind::Tensor => "tensor",
        }
    }

    /// The models it trains.
    pub fn models(self) -> &'static [ModelKind] {
        match self {
            EngineKind::Spark => &[ModelKind::Lr, ModelKind::Tree, ModelKind::Mlp],
            EngineKind::Tensor => &[ModelKind::Mlp, ModelKind::Cnn, ModelKind::Lstm, ModelKind::Gru, ModelKind::Cnn2d],
        }
    }

    /// An error unless this engine trains `model`, naming the engine that does.
    pub fn check_model(self, model: ModelKind) -> Result<()> {
        if self.models().contains(&model) {
            return Ok(());
        }
        let others: Vec<&str> =
            Self::ALL.iter().filter(|e| **e != self && e.models().contains(&model)).map(|e| e.name()).collect();
        Err(Error::InvalidParam {
            name: "model".into(),
            value: model.name().into(),
            expected: format!(
                "{} for the {} engine{}",
                self.models().iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
                self.name(),
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" ({} is the {} engine's)", model.name(), others.join(", "))
                }
            ),
        })
    }
}

impl std::str::FromStr for EngineKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| Error::InvalidParam {
            name: "engine".into(),
            value: s.into(),
            expected: Self::NAMES.join(" or "),
        })
    }
}

/// What to train: a model and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The model.
    pub kind: ModelKind,
    /// Its parameters; unset ones take the engine's defaults.
    pub params: Params,
}

impl ModelSpec {
    /// `kind` with every parameter at its default.
    pub fn new(kind: ModelKind) -> Self {
        Self { kind, params: Params::new() }
    }

    /// Sets parameter `name` to `value`.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        self.params.set(name, value);
        self
    }
}

/// Run-wide settings an engine honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    /// Cores the fit may use in this process: every engine runs its parallel work on a pool of
    /// this many threads, so equal `workers` means equal CPU for both paradigms. Under `mpirun`
    /// each process has its own `workers`.
    pub workers: usize,
    /// Partitions the training rows are cut into (spark), over all processes; 0 = two per worker
    /// of every process.
    pub partitions: usize,
    /// Replicas each global batch is split over in this process (tensor); 0 = one per worker.
    /// Under `mpirun` every process runs this many, so a batch has `processes × replicas`.
    /// Replicas sum their gradients, so the weights do not depend on their number.
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

    /// The partitions a spark fit uses: `partitions`, or two per core of all processes when 0
    /// (Spark's rule of thumb of a few tasks per core).
    pub fn partitions_or_default(&self) -> usize {
        let cores = self.workers.max(1) * collective::world().size();
        if self.partitions == 0 { 2 * cores } else { self.partitions }
    }

    /// A pool of `workers` threads to run a fit on: the spark engine's partitions and the
    /// tensor engine's replicas and tensor operations (rayon) all run on it.
    pub fn thread_pool(&self, name: &'static str) -> Result<rayon::ThreadPool> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.workers.max(1))
            .thread_name(move |i| format!("{name}-{i}"))
            .build()
            .map_err(|e| Error::Resources(format!("cannot start {} worker threads: {e}", self.workers)))
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
    /// Seconds of the fit this process spent exchanging with the other processes of an MPI job
    /// (waiting for them included); none in a single process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication_seconds: Option<f64>,
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

/// What one entry of a fit's log counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUnit {
    /// An optimizer iteration (L-BFGS, gradient descent): one pass over every partition.
    Iteration,
    /// A level of a tree grown breadth-first.
    Level,
    /// An epoch of mini-batches.
    Epoch,
}

/// Live reports from a fit, as Keras's callbacks and Spark's listeners get them; the CLI prints
/// them. Calls come from the thread that drives the fit, between steps, so they must be cheap.
/// Under mpirun every process reports; the caller decides which one prints.
pub trait Progress: Sync {
    /// The fit starts: each log entry will be one `unit`, `planned` of them at most.
    fn begin(&self, _unit: StepUnit, _planned: usize) {}
    /// A log entry is complete (the same entry the fit's [`TrainLog`] keeps).
    fn entry(&self, _entry: &LogEntry) {}
    /// Within epoch `epoch` (from 1): `done` of its `total` steps are complete.
    fn step(&self, _epoch: usize, _done: usize, _total: usize) {}
}

/// Reports nothing: what [`Engine::fit`] passes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// A trained model.
pub trait TrainedModel: Send + Sync {
    /// Number of classes it predicts.
    fn classes(&self) -> usize;

    /// Number of input features it expects.
    fn n_features(&self) -> usize;

    /// Probabilities, `rows × classes` row-major, for `rows × n_features` row-major features.
    fn predict_proba(&self, features: &[f32]) -> Result<Vec<f32>>;

    /// The model's state, for saving; [`Engine::load_model`] reads it back.
    fn to_json(&self) -> Result<serde_json::Value>;
}

/// A training paradigm: Spark MLlib's or TensorFlow/Keras's.
pub trait Engine {
    /// Which engine it is.
    fn kind(&self) -> EngineKind;

    /// Trains `spec` on `train`, using `valid` (possibly empty) where the model has a use for it,
    /// reporting each iteration, level or epoch to `progress` as it completes.
    fn fit_with_progress(
        &self,
        spec: &ModelSpec,
        train: &Prepared,
        valid: &Prepared,
        ctx: &RunContext,
        progress: &dyn Progress,
    ) -> Result<(Box<dyn TrainedModel>, TrainLog)>;

    /// [`Engine::fit_with_progress`], reporting nothing.
    fn fit(
        &self,
        spec: &ModelSpec,
        train: &Prepared,
        valid: &Prepared,
        ctx: &RunContext,
    ) -> Result<(Box<dyn TrainedModel>, TrainLog)> {
        self.fit_with_progress(spec, train, valid, ctx, &Silent)
    }

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

    /// Writes the file (JSON), whole ([`write_whole`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io { path: path.to_owned(), source };
        let bytes = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        write_whole(path, &bytes).map_err(io)
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

/// Writes `bytes` to `path` whole: into a new file beside it, then renamed over it, so a process
/// stopped mid-write leaves the old file (or none), never half of one. Model files and
/// checkpoints are written this way.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".trainbench-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Checks that every feature value is finite, naming the first row and feature that is not.
pub fn check_finite(data: &Prepared) -> Result<()> {
    // Rows mapped from a prepared directory (their checksum checked) were checked when it was
    // prepared; reading them all again here would read every rank's share on each rank.
    if data.features.checksum().is_some() {
        return Ok(());
    }
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
    fn engines_name_their_models() {
        assert_eq!("tensor".parse::<EngineKind>().unwrap(), EngineKind::Tensor);
        assert!(EngineKind::Spark.check_model(ModelKind::Mlp).is_ok());
        let err = EngineKind::Spark.check_model(ModelKind::Lstm).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid parameter model = lstm: lr, tree, mlp for the spark engine (lstm is the tensor engine's)"
        );
        assert!("svm".parse::<ModelKind>().unwrap_err().to_string().contains("lr, tree, mlp, cnn"));
        let spec = ModelSpec::new(ModelKind::Lr).with("max_iter", 5);
        assert_eq!(spec.params.get("max_iter"), Some(&serde_json::json!(5)));
    }

    #[test]
    fn finite_check_names_row_and_feature() {
        let data = Prepared {
            features: vec![1.0, 2.0, 3.0, f32::NAN].into(),
            n_features: 2,
            labels: vec![0, 1].into(),
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
