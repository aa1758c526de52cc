//! Live training progress, as Keras's `fit()` prints it: a line per epoch (tensor), per tree
//! level, and every few iterations of L-BFGS (spark), on stderr so stdout keeps the results. On a
//! terminal the lines go above the run's bar, which counts the steps of the current epoch; with
//! `--json` or `--quiet`, and on every MPI rank but 0, nothing is printed.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use trainbench_engine::{LogEntry, Progress, StepUnit, TrainLog};

/// An iteration line is printed for the first iteration, every `ITERATION_EVERY`-th and the last.
pub const ITERATION_EVERY: usize = 10;

/// Prints one fit's progress.
pub struct LiveProgress {
    /// Put before every line: the run's id in studies, nothing in `train`.
    prefix: String,
    /// The run's spinner (hidden off a terminal): lines print above it, epochs fill it.
    bar: ProgressBar,
    /// Whether the bar is the fit's own, to count steps and show the latest line in.
    own_bar: bool,
    show: bool,
    state: Mutex<State>,
}

struct State {
    unit: StepUnit,
    planned: usize,
    /// The last entry reported, and whether its line was printed.
    last: Option<(LogEntry, bool)>,
    /// Whether the bar was restyled to count steps.
    counting_steps: bool,
}

impl LiveProgress {
    /// Progress for a fit shown in `bar`, its lines starting with `prefix`; silent unless `show`
    /// (and silent on MPI ranks other than 0).
    pub fn new(prefix: impl Into<String>, bar: ProgressBar, show: bool) -> Self {
        Self {
            prefix: prefix.into(),
            bar,
            own_bar: true,
            show: show && trainbench_engine::collective::is_primary(),
            state: Mutex::new(State { unit: StepUnit::Iteration, planned: 0, last: None, counting_steps: false }),
        }
    }

    /// Progress whose lines print above `bar` (another count, such as `tune`'s trials), which
    /// it leaves alone.
    pub fn above(prefix: impl Into<String>, bar: ProgressBar, show: bool) -> Self {
        Self { own_bar: false, ..Self::new(prefix, bar, show) }
    }

    /// The fit has ended with `log`: prints the last entry if the every-N rule skipped it, and
    /// why training stopped.
    pub fn finish(&self, log: &TrainLog) {
        let Ok(state) = self.state.lock() else { return };
        if let Some((entry, false)) = &state.last {
            self.print(&line(state.unit, state.planned, entry));
        }
        if !log.stop_reason.is_empty() && state.last.is_some() {
            self.print(&format!("stopped: {}", log.stop_reason));
        }
    }

    fn print(&self, text: &str) {
        if !self.show {
            return;
        }
        let text = format!("{}{text}", self.prefix);
        if self.bar.is_hidden() { eprintln!("{text}") } else { self.bar.println(text) }
    }
}

impl Progress for LiveProgress {
    fn begin(&self, unit: StepUnit, planned: usize) {
        if !self.show {
            return;
        }
        if let Ok(mut state) = self.state.lock() {
            *state = State { unit, planned, last: None, counting_steps: false };
        }
    }

    fn entry(&self, entry: &LogEntry) {
        if !self.show {
            return;
        }
        let Ok(mut state) = self.state.lock() else { return };
        let text = line(state.unit, state.planned, entry);
        let printed = state.unit != StepUnit::Iteration
            || entry.step == 1
            || entry.step.is_multiple_of(ITERATION_EVERY)
            || entry.step == state.planned;
        if printed {
            self.print(&text);
        }
        if self.own_bar && state.unit != StepUnit::Epoch {
            self.bar.set_message(format!("{}{text}", self.prefix));
        }
        state.last = Some((entry.clone(), printed));
    }

    fn step(&self, epoch: usize, done: usize, total: usize) {
        if !self.show || !self.own_bar || self.bar.is_hidden() {
            return;
        }
        let Ok(mut state) = self.state.lock() else { return };
        if !state.counting_steps {
            let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            self.bar.set_style(style);
            state.counting_steps = true;
        }
        if done <= 1 {
            self.bar.set_message(format!("{}Epoch {epoch}/{}", self.prefix, state.planned));
            self.bar.set_length(total as u64);
            self.bar.reset_eta();
        }
        self.bar.set_position(done as u64);
    }
}

/// The line for one log entry: Keras's epoch line, and the same shape for iterations and levels.
pub fn line(unit: StepUnit, planned: usize, e: &LogEntry) -> String {
    let extra = |name: &str| e.extra.get(name).copied();
    let mut parts = Vec::new();
    match unit {
        StepUnit::Epoch => {
            parts.push(format!("Epoch {}/{planned}", e.step));
            parts.push(seconds(extra("epoch_seconds").unwrap_or(e.elapsed_seconds)));
            parts.push(format!("loss {:.4}", e.loss));
            if let Some(a) = extra("accuracy") {
                parts.push(format!("accuracy {a:.4}"));
            }
        }
        StepUnit::Iteration => {
            parts.push(format!("Iteration {}/{planned}", e.step));
            parts.push(seconds(e.elapsed_seconds));
            parts.push(format!("loss {:.6}", e.loss));
            if let Some(g) = extra("gradient_norm") {
                parts.push(format!("gradient norm {g:.3e}"));
            }
        }
        StepUnit::Level => {
            parts.push(format!("Level {}/{planned}", e.step));
            parts.push(seconds(e.elapsed_seconds));
            parts.push(format!("impurity {:.4}", e.loss));
            if let Some(n) = extra("nodes") {
                parts.push(format!("nodes {n}"));
            }
        }
    }
    if let Some(l) = e.valid_loss {
        parts.push(format!("val_loss {l:.4}"));
    }
    if let Some(a) = e.valid_accuracy {
        parts.push(format!("val_accuracy {a:.4}"));
    }
    parts.join(" – ")
}

/// "0.93 s", "12.4 s", "128 s".
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 100.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(step: usize, extra: &[(&str, f64)]) -> LogEntry {
        LogEntry {
            step,
            loss: 0.41234,
            valid_loss: Some(0.43),
            valid_accuracy: Some(0.82),
            elapsed_seconds: 2.5,
            extra: extra.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn lines_read_like_keras() {
        let e = entry(3, &[("epoch_seconds", 0.912), ("accuracy", 0.83)]);
        assert_eq!(
            line(StepUnit::Epoch, 10, &e),
            "Epoch 3/10 – 0.91 s – loss 0.4123 – accuracy 0.8300 – val_loss 0.4300 – val_accuracy 0.8200"
        );
        let e = entry(20, &[("gradient_norm", 0.000312)]);
        assert_eq!(
            line(StepUnit::Iteration, 100, &e),
            "Iteration 20/100 – 2.50 s – loss 0.412340 – gradient norm 3.120e-4 – val_loss 0.4300 – val_accuracy 0.8200"
        );
        let e = LogEntry { valid_loss: None, valid_accuracy: None, ..entry(2, &[("nodes", 7.0)]) };
        assert_eq!(line(StepUnit::Level, 5, &e), "Level 2/5 – 2.50 s – impurity 0.4123 – nodes 7");
    }
}
