//! The tensor engine's parameters: one struct, [`TensorParams`], with Keras's defaults, read from
//! [`Params`] (unknown names refused) and checked against the model it is for, which gives the
//! network's [`Architecture`] and the loop's [`TrainParams`].

use serde::{Deserialize, Serialize};
use trainbench_engine::params::usize_list_opt;
use trainbench_engine::{Error, ModelKind, Params, Result};

/// Parameter values above this many weights are refused before training (a typo such as a
/// 10^7-wide layer would otherwise allocate gigabytes per replica).
pub const MAX_WEIGHTS: usize = 50_000_000;

/// The network's shape: everything needed to rebuild it (and load saved weights into it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Which network.
    pub kind: ModelKind,
    /// Input features per row.
    pub n_features: usize,
    /// Output classes.
    pub classes: usize,
    /// Dense hidden layers (MLP: all layers; CNN: the layers after flattening).
    pub dense: Vec<usize>,
    /// Convolution filters per layer (CNN, 2-D CNN).
    pub filters: Vec<usize>,
    /// Convolution kernel size (square for 2-D).
    pub kernel_size: usize,
    /// Max-pooling size after each convolution.
    pub pool_size: usize,
    /// Recurrent units (LSTM, GRU).
    pub units: usize,
    /// Values per time step (LSTM, GRU): a row is `n_features / step_features` steps, oldest
    /// first, each `step_features` consecutive columns (Keras's `(timesteps, features)` input
    /// flattened row-major). 1 reads the feature vector as a sequence of single values.
    #[serde(default = "one")]
    pub step_features: usize,
    /// Image height, width and channels (2-D CNN).
    pub image_shape: Option<[usize; 3]>,
    /// Activation of dense and convolution layers: relu, tanh, sigmoid, gelu or linear.
    pub activation: String,
    /// Dropout rate after each hidden dense layer (and before the head of RNNs).
    pub dropout: f64,
}

/// How weights are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Keras: beta 0.9 / 0.999, epsilon 1e-7).
    Adam,
    /// AdamW (Keras: weight decay 0.004).
    Adamw,
    /// Stochastic gradient descent with optional momentum (Keras: no dampening).
    Sgd,
}

impl OptimizerKind {
    /// The names, as the command line writes them.
    pub const NAMES: &'static [&'static str] = &["adam", "adamw", "sgd"];
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "adam" => Ok(Self::Adam),
            "adamw" => Ok(Self::Adamw),
            "sgd" => Ok(Self::Sgd),
            other => Err(invalid("optimizer", other, "adam, adamw or sgd")),
        }
    }
}

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The same rate every epoch.
    Constant,
    /// Multiplied by `lr_gamma` every `lr_step_epochs` epochs.
    Step,
    /// Cosine decay from the rate to 0 over all epochs.
    Cosine,
}

impl Schedule {
    /// The names, as the command line writes them.
    pub const NAMES: &'static [&'static str] = &["constant", "step", "cosine"];
}

impl std::str::FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Self::Constant),
            "step" => Ok(Self::Step),
            "cosine" => Ok(Self::Cosine),
            other => Err(invalid("lr_schedule", other, "constant, step or cosine")),
        }
    }
}

/// The activations a dense or convolution layer may have.
pub const ACTIVATIONS: &[&str] = &["relu", "tanh", "sigmoid", "gelu", "linear"];

/// Every parameter of the tensor engine's models, with Keras's defaults; the ones that shape a
/// particular kind of network are options, refused for the other kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TensorParams {
    /// mlp: hidden Dense layers [128, 128].
    #[serde(deserialize_with = "usize_list_opt")]
    pub hidden: Option<Vec<usize>>,
    /// cnn, cnn2d: convolution filters per layer [32, 64].
    #[serde(deserialize_with = "usize_list_opt")]
    pub filters: Option<Vec<usize>>,
    /// cnn, cnn2d: Dense layers after flattening [cnn 64; cnn2d 128].
    #[serde(deserialize_with = "usize_list_opt")]
    pub dense: Option<Vec<usize>>,
    /// cnn, cnn2d: convolution kernel size [3].
    pub kernel_size: Option<usize>,
    /// cnn, cnn2d: max-pooling size [2].
    pub pool_size: Option<usize>,
    /// lstm, gru: recurrent units [64].
    pub units: Option<usize>,
    /// lstm, gru: values per time step [1].
    pub step_features: Option<usize>,
    /// cnn2d: image shape HxW or HxWxC [square, 1 channel].
    pub image_shape: Option<String>,
    /// Activation of dense and convolution layers [relu].
    pub activation: String,
    /// Dropout rate after hidden dense layers [0].
    pub dropout: f64,
    /// Passes over the training rows [10].
    pub epochs: usize,
    /// Rows per global batch [32].
    pub batch_size: usize,
    /// Optimizer [adam].
    pub optimizer: OptimizerKind,
    /// Learning rate [adam/adamw 0.001, sgd 0.01].
    pub learning_rate: Option<f64>,
    /// SGD momentum [0].
    pub momentum: f64,
    /// AdamW weight decay [0.004].
    pub weight_decay: f64,
    /// Learning-rate schedule [constant].
    pub lr_schedule: Schedule,
    /// Step schedule: epochs between decays [10].
    pub lr_step_epochs: usize,
    /// Step schedule: factor per decay [0.1].
    pub lr_gamma: f64,
    /// Early stopping after this many epochs without a better validation loss [0 = off].
    pub patience: usize,
    /// Weight classes inversely to their frequency [false].
    pub balanced_class_weights: bool,
    /// TensorBoard batch-loss scalar every this many steps [100; 0 = epochs only].
    pub log_every_steps: usize,
    /// Rows in tf.data's shuffle buffer [all rows: a full permutation each epoch]. A smaller
    /// buffer reads the rows nearly in order, for rows mapped from a file larger than memory.
    pub shuffle_buffer: Option<usize>,
}

