use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Probabilities are clipped to `[EPS, 1 - EPS]` before the logarithm, as scikit-learn does
/// for float64 inputs, so one confident mistake gives a large but finite log-loss.
const LOG_LOSS_EPS: f64 = f64::EPSILON;

/// A metric's name and direction, so reports and tuners know which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Fraction of rows predicted right.
    Accuracy,
    /// Unweighted mean over classes of precision.
    PrecisionMacro,
    /// Unweighted mean over classes of recall.
    RecallMacro,
    /// Unweighted mean over classes of F1.
    F1Macro,
    /// Support-weighted mean over classes of F1.
    F1Weighted,
    /// Area under the ROC curve (binary) or one-vs-rest macro mean (multiclass).
    RocAuc,
    /// Mean negative log-likelihood of the true class.
    LogLoss,
}

impl Metric {
    /// Every metric, in the order reports list them.
    pub const ALL: [Metric; 7] = [
        Metric::Accuracy,
        Metric::PrecisionMacro,
        Metric::RecallMacro,
        Metric::F1Macro,
        Metric::F1Weighted,
        Metric::RocAuc,
        Metric::LogLoss,
    ];

    /// The names, as the command line and results.json write them.
    pub const NAMES: &'static [&'static str] =
        &["accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "roc_auc", "log_loss"];

    /// The name.
    pub fn name(self) -> &'static str {
        Self::NAMES[Self::ALL.iter().position(|m| *m == self).unwrap_or(0)]
    }

    /// Whether a larger value is better (false only for log-loss).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::LogLoss)
    }

    /// Reads this metric from a report; `None` when it could not be computed.
    pub fn value(self, report: &ClassificationReport) -> Option<f64> {
        match self {
            Metric::Accuracy => Some(report.accuracy),
            Metric::PrecisionMacro => Some(report.macro_avg.precision),
            Metric::RecallMacro => Some(report.macro_avg.recall),
            Metric::F1Macro => Some(report.macro_avg.f1),
            Metric::F1Weighted => Some(report.weighted_avg.f1),
            Metric::RocAuc => report.roc_auc,
            Metric::LogLoss => report.log_loss,
        }
    }
}

/// Precision, recall and F1 of one class, or an average of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// TP / (TP + FP); 0 when the class is never predicted (scikit-learn's `zero_division=0`).
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class never occurs.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Number of rows whose true label is this class (for averages: all rows).
    pub support: u64,
}

/// The averages reported: unweighted over classes, and weighted by support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Average {
    /// Every class counts the same.
    Macro,
    /// Classes count by their number of true rows.
    Weighted,
}

/// Counts of (true class, predicted class); `counts[t][p]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// `counts[true][predicted]`, as scikit-learn's `confusion_matrix`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Builds the matrix from true and predicted labels.
    pub fn new(y_true: &[u32], y_pred: &[u32], classes: usize) -> Result<Self> {
        check_labels(y_true, classes)?;
        check_labels(y_pred, classes)?;
        if y_true.len() != y_pred.len() {
            return Err(Error::LengthMismatch {
                what: "predicted labels",
                expected: y_true.len(),
                found: y_pred.len(),
            });
        }
        let mut counts = vec![vec![0u64; classes]; classes];
        for (&t, &p) in y_true.iter().zip(y_pred) {
            counts[t as usize][p as usize] += 1;
        }
        Ok(Self { counts })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.counts.len()
    }
}

/// Every metric of a classifier on one set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Fraction of rows whose predicted class is the true class.
    pub accuracy: f64,
    /// Scores per class, indexed by class.
    pub per_class: Vec<ClassScores>,
    /// Unweighted mean over all classes of the model.
    pub macro_avg: ClassScores,
    /// Support-weighted mean over all classes.
    pub weighted_avg: ClassScores,
    /// Binary: AUC of the positive class (class 1). Multiclass: one-vs-rest macro mean.
    /// `None` without probabilities or when some class has no positive or no negative row.
    pub roc_auc: Option<f64>,
    /// Mean negative log-probability of the true class; `None` without probabilities.
    pub log_loss: Option<f64>,
    /// Counts of (true, predicted).
    pub confusion: ConfusionMatrix,
}

impl ClassificationReport {
    /// Scores class probabilities (`proba` is row-major, `classes` values per row).
    /// The predicted class of a row is its most probable class (the first on ties).
    pub fn from_proba(y_true: &[u32], proba: &[f32], classes: usize) -> Result<Self> {
        if classes < 2 {
            return Err(Error::TooFewClasses(classes));
        }
        let n = y_true.len();
        if proba.len() != n * classes {
            return Err(Error::LengthMismatch {
                what: "probabilities (rows × classes)",
                expected: n * classes,
                found: proba.len(),
            });
        }
        for (i, &p) in proba.iter().enumerate() {
            if !(p.is_finite() && p >= 0.0) {
                return Err(Error::InvalidProbability { row: i / classes, class: i % classes, value: f64::from(p) });
            }
        }
        let y_pred: Vec<u32> = proba.chunks_exact(classes).map(argmax).collect();
        let mut report = Self::from_predictions(y_true, &y_pred, classes)?;
        report.roc_auc = roc_auc(y_true, proba, classes);
        report.log_loss = Some(log_loss(y_true, proba, classes));
        Ok(report)
    }

