//! A model fitted on the cluster, read back: Spark's fitted stages become trainbench's
//! preprocessor and the MLlib model becomes the spark engine's own model, so `predict` and
//! `export` take it as any saved model.
//!
//! What is fetched (each through Spark Connect's ML `Fetch`, the attributes PySpark reads):
//! - the StringIndexers' `labelsArray` (the label's classes, each string column's levels) and
//!   the OneHotEncoder's `categorySizes` (levels + the slot that `handleInvalid = "keep"` adds);
//! - the Imputer's `surrogateDF` (cast to the column's type, as Spark casts the filled value);
//! - the StandardScaler's `mean` and `std`;
//! - LogisticRegression's `coefficientMatrix` and `interceptVector`; the MLP's `weights`; the
//!   tree's `toDebugString` (structure and thresholds) and, for each leaf, `predictRaw` of a
//!   point that reaches it (the leaf's class counts).
//!
//! Then a check: Spark's own probabilities for up to [`CHECK_ROWS`] test rows, brought back
//! with the rows, against the read-back preprocessor and model on the same rows.

use std::collections::{HashMap, VecDeque};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use trainbench_data::{
    Column, ColumnData, Encoding, FittedColumn, FittedPreprocessor, MISSING_CODE, PreprocessOptions, Table,
    UnseenPolicy,
};
use trainbench_engine::TrainedModel;

use super::client::Session;
use super::literal::{doubles, ints, matrix, param, string_arrays};
use super::{ClusterError, Estimator, plan};
use crate::logistic::LogisticModel;
use crate::mlp::MlpModel;
use crate::tree::{Node, Rule, TreeModel};
use spark_connect_proto as pb;

/// Test rows on which the read-back model is checked against Spark's probabilities.
const CHECK_ROWS: i32 = 1000;

/// Above this gap between Spark's probabilities and the read-back model's, reading back failed.
const CHECK_TOLERANCE: f64 = 1e-4;

/// The fitted stages of a cluster job, by their server-side references.
pub(super) struct FittedStages {
    /// StringIndexer of the label.
    pub label_indexer: String,
    /// String columns, and the StringIndexer and OneHotEncoder fitted on them.
    pub categorical: Vec<String>,
    pub indexer_and_encoder: Option<(String, String)>,
    /// Numeric columns with their SQL types, and the Imputer fitted on them.
    pub numeric: Vec<(String, String)>,
    pub imputer: Option<String>,
    /// The StandardScaler over the assembled vector.
    pub scaler: String,
    /// The test rows after every stage (the raw columns kept), for the check.
    pub test_rows: pb::Relation,
}

/// A cluster model read back.
pub struct ReadBack {
    /// Spark's stages as trainbench's preprocessor (classes in Spark's order).
    pub preprocessor: FittedPreprocessor,
    /// The MLlib model as the spark engine's model.
    pub model: Box<dyn TrainedModel>,
    /// Test rows of the check.
    pub checked_rows: usize,
    /// Largest difference between Spark's probabilities and the read-back model's on them.
    pub max_gap: f64,
}

impl std::fmt::Debug for ReadBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadBack")
            .field("preprocessor", &self.preprocessor)
            .field("model", &format_args!("{} classes, {} features", self.model.classes(), self.model.n_features()))
            .field("checked_rows", &self.checked_rows)
            .field("max_gap", &self.max_gap)
            .finish()
    }
}

fn failed(step: &str, message: impl Into<String>) -> ClusterError {
    ClusterError::Spark { step: step.to_owned(), message: message.into() }
}

/// Reads back the stages and the fitted model (`spark_model`, its server-side reference), then
/// checks them on test rows.
pub(super) fn read_back(
    s: &mut Session,
    stages: &FittedStages,
    estimator: &Estimator,
    spark_model: &str,
    label: &str,
    features: usize,
) -> Result<ReadBack, ClusterError> {
    let preprocessor = preprocessor(s, stages, label, features)?;
    let classes = preprocessor.classes().len();
    let model: Box<dyn TrainedModel> = match estimator {
        Estimator::Lr(_) => Box::new(logistic(s, spark_model, classes, features)?),
        Estimator::Mlp(p, _) => Box::new(mlp(s, spark_model, p.layers(features, classes))?),
        Estimator::Tree(..) => Box::new(tree(s, spark_model, classes, features)?),
    };
    let (checked_rows, max_gap) = check(s, stages, &preprocessor, model.as_ref(), label, spark_model)?;
    Ok(ReadBack { preprocessor, model, checked_rows, max_gap })
}

