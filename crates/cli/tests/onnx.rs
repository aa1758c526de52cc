//! `trainbench export` against ONNX Runtime (PyPI `onnxruntime`; `.ci/run` installs it): the ONNX
//! file, its preprocessing included, gives the probabilities `trainbench predict` gives on the same
//! raw rows (string categories and missing values among them), to 1e-5.

mod common;

use common::{json, onnx_agrees_with_predict, stderr, trainbench};

#[test]
fn exported_models_give_predicts_probabilities_in_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "1", "--out", "train.csv", "--json"], d));
    json(&trainbench(&["gen", "mixed", "--rows", "600", "--seed", "2", "--out", "new.csv", "--json"], d));
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
        let worst = onnx_agrees_with_predict(d, name, &model, "new.csv");
        assert_eq!((worst.inputs, worst.rows), (8, 600), "{name}");
        assert!(worst.gap <= 1e-5, "{name}: probabilities differ by up to {}", worst.gap);
    }
}
