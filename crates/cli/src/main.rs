//! `trainbench`: train with Spark MLlib's and TensorFlow/Keras's paradigms side by side.

mod args;
mod cluster;
mod cmd;
mod engines;
mod mlflow;
mod onnx;
mod output;
mod processes;
mod progress;
mod report;
mod results;
mod runner;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Trains models with Spark MLlib's and TensorFlow/Keras's distributed-training paradigms side by
/// side and tells you which is faster, more accurate, leaner and more scalable on your data.
#[derive(Parser)]
#[command(name = "trainbench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a synthetic data set of any size (CSV, or Parquet by extension).
    Gen(cmd::generate::GenArgs),
    /// Describe a data file: columns, inferred types, missing values, classes.
    Inspect(cmd::inspect::InspectArgs),
    /// Load, clean, split and preprocess a data file, and print what was done.
    Prepare(cmd::prepare::PrepareArgs),
    /// Cut a time series into sliding windows for the LSTM and GRU models.
    Windows(cmd::windows::WindowsArgs),
    /// Train one model with one engine and print its metrics on the test rows.
    Train(Box<cmd::train::TrainArgs>),
    /// Apply a saved model to new data (streamed: any size).
    Predict(cmd::predict::PredictArgs),
    /// Write a saved model as ONNX, its preprocessing in front.
    Export(cmd::export::ExportArgs),
    /// Train the default model set of both engines on the same split and report which is faster,
    /// more accurate, leaner (without --data: on a generated HIGGS-like data set).
    Compare(Box<cmd::compare::CompareArgs>),
    /// Sweep data size and workers for each model and report time, speedup and efficiency.
    Scale(Box<cmd::compare::ScaleArgs>),
    /// Grid or random search over one model's parameters, on validation rows or k-fold.
    Tune(Box<cmd::tune::TuneArgs>),
    /// Run a declared study (STUDY.toml: data, preprocessing, runs, parameters, seeds, sweep).
    Run(cmd::study::RunStudyArgs),
}

fn main() -> ExitCode {
    // A bug must still end in one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        // `trainbench ... | head` closes the pipe early: that is the reader's choice, not an error.
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("internal error: {message}{place} (please report this)");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // Usage errors in the same one-line form as every other error.
            let text = e.render().to_string();
            eprintln!("{}", text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "));
            return ExitCode::from(2);
        }
    };
    // Under mpirun: join the job first (every rank parses the same arguments).
    // Held to the end of main: dropping it ends MPI (MPI_Finalize) after the command.
    let _mpi = match processes::join() {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    processes::quiet_unless_primary();
    let result = processes::check_command(command_name(&cli.command)).and_then(|()| match cli.command {
        Command::Gen(a) => cmd::generate::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Prepare(a) => cmd::prepare::run(a),
        Command::Windows(a) => cmd::windows::run(a),
        Command::Train(a) => cmd::train::run(*a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Compare(a) => cmd::compare::run_compare(*a),
        Command::Scale(a) => cmd::compare::run_scale(*a),
        Command::Tune(a) => cmd::tune::run(*a),
        Command::Run(a) => cmd::study::run(a),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let world = trainbench_engine::collective::world();
            if world.size() > 1 {
                // The other ranks may be waiting in an exchange for this one: end the job, as
                // MPI does when a rank fails, with the rank in the message.
                world.abort(&format!("{e:#}").replace('\n', " "));
            }
            // One line: the chain of contexts joined by ": ".
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            // 1: a run started and failed (a study: some run failed); 2: the command could not
            // start because of its input (flags, files, data, parameters).
            if e.chain().any(|c| c.is::<runner::RunFailed>()) { ExitCode::from(1) } else { ExitCode::from(2) }
        }
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Gen(_) => "gen",
        Command::Inspect(_) => "inspect",
        Command::Prepare(_) => "prepare",
        Command::Windows(_) => "windows",
        Command::Train(_) => "train",
        Command::Predict(_) => "predict",
        Command::Export(_) => "export",
        Command::Compare(_) => "compare",
        Command::Scale(_) => "scale",
        Command::Tune(_) => "tune",
        Command::Run(_) => "run",
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
