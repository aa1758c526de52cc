//! Cluster mode: the spark engine's models trained by real Spark MLlib on a Spark cluster, through
//! Spark Connect (`sc://HOST:PORT`).
//!
//! Spark reads the file itself (a path the cluster can read: local, HDFS, S3), so the rows never
//! pass through trainbench. The job, all on the server:
//! 1. read the file (CSV with a header row and inferred types, or Parquet) and cache it;
//! 2. drop rows without a label (counted), split with `randomSplit([1 - f, f], seed)` — random,
//!    not stratified, as Spark's;
//! 3. preprocessing as Spark ML stages fitted on the training part: `StringIndexer` for the label
//!    (classes in alphabetical order), `StringIndexer` + `OneHotEncoder` for string columns
//!    (unseen and missing values get their own slot), `Imputer` (mean) for numeric columns,
//!    `VectorAssembler`, `StandardScaler` (mean and unit variance, as the embedded engine);
//! 4. fit `LogisticRegression`, `DecisionTreeClassifier` or `MultilayerPerceptronClassifier`
//!    with the embedded engine's parameters under their MLlib names;
//! 5. predict the test part; score it with Spark's `MulticlassClassificationEvaluator` and return
//!    the (label, probability) pairs so the caller scores them with trainbench's own metrics.
//!
//! Fitting goes through the protocol's ML commands (`MlCommand.Fit` with the estimator's class
//! name, `MlRelation.Transform` with the fitted model's reference), built here: the
//! `apache-spark-connect` 4.2.0 crate's own `Estimator::fit` does not contact the server, and its
//! `VectorAssembler` sends its column list as one string instead of an array.

mod client;
mod plan;

use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use trainbench_engine::{ModelKind, ParamMap};
use trainbench_metrics::{ResourceSampler, ResourceSummary, pid_listening_on};

use crate::params::{Impurity, LrParams, MlpParams, MlpSolver, TreeParams};
use client::Session;
use plan::{Param, col};
use spark_connect_proto as pb;

/// What can go wrong in cluster mode; each message says what and where.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No Spark Connect server answers at the address.
    #[error("cannot reach a Spark Connect server at {address}: {message}")]
    Unreachable {
        /// The address as given.
        address: String,
        /// What the connection attempt said.
        message: String,
    },
    /// Spark failed, or the server was lost, during a step.
    #[error("Spark failed while {step}: {message}")]
    Spark {
        /// What was being done.
        step: String,
        /// The server's message.
        message: String,
    },
    /// A model parameter is invalid (same checks as the embedded engine).
    #[error(transparent)]
    Param(#[from] trainbench_engine::Error),
    /// The data cannot be used as asked (no such label column, one class, a column type).
    #[error("{0}")]
    Data(String),
}

/// One training job for the cluster.
#[derive(Debug, Clone)]
pub struct ClusterJob {
    /// The data file, as the cluster sees it.
    pub data: String,
    /// The label column; the last column when `None` (as the embedded loader).
    pub label: Option<String>,
    /// The model (lr, tree or mlp).
    pub kind: ModelKind,
    /// Model parameters, with the embedded engine's names.
    pub params: ParamMap,
    /// Seed of the split and of the models that draw random numbers.
    pub seed: u64,
    /// Share of labeled rows held out for testing, when there is no test file.
    pub test_fraction: f64,
    /// A separate test file (same columns), as the cluster sees it; then nothing is split.
    pub test_data: Option<String>,
    /// Share of the training rows to train on (a seeded sample; above 1, drawn with
    /// replacement), for scaling studies. 1 trains on all.
    pub train_fraction: f64,
}

/// Wall seconds of each phase, as the client saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClusterPhases {
    /// Reading and caching the file.
    pub read_seconds: f64,
    /// Splitting, fitting the preprocessing stages, caching the prepared parts.
    pub preprocess_seconds: f64,
    /// Fitting the model.
    pub fit_seconds: f64,
    /// Predicting the test part and bringing the predictions back.
    pub predict_seconds: f64,
}

