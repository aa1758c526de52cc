//! `--spark-remote` from the command line, against a real Spark Connect server whose address is
//! in `TRAINBENCH_SPARK_REMOTE` (`.ci/run` starts one with `scripts/spark-connect-server.sh`).
//! Without it the server tests print that they were skipped, on the terminal, and pass.
#![cfg(feature = "spark-connect")]

mod common;

use std::io::Write;
use std::process::Command;

use common::{json, json_with_failures, onnx_agrees_with_predict, trainbench};

fn remote(test: &str) -> Option<String> {
    match std::env::var("TRAINBENCH_SPARK_REMOTE") {
        Ok(r) if !r.trim().is_empty() => Some(r.trim().to_owned()),
        _ => {
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: TRAINBENCH_SPARK_REMOTE is not set");
            None
        }
    }
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "100", "--out", "h.csv", "--json"], d));
    let o = trainbench(
        &["train", "--engine", "spark", "--model", "lr", "--data", "h.csv", "--spark-remote", "sc://127.0.0.1:9"],
        d,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cannot reach a Spark Connect server at sc://127.0.0.1:9"), "{err}");
    let o = trainbench(
        &["train", "--engine", "tensor", "--model", "mlp", "--data", "h.csv", "--spark-remote", "sc://127.0.0.1:9"],
        d,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--spark-remote trains the spark engine's models"));
    let o = trainbench(
        &[
            "tune",
            "--model",
            "lr",
            "--data",
            "h.csv",
            "--grid",
            "reg_param=0,0.1",
            "--spark-remote",
            "sc://127.0.0.1:9",
        ],
        d,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("tune searches with the embedded engines"));
    // In a study the run is recorded as failed, with the reason; the other runs go on.
    let o = trainbench(
        &[
            "compare",
            "--data",
            "h.csv",
            "--runs",
            "spark:lr,spark:tree",
            "--seeds",
            "1",
            "--spark-remote",
            "sc://127.0.0.1:9",
            "--out",
            "rep",
            "--json",
        ],
        d,
    );
    let results = json_with_failures(&o);
    for run in results["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "failed");
        assert!(run["error"].as_str().unwrap().contains("sc://127.0.0.1:9"), "{run}");
        assert!(run["scores"].is_null());
    }
}

#[test]
fn train_and_compare_on_spark_through_spark_connect() {
    let Some(remote) = remote("train_and_compare_on_spark_through_spark_connect") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "3000", "--seed", "2", "--out", "h.csv", "--json"], d));
    let data = d.join("h.csv").display().to_string();
    // A relative path is sent to the server as this machine's absolute path.
    let t = json(&trainbench(
        &["train", "--engine", "spark", "--model", "tree", "--data", "h.csv", "--spark-remote", &remote, "--json"],
        d,
    ));
    for key in ["accuracy", "precision_macro", "recall_macro", "f1_macro"] {
        assert!(t["scores"][key].as_f64().is_some(), "no {key} in {t}");
    }
    assert!(t["fit_seconds"].as_f64().is_some() && t["cluster"]["spark_version"].is_string(), "{t}");
    assert_eq!(t["label"], "label");
    assert!(t["scores"]["accuracy"].as_f64().unwrap() > 0.6, "{t}");
    let spark_accuracy = t["cluster"]["spark_accuracy"].as_f64().unwrap();
    assert!((t["scores"]["accuracy"].as_f64().unwrap() - spark_accuracy).abs() < 2e-3, "{t}");
    assert!(t["peak_rss_bytes"].as_u64().unwrap() > 0, "a local server's memory is measured: {t}");
    // MLlib's own count of the work: the fitted tree's depth (levels), as the embedded engine logs.
    let depth = t["iterations"].as_u64().unwrap();
    assert!((1..=5).contains(&depth), "{t}");
    for phase in ["read", "preprocess", "fit", "predict"] {
        assert!(t["phase_seconds"][phase].as_f64().unwrap() > 0.0, "{t}");
    }

    // compare: spark runs on the cluster, tensor runs here, one report.
    let results = json(&trainbench(
        &[
            "compare",
            "--data",
            &data,
            "--runs",
            "spark:lr,tensor:mlp",
            "--seeds",
            "1",
            "--param",
            "tensor.epochs=2",
            "--spark-remote",
            &remote,
            "--out",
            "rep",
            "--json",
        ],
        d,
    ));
    let runs = results["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "ok", "{}", runs[0]);
    assert_eq!(runs[0]["workers"], 0);
    assert_eq!(runs[0]["cluster"]["remote"], remote.as_str());
    assert!(runs[0]["scores"]["accuracy"].as_f64().unwrap() > 0.6);
    // Spark's summary.totalIterations of the LogisticRegression it fitted.
    assert!(runs[0]["iterations"].as_u64().unwrap() >= 1, "{}", runs[0]);
    assert!(runs[1]["cluster"].is_null() && runs[1]["status"] == "ok");
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/results.schema.json");
    let check = Command::new("python3")
        .args(["-c", "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))"])
        .arg(d.join("rep/results.json"))
        .arg(schema)
        .output()
        .expect("python3 runs");
    assert!(check.status.success(), "results.json does not validate: {}", String::from_utf8_lossy(&check.stderr));
}

