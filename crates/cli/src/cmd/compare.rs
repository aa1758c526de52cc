//! `trainbench compare` and `trainbench scale`: many runs on data prepared once, a table as runs
//! finish, and a report folder (results.json, metrics.csv, tensorboard/, report.html).

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use trainbench_data::{GenOptions, Generator, Prepared, PreparedData, generate, prepare, write_quarantine};
use trainbench_engine::{ModelKind, ModelSpec, ParamMap, RunContext};
use trainbench_metrics::PhaseTimers;

use crate::args::LoadArgs;
use crate::cmd::prepare::PrepArgs;
use crate::cmd::train::{EngineArg, RunArgs, engine};
use crate::cmd::tune::take_rows;
use crate::cmd::{cluster, runner};
use crate::output;
use crate::report::{self, DataInfo, Machine, Results, RunRecord, Scores, SweepPoint};

/// Rows of the built-in data set when `--data` is not given.
const DEFAULT_ROWS: u64 = 100_000;

/// What every study command shares: data, preparation, runs, parameters, output.
#[derive(Args, Debug)]
pub struct StudyArgs {
    /// The data file (CSV, Parquet, or IDX images). Without it, a generated HIGGS-like data set
    /// of --rows rows is written into the output folder and used.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Rows of the generated data set when --data is not given.
    #[arg(long, default_value_t = DEFAULT_ROWS)]
    pub rows: u64,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub prep: PrepArgs,
    /// The runs, as ENGINE:MODEL, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "spark:lr,spark:tree,spark:mlp,tensor:mlp,tensor:cnn,tensor:lstm"
    )]
    pub runs: Vec<String>,
    /// A model parameter, as [ENGINE.][MODEL.]NAME=VALUE (e.g. tensor.epochs=3, mlp.hidden=64,64,
    /// spark.lr.max_iter=50); repeatable. Unset parameters take each engine's defaults, except
    /// the study defaults listed in the README (equal-capacity MLPs, tensor epochs and batch).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Runs of each model with seeds seed, seed+1, ...; the answers give means and 95 % intervals
    /// and say when a difference is inside the noise of the seeds.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// The validation accuracy whose first reaching is timed for each model family both
    /// paradigms run (MLPerf's time to target). Default: the lower of the two paradigms' best
    /// validation accuracy minus 0.5 percentage points.
    #[arg(long, value_name = "ACCURACY")]
    pub target_accuracy: Option<f64>,
    /// The report folder.
    #[arg(long, value_name = "DIR", default_value = "trainbench-report")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    /// Print the results as one JSON object at the end instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `trainbench compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub study: StudyArgs,
}

/// `trainbench scale`.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Shares of the training rows, comma-separated; above 1, rows are resampled with
    /// replacement.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.25,0.5,1")]
    pub fractions: Vec<f64>,
    /// Worker counts (cores per run, for either engine), comma-separated (default: 1 up to the
    /// cores, doubling). Tensor runs split each batch over as many replicas unless --replicas says.
    #[arg(long, value_delimiter = ',')]
    pub workers_list: Vec<usize>,
}

/// Parameters the study sets unless the user does: the two MLPs get equal capacity, and the
/// tensor models a batch and epoch count that finish the default study in minutes.
const STUDY_DEFAULTS: &[(&str, &str)] =
    &[("mlp.hidden", "64,64"), ("tensor.epochs", "5"), ("tensor.batch_size", "128")];

/// One run to make.
#[derive(Debug, Clone)]
struct Planned {
    engine: EngineArg,
    spec: ModelSpec,
    sweep: Option<SweepPoint>,
}

