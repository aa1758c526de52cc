//! `trainbench train`: one engine, one model, scored on held-out rows.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::json;
use trainbench_data::{prepare, write_quarantine};
use trainbench_engine::{Engine, ModelKind, ModelSpec, ParamMap, RunContext, SavedModel};
use trainbench_engine_spark::SparkEngine;
use trainbench_engine_tensor::{Backend, Precision, TensorEngine, TrainOptions};
use trainbench_metrics::{ClassificationReport, Phase, PhaseTimers};

use crate::args::LoadArgs;
use crate::cmd::prepare::PrepArgs;
use crate::cmd::{cluster, runner};
use crate::output;

/// Train one model with one engine and print its metrics on the test rows.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Which paradigm trains the model.
    #[arg(long, value_enum, default_value_t = EngineArg::Spark)]
    pub engine: EngineArg,
    /// The model.
    #[arg(long, value_enum)]
    pub model: ModelArg,
    /// The data file (CSV, Parquet, or IDX images).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub prep: PrepArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub params: ModelParams,
    /// Save the model, with its fitted preprocessor, to this file.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--engine`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineArg {
    /// Spark MLlib's paradigm: partitions, tree aggregation, L-BFGS (embedded).
    Spark,
    /// TensorFlow/Keras's paradigm: mini-batches, replicas, Adam (on Burn).
    Tensor,
}

/// `--model`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelArg {
    /// Logistic regression.
    Lr,
    /// Decision tree.
    Tree,
    /// Multilayer perceptron.
    Mlp,
    /// 1-D convolutional network over the feature vector (tensor engine).
    Cnn,
    /// LSTM over the feature vector as a sequence (tensor engine).
    Lstm,
    /// GRU over the feature vector as a sequence (tensor engine).
    Gru,
    /// 2-D convolutional network over images (tensor engine).
    Cnn2d,
}

impl ModelArg {
    /// The model kind.
    pub fn kind(self) -> ModelKind {
        match self {
            ModelArg::Lr => ModelKind::Lr,
            ModelArg::Tree => ModelKind::Tree,
            ModelArg::Mlp => ModelKind::Mlp,
            ModelArg::Cnn => ModelKind::Cnn,
            ModelArg::Lstm => ModelKind::Lstm,
            ModelArg::Gru => ModelKind::Gru,
            ModelArg::Cnn2d => ModelKind::Cnn2d,
        }
    }
}

/// Parallelism and engine run options.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Cores the fit may use (default: all): the spark engine's worker threads over partitions,
    /// the tensor engine's thread pool (its replicas and its tensor operations). Equal --workers
    /// gives both paradigms equal CPU.
    #[arg(long)]
    pub workers: Option<usize>,
    /// tensor: replicas each global batch is split over (default: one per worker). Replicas sum
    /// their gradients, so the weights do not depend on their number.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// spark: partitions of the training rows (default: 2 per worker). Fix it to compare worker
    /// counts on identical partitions.
    #[arg(long)]
    pub partitions: Option<usize>,
    /// Arithmetic of the forward and backward passes. tensor: f32 (default), bf16 or f16 (mixed,
    /// weights kept in f32). spark mlp (with `train`; in studies --param spark.mlp.precision=):
    /// f64 (default, MLlib's) or f32.
    #[arg(long)]
    pub precision: Option<String>,
    /// tensor: cpu (Burn's flex backend) or gpu (Vulkan; needs the `gpu` build feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// tensor: write TensorBoard event files under this folder.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// tensor: save a checkpoint here after every epoch.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// tensor: continue from the checkpoint in --checkpoint-dir.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// spark: train on real Spark MLlib through the Spark Connect server at sc://HOST:PORT.
    /// Spark reads --data itself (a path the cluster can read: local, HDFS, S3), splits it with
    /// randomSplit (not stratified) and preprocesses it with its own ML stages.
    #[arg(long, value_name = "sc://HOST:PORT")]
    pub spark_remote: Option<String>,
}

