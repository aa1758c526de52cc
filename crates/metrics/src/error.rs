use thiserror::Error as ThisError;

/// What went wrong while scoring predictions.
#[derive(Debug, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// Two inputs that must describe the same rows have different lengths.
    #[error("length mismatch: {what}: expected {expected}, found {found}")]
    LengthMismatch {
        /// Which input was wrong.
        what: &'static str,
        /// Length implied by the other inputs.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// A label is not below the number of classes.
    #[error("label {label} at row {row} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// Row index (0-based).
        row: usize,
        /// The offending label.
        label: u32,
        /// Number of classes.
        classes: usize,
    },
    /// A probability is NaN, infinite or negative.
    #[error("probability {value} at row {row}, class {class} is not a finite non-negative number")]
    InvalidProbability {
        /// Row index (0-based).
        row: usize,
        /// Class index.
        class: usize,
        /// The value found.
        value: f64,
    },
    /// There is nothing to score.
    #[error("no rows to score")]
    Empty,
    /// Fewer than two classes.
    #[error("at least 2 classes are needed, found {0}")]
    TooFewClasses(usize),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