fn parse_runs(runs: &[String]) -> Result<Vec<(EngineArg, ModelKind)>> {
    runs.iter()
        .map(|r| {
            let (e, m) = r.split_once(':').with_context(|| format!("run '{r}' is not ENGINE:MODEL (e.g. spark:lr)"))?;
            let engine = match e.trim() {
                "spark" => EngineArg::Spark,
                "tensor" => EngineArg::Tensor,
                other => bail!("unknown engine '{other}' in run '{r}' (spark or tensor)"),
            };
            let model =
                ModelKind::from_name(m.trim()).with_context(|| format!("unknown model '{}' in run '{r}'", m.trim()))?;
            Ok((engine, model))
        })
        .collect()
}

fn engine_name(e: EngineArg) -> &'static str {
    match e {
        EngineArg::Spark => "spark",
        EngineArg::Tensor => "tensor",
    }
}

/// The parameters of (engine, model): study defaults, then the user's `--param`s that apply.
fn params_for(engine: EngineArg, model: ModelKind, user: &[String]) -> Result<ParamMap> {
    let mut map = ParamMap::new();
    let (e, m) = (engine_name(engine), model.name());
    let mut apply = |key: &str, value: &str| -> Result<()> {
        let parts: Vec<&str> = key.split('.').collect();
        let (scope, name) = parts.split_at(parts.len() - 1);
        let applies = scope.iter().all(|s| *s == e || *s == m);
        let known = scope.iter().all(|s| ["spark", "tensor"].contains(s) || ModelKind::from_name(s).is_some());
        if !known {
            bail!("--param {key}: '{}' is not an engine or model name", scope.join("."));
        }
        if applies {
            map.0.insert(name[0].to_owned(), value.to_owned());
        }
        Ok(())
    };
    for (k, v) in STUDY_DEFAULTS {
        apply(k, v)?;
    }
    for p in user {
        let (k, v) = p.split_once('=').with_context(|| format!("--param '{p}' is not KEY=VALUE"))?;
        apply(k.trim(), v.trim())?;
    }
    // Study defaults that a model does not have (tensor epochs on... every tensor model has them)
    // are applied only where the scope matches, so nothing is left over.
    Ok(map)
}

/// Generates the built-in data set into `out` unless it is there already.
fn builtin_data(out: &Path, rows: u64, seed: u64, quiet: bool) -> Result<PathBuf> {
    let path = out.join(format!("higgs-like-{rows}.csv"));
    if !path.exists() {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let bar = output::bar(rows, "generating the built-in HIGGS-like data", quiet);
        generate(&path, &GenOptions { generator: Generator::HiggsLike, rows, seed }, &mut |d| bar.set_position(d))
            .with_context(|| format!("cannot generate {}", path.display()))?;
        bar.finish_and_clear();
    }
    Ok(path)
}

/// `rows` rows of `data`: a prefix of a seeded permutation, or draws with replacement above 1.
fn subsample(data: &Prepared, fraction: f64, seed: u64) -> Prepared {
    let n = data.labels.len();
    let want = ((n as f64 * fraction).round() as usize).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ca1e);
    let all: Vec<usize> = (0..n).collect();
    let rows: Vec<usize> = if want <= n {
        let mut order = all.clone();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
        order.truncate(want);
        order
    } else {
        (0..want).map(|_| *all.choose(&mut rng).unwrap_or(&0)).collect()
    };
    take_rows(data, &rows)
}

pub fn run_compare(args: CompareArgs) -> Result<()> {
    let plan = || -> Result<Vec<Planned>> {
        parse_runs(&args.study.runs)?
            .into_iter()
            .map(|(engine, kind)| {
                Ok(Planned {
                    engine,
                    spec: ModelSpec { kind, params: params_for(engine, kind, &args.study.params)? },
                    sweep: None,
                })
            })
            .collect()
    };
    run_study("compare", &args.study, &plan)
}