impl RunArgs {
    /// The run context: cores, partitions, replicas and `seed`.
    pub fn context(&self, seed: u64) -> RunContext {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        RunContext {
            partitions: self.partitions.unwrap_or(0),
            replicas: self.replicas.unwrap_or(0),
            ..RunContext::new(self.workers.unwrap_or(cores), seed)
        }
    }

    /// The tensor engine's options.
    pub fn tensor_options(&self) -> Result<TrainOptions> {
        Ok(TrainOptions {
            precision: Precision::parse(self.precision.as_deref().unwrap_or("f32"))?,
            backend: Backend::parse(&self.device)?,
            tensorboard: self.tensorboard.clone(),
            checkpoint_dir: self.checkpoint_dir.clone(),
            resume: self.resume,
        })
    }
}

/// Model parameters (MLlib's names in snake case); each applies to the models noted.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelParams {
    /// lr, mlp: at most this many iterations [100].
    #[arg(long)]
    pub max_iter: Option<usize>,
    /// lr, mlp: convergence tolerance [1e-6].
    #[arg(long)]
    pub tol: Option<f64>,
    /// lr: regularization strength [0].
    #[arg(long)]
    pub reg_param: Option<f64>,
    /// lr: L1 share of the regularization, 0..1 [0].
    #[arg(long)]
    pub elastic_net_param: Option<f64>,
    /// lr: fit an intercept [true].
    #[arg(long)]
    pub fit_intercept: Option<bool>,
    /// lr: standardize features before fitting [true].
    #[arg(long)]
    pub standardization: Option<bool>,
    /// tree: maximum depth [5].
    #[arg(long)]
    pub max_depth: Option<usize>,
    /// tree: bins per continuous feature [32].
    #[arg(long)]
    pub max_bins: Option<usize>,
    /// tree: minimum rows per child [1].
    #[arg(long)]
    pub min_instances_per_node: Option<usize>,
    /// tree: minimum information gain of a split [0].
    #[arg(long)]
    pub min_info_gain: Option<f64>,
    /// tree: gini or entropy [gini].
    #[arg(long)]
    pub impurity: Option<String>,
    /// mlp: hidden layer sizes, comma-separated [spark 64,64; tensor 128,128].
    #[arg(long)]
    pub hidden: Option<String>,
    /// mlp: l-bfgs or gd [l-bfgs].
    #[arg(long)]
    pub solver: Option<String>,
    /// mlp: gd step size [0.03].
    #[arg(long)]
    pub step_size: Option<f64>,
    /// mlp: rows stacked per block [128].
    #[arg(long)]
    pub block_size: Option<usize>,
    /// tensor: passes over the training rows [10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// tensor: rows per global batch [32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// tensor: adam, adamw or sgd [adam].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// tensor: learning rate [adam/adamw 0.001, sgd 0.01].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// tensor: sgd momentum [0].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// tensor: adamw weight decay [0.004].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// tensor: constant, step or cosine [constant].
    #[arg(long)]
    pub lr_schedule: Option<String>,
    /// tensor: step schedule, epochs between decays [10].
    #[arg(long)]
    pub lr_step_epochs: Option<usize>,
    /// tensor: step schedule, factor per decay [0.1].
    #[arg(long)]
    pub lr_gamma: Option<f64>,
    /// tensor: early stopping after this many epochs without a better validation loss; restores
    /// the best weights [0 = off].
    #[arg(long)]
    pub patience: Option<usize>,
    /// tensor: weight classes inversely to their frequency [false].
    #[arg(long)]
    pub balanced_class_weights: Option<bool>,
    /// tensor: dropout rate after hidden dense layers [0].
    #[arg(long)]
    pub dropout: Option<f64>,
    /// tensor: relu, tanh, sigmoid, gelu or linear [relu].
    #[arg(long)]
    pub activation: Option<String>,
    /// cnn, cnn2d: convolution filters per layer [32,64].
    #[arg(long)]
    pub filters: Option<String>,
    /// cnn, cnn2d: dense layers after flattening [cnn 64; cnn2d 128].
    #[arg(long)]
    pub dense: Option<String>,
    /// cnn, cnn2d: convolution kernel size [3].
    #[arg(long)]
    pub kernel_size: Option<usize>,
    /// cnn, cnn2d: max-pooling size [2].
    #[arg(long)]
    pub pool_size: Option<usize>,
    /// lstm, gru: recurrent units [64].
    #[arg(long)]
    pub units: Option<usize>,
    /// lstm, gru: values per time step; each row is its features cut into steps of this many,
    /// oldest first (what `trainbench windows` writes) [1].
    #[arg(long)]
    pub step_features: Option<usize>,
    /// cnn2d: image shape HxW or HxWxC of the pixel columns [square, 1 channel].
    #[arg(long)]
    pub image_shape: Option<String>,
    /// tensor: TensorBoard batch-loss scalar every this many steps [100; 0 = epochs only].
    #[arg(long)]
    pub log_every_steps: Option<usize>,
}

