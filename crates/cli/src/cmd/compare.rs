//! `trainbench compare` and `trainbench scale`: many runs on data prepared once, a table as runs
//! finish, and a report folder (results.json, metrics.csv, tensorboard/, report.html).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar};
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use trainbench_data::{GenOptions, Generator, Prepared, PreparedData, generate, prepare, write_quarantine};
use trainbench_engine::params::text_value;
use trainbench_engine::{EngineKind, ModelKind, ModelSpec, Params};
use trainbench_metrics::PhaseTimers;

use crate::args::{LoadArgs, PrepArgs, RunArgs, RunKey, by_from_str};
use crate::progress::LiveProgress;
use crate::report;
use crate::results::{DataInfo, Machine, Results, RunRecord, RunStatus, SweepPoint};
use crate::runner::{RunFailed, RunPlan};
use crate::{cluster, engines, mlflow, output, runner};

/// Rows of the built-in data set when `--data` is not given.
pub const DEFAULT_ROWS: u64 = 100_000;

/// The runs of the default study.
pub const DEFAULT_RUNS: &str = "spark:lr,spark:tree,spark:mlp,tensor:mlp,tensor:cnn,tensor:lstm";

/// A model parameter for the runs whose engine and model match its scope:
/// `[ENGINE.][MODEL.]NAME=VALUE` (`tensor.epochs=3`, `mlp.hidden=64,64`, `spark.lr.max_iter=50`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedParam {
    /// Engine and model names the parameter is limited to (none: every run).
    pub scope: Vec<String>,
    /// The parameter.
    pub name: String,
    /// Its value, typed.
    pub value: Value,
}

impl ScopedParam {
    /// `value` for `name` in the runs of `engine` and `model` only.
    pub fn for_run(engine: EngineKind, model: ModelKind, name: &str, value: Value) -> Self {
        Self { scope: vec![engine.name().into(), model.name().into()], name: name.into(), value }
    }

    fn applies_to(&self, engine: EngineKind, model: ModelKind) -> bool {
        self.scope.iter().all(|s| s == engine.name() || s == model.name())
    }
}

impl FromStr for ScopedParam {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (key, value) = text.split_once('=').ok_or_else(|| format!("--param '{text}' is not KEY=VALUE"))?;
        let mut parts: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        let name = parts.pop().unwrap_or_default();
        for s in &parts {
            if s.parse::<EngineKind>().is_err() && s.parse::<ModelKind>().is_err() {
                return Err(format!("--param {key}: '{}' is not an engine or model name", parts.join(".")));
            }
        }
        Ok(Self { scope: parts, name, value: text_value(value.trim()) })
    }
}

/// What every study command shares: data, preparation, runs, parameters, output.
#[derive(Args, Debug, Clone)]
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
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_RUNS, value_parser = by_from_str::<RunKey>)]
    pub runs: Vec<RunKey>,
    /// A model parameter, as [ENGINE.][MODEL.]NAME=VALUE (e.g. tensor.epochs=3, mlp.hidden=64,64,
    /// spark.lr.max_iter=50); repeatable. Unset parameters take each engine's defaults, except
    /// the study defaults listed in the README (equal-capacity MLPs, tensor epochs and batch).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = by_from_str::<ScopedParam>)]
    pub params: Vec<ScopedParam>,
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
    /// Print no training progress (the per-epoch and per-iteration lines, the bars); the
    /// results still print.
    #[arg(long, short)]
    pub quiet: bool,
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
    /// Process counts, comma-separated: each sweeps the rows across that many processes, launched
    /// with `mpirun -np P` (needs the `mpi` build), the machine's cores split between them
    /// (cores / P workers each, so 1 × 2 and 2 × 1 have the same cores). Replaces the workers
    /// sweep.
    #[arg(long, value_delimiter = ',')]
    pub processes: Vec<usize>,
}

/// Parameters the study sets unless the user does: the two MLPs get equal capacity, and the
/// tensor models a batch and epoch count that finish the default study in minutes.
fn study_defaults() -> Vec<ScopedParam> {
    ["mlp.hidden=64,64", "tensor.epochs=5", "tensor.batch_size=128"].iter().filter_map(|p| p.parse().ok()).collect()
}

/// One run to make (before seeds).
#[derive(Debug, Clone)]
struct Planned {
    engine: EngineKind,
    spec: ModelSpec,
    sweep: Option<SweepPoint>,
}