/// `train --spark-remote --save`: Spark's fitted stages and model are read back. The saved model
/// gives Spark's probabilities on the test rows (the read-back check, row by row), `predict`
/// scores the raw test file as Spark did, and its ONNX export agrees with `predict`.
#[test]
fn a_model_trained_on_spark_is_saved_predicted_and_exported() {
    let Some(remote) = remote("a_model_trained_on_spark_is_saved_predicted_and_exported") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One generated file cut into training and test rows (another seed draws another rule).
    let generate = |args: &[&str], train: &str, test: &str, test_rows: usize| {
        json(&trainbench(&[&["gen"], args, &["--out", "all.csv", "--json"]].concat(), d));
        let text = std::fs::read_to_string(d.join("all.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = lines.len() - test_rows;
        std::fs::write(d.join(train), format!("{}\n", lines[..cut].join("\n"))).unwrap();
        // A city never seen in training on some test rows: Spark's "keep" slot takes it.
        let test_text = format!("{}\n{}\n", lines[0], lines[cut..].join("\n")).replacen("Lisbon", "Oslo", 20);
        std::fs::write(d.join(test), test_text).unwrap();
    };
    generate(&["mixed", "--rows", "2400", "--seed", "3"], "train.csv", "test.csv", 400);
    let multiclass = ["multiclass", "--classes", "3", "--features", "6", "--rows", "1800", "--seed", "5"];
    generate(&multiclass, "mc.csv", "mc-test.csv", 300);
    let cases: [(&str, &str, &str, u64, &[&str]); 4] = [
        ("lr", "train.csv", "test.csv", 8, &["--model", "lr"]),
        ("tree", "train.csv", "test.csv", 8, &["--model", "tree", "--max-depth", "6"]),
        ("mlp", "train.csv", "test.csv", 8, &["--model", "mlp", "--hidden", "8", "--max-iter", "40"]),
        ("lr-multinomial", "mc.csv", "mc-test.csv", 6, &["--model", "lr"]),
    ];
    for (name, train, test, inputs, args) in cases {
        let model = format!("{name}.json");
        let common = ["train", "--engine", "spark", "--data", train, "--test-data", test, "--spark-remote", &remote];
        let t = json(&trainbench(&[&common[..], &["--save", &model, "--json"], args].concat(), d));
        let rows = t["test_rows"].as_u64().unwrap();
        assert_eq!(t["read_back"]["rows"].as_u64(), Some(rows.min(1000)), "{name}: {t}");
        let gap = t["read_back"]["max_gap"].as_f64().unwrap();
        assert!(gap <= 1e-5, "{name}: the saved model differs from Spark's probabilities by {gap}");
        // The raw test file through the saved model: Spark's accuracy (a row whose two best
        // classes tie within the gap may go either way).
        let p = json(&trainbench(&["predict", "--model", &model, "--data", test, "--out", "p.csv", "--json"], d));
        assert_eq!(p["labelled_rows"].as_u64(), Some(rows), "{name}");
        let (ours, spark) = (p["accuracy"].as_f64().unwrap(), t["scores"]["accuracy"].as_f64().unwrap());
        assert!((ours - spark).abs() <= 1.0 / rows as f64 + 1e-12, "{name}: predict {ours} vs Spark {spark}");
        let onnx = onnx_agrees_with_predict(d, name, &model, test);
        assert_eq!((onnx.inputs, onnx.rows as u64), (inputs, rows), "{name}");
        assert!(onnx.gap <= 1e-5, "{name}: ONNX differs from predict by {}", onnx.gap);
    }
}

/// A second, private server is killed while a study runs on it: its runs are recorded as failed
/// with the reason, nothing partial is reported as complete, and the study itself finishes.
#[test]
fn a_server_lost_mid_run_fails_the_run() {
    if remote("a_server_lost_mid_run_fails_the_run").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/spark-connect-server.sh");
    let state = d.join("server");
    let started = Command::new(script)
        .arg("start")
        .env("SPARK_STATE", &state)
        .current_dir(d)
        .output()
        .expect("the server script runs");
    assert!(started.status.success(), "second server: {}", String::from_utf8_lossy(&started.stderr));
    let address = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let pid_file = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "pid"))
        .expect("the server wrote its PID file");
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
    // Whatever happens below, the private server does not outlive the test.
    struct KillOnDrop(String);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("kill").args(["-9", &self.0]).status();
        }
    }
    let _server = KillOnDrop(pid.clone());

    json(&trainbench(&["gen", "higgs-like", "--rows", "20000", "--seed", "4", "--out", "h.csv", "--json"], d));
    let data = d.join("h.csv").display().to_string();
    let study = Command::new(env!("CARGO_BIN_EXE_trainbench"))
        .args(["compare", "--data", &data, "--runs", "spark:mlp,spark:lr", "--seeds", "1", "--spark-remote", &address])
        .args(["--param", "mlp.hidden=128,128", "--param", "mlp.max_iter=2000", "--out", "rep", "--json"])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(8));
    let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(killed.success());
    let o = study.wait_with_output().unwrap();
    let results = json_with_failures(&o);
    for run in results["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "failed", "{run}");
        assert!(run["scores"].is_null(), "{run}");
        assert!(run["error"].as_str().unwrap().contains(&address), "{run}");
    }
}