    /// Scores hard predictions; AUC and log-loss are left empty.
    pub fn from_predictions(y_true: &[u32], y_pred: &[u32], classes: usize) -> Result<Self> {
        if classes < 2 {
            return Err(Error::TooFewClasses(classes));
        }
        if y_true.is_empty() {
            return Err(Error::Empty);
        }
        let confusion = ConfusionMatrix::new(y_true, y_pred, classes)?;
        let n = y_true.len() as f64;
        let correct: u64 = (0..classes).map(|c| confusion.counts[c][c]).sum();
        let per_class: Vec<ClassScores> = (0..classes)
            .map(|c| {
                let tp = confusion.counts[c][c] as f64;
                let predicted: u64 = (0..classes).map(|t| confusion.counts[t][c]).sum();
                let support: u64 = confusion.counts[c].iter().sum();
                let precision = ratio(tp, predicted as f64);
                let recall = ratio(tp, support as f64);
                let f1 = ratio(2.0 * precision * recall, precision + recall);
                ClassScores { precision, recall, f1, support }
            })
            .collect();
        let macro_avg = average(&per_class, Average::Macro);
        let weighted_avg = average(&per_class, Average::Weighted);
        Ok(Self {
            accuracy: correct as f64 / n,
            per_class,
            macro_avg,
            weighted_avg,
            roc_auc: None,
            log_loss: None,
            confusion,
        })
    }
}

fn check_labels(labels: &[u32], classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(row) => Err(Error::LabelOutOfRange { row, label: labels[row], classes }),
        None => Ok(()),
    }
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &p) in row.iter().enumerate() {
        if p > row[best] {
            best = i;
        }
    }
    best as u32
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

fn average(per_class: &[ClassScores], how: Average) -> ClassScores {
    let total: u64 = per_class.iter().map(|s| s.support).sum();
    let weight = |s: &ClassScores| match how {
        Average::Macro => 1.0 / per_class.len() as f64,
        Average::Weighted => ratio(s.support as f64, total as f64),
    };
    let sum = |f: fn(&ClassScores) -> f64| per_class.iter().map(|s| f(s) * weight(s)).sum();
    ClassScores { precision: sum(|s| s.precision), recall: sum(|s| s.recall), f1: sum(|s| s.f1), support: total }
}

/// Binary: AUC of class 1's score. Multiclass: mean over classes of one-vs-rest AUC.
fn roc_auc(y_true: &[u32], proba: &[f32], classes: usize) -> Option<f64> {
    let one_vs_rest = |c: usize| {
        let scores: Vec<f64> = proba.chunks_exact(classes).map(|r| f64::from(r[c])).collect();
        let positive: Vec<bool> = y_true.iter().map(|&t| t as usize == c).collect();
        binary_auc(&scores, &positive)
    };
    if classes == 2 {
        return one_vs_rest(1);
    }
    let mut sum = 0.0;
    for c in 0..classes {
        sum += one_vs_rest(c)?;
    }
    Some(sum / classes as f64)
}

/// The Mann–Whitney form of the AUC: ties between a positive and a negative count one half,
/// which equals the trapezoidal area under the ROC curve that scikit-learn computes.
fn binary_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = positive.iter().filter(|&&p| p).count() as f64;
    let negatives = scores.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Sum of (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        rank_sum += mean_rank * tied_positives;
        i = j + 1;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

fn log_loss(y_true: &[u32], proba: &[f32], classes: usize) -> f64 {
    let total: f64 = y_true
        .iter()
        .zip(proba.chunks_exact(classes))
        .map(|(&t, row)| -f64::from(row[t as usize]).clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS).ln())
        .sum();
    total / y_true.len() as f64
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| format!("'{s}' is not one of {}", Self::NAMES.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        // One positive tied with one negative, one positive above the other negative.
        let scores = [0.5, 0.5, 0.9, 0.1];
        let positive = [true, false, true, false];
        // Pairs: (0.5+,0.5-)=0.5, (0.5+,0.1-)=1, (0.9+,0.5-)=1, (0.9+,0.1-)=1 -> 3.5/4.
        assert_eq!(binary_auc(&scores, &positive), Some(0.875));
        assert_eq!(binary_auc(&scores, &[true; 4]), None);
    }

    #[test]
    fn rejects_bad_inputs() {
        assert!(matches!(
            ClassificationReport::from_proba(&[0, 1], &[0.5, 0.5, f32::NAN, 1.0], 2),
            Err(Error::InvalidProbability { row: 1, class: 0, .. })
        ));
        assert!(matches!(
            ClassificationReport::from_predictions(&[0, 2], &[0, 1], 2),
            Err(Error::LabelOutOfRange { row: 1, label: 2, .. })
        ));
        assert!(matches!(ClassificationReport::from_proba(&[0], &[1.0], 2), Err(Error::LengthMismatch { .. })));
        assert!(matches!(ClassificationReport::from_predictions(&[], &[], 2), Err(Error::Empty)));
        assert!(matches!(ClassificationReport::from_predictions(&[0], &[0], 1), Err(Error::TooFewClasses(1))));
    }

    #[test]
    fn direction_of_metrics() {
        assert!(Metric::Accuracy.higher_is_better());
        assert!(!Metric::LogLoss.higher_is_better());
    }
}