impl Default for TensorParams {
    fn default() -> Self {
        Self {
            hidden: None,
            filters: None,
            dense: None,
            kernel_size: None,
            pool_size: None,
            units: None,
            step_features: None,
            image_shape: None,
            activation: "relu".into(),
            dropout: 0.0,
            epochs: 10,
            batch_size: 32,
            optimizer: OptimizerKind::Adam,
            learning_rate: None,
            momentum: 0.0,
            weight_decay: 0.004,
            lr_schedule: Schedule::Constant,
            lr_step_epochs: 10,
            lr_gamma: 0.1,
            patience: 0,
            balanced_class_weights: false,
            log_every_steps: 100,
            shuffle_buffer: None,
        }
    }
}

/// Everything the training loop needs besides the architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per global batch (split across replicas).
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub learning_rate: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Step schedule: epochs between decays.
    pub lr_step_epochs: usize,
    /// Step schedule: factor per decay.
    pub lr_gamma: f64,
    /// Early stopping: epochs without validation-loss improvement before stopping (0 = off).
    pub patience: usize,
    /// Weight classes inversely to their frequency (Keras's `class_weight="balanced"` idiom).
    pub balanced_class_weights: bool,
    /// Write a TensorBoard scalar every this many steps besides each epoch (0 = epochs only).
    pub log_every_steps: usize,
    /// Rows of the shuffle buffer; `None`: all rows (a full permutation each epoch).
    #[serde(default)]
    pub shuffle_buffer: Option<usize>,
}

fn invalid(name: &str, value: &str, expected: &str) -> Error {
    Error::InvalidParam { name: name.to_owned(), value: value.to_owned(), expected: expected.to_owned() }
}

/// Parses `HxW` or `HxWxC`.
pub fn parse_image_shape(text: &str) -> Result<[usize; 3]> {
    let parts: Vec<usize> = text
        .split('x')
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| invalid("image_shape", text, "HxW or HxWxC, e.g. 28x28"))?;
    match parts[..] {
        [h, w] if h > 0 && w > 0 => Ok([h, w, 1]),
        [h, w, c] if h > 0 && w > 0 && c > 0 => Ok([h, w, c]),
        _ => Err(invalid("image_shape", text, "HxW or HxWxC, e.g. 28x28")),
    }
}

/// Reads the architecture and the training parameters of `kind` for rows of `n_features` and
/// `classes` classes; refuses unknown parameters and ones `kind` does not have.
pub fn parse(
    kind: ModelKind,
    params: &Params,
    n_features: usize,
    classes: usize,
) -> Result<(Architecture, TrainParams)> {
    let p: TensorParams = params.read(kind)?;
    p.check(kind, n_features, classes)
}

/// A list of sizes, each at least 1, or `default`.
fn sizes(name: &str, given: &Option<Vec<usize>>, default: &[usize]) -> Result<Vec<usize>> {
    let list = given.clone().unwrap_or_else(|| default.to_vec());
    if list.is_empty() || list.contains(&0) {
        return Err(invalid(name, &format!("{list:?}"), "sizes of at least 1"));
    }
    Ok(list)
}

