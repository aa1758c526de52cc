//! `trainbench train`: one engine, one model, scored on held-out rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use trainbench_data::{prepare, write_quarantine};
use trainbench_engine::{EngineKind, ModelKind, ModelSpec, Params, SavedModel, TrainLog};
use trainbench_metrics::{ClassScores, ClassificationReport, Phase, PhaseTimers};

use crate::args::{LoadArgs, ModelArgs, PrepArgs, RunArgs, choice};
use crate::progress::LiveProgress;
use crate::results::{RunRecord, RunStatus};
use crate::runner::{RunFailed, RunPlan};
use crate::{cluster, engines, mlflow, output, processes, runner};

/// Train one model with one engine and print its metrics on the test rows.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Which paradigm trains the model.
    #[arg(long, default_value = "spark", value_parser = choice::<EngineKind>(EngineKind::NAMES))]
    pub engine: EngineKind,
    /// The model: lr, tree, mlp (spark); mlp, cnn, lstm, gru, cnn2d (tensor).
    #[arg(long, value_parser = choice::<ModelKind>(ModelKind::NAMES))]
    pub model: ModelKind,
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
    pub params: ModelArgs,
    /// Save the model, with its fitted preprocessor, to this file (with --spark-remote: Spark's
    /// fitted stages and model, read back and checked against Spark's probabilities).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print no training progress (the per-epoch and per-iteration lines, the bars); the
    /// results still print.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What `train --json` prints: the run's record, as `results.json` holds a run, and what only
/// a single run shows.
#[derive(Serialize)]
struct TrainOutput<'a> {
    #[serde(flatten)]
    run: &'a RunRecord,
    test_rows: usize,
    features: usize,
    classes: &'a [String],
    /// Per-class precision, recall, F1 and support.
    per_class: &'a [ClassScores],
    /// Load, clean, preprocess, fit and predict seconds.
    phase_seconds: BTreeMap<&'static str, f64>,
    /// The label column (a cluster run: the one Spark used).
    label: Option<String>,
    saved: Option<&'a PathBuf>,
    /// A cluster run saved: the read-back model against Spark's probabilities on test rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    read_back: Option<cluster::ReadBackCheck>,
}

/// The model's parameters: the flags given, and `--precision` as the spark MLP's `precision`
/// (the tensor engine takes it as a run option instead).
fn model_spec(args: &TrainArgs) -> Result<ModelSpec> {
    let mut params: Params = args.params.to_params();
    if let (EngineKind::Spark, Some(p)) = (args.engine, args.run.precision) {
        if args.model != ModelKind::Mlp {
            bail!(
                "--precision {p}: the spark engine's {} computes in f64, as MLlib; only its mlp has an f32 option",
                args.model.name()
            );
        }
        params.set("precision", p);
    }
    Ok(ModelSpec { kind: args.model, params })
}