impl ModelParams {
    /// The parameters the user set, by name.
    pub fn to_map(&self) -> ParamMap {
        let mut p = ParamMap::new();
        let mut set = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                p.0.insert(name.to_owned(), v);
            }
        };
        set("max_iter", self.max_iter.map(|v| v.to_string()));
        set("tol", self.tol.map(|v| v.to_string()));
        set("reg_param", self.reg_param.map(|v| v.to_string()));
        set("elastic_net_param", self.elastic_net_param.map(|v| v.to_string()));
        set("fit_intercept", self.fit_intercept.map(|v| v.to_string()));
        set("standardization", self.standardization.map(|v| v.to_string()));
        set("max_depth", self.max_depth.map(|v| v.to_string()));
        set("max_bins", self.max_bins.map(|v| v.to_string()));
        set("min_instances_per_node", self.min_instances_per_node.map(|v| v.to_string()));
        set("min_info_gain", self.min_info_gain.map(|v| v.to_string()));
        set("impurity", self.impurity.clone());
        set("hidden", self.hidden.clone());
        set("solver", self.solver.clone());
        set("step_size", self.step_size.map(|v| v.to_string()));
        set("block_size", self.block_size.map(|v| v.to_string()));
        set("epochs", self.epochs.map(|v| v.to_string()));
        set("batch_size", self.batch_size.map(|v| v.to_string()));
        set("optimizer", self.optimizer.clone());
        set("learning_rate", self.learning_rate.map(|v| v.to_string()));
        set("momentum", self.momentum.map(|v| v.to_string()));
        set("weight_decay", self.weight_decay.map(|v| v.to_string()));
        set("lr_schedule", self.lr_schedule.clone());
        set("lr_step_epochs", self.lr_step_epochs.map(|v| v.to_string()));
        set("lr_gamma", self.lr_gamma.map(|v| v.to_string()));
        set("patience", self.patience.map(|v| v.to_string()));
        set("balanced_class_weights", self.balanced_class_weights.map(|v| v.to_string()));
        set("dropout", self.dropout.map(|v| v.to_string()));
        set("activation", self.activation.clone());
        set("filters", self.filters.clone());
        set("dense", self.dense.clone());
        set("kernel_size", self.kernel_size.map(|v| v.to_string()));
        set("pool_size", self.pool_size.map(|v| v.to_string()));
        set("units", self.units.map(|v| v.to_string()));
        set("step_features", self.step_features.map(|v| v.to_string()));
        set("image_shape", self.image_shape.clone());
        set("log_every_steps", self.log_every_steps.map(|v| v.to_string()));
        p
    }
}

