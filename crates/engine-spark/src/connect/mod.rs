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
//!    the (label, probability) pairs so the caller scores them with trainbench's own metrics;
//! 6. when asked ([`ClusterJob::read_back`]), read the fitted stages and model back as
//!    trainbench's preprocessor and the spark engine's model, checked on test rows
//!    (`read_back.rs`).
//!
//! Fitting goes through the protocol's ML commands (`MlCommand.Fit` with the estimator's class
//! name, `MlRelation.Transform` with the fitted model's reference), built here: the
//! `apache-spark-connect` 4.2.0 crate's own `Estimator::fit` does not contact the server, and its
//! `VectorAssembler` sends its column list as one string instead of an array.

mod client;
mod literal;
mod plan;
mod read_back;

pub use read_back::ReadBack;

use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use trainbench_engine::{ModelKind, Params, Precision};
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
    pub params: Params,
    /// Seed of the split and of the models that draw random numbers.
    pub seed: u64,
    /// Share of labeled rows held out for testing, when there is no test file.
    pub test_fraction: f64,
    /// A separate test file (same columns), as the cluster sees it; then nothing is split.
    pub test_data: Option<String>,
    /// Share of the training rows to train on (a seeded sample; above 1, drawn with
    /// replacement), for scaling studies. 1 trains on all.
    pub train_fraction: f64,
    /// Read the fitted stages and model back ([`ReadBack`]), to save them.
    pub read_back: bool,
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
#[derive(Debug)]
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
    /// The fitted stages and model, when the job asked for them.
    pub read_back: Option<ReadBack>,
}

/// Checks that a Spark Connect server answers at `remote`; returns its Spark version.
pub fn server_version(remote: &str) -> Result<String, ClusterError> {
    Session::connect(remote).map(|(_, version)| version)
}

/// Runs `job` on the Spark Connect server at `remote`: read, split, preprocess, fit, predict,
/// each phase one function over the session and the views the earlier phases left.
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
    let (session, spark_version) = Session::connect(remote)?;
    let mut c = Job { s: session, job, tag: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned() };
    let started = Instant::now();
    let read = c.read()?;
    let read_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let split = c.split(&read)?;
    let prepared = c.preprocess(&read, &split)?;
    let preprocess_seconds = started.elapsed().as_secs_f64();
    let fit = c.fit(&estimator, &prepared, split.classes.len(), remote)?;
    let predicted = c.predict(&fit.model, &prepared, split.classes.len())?;
    let read_back = if job.read_back {
        let model =
            read_back::read_back(&mut c.s, &prepared.stages, &estimator, &fit.model, &read.label, prepared.features)?;
        if model.preprocessor.classes() != split.classes.as_slice() {
            return Err(ClusterError::Spark {
                step: "reading back the label's classes".into(),
                message: format!("{:?} where the split found {:?}", model.preprocessor.classes(), split.classes),
            });
        }
        Some(model)
    } else {
        None
    };
    Ok(ClusterRun {
        spark_version,
        label: read.label,
        classes: split.classes,
        rows: split.rows as u64,
        unlabeled_rows: (split.rows - split.labeled_rows).max(0) as u64,
        train_rows: prepared.train_rows as u64,
        test_rows: prepared.test_rows as u64,
        features: prepared.features,
        labels: predicted.labels,
        proba: predicted.proba,
        spark_accuracy: predicted.spark_accuracy,
        spark_f1_weighted: predicted.spark_f1_weighted,
        iterations: fit.iterations,
        phases: ClusterPhases {
            read_seconds,
            preprocess_seconds,
            fit_seconds: fit.seconds,
            predict_seconds: predicted.seconds,
        },
        server_fit_resources: fit.resources,
        read_back,
    })
}

/// The label column after preprocessing.
const LABEL_COL: &str = "trainbench_label";

/// A job on a session: views are named `trainbench_NAME_TAG`, so jobs never collide.
struct Job<'a> {
    s: Session,
    job: &'a ClusterJob,
    tag: String,
}