pub fn run(args: TrainArgs) -> Result<()> {
    args.engine.check_model(args.model)?;
    let spec = model_spec(&args)?;
    processes::check_local(args.run.spark_remote.as_deref())?;
    // Connected before any work, so a wrong address fails now, not after the training.
    let tracker = args.run.tracking.tracker()?;
    let start_ms = mlflow::now_ms();
    if let Some(remote) = &args.run.spark_remote {
        if args.engine != EngineKind::Spark {
            bail!("--spark-remote trains the spark engine's models; drop it or use --engine spark");
        }
        return run_on_cluster(&args, &spec, remote, tracker.as_ref().map(|t| (t, start_ms)));
    }
    let options = args.prep.to_options(&args.load)?;
    let engine = engines::build(args.engine, &args.run);
    let mut timers = PhaseTimers::new();
    let spinner = output::spinner(&format!("preparing {}", args.data.display()), args.json);
    let data = prepare(&args.data, &options, &mut timers)?;
    // Under mpirun, rank 0 alone writes files.
    let primary = trainbench_engine::collective::is_primary();
    if primary && !data.quarantine.is_empty() {
        write_quarantine(&args.prep.quarantine, &data.quarantine)
            .with_context(|| format!("cannot write {}", args.prep.quarantine.display()))?;
    }
    spinner.set_message(format!("training {} {} on {} rows", args.engine.name(), spec.kind.name(), data.train.rows()));
    let plan = RunPlan {
        id: format!("{}/{}/seed{}", args.engine.name(), spec.kind.name(), args.prep.seed),
        engine: args.engine,
        spec: &spec,
        ctx: args.run.context(args.prep.seed),
        precision: args.run.precision_of(args.engine, &spec.params),
        sweep: None,
    };
    let prepare_peak = trainbench_metrics::process_peak_rss();
    let progress = LiveProgress::new("", spinner.clone(), !args.json && !args.quiet);
    let trained =
        runner::fit_and_score(engine.as_ref(), &plan, (&data.train, &data.valid, &data.test), prepare_peak, &progress)
            .with_context(|| format!("{} {} did not train", args.engine.name(), spec.kind.name()))?;
    spinner.finish_and_clear();
    let record = &trained.record;
    timers.add(Phase::Fit, Duration::from_secs_f64(record.fit_seconds));
    timers.add(Phase::Predict, Duration::from_secs_f64(record.predict_seconds));
    if let Some(path) = args.save.as_ref().filter(|_| primary) {
        let saved = SavedModel {
            format: SavedModel::FORMAT,
            engine: args.engine.name().to_owned(),
            spec: spec.clone(),
            preprocessor: data.preprocessor.clone(),
            state: trained.model.to_json().map_err(|e| RunFailed(format!("cannot save the model: {e}")))?,
            log: trained.log.clone(),
        };
        saved.save(path)?;
    }
    let output = TrainOutput {
        run: record,
        test_rows: data.test.rows(),
        features: data.train.n_features,
        classes: &data.test.class_names,
        per_class: &trained.report.per_class,
        phase_seconds: timers.iter().map(|(p, s)| (p.name(), s)).collect(),
        label: None,
        saved: args.save.as_ref(),
        read_back: None,
    };
    // Printed whatever MLflow answers; its failure is the command's error after.
    let tracked = tracker.as_ref().map_or(Ok(()), |t| track(t, &output, start_ms, args.save.as_deref()));
    if args.json {
        println!("{}", serde_json::to_string(&output)?);
        return tracked;
    }
    print_run(&output, &trained.report);
    if let Some(path) = &args.save {
        println!("\nsaved to {}", path.display());
    }
    tracked
}

/// The text report of a run: what ran on what, the fit, the scores, per class.
fn print_run(o: &TrainOutput, report: &ClassificationReport) {
    let r = o.run;
    let how = match (r.cluster.as_ref(), r.replicas, r.partitions) {
        (Some(c), ..) => format!("on Spark {} at {} (Spark's randomSplit)", c.spark_version, c.remote),
        (None, Some(replicas), _) => format!("{} workers, {replicas} replicas", r.workers),
        (None, None, Some(partitions)) => format!("{} workers, {partitions} partitions", r.workers),
        (None, None, None) => format!("{} workers", r.workers),
    };
    let how = if r.processes > 1 { format!("{} processes × ({how} each)", r.processes) } else { how };
    println!(
        "{} {} on {} train / {} test rows, {} features, {how}",
        r.engine, r.model, r.train_rows, o.test_rows, o.features
    );
    if let Some(seconds) = r.communication_seconds {
        println!("exchanging with the other processes: {seconds:.3} s of the fit (rank 0, waiting included)");
    }
    if let Some(epochs) = r.resumed_epochs {
        println!("resumed after epoch {epochs} from the checkpoint");
    }
    let unit = match (r.model.as_str(), r.engine.as_str()) {
        ("tree", _) => "levels",
        (_, "tensor") => "epochs",
        _ => "iterations",
    };
    println!(
        "fit {:.2} s ({} {unit}{}, {}), {:.0} rows/s, CPU {:.2} s ({:.2} cores), peak memory {} in the fit, {} in all",
        r.fit_seconds,
        r.iterations,
        r.evaluations.map_or(String::new(), |n| format!(", {n} passes over the data")),
        r.stop_reason,
        r.rows_per_second,
        r.cpu_seconds,
        r.mean_cpu_percent / 100.0,
        output::bytes(r.peak_rss_bytes),
        output::bytes(r.process_peak_rss_bytes)
    );
    println!();
    let (mut header, mut row) = score_cells(report);
    if let Some(c) = &r.cluster {
        header.extend(["Spark's accuracy", "Spark's weighted F1"]);
        row.extend([format!("{:.4}", c.spark_accuracy), format!("{:.4}", c.spark_f1_weighted)]);
    }
    output::print_table(&header, &[row]);
    println!();
    let rows: Vec<Vec<String>> = o
        .classes
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
    header.extend(o.classes.iter().map(|c| format!("→{c}")));
    output::print_table(&header.iter().map(String::as_str).collect::<Vec<_>>(), &rows);
}

