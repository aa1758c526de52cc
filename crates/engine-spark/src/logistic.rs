//! Logistic regression as MLlib's LogisticRegression: binomial for two classes, multinomial
//! (softmax) otherwise, fitted by L-BFGS (OWL-QN with an L1 term) on features scaled to unit
//! variance, each objective evaluation one tree aggregation over the partitions.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use trainbench_data::{PartitionView, Partitioned, Prepared};
use trainbench_engine::kernels::math::{exp_neg_f64, ln_1p_unit_f64};
use trainbench_engine::kernels::vectorized;
use trainbench_engine::{Progress, Result, TrainLog, TrainedModel};

use crate::executor::{Executor, add_into};
use crate::optim::{Objective, Settings, Validate, minimize};
use crate::params::LrParams;

/// A fitted logistic regression, coefficients on the original feature scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// Rows of coefficients: one row for binomial (class 1's log-odds), one per class otherwise.
    pub coefficients: Vec<Vec<f64>>,
    /// One intercept per coefficient row.
    pub intercepts: Vec<f64>,
    /// Number of classes.
    pub classes: usize,
}

impl LogisticModel {
    fn margins(&self, x: &[f32], out: &mut [f64]) {
        for (k, (w, b)) in self.coefficients.iter().zip(&self.intercepts).enumerate() {
            out[k] = b + dot(w, x);
        }
    }
}

impl TrainedModel for LogisticModel {
    fn classes(&self) -> usize {
        self.classes
    }

    fn n_features(&self) -> usize {
        self.coefficients[0].len()
    }

    fn predict_proba(&self, features: &[f32]) -> Result<Vec<f32>> {
        let d = self.n_features();
        let mut out = Vec::with_capacity(features.len() / d.max(1) * self.classes);
        let mut m = vec![0.0; self.coefficients.len()];
        for x in features.chunks_exact(d) {
            self.margins(x, &mut m);
            if self.classes == 2 && m.len() == 1 {
                let p1 = sigmoid(m[0]);
                out.extend([(1.0 - p1) as f32, p1 as f32]);
            } else {
                softmax_in_place(&mut m);
                out.extend(m.iter().map(|&p| p as f32));
            }
        }
        Ok(out)
    }

    fn to_json(&self) -> Result<serde_json::Value> {
        crate::encode(self)
    }
}

