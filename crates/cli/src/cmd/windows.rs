//! `trainbench windows`: sliding windows over a time series, for the recurrent models.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use trainbench_data::{InvalidRowPolicy, WindowOptions, load, write_windows};

use crate::args::LoadArgs;

/// Cut a time series (one row per time step, in time order) into sliding windows: each output
/// row is `--window` consecutive rows' numeric features, oldest first, labelled with the label
/// `--horizon` rows after the window's last row. Train an LSTM or GRU on the output with
/// `--step-features` = the number of feature columns (printed) and `--chronological`.
#[derive(Args, Debug)]
pub struct WindowsArgs {
    /// The series: CSV or Parquet, rows in time order.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Rows (time steps) per window.
    #[arg(long)]
    pub window: usize,
    /// Rows between a window's last row and the row whose label it gets (0: its own last row).
    #[arg(long, default_value_t = 0)]
    pub horizon: usize,
    /// Rows between the starts of consecutive windows.
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// Output CSV file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: WindowsArgs) -> Result<()> {
    // A row that cannot be read would leave a hole in the series that windows would silently
    // span, so the first one stops the run with its line number.
    let options = args.load.to_options()?.with_invalid_rows(InvalidRowPolicy::Fail);
    let table = load(&args.data, &options)?.table;
    let window = WindowOptions { window: args.window, horizon: args.horizon, stride: args.stride };
    let summary =
        write_windows(&table, &window, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["out"] = serde_json::json!(args.out);
        println!("{value}");
        return Ok(());
    }
    println!(
        "wrote {} windows of {} rows × {} features ({} columns) from {} rows to {}",
        summary.windows,
        args.window,
        summary.step_features,
        summary.columns.len(),
        summary.input_rows,
        args.out.display()
    );
    println!(
        "train on it with: trainbench train --engine tensor --model lstm --data {} --label {} --step-features {} --chronological",
        args.out.display(),
        table.label_name(),
        summary.step_features
    );
    Ok(())
}
