//! Multilayer perceptron as MLlib's MultilayerPerceptronClassifier (Spark's neural network):
//! sigmoid hidden layers, a softmax output with cross-entropy loss, rows stacked into blocks
//! of `blockSize` so each layer is a matrix product, trained by L-BFGS (default) or full-batch
//! gradient descent, every iteration one tree aggregation of the gradient over the partitions.
//!
//! The arithmetic is MLlib's: f64 throughout (`precision = f64`, the default), the loss and
//! gradient of each block averaged over its rows, then over the blocks. `precision = f32` runs
//! the forward and backward passes in f32 (twice the GEMM rate) with the gradient still summed in
//! f64: faster, and no longer what Spark computes.

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use trainbench_data::{Partitioned, Prepared};
use trainbench_engine::kernels::{Float, gemm, sigmoid_in_place};
use trainbench_engine::{Error, LogEntry, Precision, Progress, Result, StepUnit, TrainLog, TrainedModel};

use crate::executor::{Executor, add_into};
use crate::optim::{Objective, Settings, Validate, minimize};
use crate::params::{MlpParams, MlpSolver};

/// A fitted network: per layer, weights (out × in, row-major) then biases (out), concatenated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpModel {
    /// Layer sizes, input to output.
    pub layers: Vec<usize>,
    /// All weights.
    pub weights: Vec<f64>,
    /// The arithmetic it was trained in, and predicts in: f64 or f32.
    #[serde(default = "f32_before_f64")]
    pub precision: Precision,
}

/// Model files from before f64 was the default hold f32 networks.
fn f32_before_f64() -> Precision {
    Precision::F32
}

/// Where each layer's weights and biases start in the flat vector.
fn layer_offsets(layers: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    for w in layers.windows(2) {
        out.push((at, at + w[0] * w[1]));
        at += w[0] * w[1] + w[1];
    }
    out
}

/// How a row-major matrix is read: as stored, or transposed.
#[derive(Clone, Copy)]
enum Read {
    AsIs,
    Transposed,
}

/// op(M) read as `rows × cols` from a row-major buffer, as the GEMM's (row, column) strides.
fn strides(read: Read, rows: usize, cols: usize) -> [usize; 2] {
    match read {
        Read::AsIs => [cols, 1],
        Read::Transposed => [1, rows],
    }
}

/// C (m × n) = op(A) (m × k) · op(B) (k × n), every matrix row-major.
fn matmul<T: Float>((m, k, n): (usize, usize, usize), a: &[T], read_a: Read, b: &[T], read_b: Read, c: &mut [T]) {
    gemm([m, k, n], (a, strides(read_a, m, k)), (b, strides(read_b, k, n)), c);
}

/// A network's weights in the arithmetic of one fit: the unit of work of every L-BFGS step.
pub struct Network<T> {
    layers: Vec<usize>,
    offsets: Vec<(usize, usize)>,
    weights: Vec<T>,
}

/// Buffers a partition reuses from block to block: activations and backward scratch.
pub struct MlpWorkspace<T> {
    acts: Vec<Vec<T>>,
    delta: Vec<T>,
    back: Vec<T>,
    block_grad: Vec<T>,
}

impl<T> Default for MlpWorkspace<T> {
    fn default() -> Self {
        Self { acts: Vec::new(), delta: Vec::new(), back: Vec::new(), block_grad: Vec::new() }
    }
}

impl<T: Float> Network<T> {
    /// The network of `layers` (input to output) with `weights` laid out as [`MlpModel`]'s.
    pub fn new(layers: &[usize], weights: &[f64]) -> Self {
        Self {
            layers: layers.to_vec(),
            offsets: layer_offsets(layers),
            weights: weights.iter().map(|&w| T::from_f64(w)).collect(),
        }
    }

    /// Number of weights (biases included).
    pub fn weight_count(&self) -> usize {
        self.weights.len()
    }