fn fetched(
    s: &mut Session,
    object: &str,
    methods: &[&str],
    step: &str,
) -> Result<pb::expression::Literal, ClusterError> {
    let result = s.ml(plan::fetch(object, methods), step)?;
    param(&result)
        .cloned()
        .ok_or_else(|| failed(step, format!("the server returned no value for {}", methods.join("."))))
}

/// Spark's label indexer, string indexer and encoder, imputer and scaler as one preprocessor.
fn preprocessor(
    s: &mut Session,
    stages: &FittedStages,
    label: &str,
    features: usize,
) -> Result<FittedPreprocessor, ClusterError> {
    let step = "reading back the preprocessing stages";
    let bad = |what: &str| failed(step, format!("unexpected {what}"));
    let classes = string_arrays(&fetched(s, &stages.label_indexer, &["labelsArray"], step)?)
        .and_then(|mut a| (a.len() == 1).then(|| a.remove(0)))
        .ok_or_else(|| bad("labels of the label's StringIndexer"))?;
    let scaler_mean = doubles(&fetched(s, &stages.scaler, &["mean"], step)?).ok_or_else(|| bad("scaler mean"))?;
    let scaler_std = doubles(&fetched(s, &stages.scaler, &["std"], step)?).ok_or_else(|| bad("scaler std"))?;
    if scaler_mean.len() != features || scaler_std.len() != features {
        return Err(failed(
            step,
            format!(
                "the scaler has {} means and {} deviations for {features} features",
                scaler_mean.len(),
                scaler_std.len()
            ),
        ));
    }
    // Spark's StandardScaler: (x - mean) * (1 / std), and 0 where std is 0.
    let scaling: Vec<(f64, f64)> =
        scaler_mean.iter().zip(&scaler_std).map(|(&m, &d)| (m, if d == 0.0 { 0.0 } else { 1.0 / d })).collect();
    let mut columns = Vec::new();
    // The assembled vector: imputed numeric columns, then the encoded string columns.
    let mut at = 0;
    if let Some(imputer) = &stages.imputer {
        let batches = s.collect(plan::fetch_relation(imputer, "surrogateDF"), step)?;
        for (name, ty) in &stages.numeric {
            let surrogate = batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .and_then(|b| b.column_by_name(name))
                .and_then(numbers)
                .and_then(|v| v.first().copied())
                .ok_or_else(|| bad(&format!("imputer surrogate of '{name}'")))?;
            // The Imputer's output keeps the column's type: the mean is cast as Spark casts it.
            let fill = match ty.as_str() {
                "tinyint" | "smallint" | "int" | "bigint" => surrogate.trunc(),
                "float" => f64::from(surrogate as f32),
                "double" => surrogate,
                other => {
                    return Err(ClusterError::Data(format!(
                        "column '{name}' has type {other}: a model read back from the cluster takes numeric \
                         columns of integer, float or double type"
                    )));
                }
            };
            let (shift, scale) = scaling[at];
            columns.push(FittedColumn::Numeric { name: name.clone(), fill: Some(fill), shift, scale, constant: None });
            at += 1;
        }
    }
    if let Some((indexer, encoder)) = &stages.indexer_and_encoder {
        let levels =
            string_arrays(&fetched(s, indexer, &["labelsArray"], step)?).ok_or_else(|| bad("StringIndexer labels"))?;
        let sizes = ints(&fetched(s, encoder, &["categorySizes"], step)?).ok_or_else(|| bad("category sizes"))?;
        if levels.len() != stages.categorical.len() || sizes.len() != levels.len() {
            return Err(bad("number of indexed string columns"));
        }
        for ((name, levels), size) in stages.categorical.iter().zip(levels).zip(sizes) {
            // handleInvalid = "keep": one index past the levels for unseen and missing values,
            // which the encoder keeps as the last slot.
            let slots = levels.len() + 1;
            if size as usize != slots || at + slots > features {
                return Err(bad(&format!("one-hot width of '{name}': {size} for {} levels", levels.len())));
            }
            columns.push(FittedColumn::Categorical {
                name: name.clone(),
                fill: None,
                levels,
                other_slot: true,
                slot_scaling: scaling[at..at + slots].to_vec(),
            });
            at += slots;
        }
    }
    if at != features {
        return Err(failed(step, format!("the stages make {at} features where Spark assembled {features}")));
    }
    let options = PreprocessOptions { encoding: Encoding::OneHot, unseen: UnseenPolicy::Ignore, ..Default::default() };
    FittedPreprocessor::from_columns(options, label, &classes, columns).map_err(|e| failed(step, e.to_string()))
}

