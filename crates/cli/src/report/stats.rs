//! Means and 95 % intervals over seeds, runs grouped by (engine, model, sweep point), and the
//! exponent of time against rows.

use serde::{Deserialize, Serialize};

use crate::results::{RunRecord, Scores, SweepPoint};

/// Mean and 95 % interval (Student's t) of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Mean.
    pub mean: f64,
    /// Lower end of the 95 % interval (the mean when n = 1).
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Sample size.
    pub n: usize,
}

impl Estimate {
    /// From the values (empty → NaN mean).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        if n < 2 {
            return Self { mean: if n == 0 { f64::NAN } else { mean }, low: mean, high: mean, n };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t_975(n - 1) * (var / n as f64).sqrt();
        Self { mean, low: mean - half, high: mean + half, n }
    }

    /// "0.7512 ± 0.0031" (or just the mean for one value).
    pub fn show(&self, digits: usize) -> String {
        if self.n < 2 {
            format!("{:.digits$}", self.mean)
        } else {
            format!("{:.digits$} ± {:.digits$}", self.mean, (self.high - self.low) / 2.0)
        }
    }
}

/// Student's t 0.975 quantile for `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.saturating_sub(1)).copied().unwrap_or(1.96)
}

/// The runs of one (engine, model, sweep point) over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Engine.
    pub engine: String,
    /// Model.
    pub model: String,
    /// Sweep point.
    pub sweep: Option<SweepPoint>,
    /// Runs that finished.
    pub ok: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Fit seconds.
    pub fit_seconds: Estimate,
    /// Training seconds: the fit without validation scoring.
    pub train_seconds: Estimate,
    /// Time to the family's target accuracy, over the runs that reached it.
    pub time_to_target: Option<Estimate>,
    /// Iterations, levels or epochs.
    pub iterations: Estimate,
    /// Mean seconds per epoch, where the engine has epochs.
    pub epoch_seconds: Option<Estimate>,
    /// Rows per second.
    pub rows_per_second: Estimate,
    /// Accuracy.
    pub accuracy: Estimate,
    /// Macro precision.
    pub precision: Estimate,
    /// Macro recall.
    pub recall: Estimate,
    /// Macro F1.
    pub f1: Estimate,
    /// AUC.
    pub auc: Option<Estimate>,
    /// CPU seconds.
    pub cpu_seconds: Estimate,
    /// Cores busy on average during the fit (CPU seconds / fit seconds).
    pub cores_used: Estimate,
    /// Peak RSS during the fit, in bytes.
    pub peak_rss_bytes: Estimate,
    /// Whole-process peak RSS, in bytes.
    pub process_peak_rss_bytes: Estimate,
    /// Mean seconds rank 0 spent exchanging with the other processes (under mpirun).
    pub communication_seconds: Option<f64>,
}

impl Group {
    /// "engine model".
    pub fn name(&self) -> String {
        format!("{} {}", self.engine, self.model)
    }
}

/// Groups runs by (engine, model, sweep point) in first-seen order.
pub fn groups(runs: &[RunRecord]) -> Vec<Group> {
    let mut keys: Vec<(String, String, Option<SweepPoint>)> = Vec::new();
    for r in runs {
        let key = (r.engine.clone(), r.model.clone(), r.sweep);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(engine, model, sweep)| {
            let members: Vec<&RunRecord> =
                runs.iter().filter(|r| r.engine == engine && r.model == model && r.sweep == sweep).collect();
            let ok: Vec<&RunRecord> = members.iter().copied().filter(|r| r.scores.is_some()).collect();
            let est = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
                let v: Vec<f64> = ok.iter().filter_map(|r| f(r)).collect();
                (!v.is_empty()).then(|| Estimate::of(&v))
            };
            let nan = Estimate::of(&[]);
            let score = |f: fn(&Scores) -> f64| est(&|r| r.scores.as_ref().map(f)).unwrap_or(nan);
            Group {
                fit_seconds: est(&|r| Some(r.fit_seconds)).unwrap_or(nan),
                train_seconds: est(&|r| Some(r.fit_seconds - r.eval_seconds)).unwrap_or(nan),
                time_to_target: est(&|r| r.time_to_target_seconds),
                iterations: est(&|r| Some(r.iterations as f64)).unwrap_or(nan),
                epoch_seconds: est(&|r| {
                    (!r.epoch_seconds.is_empty())
                        .then(|| r.epoch_seconds.iter().sum::<f64>() / r.epoch_seconds.len() as f64)
                }),
                rows_per_second: est(&|r| Some(r.rows_per_second)).unwrap_or(nan),
                accuracy: score(|s| s.accuracy),
                precision: score(|s| s.precision_macro),
                recall: score(|s| s.recall_macro),
                f1: score(|s| s.f1_macro),
                auc: est(&|r| r.scores.as_ref().and_then(|s| s.roc_auc)),
                cpu_seconds: est(&|r| Some(r.cpu_seconds)).unwrap_or(nan),
                cores_used: est(&|r| Some(r.mean_cpu_percent / 100.0)).unwrap_or(nan),
                peak_rss_bytes: est(&|r| Some(r.peak_rss_bytes as f64)).unwrap_or(nan),
                process_peak_rss_bytes: est(&|r| Some(r.process_peak_rss_bytes as f64)).unwrap_or(nan),
                communication_seconds: est(&|r| r.communication_seconds).map(|e| e.mean),
                ok: ok.len(),
                failed: members.len() - ok.len(),
                engine,
                model,
                sweep,
            }
        })
        .collect()
}

/// Least-squares slope of log(y) against log(x): the exponent b of y ≈ a·x^b.
pub fn power_law_exponent(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> =
        points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    if logs.len() < 2 {
        return None;
    }
    let n = logs.len() as f64;
    let (mx, my) = (logs.iter().map(|p| p.0).sum::<f64>() / n, logs.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}
