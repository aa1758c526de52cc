//! Multilayer perceptron as MLlib's MultilayerPerceptronClassifier (Spark's neural network):
//! sigmoid hidden layers, a softmax output with cross-entropy loss, rows stacked into blocks
//! of `blockSize` so each layer is a matrix product, trained by L-BFGS (default) or full-batch
//! gradient descent, every iteration one tree aggregation of the gradient over the partitions.

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use trainbench_data::Partitioned;
use trainbench_engine::fastmath::{exp_f32, sigmoid_f32, vectorized};
use trainbench_engine::{Error, LogEntry, Result, TrainLog, TrainedModel};

use crate::executor::{Executor, add_into};
use crate::optim::{Objective, minimize};
use crate::params::{MlpParams, MlpSolver};

/// A fitted network: per layer, weights (out × in, row-major) then biases (out), concatenated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpModel {
    /// Layer sizes, input to output.
    pub layers: Vec<usize>,
    /// All weights.
    pub weights: Vec<f32>,
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

/// C (m × n) = op(A) (m × k) · op(B) (k × n), shape given as (m, k, n), every matrix row-major; `op` reads a matrix as
/// stored or transposed (then A is stored k × m, B n × k). One checked wrapper around sgemm.
fn matmul((m, k, n): (usize, usize, usize), a: &[f32], read_a: Read, b: &[f32], read_b: Read, c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "matrix buffers too small");
    // (row stride, column stride) of op(A) and op(B) as m × k and k × n.
    let (rsa, csa) = match read_a {
        Read::AsIs => (k as isize, 1),
        Read::Transposed => (1, m as isize),
    };
    let (rsb, csb) = match read_b {
        Read::AsIs => (n as isize, 1),
        Read::Transposed => (1, k as isize),
    };
    // SAFETY: the strides describe op(A) as m × k, op(B) as k × n and C as n-wide rows, all
    // within the slices, whose lengths the assert above checks.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The sigmoid of every value. The hidden layers need one per unit per row, so the loop is
/// also compiled for AVX2 + FMA ([`vectorized`]), bit-identical to the baseline copy.
fn sigmoid_in_place(v: &mut [f32]) {
    vectorized(
        #[inline(always)]
        || v.iter_mut().for_each(|x| *x = sigmoid_f32(*x)),
    );
}

impl MlpModel {
    /// Activations of every layer for a block of `rows` rows (`x` is rows × inputs).
    fn forward(&self, x: &[f32], rows: usize, acts: &mut Vec<Vec<f32>>) {
        let offsets = layer_offsets(&self.layers);
        acts.resize(self.layers.len(), Vec::new());
        acts[0].clear();
        acts[0].extend_from_slice(x);
        let last = self.layers.len() - 1;
        for l in 0..last {
            let (inp, out) = (self.layers[l], self.layers[l + 1]);
            let (w_at, b_at) = offsets[l];
            let mut z = std::mem::take(&mut acts[l + 1]);
            z.resize(rows * out, 0.0);
            // Z = A · Wᵀ, with W stored out × in.
            matmul((rows, inp, out), &acts[l], Read::AsIs, &self.weights[w_at..b_at], Read::Transposed, &mut z);
            let bias = &self.weights[b_at..b_at + out];
            for row in z.chunks_exact_mut(out) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
            if l + 1 < last {
                sigmoid_in_place(&mut z);
            } else {
                for row in z.chunks_exact_mut(out) {
                    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for v in row.iter_mut() {
                        *v = exp_f32(*v - max);
                        sum += *v;
                    }
                    row.iter_mut().for_each(|v| *v /= sum);
                }
            }
            acts[l + 1] = z;
        }
    }