/// The engine behind `--engine`, with its run options.
pub fn engine(which: EngineArg, run: &RunArgs) -> Result<Box<dyn Engine>> {
    Ok(match which {
        EngineArg::Spark => Box::new(SparkEngine),
        EngineArg::Tensor => Box::new(TensorEngine::new(run.tensor_options()?)),
    })
}

pub fn run(args: TrainArgs) -> Result<()> {
    if let Some(remote) = &args.run.spark_remote {
        if args.engine != EngineArg::Spark {
            bail!("--spark-remote trains the spark engine's models; drop it or use --engine spark");
        }
        return run_on_cluster(&args, remote);
    }
    let options = args.prep.to_options(&args.load)?;
    let ctx = args.run.context(args.prep.seed);
    let spec = ModelSpec { kind: args.model.kind(), params: spark_params(&args)? };
    let engine = engine(args.engine, &args.run)?;

    let mut timers = PhaseTimers::new();
    let spinner = output::spinner(&format!("preparing {}", args.data.display()), args.json);
    let data = prepare(&args.data, &options, &mut timers)?;
    if !data.quarantine.is_empty() {
        write_quarantine(&args.prep.quarantine, &data.quarantine)
            .with_context(|| format!("cannot write {}", args.prep.quarantine.display()))?;
    }
    spinner.set_message(format!("training {} {} on {} rows", engine.name(), spec.kind.name(), data.train.rows()));
    let prepare_peak = trainbench_metrics::process_peak_rss();
    let outcome =
        runner::fit_and_score(engine.as_ref(), &spec, (&data.train, &data.valid, &data.test), &ctx, prepare_peak)?;
    spinner.finish_and_clear();
    timers.add(Phase::Fit, Duration::from_secs_f64(outcome.fit_seconds));
    timers.add(Phase::Predict, Duration::from_secs_f64(outcome.predict_seconds));
    let runner::RunOutcome { model, log, report, fit_resources, process_peak_rss_bytes, .. } = outcome;
    if let Some(path) = &args.save {
        let saved = SavedModel {
            format: SavedModel::FORMAT,
            engine: engine.name().to_owned(),
            spec: spec.clone(),
            preprocessor: data.preprocessor.clone(),
            state: model.to_json(),
            log: log.clone(),
        };
        saved.save(path)?;
    }
    let fit_seconds = timers.seconds(Phase::Fit).unwrap_or(0.0);
    // L-BFGS's passes over the data (one per iteration, more when the line search needs them).
    let evaluations = log.entries.last().and_then(|e| e.extra.get("evaluations")).map(|&n| n as u64);
    if args.json {
        let value = with_scores(
            &report,
            json!({
                "engine": engine.name(),
                "model": spec.kind.name(),
                "params": spec.params.0,
                "workers": ctx.workers,
                "replicas": (engine.name() == "tensor").then(|| ctx.replicas_or_workers()),
                "partitions": (engine.name() == "spark").then(|| ctx.partitions_or_default()),
                "train_rows": data.train.rows(),
                "test_rows": data.test.rows(),
                "features": data.train.n_features,
                "fit_seconds": fit_seconds,
                "fit_cpu_seconds": fit_resources.cpu_seconds,
                "cpu_cores_used": fit_resources.cpu_seconds / fit_seconds.max(1e-9),
                "peak_rss_bytes": fit_resources.peak_rss_bytes,
                "process_peak_rss_bytes": process_peak_rss_bytes,
                "eval_seconds": log.eval_seconds,
                "rows_per_second": data.train.rows() as f64 / fit_seconds.max(1e-9),
                "iterations": log.entries.len(),
                "evaluations": evaluations,
                "epoch_seconds": log.entries.iter().filter_map(|e| e.extra.get("epoch_seconds")).collect::<Vec<_>>(),
                "stop_reason": log.stop_reason,
                "resumed_epochs": log.resumed_epochs,
                "phase_seconds": timers.iter().map(|(p, s)| (p.name(), s)).collect::<std::collections::BTreeMap<_, _>>(),
                "classes": data.test.class_names,
                "per_class": report.per_class,
                "confusion": report.confusion.counts,
                "log": log.entries,
                "saved": args.save,
            }),
        );
        println!("{value}");
        return Ok(());
    }
    println!(
        "{} {} on {} train / {} test rows, {} features, {} workers{}",
        engine.name(),
        spec.kind.name(),
        data.train.rows(),
        data.test.rows(),
        data.train.n_features,
        ctx.workers,
        if engine.name() == "tensor" {
            format!(", {} replicas", ctx.replicas_or_workers())
        } else {
            format!(", {} partitions", ctx.partitions_or_default())
        }
    );
    if let Some(epochs) = log.resumed_epochs {
        println!("resumed after epoch {epochs} from the checkpoint");
    }
    println!(
        "fit {fit_seconds:.2} s ({} {}{}, {}), {:.0} rows/s, CPU {:.2} s ({:.2} cores), peak memory {} in the fit, {} in all",
        log.entries.len(),
        match (spec.kind, engine.name()) {
            (ModelKind::Tree, _) => "levels",
            (_, "tensor") => "epochs",
            _ => "iterations",
        },
        evaluations.map_or(String::new(), |n| format!(", {n} passes over the data")),
        log.stop_reason,
        data.train.rows() as f64 / fit_seconds.max(1e-9),
        fit_resources.cpu_seconds,
        fit_resources.cpu_seconds / fit_seconds.max(1e-9),
        output::bytes(fit_resources.peak_rss_bytes),
        output::bytes(process_peak_rss_bytes)
    );
    println!();
    let (header, row) = score_cells(&report);
    output::print_table(&header, &[row]);
    println!();
    let rows: Vec<Vec<String>> = data
        .test
        .class_names
        .iter()
        .zip(&report.per_class)
        .zip(&report.confusion.counts)
        .map(|((name, s), counts)| {
            let mut row = vec![
                name.clone(),
                format!("{:.4}", s.precision),
                format!("{:.4}", s.recall),
                format!("{:.4}", s.f1),
                s.support.to_string(),
            ];
            row.extend(counts.iter().map(|c| c.to_string()));
            row
        })
        .collect();
    let mut header: Vec<String> = ["class", "precision", "recall", "F1", "support"].map(String::from).to_vec();
    header.extend(data.test.class_names.iter().map(|c| format!("→{c}")));
    output::print_table(&header.iter().map(String::as_str).collect::<Vec<_>>(), &rows);
    if let Some(path) = &args.save {
        println!("\nsaved to {}", path.display());
    }
    Ok(())
}