/// The file, read and cached.
struct Read {
    raw: String,
    columns: Vec<(String, String)>,
    label: String,
}

/// The training and test parts, before preprocessing.
struct Split {
    train: String,
    test: String,
    /// Rows read, and rows with a label.
    rows: i64,
    labeled_rows: i64,
    classes: Vec<String>,
}

/// The preprocessed, cached parts.
struct PreparedViews {
    train: String,
    test: String,
    train_rows: i64,
    test_rows: i64,
    features: usize,
    stages: read_back::FittedStages,
}

/// A fitted model on the server.
struct Fitted {
    model: String,
    seconds: f64,
    resources: Option<ResourceSummary>,
    iterations: Option<u64>,
}

/// The test rows' predictions, brought back and scored by Spark.
struct Predicted {
    labels: Vec<u32>,
    proba: Vec<f32>,
    seconds: f64,
    spark_accuracy: f64,
    spark_f1_weighted: f64,
}

fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl Job<'_> {
    fn view(&self, name: &str) -> String {
        format!("trainbench_{name}_{}", self.tag)
    }

    /// Step 1: read and cache the file; find the label column.
    fn read(&mut self) -> Result<Read, ClusterError> {
        let job = self.job;
        let raw = self.view("raw");
        self.s.cache_view(&raw, plan::read_file(&job.data), &format!("reading {}", job.data))?;
        let columns = describe(&self.s, &raw)?;
        let label = match &job.label {
            Some(l) => l.clone(),
            None => columns.last().map(|(c, _)| c.clone()).unwrap_or_default(),
        };
        if !columns.iter().any(|(c, _)| c == &label) {
            let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
            return Err(ClusterError::Data(format!(
                "{}: no label column '{label}' (columns: {})",
                job.data,
                names.join(", ")
            )));
        }
        Ok(Read { raw, columns, label })
    }

    /// Step 2: split (or read the test file), sample the training part, count rows and classes.
    fn split(&mut self, read: &Read) -> Result<Split, ClusterError> {
        let job = self.job;
        let label = quoted(&read.label);
        let labeled = |table: &str| plan::sql(&format!("SELECT * FROM {table} WHERE {label} IS NOT NULL"));
        let (train_split, test_split) = (self.view("train_split"), self.view("test_split"));
        let mut counted = vec![read.raw.clone()];
        match &job.test_data {
            Some(test_file) => {
                let test_raw = self.view("test_raw");
                self.s.cache_view(&test_raw, plan::read_file(test_file), &format!("reading {test_file}"))?;
                let test_columns = describe(&self.s, &test_raw)?;
                if test_columns != read.columns {
                    return Err(ClusterError::Data(format!(
                        "{test_file} does not have the columns and types of {}: {test_columns:?} against {:?}",
                        job.data, read.columns
                    )));
                }
                self.s.create_view(&train_split, labeled(&read.raw), "selecting the labeled rows")?;
                self.s.create_view(&test_split, labeled(&test_raw), "selecting the labeled rows")?;
                counted.push(test_raw);
            }
            None => {
                let cut = 1.0 - job.test_fraction;
                let seed = job.seed as i64;
                self.s.create_view(
                    &train_split,
                    plan::sample(labeled(&read.raw), 0.0, cut, seed),
                    "splitting the rows",
                )?;
                self.s.create_view(
                    &test_split,
                    plan::sample(labeled(&read.raw), cut, 1.0, seed),
                    "splitting the rows",
                )?;
            }
        }
        let train_split = if job.train_fraction == 1.0 {
            train_split
        } else {
            let sampled = self.view("train_sample");
            let f = job.train_fraction;
            self.s.create_view(
                &sampled,
                plan::sample_with(plan::table(&train_split), 0.0, f, f > 1.0, job.seed as i64 ^ 0x5ca1e),
                "sampling the training rows",
            )?;
            sampled
        };
        let (mut rows, mut labeled_rows) = (0, 0);
        for table in &counted {
            let counts = self.s.collect(
                plan::sql(&format!("SELECT count(*), count({label}) FROM {table}")),
                "counting rows and missing labels",
            )?;
            rows += int_at(&counts, 0).unwrap_or(0);
            labeled_rows += int_at(&counts, 1).unwrap_or(0);
        }
        let classes = strings_at(
            &self.s.collect(
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
                read.label
            )));
        }
        Ok(Split { train: train_split, test: test_split, rows, labeled_rows, classes })
    }

    /// Step 3: fit the preprocessing stages on the training part (StringIndexer for the label and
    /// string columns, OneHotEncoder, Imputer, VectorAssembler, StandardScaler), apply them to
    /// both parts and cache them.
    fn preprocess(&mut self, read: &Read, split: &Split) -> Result<PreparedViews, ClusterError> {
        let job = self.job;
        let columns = &read.columns;
        let label_name = &read.label;
        let train_split = &split.train;
        let test_split = &split.test;
        let label_col = LABEL_COL;
        let s = &mut self.s;
        let mut numeric = Vec::new();
        let mut categorical = Vec::new();
        for (name, ty) in columns.iter().filter(|(c, _)| c != label_name) {
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
                    .map(
                        |(c, t)| {
                            if t == "boolean" { plan::alias(plan::call("string", vec![col(c)]), c) } else { col(c) }
                        },
                    )
                    .collect();
                plan::project(plan::table(name), exprs)
            } else {
                plan::table(name)
            }
        };
        let mut stages: Vec<String> = Vec::new(); // fitted model references, in order
        let apply = |stages: &[String], input: pb::Relation| {
            stages.iter().fold(input, |rel, m| plan::transform_with_model(m, rel))
        };
        let step = "fitting the preprocessing stages";
        let fitted = |s: &mut Session, class: &str, params: &[(&str, Param)], stages: &[String]| {
            s.ml(plan::fit(class, params, apply(stages, train_input(train_split))), step)
                .and_then(|r| model_ref(r, step))
        };
        let label_indexer = fitted(
            s,
            "org.apache.spark.ml.feature.StringIndexer",
            &[
                ("inputCol", Param::Str(label_name.clone())),
                ("outputCol", Param::Str(label_col.into())),
                ("stringOrderType", Param::Str("alphabetAsc".into())),
                ("handleInvalid", Param::Str("error".into())),
            ],
            &stages,
        )?;
        stages.push(label_indexer.clone());
        let mut assembled_inputs = Vec::new();
        let mut indexer_and_encoder = None;
        if !categorical.is_empty() {
            let indexed: Vec<String> = categorical.iter().map(|c| format!("trainbench_idx_{c}")).collect();
            let encoded: Vec<String> = categorical.iter().map(|c| format!("trainbench_vec_{c}")).collect();
            let indexer = fitted(
                s,
                "org.apache.spark.ml.feature.StringIndexer",
                &[
                    ("inputCols", Param::Strs(categorical.clone())),
                    ("outputCols", Param::Strs(indexed.clone())),
                    ("handleInvalid", Param::Str("keep".into())),
                ],
                &stages,
            )?;
            stages.push(indexer.clone());
            let encoder = fitted(
                s,
                "org.apache.spark.ml.feature.OneHotEncoder",
                &[
                    ("inputCols", Param::Strs(indexed)),
                    ("outputCols", Param::Strs(encoded.clone())),
                    ("handleInvalid", Param::Str("keep".into())),
                ],
                &stages,
            )?;
            stages.push(encoder.clone());
            indexer_and_encoder = Some((indexer, encoder));
            assembled_inputs.extend(encoded);
        }
        let mut imputer = None;
        if !numeric.is_empty() {
            let imputed: Vec<String> = numeric.iter().map(|c| format!("trainbench_imp_{c}")).collect();
            let fitted_imputer = fitted(
                s,
                "org.apache.spark.ml.feature.Imputer",
                &[
                    ("inputCols", Param::Strs(numeric.clone())),
                    ("outputCols", Param::Strs(imputed.clone())),
                    ("strategy", Param::Str("mean".into())),
                ],
                &stages,
            )?;
            stages.push(fitted_imputer.clone());
            imputer = Some(fitted_imputer);
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
                    assemble(apply(&stages, train_input(train_split))),
                ),
                step,
            )
            .and_then(|r| model_ref(r, step))?;
        let all_stages =
            |split: &str| plan::transform_with_model(&scaler, assemble(apply(&stages, train_input(split))));
        let prepared = |split: &str| plan::project(all_stages(split), vec![col(label_col), col("trainbench_features")]);
        let (train, test) = (format!("trainbench_train_{}", self.tag), format!("trainbench_test_{}", self.tag));
        s.cache_view(&train, prepared(train_split), "preparing the training rows")?;
        s.cache_view(&test, prepared(test_split), "preparing the test rows")?;
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
        let test_rows_plan = all_stages(test_split);
        let stages = read_back::FittedStages {
            label_indexer,
            indexer_and_encoder,
            imputer,
            categorical,
            numeric: columns.iter().filter(|(c, _)| numeric.contains(c)).cloned().collect(),
            scaler: scaler.clone(),
            test_rows: test_rows_plan,
        };
        Ok(PreparedViews { train, test, train_rows, test_rows, features, stages })
    }

    /// Step 4: fit the model, with the server's CPU and memory sampled when it runs here, and read
    /// MLlib's count of the work.
    fn fit(
        &mut self,
        estimator: &Estimator,
        prepared: &PreparedViews,
        classes: usize,
        remote: &str,
    ) -> Result<Fitted, ClusterError> {
        let s = &mut self.s;
        let (class, params) = estimator.spark_params(prepared.features, classes, LABEL_COL)?;
        let server_pid = local_port(remote).and_then(pid_listening_on);
        let sampler = server_pid.map(|pid| ResourceSampler::start_for(pid, Duration::from_millis(100)));
        let started = Instant::now();
        let fit_step = format!("fitting {}", estimator.kind().name());
        let model = s
            .ml(plan::fit(class, &params, plan::table(&prepared.train)), &fit_step)
            .and_then(|r| model_ref(r, &fit_step))?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let server_fit_resources = sampler.map(ResourceSampler::stop);
        // What MLlib did, counted as the embedded engine counts it (a missing answer costs nothing).
        let counter: &[&str] =
            if estimator.kind() == ModelKind::Tree { &["depth"] } else { &["summary", "totalIterations"] };
        let iterations = s
            .ml(plan::fetch(&model, counter), "reading the iteration count")
            .ok()
            .and_then(|r| literal::param(&r).and_then(literal::int))
            .map(|n| n as u64);
        Ok(Fitted { model, seconds: fit_seconds, resources: server_fit_resources, iterations })
    }

    /// Step 5: predict the test rows, bring the predictions back, and let Spark score them too.
    fn predict(&mut self, model: &str, prepared: &PreparedViews, classes: usize) -> Result<Predicted, ClusterError> {
        let label_col = LABEL_COL;
        let predictions = self.view("predictions");
        let s = &mut self.s;
        let started = Instant::now();
        s.cache_view(
            &predictions,
            plan::project(
                plan::transform_with_model(model, plan::table(&prepared.test)),
                vec![col(label_col), col("prediction"), plan::alias(plan::vector_to_array("probability"), "p")],
            ),
            "predicting the test rows",
        )?;
        let batches = s.collect(plan::table(&predictions), "collecting the predictions")?;
        let predict_seconds = started.elapsed().as_secs_f64();
        let (labels, proba) = label_and_proba(&batches, classes)?;
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
            literal::param(&result)
                .and_then(literal::double)
                .ok_or(ClusterError::Spark { step, message: "the evaluator returned no number".into() })
        };
        let spark_accuracy = evaluate(s, "accuracy")?;
        let spark_f1_weighted = evaluate(s, "f1")?;
        Ok(Predicted { labels, proba, seconds: predict_seconds, spark_accuracy, spark_f1_weighted })
    }
}

