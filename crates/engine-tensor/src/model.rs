//! The networks, built from an [`Architecture`] with Keras's layer defaults.
//!
//! Keras initializes Dense and Conv kernels with Glorot-uniform and biases with zeros, and an
//! LSTM's forget-gate bias with ones (`unit_forget_bias`); Burn's defaults differ (Kaiming), so
//! the layers here are configured to match. The head is a softmax over the classes, also for
//! two classes (equivalent to a sigmoid unit, with the same loss).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool1dConfig, MaxPool2dConfig};
use burn::nn::{GateController, Gru, GruConfig, Initializer, Linear, LinearConfig, Lstm, LstmConfig};
use burn::tensor::{Device, Tensor, TensorData, activation};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainbench_engine::{Error, ModelKind, Result};

use crate::fused;
use crate::params::Architecture;

const GLOROT: Initializer = Initializer::XavierUniform { gain: 1.0 };

/// A network: the layers `arch` asks for, applied in Keras's order.
#[derive(Module, Debug)]
pub struct Net {
    conv1d: Vec<Conv1d>,
    conv2d: Vec<Conv2d>,
    lstm: Option<Lstm>,
    gru: Option<Gru>,
    dense: Vec<Linear>,
    head: Linear,
    #[module(skip)]
    arch: Architecture,
}

/// A tensor's values as f32, row-major.
fn values(data: TensorData) -> Result<Vec<f32>> {
    data.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::ModelState(format!("reading weights: {e:?}")))
}

/// A convolution's weights (`filters × channels × kernel...`) and bias.
fn conv_layer<const D: usize>(weight: &Param<Tensor<D>>, bias: Option<&Param<Tensor<1>>>) -> Result<ConvLayer> {
    let dims = weight.dims().to_vec();
    let bias = match bias {
        Some(b) => values(b.val().into_data())?,
        None => vec![0.0; dims[0]],
    };
    Ok(ConvLayer { dims, weights: values(weight.val().into_data())?, bias })
}

/// `gates`' weights stacked as ONNX's LSTM and GRU take them: W `[gates·H, I]`, R `[gates·H, H]`
/// (each gate's matrix transposed from Burn's `in × out`), B `[2·gates·H]` (the input biases of
/// every gate, then the hidden ones).
fn recurrent(gates: &[&GateController]) -> Result<ExportedFront> {
    let transposed = |t: Tensor<2>| values(t.transpose().into_data());
    let bias = |l: &Linear, n: usize| match &l.bias {
        Some(b) => values(b.val().into_data()),
        None => Ok(vec![0.0; n]),
    };
    let (mut w, mut r, mut bw, mut br) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let [inputs, units] = gates[0].input_transform.weight.dims();
    for g in gates {
        w.extend(transposed(g.input_transform.weight.val())?);
        r.extend(transposed(g.hidden_transform.weight.val())?);
        bw.extend(bias(&g.input_transform, units)?);
        br.extend(bias(&g.hidden_transform, units)?);
    }
    bw.extend(br);
    Ok(ExportedFront::Recurrent { inputs, units, w, r, b: bw })
}

/// A network's parameters for export ([`Net::export`]).
#[derive(Debug, Clone)]
pub struct ExportedNet {
    /// The architecture (kind, activation, kernel and pool sizes, image shape, step width).
    pub arch: Architecture,
    /// The layers before the dense ones.
    pub front: ExportedFront,
    /// The dense layers, then the head.
    pub dense: Vec<DenseLayer>,
}

/// The layers before the dense ones.
#[derive(Debug, Clone)]
pub enum ExportedFront {
    /// An MLP: none.
    None,
    /// Convolutions (1-D: weights `filters × channels × kernel`; 2-D: `filters × channels × k ×
    /// k`), each followed by the activation and a max pool where the length allows.
    Convolutions(Vec<ConvLayer>),
    /// One LSTM or GRU layer in ONNX's layout (see `recurrent`).
    Recurrent {
        /// Values per time step.
        inputs: usize,
        /// Hidden units.
        units: usize,
        /// `[gates·units, inputs]`.
        w: Vec<f32>,
        /// `[gates·units, units]`.
        r: Vec<f32>,
        /// `[2·gates·units]`.
        b: Vec<f32>,
    },
}

/// A convolution's parameters.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    /// The weight tensor's shape.
    pub dims: Vec<usize>,
    /// Row-major weights.
    pub weights: Vec<f32>,
    /// One per filter.
    pub bias: Vec<f32>,
}