/// The model parameters, with `--precision` as the spark MLP's `precision` parameter (the
/// tensor engine takes it as a run option instead).
fn spark_params(args: &TrainArgs) -> Result<ParamMap> {
    let mut params = args.params.to_map();
    if let (EngineArg::Spark, Some(p)) = (args.engine, &args.run.precision) {
        if args.model != ModelArg::Mlp {
            bail!(
                "--precision {p}: the spark engine's {} computes in f64, as MLlib; only its mlp has an f32 option",
                args.model.kind().name()
            );
        }
        params.0.insert("precision".into(), p.clone());
    }
    Ok(params)
}

/// `train --engine spark --spark-remote URL`: the model is trained by Spark MLlib on the cluster.
fn run_on_cluster(args: &TrainArgs, remote: &str) -> Result<()> {
    if args.save.is_some() {
        bail!("--save works with the embedded engines; a model trained through --spark-remote stays on the cluster");
    }
    let spec = ModelSpec { kind: args.model.kind(), params: args.params.to_map() };
    let (kind, params) = (spec.kind, &spec.params);
    let spinner = output::spinner(&format!("training spark {} on {remote}", kind.name()), args.json);
    let o = cluster::fit_on_cluster(remote, &args.data, &args.load, &args.prep, &spec, args.prep.seed, 1.0)?;
    spinner.finish_and_clear();
    let (report, info) = (&o.report, &o.info);
    let peak = o.server_fit_resources.as_ref().map(|r| r.peak_rss_bytes);
    if args.json {
        let value = with_scores(
            report,
            json!({
                "engine": "spark",
                "model": kind.name(),
                "params": params.0,
                "spark_remote": remote,
                "spark_version": info.spark_version,
                "label": o.label,
                "train_rows": o.train_rows,
                "test_rows": info.test_rows,
                "unlabeled_rows": info.unlabeled_rows,
                "features": o.features,
                "spark_accuracy": info.spark_accuracy,
                "spark_f1_weighted": info.spark_f1_weighted,
                "fit_seconds": o.fit_seconds,
                "iterations": o.iterations,
                "fit_cpu_seconds": o.server_fit_resources.as_ref().map(|r| r.cpu_seconds),
                "peak_rss_bytes": peak,
                "phase_seconds": {
                    "read": info.read_seconds,
                    "preprocess": info.preprocess_seconds,
                    "fit": o.fit_seconds,
                    "predict": o.predict_seconds,
                },
                "classes": o.classes,
                "per_class": report.per_class,
                "confusion": report.confusion.counts,
            }),
        );
        println!("{value}");
        return Ok(());
    }
    println!(
        "spark {} on Spark {} at {remote}: {} train / {} test rows (Spark's randomSplit), {} features{}",
        kind.name(),
        info.spark_version,
        o.train_rows,
        info.test_rows,
        o.features,
        if info.unlabeled_rows > 0 {
            format!(", {} rows without a label dropped", info.unlabeled_rows)
        } else {
            String::new()
        }
    );
    println!(
        "read {:.2} s, preprocess {:.2} s, fit {:.2} s, predict {:.2} s{}",
        info.read_seconds,
        info.preprocess_seconds,
        o.fit_seconds,
        o.predict_seconds,
        match &o.server_fit_resources {
            Some(r) => format!(
                "; server during the fit: CPU {:.1} s, peak memory {}",
                r.cpu_seconds,
                output::bytes(r.peak_rss_bytes)
            ),
            None => String::new(),
        }
    );
    println!();
    let (mut header, mut row) = score_cells(report);
    header.extend(["Spark's accuracy", "Spark's weighted F1"]);
    row.extend([format!("{:.4}", info.spark_accuracy), format!("{:.4}", info.spark_f1_weighted)]);
    output::print_table(&header, &[row]);
    Ok(())
}

