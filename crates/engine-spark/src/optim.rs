//! L-BFGS and OWL-QN as Spark MLlib runs them: Breeze's algorithms, written out here so the
//! embedded engine stops when MLlib stops and takes the steps MLlib takes.
//!
//! - **Stopping** (Breeze's `defaultConvergenceCheck`, relative, 20 values remembered): after
//!   `maxIter` iterations; when the objective is within `tol · |f₀|` of the largest of the last 20
//!   values (so not before iteration 20); when `‖∇f‖ ≤ max(tol · |f|, 1e-8)`; or when the line
//!   search has failed twice in a row.
//! - **L-BFGS**: the two-loop recursion over the last 10 (step, gradient change) pairs, scaled by
//!   sᵀy / yᵀy; a strong Wolfe line search (c₁ = 1e-4, c₂ = 0.9, at most 10 trials and 10 zoom
//!   steps, cubic interpolation) starting from 1 / ‖d‖ on the first iteration and 1 after.
//! - **OWL-QN** when a coordinate has an L1 weight: the pseudo-gradient, the direction kept in the
//!   pseudo-gradient's orthant, steps projected onto the current orthant, and Breeze's
//!   backtracking line search (shrink 0.1 on the first iteration and 0.5 after, grow 2.1, Armijo
//!   1e-4, strong Wolfe 0.9; its first trial judged by its slope alone). The weight is per
//!   coordinate, so intercepts are never penalized, as in MLlib.
//! - **A failed step** (a direction that does not descend, a line search without a point, a step
//!   under 1e-10 / ‖∇f‖, a curvature pair with sᵀy < 0) clears the history once and tries again,
//!   as Breeze does; such a retry counts as an iteration in MLlib's `totalIterations`, and it is
//!   logged here too (with `extra.history_reset`), so the two iteration counts compare.
//!
//! Each evaluation is one pass over the data; the line search asks for the point it has just
//! evaluated again when it accepts a step, so the last evaluation is cached (as Breeze's
//! `CachedDiffFunction`) and the passes are counted in the log (`extra.evaluations`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use trainbench_engine::{Error, LogEntry, Progress, Result, StepUnit};

/// A differentiable objective: value and gradient at `x` in one pass.
pub trait Objective: Sync {
    /// (f(x), ∇f(x)).
    fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>);
}

/// Pairs of (step, gradient change) the inverse Hessian is built from: MLlib's `numCorrections`
/// and LogisticRegression's `m`, both 10.
pub const HISTORY: usize = 10;

/// Objective values remembered by the function-value test (Breeze's `fvalMemory`).
const FVAL_MEMORY: usize = 20;

/// What to minimize for, and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// At most this many iterations.
    pub max_iter: usize,
    /// Relative tolerance of the function-value and gradient tests.
    pub tol: f64,
    /// L1 weight per coordinate (empty: none). Any weight above 0 makes it OWL-QN minimizing
    /// `f(x) + Σ l1ᵢ |xᵢ|`.
    pub l1: Vec<f64>,
}

/// Why the optimizer stopped, in Breeze's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `maxIter` iterations were made.
    MaxIterations,
    /// The objective changed by at most `tol · |f₀|` over the last 20 values.
    FunctionValuesConverged,
    /// ‖∇f‖ ≤ max(tol · |f|, 1e-8).
    GradientConverged,
    /// The line search failed twice in a row.
    SearchFailed,
}

impl StopReason {
    /// Breeze's text for it.
    pub fn text(self) -> &'static str {
        match self {
            Self::MaxIterations => "max iterations reached",
            Self::FunctionValuesConverged => "function values converged",
            Self::GradientConverged => "gradient converged",
            Self::SearchFailed => "line search failed",
        }
    }
}