/// What a cluster job produced.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// The server's Spark version.
    pub spark_version: String,
    /// The label column used.
    pub label: String,
    /// Class names, in the order of the probability columns.
    pub classes: Vec<String>,
    /// Rows read (both files, when there is a test file).
    pub rows: u64,
    /// Rows dropped because their label is missing.
    pub unlabeled_rows: u64,
    /// Training rows.
    pub train_rows: u64,
    /// Test rows.
    pub test_rows: u64,
    /// Width of the assembled feature vector.
    pub features: usize,
    /// Each test row's class index.
    pub labels: Vec<u32>,
    /// Each test row's class probabilities, row-major.
    pub proba: Vec<f32>,
    /// Spark's `MulticlassClassificationEvaluator` accuracy on the test part.
    pub spark_accuracy: f64,
    /// Spark's `MulticlassClassificationEvaluator` F1 (weighted by class) on the test part.
    pub spark_f1_weighted: f64,
    /// MLlib's count of the work: `summary.totalIterations` of LogisticRegression and
    /// MultilayerPerceptronClassifier, the depth of a decision tree; none if the server did not say.
    pub iterations: Option<u64>,
    /// Wall seconds per phase.
    pub phases: ClusterPhases,
    /// CPU and memory of the server process during the fit, when it runs on this machine.
    pub server_fit_resources: Option<ResourceSummary>,
}

/// Checks that a Spark Connect server answers at `remote`; returns its Spark version.
pub fn server_version(remote: &str) -> Result<String, ClusterError> {
    Session::connect(remote).map(|(_, version)| version)
}

