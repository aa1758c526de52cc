//! `trainbench run STUDY.toml`: a declared study (data, preprocessing, runs with parameters,
//! seeds, an optional sweep). `compare` and `scale` are its shorthands: the file is turned into
//! their arguments, so both paths run the same code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser};
use serde::Deserialize;

use crate::cmd::compare::{CompareArgs, ScaleArgs, run_compare, run_scale};

/// `trainbench run`.
#[derive(Args, Debug)]
pub struct RunStudyArgs {
    /// The study file (TOML; see examples/).
    #[arg(value_name = "STUDY.toml")]
    pub study: PathBuf,
    /// Print the results as one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// A study file. Unknown keys are errors, so a typo cannot silently fall back to a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Study {
    /// Report folder (relative to the study file).
    out: Option<String>,
    /// Runs per model with seeds seed, seed+1, ...
    seeds: Option<usize>,
    /// Cores per run, for either engine.
    workers: Option<usize>,
    /// Tensor replicas per batch (default: one per worker).
    replicas: Option<usize>,
    /// Validation accuracy timed for time to target (default: the lower best − 0.5 pp).
    target_accuracy: Option<f64>,
    /// Tensor precision.
    precision: Option<String>,
    /// Train the spark runs on real Spark through this Spark Connect server (sc://HOST:PORT).
    spark_remote: Option<String>,
    data: Option<DataSection>,
    prepare: Option<PrepareSection>,
    #[serde(default, rename = "run")]
    runs: Vec<RunSection>,
    scale: Option<ScaleSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataSection {
    path: Option<String>,
    rows: Option<u64>,
    label: Option<String>,
    delimiter: Option<String>,
    #[serde(default)]
    categorical: Vec<String>,
    #[serde(default)]
    numeric: Vec<String>,
    #[serde(default)]
    na_values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrepareSection {
    missing: Option<String>,
    keep_duplicates: Option<bool>,
    test_fraction: Option<f64>,
    valid_fraction: Option<f64>,
    test_data: Option<String>,
    stratify: Option<bool>,
    chronological: Option<bool>,
    seed: Option<u64>,
    scaling: Option<String>,
    encoding: Option<String>,
    unseen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunSection {
    engine: String,
    model: String,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleSection {
    fractions: Option<Vec<f64>>,
    workers: Option<Vec<usize>>,
}

/// The command line a study stands for (without the program name).
fn to_command_line(study: &Study, base: &Path, json: bool) -> Result<Vec<String>> {
    // Paths are relative to the study file, except URLs (hdfs://, s3a://) for a cluster to read.
    let rel = |p: &str| if p.contains("://") { p.to_owned() } else { base.join(p).display().to_string() };
    let mut args: Vec<String> = vec![if study.scale.is_some() { "scale" } else { "compare" }.into()];
    let mut push = |flag: &str, value: String| {
        args.push(format!("--{flag}"));
        args.push(value);
    };
    push("out", rel(study.out.as_deref().unwrap_or("trainbench-report")));
    if let Some(s) = study.seeds {
        push("seeds", s.to_string());
    }
    if let Some(w) = study.workers {
        push("workers", w.to_string());
    }
    if let Some(r) = study.replicas {
        push("replicas", r.to_string());
    }
    if let Some(t) = study.target_accuracy {
        push("target-accuracy", t.to_string());
    }
    if let Some(p) = &study.precision {
        push("precision", p.clone());
    }
    if let Some(r) = &study.spark_remote {
        push("spark-remote", r.clone());
    }
    if let Some(d) = &study.data {
        if let Some(p) = &d.path {
            push("data", rel(p));
        }
        if let Some(r) = d.rows {
            push("rows", r.to_string());
        }
        if let Some(l) = &d.label {
            push("label", l.clone());
        }
        if let Some(x) = &d.delimiter {
            push("delimiter", x.clone());
        }
        for (flag, list) in [("categorical", &d.categorical), ("numeric", &d.numeric), ("na-values", &d.na_values)] {
            if !list.is_empty() {
                push(flag, list.join(","));
            }
        }
    }
    if let Some(p) = &study.prepare {
        for (flag, value) in [
            ("missing", p.missing.clone()),
            ("test-fraction", p.test_fraction.map(|v| v.to_string())),
            ("valid-fraction", p.valid_fraction.map(|v| v.to_string())),
            ("test-data", p.test_data.as_deref().map(rel)),
            ("seed", p.seed.map(|v| v.to_string())),
            ("scaling", p.scaling.clone()),
            ("encoding", p.encoding.clone()),
            ("unseen", p.unseen.clone()),
        ] {
            if let Some(v) = value {
                push(flag, v);
            }
        }
    }
    if study.runs.is_empty() {
        bail!("the study has no [[run]] (each needs engine and model)");
    }
    let mut seen = Vec::new();
    let mut runs = Vec::new();
    let mut params = Vec::new();
    for r in &study.runs {
        let key = format!("{}:{}", r.engine, r.model);
        if seen.contains(&key) {
            bail!("run {key} appears twice; give each engine and model one [[run]]");
        }
        for (name, value) in &r.params {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(a) => {
                    a.iter().map(|v| v.to_string().trim_matches('"').to_owned()).collect::<Vec<_>>().join(",")
                }
                other => bail!(
                    "run {key}: parameter {name} has a {} value; use a string, number, boolean or list",
                    other.type_str()
                ),
            };
            params.push(format!("{}.{}.{name}={text}", r.engine, r.model));
        }
        seen.push(key.clone());
        runs.push(key);
    }
    push("runs", runs.join(","));
    for p in params {
        push("param", p);
    }
    if let Some(s) = &study.scale {
        if let Some(f) = &s.fractions {
            push("fractions", f.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
        }
        if let Some(w) = &s.workers {
            push("workers-list", w.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
        }
    }
    if let Some(p) = &study.prepare {
        if p.keep_duplicates == Some(true) {
            args.push("--keep-duplicates".into());
        }
        if p.stratify == Some(false) {
            args.push("--no-stratify".into());
        }
        if p.chronological == Some(true) {
            args.push("--chronological".into());
        }
    }
    if json {
        args.push("--json".into());
    }
    Ok(args)
}

#[derive(Parser)]
#[command(no_binary_name = true)]
enum Shorthand {
    Compare(Box<CompareArgs>),
    Scale(Box<ScaleArgs>),
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
    let line = to_command_line(&study, base, args.json)?;
    match Shorthand::try_parse_from(&line).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            args.study.display(),
            e.to_string().lines().next().unwrap_or("").trim_start_matches("error: ")
        )
    })? {
        Shorthand::Compare(a) => run_compare(*a),
        Shorthand::Scale(a) => run_scale(*a),
    }
}