pub fn run_scale(args: ScaleArgs) -> Result<()> {
    if args.fractions.iter().any(|f| !(*f > 0.0 && f.is_finite())) {
        bail!("--fractions must be positive numbers");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: Vec<usize> = if args.workers_list.is_empty() {
        std::iter::successors(Some(1usize), |w| (w * 2 <= cores).then_some(w * 2)).collect()
    } else {
        args.workers_list.clone()
    };
    if workers.contains(&0) {
        bail!("--workers-list must be at least 1");
    }
    let max_workers = *workers.iter().max().unwrap_or(&1);
    let plan = || -> Result<Vec<Planned>> {
        let mut out = Vec::new();
        for (engine, kind) in parse_runs(&args.study.runs)? {
            let spec = ModelSpec { kind, params: params_for(engine, kind, &args.study.params)? };
            // Time against rows at the most workers; speedup against workers on all rows.
            for &fraction in &args.fractions {
                out.push(Planned {
                    engine,
                    spec: spec.clone(),
                    sweep: Some(SweepPoint { fraction, workers: max_workers }),
                });
            }
            // A cluster's workers are its own: runs through --spark-remote sweep rows only.
            let on_cluster = engine == EngineArg::Spark && args.study.run.spark_remote.is_some();
            for &w in workers.iter().filter(|&&w| !on_cluster && (w != max_workers || !args.fractions.contains(&1.0))) {
                out.push(Planned { engine, spec: spec.clone(), sweep: Some(SweepPoint { fraction: 1.0, workers: w }) });
            }
        }
        Ok(out)
    };
    run_study("scale", &args.study, &plan)
}

fn run_study(command: &str, study: &StudyArgs, plan: &dyn Fn() -> Result<Vec<Planned>>) -> Result<()> {
    if study.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if let Some(t) = study.target_accuracy
        && !(t > 0.0 && t <= 1.0)
    {
        bail!("--target-accuracy must be above 0 and at most 1, got {t}");
    }
    let quiet = study.json;
    let (path, generated) = match &study.data {
        Some(p) => (p.clone(), false),
        None => (builtin_data(&study.out, study.rows, study.prep.seed, quiet)?, true),
    };
    let mut prep = study.prep.to_options(&study.load)?;
    // Early stopping needs validation rows; a study holds out 10 % unless told otherwise.
    if study.prep.valid_fraction == 0.0 {
        prep.split.valid_fraction = 0.1;
    }
    let planned = plan()?;
    // With only cluster runs, Spark reads the file and the rows never pass through here.
    let remote = study.run.spark_remote.as_deref();
    let all_on_cluster = remote.is_some() && planned.iter().all(|p| p.engine == EngineArg::Spark);
    let mut timers = PhaseTimers::new();
    let started = Instant::now();
    let local = if all_on_cluster {
        None
    } else {
        let spinner = output::spinner(&format!("preparing {}", path.display()), quiet);
        let data = prepare(&path, &prep, &mut timers)?;
        spinner.finish_and_clear();
        if !data.quarantine.is_empty() {
            write_quarantine(&study.prep.quarantine, &data.quarantine)
                .with_context(|| format!("cannot write {}", study.prep.quarantine.display()))?;
        }
        Some(data)
    };
    let prepare_seconds = started.elapsed().as_secs_f64();
    // What loading and preparing took of the process's memory: part of each run's whole-process
    // peak, as if it had run alone.
    let prepare_peak = trainbench_metrics::process_peak_rss();
    let total = planned.len() * study.seeds;
    if !quiet {
        match &local {
            Some(data) => println!(
                "{command}: {total} runs on {} ({} train / {} valid / {} test rows, {} features), report in {}",
                path.display(),
                data.train.rows(),
                data.valid.rows(),
                data.test.rows(),
                data.train.n_features,
                study.out.display()
            ),
            None => println!("{command}: {total} runs on {}, report in {}", path.display(), study.out.display()),
        }
        if let Some(remote) = remote {
            println!(
                "spark runs on Spark through {remote}: Spark reads the file, splits it (randomSplit, not stratified) \
                 and preprocesses it itself"
            );
        }
    }
    let bars = MultiProgress::new();
    let overall = if quiet { ProgressBar::hidden() } else { bars.add(output::bar(total as u64, "runs", false)) };
    let header = [
        "engine", "model", "seed", "cores", "rows", "fit s", "iters", "s/epoch", "accuracy", "F1", "AUC", "CPU s",
        "busy", "peak fit", "peak all",
    ];
    if !quiet {
        bars.suspend(|| println!("{}", format_row(&header.map(String::from))));
    }
    let mut runs = Vec::new();
    for p in &planned {
        for k in 0..study.seeds {
            let seed = study.prep.seed + k as u64;
            let mut ctx = study.run.context(seed);
            if let Some(s) = p.sweep {
                ctx.workers = s.workers;
            }
            let sampled = match (p.sweep, &local) {
                (Some(s), Some(data)) if s.fraction != 1.0 => Some(subsample(&data.train, s.fraction, seed)),
                _ => None,
            };
            let local_data = local.as_ref().map(|d| (sampled.as_ref().unwrap_or(&d.train), d));
            let e = engine_name(p.engine);
            let id = match p.sweep {
                Some(s) => format!("{e}/{}/seed{seed}/x{}/w{}", p.spec.kind.name(), s.fraction, s.workers),
                None => format!("{e}/{}/seed{seed}", p.spec.kind.name()),
            };
            let spinner = if quiet {
                ProgressBar::hidden()
            } else {
                bars.insert_before(&overall, output::spinner(&format!("training {id}"), false))
            };
            let record = one_run(study, &path, p, &id, local_data, &ctx, prepare_peak);
            spinner.finish_and_clear();
            bars.remove(&spinner);
            if !quiet {
                bars.suspend(|| println!("{}", format_row(&table_row(&record))));
            }
            runs.push(record);
            overall.inc(1);
        }
    }
    overall.finish_and_clear();

    let comparisons = report::compare_families(&mut runs, study.target_accuracy);
    let results = Results {
        schema_version: report::SCHEMA_VERSION,
        command: command.to_owned(),
        created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        trainbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: env!("TRAINBENCH_GIT_COMMIT").to_owned(),
        crate_versions: env!("TRAINBENCH_CRATE_VERSIONS")
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        machine: Machine::current(),
        data: match &local {
            Some(data) => DataInfo {
                source: path.display().to_string(),
                generated,
                train_rows: data.train.rows(),
                valid_rows: data.valid.rows(),
                test_rows: data.test.rows(),
                features: data.train.n_features,
                classes: data.train.class_names.clone(),
                prepare_seconds,
            },
            // Spark's split, as the first cluster run that finished saw it.
            None => {
                let first = runs.iter().find_map(|r| Some((r, r.cluster.as_ref()?)));
                DataInfo {
                    source: path.display().to_string(),
                    generated,
                    train_rows: first.map_or(0, |(r, _)| r.train_rows),
                    valid_rows: 0,
                    test_rows: first.map_or(0, |(_, c)| c.test_rows),
                    features: first.map_or(0, |(_, c)| c.features),
                    classes: first.map_or_else(Vec::new, |(_, c)| c.classes.clone()),
                    prepare_seconds: first.map_or(0.0, |(_, c)| c.read_seconds + c.preprocess_seconds),
                }
            }
        },
        runs,
        comparisons,
    };
    report::write_all(&study.out, &results)?;
    if quiet {
        println!("{}", serde_json::to_string(&results)?);
        return Ok(());
    }
    let groups = report::groups(&results.runs);
    if study.seeds > 1 {
        println!("\nmeans over {} seeds (95 % intervals):", study.seeds);
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|g| {
                vec![
                    g.engine.clone(),
                    g.model.clone(),
                    g.sweep.map_or(String::new(), |s| format!("×{} rows, {} cores", s.fraction, s.workers)),
                    g.train_seconds.show(2),
                    g.time_to_target.map_or("-".to_owned(), |e| e.show(2)),
                    g.accuracy.show(4),
                    g.f1.show(4),
                    format!("{:.1}", g.cpu_seconds.mean),
                    output::bytes(g.peak_rss_bytes.mean as u64),
                ]
            })
            .collect();
        output::print_table(
            &["engine", "model", "sweep", "train s", "to target s", "accuracy", "F1", "CPU s", "peak fit"],
            &rows,
        );
    }
    println!();
    for (q, a) in report::answers(&results) {
        println!("{q}\n  {a}");
    }
    let failed = results.runs.iter().filter(|r| r.scores.is_none()).count();
    println!(
        "\nreport: {}{}",
        study.out.join("report.html").display(),
        if failed > 0 { format!(" ({failed} runs failed; see results.json)") } else { String::new() }
    );
    Ok(())
}

