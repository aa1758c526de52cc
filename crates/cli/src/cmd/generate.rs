//! `trainbench gen`: synthetic data sets.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use trainbench_data::{GenOptions, Generator, generate};

use crate::output;

/// Generate a synthetic data set. Written batch by batch: any number of rows fits in memory.
#[derive(Args, Debug)]
pub struct GenArgs {
    /// Which data set.
    #[arg(value_enum)]
    pub kind: GenKind,
    /// Number of rows.
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Seed; the same seed writes the same file.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file: Parquet when it ends in .parquet or .pq, CSV otherwise.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Number of classes (multiclass only).
    #[arg(long, default_value_t = 4)]
    pub classes: usize,
    /// Number of features (multiclass only).
    #[arg(long, default_value_t = 16)]
    pub features: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The generators.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum GenKind {
    /// 28 numeric features like UCI HIGGS; binary label from a nonlinear rule plus noise.
    HiggsLike,
    /// Numeric features, --classes classes.
    Multiclass,
    /// Numeric and string features with missing values; label yes/no.
    Mixed,
}

pub fn run(args: GenArgs) -> Result<()> {
    let generator = match args.kind {
        GenKind::HiggsLike => Generator::HiggsLike,
        GenKind::Multiclass => Generator::Multiclass { classes: args.classes, features: args.features },
        GenKind::Mixed => Generator::Mixed,
    };
    let options = GenOptions { generator, rows: args.rows, seed: args.seed };
    let bar = output::bar(args.rows, "generating", args.json);
    let started = std::time::Instant::now();
    let summary = generate(&args.out, &options, &mut |done| bar.set_position(done))
        .with_context(|| format!("cannot generate {}", args.out.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["out"] = serde_json::json!(args.out);
        value["seconds"] = serde_json::json!(seconds);
        println!("{value}");
        return Ok(());
    }
    println!(
        "wrote {} rows × {} columns to {} in {seconds:.1} s",
        summary.rows,
        summary.columns.len(),
        args.out.display()
    );
    let balance: Vec<String> = summary
        .class_counts
        .iter()
        .map(|(name, n)| format!("{name}: {n} ({:.1}%)", 100.0 * *n as f64 / summary.rows as f64))
        .collect();
    println!("label classes: {}", balance.join(", "));
    if summary.missing_cells > 0 {
        println!("missing cells: {}", summary.missing_cells);
    }
    println!("noiseless-rule accuracy (the ceiling): {:.4}", summary.ceiling_accuracy);
    Ok(())
}