/// `value` (a JSON object) with the test scores every `train --json` object has, embedded or on
/// a cluster.
fn with_scores(report: &ClassificationReport, mut value: serde_json::Value) -> serde_json::Value {
    let scores = json!({
        "accuracy": report.accuracy,
        "precision_macro": report.macro_avg.precision,
        "recall_macro": report.macro_avg.recall,
        "f1_macro": report.macro_avg.f1,
        "f1_weighted": report.weighted_avg.f1,
        "roc_auc": report.roc_auc,
        "log_loss": report.log_loss,
    });
    if let (Some(object), serde_json::Value::Object(scores)) = (value.as_object_mut(), scores) {
        object.extend(scores);
    }
    value
}

/// The header and the row of the scores table `train` prints.
fn score_cells(report: &ClassificationReport) -> (Vec<&'static str>, Vec<String>) {
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
    let header = vec!["accuracy", "precision", "recall", "F1", "AUC", "log-loss"];
    let row = vec![
        format!("{:.4}", report.accuracy),
        format!("{:.4}", report.macro_avg.precision),
        format!("{:.4}", report.macro_avg.recall),
        format!("{:.4}", report.macro_avg.f1),
        fmt(report.roc_auc),
        fmt(report.log_loss),
    ];
    (header, row)
}
