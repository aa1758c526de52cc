//! `trainbench inspect`: what is in a data file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use trainbench_data::{inspect, load};

use crate::args::LoadArgs;
use crate::output;

/// Describe a data file: columns, inferred types, missing values, distinct values, class balance.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// CSV (any delimiter), Parquet (.parquet), or IDX images (MNIST format).
    pub file: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let options = args.load.to_options()?;
    let spinner = output::spinner(&format!("reading {}", args.file.display()), args.json);
    let loaded = load(&args.file, &options)?;
    let report = inspect(&loaded);
    spinner.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{}: {:?}, {} rows, {} columns, {} missing cells, {} invalid rows",
        report.path.display(),
        report.format,
        report.rows,
        report.columns.len(),
        report.missing_total,
        report.invalid_rows
    );
    println!();
    let rows: Vec<Vec<String>> = report
        .columns
        .iter()
        .map(|c| {
            vec![
                if c.is_label { format!("{} (label)", c.name) } else { c.name.clone() },
                c.kind.name().to_owned(),
                c.missing.to_string(),
                format!("{:.1}%", 100.0 * c.missing as f64 / report.rows as f64),
                c.distinct.to_string(),
            ]
        })
        .collect();
    output::print_table(&["column", "type", "missing", "missing %", "distinct"], &rows);
    println!();
    let labelled: usize = report.class_balance.iter().map(|(_, n)| n).sum();
    let classes: Vec<Vec<String>> = report
        .class_balance
        .iter()
        .map(|(name, n)| {
            vec![name.clone(), n.to_string(), format!("{:.1}%", 100.0 * *n as f64 / labelled.max(1) as f64)]
        })
        .collect();
    output::print_table(&["class", "rows", "share"], &classes);
    if report.missing_labels > 0 {
        println!("{} rows have no label", report.missing_labels);
    }
    if report.invalid_rows > 0 {
        println!();
        println!("{} rows cannot be read; the first:", report.invalid_rows);
        for r in &report.invalid_sample {
            println!("  line {}: {}", r.line, r.reason);
        }
    }
    Ok(())
}
