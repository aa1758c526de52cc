//! `--mlflow` against a real MLflow tracking server whose address is in `TRAINBENCH_MLFLOW_URI`
//! (`.ci/run` starts one with `scripts/mlflow-server.sh`). Without it the server tests print that
//! they were skipped, on the terminal, and pass.

mod common;

use std::io::Write;

use common::{json, stderr, trainbench};
use serde_json::{Value, json};

fn server(test: &str) -> Option<String> {
    match std::env::var("TRAINBENCH_MLFLOW_URI") {
        Ok(r) if !r.trim().is_empty() => Some(r.trim().trim_end_matches('/').to_owned()),
        _ => {
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: TRAINBENCH_MLFLOW_URI is not set");
            None
        }
    }
}

/// MLflow's REST API, read back as a user's script would.
struct Mlflow {
    base: String,
    agent: ureq::Agent,
}

impl Mlflow {
    fn new(base: &str) -> Self {
        Self { base: base.to_owned(), agent: ureq::Agent::new_with_defaults() }
    }

    fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Value {
        let mut request = self.agent.get(format!("{}/api/2.0/mlflow/{endpoint}", self.base));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        let text = request.call().unwrap().body_mut().read_to_string().unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn post(&self, endpoint: &str, body: Value) -> Value {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let sent = self.agent.post(url).header("Content-Type", "application/json").send(body.to_string());
        let text = sent.unwrap().body_mut().read_to_string().unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The experiment's runs, by name.
    fn runs(&self, experiment: &str) -> Vec<Value> {
        let id = self.get("experiments/get-by-name", &[("experiment_name", experiment)])["experiment"]["experiment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let found = self.post("runs/search", json!({"experiment_ids": [id], "max_results": 100}));
        found["runs"].as_array().cloned().unwrap_or_default()
    }

    fn artifact(&self, run: &Value, name: &str) -> Vec<u8> {
        let uri = run["info"]["artifact_uri"].as_str().unwrap();
        let path = uri.strip_prefix("mlflow-artifacts:").unwrap();
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts{path}/{name}", self.base);
        self.agent.get(url).call().unwrap().body_mut().read_to_vec().unwrap()
    }

    fn history(&self, run: &Value, key: &str) -> Vec<(u64, f64)> {
        let id = run["info"]["run_id"].as_str().unwrap();
        let h = self.get("metrics/get-history", &[("run_id", id), ("metric_key", key)]);
        let mut points: Vec<(u64, f64)> = h["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["step"].as_str().map_or_else(|| m["step"].as_u64().unwrap(), |s| s.parse().unwrap()),
                    m["value"].as_f64().unwrap(),
                )
            })
            .collect();
        points.sort_by_key(|p| p.0);
        points
    }
}

/// A run's value of `key` among its params, metrics (latest) or tags.
fn field<'a>(run: &'a Value, kind: &str, key: &str) -> Option<&'a Value> {
    run["data"][kind].as_array()?.iter().find(|p| p["key"] == key).map(|p| &p["value"])
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{nanos}")
}

#[test]
fn an_unreachable_server_fails_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "100", "--out", "h.csv", "--json"], d));
    let o = trainbench(&["train", "--model", "lr", "--data", "h.csv", "--mlflow", "http://127.0.0.1:9"], d);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot reach the MLflow tracking server at http://127.0.0.1:9"), "{}", stderr(&o));
    let o = trainbench(&["train", "--model", "lr", "--data", "h.csv", "--mlflow", "file:./mlruns"], d);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("must be http://HOST:PORT"), "{}", stderr(&o));
}

#[test]
fn train_logs_params_metrics_per_epoch_scores_and_the_model() {
    let Some(uri) = server("train_logs_params_metrics_per_epoch_scores_and_the_model") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "3000", "--seed", "3", "--out", "h.csv", "--json"], d));
    let experiment = unique("train");
    let t = json(&trainbench(
        &[
            "train",
            "--engine",
            "tensor",
            "--model",
            "mlp",
            "--data",
            "h.csv",
            "--epochs",
            "3",
            "--valid-fraction",
            "0.1",
            "--save",
            "m.json",
            "--json",
            "--mlflow",
            &uri,
            "--mlflow-experiment",
            &experiment,
        ],
        d,
    ));
    let mlflow = Mlflow::new(&uri);
    let runs = mlflow.runs(&experiment);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(run["info"]["run_name"], "tensor/mlp/seed42");
    for (k, v) in [("engine", "tensor"), ("model", "mlp"), ("epochs", "3"), ("seed", "42")] {
        assert_eq!(field(run, "params", k).and_then(Value::as_str), Some(v), "param {k}");
    }
    let accuracy = field(run, "metrics", "test_accuracy").and_then(Value::as_f64);
    assert_eq!(accuracy, t["scores"]["accuracy"].as_f64());
    // The loss of every epoch, at its step, as the saved model's log has it.
    let model: Value = serde_json::from_slice(&std::fs::read(d.join("m.json")).unwrap()).unwrap();
    let want: Vec<(u64, f64)> = model["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["step"].as_u64().unwrap(), e["loss"].as_f64().unwrap()))
        .collect();
    assert_eq!(want.len(), 3);
    assert_eq!(mlflow.history(run, "loss"), want);
    assert_eq!(mlflow.history(run, "val_accuracy").len(), 3);
    // The model file and what --json printed, as artifacts.
    assert_eq!(mlflow.artifact(run, "model/m.json"), std::fs::read(d.join("m.json")).unwrap());
    let printed: Value = serde_json::from_slice(&mlflow.artifact(run, "run.json")).unwrap();
    assert_eq!(printed["scores"], t["scores"]);
}