    /// Adds this block's loss and gradient (sums, not means) into `loss` and `grad`.
    fn backward(
        &self,
        labels: &[u32],
        rows: usize,
        acts: &[Vec<f32>],
        scratch: &mut Scratch,
        loss: &mut f64,
        grad: &mut [f64],
    ) {
        let offsets = layer_offsets(&self.layers);
        let last = self.layers.len() - 1;
        let classes = self.layers[last];
        // Softmax with cross-entropy: δ = p − onehot(y).
        let mut delta = std::mem::take(&mut scratch.delta);
        delta.clear();
        delta.extend_from_slice(&acts[last]);
        for (i, &y) in labels.iter().enumerate() {
            let p = delta[i * classes + y as usize];
            // Clamp a zero probability, but let NaN through so divergence is seen.
            *loss -= if p.is_nan() { f64::NAN } else { f64::from(p.max(f32::MIN_POSITIVE)).ln() };
            delta[i * classes + y as usize] -= 1.0;
        }
        for l in (0..last).rev() {
            let (inp, out) = (self.layers[l], self.layers[l + 1]);
            let (w_at, b_at) = offsets[l];
            scratch.block_grad.resize(out * inp, 0.0);
            // ∂W = δᵀ · A.
            matmul((out, rows, inp), &delta, Read::Transposed, &acts[l], Read::AsIs, &mut scratch.block_grad);
            for (g, v) in grad[w_at..b_at].iter_mut().zip(&scratch.block_grad) {
                *g += f64::from(*v);
            }
            for row in delta.chunks_exact(out) {
                for (g, v) in grad[b_at..b_at + out].iter_mut().zip(row) {
                    *g += f64::from(*v);
                }
            }
            if l > 0 {
                // δ_prev = (δ · W) ⊙ a (1 − a) for the sigmoid layer below.
                scratch.back.resize(rows * inp, 0.0);
                matmul((rows, out, inp), &delta, Read::AsIs, &self.weights[w_at..b_at], Read::AsIs, &mut scratch.back);
                for (d, a) in scratch.back.iter_mut().zip(&acts[l]) {
                    *d *= a * (1.0 - a);
                }
                std::mem::swap(&mut delta, &mut scratch.back);
            }
        }
        scratch.delta = delta;
    }
}

#[derive(Default)]
struct Scratch {
    delta: Vec<f32>,
    back: Vec<f32>,
    block_grad: Vec<f32>,
}

/// Buffers a partition reuses from block to block: activations and backward scratch.
#[derive(Default)]
pub struct MlpWorkspace {
    acts: Vec<Vec<f32>>,
    scratch: Scratch,
}

impl MlpModel {
    /// One block of rows through the network and back, the unit of work every L-BFGS step
    /// repeats over the data: adds the block's cross-entropy (a sum over rows) into `loss` and
    /// its gradient (sums, laid out as `weights`) into `grad`. `x` is rows × inputs, one label
    /// per row. Public so `benches/kernels.rs` times the code the engine runs.
    pub fn add_block_loss_gradient(
        &self,
        x: &[f32],
        labels: &[u32],
        work: &mut MlpWorkspace,
        loss: &mut f64,
        grad: &mut [f64],
    ) {
        assert!(
            x.len() == labels.len() * self.layers[0] && grad.len() == self.weights.len(),
            "add_block_loss_gradient: shapes disagree"
        );
        self.forward(x, labels.len(), &mut work.acts);
        self.backward(labels, labels.len(), &work.acts, &mut work.scratch, loss, grad);
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
        let mut out = Vec::with_capacity(features.len() / d.max(1) * self.classes());
        let mut acts = Vec::new();
        for block in features.chunks(128 * d) {
            let rows = block.len() / d;
            self.forward(block, rows, &mut acts);
            out.extend_from_slice(acts.last().map_or(&[][..], |a| &a[..]));
        }
        Ok(out)
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Mean cross-entropy over all rows, with its gradient.
struct CrossEntropy<'a> {
    exec: &'a Executor,
    data: &'a Partitioned<'a>,
    layers: Vec<usize>,
    block_size: usize,
}

impl Objective for CrossEntropy<'_> {
    fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let model = MlpModel { layers: self.layers.clone(), weights: x.iter().map(|&v| v as f32).collect() };
        let d = self.layers[0];
        let sums = self
            .exec
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
                        model.add_block_loss_gradient(block, labels, &mut work, &mut loss[0], grad);
                    }
                    s
                },
                add_into,
            )
            .unwrap_or_default();
        let n = self.data.data.rows() as f64;
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