    /// Activations of every layer for a block of `rows` rows (`x` is rows × inputs).
    fn forward(&self, x: &[f32], rows: usize, acts: &mut Vec<Vec<T>>) {
        acts.resize(self.layers.len(), Vec::new());
        acts[0].clear();
        acts[0].extend(x.iter().map(|&v| T::from_f32(v)));
        let last = self.layers.len() - 1;
        for l in 0..last {
            let (inp, out) = (self.layers[l], self.layers[l + 1]);
            let (w_at, b_at) = self.offsets[l];
            let mut z = std::mem::take(&mut acts[l + 1]);
            z.resize(rows * out, T::default());
            // Z = A · Wᵀ, with W stored out × in.
            matmul((rows, inp, out), &acts[l], Read::AsIs, &self.weights[w_at..b_at], Read::Transposed, &mut z);
            let bias = &self.weights[b_at..b_at + out];
            for row in z.chunks_exact_mut(out) {
                for (v, &b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
            if l + 1 < last {
                sigmoid_in_place(&mut z);
            } else {
                for row in z.chunks_exact_mut(out) {
                    let max = row.iter().copied().fold(row[0], |m, v| if v > m { v } else { m });
                    let mut sum = T::default();
                    for v in row.iter_mut() {
                        *v = (*v - max).exp_nonpositive();
                        sum += *v;
                    }
                    row.iter_mut().for_each(|v| *v = *v / sum);
                }
            }
            acts[l + 1] = z;
        }
    }

    /// One block of rows through the network and back: adds `weight` × the block's summed
    /// cross-entropy into `loss` and `weight` × its summed gradient (laid out as the weights)
    /// into `grad`. MLlib averages each block (`weight` = 1 / its rows). `x` is rows × inputs,
    /// one label per row. Public so `bench/kernels/spark_kernels.rs` times the code the engine runs.
    pub fn add_block_loss_gradient(
        &self,
        x: &[f32],
        labels: &[u32],
        weight: f64,
        work: &mut MlpWorkspace<T>,
        loss: &mut f64,
        grad: &mut [f64],
    ) {
        let rows = labels.len();
        assert!(
            x.len() == rows * self.layers[0] && grad.len() == self.weights.len(),
            "add_block_loss_gradient: shapes disagree"
        );
        self.forward(x, rows, &mut work.acts);
        let last = self.layers.len() - 1;
        let classes = self.layers[last];
        // Softmax with cross-entropy: δ = p − onehot(y).
        let mut delta = std::mem::take(&mut work.delta);
        delta.clear();
        delta.extend_from_slice(&work.acts[last]);
        let mut block_loss = 0.0;
        for (i, &y) in labels.iter().enumerate() {
            let p = delta[i * classes + y as usize];
            // Clamp a zero probability, but let NaN through so divergence is seen.
            let p = p.to_f64();
            block_loss -= if p.is_nan() { f64::NAN } else { p.max(T::MIN_POSITIVE.to_f64()).ln() };
            delta[i * classes + y as usize] -= T::ONE;
        }
        *loss += weight * block_loss;
        for l in (0..last).rev() {
            let (inp, out) = (self.layers[l], self.layers[l + 1]);
            let (w_at, b_at) = self.offsets[l];
            work.block_grad.resize(out * inp, T::default());
            // ∂W = δᵀ · A.
            matmul((out, rows, inp), &delta, Read::Transposed, &work.acts[l], Read::AsIs, &mut work.block_grad);
            for (g, v) in grad[w_at..b_at].iter_mut().zip(&work.block_grad) {
                *g += weight * v.to_f64();
            }
            let bias_grad = &mut grad[b_at..b_at + out];
            for row in delta.chunks_exact(out) {
                for (g, v) in bias_grad.iter_mut().zip(row) {
                    *g += weight * v.to_f64();
                }
            }
            if l > 0 {
                // δ_prev = (δ · W) ⊙ a (1 − a) for the sigmoid layer below.
                work.back.resize(rows * inp, T::default());
                matmul((rows, out, inp), &delta, Read::AsIs, &self.weights[w_at..b_at], Read::AsIs, &mut work.back);
                for (d, &a) in work.back.iter_mut().zip(&work.acts[l]) {
                    *d = *d * (a * (T::ONE - a));
                }
                std::mem::swap(&mut delta, &mut work.back);
            }
        }
        work.delta = delta;
    }

    /// Class probabilities of every row, in blocks of 128.
    fn predict_proba(&self, features: &[f32]) -> Vec<f32> {
        let d = self.layers[0];
        let mut out = Vec::with_capacity(features.len() / d.max(1) * self.layers[self.layers.len() - 1]);
        let mut acts = Vec::new();
        for block in features.chunks(128 * d) {
            self.forward(block, block.len() / d, &mut acts);
            out.extend(acts.last().map_or(&[][..], |a| &a[..]).iter().map(|v| v.to_f64() as f32));
        }
        out
    }
}

impl TrainedModel for MlpModel {
    fn classes(&self) -> usize {
        *self.layers.last().unwrap_or(&0)
    }

    fn n_features(&self) -> usize {
        self.layers[0]
    }

    fn predict_proba(&self, features: &[f32]) -> Result<Vec<f32>> {
        let d = self.n_features();
        if d == 0 || !features.len().is_multiple_of(d) {
            return Err(Error::Data(format!("{} values are not whole rows of {d} features", features.len())));
        }
        match self.precision {
            Precision::F64 => Ok(Network::<f64>::new(&self.layers, &self.weights).predict_proba(features)),
            Precision::F32 => Ok(Network::<f32>::new(&self.layers, &self.weights).predict_proba(features)),
            other => {
                Err(Error::ModelState(format!("an mlp model in {other} arithmetic: the spark engine's are f64 or f32")))
            }
        }
    }

    fn to_json(&self) -> Result<serde_json::Value> {
        crate::encode(self)
    }
}

/// MLlib's objective: the cross-entropy of each block averaged over its rows, then over all
/// blocks (each partition cut into blocks of `block_size`, the last one possibly shorter).
struct CrossEntropy<'a> {
    exec: &'a Executor,
    data: &'a Partitioned<'a>,
    layers: Vec<usize>,
    block_size: usize,
    precision: Precision,
}

impl CrossEntropy<'_> {
    fn sums<T: Float>(&self, x: &[f64]) -> Vec<f64> {
        let net = Network::<T>::new(&self.layers, x);
        let d = self.layers[0];
        self.exec
            .tree_aggregate(
                self.data.len(),
                |p| {
                    let part = self.data.partition(p);
                    // [loss, gradient...]
                    let mut s = vec![0.0; 1 + x.len()];
                    let (loss, grad) = s.split_at_mut(1);
                    let mut work = MlpWorkspace::default();
                    for (block, labels) in
                        part.features.chunks(self.block_size * d).zip(part.labels.chunks(self.block_size))
                    {
                        let weight = 1.0 / labels.len() as f64;
                        net.add_block_loss_gradient(block, labels, weight, &mut work, &mut loss[0], grad);
                    }
                    s
                },
                add_into,
            )
            .unwrap_or_default()
    }
}