/// The parameters of (engine, model): study defaults, then the user's that apply.
fn params_for(engine: EngineKind, model: ModelKind, user: &[ScopedParam]) -> Params {
    let mut params = Params::new();
    for p in study_defaults().iter().chain(user).filter(|p| p.applies_to(engine, model)) {
        params.0.insert(p.name.clone(), p.value.clone());
    }
    params
}

fn planned(study: &StudyArgs, sweep: Option<SweepPoint>) -> impl Iterator<Item = Planned> + '_ {
    study.runs.iter().map(move |k| Planned {
        engine: k.engine,
        spec: ModelSpec { kind: k.model, params: params_for(k.engine, k.model, &study.params) },
        sweep,
    })
}

pub fn run_compare(args: CompareArgs) -> Result<()> {
    let plan: Vec<Planned> = planned(&args.study, None).collect();
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
    let mut plan = Vec::new();
    if !args.processes.is_empty() {
        if args.processes.contains(&0) {
            bail!("--processes must be at least 1");
        }
        crate::processes::check_local(args.study.run.spark_remote.as_deref()).context("--processes launches mpirun")?;
        let size = trainbench_engine::collective::world().size();
        if size > 1 && args.processes != [size] {
            bail!(
                "under mpirun -np {size}, --processes must be {size} (`scale --processes 1,2` launches mpirun itself)"
            );
        }
        for base in planned(&args.study, None) {
            for &processes in &args.processes {
                // The machine's cores split between the processes, unless --workers-list says.
                let workers = args.workers_list.first().copied().unwrap_or((cores / processes).max(1));
                for &fraction in &args.fractions {
                    let sweep = SweepPoint { fraction, workers, processes };
                    plan.push(Planned { sweep: Some(sweep), ..base.clone() });
                }
            }
        }
        return run_study("scale", &args.study, &plan);
    }
    for base in planned(&args.study, None) {
        // Time against rows at the most workers; speedup against workers on all rows.
        for &fraction in &args.fractions {
            plan.push(Planned {
                sweep: Some(SweepPoint { fraction, workers: max_workers, processes: 1 }),
                ..base.clone()
            });
        }
        // A cluster's workers are its own: runs through --spark-remote sweep rows only.
        let on_cluster = base.engine == EngineKind::Spark && args.study.run.spark_remote.is_some();
        for &w in workers.iter().filter(|&&w| !on_cluster && (w != max_workers || !args.fractions.contains(&1.0))) {
            plan.push(Planned { sweep: Some(SweepPoint { fraction: 1.0, workers: w, processes: 1 }), ..base.clone() });
        }
    }
    run_study("scale", &args.study, &plan)
}

/// The data of a study: where from, and the prepared rows unless every run is on a cluster.
struct StudyData {
    path: PathBuf,
    generated: bool,
    local: Option<PreparedData>,
    prepare_seconds: f64,
    /// The process's memory peak while loading and preparing.
    prepare_peak: u64,
}

fn load_study_data(study: &StudyArgs, plan: &[Planned]) -> Result<StudyData> {
    let quiet = study.json;
    let (path, generated) = match &study.data {
        Some(p) => (p.clone(), false),
        None => (builtin_data(&study.out, study.rows, study.prep.seed, quiet)?, true),
    };
    let mut prep = study.prep.to_options(&study.load)?;
    // Time to target and early stopping need validation rows: a study holds out 10 % unless told.
    if study.prep.valid_fraction == 0.0 {
        prep.split.valid_fraction = 0.1;
    }
    // With only cluster runs, Spark reads the file and the rows never pass through here.
    let all_on_cluster = study.run.spark_remote.is_some() && plan.iter().all(|p| p.engine == EngineKind::Spark);
    let started = Instant::now();
    let local = if all_on_cluster {
        None
    } else {
        let spinner = output::spinner(&format!("preparing {}", path.display()), quiet);
        let data = prepare(&path, &prep, &mut PhaseTimers::new())?;
        spinner.finish_and_clear();
        if trainbench_engine::collective::is_primary() && !data.quarantine.is_empty() {
            write_quarantine(&study.prep.quarantine, &data.quarantine)
                .with_context(|| format!("cannot write {}", study.prep.quarantine.display()))?;
        }
        Some(data)
    };
    Ok(StudyData {
        path,
        generated,
        local,
        prepare_seconds: started.elapsed().as_secs_f64(),
        prepare_peak: trainbench_metrics::process_peak_rss(),
    })
}

