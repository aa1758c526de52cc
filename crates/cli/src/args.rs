//! The flag groups commands share, typed: how to read data ([`LoadArgs`]), how to prepare it
//! ([`PrepArgs`]), how to run a fit ([`RunArgs`]) and a model's parameters ([`ModelArgs`]).
//! Options with a fixed set of values parse into the library's own types ([`choice`]), so
//! `--help` lists them; a study file deserializes into the same structs (same names, same
//! defaults).

use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Result, bail};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args};
use serde::{Deserialize, Deserializer, Serialize};
use trainbench_data::{
    CleanOptions, Encoding, InvalidRowPolicy, LoadOptions, MissingPolicy, PipelineOptions, PreprocessOptions, Scaling,
    SplitOptions, UnseenPolicy,
};
use trainbench_engine::{EngineKind, ModelKind, Params, Precision, RunContext};
use trainbench_engine_spark::{Impurity, MlpSolver};
use trainbench_engine_tensor::params::{ACTIVATIONS, OptimizerKind, Schedule};
use trainbench_engine_tensor::{Backend, TrainOptions};

/// A parser for an option with a fixed set of names: `--help` lists `names`, and the value is
/// read with the library type's `FromStr`.
pub fn choice<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: Display,
{
    PossibleValuesParser::new(names).try_map(|s: String| s.parse::<T>().map_err(|e| e.to_string()))
}

/// A parser for an option read by the library type's `FromStr` (values not from a fixed list).
pub fn by_from_str<T>(text: &str) -> std::result::Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    text.parse::<T>().map_err(|e| e.to_string())
}

/// Deserializes an option from its command-line name (`"minmax"`, `"one-hot"`) in a study file.
fn named<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let text = String::deserialize(d)?;
    text.parse::<T>().map_err(serde::de::Error::custom)
}

/// How to read a data file.
#[derive(Args, Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[command(next_help_heading = "Reading the data")]
pub struct LoadArgs {
    /// Label column (default: the last column). Labels may be strings or numbers.
    #[arg(long, value_name = "COL")]
    pub label: Option<String>,
    /// Field delimiter: one character, or "tab" (default: detected from the header).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// Columns to treat as categorical, comma-separated (overrides inference).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Columns to treat as numeric, comma-separated (overrides inference).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    pub numeric: Vec<String>,
    /// Values that mean "missing" besides an empty field, comma-separated (e.g. "?,NA").
    #[arg(long, value_name = "TOKENS", value_delimiter = ',')]
    pub na_values: Vec<String>,
    /// Rows that cannot be read: set aside in the quarantine file, or stop with an error.
    #[arg(long, default_value = "quarantine", value_parser = choice::<InvalidRowPolicy>(InvalidRowPolicy::NAMES))]
    #[serde(deserialize_with = "named")]
    pub invalid_rows: InvalidRowPolicy,
    /// For IDX images: the labels file (default: the matching *-labels-idx1-ubyte beside it).
    #[arg(long, value_name = "FILE")]
    pub idx_labels: Option<PathBuf>,
}

impl LoadArgs {
    /// Checks the flags and builds the library's options.
    pub fn to_options(&self) -> Result<LoadOptions> {
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some("tab" | "\\t") => Some(b'\t'),
            Some(d) if d.len() == 1 && d.is_ascii() && d != "\"" && d != "\n" => Some(d.as_bytes()[0]),
            Some(d) => bail!("--delimiter must be one ASCII character (not a quote or newline) or \"tab\", got {d:?}"),
        };
        Ok(LoadOptions {
            delimiter,
            label: self.label.clone(),
            categorical: self.categorical.clone(),
            numeric: self.numeric.clone(),
            missing_values: self.na_values.clone(),
            invalid_rows: self.invalid_rows,
            idx_labels: self.idx_labels.clone(),
            ..LoadOptions::default()
        })
    }
}