impl Objective for CrossEntropy<'_> {
    fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
        // The parameters' check admits f64 and f32 only.
        let sums = if self.precision == Precision::F64 { self.sums::<f64>(x) } else { self.sums::<f32>(x) };
        let blocks: usize = (0..self.data.len()).map(|p| self.data.partition(p).rows().div_ceil(self.block_size)).sum();
        let n = blocks.max(1) as f64;
        (sums[0] / n, sums[1..].iter().map(|g| g / n).collect())
    }
}

/// MLlib's initial weights: uniform in ±2.4 / √(inputs of the layer), biases included.
fn initial_weights(layers: &[usize], seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = Vec::new();
    for pair in layers.windows(2) {
        let scale = 1.0 / (pair[0] as f64).sqrt();
        for _ in 0..pair[0] * pair[1] + pair[1] {
            w.push((rng.random::<f64>() * 4.8 - 2.4) * scale);
        }
    }
    w
}

/// Fits on partitioned training rows from weights drawn with `seed`; `valid` rows, where given,
/// are scored every iteration.
pub fn fit(
    exec: &Executor,
    data: &Partitioned,
    classes: usize,
    params: &MlpParams,
    seed: u64,
    valid: Option<&Prepared>,
    progress: &dyn Progress,
) -> Result<(MlpModel, TrainLog)> {
    let start = Instant::now();
    let d = data.data.n_features;
    params.check_size(d, classes)?;
    let layers = params.layers(d, classes);
    let objective =
        CrossEntropy { exec, data, layers: layers.clone(), block_size: params.block_size, precision: params.precision };
    let model_at = |x: &[f64]| MlpModel { layers: layers.clone(), weights: x.to_vec(), precision: params.precision };
    let score = valid.map(|v| move |x: &[f64]| crate::validation_scores(&model_at(x), v));
    let validate = score.as_ref().map(|f| f as Validate);
    let x0 = initial_weights(&layers, seed);
    let (x, entries, stop_reason, eval_seconds) = match params.solver {
        MlpSolver::LBfgs => {
            let settings = Settings { max_iter: params.max_iter, tol: params.tol, l1: Vec::new() };
            let out = minimize(&objective, x0, &settings, start, validate, progress)?;
            (out.x, out.log, out.stop_reason.text().to_owned(), out.eval_seconds)
        }
        MlpSolver::Gd => gradient_descent(&objective, x0, params, start, validate, progress)?,
    };
    let model = model_at(&x);
    let log = TrainLog {
        entries,
        fit_seconds: start.elapsed().as_secs_f64(),
        stop_reason,
        eval_seconds,
        resumed_epochs: None,
        communication_seconds: None,
    };
    Ok((model, log))
}