fn run_study(command: &str, study: &StudyArgs, plan: &[Planned]) -> Result<()> {
    if study.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if let Some(t) = study.target_accuracy
        && !(t > 0.0 && t <= 1.0)
    {
        bail!("--target-accuracy must be above 0 and at most 1, got {t}");
    }
    crate::processes::check_local(study.run.spark_remote.as_deref())?;
    // Connected before any work, so a wrong address fails now, not after the study.
    let tracker = study.run.tracking.tracker()?;
    let mut tracking = match &tracker {
        Some(t) => Some(StudyTracking::start(t, command, study)?),
        None => None,
    };
    let data = load_study_data(study, plan)?;
    let total = plan.len() * study.seeds;
    if !study.json {
        print_header(command, study, &data, total);
    }
    // Points of another process count run in a job of their own, started with mpirun.
    let size = trainbench_engine::collective::world().size();
    let processes_of = |p: &Planned| p.sweep.map_or(1, |s| s.processes);
    let here: Vec<Planned> = plan.iter().filter(|p| processes_of(p) == size).cloned().collect();
    let mut runs = run_all(study, &here, &data, tracking.as_mut())?;
    let mut launched: Vec<(usize, usize)> = Vec::new();
    for p in plan.iter().filter(|p| processes_of(p) != size) {
        let point = (processes_of(p), p.sweep.map_or(1, |s| s.workers));
        if !launched.contains(&point) {
            launched.push(point);
            for record in run_under_mpirun(study, point.0, point.1, &data)? {
                if let Some(t) = tracking.as_mut() {
                    let took = ((record.fit_seconds + record.predict_seconds) * 1000.0) as i64;
                    t.run_done(&record, mlflow::now_ms() - took);
                }
                runs.push(record);
            }
        }
    }
    let comparisons = report::compare_families(&mut runs, study.target_accuracy);
    let results = Results {
        schema_version: crate::results::SCHEMA_VERSION,
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
        data: data_info(&data, &runs),
        runs,
        comparisons,
    };
    if trainbench_engine::collective::is_primary() {
        report::write_all(&study.out, &results)?;
    }
    let tracked = tracking.map_or(Ok(()), |t| t.finish(&results.runs, &study.out));
    if study.json {
        println!("{}", serde_json::to_string(&results)?);
    } else {
        print_summary(study, &results);
    }
    tracked?;
    let failed = results.runs.iter().filter(|r| r.status == RunStatus::Failed).count();
    if failed > 0 {
        return Err(RunFailed(format!(
            "{failed} of {} runs failed (each with its reason in {})",
            results.runs.len(),
            study.out.join("results.json").display()
        ))
        .into());
    }
    Ok(())
}

fn print_header(command: &str, study: &StudyArgs, data: &StudyData, total: usize) {
    match &data.local {
        Some(d) => println!(
            "{command}: {total} runs on {} ({} train / {} valid / {} test rows, {} features), report in {}",
            data.path.display(),
            d.train.rows(),
            d.valid.rows(),
            d.test.rows(),
            d.train.n_features,
            study.out.display()
        ),
        None => println!("{command}: {total} runs on {}, report in {}", data.path.display(), study.out.display()),
    }
    let processes = trainbench_engine::collective::world().size();
    if processes > 1 {
        println!(
            "{processes} processes (mpirun): every run trains across all of them; cores, CPU and memory \
             below are rank 0's"
        );
    }
    if let Some(remote) = &study.run.spark_remote {
        println!(
            "spark runs on Spark through {remote}: Spark reads the file, splits it (randomSplit, not stratified) \
             and preprocesses it itself"
        );
    }
}

/// A study in MLflow: a parent run holding the report folder, each trainbench run nested under it
/// as it finishes. An MLflow failure does not stop the study; the first one is the command's
/// error once the report is written.
struct StudyTracking<'a> {
    tracker: &'a mlflow::Tracker,
    parent: mlflow::MlflowRun,
    /// Each logged run, by trainbench run id: it gets its time to target when the study ends.
    children: Vec<(String, mlflow::MlflowRun)>,
    failure: Option<anyhow::Error>,
}