/// Cleaning, split and preprocessing.
#[derive(Args, Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[command(next_help_heading = "Cleaning, split and preprocessing")]
pub struct PrepArgs {
    /// Missing feature values: drop, mean, median, most-frequent, or constant:VALUE.
    /// Imputation statistics come from the training rows only.
    #[arg(long, default_value = "mean", value_name = "POLICY", value_parser = by_from_str::<MissingPolicy>)]
    #[serde(deserialize_with = "named")]
    pub missing: MissingPolicy,
    /// Keep exact duplicate rows (they are dropped by default).
    #[arg(long)]
    pub keep_duplicates: bool,
    /// Fraction of rows held out for the test (ignored with --test-data).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Fraction of rows held out for validation.
    #[arg(long, default_value_t = 0.0)]
    pub valid_fraction: f64,
    /// A separate file of test rows (same columns).
    #[arg(long, value_name = "FILE")]
    pub test_data: Option<PathBuf>,
    /// Split without keeping class proportions (a study file writes `stratify = false`).
    #[arg(long = "no-stratify", action = ArgAction::SetFalse)]
    pub stratify: bool,
    /// Split in file order: train on the first rows, test on the last (time series); no shuffle.
    #[arg(long)]
    pub chronological: bool,
    /// Seed of the split and of every random choice of the model (sampling, initial weights).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Numeric scaling.
    #[arg(long, default_value = "standard", value_parser = choice::<Scaling>(Scaling::NAMES))]
    #[serde(deserialize_with = "named")]
    pub scaling: Scaling,
    /// Categorical encoding.
    #[arg(long, default_value = "one-hot", value_parser = choice::<Encoding>(Encoding::NAMES))]
    #[serde(deserialize_with = "named")]
    pub encoding: Encoding,
    /// Categories not seen in training: error, or ignore (all-zero one-hot / an extra index).
    #[arg(long, default_value = "error", value_parser = choice::<UnseenPolicy>(UnseenPolicy::NAMES))]
    #[serde(deserialize_with = "named")]
    pub unseen: UnseenPolicy,
    /// Where removed rows are written, with line and reason (only when there are any).
    #[arg(long, value_name = "FILE", default_value = "trainbench-quarantine.csv")]
    pub quarantine: PathBuf,
}

impl Default for PrepArgs {
    /// The flags' defaults (a test checks they agree).
    fn default() -> Self {
        Self {
            missing: MissingPolicy::Mean,
            keep_duplicates: false,
            test_fraction: 0.2,
            valid_fraction: 0.0,
            test_data: None,
            stratify: true,
            chronological: false,
            seed: 42,
            scaling: Scaling::Standard,
            encoding: Encoding::OneHot,
            unseen: UnseenPolicy::Error,
            quarantine: PathBuf::from("trainbench-quarantine.csv"),
        }
    }
}

impl PrepArgs {
    /// The pipeline's options, with `load` for reading.
    pub fn to_options(&self, load: &LoadArgs) -> Result<PipelineOptions> {
        Ok(PipelineOptions {
            load: load.to_options()?,
            clean: CleanOptions { missing: self.missing.clone(), drop_duplicates: !self.keep_duplicates },
            split: SplitOptions {
                valid_fraction: self.valid_fraction,
                test_fraction: self.test_fraction,
                stratify: self.stratify,
                chronological: self.chronological,
                seed: self.seed,
            },
            preprocess: PreprocessOptions {
                scaling: self.scaling,
                encoding: self.encoding,
                unseen: self.unseen,
                missing: MissingPolicy::default(),
            },
            test_data: self.test_data.clone(),
        })
    }
}