/// LogisticRegression: one coefficient row for two classes (binomial), one per class otherwise.
fn logistic(s: &mut Session, model: &str, classes: usize, features: usize) -> Result<LogisticModel, ClusterError> {
    let step = "reading back the logistic regression";
    let (rows, cols, coefficients) = matrix(&fetched(s, model, &["coefficientMatrix"], step)?)
        .ok_or_else(|| failed(step, "no coefficient matrix"))?;
    let intercepts =
        doubles(&fetched(s, model, &["interceptVector"], step)?).ok_or_else(|| failed(step, "no intercept vector"))?;
    let expected_rows = if classes == 2 { 1 } else { classes };
    if cols != features || rows != expected_rows || intercepts.len() != rows {
        return Err(failed(
            step,
            format!(
                "{rows} × {cols} coefficients and {} intercepts for {classes} classes and {features} features",
                intercepts.len()
            ),
        ));
    }
    Ok(LogisticModel { coefficients: coefficients.chunks(cols).map(<[f64]>::to_vec).collect(), intercepts, classes })
}

/// MultilayerPerceptronClassifier: Spark keeps each layer's weights as a column-major
/// `out × in` matrix (Breeze's layout), then the biases; the spark engine's model keeps them
/// row-major.
fn mlp(s: &mut Session, model: &str, layers: Vec<usize>) -> Result<MlpModel, ClusterError> {
    let step = "reading back the multilayer perceptron";
    let spark = doubles(&fetched(s, model, &["weights"], step)?).ok_or_else(|| failed(step, "no weights"))?;
    let expected: usize = layers.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
    if spark.len() != expected {
        return Err(failed(step, format!("{} weights for layers {layers:?}, which need {expected}", spark.len())));
    }
    let mut weights = Vec::with_capacity(expected);
    let mut at = 0;
    for w in layers.windows(2) {
        let (inputs, outputs) = (w[0], w[1]);
        for o in 0..outputs {
            weights.extend((0..inputs).map(|i| spark[at + i * outputs + o]));
        }
        weights.extend_from_slice(&spark[at + inputs * outputs..][..outputs]);
        at += inputs * outputs + outputs;
    }
    Ok(MlpModel { layers, weights, precision: trainbench_engine::Precision::F64 })
}

/// Per feature, the region `lower < x <= upper` a node's rows fall in.
type Region = Vec<(f64, f64)>;

/// A tree as `toDebugString` prints it.
#[derive(Debug, PartialEq)]
enum Printed {
    Leaf { prediction: f64 },
    Split { feature: usize, threshold: f64, left: Box<Printed>, right: Box<Printed> },
}

/// Parses the body of `toDebugString` (after its first line): `If (feature F <= T)`, the left
/// subtree, `Else (feature F > T)`, the right subtree; `Predict: P` for a leaf.
fn parse_tree<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Result<Printed, String> {
    let line = lines.next().ok_or("the tree ends early")?.trim();
    if let Some(p) = line.strip_prefix("Predict: ") {
        return p.parse().map(|prediction| Printed::Leaf { prediction }).map_err(|_| format!("bad leaf: {line}"));
    }
    let condition = line.strip_prefix("If (feature ").and_then(|r| r.strip_suffix(')'));
    let Some((feature_text, threshold_text)) = condition.and_then(|c| c.split_once(" <= ")) else {
        return Err(format!("not a threshold split (a categorical split cannot come from scaled features): {line}"));
    };
    let feature: usize = feature_text.parse().map_err(|_| format!("bad split: {line}"))?;
    let threshold: f64 = threshold_text.parse().map_err(|_| format!("bad threshold: {line}"))?;
    let left = parse_tree(lines)?;
    let otherwise = lines.next().ok_or("the tree ends early")?.trim();
    if otherwise != format!("Else (feature {feature_text} > {threshold_text})") {
        return Err(format!("expected the else branch of '{line}', found '{otherwise}'"));
    }
    let right = parse_tree(lines)?;
    Ok(Printed::Split { feature, threshold, left: Box::new(left), right: Box::new(right) })
}

