//! `trainbench prepare`: the data pipeline on its own, with its summary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use trainbench_data::{prepare, prepare_to_dir, write_quarantine};
use trainbench_metrics::{PhaseTimers, ResourceSampler};

use crate::args::{LoadArgs, PrepArgs};
use crate::output;

/// Load, clean, split and preprocess a data file, and print what each step did.
#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// The data file (CSV, Parquet, or IDX images).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub prep: PrepArgs,
    /// Write the prepared rows here instead of only counting them: a directory of binary files
    /// (train / validation / test features and labels) and a manifest, which `train`, `compare`,
    /// `scale`, `tune`, `run` and `predict` take in place of a data file. The input is read in
    /// batches, three times, so its size is not bounded by memory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write the fitted preprocessor (JSON) here.
    #[arg(long, value_name = "FILE")]
    pub save_preprocessor: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PrepareArgs) -> Result<()> {
    let world = trainbench_engine::collective::world();
    if world.size() > 1 && args.out.is_none() {
        anyhow::bail!(
            "under mpirun, prepare writes a prepared directory: give --out DIR (on a file system every \
             rank sees), and each rank prepares its share of {} into it",
            args.data.display()
        );
    }
    let options = args.prep.to_options(&args.load)?;
    let sampler = ResourceSampler::start(Duration::from_millis(50));
    let mut timers = PhaseTimers::new();
    let spinner = output::spinner(&format!("preparing {}", args.data.display()), args.json);
    let (quarantined, summary, preprocessor) = match &args.out {
        Some(out) => {
            let manifest = prepare_to_dir(&args.data, &options, out, &args.prep.quarantine, &mut timers)?;
            (manifest.summary.quarantined_rows, manifest.summary, manifest.preprocessor)
        }
        None => {
            let data = prepare(&args.data, &options, &mut timers)?;
            if !data.quarantine.is_empty() {
                write_quarantine(&args.prep.quarantine, &data.quarantine)
                    .with_context(|| format!("cannot write the quarantine file {}", args.prep.quarantine.display()))?;
            }
            (data.quarantine.len(), data.summary, data.preprocessor)
        }
    };
    spinner.finish_and_clear();
    let resources = sampler.stop();
    let quarantine_file = (quarantined > 0).then(|| args.prep.quarantine.clone());
    if let Some(path) = args.save_preprocessor.as_ref().filter(|_| world.rank() == 0) {
        preprocessor.save(path)?;
    }
    let s = &summary;
    if args.json {
        let value = serde_json::json!({
            "summary": s,
            "phase_seconds": timers.iter().map(|(p, secs)| (p.name(), secs)).collect::<std::collections::BTreeMap<_, _>>(),
            "quarantine_file": quarantine_file,
            "cpu_seconds": resources.cpu_seconds,
            "peak_rss_bytes": resources.peak_rss_bytes,
            "feature_names": preprocessor.feature_names(),
            "out": args.out,
        });
        println!("{value}");
        return Ok(());
    }
    let mut sources = vec![&s.source];
    sources.extend(s.test_source.as_ref());
    for src in sources {
        let c = &src.clean;
        println!("{} ({:?})", src.path.display(), src.format);
        println!("  rows read               {}", c.rows_in + src.invalid_rows);
        println!("  invalid (quarantined)   {}", src.invalid_rows);
        println!("  missing label (dropped) {}", c.missing_label_rows);
        println!("  missing cells           {}", c.missing_cells);
        for (name, n) in &c.missing_by_column {
            println!("    {name:<22}{n}");
        }
        println!("  rows with missing value dropped  {}", c.missing_value_rows_dropped);
        println!("  duplicates (dropped)    {}", c.duplicate_rows);
        println!("  rows kept               {}", c.rows_out);
    }
    println!();
    println!(
        "label '{}'; {} numeric + {} categorical columns -> {} features; {} cells imputed ({}); {} unseen categories",
        s.label,
        s.numeric_columns,
        s.categorical_columns,
        s.features,
        s.imputed_cells,
        options.clean.missing.name(),
        s.unseen_categories
    );
    println!();
    let mut rows: Vec<Vec<String>> = s
        .split
        .per_class
        .iter()
        .map(|(name, a, b, c)| vec![name.clone(), a.to_string(), b.to_string(), c.to_string()])
        .collect();
    rows.push(vec!["all".into(), s.split.train.to_string(), s.split.valid.to_string(), s.split.test.to_string()]);
    output::print_table(&["class", "train", "valid", "test"], &rows);
    println!();
    let phases: Vec<String> = timers.iter().map(|(p, secs)| format!("{} {secs:.2} s", p.name())).collect();
    println!(
        "time: {} (total {:.2} s); CPU {:.2} s; peak memory {}",
        phases.join(", "),
        timers.total_seconds(),
        resources.cpu_seconds,
        output::bytes(resources.peak_rss_bytes)
    );
    if let Some(q) = quarantine_file {
        println!("{quarantined} removed rows written to {} (line and reason for each)", q.display());
    }
    if let Some(out) = &args.out {
        println!(
            "prepared rows written to {} (train, compare, scale, tune, run and predict take it as --data)",
            out.display()
        );
    }
    Ok(())
}