/// One run; `local` is (training rows, all prepared data), absent when every run is on the cluster.
fn one_run(
    study: &StudyArgs,
    data_path: &Path,
    p: &Planned,
    id: &str,
    local: Option<(&Prepared, &PreparedData)>,
    ctx: &RunContext,
    prepare_peak: u64,
) -> RunRecord {
    let e = engine_name(p.engine);
    let mut run_args = study.run.clone();
    if p.engine == EngineArg::Tensor && run_args.tensorboard.is_none() {
        run_args.tensorboard = Some(study.out.join("tensorboard").join(id.replace('/', "_")));
    }
    let mut record = RunRecord {
        id: id.to_owned(),
        engine: e.to_owned(),
        model: p.spec.kind.name().to_owned(),
        seed: ctx.seed,
        workers: ctx.workers,
        replicas: (p.engine == EngineArg::Tensor).then(|| ctx.replicas_or_workers()),
        partitions: (p.engine == EngineArg::Spark).then(|| ctx.partitions_or_default()),
        precision: match p.engine {
            EngineArg::Spark => p.spec.params.0.get("precision").cloned().unwrap_or_else(|| "f64".into()),
            EngineArg::Tensor => study.run.precision.clone().unwrap_or_else(|| "f32".into()),
        },
        train_rows: local.map_or(0, |(train, _)| train.rows()),
        params: p.spec.params.0.clone(),
        sweep: p.sweep,
        status: "failed".into(),
        error: None,
        fit_seconds: 0.0,
        eval_seconds: 0.0,
        predict_seconds: 0.0,
        epoch_seconds: Vec::new(),
        iterations: 0,
        evaluations: None,
        time_to_target_seconds: None,
        rows_per_second: 0.0,
        cpu_seconds: 0.0,
        mean_cpu_percent: 0.0,
        peak_rss_bytes: 0,
        process_peak_rss_bytes: 0,
        scores: None,
        stop_reason: String::new(),
        log: Vec::new(),
        resources: Vec::new(),
        cluster: None,
    };
    if let (EngineArg::Spark, Some(remote)) = (p.engine, &study.run.spark_remote) {
        let fraction = p.sweep.map_or(1.0, |s| s.fraction);
        match cluster::fit_on_cluster(remote, data_path, &study.load, &study.prep, &p.spec, ctx.seed, fraction) {
            Ok(o) => cluster::fill_record(&mut record, o),
            Err(err) => {
                record.workers = 0;
                record.error = Some(format!("{err:#}"));
            }
        }
        return record;
    }
    let Some((train, data)) = local else {
        record.error = Some("no local data was prepared for this run".into());
        return record;
    };
    let outcome = engine(p.engine, &run_args).and_then(|eng| {
        runner::fit_and_score(eng.as_ref(), &p.spec, (train, &data.valid, &data.test), ctx, prepare_peak)
    });
    match outcome {
        Err(err) => record.error = Some(format!("{err:#}")),
        Ok(o) => {
            let epochs: Vec<f64> = o.log.entries.iter().filter_map(|e| e.extra.get("epoch_seconds").copied()).collect();
            let passes = if epochs.is_empty() { 1 } else { epochs.len() };
            record.status = "ok".into();
            record.fit_seconds = o.fit_seconds;
            record.eval_seconds = o.log.eval_seconds;
            record.iterations = o.log.entries.len();
            record.evaluations = o.log.entries.last().and_then(|e| e.extra.get("evaluations")).map(|&n| n as u64);
            record.predict_seconds = o.predict_seconds;
            record.rows_per_second = (train.rows() * passes) as f64 / o.fit_seconds.max(1e-9);
            record.epoch_seconds = epochs;
            record.cpu_seconds = o.fit_resources.cpu_seconds;
            record.mean_cpu_percent = o.fit_resources.mean_cpu_percent;
            record.peak_rss_bytes = o.fit_resources.peak_rss_bytes;
            record.process_peak_rss_bytes = o.process_peak_rss_bytes;
            record.stop_reason = o.log.stop_reason.clone();
            record.log = o.log.entries;
            record.resources = o.fit_resources.samples;
            record.scores = Some(Scores::from_report(&o.report));
        }
    }
    record
}