/// w · x with eight independent partial sums: a single running sum is one long chain of
/// dependent additions, which the compiler may not reorder, and is several times slower.
/// Inlined, so the AVX2 copy of the binomial pass has its own.
#[inline(always)]
fn dot(w: &[f64], x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (wc, xc) = (w.chunks_exact(8), x.chunks_exact(8));
    let tail: f64 = wc.remainder().iter().zip(xc.remainder()).map(|(w, &x)| w * f64::from(x)).sum();
    for (w8, x8) in wc.zip(xc) {
        for k in 0..8 {
            acc[k] += w8[k] * f64::from(x8[k]);
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

fn sigmoid(m: f64) -> f64 {
    if m >= 0.0 { 1.0 / (1.0 + (-m).exp()) } else { m.exp() / (1.0 + m.exp()) }
}

fn softmax_in_place(m: &mut [f64]) {
    let max = m.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in m.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in m.iter_mut() {
        *v /= sum;
    }
}

/// Per-feature statistics from one pass (MLlib's summarizer).
struct Summary {
    mean: Vec<f64>,
    std: Vec<f64>,
    class_counts: Vec<f64>,
}

fn summarize(exec: &Executor, data: &Partitioned, classes: usize) -> Summary {
    let d = data.data.n_features;
    // [count, sum x (d), sum x² (d), class counts (k)]
    let stats = exec
        .tree_aggregate(
            data.len(),
            |p| {
                let part = data.partition(p);
                let mut s = vec![0.0; 1 + 2 * d + classes];
                s[0] = part.rows() as f64;
                for i in 0..part.rows() {
                    for (j, &x) in part.row(i).iter().enumerate() {
                        let x = f64::from(x);
                        s[1 + j] += x;
                        s[1 + d + j] += x * x;
                    }
                    s[1 + 2 * d + part.labels[i] as usize] += 1.0;
                }
                s
            },
            add_into,
        )
        .unwrap_or_else(|| vec![0.0; 1 + 2 * d + classes]);
    let n = stats[0];
    let mean: Vec<f64> = (0..d).map(|j| stats[1 + j] / n).collect();
    let std = (0..d)
        .map(|j| {
            // Unbiased sample variance, as MLlib's summarizer.
            let var = if n > 1.0 { (stats[1 + d + j] - n * mean[j] * mean[j]) / (n - 1.0) } else { 0.0 };
            var.max(0.0).sqrt()
        })
        .collect();
    Summary { mean, std, class_counts: stats[1 + 2 * d..].to_vec() }
}

/// The objective in the scaled space: coefficient `β_kj` multiplies `(x_j − μ_j) / σ_j`.
/// MLlib always optimizes there, whatever `standardization` says: without it, the penalties
/// are put back on the original scale (β_kj / σ_j) instead.
struct LogLoss<'a> {
    exec: &'a Executor,
    data: &'a Partitioned<'a>,
    /// 1 / σ_j (0 for constant features, which then take no part).
    inv_std: Vec<f64>,
    /// μ_j when the intercept is fitted (centering improves conditioning), else 0.
    center: Vec<f64>,
    /// Coefficient rows: 1 (binomial) or k (multinomial).
    rows: usize,
    fit_intercept: bool,
    /// L2 strength.
    l2: f64,
    /// Whether the penalties apply to the scaled coefficients (else to the original-scale ones).
    standardization: bool,
}

impl LogLoss<'_> {
    fn n_features(&self) -> usize {
        self.inv_std.len()
    }

    /// Raw-space weights and offsets for parameters `x`.
    fn raw(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.n_features();
        let mut w = vec![0.0; self.rows * d];
        let mut b = vec![0.0; self.rows];
        for k in 0..self.rows {
            let intercept = if self.fit_intercept { x[self.rows * d + k] } else { 0.0 };
            let mut offset = intercept;
            for j in 0..d {
                w[k * d + j] = x[k * d + j] * self.inv_std[j];
                offset -= w[k * d + j] * self.center[j];
            }
            b[k] = offset;
        }
        (w, b)
    }

    /// The model at parameters `x`, on the original feature scale.
    fn model(&self, x: &[f64], classes: usize) -> LogisticModel {
        let d = self.n_features();
        let (w, intercepts) = self.raw(x);
        let coefficients = (0..self.rows).map(|k| w[k * d..(k + 1) * d].to_vec()).collect();
        LogisticModel { coefficients, intercepts, classes }
    }

    /// The weight of coordinate j's penalty: 1 on the scaled coefficient, or 1 / σ_j to put
    /// it back on the original scale (0 for a constant feature, as MLlib).
    fn penalty_scale(&self, j: usize) -> f64 {
        if self.standardization { 1.0 } else { self.inv_std[j] }
    }
}

impl Objective for LogLoss<'_> {
    fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let d = self.n_features();
        let rows = self.rows;
        let (w, b) = self.raw(x);
        // Per partition: [loss, Σ r_k x_j (rows × d), Σ r_k (rows)].
        let sums = self
            .exec
            .tree_aggregate(
                self.data.len(),
                |p| {
                    let mut s = vec![0.0; 1 + rows * d + rows];
                    loss_gradient_sums(self.data.partition(p), &w, &b, &mut s);
                    s
                },
                add_into,
            )
            .unwrap_or_default();
        let n = self.data.data.rows() as f64;
        let mut loss = sums[0] / n;
        let mut grad = vec![0.0; x.len()];
        for k in 0..rows {
            let r_sum = sums[1 + rows * d + k];
            for j in 0..d {
                let raw = sums[1 + k * d + j] - self.center[j] * r_sum;
                grad[k * d + j] = self.inv_std[j] * raw / n;
            }
            if self.fit_intercept {
                grad[rows * d + k] = r_sum / n;
            }
        }
        if self.l2 > 0.0 {
            for k in 0..rows {
                for j in 0..d {
                    let (beta, s) = (x[k * d + j], self.penalty_scale(j));
                    loss += 0.5 * self.l2 * (beta * s).powi(2);
                    grad[k * d + j] += self.l2 * beta * s * s;
                }
            }
        }
        (loss, grad)
    }
}