/// DecisionTreeClassifier: the structure from `toDebugString`; each leaf's class counts from
/// `predictRaw` of a point inside the leaf's region.
fn tree(s: &mut Session, model: &str, classes: usize, features: usize) -> Result<TreeModel, ClusterError> {
    let step = "reading back the decision tree";
    let text = match fetched(s, model, &["toDebugString"], step)?.literal_type {
        Some(pb::expression::literal::LiteralType::String(t)) => t,
        _ => return Err(failed(step, "no tree description")),
    };
    let mut lines = text.lines().skip(1).filter(|l| !l.trim().is_empty());
    let printed = parse_tree(&mut lines).map_err(|e| failed(step, e))?;
    // Breadth first, as the engine's trees are stored; each node with its region
    // (lower < x <= upper per feature).
    let mut nodes: Vec<Node> = Vec::new();
    let mut queue: VecDeque<(&Printed, usize, Region)> =
        VecDeque::from([(&printed, 0, vec![(f64::NEG_INFINITY, f64::INFINITY); features])]);
    let mut leaves = Vec::new();
    while let Some((node, depth, region)) = queue.pop_front() {
        let index = nodes.len();
        nodes.push(Node { counts: vec![0.0; classes], depth, split: None });
        match node {
            Printed::Leaf { prediction } => leaves.push((index, *prediction, region)),
            Printed::Split { feature, threshold, left, right } => {
                if *feature >= features {
                    return Err(failed(step, format!("a split on feature {feature} of {features}")));
                }
                // `bin` belongs to the embedded engine's training; prediction uses the threshold.
                let next = index + queue.len() + 1;
                nodes[index].split =
                    Some((*feature, Rule::Threshold { threshold: *threshold, bin: 0 }, next, next + 1));
                let (mut l, mut r) = (region.clone(), region);
                l[*feature].1 = l[*feature].1.min(*threshold);
                r[*feature].0 = r[*feature].0.max(*threshold);
                queue.push_back((left, depth + 1, l));
                queue.push_back((right, depth + 1, r));
            }
        }
    }
    for (index, prediction, region) in leaves {
        let point: Vec<f64> = region
            .iter()
            .map(|&(lower, upper)| match (lower.is_finite(), upper.is_finite()) {
                (_, true) => upper,
                (true, false) => lower + lower.abs().max(1.0),
                (false, false) => 0.0,
            })
            .collect();
        if region.iter().zip(&point).any(|(&(lower, upper), &x)| !(x > lower && x <= upper)) {
            return Err(failed(step, format!("leaf {index} has an empty region")));
        }
        let raw = s.ml(plan::fetch_with(model, "predictRaw", plan::dense_vector(&point)), step)?;
        let counts = param(&raw)
            .and_then(doubles)
            .filter(|c| c.len() == classes)
            .ok_or_else(|| failed(step, format!("no class counts for leaf {index}")))?;
        let best = counts.iter().enumerate().fold(0, |b, (i, &c)| if c > counts[b] { i } else { b });
        if best as f64 != prediction {
            return Err(failed(step, format!("leaf {index}: counts {counts:?} do not predict {prediction}")));
        }
        nodes[index].counts = counts;
    }
    // An inner node's counts are its children's.
    for i in (0..nodes.len()).rev() {
        if let Some((_, _, l, r)) = nodes[i].split {
            nodes[i].counts = nodes[l].counts.iter().zip(&nodes[r].counts).map(|(a, b)| a + b).collect();
        }
    }
    Ok(TreeModel { nodes, n_features: features })
}

/// Spark's probabilities on up to [`CHECK_ROWS`] test rows against the read-back preprocessor
/// and model on the same rows (brought back together, so nothing depends on row order).
fn check(
    s: &mut Session,
    stages: &FittedStages,
    pre: &FittedPreprocessor,
    model: &dyn TrainedModel,
    label: &str,
    spark_model: &str,
) -> Result<(usize, f64), ClusterError> {
    let step = "checking the read-back model against Spark's predictions";
    let names: Vec<String> = pre.input_columns().into_iter().map(|(n, _)| n).collect();
    let mut exprs: Vec<pb::Expression> = names.iter().map(|n| plan::col(n)).collect();
    exprs.push(plan::alias(plan::vector_to_array("probability"), "trainbench_p"));
    let rows = plan::limit(
        plan::project(plan::transform_with_model(spark_model, stages.test_rows.clone()), exprs),
        CHECK_ROWS,
    );
    let batches = s.collect(rows, step)?;
    let table = table_of(&batches, &names, label).map_err(|e| failed(step, e))?;
    let n = table.rows();
    let all: Vec<usize> = (0..n).collect();
    let (features, _) = pre.transform_features(&table, &all).map_err(|e| failed(step, e.to_string()))?;
    let ours = model.predict_proba(&features).map_err(|e| failed(step, e.to_string()))?;
    let k = pre.classes().len();
    let mut spark = Vec::with_capacity(n * k);
    for b in &batches {
        let p = b.column(names.len()).as_list_opt::<i32>().ok_or_else(|| failed(step, "probabilities not an array"))?;
        for r in 0..b.num_rows() {
            let row = p.value(r);
            let row = row.as_primitive_opt::<Float64Type>().ok_or_else(|| failed(step, "probabilities not doubles"))?;
            spark.extend_from_slice(row.values());
        }
    }
    if spark.len() != ours.len() {
        return Err(failed(step, format!("{} probabilities from Spark, {} here", spark.len(), ours.len())));
    }
    let (mut max_gap, mut worst) = (0.0f64, 0);
    for (i, (a, b)) in spark.iter().zip(&ours).enumerate() {
        let gap = (a - f64::from(*b)).abs();
        if gap > max_gap {
            (max_gap, worst) = (gap, i / k);
        }
    }
    if max_gap > CHECK_TOLERANCE {
        return Err(failed(
            step,
            format!("the read-back model differs from Spark's by {max_gap:.3e} on test row {worst} (of {n} checked)"),
        ));
    }
    Ok((n, max_gap))
}