fn table_row(r: &RunRecord) -> [String; 15] {
    let workers = if r.cluster.is_some() || (r.workers == 0 && r.engine == "spark") {
        "cluster".to_owned()
    } else {
        r.workers.to_string()
    };
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_owned(), |v| format!("{v:.d$}"));
    let epoch =
        (!r.epoch_seconds.is_empty()).then(|| r.epoch_seconds.iter().sum::<f64>() / r.epoch_seconds.len() as f64);
    let first = [r.engine.clone(), r.model.clone(), r.seed.to_string(), workers, r.train_rows.to_string()];
    let rest: [String; 10] = match &r.scores {
        None => {
            let mut rest: [String; 10] = Default::default();
            rest[0] = format!("FAILED: {}", r.error.as_deref().unwrap_or("?"));
            rest
        }
        Some(s) => [
            format!("{:.2}", r.fit_seconds),
            r.iterations.to_string(),
            f(epoch, 2),
            format!("{:.4}", s.accuracy),
            format!("{:.4}", s.f1_macro),
            f(s.roc_auc, 4),
            format!("{:.1}", r.cpu_seconds),
            format!("{:.2}", r.mean_cpu_percent / 100.0),
            output::bytes(r.peak_rss_bytes),
            output::bytes(r.process_peak_rss_bytes),
        ],
    };
    let mut out: [String; 15] = Default::default();
    for (slot, cell) in out.iter_mut().zip(first.into_iter().chain(rest)) {
        *slot = cell;
    }
    out
}