/// Fits on partitioned training rows.
pub fn fit(exec: &Executor, data: &Partitioned, classes: usize, params: &MlpParams) -> Result<(MlpModel, TrainLog)> {
    let start = Instant::now();
    let d = data.data.n_features;
    params.check_size(d, classes)?;
    let layers = params.layers(d, classes);
    let objective = CrossEntropy { exec, data, layers: layers.clone(), block_size: params.block_size };
    let x0 = initial_weights(&layers, params.seed);
    let (x, entries, stop_reason) = match params.solver {
        MlpSolver::LBfgs => {
            let out = minimize(&objective, x0, params.max_iter, params.tol, 0.0)?;
            (out.x, out.log, out.stop_reason)
        }
        MlpSolver::Gd => gradient_descent(&objective, x0, params, start)?,
    };
    let model = MlpModel { layers, weights: x.iter().map(|&v| v as f32).collect() };
    Ok((model, TrainLog { entries, fit_seconds: start.elapsed().as_secs_f64(), stop_reason }))
}

/// MLlib's GradientDescent with the SimpleUpdater and miniBatchFraction 1: step
/// `stepSize / √t`; converged when the weights move less than `tol · max(‖w‖, 1)`.
fn gradient_descent(
    objective: &CrossEntropy,
    mut w: Vec<f64>,
    params: &MlpParams,
    start: Instant,
) -> Result<(Vec<f64>, Vec<LogEntry>, String)> {
    let mut log = Vec::new();
    for t in 1..=params.max_iter {
        let (loss, grad) = objective.evaluate(&w);
        if !loss.is_finite() {
            return Err(Error::Diverged { iteration: t, loss });
        }
        let step = params.step_size / (t as f64).sqrt();
        let mut moved = 0.0;
        for (wi, g) in w.iter_mut().zip(&grad) {
            let delta = step * g;
            *wi -= delta;
            moved += delta * delta;
        }
        log.push(LogEntry {
            step: t,
            loss,
            valid_loss: None,
            elapsed_seconds: start.elapsed().as_secs_f64(),
            extra: Default::default(),
        });
        let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
        if moved.sqrt() < params.tol * norm.max(1.0) {
            return Ok((w, log, "converged".into()));
        }
    }
    Ok((w, log, "max_iter".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backpropagation against central finite differences of the loss, in f64 terms.
    #[test]
    fn gradient_matches_finite_differences() {
        let layers = vec![3, 4, 3];
        let w = initial_weights(&layers, 7);
        let x: Vec<f32> = vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75, -0.3, 0.8, 0.1];
        let labels = [2u32, 0, 1];
        let loss_at = |w: &[f64]| {
            let model = MlpModel { layers: layers.clone(), weights: w.iter().map(|&v| v as f32).collect() };
            let mut acts = Vec::new();
            model.forward(&x, 3, &mut acts);
            let mut grad = vec![0.0; w.len()];
            let mut loss = 0.0;
            model.backward(&labels, 3, &acts, &mut Scratch::default(), &mut loss, &mut grad);
            (loss, grad)
        };
        let (_, grad) = loss_at(&w);
        for i in 0..w.len() {
            let h = 1e-2;
            let (mut up, mut down) = (w.clone(), w.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss_at(&up).0 - loss_at(&down).0) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 2e-3 * numeric.abs().max(1.0),
                "weight {i}: numeric {numeric}, backprop {}",
                grad[i]
            );
        }
    }

    #[test]
    fn vector_sigmoid_gives_the_scalar_bits() {
        // From the clamped ends through the middle, with a tail that fills no whole vector.
        let mut v: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.05).collect();
        let scalar: Vec<u32> = v.iter().map(|&x| sigmoid_f32(x).to_bits()).collect();
        sigmoid_in_place(&mut v);
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), scalar);
        assert!(v[0] > 0.0 && v[0] < 1e-37 && v[4000] == 1.0);
    }

    #[test]
    fn layout_and_init_follow_mllib() {
        assert_eq!(layer_offsets(&[2, 3, 2]), [(0, 6), (9, 15)]);
        let w = initial_weights(&[4, 2], 1);
        assert_eq!(w.len(), 10);
        assert!(w.iter().all(|v| v.abs() <= 1.2));
    }
}
