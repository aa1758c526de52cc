//! ONNX export of a saved model, its fitted preprocessing in front, so ONNX Runtime (or any ONNX
//! runtime) turns raw columns into the same probabilities `trainbench predict` gives.
//!
//! The graph takes one input per training column, as skl2onnx does: a numeric column as a
//! `double [N, 1]` tensor (NaN for a missing value), a categorical one as `string [N, 1]` (the
//! empty string for a missing value). Its outputs are `probabilities` (`float [N, classes]`) and
//! `prediction` (`string [N]`, the most probable class). Differences from `trainbench predict`,
//! which refuses such rows: a missing value the model cannot fill (missing-value policy `drop`)
//! stays NaN or maps to no category, and an unseen category is encoded as under
//! `--unseen ignore` whatever the policy.
//!
//! Exported: the spark engine's LR, tree and MLP, and the tensor engine's networks (MLP, 1-D and
//! 2-D CNN, LSTM, GRU).
//!
//! The messages below are ONNX's own (`onnx-ml.proto`, ONNX 1.23), only the fields written here,
//! with their field numbers; prost encodes them.

use anyhow::{Result, bail};
use prost::Message;
use trainbench_data::{Encoding, FittedColumn, FittedPreprocessor};
use trainbench_engine::{ModelKind, Precision, SavedModel};
use trainbench_engine_spark::{LogisticModel, MlpModel, Rule, TreeModel};
use trainbench_engine_tensor::model::{DenseLayer, ExportedFront, ExportedNet};

mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, optional, tag = "1")]
        pub ir_version: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub producer_name: Option<String>,
        #[prost(string, optional, tag = "3")]
        pub producer_version: Option<String>,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, optional, tag = "1")]
        pub domain: Option<String>,
        #[prost(int64, optional, tag = "2")]
        pub version: Option<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, optional, tag = "2")]
        pub name: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, optional, tag = "3")]
        pub name: Option<String>,
        #[prost(string, optional, tag = "4")]
        pub op_type: Option<String>,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        #[prost(string, optional, tag = "7")]
        pub domain: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(float, optional, tag = "2")]
        pub f: Option<f32>,
        #[prost(int64, optional, tag = "3")]
        pub i: Option<i64>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub s: Option<Vec<u8>>,
        #[prost(float, repeated, tag = "7")]
        pub floats: Vec<f32>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
        /// AttributeType: FLOAT 1, INT 2, STRING 3, FLOATS 6, INTS 7, STRINGS 8.
        #[prost(int32, optional, tag = "20")]
        pub r#type: Option<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        /// DataType: FLOAT 1, INT64 7, STRING 8, DOUBLE 11.
        #[prost(int32, optional, tag = "2")]
        pub data_type: Option<i32>,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, optional, tag = "8")]
        pub name: Option<String>,
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    /// `TypeProto` with its `tensor_type` member of the `value` oneof.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorType>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorType {
        #[prost(int32, optional, tag = "1")]
        pub elem_type: Option<i32>,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    /// A dimension: a size, or a name for a size known at run time (the batch).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

use proto::{AttributeProto, NodeProto, TensorProto, ValueInfoProto};

/// ONNX element types.
const FLOAT: i32 = 1;
const INT64: i32 = 7;
const STRING: i32 = 8;
const DOUBLE: i32 = 11;
/// The opsets the graph is written for: ONNX 13 and ONNX-ML 2 (IR version 7).
const OPSET: i64 = 13;
const ML_OPSET: i64 = 2;
const IR_VERSION: i64 = 7;
const ML: &str = "ai.onnx.ml";

/// An attribute value.
enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(&'static str),
    Strings(Vec<String>),
}

