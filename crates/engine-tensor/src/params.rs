//! The tensor engine's parameters, read from a [`ParamMap`] with Keras's defaults.

use serde::{Deserialize, Serialize};
use trainbench_engine::{Error, ModelKind, ParamMap, Result};

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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Keras: beta 0.9 / 0.999, epsilon 1e-7).
    Adam,
    /// AdamW (Keras: weight decay 0.004).
    Adamw,
    /// Stochastic gradient descent with optional momentum (Keras: no dampening).
    Sgd,
}

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The same rate every epoch.
    Constant,
    /// Multiplied by `lr_gamma` every `lr_step_epochs` epochs.
    Step,
    /// Cosine decay from the rate to 0 over all epochs.
    Cosine,
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
}

fn list_or(map: &mut ParamMap, name: &str, default: &[usize]) -> Result<Vec<usize>> {
    let list = map.take_usize_list(name)?.unwrap_or_else(|| default.to_vec());
    if list.contains(&0) {
        return Err(invalid(name, &format!("{list:?}"), "sizes of at least 1"));
    }
    Ok(list)
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

/// Reads the architecture and the training parameters of `kind`; refuses unknown parameters.
pub fn parse(
    kind: ModelKind,
    mut map: ParamMap,
    n_features: usize,
    classes: usize,
) -> Result<(Architecture, TrainParams)> {
    let m = &mut map;
    let (dense, filters, units) = match kind {
        ModelKind::Mlp => (list_or(m, "hidden", &[128, 128])?, Vec::new(), 0),
        ModelKind::Cnn => (list_or(m, "dense", &[64])?, list_or(m, "filters", &[32, 64])?, 0),
        ModelKind::Cnn2d => (list_or(m, "dense", &[128])?, list_or(m, "filters", &[32, 64])?, 0),
        ModelKind::Lstm | ModelKind::Gru => (Vec::new(), Vec::new(), m.take_usize("units", 64)?),
        ModelKind::Lr | ModelKind::Tree => {
            return Err(invalid("model", kind.name(), "mlp, cnn, lstm, gru or cnn2d for the tensor engine"));
        }
    };
    let recurrent = matches!(kind, ModelKind::Lstm | ModelKind::Gru);
    if recurrent && units == 0 {
        return Err(invalid("units", "0", "at least 1"));
    }
    let step_features = if recurrent { m.take_usize("step_features", 1)? } else { 1 };
    if step_features == 0 || !n_features.is_multiple_of(step_features) {
        return Err(invalid(
            "step_features",
            &step_features.to_string(),
            &format!("a divisor of the {n_features} features (values per time step)"),
        ));
    }
    let convolutional = matches!(kind, ModelKind::Cnn | ModelKind::Cnn2d);
    let kernel_size = if convolutional { m.take_usize("kernel_size", 3)? } else { 0 };
    let pool_size = if convolutional { m.take_usize("pool_size", 2)? } else { 0 };
    if convolutional && (kernel_size == 0 || pool_size == 0) {
        return Err(invalid("kernel_size/pool_size", "0", "at least 1"));
    }
    let image_shape = if kind == ModelKind::Cnn2d {
        let text = m.take_string("image_shape", "");
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
    let activation = m.take_string("activation", "relu");
    if !["relu", "tanh", "sigmoid", "gelu", "linear"].contains(&activation.as_str()) {
        return Err(invalid("activation", &activation, "relu, tanh, sigmoid, gelu or linear"));
    }
    let dropout = m.take_f64("dropout", 0.0)?;
    if !(0.0..1.0).contains(&dropout) {
        return Err(invalid("dropout", &dropout.to_string(), "a rate in [0, 1)"));
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
        step_features,
        image_shape,
        activation,
        dropout,
    };

    let optimizer = match m.take_string("optimizer", "adam").as_str() {
        "adam" => OptimizerKind::Adam,
        "adamw" => OptimizerKind::Adamw,
        "sgd" => OptimizerKind::Sgd,
        other => return Err(invalid("optimizer", other, "adam, adamw or sgd")),
    };
    let default_lr = if optimizer == OptimizerKind::Sgd { 0.01 } else { 0.001 };
    let schedule = match m.take_string("lr_schedule", "constant").as_str() {
        "constant" => Schedule::Constant,
        "step" => Schedule::Step,
        "cosine" => Schedule::Cosine,
        other => return Err(invalid("lr_schedule", other, "constant, step or cosine")),
    };
    let train = TrainParams {
        epochs: m.take_usize("epochs", 10)?,
        batch_size: m.take_usize("batch_size", 32)?,
        optimizer,
        learning_rate: m.take_f64("learning_rate", default_lr)?,
        momentum: m.take_f64("momentum", 0.0)?,
        weight_decay: m.take_f64("weight_decay", 0.004)?,
        schedule,
        lr_step_epochs: m.take_usize("lr_step_epochs", 10)?,
        lr_gamma: m.take_f64("lr_gamma", 0.1)?,
        patience: m.take_usize("patience", 0)?,
        balanced_class_weights: m.take_bool("balanced_class_weights", false)?,
        log_every_steps: m.take_usize("log_every_steps", 100)?,
    };
    map.finish(kind)?;
    if train.epochs == 0 || train.batch_size == 0 || train.lr_step_epochs == 0 {
        return Err(invalid("epochs/batch_size/lr_step_epochs", "0", "at least 1"));
    }
    if !(train.learning_rate > 0.0 && train.learning_rate.is_finite()) {
        return Err(invalid("learning_rate", &train.learning_rate.to_string(), "a positive number"));
    }
    if !(0.0..1.0).contains(&train.momentum) {
        return Err(invalid("momentum", &train.momentum.to_string(), "a value in [0, 1)"));
    }
    Ok((arch, train))
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