impl TensorParams {
    /// The architecture and the training parameters for `kind`, checked.
    pub fn check(&self, kind: ModelKind, n_features: usize, classes: usize) -> Result<(Architecture, TrainParams)> {
        // The options that shape one kind of network are refused for the others.
        let shaping: [(&str, bool, &[ModelKind]); 8] = [
            ("hidden", self.hidden.is_some(), &[ModelKind::Mlp]),
            ("filters", self.filters.is_some(), &[ModelKind::Cnn, ModelKind::Cnn2d]),
            ("dense", self.dense.is_some(), &[ModelKind::Cnn, ModelKind::Cnn2d]),
            ("kernel_size", self.kernel_size.is_some(), &[ModelKind::Cnn, ModelKind::Cnn2d]),
            ("pool_size", self.pool_size.is_some(), &[ModelKind::Cnn, ModelKind::Cnn2d]),
            ("units", self.units.is_some(), &[ModelKind::Lstm, ModelKind::Gru]),
            ("step_features", self.step_features.is_some(), &[ModelKind::Lstm, ModelKind::Gru]),
            ("image_shape", self.image_shape.is_some(), &[ModelKind::Cnn2d]),
        ];
        if let Some((name, ..)) = shaping.iter().find(|(_, given, kinds)| *given && !kinds.contains(&kind)) {
            let value = serde_json::to_value(self).ok().and_then(|v| v.get(*name).map(|v| v.to_string()));
            return Err(invalid(
                name,
                value.as_deref().unwrap_or(""),
                &format!("no such parameter for model '{}'", kind.name()),
            ));
        }
        let (dense, filters, units) = match kind {
            ModelKind::Mlp => (sizes("hidden", &self.hidden, &[128, 128])?, Vec::new(), 0),
            ModelKind::Cnn => (sizes("dense", &self.dense, &[64])?, sizes("filters", &self.filters, &[32, 64])?, 0),
            ModelKind::Cnn2d => (sizes("dense", &self.dense, &[128])?, sizes("filters", &self.filters, &[32, 64])?, 0),
            ModelKind::Lstm | ModelKind::Gru => (Vec::new(), Vec::new(), self.units.unwrap_or(64)),
            ModelKind::Lr | ModelKind::Tree => {
                return Err(invalid("model", kind.name(), "mlp, cnn, lstm, gru or cnn2d for the tensor engine"));
            }
        };
        let recurrent = matches!(kind, ModelKind::Lstm | ModelKind::Gru);
        if recurrent && units == 0 {
            return Err(invalid("units", "0", "at least 1"));
        }
        let step_features = self.step_features.unwrap_or(1);
        if step_features == 0 || !n_features.is_multiple_of(step_features) {
            return Err(invalid(
                "step_features",
                &step_features.to_string(),
                &format!("a divisor of the {n_features} features (values per time step)"),
            ));
        }
        let convolutional = matches!(kind, ModelKind::Cnn | ModelKind::Cnn2d);
        let (kernel_size, pool_size) =
            if convolutional { (self.kernel_size.unwrap_or(3), self.pool_size.unwrap_or(2)) } else { (0, 0) };
        if convolutional && (kernel_size == 0 || pool_size == 0) {
            return Err(invalid("kernel_size/pool_size", "0", "at least 1"));
        }
        let image_shape = if kind == ModelKind::Cnn2d {
            let text = self.image_shape.clone().unwrap_or_default();
            let shape = if text.is_empty() { square_image(n_features)? } else { parse_image_shape(&text)? };
            if shape.iter().product::<usize>() != n_features {
                return Err(invalid(
                    "image_shape",
                    &text,
                    &format!("a shape with as many values as the {n_features} features"),
                ));
            }
            Some(shape)
        } else {
            None
        };
        if !ACTIVATIONS.contains(&self.activation.as_str()) {
            return Err(invalid("activation", &self.activation, &ACTIVATIONS.join(", ")));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid("dropout", &self.dropout.to_string(), "a rate in [0, 1)"));
        }
        let arch = Architecture {
            kind,
            n_features,
            classes,
            dense,
            filters,
            kernel_size,
            pool_size,
            units,
            step_features: if recurrent { step_features } else { 1 },
            image_shape,
            activation: self.activation.clone(),
            dropout: self.dropout,
        };
        let default_lr = if self.optimizer == OptimizerKind::Sgd { 0.01 } else { 0.001 };
        let train = TrainParams {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer: self.optimizer,
            learning_rate: self.learning_rate.unwrap_or(default_lr),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.lr_schedule,
            lr_step_epochs: self.lr_step_epochs,
            lr_gamma: self.lr_gamma,
            patience: self.patience,
            balanced_class_weights: self.balanced_class_weights,
            log_every_steps: self.log_every_steps,
            shuffle_buffer: self.shuffle_buffer,
        };
        if train.epochs == 0 || train.batch_size == 0 || train.lr_step_epochs == 0 || train.shuffle_buffer == Some(0) {
            return Err(invalid("epochs/batch_size/lr_step_epochs/shuffle_buffer", "0", "at least 1"));
        }
        if !(train.learning_rate > 0.0 && train.learning_rate.is_finite()) {
            return Err(invalid("learning_rate", &train.learning_rate.to_string(), "a positive number"));
        }
        if !(0.0..1.0).contains(&train.momentum) {
            return Err(invalid("momentum", &train.momentum.to_string(), "a value in [0, 1)"));
        }
        Ok((arch, train))
    }
}

/// Saved architectures from before `step_features` read one value per step.
fn one() -> usize {
    1
}

fn square_image(n_features: usize) -> Result<[usize; 3]> {
    let side = (n_features as f64).sqrt().round() as usize;
    if side * side == n_features {
        Ok([side, side, 1])
    } else {
        Err(invalid(
            "image_shape",
            "(not given)",
            &format!("HxW or HxWxC: {n_features} features are not a square image"),
        ))
    }
}
