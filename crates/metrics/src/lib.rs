//! Classification metrics, phase timers and a resource sampler, shared by every trainbench engine.
//!
//! One implementation scores every engine, so a comparison between engines is decided by
//! the models and never by two ways of counting.
//!
//! # Example
//!
//! ```
//! use trainbench_metrics::ClassificationReport;
//!
//! // Three rows, two classes; probabilities are row-major, one row per example.
//! let labels = [0, 1, 1];
//! let proba = [0.8, 0.2, 0.3, 0.7, 0.6, 0.4];
//! let report = ClassificationReport::from_proba(&labels, &proba, 2).unwrap();
//! assert!((report.accuracy - 2.0 / 3.0).abs() < 1e-12);
//! assert_eq!(report.confusion.counts[1][0], 1);
//! ```
#![warn(missing_docs)]

mod classification;
mod error;
mod resources;
mod timers;

pub use classification::{Average, ClassScores, ClassificationReport, ConfusionMatrix, Metric};
pub use error::{Error, Result};
pub use resources::{
    ResourceSample, ResourceSampler, ResourceSummary, memory_budget, pid_listening_on, process_peak_rss,
};
pub use timers::{Phase, PhaseTimers};