/// What the optimizer did.
pub struct Optimized {
    /// The solution.
    pub x: Vec<f64>,
    /// One entry per iteration (MLlib's `objectiveHistory` after its first value): the
    /// objective (with the L1 term), passes over the data so far, gradient norm, and the
    /// validation scores where a validation function was given.
    pub log: Vec<LogEntry>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Wall seconds spent scoring the validation rows (left out of every `elapsed_seconds`).
    pub eval_seconds: f64,
}

/// Scores parameters on validation rows: (mean loss, accuracy).
pub type Validate<'a> = &'a dyn Fn(&[f64]) -> (f64, f64);

/// Caches the last evaluation (one pass over the data) and counts the passes.
struct Cached<'a, O: Objective> {
    objective: &'a O,
    last: Option<(Vec<f64>, f64, Vec<f64>)>,
    evaluations: usize,
}

impl<O: Objective> Cached<'_, O> {
    fn eval(&mut self, x: &[f64]) -> (f64, Vec<f64>) {
        if let Some((px, f, g)) = &self.last
            && px.as_slice() == x
        {
            return (*f, g.clone());
        }
        let (f, g) = self.objective.evaluate(x);
        self.evaluations += 1;
        self.last = Some((x.to_vec(), f, g.clone()));
        (f, g)
    }
}

/// A step that failed: Breeze's `FirstOrderException`s.
#[derive(Debug)]
struct StepFailed;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// x + d·t, computed the same way wherever a point on the search line is needed, so an
/// accepted step is the point the line search evaluated, bit for bit.
fn along(x: &[f64], d: &[f64], t: f64) -> Vec<f64> {
    x.iter().zip(d).map(|(x, d)| x + d * t).collect()
}

/// The L-BFGS approximation of the inverse Hessian: the last pairs, newest first.
struct History {
    steps: VecDeque<Vec<f64>>,
    grad_deltas: VecDeque<Vec<f64>>,
}

impl History {
    fn new() -> Self {
        Self { steps: VecDeque::new(), grad_deltas: VecDeque::new() }
    }

    fn push(&mut self, step: Vec<f64>, grad_delta: Vec<f64>) {
        self.steps.push_front(step);
        self.grad_deltas.push_front(grad_delta);
        self.steps.truncate(HISTORY);
        self.grad_deltas.truncate(HISTORY);
    }

    /// −H·g by the two-loop recursion.
    fn direction(&self, grad: &[f64]) -> std::result::Result<Vec<f64>, StepFailed> {
        let n = self.steps.len();
        let diag = match (self.steps.front(), self.grad_deltas.front()) {
            (Some(s), Some(y)) => {
                let sy = dot(s, y);
                if sy < 0.0 || sy.is_nan() {
                    return Err(StepFailed);
                }
                sy / dot(y, y)
            }
            _ => 1.0,
        };
        let mut dir = grad.to_vec();
        let mut alphas = vec![0.0; n];
        let mut rhos = vec![0.0; n];
        for i in 0..n {
            rhos[i] = dot(&self.steps[i], &self.grad_deltas[i]);
            alphas[i] = dot(&self.steps[i], &dir) / rhos[i];
            if alphas[i].is_nan() {
                return Err(StepFailed);
            }
            for (d, y) in dir.iter_mut().zip(&self.grad_deltas[i]) {
                *d -= alphas[i] * y;
            }
        }
        dir.iter_mut().for_each(|d| *d *= diag);
        for i in (0..n).rev() {
            let beta = dot(&self.grad_deltas[i], &dir) / rhos[i];
            for (d, s) in dir.iter_mut().zip(&self.steps[i]) {
                *d += (alphas[i] - beta) * s;
            }
        }
        dir.iter_mut().for_each(|d| *d = -*d);
        Ok(dir)
    }
}