/// Cores, how the work is cut, and the engines' run options.
#[derive(Args, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Running")]
pub struct RunArgs {
    /// Cores the fit may use (default: all; under mpirun, the host's cores shared among its
    /// processes): the spark engine's worker threads over partitions, the tensor engine's thread
    /// pool (its replicas and its tensor operations). Equal --workers gives both paradigms equal
    /// CPU. Under mpirun it is per process.
    #[arg(long)]
    pub workers: Option<usize>,
    /// tensor: replicas each global batch is split over (default: one per worker; under mpirun,
    /// per process). Replicas sum their gradients, so the weights do not depend on their number.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// spark: partitions of the training rows (default: 2 per worker, all processes together).
    /// Fix it to compare worker counts on identical partitions.
    #[arg(long)]
    pub partitions: Option<usize>,
    /// Arithmetic of the forward and backward passes. tensor: f32 (default), bf16 or f16 (mixed,
    /// weights kept in f32). spark mlp (in `train`; in studies --param spark.mlp.precision=f32):
    /// f64 (default, MLlib's) or f32.
    #[arg(long, value_parser = choice::<Precision>(Precision::NAMES))]
    pub precision: Option<Precision>,
    /// tensor: cpu (Burn's flex backend) or gpu (Vulkan; needs the `gpu` build feature).
    #[arg(long, default_value = "cpu", value_parser = choice::<Backend>(Backend::NAMES))]
    pub device: Backend,
    /// tensor: write TensorBoard event files under this folder.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// tensor: save a checkpoint here after every epoch.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// tensor: continue from the checkpoint in --checkpoint-dir.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// spark: train on real Spark MLlib through the Spark Connect server at sc://HOST:PORT
    /// (default: $SPARK_REMOTE). Spark reads --data itself (a path the cluster can read: local,
    /// HDFS, S3), splits it with randomSplit (not stratified) and preprocesses it with its own ML
    /// stages.
    #[arg(long, value_name = "sc://HOST:PORT", env = "SPARK_REMOTE")]
    pub spark_remote: Option<String>,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

/// Run tracking in MLflow.
#[derive(Args, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Tracking")]
pub struct TrackingArgs {
    /// Log every run to the MLflow tracking server at this URI (http://HOST:PORT; default:
    /// $MLFLOW_TRACKING_URI): parameters, per-epoch / per-iteration metrics, the test scores, and
    /// the saved model or the study's report folder as artifacts.
    #[arg(long, value_name = "URI", env = "MLFLOW_TRACKING_URI")]
    pub mlflow: Option<String>,
    /// The MLflow experiment the runs go to (created when missing).
    #[arg(long, value_name = "NAME", env = "MLFLOW_EXPERIMENT_NAME", default_value = "trainbench")]
    pub mlflow_experiment: String,
}

impl Default for TrackingArgs {
    fn default() -> Self {
        Self { mlflow: None, mlflow_experiment: "trainbench".to_owned() }
    }
}

impl TrackingArgs {
    /// The MLflow tracker, when `--mlflow` (or $MLFLOW_TRACKING_URI) names a server: connected
    /// now, before any training. Only rank 0 of an MPI job logs.
    pub fn tracker(&self) -> Result<Option<crate::mlflow::Tracker>> {
        match &self.mlflow {
            Some(uri) if trainbench_engine::collective::is_primary() => {
                Ok(Some(crate::mlflow::Tracker::open(uri, &self.mlflow_experiment)?))
            }
            _ => Ok(None),
        }
    }
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            workers: None,
            replicas: None,
            partitions: None,
            precision: None,
            device: Backend::Flex,
            tensorboard: None,
            checkpoint_dir: None,
            resume: false,
            spark_remote: None,
            tracking: TrackingArgs::default(),
        }
    }
}

impl RunArgs {
    /// The run context: cores, partitions, replicas and `seed`.
    pub fn context(&self, seed: u64) -> RunContext {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Processes of an MPI job on this host share its cores.
        let on_this_host = std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        let cores = (cores / on_this_host.max(1)).max(1);
        RunContext {
            partitions: self.partitions.unwrap_or(0),
            replicas: self.replicas.unwrap_or(0),
            ..RunContext::new(self.workers.unwrap_or(cores), seed)
        }
    }

    /// The tensor engine's options.
    pub fn tensor_options(&self) -> TrainOptions {
        TrainOptions {
            precision: self.precision.unwrap_or(Precision::F32),
            backend: self.device,
            tensorboard: self.tensorboard.clone(),
            checkpoint_dir: self.checkpoint_dir.clone(),
            resume: self.resume,
        }
    }

