//! `trainbench export`: a saved model as an ONNX file, its preprocessing in front.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use trainbench_engine::SavedModel;

use crate::onnx;

/// Write a saved model as ONNX (the fitted preprocessing as ONNX ops in front), for ONNX Runtime
/// or any ONNX runtime.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A model saved by `trainbench train --save`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The ONNX file to write.
    #[arg(long, value_name = "FILE.onnx")]
    pub out: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let saved = SavedModel::load(&args.model)?;
    let bytes = onnx::export(&saved).with_context(|| format!("cannot export {}", args.model.display()))?;
    std::fs::write(&args.out, &bytes).with_context(|| format!("cannot write {}", args.out.display()))?;
    let inputs = saved.preprocessor.input_columns().len();
    if args.json {
        let value = serde_json::json!({
            "out": args.out,
            "bytes": bytes.len(),
            "engine": saved.engine,
            "model": saved.spec.kind.name(),
            "inputs": inputs,
            "classes": saved.preprocessor.classes(),
        });
        println!("{value}");
    } else {
        println!(
            "{} {} written to {} ({} bytes): {inputs} input columns (numeric as double [N,1], categorical as \
             string [N,1]), outputs probabilities float [N,{}] and prediction string [N]",
            saved.engine,
            saved.spec.kind.name(),
            args.out.display(),
            bytes.len(),
            saved.preprocessor.classes().len()
        );
    }
    Ok(())
}
