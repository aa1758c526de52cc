//! `trainbench prepare`: the data pipeline on its own, with its summary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use trainbench_data::{
    CleanOptions, Encoding, MissingPolicy, PipelineOptions, PreprocessOptions, Scaling, SplitOptions, UnseenPolicy,
    prepare, write_quarantine,
};
use trainbench_metrics::{PhaseTimers, ResourceSampler};

use crate::args::LoadArgs;
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
    /// Write the fitted preprocessor (JSON) here.
    #[arg(long, value_name = "FILE")]
    pub save_preprocessor: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Cleaning, split and preprocessing flags.
#[derive(Args, Debug, Clone)]
pub struct PrepArgs {
    /// Missing feature values: drop, mean, median, most-frequent, or constant:VALUE.
    /// Imputation statistics come from the training rows only.
    #[arg(long, default_value = "mean", value_name = "POLICY")]
    pub missing: String,
    /// Keep exact duplicate rows (they are dropped by default).
    #[arg(long)]
    pub keep_duplicates: bool,
    /// Fraction of rows held out for the test (ignored with --test-data).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Fraction of rows held out for validation.
    #[arg(long, default_value_t = 0.0)]
    pub valid_fraction: f64,
    /// A separate file of test rows (same columns).
    #[arg(long, value_name = "FILE")]
    pub test_data: Option<PathBuf>,
    /// Split without keeping class proportions.
    #[arg(long)]
    pub no_stratify: bool,
    /// Split in file order: train on the first rows, test on the last (time series); no shuffle.
    #[arg(long)]
    pub chronological: bool,
    /// Seed of the split and of every random choice of the model (sampling, initial weights).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Numeric scaling.
    #[arg(long, value_enum, default_value_t = ScalingArg::Standard)]
    pub scaling: ScalingArg,
    /// Categorical encoding.
    #[arg(long, value_enum, default_value_t = EncodingArg::OneHot)]
    pub encoding: EncodingArg,
    /// Categories not seen in training: error, or ignore (all-zero one-hot / an extra index).
    #[arg(long, value_enum, default_value_t = UnseenArg::Error)]
    pub unseen: UnseenArg,
    /// Where removed rows are written, with line and reason (only when there are any).
    #[arg(long, value_name = "FILE", default_value = "trainbench-quarantine.csv")]
    pub quarantine: PathBuf,
}

/// `--scaling`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ScalingArg {
    /// (x - mean) / std.
    Standard,
    /// (x - min) / (max - min).
    Minmax,
    /// No scaling.
    None,
}

/// `--encoding`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum EncodingArg {
    /// One 0/1 column per category.
    OneHot,
    /// One column with the category's index.
    Index,
}

/// `--unseen`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum UnseenArg {
    /// Stop with an error.
    Error,
    /// Encode as all zeros (one-hot) or one past the last index.
    Ignore,
}

impl PrepArgs {
    /// Builds the pipeline options (without the load part).
    pub fn to_options(&self, load: &LoadArgs) -> Result<PipelineOptions> {
        let missing = match self.missing.as_str() {
            "drop" => MissingPolicy::Drop,
            "mean" => MissingPolicy::Mean,
            "median" => MissingPolicy::Median,
            "most-frequent" => MissingPolicy::MostFrequent,
            other => match other.strip_prefix("constant:") {
                Some(v) => MissingPolicy::Constant(v.to_owned()),
                None => bail!("--missing must be drop, mean, median, most-frequent or constant:VALUE, got '{other}'"),
            },
        };
        Ok(PipelineOptions {
            load: load.to_options()?,
            clean: CleanOptions { missing, drop_duplicates: !self.keep_duplicates },
            split: SplitOptions {
                valid_fraction: self.valid_fraction,
                test_fraction: self.test_fraction,
                stratify: !self.no_stratify,
                chronological: self.chronological,
                seed: self.seed,
            },
            preprocess: PreprocessOptions {
                scaling: match self.scaling {
                    ScalingArg::Standard => Scaling::Standard,
                    ScalingArg::Minmax => Scaling::MinMax,
                    ScalingArg::None => Scaling::None,
                },
                encoding: match self.encoding {
                    EncodingArg::OneHot => Encoding::OneHot,
                    EncodingArg::Index => Encoding::Index,
                },
                unseen: match self.unseen {
                    UnseenArg::Error => UnseenPolicy::Error,
                    UnseenArg::Ignore => UnseenPolicy::Ignore,
                },
                missing: MissingPolicy::default(),
            },
            test_data: self.test_data.clone(),
        })
    }
}

pub fn run(args: PrepareArgs) -> Result<()> {
    let options = args.prep.to_options(&args.load)?;
    let sampler = ResourceSampler::start(Duration::from_millis(50));
    let mut timers = PhaseTimers::new();
    let spinner = output::spinner(&format!("preparing {}", args.data.display()), args.json);
    let data = prepare(&args.data, &options, &mut timers)?;
    spinner.finish_and_clear();
    let resources = sampler.stop();
    let quarantine_file = if data.quarantine.is_empty() {
        None
    } else {
        write_quarantine(&args.prep.quarantine, &data.quarantine)
            .with_context(|| format!("cannot write the quarantine file {}", args.prep.quarantine.display()))?;
        Some(args.prep.quarantine.clone())
    };
    if let Some(path) = &args.save_preprocessor {
        data.preprocessor.save(path)?;
    }
    let s = &data.summary;
    if args.json {
        let value = serde_json::json!({
            "summary": s,
            "phase_seconds": timers.iter().map(|(p, secs)| (p.name(), secs)).collect::<std::collections::BTreeMap<_, _>>(),
            "quarantine_file": quarantine_file,
            "cpu_seconds": resources.cpu_seconds,
            "peak_rss_bytes": resources.peak_rss_bytes,
            "feature_names": data.preprocessor.feature_names(),
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
        println!("{} removed rows written to {} (line and reason for each)", data.quarantine.len(), q.display());
    }
    Ok(())
}