    /// The arithmetic `engine` runs `model` in: what the run record says.
    pub fn precision_of(&self, engine: EngineKind, params: &Params) -> Precision {
        match engine {
            EngineKind::Tensor => self.precision.unwrap_or(Precision::F32),
            EngineKind::Spark => {
                params.get("precision").and_then(|v| v.as_str()).and_then(|p| p.parse().ok()).unwrap_or(Precision::F64)
            }
        }
    }
}

/// Model parameters as flags: MLlib's names (snake case with dashes) for the spark engine's
/// models, Keras's for the tensor engine's. Only the ones given are passed on ([`ModelArgs::to_params`]);
/// each engine refuses one its model does not have.
#[derive(Args, Debug, Clone, Default, Serialize)]
#[command(next_help_heading = "Model parameters (each applies to the models noted; [default])")]
pub struct ModelArgs {
    /// lr, mlp: at most this many iterations [100].
    #[arg(long)]
    pub max_iter: Option<usize>,
    /// lr, mlp: convergence tolerance, relative, as Breeze's [1e-6].
    #[arg(long)]
    pub tol: Option<f64>,
    /// lr: regularization strength [0].
    #[arg(long)]
    pub reg_param: Option<f64>,
    /// lr: L1 share of the regularization, 0..1 [0].
    #[arg(long)]
    pub elastic_net_param: Option<f64>,
    /// lr: fit an intercept [true].
    #[arg(long)]
    pub fit_intercept: Option<bool>,
    /// lr: standardize features before fitting [true].
    #[arg(long)]
    pub standardization: Option<bool>,
    /// tree: maximum depth [5].
    #[arg(long)]
    pub max_depth: Option<usize>,
    /// tree: bins per continuous feature [32].
    #[arg(long)]
    pub max_bins: Option<usize>,
    /// tree: minimum rows per child [1].
    #[arg(long)]
    pub min_instances_per_node: Option<usize>,
    /// tree: minimum information gain of a split [0].
    #[arg(long)]
    pub min_info_gain: Option<f64>,
    /// tree: purity measure [gini].
    #[arg(long, value_parser = choice::<Impurity>(Impurity::NAMES))]
    pub impurity: Option<Impurity>,
    /// mlp: hidden layer sizes, comma-separated [spark 64,64; tensor 128,128].
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// mlp: optimizer [l-bfgs].
    #[arg(long, value_parser = choice::<MlpSolver>(MlpSolver::NAMES))]
    pub solver: Option<MlpSolver>,
    /// mlp: gd step size [0.03].
    #[arg(long)]
    pub step_size: Option<f64>,
    /// mlp: rows stacked per block [128].
    #[arg(long)]
    pub block_size: Option<usize>,
    /// tensor: passes over the training rows [10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// tensor: rows per global batch [32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// tensor: optimizer [adam].
    #[arg(long, value_parser = choice::<OptimizerKind>(OptimizerKind::NAMES))]
    pub optimizer: Option<OptimizerKind>,
    /// tensor: learning rate [adam/adamw 0.001, sgd 0.01].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// tensor: sgd momentum [0].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// tensor: adamw weight decay [0.004].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// tensor: learning-rate schedule [constant].
    #[arg(long, value_parser = choice::<Schedule>(Schedule::NAMES))]
    pub lr_schedule: Option<Schedule>,
    /// tensor: step schedule, epochs between decays [10].
    #[arg(long)]
    pub lr_step_epochs: Option<usize>,
    /// tensor: step schedule, factor per decay [0.1].
    #[arg(long)]
    pub lr_gamma: Option<f64>,
    /// tensor: early stopping after this many epochs without a better validation loss; restores
    /// the best weights [0 = off].
    #[arg(long)]
    pub patience: Option<usize>,
    /// tensor: weight classes inversely to their frequency [false].
    #[arg(long)]
    pub balanced_class_weights: Option<bool>,
    /// tensor: dropout rate after hidden dense layers [0].
    #[arg(long)]
    pub dropout: Option<f64>,
    /// tensor: activation of dense and convolution layers [relu].
    #[arg(long, value_parser = PossibleValuesParser::new(ACTIVATIONS))]
    pub activation: Option<String>,
    /// cnn, cnn2d: convolution filters per layer [32,64].
    #[arg(long, value_delimiter = ',')]
    pub filters: Option<Vec<usize>>,
    /// cnn, cnn2d: dense layers after flattening [cnn 64; cnn2d 128].
    #[arg(long, value_delimiter = ',')]
    pub dense: Option<Vec<usize>>,
    /// cnn, cnn2d: convolution kernel size [3].
    #[arg(long)]
    pub kernel_size: Option<usize>,
    /// cnn, cnn2d: max-pooling size [2].
    #[arg(long)]
    pub pool_size: Option<usize>,
    /// lstm, gru: recurrent units [64].
    #[arg(long)]
    pub units: Option<usize>,
    /// lstm, gru: values per time step; each row is its features cut into steps of this many,
    /// oldest first (what `trainbench windows` writes) [1].
    #[arg(long)]
    pub step_features: Option<usize>,
    /// cnn2d: image shape HxW or HxWxC of the pixel columns [square, 1 channel].
    #[arg(long)]
    pub image_shape: Option<String>,
    /// tensor: TensorBoard batch-loss scalar every this many steps [100; 0 = epochs only].
    #[arg(long)]
    pub log_every_steps: Option<usize>,
    /// tensor: rows in the shuffle buffer, as tf.data's `shuffle(buffer)`: rows are drawn at
    /// random from a window that moves through the data in order, so rows mapped from a
    /// prepared directory larger than memory are read nearly sequentially [all rows: a full
    /// permutation each epoch].
    #[arg(long)]
    pub shuffle_buffer: Option<usize>,
}