/// Fixed-width columns so rows printed one at a time line up.
fn format_row(cells: &[String; 15]) -> String {
    const WIDTHS: [usize; 15] = [7, 6, 5, 7, 8, 8, 6, 8, 9, 7, 7, 7, 5, 10, 10];
    cells.iter().zip(WIDTHS).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join(" ").trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_apply_by_engine_and_model_scope() {
        let user = vec!["tensor.epochs=2".to_owned(), "mlp.hidden=8".to_owned(), "spark.lr.max_iter=7".to_owned()];
        let t = params_for(EngineArg::Tensor, ModelKind::Mlp, &user).unwrap();
        assert_eq!(t.0.get("epochs").map(String::as_str), Some("2"));
        assert_eq!(t.0.get("hidden").map(String::as_str), Some("8"));
        assert_eq!(t.0.get("batch_size").map(String::as_str), Some("128"));
        let s = params_for(EngineArg::Spark, ModelKind::Lr, &user).unwrap();
        assert_eq!(s.0.get("max_iter").map(String::as_str), Some("7"));
        assert!(!s.0.contains_key("epochs") && !s.0.contains_key("hidden"));
        let err = params_for(EngineArg::Spark, ModelKind::Lr, &["sprak.max_iter=3".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("'sprak' is not an engine or model name"), "{err}");
    }
}