/// An ML operator's parameters, by their MLlib names.
type SparkParams = Vec<(&'static str, Param)>;

/// The model to fit, with its parameters checked by the embedded engine's rules.
enum Estimator {
    Lr(LrParams),
    Tree(TreeParams, u64),
    Mlp(MlpParams, u64),
}

impl Estimator {
    fn new(job: &ClusterJob) -> Result<Self, ClusterError> {
        let p = &job.params;
        Ok(match job.kind {
            ModelKind::Lr => Estimator::Lr(LrParams::from_params(p)?),
            ModelKind::Tree => Estimator::Tree(TreeParams::from_params(p)?, job.seed),
            ModelKind::Mlp => {
                let mlp = MlpParams::from_params(p)?;
                if mlp.precision != Precision::F64 {
                    return Err(ClusterError::Data(format!(
                        "precision {}: Spark MLlib's MLP computes in f64 only",
                        mlp.precision
                    )));
                }
                Estimator::Mlp(mlp, job.seed)
            }
            other => {
                return Err(ClusterError::Data(format!(
                    "cluster mode trains the spark engine's models (lr, tree, mlp), not '{}'",
                    other.name()
                )));
            }
        })
    }

    fn kind(&self) -> ModelKind {
        match self {
            Estimator::Lr(_) => ModelKind::Lr,
            Estimator::Tree(..) => ModelKind::Tree,
            Estimator::Mlp(..) => ModelKind::Mlp,
        }
    }

    /// The MLlib class and its parameters.
    fn spark_params(
        &self,
        features: usize,
        classes: usize,
        label: &str,
    ) -> Result<(&'static str, SparkParams), ClusterError> {
        let mut params =
            vec![("featuresCol", Param::Str("trainbench_features".into())), ("labelCol", Param::Str(label.into()))];
        let int = |v: usize| Param::Int(v as i64);
        let class = match self {
            Estimator::Lr(p) => {
                params.extend([
                    ("maxIter", int(p.max_iter)),
                    ("tol", Param::Double(p.tol)),
                    ("regParam", Param::Double(p.reg_param)),
                    ("elasticNetParam", Param::Double(p.elastic_net_param)),
                    ("fitIntercept", Param::Bool(p.fit_intercept)),
                    ("standardization", Param::Bool(p.standardization)),
                ]);
                "org.apache.spark.ml.classification.LogisticRegression"
            }
            Estimator::Tree(p, seed) => {
                params.extend([
                    ("maxDepth", int(p.max_depth)),
                    ("maxBins", int(p.max_bins)),
                    ("minInstancesPerNode", int(p.min_instances_per_node)),
                    ("minInfoGain", Param::Double(p.min_info_gain)),
                    ("impurity", Param::Str(if p.impurity == Impurity::Gini { "gini" } else { "entropy" }.into())),
                    ("seed", Param::Int(*seed as i64)),
                ]);
                "org.apache.spark.ml.classification.DecisionTreeClassifier"
            }
            Estimator::Mlp(p, seed) => {
                p.check_size(features, classes)?;
                let layers = p.layers(features, classes).into_iter().map(|l| l as i64).collect();
                params.extend([
                    ("layers", Param::Ints(layers)),
                    ("maxIter", int(p.max_iter)),
                    ("tol", Param::Double(p.tol)),
                    ("solver", Param::Str(if p.solver == MlpSolver::LBfgs { "l-bfgs" } else { "gd" }.into())),
                    ("stepSize", Param::Double(p.step_size)),
                    ("blockSize", int(p.block_size)),
                    ("seed", Param::Int(*seed as i64)),
                ]);
                "org.apache.spark.ml.classification.MultilayerPerceptronClassifier"
            }
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
