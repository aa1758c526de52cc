//! `trainbench export` against ONNX Runtime (PyPI `onnxruntime`; `.ci/run` installs it): the ONNX
//! file, its preprocessing included, gives the probabilities `trainbench predict` gives on the same
//! raw rows (string categories and missing values among them), to 1e-5.

mod common;

use std::process::Command;

use common::{json, stderr, trainbench};

/// Probabilities and predicted class of each row of a CSV written by `predict` (after its
/// `line` column) or by the ONNX Runtime script.
fn read(path: &std::path::Path, skip_header: bool, skip_first_column: bool) -> Vec<(Vec<f64>, String)> {
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

#[test]
fn exported_models_give_predicts_probabilities_in_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "1", "--out", "train.csv", "--json"], d));
    json(&trainbench(&["gen", "mixed", "--rows", "600", "--seed", "2", "--out", "new.csv", "--json"], d));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/onnx_predict.py");
    let cases: [(&str, &[&str]); 12] = [
        ("lr", &["--engine", "spark", "--model", "lr"]),
        (
            "lr-minmax-index",
            &["--engine", "spark", "--model", "lr", "--scaling", "minmax", "--encoding", "index", "--unseen", "ignore"],
        ),
        ("mlp", &["--engine", "spark", "--model", "mlp", "--hidden", "8,4", "--max-iter", "30"]),
        (
            "mlp-f32",
            &["--engine", "spark", "--model", "mlp", "--hidden", "8", "--max-iter", "30", "--precision", "f32"],
        ),
        ("tree", &["--engine", "spark", "--model", "tree", "--max-depth", "6"]),
        // Index-encoded categories: the tree splits them by category sets.
        (
            "tree-index",
            &["--engine", "spark", "--model", "tree", "--max-depth", "6", "--encoding", "index", "--unseen", "ignore"],
        ),
        ("tensor-mlp", &["--engine", "tensor", "--model", "mlp", "--hidden", "16,8", "--epochs", "2"]),
        (
            "tensor-mlp-gelu",
            &["--engine", "tensor", "--model", "mlp", "--hidden", "8", "--epochs", "2", "--activation", "gelu"],
        ),
        // 15 features: 6 numeric, city one-hot (6), device one-hot (3).
        (
            "tensor-cnn",
            &[
                "--engine",
                "tensor",
                "--model",
                "cnn",
                "--filters",
                "4,4",
                "--kernel-size",
                "3",
                "--dense",
                "8",
                "--epochs",
                "1",
            ],
        ),
        (
            "tensor-cnn2d",
            &[
                "--engine",
                "tensor",
                "--model",
                "cnn2d",
                "--image-shape",
                "5x3",
                "--filters",
                "3",
                "--kernel-size",
                "2",
                "--dense",
                "8",
                "--epochs",
                "1",
            ],
        ),
        (
            "tensor-lstm",
            &["--engine", "tensor", "--model", "lstm", "--units", "6", "--step-features", "3", "--epochs", "1"],
        ),
        (
            "tensor-gru",
            &["--engine", "tensor", "--model", "gru", "--units", "6", "--step-features", "5", "--epochs", "1"],
        ),
    ];
    for (name, args) in cases {
        let model = format!("{name}.json");
        let t = trainbench(&[&["train", "--data", "train.csv", "--save", &model, "-q"], args].concat(), d);
        assert!(t.status.success(), "{name}: {}", stderr(&t));
        if name == "tree-index" {
            let state = std::fs::read_to_string(d.join(&model)).unwrap();
            assert!(state.contains("Categories"), "the tree has no category-set split to export");
        }
        let onnx = format!("{name}.onnx");
        let e = json(&trainbench(&["export", "--model", &model, "--out", &onnx, "--json"], d));
        assert_eq!(e["inputs"], 8, "{name}: {e}");
        let p = trainbench(&["predict", "--model", &model, "--data", "new.csv", "--out", "want.csv"], d);
        assert!(p.status.success(), "{name}: {}", stderr(&p));
        let o = Command::new("python3")
            .arg(script)
            .arg(d.join(&onnx))
            .arg(d.join("new.csv"))
            .arg(d.join("got.csv"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: ONNX Runtime failed (is `onnxruntime` installed? .ci/run installs it): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (want, got) = (read(&d.join("want.csv"), true, true), read(&d.join("got.csv"), false, false));
        assert_eq!(want.len(), 600, "{name}");
        assert_eq!(got.len(), want.len(), "{name}");
        let mut worst = 0f64;
        for (k, ((wp, wl), (gp, gl))) in want.iter().zip(&got).enumerate() {
            assert_eq!(wp.len(), gp.len(), "{name}: row {k}");
            for (a, b) in wp.iter().zip(gp) {
                worst = worst.max((a - b).abs());
            }
            assert_eq!(wl, gl, "{name}: row {k}: {wp:?} vs {gp:?}");
        }
        assert!(worst <= 1e-5, "{name}: probabilities differ by up to {worst}");
    }
}
