//! L-BFGS (and OWL-QN for an L1 term) from argmin, as MLlib uses Breeze's.
//!
//! argmin asks for the cost and the gradient separately; one pass over the partitions computes
//! both, so the last evaluation is cached and the second request is free.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{CostFunction, Executor as Runner, Gradient, IterState, KV, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use trainbench_engine::{Error, LogEntry, Result};

/// A differentiable objective: value and gradient at `x` in one pass.
pub trait Objective: Sync {
    /// (f(x), ∇f(x)).
    fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>);
}

/// What the optimizer did.
pub struct Optimized {
    /// The solution.
    pub x: Vec<f64>,
    /// Objective after each iteration.
    pub log: Vec<LogEntry>,
    /// Why it stopped.
    pub stop_reason: String,
}

/// The last evaluation: (x, f(x), ∇f(x)).
type Evaluation = (Vec<f64>, f64, Vec<f64>);

struct Cached<'a, O: Objective> {
    objective: &'a O,
    last: Mutex<Option<Evaluation>>,
    /// Passes over the data so far: the line search may take more than one per iteration.
    evaluations: Arc<AtomicUsize>,
}

impl<O: Objective> Cached<'_, O> {
    fn eval(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((px, f, g)) = last.as_ref()
            && px.as_slice() == x
        {
            return (*f, g.clone());
        }
        let (f, g) = self.objective.evaluate(x);
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        *last = Some((x.to_vec(), f, g.clone()));
        (f, g)
    }
}

impl<O: Objective> CostFunction for Cached<'_, O> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, x: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.eval(x).0)
    }
}

impl<O: Objective> Gradient for Cached<'_, O> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, x: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.eval(x).1)
    }
}

/// Records the cost and the evaluations so far after every iteration.
struct Recorder {
    start: Instant,
    entries: Arc<Mutex<Vec<LogEntry>>>,
    evaluations: Arc<AtomicUsize>,
}

impl Observe<IterState<Vec<f64>, Vec<f64>, (), (), (), f64>> for Recorder {
    fn observe_iter(
        &mut self,
        state: &IterState<Vec<f64>, Vec<f64>, (), (), (), f64>,
        _kv: &KV,
    ) -> std::result::Result<(), argmin::core::Error> {
        let cost = state.get_cost();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.push(LogEntry {
            step: state.get_iter() as usize,
            loss: cost,
            valid_loss: None,
            elapsed_seconds: self.start.elapsed().as_secs_f64(),
            extra: BTreeMap::from([("evaluations".into(), self.evaluations.load(Ordering::Relaxed) as f64)]),
        });
        Ok(())
    }
}

/// Minimizes `objective` from `x0` with L-BFGS (history `m`, as Breeze's default 10), for at most
/// `max_iter` iterations, stopping when the objective changes by less than `tol`; with
/// `l1 > 0`, OWL-QN minimizes `objective + l1 · ‖x‖₁`.
pub fn minimize(objective: &impl Objective, x0: Vec<f64>, max_iter: usize, tol: f64, l1: f64) -> Result<Optimized> {
    let (f0, g0) = objective.evaluate(&x0);
    if !f0.is_finite() {
        return Err(Error::Diverged { iteration: 0, loss: f0 });
    }
    // argmin starts by evaluating x0 again: answer that from the cache.
    let evaluations = Arc::new(AtomicUsize::new(1));
    let problem =
        Cached { objective, last: Mutex::new(Some((x0.clone(), f0, g0))), evaluations: Arc::clone(&evaluations) };
    let linesearch = MoreThuenteLineSearch::new();
    let argmin_err = |e: argmin::core::Error| Error::Data(format!("optimizer: {e}"));
    let mut solver = LBFGS::new(linesearch, 10).with_tolerance_cost(tol).map_err(argmin_err)?;
    solver = solver.with_tolerance_grad(0.0).map_err(argmin_err)?;
    if l1 > 0.0 {
        solver = solver.with_l1_regularization(l1).map_err(argmin_err)?;
    }
    let entries = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder { start: Instant::now(), entries: Arc::clone(&entries), evaluations };
    let result = Runner::new(problem, solver)
        .configure(|state| state.param(x0.clone()).max_iters(max_iter as u64))
        .add_observer(recorder, ObserverMode::Always)
        .run();
    let log = entries.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(bad) = log.iter().find(|e| !e.loss.is_finite()) {
        return Err(Error::Diverged { iteration: bad.step, loss: bad.loss });
    }
    let result = result.map_err(|e| {
        // A line search that cannot find a better point at the first step means the objective
        // is already flat or broken; report it rather than pretend to have converged.
        Error::Data(format!("optimizer failed: {e}"))
    })?;
    let state = result.state();
    let stop_reason = state.get_termination_reason().map_or("unknown".to_owned(), |r| r.text().to_owned());
    let x = state.get_best_param().or(state.get_param()).cloned().unwrap_or(x0);
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::Diverged { iteration: log.len(), loss: f64::NAN });
    }
    Ok(Optimized { x, log, stop_reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quadratic;
    impl Objective for Quadratic {
        fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
            // (x0 - 3)^2 + 10 (x1 + 1)^2
            let f = (x[0] - 3.0).powi(2) + 10.0 * (x[1] + 1.0).powi(2);
            (f, vec![2.0 * (x[0] - 3.0), 20.0 * (x[1] + 1.0)])
        }
    }

    #[test]
    fn finds_the_minimum_and_logs_iterations() {
        let out = minimize(&Quadratic, vec![0.0, 0.0], 100, 1e-12, 0.0).unwrap();
        assert!((out.x[0] - 3.0).abs() < 1e-5 && (out.x[1] + 1.0).abs() < 1e-5, "{:?}", out.x);
        assert!(!out.log.is_empty());
        assert!(out.log.windows(2).all(|w| w[1].loss <= w[0].loss + 1e-12));
        // At least one pass over the data per iteration, counted cumulatively.
        let evaluations: Vec<f64> = out.log.iter().map(|e| e.extra["evaluations"]).collect();
        assert!(evaluations.windows(2).all(|w| w[1] > w[0]), "{evaluations:?}");
        assert!(evaluations[0] >= 2.0 && *evaluations.last().unwrap() >= out.log.len() as f64 + 1.0);
    }

    #[test]
    fn l1_shrinks_to_zero() {
        // With a strong L1 term the second coordinate's optimum is exactly 0: |20 (x1 + 1)| < l1 at 0.
        let out = minimize(&Quadratic, vec![0.5, 0.5], 200, 1e-12, 25.0).unwrap();
        assert_eq!(out.x[1], 0.0, "{:?}", out.x);
    }

    struct Broken;
    impl Objective for Broken {
        fn evaluate(&self, _: &[f64]) -> (f64, Vec<f64>) {
            (f64::NAN, vec![0.0])
        }
    }

    #[test]
    fn a_nan_objective_is_divergence() {
        assert!(matches!(minimize(&Broken, vec![0.0], 10, 1e-6, 0.0), Err(Error::Diverged { .. })));
    }
}