/// Runs `job` on the Spark Connect server at `remote`.
pub fn run_on_cluster(remote: &str, job: &ClusterJob) -> Result<ClusterRun, ClusterError> {
    let estimator = Estimator::new(job)?;
    if !(job.train_fraction > 0.0 && job.train_fraction.is_finite()) {
        return Err(ClusterError::Data(format!("the training fraction must be positive, not {}", job.train_fraction)));
    }
    if job.test_data.is_none() && !(job.test_fraction > 0.0 && job.test_fraction < 1.0) {
        return Err(ClusterError::Data(format!(
            "the test fraction must be between 0 and 1, not {}",
            job.test_fraction
        )));
    }
    let (mut s, spark_version) = Session::connect(remote)?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let view = |name: &str| format!("trainbench_{name}_{tag}");
    let q = |name: &str| format!("`{}`", name.replace('`', "``"));

    // 1. Read and cache.
    let started = Instant::now();
    let raw = view("raw");
    s.cache_view(&raw, plan::read_file(&job.data), &format!("reading {}", job.data))?;
    let columns = describe(&s, &raw)?;
    let label_name = match &job.label {
        Some(l) => l.clone(),
        None => columns.last().map(|(c, _)| c.clone()).unwrap_or_default(),
    };
    if !columns.iter().any(|(c, _)| c == &label_name) {
        let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        return Err(ClusterError::Data(format!(
            "{}: no label column '{label_name}' (columns: {})",
            job.data,
            names.join(", ")
        )));
    }
    let read_seconds = started.elapsed().as_secs_f64();

    // 2. Split.
    let started = Instant::now();
    let label = q(&label_name);
    let labeled = |table: &str| plan::sql(&format!("SELECT * FROM {table} WHERE {label} IS NOT NULL"));
    let (train_split, test_split) = (view("train_split"), view("test_split"));
    let mut counted = vec![raw.clone()];
    match &job.test_data {
        Some(test_file) => {
            let test_raw = view("test_raw");
            s.cache_view(&test_raw, plan::read_file(test_file), &format!("reading {test_file}"))?;
            let test_columns = describe(&s, &test_raw)?;
            if test_columns != columns {
                return Err(ClusterError::Data(format!(
                    "{test_file} does not have the columns and types of {}: {test_columns:?} against {columns:?}",
                    job.data
                )));
            }
            s.create_view(&train_split, labeled(&raw), "selecting the labeled rows")?;
            s.create_view(&test_split, labeled(&test_raw), "selecting the labeled rows")?;
            counted.push(test_raw);
        }
        None => {
            let cut = 1.0 - job.test_fraction;
            let seed = job.seed as i64;
            s.create_view(&train_split, plan::sample(labeled(&raw), 0.0, cut, seed), "splitting the rows")?;
            s.create_view(&test_split, plan::sample(labeled(&raw), cut, 1.0, seed), "splitting the rows")?;
        }
    }
    let train_split = if job.train_fraction == 1.0 {
        train_split
    } else {
        let sampled = view("train_sample");
        let f = job.train_fraction;
        s.create_view(
            &sampled,
            plan::sample_with(plan::table(&train_split), 0.0, f, f > 1.0, job.seed as i64 ^ 0x5ca1e),
            "sampling the training rows",
        )?;
        sampled
    };
    let (mut rows, mut labeled_rows) = (0, 0);
    for table in &counted {
        let counts = s.collect(
            plan::sql(&format!("SELECT count(*), count({label}) FROM {table}")),
            "counting rows and missing labels",
        )?;
        rows += int_at(&counts, 0).unwrap_or(0);
        labeled_rows += int_at(&counts, 1).unwrap_or(0);
    }
    let classes = strings_at(
        &s.collect(
            plan::sql(&format!("SELECT DISTINCT CAST({label} AS STRING) AS c FROM {train_split} ORDER BY c")),
            "listing the classes",
        )?,
        0,
    );
    if classes.len() < 2 {
        return Err(ClusterError::Data(format!(
            "{}: the training rows have {} class(es) in '{}'; a classifier needs at least 2",
            job.data,
            classes.len(),
            label_name
        )));
    }

    // 3. Preprocessing stages, fitted on the training part.
    let mut numeric = Vec::new();
    let mut categorical = Vec::new();
    for (name, ty) in columns.iter().filter(|(c, _)| c != &label_name) {
        match ty.as_str() {
            "tinyint" | "smallint" | "int" | "bigint" | "float" | "double" => numeric.push(name.clone()),
            t if t.starts_with("decimal") => numeric.push(name.clone()),
            "string" | "boolean" => categorical.push(name.clone()),
            other => {
                return Err(ClusterError::Data(format!(
                    "{}: column '{name}' has type {other}; cluster mode uses numeric and string columns",
                    job.data
                )));
            }
        }
    }
    if numeric.is_empty() && categorical.is_empty() {
        return Err(ClusterError::Data(format!("{}: no feature columns besides the label", job.data)));
    }
    // Booleans are indexed as strings; cast them so StringIndexer takes them.
    let cast_booleans = columns.iter().any(|(_, t)| t == "boolean");
    let train_input = |name: &str| -> pb::Relation {
        if cast_booleans {
            let exprs = columns
                .iter()
                .map(|(c, t)| if t == "boolean" { plan::alias(plan::call("string", vec![col(c)]), c) } else { col(c) })
                .collect();
            plan::project(plan::table(name), exprs)
        } else {
            plan::table(name)
        }
    };
    let mut stages: Vec<String> = Vec::new(); // fitted model references, in order
    let apply =
        |stages: &[String], input: pb::Relation| stages.iter().fold(input, |rel, m| plan::transform_with_model(m, rel));
    let step = "fitting the preprocessing stages";
    let fitted = |s: &mut Session, class: &str, params: &[(&str, Param)], stages: &[String]| {
        s.ml(plan::fit(class, params, apply(stages, train_input(&train_split))), step).and_then(|r| model_ref(r, step))
    };
    let label_col = "trainbench_label";
    stages.push(fitted(
        &mut s,
        "org.apache.spark.ml.feature.StringIndexer",
        &[
            ("inputCol", Param::Str(label_name.clone())),
            ("outputCol", Param::Str(label_col.into())),
            ("stringOrderType", Param::Str("alphabetAsc".into())),
            ("handleInvalid", Param::Str("error".into())),
        ],
        &stages,
    )?);
    let mut assembled_inputs = Vec::new();
    if !categorical.is_empty() {
        let indexed: Vec<String> = categorical.iter().map(|c| format!("trainbench_idx_{c}")).collect();
        let encoded: Vec<String> = categorical.iter().map(|c| format!("trainbench_vec_{c}")).collect();
        stages.push(fitted(
            &mut s,
            "org.apache.spark.ml.feature.StringIndexer",
            &[
                ("inputCols", Param::Strs(categorical.clone())),
                ("outputCols", Param::Strs(indexed.clone())),
                ("handleInvalid", Param::Str("keep".into())),
            ],
            &stages,
        )?);
        stages.push(fitted(
            &mut s,
            "org.apache.spark.ml.feature.OneHotEncoder",
            &[
                ("inputCols", Param::Strs(indexed)),
                ("outputCols", Param::Strs(encoded.clone())),
                ("handleInvalid", Param::Str("keep".into())),
            ],
            &stages,
        )?);
        assembled_inputs.extend(encoded);
    }
    if !numeric.is_empty() {
        let imputed: Vec<String> = numeric.iter().map(|c| format!("trainbench_imp_{c}")).collect();
        stages.push(fitted(
            &mut s,
            "org.apache.spark.ml.feature.Imputer",
            &[
                ("inputCols", Param::Strs(numeric.clone())),
                ("outputCols", Param::Strs(imputed.clone())),
                ("strategy", Param::Str("mean".into())),
            ],
            &stages,
        )?);
        assembled_inputs.splice(0..0, imputed);
    }
    let assemble = |input: pb::Relation| {
        plan::transform_with(
            "org.apache.spark.ml.feature.VectorAssembler",
            &[
                ("inputCols", Param::Strs(assembled_inputs.clone())),
                ("outputCol", Param::Str("trainbench_assembled".into())),
                ("handleInvalid", Param::Str("error".into())),
            ],
            input,
        )
    };
    let scaler = s
        .ml(
            plan::fit(
                "org.apache.spark.ml.feature.StandardScaler",
                &[
                    ("inputCol", Param::Str("trainbench_assembled".into())),
                    ("outputCol", Param::Str("trainbench_features".into())),
                    ("withMean", Param::Bool(true)),
                    ("withStd", Param::Bool(true)),
                ],
                assemble(apply(&stages, train_input(&train_split))),
            ),
            step,
        )
        .and_then(|r| model_ref(r, step))?;
    let prepared = |split: &str| {
        let all = plan::transform_with_model(&scaler, assemble(apply(&stages, train_input(split))));
        plan::project(all, vec![col(label_col), col("trainbench_features")])
    };
    let (train, test) = (view("train"), view("test"));
    s.cache_view(&train, prepared(&train_split), "preparing the training rows")?;
    s.cache_view(&test, prepared(&test_split), "preparing the test rows")?;
    let sizes = s.collect(
        plan::sql(&format!("SELECT (SELECT count(*) FROM {train}), (SELECT count(*) FROM {test})")),
        "counting the split",
    )?;
    let (train_rows, test_rows) = (int_at(&sizes, 0).unwrap_or(0), int_at(&sizes, 1).unwrap_or(0));
    if train_rows == 0 || test_rows == 0 {
        return Err(ClusterError::Data(format!(
            "{}: the split left {train_rows} training and {test_rows} test rows",
            job.data
        )));
    }
    let width = s.collect(
        plan::limit(
            plan::project(
                plan::table(&train),
                vec![plan::call("size", vec![plan::vector_to_array("trainbench_features")])],
            ),
            1,
        ),
        "measuring the feature vector",
    )?;
    let features = int_at(&width, 0).unwrap_or(0) as usize;
    let preprocess_seconds = started.elapsed().as_secs_f64();

    // 4. Fit, with the server's CPU and memory sampled when it runs here.
    let (class, params) = estimator.spark_params(features, classes.len(), label_col)?;
    let server_pid = local_port(remote).and_then(pid_listening_on);
    let sampler = server_pid.map(|pid| ResourceSampler::start_for(pid, Duration::from_millis(100)));
    let started = Instant::now();
    let fit_step = format!("fitting {}", estimator.kind.name());
    let model =
        s.ml(plan::fit(class, &params, plan::table(&train)), &fit_step).and_then(|r| model_ref(r, &fit_step))?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let server_fit_resources = sampler.map(ResourceSampler::stop);
    // What MLlib did, counted as the embedded engine counts it (a missing answer costs nothing).
    let counter: &[&str] = if estimator.kind == ModelKind::Tree { &["depth"] } else { &["summary", "totalIterations"] };
    let iterations = s
        .ml(plan::fetch(&model, counter), "reading the iteration count")
        .ok()
        .and_then(|r| int_result(&r))
        .map(|n| n as u64);

    // 5. Predict, bring the predictions back, and let Spark score them too.
    let started = Instant::now();
    let predictions = view("predictions");
    s.cache_view(
        &predictions,
        plan::project(
            plan::transform_with_model(&model, plan::table(&test)),
            vec![col(label_col), col("prediction"), plan::alias(plan::vector_to_array("probability"), "p")],
        ),
        "predicting the test rows",
    )?;
    let batches = s.collect(plan::table(&predictions), "collecting the predictions")?;
    let predict_seconds = started.elapsed().as_secs_f64();
    let (labels, proba) = label_and_proba(&batches, classes.len())?;
    let evaluate = |s: &mut Session, metric: &str| -> Result<f64, ClusterError> {
        let step = format!("evaluating {metric}");
        let result = s.ml(
            plan::evaluate(
                "org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator",
                &[
                    ("labelCol", Param::Str(label_col.into())),
                    ("predictionCol", Param::Str("prediction".into())),
                    ("metricName", Param::Str(metric.into())),
                ],
                plan::table(&predictions),
            ),
            &step,
        )?;
        double_result(&result).ok_or(ClusterError::Spark { step, message: "the evaluator returned no number".into() })
    };
    let spark_accuracy = evaluate(&mut s, "accuracy")?;
    let spark_f1_weighted = evaluate(&mut s, "f1")?;

    Ok(ClusterRun {
        spark_version,
        label: label_name,
        classes,
        rows: rows as u64,
        unlabeled_rows: (rows - labeled_rows).max(0) as u64,
        train_rows: train_rows as u64,
        test_rows: test_rows as u64,
        features,
        labels,
        proba,
        spark_accuracy,
        spark_f1_weighted,
        iterations,
        phases: ClusterPhases { read_seconds, preprocess_seconds, fit_seconds, predict_seconds },
        server_fit_resources,
    })
}

