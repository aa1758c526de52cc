use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A stage of a run whose wall time is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading the source into a table.
    Load,
    /// Missing values, duplicates and invalid rows.
    Clean,
    /// Splitting and fitting / applying the preprocessor.
    Preprocess,
    /// Training.
    Fit,
    /// Scoring held-out rows.
    Predict,
}

impl Phase {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Load => "load",
            Phase::Clean => "clean",
            Phase::Preprocess => "preprocess",
            Phase::Fit => "fit",
            Phase::Predict => "predict",
        }
    }
}

/// Wall-clock time per phase, in the order the phases first ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseTimers {
    phases: Vec<(Phase, f64)>,
}

impl PhaseTimers {
    /// No phase timed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f`, adding its wall time to `phase`.
    pub fn time<T>(&mut self, phase: Phase, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.add(phase, start.elapsed());
        out
    }

    /// Adds `elapsed` to `phase` (a phase may run more than once).
    pub fn add(&mut self, phase: Phase, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += secs,
            None => self.phases.push((phase, secs)),
        }
    }

    /// Seconds spent in `phase`, if it ran.
    pub fn seconds(&self, phase: Phase) -> Option<f64> {
        self.phases.iter().find(|(p, _)| *p == phase).map(|(_, s)| *s)
    }

    /// Every timed phase with its seconds, in first-run order.
    pub fn iter(&self) -> impl Iterator<Item = (Phase, f64)> + '_ {
        self.phases.iter().copied()
    }

    /// Sum over all phases.
    pub fn total_seconds(&self) -> f64 {
        self.phases.iter().map(|(_, s)| s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_per_phase_in_first_run_order() {
        let mut t = PhaseTimers::new();
        t.add(Phase::Fit, Duration::from_millis(300));
        t.add(Phase::Load, Duration::from_millis(100));
        t.add(Phase::Fit, Duration::from_millis(200));
        assert_eq!(t.seconds(Phase::Fit), Some(0.5));
        assert_eq!(t.seconds(Phase::Clean), None);
        let order: Vec<_> = t.iter().map(|(p, _)| p.name()).collect();
        assert_eq!(order, ["fit", "load"]);
        assert!((t.total_seconds() - 0.6).abs() < 1e-12);
        let v = t.time(Phase::Predict, || 7);
        assert_eq!(v, 7);
        assert!(t.seconds(Phase::Predict).is_some());
    }
}