/// A point on the search line: step t, φ(t) and φ'(t).
#[derive(Debug, Clone, Copy)]
struct Bracket {
    t: f64,
    value: f64,
    slope: f64,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// The minimizer of the cubic through two brackets, kept within the middle 80 % of them.
fn interpolate(l: Bracket, r: Bracket) -> f64 {
    let d1 = l.slope + r.slope - 3.0 * (l.value - r.value) / (l.t - r.t);
    let d2 = (d1 * d1 - l.slope * r.slope).sqrt();
    let t = r.t - (r.t - l.t) * (r.slope + d2 - d1) / (r.slope - l.slope + 2.0 * d2);
    let (low, high) = (l.t + 0.1 * (r.t - l.t), l.t + 0.9 * (r.t - l.t));
    // No real minimizer (d2 is NaN): bisect, where Breeze would go on with NaN.
    if !t.is_finite() { (l.t + r.t) / 2.0 } else { t.clamp(low, high) }
}

/// Breeze's `StrongWolfeLineSearch(maxZoomIter = 10, maxLineSearchIter = 10)` on φ.
fn strong_wolfe(phi: &mut dyn FnMut(f64) -> Bracket, init: f64) -> std::result::Result<f64, StepFailed> {
    let start = phi(0.0);
    if start.slope > 0.0 {
        return Err(StepFailed);
    }
    let mut t = init;
    let mut low = start;
    for i in 0..10 {
        let c = phi(t);
        if !c.value.is_finite() {
            t /= 2.0;
            continue;
        }
        if c.value > start.value + C1 * t * start.slope || (c.value >= low.value && i > 0) {
            return zoom(phi, start, low, c);
        }
        if c.slope.abs() <= C2 * start.slope.abs() {
            return Ok(c.t);
        }
        if c.slope >= 0.0 {
            return zoom(phi, start, c, low);
        }
        low = c;
        t *= 1.5;
    }
    Err(StepFailed)
}

/// The strong Wolfe search's zoom between `low` and `high` (Nocedal & Wright, algorithm 3.6).
fn zoom(
    phi: &mut dyn FnMut(f64) -> Bracket,
    start: Bracket,
    mut low: Bracket,
    mut high: Bracket,
) -> std::result::Result<f64, StepFailed> {
    for _ in 0..10 {
        let t = if low.t > high.t { interpolate(high, low) } else { interpolate(low, high) };
        let c = phi(t);
        // A non-finite value is no decrease (Breeze would keep it as the low end).
        if !c.value.is_finite() || c.value > start.value + C1 * c.t * start.slope || c.value >= low.value {
            high = c;
        } else {
            if c.slope.abs() <= C2 * start.slope.abs() {
                return Ok(c.t);
            }
            if c.slope * (high.t - low.t) >= 0.0 {
                high = low;
            }
            low = c;
        }
    }
    Err(StepFailed)
}

/// Breeze's `BacktrackingLineSearch` as OWL-QN constructs it (at most 20 trials): shrink while
/// the Armijo condition fails or the slope is still steep upward, grow while it is steep
/// downward. As in Breeze, the first trial's value is not evaluated but taken to be
/// `first_value` (OWL-QN passes the objective at the current point, without its L1 term), so
/// only its slope decides whether to grow, shrink or stop there; and when the trials run out, the
/// one before the last is kept.
fn backtracking(
    phi: &mut dyn FnMut(f64) -> Bracket,
    init: f64,
    shrink: f64,
    first_value: f64,
) -> std::result::Result<f64, StepFailed> {
    const GROW: f64 = 2.1;
    const TRIALS: usize = 20;
    let start = phi(0.0);
    let mut c = Bracket { t: init, value: first_value, slope: phi(init).slope };
    for trial in 0.. {
        // A non-finite value is no decrease (Breeze would accept it).
        let factor = if !c.value.is_finite() || c.value > start.value + c.t * start.slope * C1 {
            shrink
        } else if c.slope < C2 * start.slope {
            GROW
        } else if c.slope > -C2 * start.slope {
            shrink
        } else {
            return Ok(c.t);
        };
        let t = c.t * factor;
        if !(1e-10..=1e10).contains(&t) {
            return Err(StepFailed);
        }
        let next = phi(t);
        if trial + 1 >= TRIALS {
            return Ok(c.t);
        }
        c = next;
    }
    unreachable!("the loop returns")
}

/// The sign as Scala's `math.signum`: 0 for ±0 (Rust's `signum` gives ±1 there).
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Where the minimizer is.
struct State {
    x: Vec<f64>,
    /// f(x), without the L1 term.
    value: f64,
    grad: Vec<f64>,
    /// f(x) plus the L1 term.
    adj_value: f64,
    /// The gradient of f plus the L1 term's (the pseudo-gradient where xᵢ = 0).
    adj_grad: Vec<f64>,
    /// Successful steps so far.
    iter: usize,
}

/// Adds the L1 term to f and its gradient (OWL-QN's `adjust`).
fn adjust(l1: &[f64], x: &[f64], value: f64, grad: &[f64]) -> (f64, Vec<f64>) {
    if l1.is_empty() {
        return (value, grad.to_vec());
    }
    let mut penalty = 0.0;
    let adj = x
        .iter()
        .zip(grad)
        .zip(l1)
        .map(|((&xi, &g), &w)| {
            penalty += w * xi.abs();
            if xi == 0.0 {
                if g - w > 0.0 {
                    g - w
                } else if g + w < 0.0 {
                    g + w
                } else {
                    0.0
                }
            } else {
                g + sign(xi) * w
            }
        })
        .collect();
    (value + penalty, adj)
}

/// Steps to `x + t·d`, then (OWL-QN) zeroes every coordinate that left the orthant of `x`
/// (or, where xᵢ = 0, of −pseudo-gradient).
fn take_step(state: &State, l1: &[f64], dir: &[f64], t: f64) -> Vec<f64> {
    let mut next = along(&state.x, dir, t);
    if !l1.is_empty() {
        for ((v, &x), &g) in next.iter_mut().zip(&state.x).zip(&state.adj_grad) {
            let orthant = if x != 0.0 { sign(x) } else { sign(-g) };
            if sign(*v) != orthant {
                *v = 0.0;
            }
        }
    }
    next
}

/// Minimizes `objective` from `x0` as MLlib does (see the module comment). `validate` scores
/// each iterate on validation rows for the log; its time is left out of the log's times.
pub fn minimize(
    objective: &impl Objective,
    x0: Vec<f64>,
    settings: &Settings,
    started: Instant,
    validate: Option<Validate>,
    progress: &dyn Progress,
) -> Result<Optimized> {
    progress.begin(StepUnit::Iteration, settings.max_iter);
    let l1: &[f64] = if settings.l1.iter().any(|&w| w > 0.0) { &settings.l1 } else { &[] };
    let mut f = Cached { objective, last: None, evaluations: 0 };
    let (value, grad) = f.eval(&x0);
    if !value.is_finite() {
        return Err(Error::diverged("iteration 0", value));
    }
    let (adj_value, adj_grad) = adjust(l1, &x0, value, &grad);
    let initial = adj_value;
    let mut state = State { x: x0, value, grad, adj_value, adj_grad, iter: 0 };
    let mut history = History::new();
    let mut values: VecDeque<f64> = VecDeque::from([f64::INFINITY]);
    let (mut failed_once, mut search_failed) = (false, false);
    let mut log: Vec<LogEntry> = Vec::new();
    let mut eval_seconds = 0.0;
    let stop_reason = loop {
        if state.iter >= settings.max_iter {
            break StopReason::MaxIterations;
        }
        let largest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if values.len() >= 2 && (state.adj_value - largest).abs() <= settings.tol * initial.abs() {
            break StopReason::FunctionValuesConverged;
        }
        if norm(&state.adj_grad) <= (settings.tol * state.adj_value.abs()).max(1e-8) {
            break StopReason::GradientConverged;
        }
        if search_failed {
            break StopReason::SearchFailed;
        }
        let mut entry_extra = BTreeMap::new();
        match step(&mut f, &state, &history, l1) {
            Ok(next) => {
                if !next.adj_value.is_finite() {
                    return Err(Error::diverged(format!("iteration {}", log.len() + 1), next.adj_value));
                }
                let s: Vec<f64> = next.x.iter().zip(&state.x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = next.grad.iter().zip(&state.grad).map(|(a, b)| a - b).collect();
                history.push(s, y);
                values.push_back(next.adj_value);
                while values.len() > FVAL_MEMORY {
                    values.pop_front();
                }
                state = next;
                failed_once = false;
            }
            Err(StepFailed) if !failed_once => {
                failed_once = true;
                history = History::new();
                entry_extra.insert("history_reset".to_owned(), 1.0);
            }
            Err(StepFailed) => {
                search_failed = true;
                entry_extra.insert("search_failed".to_owned(), 1.0);
            }
        }
        let (valid_loss, valid_accuracy) = match validate {
            Some(score) => {
                let t = Instant::now();
                let (l, a) = score(&state.x);
                eval_seconds += t.elapsed().as_secs_f64();
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        entry_extra.insert("evaluations".to_owned(), f.evaluations as f64);
        entry_extra.insert("gradient_norm".to_owned(), norm(&state.adj_grad));
        log.push(LogEntry {
            step: log.len() + 1,
            loss: state.adj_value,
            valid_loss,
            valid_accuracy,
            elapsed_seconds: started.elapsed().as_secs_f64() - eval_seconds,
            extra: entry_extra,
        });
        progress.entry(&log[log.len() - 1]);
    };
    if state.x.iter().any(|v| !v.is_finite()) {
        return Err(Error::diverged(format!("iteration {}", log.len()), f64::NAN));
    }
    Ok(Optimized { x: state.x, log, stop_reason, eval_seconds })
}

/// One iteration: direction, line search, the new point (Breeze's `infiniteIterations` body).
fn step<O: Objective>(
    f: &mut Cached<'_, O>,
    state: &State,
    history: &History,
    l1: &[f64],
) -> std::result::Result<State, StepFailed> {
    let first = state.iter == 0;
    if l1.is_empty() {
        let dir = history.direction(&state.grad)?;
        let alpha = {
            let mut phi = |t: f64| {
                let (value, grad) = f.eval(&along(&state.x, &dir, t));
                Bracket { t, value, slope: dot(&grad, &dir) }
            };
            strong_wolfe(&mut phi, if first { 1.0 / norm(&dir) } else { 1.0 })?
        };
        if alpha * norm(&state.grad) < 1e-10 {
            return Err(StepFailed);
        }
        finish(f, state, l1, &dir, alpha)
    } else {
        // The direction from the pseudo-gradient, kept in its orthant.
        let mut dir = history.direction(&state.adj_grad)?;
        for (d, g) in dir.iter_mut().zip(&state.adj_grad) {
            let same_orthant = *d * g < 0.0;
            if !same_orthant {
                *d = 0.0;
            }
        }
        let alpha = {
            let mut phi = |t: f64| {
                let x = take_step(state, l1, &dir, t);
                let (value, grad) = f.eval(&x);
                let (adj_value, adj_grad) = adjust(l1, &x, value, &grad);
                Bracket { t, value: adj_value, slope: dot(&adj_grad, &dir) }
            };
            let init = if first { 0.5 / norm(&state.grad) } else { 1.0 };
            backtracking(&mut phi, init, if first { 0.1 } else { 0.5 }, state.value)?
        };
        finish(f, state, l1, &dir, alpha)
    }
}

/// The state at the accepted step (its evaluation comes from the cache).
fn finish<O: Objective>(
    f: &mut Cached<'_, O>,
    state: &State,
    l1: &[f64],
    dir: &[f64],
    alpha: f64,
) -> std::result::Result<State, StepFailed> {
    let x = take_step(state, l1, dir, alpha);
    let (value, grad) = f.eval(&x);
    let (adj_value, adj_grad) = adjust(l1, &x, value, &grad);
    Ok(State { x, value, grad, adj_value, adj_grad, iter: state.iter + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainbench_engine::Silent;

    struct Quadratic;
    impl Objective for Quadratic {
        fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
            // (x0 - 3)^2 + 10 (x1 + 1)^2
            let f = (x[0] - 3.0).powi(2) + 10.0 * (x[1] + 1.0).powi(2);
            (f, vec![2.0 * (x[0] - 3.0), 20.0 * (x[1] + 1.0)])
        }
    }

    fn settings(max_iter: usize, tol: f64) -> Settings {
        Settings { max_iter, tol, l1: Vec::new() }
    }

    #[test]
    fn finds_the_minimum_and_logs_iterations() {
        let out = minimize(&Quadratic, vec![0.0, 0.0], &settings(100, 1e-12), Instant::now(), None, &Silent).unwrap();
        assert!((out.x[0] - 3.0).abs() < 1e-5 && (out.x[1] + 1.0).abs() < 1e-5, "{:?}", out.x);
        assert_eq!(out.stop_reason, StopReason::GradientConverged);
        assert!(!out.log.is_empty());
        assert!(out.log.windows(2).all(|w| w[1].loss <= w[0].loss + 1e-12));
        // At least one pass over the data per iteration, counted cumulatively.
        let evaluations: Vec<f64> = out.log.iter().map(|e| e.extra["evaluations"]).collect();
        assert!(evaluations.windows(2).all(|w| w[1] > w[0]), "{evaluations:?}");
        assert!(evaluations[0] >= 2.0 && *evaluations.last().unwrap() >= out.log.len() as f64 + 1.0);
        assert!(out.log.last().unwrap().extra["gradient_norm"] <= 1e-8);
    }

    /// Rosenbrock's valley from (−1.2, 1): the textbook test of a quasi-Newton method and its
    /// line search; Breeze's L-BFGS solves it to 1e-5 within its default 100 iterations.
    struct Rosenbrock;
    impl Objective for Rosenbrock {
        fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
            let (a, b) = (x[0], x[1]);
            let f = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            (f, vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)])
        }
    }

    #[test]
    fn solves_rosenbrock() {
        let out = minimize(&Rosenbrock, vec![-1.2, 1.0], &settings(100, 1e-10), Instant::now(), None, &Silent).unwrap();
        assert!((out.x[0] - 1.0).abs() < 1e-5 && (out.x[1] - 1.0).abs() < 1e-5, "{:?} after {}", out.x, out.log.len());
        assert!(out.log.len() < 60, "{} iterations", out.log.len());
    }

    /// A slowly converging objective: f = Σ cᵢ (xᵢ − 1)² with widely spread curvatures. With a
    /// tolerance far above the gradient's, the function-value test stops it, at iteration 20 at
    /// the earliest (its memory starts full of +∞ and holds 20 values).
    #[test]
    fn function_values_stop_no_earlier_than_iteration_twenty() {
        struct Spread;
        impl Objective for Spread {
            fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
                let c = |i: usize| 10f64.powf(i as f64 / 6.0);
                let f = x.iter().enumerate().map(|(i, v)| c(i) * (v - 1.0).powi(2)).sum();
                (f, x.iter().enumerate().map(|(i, v)| 2.0 * c(i) * (v - 1.0)).collect())
            }
        }
        let out = minimize(&Spread, vec![0.0; 30], &settings(1000, 1e-3), Instant::now(), None, &Silent).unwrap();
        assert_eq!(out.stop_reason, StopReason::FunctionValuesConverged, "after {} iterations", out.log.len());
        assert!(out.log.len() >= 20, "{}", out.log.len());
        // The rule itself: within tol·|f₀| of the value 19 iterations before.
        let n = out.log.len();
        let f0 = Spread.evaluate(&[0.0; 30]).0;
        assert!((out.log[n - 1].loss - out.log[n - 20].loss).abs() <= 1e-3 * f0);
        if n > 20 {
            assert!((out.log[n - 2].loss - out.log[n - 21].loss).abs() > 1e-3 * f0, "should have stopped earlier");
        }
        // A tighter tolerance runs to max_iter instead.
        let capped = minimize(&Spread, vec![0.0; 30], &settings(7, 1e-12), Instant::now(), None, &Silent).unwrap();
        assert_eq!((capped.stop_reason, capped.log.len()), (StopReason::MaxIterations, 7));
    }

    #[test]
    fn a_start_at_the_optimum_takes_no_iteration() {
        let out = minimize(&Quadratic, vec![3.0, -1.0], &settings(100, 1e-6), Instant::now(), None, &Silent).unwrap();
        assert_eq!((out.stop_reason, out.log.len()), (StopReason::GradientConverged, 0));
    }

    #[test]
    fn l1_shrinks_to_zero_and_spares_unweighted_coordinates() {
        // With an L1 weight of 25 on x1, its optimum is exactly 0: |20 (x1 + 1)| < 25 at 0.
        let s = Settings { max_iter: 200, tol: 1e-12, l1: vec![0.0, 25.0] };
        let out = minimize(&Quadratic, vec![0.5, 0.5], &s, Instant::now(), None, &Silent).unwrap();
        assert_eq!(out.x[1], 0.0, "{:?}", out.x);
        assert!((out.x[0] - 3.0).abs() < 1e-6, "{:?}", out.x);
        // The logged objective includes the L1 term: f(3, 0) = 10.
        assert!((out.log.last().unwrap().loss - 10.0).abs() < 1e-9);
        // A weight of 4 moves x1's optimum to −1 + 4/20 = −0.8.
        let s = Settings { max_iter: 200, tol: 1e-12, l1: vec![0.0, 4.0] };
        let out = minimize(&Quadratic, vec![0.0, 0.0], &s, Instant::now(), None, &Silent).unwrap();
        assert!((out.x[1] + 0.8).abs() < 1e-6, "{:?}", out.x);
    }

    struct Broken;
    impl Objective for Broken {
        fn evaluate(&self, _: &[f64]) -> (f64, Vec<f64>) {
            (f64::NAN, vec![0.0])
        }
    }

    #[test]
    fn a_nan_objective_is_divergence() {
        let r = minimize(&Broken, vec![0.0], &settings(10, 1e-6), Instant::now(), None, &Silent);
        assert!(matches!(r, Err(Error::Diverged { .. })));
    }

    /// An objective whose slope at the start points uphill: every direction fails, the history
    /// is reset once (counted as an iteration, as MLlib's totalIterations does), then the run
    /// stops with the line search failed and the starting point kept.
    #[test]
    fn a_failing_search_resets_once_then_stops() {
        struct Liar;
        impl Objective for Liar {
            fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
                // The gradient's sign is wrong: following −g goes uphill.
                (x[0] * x[0] + 1.0, vec![-2.0 * x[0] - 1.0])
            }
        }
        let out = minimize(&Liar, vec![1.0], &settings(100, 1e-9), Instant::now(), None, &Silent).unwrap();
        assert_eq!(out.stop_reason, StopReason::SearchFailed);
        assert_eq!(out.log.len(), 2);
        assert_eq!(out.log[0].extra.get("history_reset"), Some(&1.0));
        assert_eq!(out.log[1].extra.get("search_failed"), Some(&1.0));
        assert_eq!(out.x, [1.0]);
    }

    #[test]
    fn validation_is_scored_per_iteration_and_timed_apart() {
        let score = |x: &[f64]| (x[0], 0.5);
        let out =
            minimize(&Quadratic, vec![0.0, 0.0], &settings(5, 0.0), Instant::now(), Some(&score), &Silent).unwrap();
        assert!(out.log.iter().all(|e| e.valid_accuracy == Some(0.5) && e.valid_loss.is_some()));
        assert!(out.eval_seconds >= 0.0);
    }
}