/// The collected columns `names` (then the label, absent here: an empty categorical column)
/// as a table: numbers as doubles, strings as categories, nulls missing.
fn table_of(batches: &[RecordBatch], names: &[String], label: &str) -> Result<Table, String> {
    let mut columns = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let parts: Vec<&ArrayRef> = batches.iter().map(|b| b.column(i)).collect();
        let numeric: Option<Vec<Vec<f64>>> = parts.iter().map(|a| numbers(a)).collect();
        let data = match numeric {
            Some(parts) => ColumnData::Numeric(parts.concat()),
            None => {
                let (mut codes, mut levels, mut index) = (Vec::new(), Vec::new(), HashMap::new());
                for a in &parts {
                    let a = a
                        .as_string_opt::<i32>()
                        .ok_or_else(|| format!("column '{name}' is neither numbers nor strings"))?;
                    for r in 0..a.len() {
                        codes.push(if a.is_null(r) {
                            MISSING_CODE
                        } else {
                            *index.entry(a.value(r).to_owned()).or_insert_with_key(|v: &String| {
                                levels.push(v.clone());
                                levels.len() as u32 - 1
                            })
                        });
                    }
                }
                ColumnData::Categorical { codes, levels }
            }
        };
        columns.push(Column { name: name.clone(), data });
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    columns.push(Column {
        name: label.to_owned(),
        data: ColumnData::Categorical { codes: vec![MISSING_CODE; rows], levels: Vec::new() },
    });
    Ok(Table {
        source: "the cluster's test rows".into(),
        label: columns.len() - 1,
        columns,
        lines: (1..=rows as u64).collect(),
    })
}

/// A numeric Arrow column as doubles (nulls as NaN: missing).
fn numbers(a: &ArrayRef) -> Option<Vec<f64>> {
    fn take<T: arrow_array::ArrowPrimitiveType>(a: &ArrayRef, f: impl Fn(T::Native) -> f64) -> Option<Vec<f64>> {
        let p = a.as_primitive_opt::<T>()?;
        Some((0..p.len()).map(|r| if p.is_null(r) { f64::NAN } else { f(p.value(r)) }).collect())
    }
    take::<Float64Type>(a, |v| v)
        .or_else(|| take::<Float32Type>(a, f64::from))
        .or_else(|| take::<Int64Type>(a, |v| v as f64))
        .or_else(|| take::<Int32Type>(a, f64::from))
        .or_else(|| take::<Int16Type>(a, f64::from))
        .or_else(|| take::<Int8Type>(a, f64::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_tree_is_parsed() {
        let text = "  If (feature 8 <= 0.5400617248673216)\n   If (feature 1 <= -1.0E-4)\n    Predict: 1.0\n   \
                    Else (feature 1 > -1.0E-4)\n    Predict: 0.0\n  Else (feature 8 > 0.5400617248673216)\n   Predict: 2.0\n";
        let tree = parse_tree(&mut text.lines()).unwrap();
        let leaf = |p: f64| Box::new(Printed::Leaf { prediction: p });
        let inner = Printed::Split { feature: 1, threshold: -1.0e-4, left: leaf(1.0), right: leaf(0.0) };
        assert_eq!(
            tree,
            Printed::Split { feature: 8, threshold: 0.5400617248673216, left: Box::new(inner), right: leaf(2.0) }
        );
        let err = parse_tree(&mut "  If (feature 3 in {0.0,2.0})\n".lines()).unwrap_err();
        assert!(err.contains("not a threshold split"), "{err}");
        assert!(
            parse_tree(&mut "  If (feature 1 <= 0.5)\n   Predict: 1.0\n".lines()).unwrap_err().contains("ends early")
        );
    }
}