/// An ML operator's parameters, by their MLlib names.
type Params = Vec<(&'static str, Param)>;

/// The model to fit, with its parameters checked by the embedded engine's rules.
struct Estimator {
    kind: ModelKind,
    lr: Option<LrParams>,
    tree: Option<TreeParams>,
    mlp: Option<MlpParams>,
}

impl Estimator {
    fn new(job: &ClusterJob) -> Result<Self, ClusterError> {
        let p = job.params.clone();
        let mut e = Self { kind: job.kind, lr: None, tree: None, mlp: None };
        match job.kind {
            ModelKind::Lr => e.lr = Some(LrParams::from_map(p)?),
            ModelKind::Tree => e.tree = Some(TreeParams::from_map(p, job.seed)?),
            ModelKind::Mlp => e.mlp = Some(MlpParams::from_map(p, job.seed)?),
            other => {
                return Err(ClusterError::Data(format!(
                    "cluster mode trains the spark engine's models (lr, tree, mlp), not '{}'",
                    other.name()
                )));
            }
        }
        Ok(e)
    }

    /// The MLlib class and its parameters.
    fn spark_params(
        &self,
        features: usize,
        classes: usize,
        label: &str,
    ) -> Result<(&'static str, Params), ClusterError> {
        let mut params =
            vec![("featuresCol", Param::Str("trainbench_features".into())), ("labelCol", Param::Str(label.into()))];
        let int = |v: usize| Param::Int(v as i64);
        let class = if let Some(p) = &self.lr {
            params.extend([
                ("maxIter", int(p.max_iter)),
                ("tol", Param::Double(p.tol)),
                ("regParam", Param::Double(p.reg_param)),
                ("elasticNetParam", Param::Double(p.elastic_net_param)),
                ("fitIntercept", Param::Bool(p.fit_intercept)),
                ("standardization", Param::Bool(p.standardization)),
            ]);
            "org.apache.spark.ml.classification.LogisticRegression"
        } else if let Some(p) = &self.tree {
            params.extend([
                ("maxDepth", int(p.max_depth)),
                ("maxBins", int(p.max_bins)),
                ("minInstancesPerNode", int(p.min_instances_per_node)),
                ("minInfoGain", Param::Double(p.min_info_gain)),
                ("impurity", Param::Str(if p.impurity == Impurity::Gini { "gini" } else { "entropy" }.into())),
                ("seed", Param::Int(p.seed as i64)),
            ]);
            "org.apache.spark.ml.classification.DecisionTreeClassifier"
        } else if let Some(p) = &self.mlp {
            p.check_size(features, classes)?;
            let layers = p.layers(features, classes).into_iter().map(|l| l as i64).collect();
            params.extend([
                ("layers", Param::Ints(layers)),
                ("maxIter", int(p.max_iter)),
                ("tol", Param::Double(p.tol)),
                ("solver", Param::Str(if p.solver == MlpSolver::LBfgs { "l-bfgs" } else { "gd" }.into())),
                ("stepSize", Param::Double(p.step_size)),
                ("blockSize", int(p.block_size)),
                ("seed", Param::Int(p.seed as i64)),
            ]);
            "org.apache.spark.ml.classification.MultilayerPerceptronClassifier"
        } else {
            return Err(ClusterError::Data(format!("no cluster estimator for '{}'", self.kind.name())));
        };
        Ok((class, params))
    }
}

/// The port of `sc://127.0.0.1:PORT` or `sc://localhost:PORT` (a server on this machine).
fn local_port(remote: &str) -> Option<u16> {
    let rest = remote.strip_prefix("sc://")?;
    let hostport = rest.split('/').next()?;
    let (host, port) = hostport.rsplit_once(':')?;
    ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"].contains(&host).then(|| port.parse().ok())?
}

/// Column names and SQL types of a table.
fn describe(s: &Session, table: &str) -> Result<Vec<(String, String)>, ClusterError> {
    let batches = s.collect(plan::sql(&format!("DESCRIBE {table}")), "reading the schema")?;
    let names = strings_at(&batches, 0);
    let types = strings_at(&batches, 1);
    // DESCRIBE may append partition information after an empty row.
    Ok(names.into_iter().zip(types).take_while(|(n, _)| !n.is_empty() && !n.starts_with('#')).collect())
}

fn model_ref(result: pb::MlCommandResult, step: &str) -> Result<String, ClusterError> {
    use pb::ml_command_result::{ResultType, ml_operator_info::Type};
    match result.result_type {
        Some(ResultType::OperatorInfo(info)) => match info.r#type {
            Some(Type::ObjRef(r)) => Ok(r.id),
            _ => Err(ClusterError::Spark { step: step.into(), message: "the server returned no model".into() }),
        },
        _ => Err(ClusterError::Spark { step: step.into(), message: "the server returned no model".into() }),
    }
}

