//! `trainbench tune`: grid or random search over one model's parameters, scored on the
//! validation rows or by stratified k-fold over the training rows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;
use trainbench_data::{Prepared, prepare, stratified_kfold};
use trainbench_engine::{EngineKind, ModelKind, ModelSpec, ParamMap};
use trainbench_metrics::{Metric, PhaseTimers};

use crate::args::{LoadArgs, PrepArgs, RunArgs, choice};
use crate::progress::LiveProgress;
use crate::results::RunRecord;
use crate::runner::{RunFailed, RunPlan};
use crate::{engines, mlflow, output, runner};

/// Search one model's parameters and print the trials and the best configuration.
#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Which paradigm trains the model.
    #[arg(long, default_value = "spark", value_parser = choice::<EngineKind>(EngineKind::NAMES))]
    pub engine: EngineKind,
    /// The model.
    #[arg(long, value_parser = choice::<ModelKind>(ModelKind::NAMES))]
    pub model: ModelKind,
    /// The data file.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub prep: PrepArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Values to try, as NAME=V1,V2,... (repeatable; the grid is every combination). For a
    /// list-valued parameter separate the values with '|': hidden=32|64,64.
    #[arg(long = "grid", value_name = "NAME=VALUES", required = true)]
    pub grid: Vec<String>,
    /// Try this many combinations drawn at random (seeded) instead of all of them.
    #[arg(long, value_name = "N")]
    pub random: Option<usize>,
    /// Score by stratified k-fold over the training rows instead of on the validation rows.
    #[arg(long, value_name = "K")]
    pub folds: Option<usize>,
    /// What to optimize.
    #[arg(long, default_value = "accuracy", value_parser = choice::<Metric>(Metric::NAMES))]
    pub metric: Metric,
    /// A parameter fixed for every trial, as NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print no training progress (the per-epoch and per-iteration lines, the bars); the
    /// results still print.
    #[arg(long, short)]
    pub quiet: bool,
}

/// One tried configuration: its parameters, score, and the run of each fold (the same record
/// `compare` keeps).
#[derive(Debug, Serialize)]
struct Trial {
    params: BTreeMap<String, String>,
    /// Mean score over folds (or the validation score).
    score: Option<f64>,
    fold_scores: Vec<f64>,
    fit_seconds: f64,
    error: Option<String>,
    runs: Vec<RunRecord>,
}

/// Every combination of the `--grid` values, in the order given (the last name varies fastest).
fn grid_points(grid: &[String]) -> Result<Vec<BTreeMap<String, String>>> {
    let mut points = vec![BTreeMap::new()];
    for g in grid {
        let (name, values) = g.split_once('=').with_context(|| format!("--grid '{g}' is not NAME=V1,V2,..."))?;
        let sep = if values.contains('|') { '|' } else { ',' };
        let values: Vec<&str> = values.split(sep).map(str::trim).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            bail!("--grid '{g}' has no values");
        }
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.insert(name.trim().to_owned(), (*v).to_owned());
                    q
                })
            })
            .collect();
    }
    Ok(points)
}