/// MLlib's GradientDescent with the SimpleUpdater and miniBatchFraction 1: step
/// `stepSize / √t`; converged when an update moves the weights less than `tol · max(‖w‖, 1)`
/// (checked from the second update on, as MLlib compares two updates' results).
fn gradient_descent(
    objective: &CrossEntropy,
    mut w: Vec<f64>,
    params: &MlpParams,
    start: Instant,
    validate: Option<Validate>,
    progress: &dyn Progress,
) -> Result<(Vec<f64>, Vec<LogEntry>, String, f64)> {
    progress.begin(StepUnit::Iteration, params.max_iter);
    let mut log = Vec::new();
    let mut eval_seconds = 0.0;
    for t in 1..=params.max_iter {
        let (loss, grad) = objective.evaluate(&w);
        if !loss.is_finite() {
            return Err(Error::diverged(format!("iteration {t}"), loss));
        }
        let step = params.step_size / (t as f64).sqrt();
        let mut moved = 0.0;
        for (wi, g) in w.iter_mut().zip(&grad) {
            let delta = step * g;
            *wi -= delta;
            moved += delta * delta;
        }
        let (valid_loss, valid_accuracy) = match validate {
            Some(score) => {
                let clock = Instant::now();
                let (l, a) = score(&w);
                eval_seconds += clock.elapsed().as_secs_f64();
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        log.push(LogEntry {
            step: t,
            loss,
            valid_loss,
            valid_accuracy,
            elapsed_seconds: start.elapsed().as_secs_f64() - eval_seconds,
            extra: [("evaluations".to_owned(), t as f64)].into(),
        });
        progress.entry(&log[log.len() - 1]);
        let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
        if t > 1 && moved.sqrt() < params.tol * norm.max(1.0) {
            return Ok((w, log, "converged".into(), eval_seconds));
        }
    }
    Ok((w, log, "max iterations reached".into(), eval_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backpropagation against central finite differences of the loss, in f64 (tight) and in
    /// f32 (looser: the forward pass rounds to f32).
    #[test]
    fn gradient_matches_finite_differences() {
        let layers = vec![3, 4, 3];
        let w = initial_weights(&layers, 7);
        let x: Vec<f32> = vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75, -0.3, 0.8, 0.1];
        let labels = [2u32, 0, 1];
        fn loss_at<T: Float>(layers: &[usize], w: &[f64], x: &[f32], labels: &[u32]) -> (f64, Vec<f64>) {
            let mut grad = vec![0.0; w.len()];
            let mut loss = 0.0;
            let net = Network::<T>::new(layers, w);
            net.add_block_loss_gradient(x, labels, 1.0 / 3.0, &mut MlpWorkspace::default(), &mut loss, &mut grad);
            (loss, grad)
        }
        for (h, tolerance, f64_arithmetic) in [(1e-5, 1e-7, true), (1e-2, 2e-3, false)] {
            let at = |w: &[f64]| {
                if f64_arithmetic {
                    loss_at::<f64>(&layers, w, &x, &labels)
                } else {
                    loss_at::<f32>(&layers, w, &x, &labels)
                }
            };
            let (_, grad) = at(&w);
            for i in 0..w.len() {
                let (mut up, mut down) = (w.clone(), w.clone());
                up[i] += h;
                down[i] -= h;
                let numeric = (at(&up).0 - at(&down).0) / (2.0 * h);
                assert!(
                    (numeric - grad[i]).abs() < tolerance * numeric.abs().max(1.0),
                    "weight {i} (f64: {f64_arithmetic}): numeric {numeric}, backprop {}",
                    grad[i]
                );
            }
        }
    }

    /// The f64 network against a plain f64 computation written out here (libm, no blocks):
    /// probabilities of a 3-5-4-3 network, to the f32 they are handed out in.
    #[test]
    fn f64_forward_matches_a_plain_computation() {
        let layers = vec![3, 5, 4, 3];
        let w = initial_weights(&layers, 11);
        let x: Vec<f32> = (0..30).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
        let model = MlpModel { layers: layers.clone(), weights: w.clone(), precision: Precision::F64 };
        let fast = Network::<f64>::new(&layers, &w).predict_proba(&x);
        assert!(model.predict_proba(&x[..29]).is_err());
        for (row, x) in x.chunks(3).enumerate() {
            let mut a: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            for (l, (w_at, b_at)) in layer_offsets(&layers).into_iter().enumerate() {
                let (inp, out) = (layers[l], layers[l + 1]);
                let z: Vec<f64> = (0..out)
                    .map(|o| w[b_at + o] + (0..inp).map(|i| w[w_at + o * inp + i] * a[i]).sum::<f64>())
                    .collect();
                a = if l + 2 < layers.len() {
                    z.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect()
                } else {
                    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
                    e.iter().map(|v| v / e.iter().sum::<f64>()).collect()
                };
            }
            for c in 0..3 {
                assert!(
                    (f64::from(fast[row * 3 + c]) - a[c]).abs() < 1e-7,
                    "row {row}: {:?} vs {a:?}",
                    &fast[row * 3..]
                );
            }
        }
    }

    #[test]
    fn layout_and_init_follow_mllib() {
        assert_eq!(layer_offsets(&[2, 3, 2]), [(0, 6), (9, 15)]);
        let w = initial_weights(&[4, 2], 1);
        assert_eq!(w.len(), 10);
        assert!(w.iter().all(|v| v.abs() <= 1.2));
    }

    #[test]
    fn old_model_files_are_f32_networks() {
        let old = serde_json::json!({"layers": [2, 2], "weights": [0.5, -0.25, 1.0, 0.0, 0.1, -0.1]});
        let model: MlpModel = serde_json::from_value(old).unwrap();
        assert_eq!(model.precision, Precision::F32);
    }
}