impl ModelArgs {
    /// The parameters given, typed, by name.
    pub fn to_params(&self) -> Params {
        let mut params = Params::new();
        if let Ok(serde_json::Value::Object(all)) = serde_json::to_value(self) {
            params.0 = all.into_iter().filter(|(_, v)| !v.is_null()).collect();
        }
        params
    }
}

/// `ENGINE:MODEL`, as `--runs` and study files name a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunKey {
    /// The engine.
    pub engine: EngineKind,
    /// The model.
    pub model: ModelKind,
}

impl FromStr for RunKey {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (e, m) = text.split_once(':').ok_or_else(|| format!("run '{text}' is not ENGINE:MODEL (e.g. spark:lr)"))?;
        let engine = e
            .trim()
            .parse::<EngineKind>()
            .map_err(|_| format!("unknown engine '{}' in run '{text}' (spark or tensor)", e.trim()))?;
        let model =
            m.trim().parse::<ModelKind>().map_err(|_| format!("unknown model '{}' in run '{text}'", m.trim()))?;
        engine.check_model(model).map_err(|e| format!("run '{text}': {e}"))?;
        Ok(Self { engine, model })
    }
}

impl std::fmt::Display for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}:{}", self.engine.name(), self.model.name())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        prep: PrepArgs,
        #[command(flatten)]
        run: RunArgs,
    }

    /// What a study file leaves out is what the command line leaves out.
    #[test]
    fn study_defaults_are_the_flags_defaults() {
        let flags = Flags::try_parse_from(["x"]).unwrap();
        assert_eq!(flags.load, LoadArgs::default());
        assert_eq!(flags.prep, PrepArgs::default());
        assert_eq!(RunArgs { spark_remote: None, ..flags.run }, RunArgs::default());
    }

    #[test]
    fn typed_flags_become_typed_params() {
        let args = ModelArgs {
            max_iter: Some(50),
            hidden: Some(vec![8, 4]),
            solver: Some(MlpSolver::Gd),
            ..Default::default()
        };
        let p = args.to_params();
        assert_eq!(p.0.len(), 3);
        assert_eq!(p.get("hidden"), Some(&serde_json::json!([8, 4])));
        assert_eq!(p.get("solver"), Some(&serde_json::json!("gd")));
        assert!("spark:lstm".parse::<RunKey>().unwrap_err().contains("tensor engine's"));
        assert_eq!("tensor:cnn".parse::<RunKey>().unwrap().to_string(), "tensor:cnn");
    }
}