/// A dense layer's parameters: `y = x · W + b`, W `inputs × outputs` row-major (Burn's layout).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// Width in.
    pub inputs: usize,
    /// Width out.
    pub outputs: usize,
    /// `inputs × outputs`, row-major.
    pub weights: Vec<f32>,
    /// `outputs` values.
    pub bias: Vec<f32>,
}

/// Where dropout masks come from: a seeded generator of our own rather than the backend's global
/// one, so a run is reproducible with replicas on several threads and after a resume.
pub struct DropoutMasks {
    rng: ChaCha8Rng,
}

impl DropoutMasks {
    /// Masks for one (epoch, step, replica).
    pub fn new(seed: u64, epoch: usize, step: usize, replica: usize) -> Self {
        let stream = ((epoch as u64) << 40) ^ ((step as u64) << 8) ^ replica as u64;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_d20f);
        rng.set_stream(stream);
        Self { rng }
    }

    fn apply(&mut self, x: Tensor<2>, rate: f64) -> Tensor<2> {
        if rate <= 0.0 {
            return x;
        }
        let [rows, cols] = x.dims();
        let keep = 1.0 / (1.0 - rate) as f32;
        let mask: Vec<f32> =
            (0..rows * cols).map(|_| if self.rng.random::<f64>() < rate { 0.0 } else { keep }).collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [rows, cols]), (&x.device(), x.dtype()));
        x * mask
    }
}

fn dense(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let mut layer = LinearConfig::new(d_in, d_out).with_initializer(GLOROT).init(device);
    layer.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    layer
}

/// Sequence length after a valid convolution of `kernel` and a max-pool of `pool`.
fn conv_pool_len(len: usize, kernel: usize, pool: usize) -> Option<usize> {
    let conv = len.checked_sub(kernel)? + 1;
    Some(if conv >= pool { conv / pool } else { conv })
}

impl Architecture {
    /// Weights the network has (for the size check before training).
    pub fn weight_count(&self) -> Result<usize> {
        Ok(self.layer_sizes()?.0)
    }

    /// Activations kept per row during a forward pass (for the memory estimate).
    pub fn activations_per_row(&self) -> Result<usize> {
        Ok(self.layer_sizes()?.1)
    }

    /// (weights, activations per row, width entering the dense layers).
    fn layer_sizes(&self) -> Result<(usize, usize, usize)> {
        let too_short = |what: String| {
            Error::Data(format!(
                "{} features are too few for {what}; use fewer convolution layers or a smaller kernel_size",
                self.n_features
            ))
        };
        let mut weights = 0usize;
        let mut acts = 0usize;
        let width = match self.kind {
            ModelKind::Mlp => self.n_features,
            ModelKind::Cnn => {
                let (mut len, mut channels) = (self.n_features, 1);
                for (i, &f) in self.filters.iter().enumerate() {
                    len = conv_pool_len(len, self.kernel_size, self.pool_size)
                        .ok_or_else(|| too_short(format!("convolution {} of kernel {}", i + 1, self.kernel_size)))?;
                    weights += f * channels * self.kernel_size + f;
                    acts += 2 * f * len * self.pool_size;
                    channels = f;
                }
                len * channels
            }
            ModelKind::Cnn2d => {
                let [mut h, mut w, mut channels] = self.image_shape.unwrap_or([0, 0, 0]);
                for (i, &f) in self.filters.iter().enumerate() {
                    let msg = || too_short(format!("2-D convolution {} of kernel {}", i + 1, self.kernel_size));
                    h = conv_pool_len(h, self.kernel_size, self.pool_size).ok_or_else(msg)?;
                    w = conv_pool_len(w, self.kernel_size, self.pool_size).ok_or_else(msg)?;
                    weights += f * channels * self.kernel_size * self.kernel_size + f;
                    acts += 2 * f * h * w * self.pool_size * self.pool_size;
                    channels = f;
                }
                h * w * channels
            }
            ModelKind::Lstm | ModelKind::Gru => {
                let gates = if self.kind == ModelKind::Lstm { 4 } else { 3 };
                // Input and hidden transforms per gate, each with a bias.
                weights += gates * (self.step_features + 1 + self.units + 1) * self.units;
                acts += self.n_features / self.step_features.max(1) * self.units * (gates + 2);
                self.units
            }
            ModelKind::Lr | ModelKind::Tree => 0,
        };
        let mut d_in = width;
        for &d in &self.dense {
            weights += d_in * d + d;
            acts += 2 * d;
            d_in = d;
        }
        weights += d_in * self.classes + self.classes;
        acts += self.classes + width;
        Ok((weights, acts, width))
    }
}

