//! Helpers the CLI test binaries share: run the binary, read its output.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// What a test needs of the machine (a memory cgroup, network namespaces: root): where it cannot
/// be had, the test says `SKIPPED test: why` and gets `None`, except under `CI=true`, where CI
/// must see the test run and it fails with `ci_failure: why`.
pub fn required<T>(made: Result<T, String>, ci_failure: &str, test: &str) -> Option<T> {
    match made {
        Ok(t) => Some(t),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => panic!("{ci_failure}: {why}"),
        Err(why) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            None
        }
    }
}

/// Runs `trainbench ARGS` in `dir` and waits for it.
pub fn trainbench(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainbench")).args(args).current_dir(dir).output().expect("binary runs")
}

/// A model file saved by `train --save` in `dir`.
pub fn saved(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

/// The losses of a saved model's log, as bits.
pub fn loss_bits(model: &serde_json::Value) -> Vec<u64> {
    model["log"]["entries"].as_array().unwrap().iter().map(|e| e["loss"].as_f64().unwrap().to_bits()).collect()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one JSON object a successful `--json` run prints.
pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "failed: {}", stderr(o));
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", stdout(o)))
}

/// The one JSON object a `--json` study prints when some of its runs failed (exit code 1).
pub fn json_with_failures(o: &Output) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(1), "expected failed runs: {}", stderr(o));
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", stdout(o)))
}

/// Probabilities and predicted class of each row of a CSV written by `predict` (after its
/// `line` column) or by the ONNX Runtime script.
fn read_predictions(path: &Path, skip_header: bool, skip_first_column: bool) -> Vec<(Vec<f64>, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(usize::from(skip_header))
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            if skip_first_column {
                cells.remove(0);
            }
            let label = cells.pop().unwrap().to_owned();
            (cells.iter().map(|c| c.parse().unwrap()).collect(), label)
        })
        .collect()
}

/// The exported model's input columns, the rows compared, and the largest difference of a
/// probability.
pub struct Agreement {
    pub inputs: u64,
    pub rows: usize,
    pub gap: f64,
}

/// Exports `model` (in `dir`) to ONNX, runs it in ONNX Runtime (PyPI `onnxruntime`; `.ci/run`
/// installs it) on the raw rows of `data`, and compares with `trainbench predict` on them: the
/// predicted classes must be equal; returns the largest probability gap.
pub fn onnx_agrees_with_predict(dir: &Path, name: &str, model: &str, data: &str) -> Agreement {
    let onnx = format!("{name}.onnx");
    let e = json(&trainbench(&["export", "--model", model, "--out", &onnx, "--json"], dir));
    let p = trainbench(&["predict", "--model", model, "--data", data, "--out", "want.csv"], dir);
    assert!(p.status.success(), "{name}: {}", stderr(&p));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/onnx_predict.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(dir.join(&onnx))
        .arg(dir.join(data))
        .arg(dir.join("got.csv"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name}: ONNX Runtime failed (is `onnxruntime` installed? .ci/run installs it): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (want, got) =
        (read_predictions(&dir.join("want.csv"), true, true), read_predictions(&dir.join("got.csv"), false, false));
    assert_eq!(got.len(), want.len(), "{name}");
    let mut gap = 0f64;
    for (k, ((wp, wl), (gp, gl))) in want.iter().zip(&got).enumerate() {
        assert_eq!(wp.len(), gp.len(), "{name}: row {k}");
        for (a, b) in wp.iter().zip(gp) {
            gap = gap.max((a - b).abs());
        }
        assert_eq!(wl, gl, "{name}: row {k}: {wp:?} vs {gp:?}");
    }
    Agreement { inputs: e["inputs"].as_u64().unwrap(), rows: want.len(), gap }
}