/// An attribute of a node.
fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto { name: Some(name.to_owned()), ..Default::default() };
    match value {
        Attr::Int(i) => (a.i, a.r#type) = (Some(i), Some(2)),
        Attr::Ints(v) => (a.ints, a.r#type) = (v, Some(7)),
        Attr::Floats(v) => (a.floats, a.r#type) = (v, Some(6)),
        Attr::Str(s) => (a.s, a.r#type) = (Some(s.as_bytes().to_vec()), Some(3)),
        Attr::Strings(v) => (a.strings, a.r#type) = (v.into_iter().map(String::into_bytes).collect(), Some(8)),
    }
    a
}

/// A graph being written: nodes, constants, inputs and outputs, with fresh value names.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    constants: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    next: usize,
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    /// Adds node `op` (in `domain`) on `inputs` with `attrs`; returns its output.
    fn op_in(&mut self, domain: &str, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        let attribute = attrs
            .into_iter()
            .map(|(name, value)| {
                let mut a = AttributeProto { name: Some(name.to_owned()), ..Default::default() };
                match value {
                    Attr::Int(i) => (a.i, a.r#type) = (Some(i), Some(2)),
                    Attr::Ints(v) => (a.ints, a.r#type) = (v, Some(7)),
                    Attr::Floats(v) => (a.floats, a.r#type) = (v, Some(6)),
                    Attr::Str(s) => (a.s, a.r#type) = (Some(s.as_bytes().to_vec()), Some(3)),
                    Attr::Strings(v) => {
                        (a.strings, a.r#type) = (v.into_iter().map(String::into_bytes).collect(), Some(8))
                    }
                }
                a
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![out.clone()],
            name: Some(out.clone()),
            op_type: Some(op.to_owned()),
            attribute,
            domain: (!domain.is_empty()).then(|| domain.to_owned()),
        });
        out
    }

    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.op_in("", op, inputs, attrs)
    }

    fn constant(&mut self, hint: &str, dims: &[usize], fill: impl FnOnce(&mut TensorProto)) -> String {
        let name = self.fresh(hint);
        let mut t = TensorProto {
            name: Some(name.clone()),
            dims: dims.iter().map(|&d| d as i64).collect(),
            ..Default::default()
        };
        fill(&mut t);
        self.constants.push(t);
        name
    }

    fn doubles(&mut self, hint: &str, dims: &[usize], values: Vec<f64>) -> String {
        self.constant(hint, dims, |t| (t.data_type, t.double_data) = (Some(DOUBLE), values))
    }

    fn floats(&mut self, hint: &str, dims: &[usize], values: Vec<f32>) -> String {
        self.constant(hint, dims, |t| (t.data_type, t.float_data) = (Some(FLOAT), values))
    }

    fn int64s(&mut self, hint: &str, dims: &[usize], values: Vec<i64>) -> String {
        self.constant(hint, dims, |t| (t.data_type, t.int64_data) = (Some(INT64), values))
    }

    /// Gives value `x` the graph output name `name`.
    fn name_output(&mut self, x: &str, name: &str) {
        self.nodes.push(NodeProto {
            input: vec![x.to_owned()],
            output: vec![name.to_owned()],
            name: Some(name.to_owned()),
            op_type: Some("Identity".into()),
            ..Default::default()
        });
    }

    fn cast(&mut self, x: &str, to: i32) -> String {
        self.op("Cast", &[x], vec![("to", Attr::Int(i64::from(to)))])
    }

    /// A value of `elem` type and shape `[N, dims...]`.
    fn value(name: &str, elem: i32, dims: &[Option<usize>]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|d| match d {
                Some(n) => proto::Dimension { dim_value: Some(*n as i64), dim_param: None },
                None => proto::Dimension { dim_value: None, dim_param: Some("N".into()) },
            })
            .collect();
        ValueInfoProto {
            name: Some(name.to_owned()),
            r#type: Some(proto::TypeProto {
                tensor_type: Some(proto::TensorType {
                    elem_type: Some(elem),
                    shape: Some(proto::TensorShapeProto { dim }),
                }),
            }),
        }
    }
}

/// The model file `saved` as an ONNX model (bytes of a `ModelProto`).
pub fn export(saved: &SavedModel) -> Result<Vec<u8>> {
    let mut g = Graph::default();
    let features = preprocessing(&mut g, &saved.preprocessor)?;
    let classes = saved.preprocessor.classes().to_vec();
    let probabilities = match (saved.engine.as_str(), saved.spec.kind) {
        ("spark", ModelKind::Lr) => {
            let m: LogisticModel = serde_json::from_value(saved.state.clone())?;
            logistic(&mut g, &features, &m)
        }
        ("spark", ModelKind::Mlp) => {
            let m: MlpModel = serde_json::from_value(saved.state.clone())?;
            mlp(&mut g, &features, &m)?
        }
        ("spark", ModelKind::Tree) => {
            let m: TreeModel = serde_json::from_value(saved.state.clone())?;
            tree(&mut g, &features, &m, classes.len())?
        }
        ("tensor", _) => {
            let net = trainbench_engine_tensor::exported_net(&saved.state)?;
            tensor_net(&mut g, &features, &net)?
        }
        (engine, kind) => bail!(
            "ONNX export of the {engine} engine's {} is not written yet; it exports the spark engine's lr, \
             tree and mlp and every tensor-engine network",
            kind.name()
        ),
    };
    // Named outputs: the probabilities, and the most probable class's name (first of a tie).
    g.name_output(&probabilities, "probabilities");
    let best = g.op("ArgMax", &["probabilities"], vec![("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))]);
    let keys: Vec<i64> = (0..classes.len() as i64).collect();
    let label = g.op_in(
        ML,
        "LabelEncoder",
        &[&best],
        vec![("keys_int64s", Attr::Ints(keys)), ("values_strings", Attr::Strings(classes.clone()))],
    );
    g.name_output(&label, "prediction");
    g.outputs.push(Graph::value("probabilities", FLOAT, &[None, Some(classes.len())]));
    g.outputs.push(Graph::value("prediction", STRING, &[None]));
    let model = proto::ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("trainbench".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(proto::GraphProto {
            node: g.nodes,
            name: Some(format!("{} {}", saved.engine, saved.spec.kind.name())),
            initializer: g.constants,
            input: g.inputs,
            output: g.outputs,
        }),
        opset_import: vec![
            proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) },
            proto::OperatorSetIdProto { domain: Some(ML.into()), version: Some(ML_OPSET) },
        ],
    };
    Ok(model.encode_to_vec())
}

/// The preprocessor's transform: one graph input per training column, one `float [N, features]`
/// value out, computed as `FittedPreprocessor::transform_features` does.
fn preprocessing(g: &mut Graph, pre: &FittedPreprocessor) -> Result<String> {
    let one_hot = pre.options().encoding == Encoding::OneHot;
    let mut parts = Vec::new();
    for column in pre.fitted_columns() {
        match column {
            FittedColumn::Numeric { name, fill, shift, scale, constant } => {
                g.inputs.push(Graph::value(name, DOUBLE, &[None, Some(1)]));
                let mut x = name.clone();
                if let Some(fill) = fill {
                    let missing = g.op("IsNaN", &[&x], vec![]);
                    let value = g.doubles("fill", &[], vec![*fill]);
                    x = g.op("Where", &[&missing, &value, &x], vec![]);
                }
                let y = match constant {
                    Some(c) => {
                        let (zero, c) = (g.doubles("zero", &[], vec![0.0]), g.doubles("constant", &[], vec![*c]));
                        let zeroed = g.op("Mul", &[&x, &zero], vec![]);
                        g.op("Add", &[&zeroed, &c], vec![])
                    }
                    None => {
                        let (shift, scale) =
                            (g.doubles("shift", &[], vec![*shift]), g.doubles("scale", &[], vec![*scale]));
                        let centred = g.op("Sub", &[&x, &shift], vec![]);
                        g.op("Mul", &[&centred, &scale], vec![])
                    }
                };
                parts.push(g.cast(&y, FLOAT));
            }
            FittedColumn::Categorical { name, fill, levels, other_slot, slot_scaling } => {
                g.inputs.push(Graph::value(name, STRING, &[None, Some(1)]));
                // Level → position; the empty string (missing) → the fill's; anything else → -1,
                // or the extra slot's position when there is one.
                let other = levels.len() as i64;
                let mut keys = levels.clone();
                let mut values: Vec<i64> = (0..other).collect();
                if *other_slot {
                    keys.push(String::new());
                    values.push(other);
                } else if let Some(p) = fill.as_ref().and_then(|f| levels.iter().position(|l| l == f)) {
                    keys.push(String::new());
                    values.push(p as i64);
                }
                let index = g.op_in(
                    ML,
                    "LabelEncoder",
                    &[name],
                    vec![
                        ("keys_strings", Attr::Strings(keys)),
                        ("values_int64s", Attr::Ints(values)),
                        ("default_int64", Attr::Int(if *other_slot { other } else { -1 })),
                    ],
                );
                if one_hot {
                    let slots = levels.len() + usize::from(*other_slot);
                    let positions = g.int64s("levels", &[slots], (0..slots as i64).collect());
                    let hot = g.op("Equal", &[&index, &positions], vec![]);
                    if slot_scaling.is_empty() {
                        parts.push(g.cast(&hot, FLOAT));
                    } else {
                        // (x - shift) * scale per slot, in f64 as the preprocessor computes it.
                        let x = g.cast(&hot, DOUBLE);
                        let shift = g.doubles("shift", &[slots], slot_scaling.iter().map(|s| s.0).collect());
                        let scale = g.doubles("scale", &[slots], slot_scaling.iter().map(|s| s.1).collect());
                        let centred = g.op("Sub", &[&x, &shift], vec![]);
                        let y = g.op("Mul", &[&centred, &scale], vec![]);
                        parts.push(g.cast(&y, FLOAT));
                    }
                } else {
                    // An unseen level is encoded as the number of levels (`--unseen ignore`).
                    let (none, past) =
                        (g.int64s("unseen", &[], vec![-1]), g.int64s("past", &[], vec![levels.len() as i64]));
                    let unseen = g.op("Equal", &[&index, &none], vec![]);
                    let coded = g.op("Where", &[&unseen, &past, &index], vec![]);
                    parts.push(g.cast(&coded, FLOAT));
                }
            }
        }
    }
    if parts.is_empty() {
        bail!("the model has no input columns to export");
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(g.op("Concat", &refs, vec![("axis", Attr::Int(1))]))
}

/// Logistic regression in f64, as `LogisticModel::predict_proba`: margins `x·wₖ + bₖ`, the
/// sigmoid of one margin (binomial) or the softmax of one per class.
fn logistic(g: &mut Graph, features: &str, m: &LogisticModel) -> String {
    let (rows, d) = (m.coefficients.len(), m.coefficients.first().map_or(0, Vec::len));
    // Wᵀ: d × rows.
    let wt: Vec<f64> = (0..d).flat_map(|j| m.coefficients.iter().map(move |w| w[j])).collect();
    let x = g.cast(features, DOUBLE);
    let w = g.doubles("coefficients", &[d, rows], wt);
    let b = g.doubles("intercepts", &[rows], m.intercepts.clone());
    let product = g.op("MatMul", &[&x, &w], vec![]);
    let margins = g.op("Add", &[&product, &b], vec![]);
    let p = if m.classes == 2 && rows == 1 {
        let p1 = g.op("Sigmoid", &[&margins], vec![]);
        let one = g.doubles("one", &[], vec![1.0]);
        let p0 = g.op("Sub", &[&one, &p1], vec![]);
        g.op("Concat", &[&p0, &p1], vec![("axis", Attr::Int(1))])
    } else {
        g.op("Softmax", &[&margins], vec![("axis", Attr::Int(1))])
    };
    g.cast(&p, FLOAT)
}

/// MLlib's perceptron in the arithmetic it trained in: each layer `A·Wᵀ + b` (W stored out × in),
/// sigmoid between layers, softmax at the end.
fn mlp(g: &mut Graph, features: &str, m: &MlpModel) -> Result<String> {
    let f64_math = match m.precision {
        Precision::F64 => true,
        Precision::F32 => false,
        other => bail!("an mlp in {other} arithmetic cannot be exported"),
    };
    let mut a = if f64_math { g.cast(features, DOUBLE) } else { features.to_owned() };
    let mut at = 0;
    let last = m.layers.len() - 1;
    for l in 0..last {
        let (inp, out) = (m.layers[l], m.layers[l + 1]);
        let (w, b) = (m.weights[at..at + inp * out].to_vec(), m.weights[at + inp * out..at + inp * out + out].to_vec());
        at += inp * out + out;
        let (w, b) = if f64_math {
            (g.doubles("weights", &[out, inp], w), g.doubles("bias", &[out], b))
        } else {
            let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
            (g.floats("weights", &[out, inp], f(w)), g.floats("bias", &[out], f(b)))
        };
        let z = g.op("Gemm", &[&a, &w, &b], vec![("transB", Attr::Int(1))]);
        a = if l + 1 < last {
            g.op("Sigmoid", &[&z], vec![])
        } else {
            g.op("Softmax", &[&z], vec![("axis", Attr::Int(1))])
        };
    }
    Ok(if f64_math { g.cast(&a, FLOAT) } else { a })
}

/// The tensor engine's MLP in f32, as Burn runs it: each dense layer `x · W + b` (W `in × out`)
/// and the activation, the head's logits, softmax.
fn dense_net(g: &mut Graph, features: &str, activation: &str, layers: &[DenseLayer]) -> Result<String> {
    let mut a = features.to_owned();
    for (i, l) in layers.iter().enumerate() {
        let w = g.floats("weights", &[l.inputs, l.outputs], l.weights.clone());
        let b = g.floats("bias", &[l.outputs], l.bias.clone());
        let z = g.op("Gemm", &[&a, &w, &b], vec![]);
        a = if i + 1 == layers.len() {
            g.op("Softmax", &[&z], vec![("axis", Attr::Int(1))])
        } else {
            activate(g, &z, activation)?
        };
    }
    Ok(a)
}

/// The decision tree as ONNX-ML's `TreeEnsembleClassifier`, one tree: `x <= t` (or `x` in a
/// category set) goes to the true (left) child, each leaf weighs every class by its share of the leaf's training rows (what
/// `TreeModel::predict_proba` returns). ONNX compares in f32, so each threshold is the largest
/// f32 at or below MLlib's f64 one: for f32 features `x <= t32` exactly when `x <= t`.
fn tree(g: &mut Graph, features: &str, m: &TreeModel, classes: usize) -> Result<String> {
    /// One node of the ONNX tree: (mode, value, feature, true child, false child).
    type Branch = (&'static str, f32, i64, i64, i64);
    let n = m.nodes.len();
    let mut nodes: Vec<Branch> = vec![("LEAF", 0.0, 0, 0, 0); n];
    let (mut class_nodes, mut class_ids, mut class_weights) = (Vec::new(), Vec::new(), Vec::new());
    for (id, node) in m.nodes.iter().enumerate() {
        match &node.split {
            Some((feature, Rule::Threshold { threshold, .. }, left, right)) => {
                let t = *threshold as f32;
                let t = if f64::from(t) > *threshold { t.next_down() } else { t };
                nodes[id] = ("BRANCH_LEQ", t, *feature as i64, *left as i64, *right as i64);
            }
            // A category set, `x ∈ {a, b, …}`: a chain of `x == a`, `x == b`, … each of whose
            // true branches is the left child; the last one's false branch is the right child.
            Some((feature, Rule::Categories(set), left, right)) => {
                let (f, left, right) = (*feature as i64, *left as i64, *right as i64);
                match set.split_first() {
                    None => nodes[id] = ("BRANCH_LEQ", f32::MIN, f, left, right),
                    Some((first, rest)) => {
                        let mut at = id;
                        let mut value = f32::from(*first);
                        for next in rest {
                            nodes.push(("LEAF", 0.0, 0, 0, 0));
                            let chained = nodes.len() - 1;
                            nodes[at] = ("BRANCH_EQ", value, f, left, chained as i64);
                            (at, value) = (chained, f32::from(*next));
                        }
                        nodes[at] = ("BRANCH_EQ", value, f, left, right);
                    }
                }
            }
            None => {
                let total: f64 = node.counts.iter().sum();
                for (c, count) in node.counts.iter().enumerate() {
                    class_nodes.push(id as i64);
                    class_ids.push(c as i64);
                    class_weights.push((count / total) as f32);
                }
            }
        }
    }
    let total = nodes.len();
    let modes: Vec<String> = nodes.iter().map(|b| b.0.to_owned()).collect();
    let values: Vec<f32> = nodes.iter().map(|b| b.1).collect();
    let feature_ids: Vec<i64> = nodes.iter().map(|b| b.2).collect();
    let true_ids: Vec<i64> = nodes.iter().map(|b| b.3).collect();
    let false_ids: Vec<i64> = nodes.iter().map(|b| b.4).collect();
    let label = g.fresh("tree_label");
    let scores = g.fresh("tree_scores");
    g.nodes.push(NodeProto {
        input: vec![features.to_owned()],
        output: vec![label, scores.clone()],
        name: Some(scores.clone()),
        op_type: Some("TreeEnsembleClassifier".into()),
        domain: Some(ML.into()),
        attribute: [
            ("nodes_treeids", Attr::Ints(vec![0; total])),
            ("nodes_nodeids", Attr::Ints((0..total as i64).collect())),
            ("nodes_featureids", Attr::Ints(feature_ids)),
            ("nodes_modes", Attr::Strings(modes)),
            ("nodes_values", Attr::Floats(values)),
            ("nodes_truenodeids", Attr::Ints(true_ids)),
            ("nodes_falsenodeids", Attr::Ints(false_ids)),
            ("class_treeids", Attr::Ints(vec![0; class_nodes.len()])),
            ("class_nodeids", Attr::Ints(class_nodes)),
            ("class_ids", Attr::Ints(class_ids)),
            ("class_weights", Attr::Floats(class_weights)),
            ("classlabels_int64s", Attr::Ints((0..classes as i64).collect())),
            ("post_transform", Attr::Str("NONE")),
        ]
        .into_iter()
        .map(|(name, value)| attribute(name, value))
        .collect(),
    });
    Ok(scores)
}

/// Keras's activation `name` on `z`.
fn activate(g: &mut Graph, z: &str, name: &str) -> Result<String> {
    Ok(match name {
        "relu" => g.op("Relu", &[z], vec![]),
        "tanh" => g.op("Tanh", &[z], vec![]),
        "sigmoid" => g.op("Sigmoid", &[z], vec![]),
        // x · ½ (1 + erf(x / √2)), the exact GELU (ONNX has a Gelu op only from opset 20).
        "gelu" => {
            let (root2, half, one) = (
                g.floats("sqrt2", &[], vec![std::f32::consts::SQRT_2]),
                g.floats("half", &[], vec![0.5]),
                g.floats("one", &[], vec![1.0]),
            );
            let scaled = g.op("Div", &[z, &root2], vec![]);
            let erf = g.op("Erf", &[&scaled], vec![]);
            let shifted = g.op("Add", &[&erf, &one], vec![]);
            let halved = g.op("Mul", &[&shifted, &half], vec![]);
            g.op("Mul", &[z, &halved], vec![])
        }
        "linear" => z.to_owned(),
        other => bail!("activation '{other}' cannot be exported"),
    })
}

/// A tensor-engine network as `Net::forward` runs it at inference (no dropout): the
/// convolutions (valid padding, stride 1, the activation, a max pool of stride = size where the
/// length allows) or the recurrent layer's last hidden state, flattened, then the dense layers.
fn tensor_net(g: &mut Graph, features: &str, net: &ExportedNet) -> Result<String> {
    let arch = &net.arch;
    let d = arch.n_features;
    let (k, pool) = (arch.kernel_size, arch.pool_size);
    let x = match (&net.front, arch.kind) {
        (ExportedFront::None, _) => features.to_owned(),
        (ExportedFront::Convolutions(layers), ModelKind::Cnn) => {
            let shape = g.int64s("shape", &[3], vec![0, 1, d as i64]);
            let mut seq = g.op("Reshape", &[features, &shape], vec![]);
            let mut len = d;
            for l in layers {
                let conv = convolution(g, &seq, l);
                let activated = activate(g, &conv, &arch.activation)?;
                len = len + 1 - k;
                seq = if pool > 1 && len >= pool {
                    len /= pool;
                    let size = vec![pool as i64];
                    g.op(
                        "MaxPool",
                        &[&activated],
                        vec![("kernel_shape", Attr::Ints(size.clone())), ("strides", Attr::Ints(size))],
                    )
                } else {
                    activated
                };
            }
            g.op("Flatten", &[&seq], vec![("axis", Attr::Int(1))])
        }
        (ExportedFront::Convolutions(layers), ModelKind::Cnn2d) => {
            let [mut h, mut w, c] = arch.image_shape.unwrap_or([d, 1, 1]);
            // Pixels come channels-last; convolutions take NCHW.
            let shape = g.int64s("shape", &[4], vec![0, h as i64, w as i64, c as i64]);
            let nhwc = g.op("Reshape", &[features, &shape], vec![]);
            let mut img = g.op("Transpose", &[&nhwc], vec![("perm", Attr::Ints(vec![0, 3, 1, 2]))]);
            for l in layers {
                let conv = convolution(g, &img, l);
                img = activate(g, &conv, &arch.activation)?;
                (h, w) = (h + 1 - k, w + 1 - k);
                if pool > 1 && h >= pool && w >= pool {
                    (h, w) = (h / pool, w / pool);
                    let size = vec![pool as i64; 2];
                    img = g.op(
                        "MaxPool",
                        &[&img],
                        vec![("kernel_shape", Attr::Ints(size.clone())), ("strides", Attr::Ints(size))],
                    );
                }
            }
            g.op("Flatten", &[&img], vec![("axis", Attr::Int(1))])
        }
        (ExportedFront::Recurrent { inputs, units, w, r, b }, kind @ (ModelKind::Lstm | ModelKind::Gru)) => {
            // Every `inputs` columns are one time step: [N, steps, inputs] → [steps, N, inputs].
            let shape = g.int64s("shape", &[3], vec![0, (d / inputs) as i64, *inputs as i64]);
            let rows = g.op("Reshape", &[features, &shape], vec![]);
            let seq = g.op("Transpose", &[&rows], vec![("perm", Attr::Ints(vec![1, 0, 2]))]);
            let gates = w.len() / (units * inputs);
            let w = g.floats("w", &[1, gates * units, *inputs], w.clone());
            let r = g.floats("r", &[1, gates * units, *units], r.clone());
            let b = g.floats("b", &[1, 2 * gates * units], b.clone());
            let (op, mut attrs) = match kind {
                ModelKind::Lstm => ("LSTM", vec![]),
                // Keras's reset_after=True: the reset gate multiplies U·h + b'.
                _ => ("GRU", vec![attribute("linear_before_reset", Attr::Int(1))]),
            };
            attrs.push(attribute("hidden_size", Attr::Int(*units as i64)));
            let last = g.fresh("last_state");
            g.nodes.push(NodeProto {
                input: vec![seq, w, r, b],
                // Y is not needed, Y_h is the last hidden state [1, N, units].
                output: vec![String::new(), last.clone()],
                name: Some(last.clone()),
                op_type: Some(op.into()),
                attribute: attrs,
                domain: None,
            });
            let shape = g.int64s("shape", &[2], vec![-1, *units as i64]);
            g.op("Reshape", &[&last, &shape], vec![])
        }
        (_, kind) => bail!("a {} network with these layers cannot be exported", kind.name()),
    };
    dense_net(g, &x, &arch.activation, &net.dense)
}

/// A convolution of `x` by `layer` (valid padding, stride 1).
fn convolution(g: &mut Graph, x: &str, layer: &trainbench_engine_tensor::model::ConvLayer) -> String {
    let w = g.floats("conv_weights", &layer.dims, layer.weights.clone());
    let b = g.floats("conv_bias", &[layer.dims[0]], layer.bias.clone());
    g.op("Conv", &[x, &w, &b], vec![])
}