/// One gate's input and hidden weights and their summed biases.
fn gate_weights(gate: &GateController) -> (Tensor<2>, Tensor<2>, Tensor<1>) {
    let bias = |l: &Linear| l.bias.as_ref().map(|b| b.val());
    let (wx, wh) = (gate.input_transform.weight.val(), gate.hidden_transform.weight.val());
    let b = match (bias(&gate.input_transform), bias(&gate.hidden_transform)) {
        (Some(a), Some(b)) => a + b,
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => Tensor::zeros([wx.dims()[1]], (&wx.device(), wx.dtype())),
    };
    (wx, wh, b)
}

/// The input's contribution to every gate at step `t`: the step's values (columns
/// `t·s .. (t+1)·s` of each row, `s` = rows of `wx`) times the gates' input weights, plus the
/// biases. Computed per step from the input (which needs no gradient) rather than sliced out
/// of an all-steps projection, whose slices' backward would each allocate and fill a tensor
/// the size of all steps. One value per step is a broadcast product, cheaper than a matmul.
fn input_step(x: &Tensor<2>, t: usize, wx: &Tensor<2>, b: &Tensor<2>) -> Tensor<2> {
    let rows = x.dims()[0];
    let s = wx.dims()[0];
    let xt = x.clone().slice([0..rows, t * s..(t + 1) * s]);
    let projected = if s == 1 { xt * wx.clone() } else { xt.matmul(wx.clone()) };
    projected + b.clone()
}

/// The last hidden state of an LSTM over the `rows × (steps · step values)` input, as Keras's LSTM:
/// i, f, o = σ(Wx + Uh + b), g = tanh(Wx + Uh + b), c = f·c + i·g, h = o·tanh(c).
/// The four gates are computed together (one product with the hidden state per step), which
/// matters on CPU where the cost is per operation at these sizes.
fn lstm_last_state(lstm: &Lstm, x: &Tensor<2>, units: usize) -> Tensor<2> {
    let [rows, d] = x.dims();
    let forget = lstm.forget_gate.as_ref().expect("built with a forget gate");
    // Order i, f, o (sigmoid) then g (tanh).
    let parts: Vec<_> =
        [&lstm.input_gate, forget, &lstm.output_gate, &lstm.cell_gate].into_iter().map(gate_weights).collect();
    let wx = Tensor::cat(parts.iter().map(|p| p.0.clone()).collect(), 1);
    let wh = Tensor::cat(parts.iter().map(|p| p.1.clone()).collect(), 1);
    let b = Tensor::cat(parts.iter().map(|p| p.2.clone()).collect(), 0).reshape([1, 4 * units]);
    let zeros = Tensor::<2>::zeros([rows, units], (&x.device(), x.dtype()));
    let (mut h, mut c) = (zeros.clone(), zeros);
    let use_fused = fused::supported(x);
    for t in 0..d / wx.dims()[0] {
        let z = input_step(x, t, &wx, &b) + h.matmul(wh.clone());
        if use_fused {
            c = fused::lstm_cell(z.clone(), c);
            h = fused::lstm_hidden(z, c.clone());
            continue;
        }
        let sig = activation::sigmoid(z.clone().slice([0..rows, 0..3 * units]));
        let g = activation::tanh(z.slice([0..rows, 3 * units..4 * units]));
        let i = sig.clone().slice([0..rows, 0..units]);
        let f = sig.clone().slice([0..rows, units..2 * units]);
        let o = sig.slice([0..rows, 2 * units..3 * units]);
        c = f * c + i * g;
        h = o * activation::tanh(c.clone());
    }
    h
}