/// One partition's part of an evaluation, the pass every L-BFGS step makes over the data:
/// adds `[Σ loss, Σ r_k x_j (k × d), Σ r_k (k)]` into `sums` for raw-space coefficient rows `w`
/// (`k × d`) and offsets `b` (`k`), where `r_k` is the residual p_k − 1[y = k]; `k = 1` is
/// binomial. Public so `bench/kernels/spark_kernels.rs` times the code the engine runs.
pub fn loss_gradient_sums(part: PartitionView, w: &[f64], b: &[f64], sums: &mut [f64]) {
    let d = part.n_features;
    let rows = b.len();
    assert!(w.len() == rows * d && sums.len() == 1 + rows * d + rows, "loss_gradient_sums: shapes disagree");
    if rows == 1 {
        binomial_sums(part, w, b[0], sums);
        return;
    }
    let mut m = vec![0.0; rows];
    for i in 0..part.rows() {
        let xi = part.row(i);
        let y = part.labels[i] as usize;
        for k in 0..rows {
            let wk = &w[k * d..(k + 1) * d];
            m[k] = b[k] + dot(wk, xi);
        }
        let max = m.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = m.iter().map(|v| (v - max).exp()).sum();
        sums[0] += max + sum.ln() - m[y];
        for k in 0..rows {
            let r = (m[k] - max).exp() / sum - if k == y { 1.0 } else { 0.0 };
            let g = &mut sums[1 + k * d..1 + (k + 1) * d];
            for (g, &xv) in g.iter_mut().zip(xi) {
                *g += r * f64::from(xv);
            }
            sums[1 + rows * d + k] += r;
        }
    }
}

/// Rows per block of the binomial pass: margins for the block, then the loss and residuals of
/// all of them in one vectorizable loop, then the gradient.
const BLOCK: usize = 64;

/// [`loss_gradient_sums`] for one coefficient row (binomial).
fn binomial_sums(part: PartitionView, w: &[f64], b: f64, sums: &mut [f64]) {
    let d = part.n_features;
    let (mut margin, mut loss, mut residual) = ([0.0; BLOCK], [0.0; BLOCK], [0.0; BLOCK]);
    // The whole pass is compiled for AVX2 too: 4 f64 lanes for the products, the loss loop
    // vectorized (exp and ln_1p are plain arithmetic).
    vectorized(
        #[inline(always)]
        || {
            for (block, labels) in part.labels.chunks(BLOCK).enumerate() {
                let (first, n) = (block * BLOCK, labels.len());
                for (i, m) in margin[..n].iter_mut().enumerate() {
                    *m = b + dot(w, part.row(first + i));
                }
                for i in 0..n {
                    let (m, label) = (margin[i], f64::from(u8::from(labels[i] == 1)));
                    // One exponential serves both the loss and the residual:
                    // softplus(m) = max(m, 0) + ln(1 + e) and σ(m) from e = exp(−|m|).
                    let e = exp_neg_f64(-m.abs());
                    loss[i] = m.max(0.0) + ln_1p_unit_f64(e) - label * m;
                    let p = if m >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
                    residual[i] = p - label;
                }
                for i in 0..n {
                    let (r, xi) = (residual[i], part.row(first + i));
                    sums[0] += loss[i];
                    for (g, &xv) in sums[1..1 + d].iter_mut().zip(xi) {
                        *g += r * f64::from(xv);
                    }
                    sums[1 + d] += r;
                }
            }
        },
    );
}

