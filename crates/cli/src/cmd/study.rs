//! `trainbench run STUDY.toml`: a declared study (data, preprocessing, runs with parameters,
//! seeds, an optional sweep). The file deserializes into the option structs `compare` and
//! `scale` fill from their flags (`[prepare]` is [`PrepArgs`], `[data]` holds [`LoadArgs`]' keys,
//! a run's `params` are typed [`Params`]), so declared and typed studies run the same code.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;
use trainbench_engine::{EngineKind, ModelKind, Params, Precision};

use crate::args::{LoadArgs, PrepArgs, RunArgs, RunKey, TrackingArgs};
use crate::cmd::compare::{CompareArgs, DEFAULT_ROWS, ScaleArgs, ScopedParam, StudyArgs, run_compare, run_scale};

/// `trainbench run`.
#[derive(Args, Debug)]
pub struct RunStudyArgs {
    /// The study file (TOML; see examples/).
    #[arg(value_name = "STUDY.toml")]
    pub study: PathBuf,
    /// Print the results as one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Print no training progress (the per-epoch and per-iteration lines, the bars).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

/// A study file. Unknown keys are errors, so a typo cannot silently fall back to a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Study {
    /// Report folder (relative to the study file).
    out: Option<PathBuf>,
    /// Runs per model with seeds seed, seed+1, ...
    seeds: Option<usize>,
    /// Cores per run, for either engine.
    workers: Option<usize>,
    /// Tensor replicas per batch (default: one per worker).
    replicas: Option<usize>,
    /// Validation accuracy timed for time to target (default: the lower best − 0.5 pp).
    target_accuracy: Option<f64>,
    /// Tensor precision.
    precision: Option<Precision>,
    /// Train the spark runs on real Spark through this Spark Connect server (sc://HOST:PORT).
    spark_remote: Option<String>,
    #[serde(default)]
    data: DataSection,
    #[serde(default)]
    prepare: PrepArgs,
    #[serde(default, rename = "run")]
    runs: Vec<RunSection>,
    scale: Option<ScaleSection>,
}

/// `[data]`: where the rows come from, and how to read them ([`LoadArgs`]' keys).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DataSection {
    /// The file (relative to the study file, or a URL for a cluster); none: generated.
    path: Option<String>,
    /// Rows of the generated data.
    rows: Option<u64>,
    label: Option<String>,
    delimiter: Option<String>,
    categorical: Vec<String>,
    numeric: Vec<String>,
    na_values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunSection {
    engine: EngineKind,
    model: ModelKind,
    #[serde(default)]
    params: Params,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleSection {
    fractions: Option<Vec<f64>>,
    workers: Option<Vec<usize>>,
}

/// The study as the options of `compare`; paths are relative to the study file's folder,
/// except URLs (hdfs://, s3a://) for a cluster to read.
fn study_args(study: Study, base: &Path, args: &RunStudyArgs) -> Result<StudyArgs> {
    let rel = |p: &Path| if p.to_string_lossy().contains("://") { p.to_owned() } else { base.join(p) };
    if study.runs.is_empty() {
        bail!("the study has no [[run]] (each needs engine and model)");
    }
    let mut runs: Vec<RunKey> = Vec::new();
    let mut params = Vec::new();
    for r in study.runs {
        let key = RunKey { engine: r.engine, model: r.model };
        r.engine.check_model(r.model).with_context(|| format!("run {key}"))?;
        if runs.contains(&key) {
            bail!("run {key} appears twice; give each engine and model one [[run]]");
        }
        runs.push(key);
        params
            .extend(r.params.0.into_iter().map(|(name, value)| ScopedParam::for_run(r.engine, r.model, &name, value)));
    }
    let d = study.data;
    let mut prep = study.prepare;
    prep.test_data = prep.test_data.as_deref().map(rel);
    if prep.quarantine != PrepArgs::default().quarantine {
        prep.quarantine = rel(&prep.quarantine);
    }
    Ok(StudyArgs {
        data: d.path.as_deref().map(|p| rel(Path::new(p))),
        rows: d.rows.unwrap_or(DEFAULT_ROWS),
        load: LoadArgs {
            label: d.label,
            delimiter: d.delimiter,
            categorical: d.categorical,
            numeric: d.numeric,
            na_values: d.na_values,
            ..LoadArgs::default()
        },
        prep,
        runs,
        params,
        seeds: study.seeds.unwrap_or(3),
        target_accuracy: study.target_accuracy,
        out: rel(study.out.as_deref().unwrap_or(Path::new("trainbench-report"))),
        run: RunArgs {
            workers: study.workers,
            replicas: study.replicas,
            precision: study.precision,
            spark_remote: study.spark_remote,
            tracking: args.tracking.clone(),
            ..RunArgs::default()
        },
        json: args.json,
        quiet: args.quiet,
    })
}

pub fn run(args: RunStudyArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.study).with_context(|| format!("cannot read {}", args.study.display()))?;
    // toml's message names the key and shows the line; keep it on one line for our error format.
    let study: Study = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
        anyhow::anyhow!(
            "{}{}: {}",
            args.study.display(),
            line.map_or(String::new(), |l| format!(" line {l}")),
            e.message().trim()
        )
    })?;
    let base = args.study.parent().unwrap_or(Path::new("."));
    let scale = study.scale.as_ref().map(|s| (s.fractions.clone(), s.workers.clone()));
    let study_args = study_args(study, base, &args).with_context(|| args.study.display().to_string())?;
    match scale {
        None => run_compare(CompareArgs { study: study_args }),
        Some((fractions, workers)) => run_scale(ScaleArgs {
            study: study_args,
            fractions: fractions.unwrap_or_else(|| vec![0.1, 0.25, 0.5, 1.0]),
            workers_list: workers.unwrap_or_default(),
            // A study's sweep stays in one process (`scale --processes` relaunches its own command).
            processes: Vec::new(),
        }),
    }
}