/// The last hidden state of a GRU over the `rows × (steps · step values)` input, as Keras's GRU
/// (reset_after=True): z, r = σ(Wx + Uh + b), n = tanh(Wx + b + r·(Uh + b')), h = z·h + (1 − z)·n.
fn gru_last_state(gru: &Gru, x: &Tensor<2>, units: usize) -> Tensor<2> {
    let [rows, d] = x.dims();
    let gates = [&gru.update_gate, &gru.reset_gate, &gru.new_gate];
    let bias = |l: &Linear| match &l.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([units], (&x.device(), x.dtype())),
    };
    let wx = Tensor::cat(gates.iter().map(|g| g.input_transform.weight.val()).collect(), 1);
    let bx = Tensor::cat(gates.iter().map(|g| bias(&g.input_transform)).collect(), 0).reshape([1, 3 * units]);
    let wh = Tensor::cat(gates.iter().map(|g| g.hidden_transform.weight.val()).collect(), 1);
    let bh = Tensor::cat(gates.iter().map(|g| bias(&g.hidden_transform)).collect(), 0).reshape([1, 3 * units]);
    let mut h = Tensor::<2>::zeros([rows, units], (&x.device(), x.dtype()));
    let use_fused = fused::supported(x);
    for t in 0..d / wx.dims()[0] {
        let xt = input_step(x, t, &wx, &bx);
        let ht = h.clone().matmul(wh.clone()) + bh.clone();
        if use_fused {
            h = fused::gru_cell(xt, ht, h);
            continue;
        }
        let zr =
            activation::sigmoid(xt.clone().slice([0..rows, 0..2 * units]) + ht.clone().slice([0..rows, 0..2 * units]));
        let z = zr.clone().slice([0..rows, 0..units]);
        let r = zr.slice([0..rows, units..2 * units]);
        let n =
            activation::tanh(xt.slice([0..rows, 2 * units..3 * units]) + r * ht.slice([0..rows, 2 * units..3 * units]));
        h = z.clone() * h + z.neg().add_scalar(1.0) * n;
    }
    h
}

impl Net {
    /// A freshly initialized network (initialization draws from `device`'s seeded generator).
    pub fn new(arch: &Architecture, device: &Device) -> Result<Self> {
        let (_, _, flat) = arch.layer_sizes()?;
        let mut conv1d = Vec::new();
        let mut conv2d = Vec::new();
        let (mut lstm, mut gru) = (None, None);
        let mut channels = 1;
        match arch.kind {
            ModelKind::Cnn => {
                for &f in &arch.filters {
                    let mut conv =
                        Conv1dConfig::new(channels, f, arch.kernel_size).with_initializer(GLOROT).init(device);
                    conv.bias = Some(Param::from_tensor(Tensor::zeros([f], device)));
                    conv1d.push(conv);
                    channels = f;
                }
            }
            ModelKind::Cnn2d => {
                channels = arch.image_shape.map_or(1, |s| s[2]);
                for &f in &arch.filters {
                    let k = arch.kernel_size;
                    let mut conv = Conv2dConfig::new([channels, f], [k, k]).with_initializer(GLOROT).init(device);
                    conv.bias = Some(Param::from_tensor(Tensor::zeros([f], device)));
                    conv2d.push(conv);
                    channels = f;
                }
            }
            ModelKind::Lstm => {
                let mut layer =
                    LstmConfig::new(arch.step_features, arch.units, true).with_initializer(GLOROT).init(device);
                if let Some(gate) = layer.forget_gate.as_mut() {
                    gate.input_transform.bias = Some(Param::from_tensor(Tensor::ones([arch.units], device)));
                }
                lstm = Some(layer);
            }
            ModelKind::Gru => {
                gru = Some(GruConfig::new(arch.step_features, arch.units, true).with_initializer(GLOROT).init(device));
            }
            _ => {}
        }
        let mut dense_layers = Vec::new();
        let mut d_in = flat;
        for &d in &arch.dense {
            dense_layers.push(dense(d_in, d, device));
            d_in = d;
        }
        Ok(Self {
            conv1d,
            conv2d,
            lstm,
            gru,
            dense: dense_layers,
            head: dense(d_in, arch.classes, device),
            arch: arch.clone(),
        })
    }

    /// The architecture it was built from.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// Every parameter an exporter needs, in the layouts ONNX's operators take: the layers before
    /// the dense ones (convolutions, or the recurrent layer), then the dense layers and the head.
    pub fn export(&self) -> Result<ExportedNet> {
        let front = match self.arch.kind {
            ModelKind::Cnn => ExportedFront::Convolutions(
                self.conv1d.iter().map(|c| conv_layer(&c.weight, c.bias.as_ref())).collect::<Result<_>>()?,
            ),
            ModelKind::Cnn2d => ExportedFront::Convolutions(
                self.conv2d.iter().map(|c| conv_layer(&c.weight, c.bias.as_ref())).collect::<Result<_>>()?,
            ),
            ModelKind::Lstm => {
                let lstm = self.lstm.as_ref().ok_or_else(|| Error::ModelState("an lstm without its layer".into()))?;
                let forget = lstm
                    .forget_gate
                    .as_ref()
                    .ok_or_else(|| Error::ModelState("an lstm without a forget gate".into()))?;
                // ONNX's gate order: input, output, forget, cell.
                recurrent(&[&lstm.input_gate, &lstm.output_gate, forget, &lstm.cell_gate])?
            }
            ModelKind::Gru => {
                let gru = self.gru.as_ref().ok_or_else(|| Error::ModelState("a gru without its layer".into()))?;
                // ONNX's gate order: update, reset, new (hidden).
                recurrent(&[&gru.update_gate, &gru.reset_gate, &gru.new_gate])?
            }
            _ => ExportedFront::None,
        };
        Ok(ExportedNet { arch: self.arch.clone(), front, dense: self.dense_layers()? })
    }