pub fn run(args: TuneArgs) -> Result<()> {
    if let Some(remote) = &args.run.spark_remote {
        bail!(
            "--spark-remote {remote}: tune searches with the embedded engines; cluster mode is in train, compare, scale and run"
        );
    }
    args.engine.check_model(args.model)?;
    let metric = args.metric;
    let mut points = grid_points(&args.grid)?;
    if let Some(n) = args.random {
        if n == 0 {
            bail!("--random must be at least 1");
        }
        points.shuffle(&mut ChaCha8Rng::seed_from_u64(args.prep.seed));
        points.truncate(n);
    }
    let mut fixed = BTreeMap::new();
    for p in &args.params {
        let (k, v) = p.split_once('=').with_context(|| format!("--param '{p}' is not NAME=VALUE"))?;
        fixed.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    // Connected before any work; the search is a parent run, each fit nested under it.
    let tracker = args.run.tracking.tracker()?;
    let parent = match &tracker {
        Some(t) => {
            Some(t.start_run(&format!("tune {}/{}", args.engine.name(), args.model.name()), mlflow::now_ms(), None)?)
        }
        None => None,
    };
    let mut options = args.prep.to_options(&args.load)?;
    if args.folds.is_none() && args.prep.valid_fraction == 0.0 {
        options.split.valid_fraction = 0.2;
    }
    let spinner = output::spinner(&format!("preparing {}", args.data.display()), args.json);
    let data = prepare(&args.data, &options, &mut PhaseTimers::new())?;
    spinner.finish_and_clear();
    // (training rows, validation rows) per fold; one pair without --folds.
    let splits: Vec<(Prepared, Prepared)> = match args.folds {
        Some(k) => stratified_kfold(&data.train.labels, data.train.classes(), k, args.prep.seed)?
            .into_iter()
            .map(|(t, v)| (data.train.take(&t), data.train.take(&v)))
            .collect(),
        None => vec![(data.train.clone(), data.valid.clone())],
    };
    let eng = engines::build(args.engine, &args.run);
    let ctx = args.run.context(args.prep.seed);
    let scored_on = match args.folds {
        Some(k) => format!("{k}-fold over {} training rows", data.train.rows()),
        None => format!("{} validation rows", data.valid.rows()),
    };
    if !args.json {
        println!(
            "{} trials of {} {}, {} on {scored_on}",
            points.len(),
            args.engine.name(),
            args.model.name(),
            metric.name()
        );
    }
    let bar = output::bar(points.len() as u64, "trials", args.json);
    let mut trials = Vec::new();
    // Whether any trial started and failed; if none did, every failure was in the input (an
    // unknown parameter, a bad value) and a failed search is a usage error.
    let mut run_failed = false;
    for point in points {
        let mut params = fixed.clone();
        params.extend(point);
        let spec = ModelSpec { kind: args.model, params: ParamMap(params.clone()).to_params() };
        let mut trial =
            Trial { params, score: None, fold_scores: Vec::new(), fit_seconds: 0.0, error: None, runs: Vec::new() };
        for (fold, (train, valid)) in splits.iter().enumerate() {
            let plan = RunPlan {
                id: format!("{}/{}/trial{}/fold{fold}", args.engine.name(), args.model.name(), trials.len() + 1),
                engine: args.engine,
                spec: &spec,
                ctx,
                precision: args.run.precision_of(args.engine, &spec.params),
                sweep: None,
            };
            let progress = LiveProgress::above(format!("{}: ", plan.id), bar.clone(), !args.json && !args.quiet);
            let start_ms = mlflow::now_ms();
            match runner::fit_and_score(eng.as_ref(), &plan, (train, valid, valid), 0, &progress) {
                Ok(t) => {
                    if let (Some(tracker), Some(parent)) = (&tracker, &parent) {
                        let run = tracker.log_record(&t.record, start_ms, Some(parent))?;
                        tracker.end_run(&run, true, mlflow::now_ms())?;
                    }
                    trial.fit_seconds += t.record.fit_seconds;
                    match metric.value(&t.report) {
                        Some(v) => trial.fold_scores.push(v),
                        None => trial.error = Some(format!("{} could not be computed", metric.name())),
                    }
                    trial.runs.push(t.record);
                }
                Err(e) => {
                    run_failed |= e.chain().any(|c| c.is::<RunFailed>());
                    trial.error = Some(format!("{e:#}"));
                }
            }
            if trial.error.is_some() {
                break;
            }
        }
        if trial.error.is_none() {
            trial.score = Some(trial.fold_scores.iter().sum::<f64>() / trial.fold_scores.len() as f64);
        }
        if !args.json {
            let params: Vec<String> = trial.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let result = match (&trial.score, &trial.error) {
                (Some(s), _) => format!("{s:.4}  fit {:.2} s", trial.fit_seconds),
                (_, Some(e)) => format!("FAILED: {e}"),
                _ => String::new(),
            };
            bar.suspend(|| println!("{:<3} {}  {result}", trials.len() + 1, params.join(" ")));
        }
        trials.push(trial);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let better = |a: f64, b: f64| if metric.higher_is_better() { a > b } else { a < b };
    let best =
        trials.iter().filter_map(|t| t.score.map(|s| (s, t))).fold(None::<(f64, &Trial)>, |acc, (s, t)| match acc {
            Some((b, _)) if !better(s, b) => acc,
            _ => Some((s, t)),
        });
    if let (Some(tracker), Some(parent)) = (&tracker, &parent) {
        let params = BTreeMap::from([
            ("engine".to_owned(), args.engine.name().to_owned()),
            ("model".to_owned(), args.model.name().to_owned()),
            ("metric".to_owned(), metric.name().to_owned()),
            ("scored_on".to_owned(), scored_on.clone()),
            ("grid".to_owned(), args.grid.join(" ")),
            ("trials".to_owned(), trials.len().to_string()),
        ]);
        let score = best.map(|(s, _)| (format!("best_{}", metric.name()), s, mlflow::now_ms(), 0));
        tracker.log(parent, &params, score.as_slice())?;
        if let Some((_, t)) = best {
            let text: Vec<String> = t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            tracker.tag(parent, "trainbench.best_params", &text.join(" "))?;
        }
        tracker.end_run(parent, best.is_some(), mlflow::now_ms())?;
    }
    if args.json {
        println!(
            "{}",
            json!({
                "engine": args.engine.name(),
                "model": args.model.name(),
                "metric": metric.name(),
                "scored_on": scored_on,
                "trials": trials,
                "best": best.map(|(s, t)| json!({"score": s, "params": t.params})),
            })
        );
    } else {
        match best {
            Some((s, t)) => {
                let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("\nbest: {}  ({} {s:.4})", params.join(" "), metric.name());
            }
            None => println!("\nevery trial failed"),
        }
    }
    if best.is_none() {
        let message = format!(
            "every trial failed; the first error: {}",
            trials.first().and_then(|t| t.error.clone()).unwrap_or_default()
        );
        return Err(if run_failed { RunFailed(message).into() } else { anyhow::anyhow!(message) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_every_combination_and_lists_use_bars() {
        let g = grid_points(&["max_depth=2,4".into(), "impurity=gini,entropy".into()]).unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[1]["impurity"], "entropy");
        assert_eq!(g[2]["max_depth"], "4");
        let h = grid_points(&["hidden=32|64,64".into()]).unwrap();
        assert_eq!(h.iter().map(|p| p["hidden"].as_str()).collect::<Vec<_>>(), ["32", "64,64"]);
        assert!(grid_points(&["max_depth".into()]).is_err());
        assert!(grid_points(&["max_depth=".into()]).is_err());
    }
}