fn double_result(result: &pb::MlCommandResult) -> Option<f64> {
    use pb::expression::literal::LiteralType;
    match &result.result_type {
        Some(pb::ml_command_result::ResultType::Param(l)) => match l.literal_type {
            Some(LiteralType::Double(d)) => Some(d),
            Some(LiteralType::Float(f)) => Some(f64::from(f)),
            _ => None,
        },
        _ => None,
    }
}

fn int_result(result: &pb::MlCommandResult) -> Option<i64> {
    use pb::expression::literal::LiteralType;
    match &result.result_type {
        Some(pb::ml_command_result::ResultType::Param(l)) => match l.literal_type {
            Some(LiteralType::Integer(i)) => Some(i64::from(i)),
            Some(LiteralType::Long(i)) => Some(i),
            _ => None,
        },
        _ => None,
    }
}

/// Column `i` of the batches as strings (nulls as empty strings).
fn strings_at(batches: &[RecordBatch], i: usize) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let Some(c) = b.columns().get(i) else { continue };
        if let Some(a) = c.as_string_opt::<i32>() {
            out.extend((0..a.len()).map(|r| if a.is_null(r) { String::new() } else { a.value(r).to_owned() }));
        } else if let Some(a) = c.as_string_opt::<i64>() {
            out.extend((0..a.len()).map(|r| if a.is_null(r) { String::new() } else { a.value(r).to_owned() }));
        }
    }
    out
}

