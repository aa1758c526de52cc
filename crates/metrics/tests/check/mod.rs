//! Compares trainbench's metrics with values scikit-learn computed on the same inputs.

use trainbench_metrics::ClassificationReport;

pub struct Expected {
    pub accuracy: f64,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub f1: Vec<f64>,
    pub support: Vec<u64>,
    pub macro_avg: [f64; 3],
    pub weighted_avg: [f64; 3],
    pub auc: f64,
    pub log_loss: f64,
    pub confusion: Vec<Vec<u64>>,
}

/// Counting metrics are exact up to float rounding, so the tolerance is tight.
const TOL: f64 = 1e-12;

fn close(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= TOL * want.abs().max(1.0), "{what}: got {got}, scikit-learn {want}");
}

pub fn check(y: &[u32], proba: &[f32], classes: usize, e: &Expected) {
    let r = ClassificationReport::from_proba(y, proba, classes).unwrap();
    close("accuracy", r.accuracy, e.accuracy);
    for c in 0..classes {
        close(&format!("precision[{c}]"), r.per_class[c].precision, e.precision[c]);
        close(&format!("recall[{c}]"), r.per_class[c].recall, e.recall[c]);
        close(&format!("f1[{c}]"), r.per_class[c].f1, e.f1[c]);
        assert_eq!(r.per_class[c].support, e.support[c], "support[{c}]");
    }
    for (name, got, want) in [("macro", r.macro_avg, e.macro_avg), ("weighted", r.weighted_avg, e.weighted_avg)] {
        close(&format!("{name} precision"), got.precision, want[0]);
        close(&format!("{name} recall"), got.recall, want[1]);
        close(&format!("{name} f1"), got.f1, want[2]);
    }
    close("roc_auc", r.roc_auc.expect("every class has positives and negatives"), e.auc);
    close("log_loss", r.log_loss.unwrap(), e.log_loss);
    assert_eq!(r.confusion.counts, e.confusion);
}