impl<'a> StudyTracking<'a> {
    fn start(tracker: &'a mlflow::Tracker, command: &str, study: &StudyArgs) -> Result<Self> {
        let parent = tracker.start_run(&format!("{command} {}", study.out.display()), mlflow::now_ms(), None)?;
        let data = study
            .data
            .as_ref()
            .map_or(format!("generated higgs-like, {} rows", study.rows), |p| p.display().to_string());
        let params = BTreeMap::from([
            ("command".to_owned(), command.to_owned()),
            ("data".to_owned(), data),
            ("seeds".to_owned(), study.seeds.to_string()),
            (
                "runs".to_owned(),
                study
                    .runs
                    .iter()
                    .map(|r| format!("{}:{}", r.engine.name(), r.model.name()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]);
        tracker.log(&parent, &params, &[])?;
        Ok(Self { tracker, parent, children: Vec::new(), failure: None })
    }

    /// Logs a finished run, started at `start_ms`.
    fn run_done(&mut self, record: &RunRecord, start_ms: i64) {
        let logged = self.tracker.log_record(record, start_ms, Some(&self.parent)).and_then(|run| {
            self.tracker.end_run(&run, record.status == RunStatus::Ok, mlflow::now_ms())?;
            Ok(run)
        });
        match logged {
            Ok(run) => self.children.push((record.id.clone(), run)),
            Err(e) => self.failed(e.context(format!("logging run {} to MLflow", record.id))),
        }
    }

    fn failed(&mut self, e: anyhow::Error) {
        let _ = writeln!(std::io::stderr(), "warning: {e:#}");
        self.failure.get_or_insert(e);
    }

    /// Adds each run's time to target, uploads the report folder and ends the parent run.
    fn finish(mut self, runs: &[RunRecord], out: &Path) -> Result<()> {
        let now = mlflow::now_ms();
        for r in runs {
            let child = self.children.iter().find(|(id, _)| *id == r.id).map(|(_, run)| run);
            if let (Some(run), Some(t)) = (child, r.time_to_target_seconds)
                && let Err(e) = self.tracker.log(run, &BTreeMap::new(), &[("time_to_target_seconds".into(), t, now, 0)])
            {
                self.failed(e);
            }
        }
        let ok = runs.iter().all(|r| r.status == RunStatus::Ok);
        let uploaded = self.tracker.upload_dir(&self.parent, out, "report");
        let ended = uploaded.and_then(|_| self.tracker.end_run(&self.parent, ok, mlflow::now_ms()));
        if let Err(e) = ended {
            self.failed(e.context("uploading the report folder to MLflow"));
        }
        match self.failure {
            Some(e) => Err(RunFailed(format!("the report is written, but MLflow logging failed: {e:#}")).into()),
            None => Ok(()),
        }
    }
}

/// Every planned run, for every seed, printed (and logged to MLflow) as it finishes.
fn run_all(
    study: &StudyArgs,
    plan: &[Planned],
    data: &StudyData,
    mut tracking: Option<&mut StudyTracking>,
) -> Result<Vec<RunRecord>> {
    let quiet = study.json;
    let bars = MultiProgress::new();
    let total = (plan.len() * study.seeds) as u64;
    let overall = if quiet { ProgressBar::hidden() } else { bars.add(output::bar(total, "runs", false)) };
    if !quiet {
        bars.suspend(|| println!("{}", format_row(&HEADER.map(String::from))));
    }
    let mut runs = Vec::new();
    for p in plan {
        for k in 0..study.seeds {
            let seed = study.prep.seed + k as u64;
            let mut ctx = study.run.context(seed);
            if let Some(s) = p.sweep {
                ctx.workers = s.workers;
            }
            let e = p.engine.name();
            let id = match p.sweep {
                Some(s) if s.processes > 1 => {
                    format!("{e}/{}/seed{seed}/x{}/w{}/p{}", p.spec.kind.name(), s.fraction, s.workers, s.processes)
                }
                Some(s) => format!("{e}/{}/seed{seed}/x{}/w{}", p.spec.kind.name(), s.fraction, s.workers),
                None => format!("{e}/{}/seed{seed}", p.spec.kind.name()),
            };
            let run_plan = RunPlan {
                id,
                engine: p.engine,
                spec: &p.spec,
                ctx,
                precision: study.run.precision_of(p.engine, &p.spec.params),
                sweep: p.sweep,
            };
            let spinner = if quiet {
                ProgressBar::hidden()
            } else {
                bars.insert_before(&overall, output::spinner(&format!("training {}", run_plan.id), false))
            };
            let progress = LiveProgress::new(format!("{}: ", run_plan.id), spinner.clone(), !quiet && !study.quiet);
            let start_ms = mlflow::now_ms();
            let record = one_run(study, &run_plan, data, &progress);
            if let Some(t) = tracking.as_deref_mut() {
                t.run_done(&record, start_ms);
            }
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
    Ok(runs)
}

/// One run, on the cluster or here; a failure is recorded with its reason.
fn one_run(study: &StudyArgs, plan: &RunPlan, data: &StudyData, progress: &LiveProgress) -> RunRecord {
    if let (EngineKind::Spark, Some(remote)) = (plan.engine, &study.run.spark_remote) {
        let mut record = plan.record(0);
        let fraction = plan.sweep.map_or(1.0, |s| s.fraction);
        match cluster::fit_on_cluster(
            remote,
            &data.path,
            &study.load,
            &study.prep,
            plan.spec,
            plan.ctx.seed,
            fraction,
            false,
        ) {
            Ok(o) => cluster::fill_record(&mut record, o),
            Err(err) => {
                record.workers = 0;
                record.error = Some(format!("{err:#}"));
            }
        }
        return record;
    }
    let Some(d) = &data.local else {
        let mut record = plan.record(0);
        record.error = Some("no local data was prepared for this run".into());
        return record;
    };
    let sampled = plan.sweep.filter(|s| s.fraction != 1.0).map(|s| subsample(&d.train, s.fraction, plan.ctx.seed));
    let train = sampled.as_ref().unwrap_or(&d.train);
    let mut run_args = study.run.clone();
    if plan.engine == EngineKind::Tensor && run_args.tensorboard.is_none() {
        run_args.tensorboard = Some(study.out.join("tensorboard").join(plan.id.replace('/', "_")));
    }
    let engine = engines::build(plan.engine, &run_args);
    match runner::fit_and_score(engine.as_ref(), plan, (train, &d.valid, &d.test), data.prepare_peak, progress) {
        Ok(trained) => trained.record,
        Err(err) => {
            let mut record = plan.record(train.rows());
            record.error = Some(format!("{err:#}"));
            record
        }
    }
}

fn data_info(data: &StudyData, runs: &[RunRecord]) -> DataInfo {
    let source = data.path.display().to_string();
    match &data.local {
        Some(d) => DataInfo {
            source,
            generated: data.generated,
            train_rows: d.train.rows(),
            valid_rows: d.valid.rows(),
            test_rows: d.test.rows(),
            features: d.train.n_features,
            classes: d.train.class_names.clone(),
            prepare_seconds: data.prepare_seconds,
        },
        // Spark's split, as the first cluster run that finished saw it.
        None => {
            let first = runs.iter().find_map(|r| Some((r, r.cluster.as_ref()?)));
            DataInfo {
                source,
                generated: data.generated,
                train_rows: first.map_or(0, |(r, _)| r.train_rows),
                valid_rows: 0,
                test_rows: first.map_or(0, |(_, c)| c.test_rows),
                features: first.map_or(0, |(_, c)| c.features),
                classes: first.map_or_else(Vec::new, |(_, c)| c.classes.clone()),
                prepare_seconds: first.map_or(0.0, |(_, c)| c.read_seconds + c.preprocess_seconds),
            }
        }
    }
}

fn print_summary(study: &StudyArgs, results: &Results) {
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
    for (q, a) in report::answers(results) {
        println!("{q}\n  {a}");
    }
    println!("\nreport: {}", study.out.join("report.html").display());
}

/// The sweep points of `processes` processes: the same `scale` command, started with
/// `mpirun -np processes` in a report folder of its own, its runs read from its JSON.
fn run_under_mpirun(study: &StudyArgs, processes: usize, workers: usize, data: &StudyData) -> Result<Vec<RunRecord>> {
    // This command's own arguments, less those the launched one gets its own value of.
    let mut forwarded = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            // This process logs the launched runs to MLflow itself.
            "--processes" | "--workers-list" | "--out" | "--data" | "--mlflow" => {
                args.next();
            }
            "--json" => {}
            _ if ["--processes=", "--workers-list=", "--out=", "--data=", "--mlflow="]
                .iter()
                .any(|f| a.starts_with(f)) => {}
            _ => forwarded.push(a),
        }
    }
    let out = study.out.join(format!("processes-{processes}"));
    let exe = std::env::current_exe().context("cannot find the trainbench binary to start under mpirun")?;
    let mut cmd = std::process::Command::new("mpirun");
    cmd.env_remove("MLFLOW_TRACKING_URI");
    // mpirun refuses root unless told; containers often run as root.
    if std::env::var("USER").is_ok_and(|u| u == "root") || std::env::var_os("HOME").is_some_and(|h| h == "/root") {
        cmd.arg("--allow-run-as-root");
    }
    cmd.args(["--oversubscribe", "-np", &processes.to_string()]).arg(exe).args(&forwarded);
    cmd.args(["--processes", &processes.to_string(), "--workers-list", &workers.to_string(), "--json"]);
    cmd.arg("--out").arg(&out).arg("--data").arg(&data.path);
    let shown = format!("mpirun -np {processes} trainbench scale ... --processes {processes}");
    let output = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {shown} (Open MPI's mpirun must be on PATH)"))?;
    if !output.status.success() {
        bail!("{shown} failed ({}); its report folder: {}", output.status, out.display());
    }
    let results: Results =
        serde_json::from_slice(&output.stdout).with_context(|| format!("{shown} did not print its results"))?;
    if !study.json {
        for r in &results.runs {
            println!("{}", format_row(&table_row(r)));
        }
    }
    Ok(results.runs)
}

/// Generates the built-in data set into `out` unless it is there already.
fn builtin_data(out: &Path, rows: u64, seed: u64, quiet: bool) -> Result<PathBuf> {
    let path = out.join(format!("higgs-like-{rows}.csv"));
    // Under mpirun rank 0 generates it; a rank on another host, which does not see that file,
    // generates the same rows itself.
    if !trainbench_engine::collective::is_primary() {
        crate::processes::wait_for_primary();
    }
    if !path.exists() {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let bar = output::bar(rows, "generating the built-in HIGGS-like data", quiet);
        generate(&path, &GenOptions { generator: Generator::HiggsLike, rows, seed }, &mut |d| bar.set_position(d))
            .with_context(|| format!("cannot generate {}", path.display()))?;
        bar.finish_and_clear();
    }
    if trainbench_engine::collective::is_primary() {
        crate::processes::wait_for_primary();
    }
    Ok(path)
}

/// `fraction` of `data`'s rows: a prefix of a seeded permutation, or draws with replacement
/// above 1.
fn subsample(data: &Prepared, fraction: f64, seed: u64) -> Prepared {
    let n = data.labels.len();
    let want = ((n as f64 * fraction).round() as usize).max(1);
    if want == n {
        // All rows, as `train` sees them: no copy (rows mapped from a prepared directory stay
        // mapped, so a sweep can cross the memory boundary).
        return data.clone();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ca1e);
    let all: Vec<usize> = (0..n).collect();
    let rows: Vec<usize> = if want <= n {
        let mut order = all.clone();
        order.shuffle(&mut rng);
        order.truncate(want);
        // A random subset, in the rows' own order (read sequentially from a mapped file).
        order.sort_unstable();
        order
    } else {
        (0..want).map(|_| *all.choose(&mut rng).unwrap_or(&0)).collect()
    };
    data.take(&rows)
}

const HEADER: [&str; 15] = [
    "engine", "model", "seed", "cores", "rows", "fit s", "iters", "s/epoch", "accuracy", "F1", "AUC", "CPU s", "busy",
    "peak fit", "peak all",
];

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
        let user: Vec<ScopedParam> =
            ["tensor.epochs=2", "mlp.hidden=8", "spark.lr.max_iter=7"].iter().map(|p| p.parse().unwrap()).collect();
        let t = params_for(EngineKind::Tensor, ModelKind::Mlp, &user);
        assert_eq!(t.get("epochs"), Some(&serde_json::json!(2)));
        assert_eq!(t.get("hidden"), Some(&serde_json::json!(8)));
        assert_eq!(t.get("batch_size"), Some(&serde_json::json!(128)));
        let s = params_for(EngineKind::Spark, ModelKind::Lr, &user);
        assert_eq!(s.get("max_iter"), Some(&serde_json::json!(7)));
        assert!(s.get("epochs").is_none() && s.get("hidden").is_none());
        let err = "sprak.max_iter=3".parse::<ScopedParam>().unwrap_err();
        assert!(err.contains("'sprak' is not an engine or model name"), "{err}");
        assert!("epochs".parse::<ScopedParam>().unwrap_err().contains("is not KEY=VALUE"));
    }
}