#[test]
fn a_study_is_a_parent_run_with_its_runs_nested_and_the_report_attached() {
    let Some(uri) = server("a_study_is_a_parent_run_with_its_runs_nested_and_the_report_attached") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let experiment = unique("compare");
    let results = json(&trainbench(
        &[
            "compare",
            "--rows",
            "3000",
            "--runs",
            "spark:lr,tensor:mlp",
            "--seeds",
            "1",
            "--param",
            "tensor.epochs=2",
            "--out",
            "rep",
            "--json",
            "--mlflow",
            &uri,
            "--mlflow-experiment",
            &experiment,
        ],
        d,
    ));
    let mlflow = Mlflow::new(&uri);
    let runs = mlflow.runs(&experiment);
    assert_eq!(runs.len(), 3, "{runs:?}");
    let parent = runs.iter().find(|r| field(r, "tags", "mlflow.parentRunId").is_none()).unwrap();
    assert_eq!(field(parent, "params", "command").and_then(Value::as_str), Some("compare"));
    assert_eq!(parent["info"]["status"], "FINISHED");
    let parent_id = parent["info"]["run_id"].clone();
    for r in results["runs"].as_array().unwrap() {
        let child =
            runs.iter().find(|c| c["info"]["run_name"] == r["id"]).unwrap_or_else(|| panic!("{} not logged", r["id"]));
        assert_eq!(field(child, "tags", "mlflow.parentRunId"), Some(&parent_id));
        assert_eq!(field(child, "metrics", "test_f1_macro").and_then(Value::as_f64), r["scores"]["f1_macro"].as_f64());
        assert_eq!(mlflow.history(child, "loss").len(), r["log"].as_array().unwrap().len());
    }
    let report = mlflow.artifact(parent, "report/results.json");
    assert_eq!(report, std::fs::read(d.join("rep/results.json")).unwrap());
    assert!(!mlflow.artifact(parent, "report/report.html").is_empty());
}

#[test]
fn tune_logs_a_parent_run_with_every_fit_and_the_best_score() {
    let Some(uri) = server("tune_logs_a_parent_run_with_every_fit_and_the_best_score") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "2000", "--seed", "5", "--out", "h.csv", "--json"], d));
    let experiment = unique("tune");
    let t = json(&trainbench(
        &[
            "tune",
            "--engine",
            "spark",
            "--model",
            "tree",
            "--data",
            "h.csv",
            "--grid",
            "max_depth=2,4",
            "--folds",
            "2",
            "--json",
            "--mlflow",
            &uri,
            "--mlflow-experiment",
            &experiment,
        ],
        d,
    ));
    let runs = Mlflow::new(&uri).runs(&experiment);
    // The parent, and one run per trial and fold.
    assert_eq!(runs.len(), 1 + 2 * 2, "{runs:?}");
    let parent = runs.iter().find(|r| field(r, "tags", "mlflow.parentRunId").is_none()).unwrap();
    assert_eq!(parent["info"]["run_name"], "tune spark/tree");
    assert_eq!(field(parent, "metrics", "best_accuracy").and_then(Value::as_f64), t["best"]["score"].as_f64());
    let best_depth = t["best"]["params"]["max_depth"].as_str().unwrap();
    assert_eq!(
        field(parent, "tags", "trainbench.best_params").and_then(Value::as_str),
        Some(&*format!("max_depth={best_depth}"))
    );
    let parent_id = &parent["info"]["run_id"];
    for r in runs.iter().filter(|r| r["info"]["run_id"] != *parent_id) {
        assert_eq!(field(r, "tags", "mlflow.parentRunId"), Some(parent_id));
        assert!(field(r, "metrics", "test_accuracy").is_some(), "{r}");
    }
}