/// Fits on partitioned training rows; `valid` rows, where given, are scored every iteration.
pub fn fit(
    exec: &Executor,
    data: &Partitioned,
    classes: usize,
    params: &LrParams,
    valid: Option<&Prepared>,
    progress: &dyn Progress,
) -> Result<(LogisticModel, TrainLog)> {
    let start = Instant::now();
    let d = data.data.n_features;
    let summary = summarize(exec, data, classes);
    let rows = if classes == 2 { 1 } else { classes };
    let inv_std: Vec<f64> = summary.std.iter().map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 }).collect();
    let center = if params.fit_intercept { summary.mean.clone() } else { vec![0.0; d] };
    let l1 = params.reg_param * params.elastic_net_param;
    let l2 = params.reg_param * (1.0 - params.elastic_net_param);
    let objective = LogLoss {
        exec,
        data,
        inv_std,
        center,
        rows,
        fit_intercept: params.fit_intercept,
        l2,
        standardization: params.standardization,
    };
    let mut x0 = vec![0.0; rows * d + if params.fit_intercept { rows } else { 0 }];
    if params.fit_intercept {
        // Start from the class priors, as MLlib does: it saves iterations.
        if rows == 1 {
            x0[d] = (summary.class_counts[1].max(0.5) / summary.class_counts[0].max(0.5)).ln();
        } else {
            // MLlib's multinomial start: log(1 + count), centered.
            let logs: Vec<f64> = summary.class_counts.iter().map(|&c| c.ln_1p()).collect();
            let mean = logs.iter().sum::<f64>() / rows as f64;
            for k in 0..rows {
                x0[rows * d + k] = logs[k] - mean;
            }
        }
    }
    // OWL-QN's L1 weight per coordinate: none on the intercepts, as MLlib.
    let l1_weights = if l1 > 0.0 {
        (0..x0.len()).map(|i| if i < rows * d { l1 * objective.penalty_scale(i % d) } else { 0.0 }).collect()
    } else {
        Vec::new()
    };
    let settings = Settings { max_iter: params.max_iter, tol: params.tol, l1: l1_weights };
    let loss = &objective;
    let score = valid.map(|v| move |x: &[f64]| crate::validation_scores(&loss.model(x, classes), v));
    let out = minimize(&objective, x0, &settings, start, score.as_ref().map(|f| f as Validate), progress)?;
    let LogisticModel { mut coefficients, mut intercepts, .. } = objective.model(&out.x, classes);
    if rows > 1 && params.reg_param == 0.0 {
        // Softmax is unchanged by adding a constant to every class; like MLlib, report the
        // centered (identifiable) solution.
        for j in 0..d {
            let mean = coefficients.iter().map(|c| c[j]).sum::<f64>() / rows as f64;
            coefficients.iter_mut().for_each(|c| c[j] -= mean);
        }
        let mean = intercepts.iter().sum::<f64>() / rows as f64;
        intercepts.iter_mut().for_each(|b| *b -= mean);
    }
    let log = TrainLog {
        entries: out.log,
        fit_seconds: start.elapsed().as_secs_f64(),
        stop_reason: out.stop_reason.text().to_owned(),
        eval_seconds: out.eval_seconds,
        resumed_epochs: None,
        communication_seconds: None,
    };
    Ok((LogisticModel { coefficients, intercepts, classes }, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binomial pass (blocks of rows, the vectorized exp and ln_1p) against a row-by-row
    /// f64 computation with libm: 150 rows, so two full blocks and a partial one, margins of
    /// both signs up to about ±16.
    #[test]
    fn binomial_pass_matches_a_row_by_row_computation() {
        let d = 3;
        let features: Vec<f32> = (0..150 * d).map(|i| ((i * 37 % 101) as f32 - 50.0) / 5.0).collect();
        let labels: Vec<u32> = (0..150).map(|i| (i * 7 % 3 == 0) as u32).collect();
        let part = PartitionView { features: &features, labels: &labels, n_features: d };
        let (w, b) = ([0.9, -0.4, 0.25], 0.3);
        let mut sums = vec![0.0; 1 + d + 1];
        loss_gradient_sums(part, &w, &[b], &mut sums);

        let mut expected = vec![0.0; 1 + d + 1];
        for (x, &label) in features.chunks_exact(d).zip(&labels) {
            let m = b + w.iter().zip(x).map(|(w, &x)| w * f64::from(x)).sum::<f64>();
            let y = f64::from(label);
            expected[0] += (1.0 + m.exp()).ln() - y * m;
            let r = 1.0 / (1.0 + (-m).exp()) - y;
            for j in 0..d {
                expected[1 + j] += r * f64::from(x[j]);
            }
            expected[1 + d] += r;
        }
        for (k, (got, want)) in sums.iter().zip(&expected).enumerate() {
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "sum {k}: {got} vs {want}");
        }
    }
}