/// `train --engine spark --spark-remote URL`: the model is trained by Spark MLlib on the cluster.
fn run_on_cluster(
    args: &TrainArgs,
    spec: &ModelSpec,
    remote: &str,
    tracker: Option<(&mlflow::Tracker, i64)>,
) -> Result<()> {
    let spinner = output::spinner(&format!("training spark {} on {remote}", spec.kind.name()), args.json);
    let plan = RunPlan {
        id: format!("spark/{}/seed{}", spec.kind.name(), args.prep.seed),
        engine: EngineKind::Spark,
        spec,
        ctx: args.run.context(args.prep.seed),
        precision: trainbench_engine::Precision::F64,
        sweep: None,
    };
    let mut o = cluster::fit_on_cluster(
        remote,
        &args.data,
        &args.load,
        &args.prep,
        spec,
        args.prep.seed,
        1.0,
        args.save.is_some(),
    )?;
    spinner.finish_and_clear();
    let mut record = plan.record(o.train_rows);
    let read_back = match (&args.save, o.read_back.take()) {
        (Some(path), Some(model)) => {
            let saved = SavedModel {
                format: SavedModel::FORMAT,
                engine: EngineKind::Spark.name().to_owned(),
                spec: spec.clone(),
                preprocessor: model.preprocessor,
                state: model.state,
                log: TrainLog {
                    fit_seconds: o.fit_seconds,
                    stop_reason: "fitted by Spark MLlib".into(),
                    ..TrainLog::default()
                },
            };
            saved.save(path)?;
            Some(model.check)
        }
        _ => None,
    };
    let report = o.report.clone();
    let (label, classes, features, test_rows) = (o.label.clone(), o.classes.clone(), o.features, o.info.test_rows);
    let phases = BTreeMap::from([
        ("read", o.info.read_seconds),
        ("preprocess", o.info.preprocess_seconds),
        ("fit", o.fit_seconds),
        ("predict", o.predict_seconds),
    ]);
    cluster::fill_record(&mut record, o);
    let output = TrainOutput {
        run: &record,
        test_rows,
        features,
        classes: &classes,
        per_class: &report.per_class,
        phase_seconds: phases,
        label: Some(label),
        saved: args.save.as_ref(),
        read_back,
    };
    let tracked = tracker.map_or(Ok(()), |(t, start_ms)| track(t, &output, start_ms, args.save.as_deref()));
    if args.json {
        println!("{}", serde_json::to_string(&output)?);
        return tracked;
    }
    print_run(&output, &report);
    if let (Some(path), Some(check)) = (&args.save, read_back) {
        println!(
            "\nsaved to {} (read back from Spark: on {} test rows its probabilities are Spark's within {:.1e})",
            path.display(),
            check.rows,
            check.max_gap
        );
    }
    tracked
}

/// Logs the run to MLflow: its parameters, log and scores, and as artifacts what `--json` prints
/// (`run.json`) and the saved model.
fn track(tracker: &mlflow::Tracker, output: &TrainOutput, start_ms: i64, saved: Option<&Path>) -> Result<()> {
    let logged = || -> Result<()> {
        let run = tracker.log_record(output.run, start_ms, None)?;
        tracker.upload_bytes(&run, serde_json::to_string_pretty(output)?.as_bytes(), "run.json")?;
        if let Some(path) = saved {
            let name = path.file_name().map_or("model.json".into(), |n| n.to_string_lossy().into_owned());
            tracker.upload(&run, path, &format!("model/{name}"))?;
        }
        tracker.end_run(&run, output.run.status == RunStatus::Ok, mlflow::now_ms())
    };
    logged().map_err(|e| RunFailed(format!("the run trained, but logging it to MLflow failed: {e:#}")).into())
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