    /// The dense layers, then the head, input first.
    fn dense_layers(&self) -> Result<Vec<DenseLayer>> {
        self.dense
            .iter()
            .chain(std::iter::once(&self.head))
            .map(|l| {
                let [inputs, outputs] = l.weight.dims();
                let bias = match &l.bias {
                    Some(b) => values(b.val().into_data())?,
                    None => vec![0.0; outputs],
                };
                Ok(DenseLayer { inputs, outputs, weights: values(l.weight.val().into_data())?, bias })
            })
            .collect()
    }

    fn act<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self.arch.activation.as_str() {
            "relu" => activation::relu(x),
            "tanh" => activation::tanh(x),
            "sigmoid" => activation::sigmoid(x),
            "gelu" => activation::gelu(x),
            _ => x,
        }
    }

    /// Logits (`rows × classes`) for `rows × n_features` inputs; dropout only when `masks` is given
    /// (training).
    pub fn forward(&self, x: Tensor<2>, mut masks: Option<&mut DropoutMasks>) -> Tensor<2> {
        let [rows, d] = x.dims();
        let mut x = match self.arch.kind {
            ModelKind::Cnn => {
                let mut seq = x.reshape([rows, 1, d]);
                // ReLU (Keras's usual choice) or no activation: convolution, activation and
                // pooling in one fused operation; other activations go through Burn's layers.
                let relu = match self.arch.activation.as_str() {
                    "relu" => Some(true),
                    "linear" => Some(false),
                    _ => None,
                };
                let use_fused = fused::supported(&seq) && relu.is_some();
                let pool = self.arch.pool_size;
                for conv in &self.conv1d {
                    let out_len = seq.dims()[2] + 1 - self.arch.kernel_size;
                    let pooled = if out_len >= pool { pool } else { 1 };
                    seq = match (&conv.bias, relu) {
                        (Some(bias), Some(relu)) if use_fused => {
                            fused::conv1d_pool(seq, conv.weight.val(), bias.val(), relu, pooled)
                        }
                        _ => {
                            let activated = self.act(conv.forward(seq));
                            if pooled > 1 { MaxPool1dConfig::new(pool).init().forward(activated) } else { activated }
                        }
                    };
                }
                let [_, c, l] = seq.dims();
                seq.reshape([rows, c * l])
            }
            ModelKind::Cnn2d => {
                let [h, w, c] = self.arch.image_shape.unwrap_or([d, 1, 1]);
                // Pixels come channels-last (as in a CSV of pixel columns); convolutions want NCHW.
                let mut img = x.reshape([rows, h, w, c]).permute([0, 3, 1, 2]);
                for conv in &self.conv2d {
                    img = self.act(conv.forward(img));
                    let [_, _, h, w] = img.dims();
                    let p = self.arch.pool_size;
                    if h >= p && w >= p {
                        img = MaxPool2dConfig::new([p, p]).init().forward(img);
                    }
                }
                let [_, c, h, w] = img.dims();
                img.reshape([rows, c * h * w])
            }
            ModelKind::Lstm | ModelKind::Gru => {
                // Every `step_features` columns are one time step; the head reads the last hidden state.
                // The steps run here rather than through Burn's Lstm/Gru::forward, which allocate
                // their output sequence in the default float dtype (breaking bf16 / f16 / f64)
                // and keep every step's state when the head needs only the last.
                let last = match (&self.lstm, &self.gru) {
                    (Some(lstm), _) => lstm_last_state(lstm, &x, self.arch.units),
                    (_, Some(gru)) => gru_last_state(gru, &x, self.arch.units),
                    _ => unreachable!("recurrent network without a recurrent layer"),
                };
                match masks.as_deref_mut() {
                    Some(m) => m.apply(last, self.arch.dropout),
                    None => last,
                }
            }
            _ => x,
        };
        for layer in &self.dense {
            x = self.act(layer.forward(x));
            if let Some(m) = masks.as_deref_mut() {
                x = m.apply(x, self.arch.dropout);
            }
        }
        self.head.forward(x)
    }
}