pub(crate) fn first_string(batches: &[RecordBatch]) -> Option<String> {
    strings_at(batches, 0).into_iter().next()
}

/// The first row's column `i` as an integer.
fn int_at(batches: &[RecordBatch], i: usize) -> Option<i64> {
    use arrow_array::types::{Int32Type, Int64Type};
    let c = batches.iter().find(|b| b.num_rows() > 0)?.columns().get(i)?;
    if let Some(a) = c.as_primitive_opt::<Int64Type>() {
        return a.is_valid(0).then(|| a.value(0));
    }
    c.as_primitive_opt::<Int32Type>().and_then(|a| a.is_valid(0).then(|| i64::from(a.value(0))))
}

/// The collected (label index, probability array) pairs.
fn label_and_proba(batches: &[RecordBatch], classes: usize) -> Result<(Vec<u32>, Vec<f32>), ClusterError> {
    use arrow_array::types::Float64Type;
    let bad = |what: &str| ClusterError::Spark { step: "reading the predictions".into(), message: what.to_owned() };
    let mut labels = Vec::new();
    let mut proba = Vec::new();
    for b in batches {
        let label = b.column(0).as_primitive_opt::<Float64Type>().ok_or_else(|| bad("the label is not a double"))?;
        let p = b.column(2).as_list_opt::<i32>().ok_or_else(|| bad("the probabilities are not an array"))?;
        for r in 0..b.num_rows() {
            let row = p.value(r);
            let row = row.as_primitive_opt::<Float64Type>().ok_or_else(|| bad("the probabilities are not doubles"))?;
            if row.len() != classes {
                return Err(bad(&format!("a row has {} probabilities for {classes} classes", row.len())));
            }
            labels.push(label.value(r) as u32);
            proba.extend(row.values().iter().map(|&v| v as f32));
        }
    }
    Ok((labels, proba))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_recognised() {
        assert_eq!(local_port("sc://127.0.0.1:15002"), Some(15002));
        assert_eq!(local_port("sc://localhost:15002/;session_id=x"), Some(15002));
        assert_eq!(local_port("sc://spark-master.example:15002"), None);
    }

    #[test]
    fn an_unreachable_server_is_named() {
        // Port 9 (discard) has no Spark Connect server on any machine we run on.
        let err = server_version("sc://127.0.0.1:9").unwrap_err().to_string();
        assert!(err.contains("cannot reach a Spark Connect server at sc://127.0.0.1:9"), "{err}");
        let err = server_version("http://127.0.0.1:9").unwrap_err().to_string();
        assert!(err.contains("sc://HOST:PORT"), "{err}");
    }
}
