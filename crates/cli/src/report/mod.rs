//! A study's report folder: `results.json` (the [`crate::results`] model), `metrics.csv`, and a
//! self-contained `report.html`; the statistics and the answers they are written from.

mod answers;
mod html;
mod stats;
pub mod svg;

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

pub use self::answers::{answers, compare_families};
pub use self::stats::{Estimate, Group, groups, power_law_exponent};
use crate::results::{Results, RunStatus};

/// Writes `results.json`, `metrics.csv` and `report.html` into `dir`.
pub fn write_all(dir: &Path, results: &Results) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("results.json", serde_json::to_string_pretty(results)?)?;
    write("metrics.csv", metrics_csv(results))?;
    write("report.html", html::html(results))
}

fn metrics_csv(results: &Results) -> String {
    let mut out = String::from(
        "id,engine,model,seed,workers,fraction,train_rows,status,fit_seconds,eval_seconds,iterations,\
         time_to_target_seconds,mean_epoch_seconds,rows_per_second,accuracy,precision_macro,recall_macro,f1_macro,\
         roc_auc,log_loss,cpu_seconds,peak_rss_bytes,process_peak_rss_bytes\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in &results.runs {
        let s = r.scores.as_ref();
        let epoch =
            (!r.epoch_seconds.is_empty()).then(|| r.epoch_seconds.iter().sum::<f64>() / r.epoch_seconds.len() as f64);
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.id,
            r.engine,
            r.model,
            r.seed,
            r.workers,
            r.sweep.map_or(1.0, |s| s.fraction),
            r.train_rows,
            if r.status == RunStatus::Ok { "ok" } else { "failed" },
            r.fit_seconds,
            r.eval_seconds,
            r.iterations,
            opt(r.time_to_target_seconds),
            opt(epoch),
            r.rows_per_second,
            opt(s.map(|s| s.accuracy)),
            opt(s.map(|s| s.precision_macro)),
            opt(s.map(|s| s.recall_macro)),
            opt(s.map(|s| s.f1_macro)),
            opt(s.and_then(|s| s.roc_auc)),
            opt(s.and_then(|s| s.log_loss)),
            r.cpu_seconds,
            r.peak_rss_bytes,
            r.process_peak_rss_bytes
        );
    }
    out
}

/// Bytes in MiB.
pub(crate) fn mib(bytes: f64) -> f64 {
    bytes / (1u64 << 20) as f64
}
