//! Run tracking in MLflow, through a tracking server's REST API (`/api/2.0/mlflow/...`), as
//! `mlflow.log_params` / `log_metric` / `log_artifacts` would: every trainbench run becomes an
//! MLflow run with its parameters, its log's per-epoch or per-iteration metrics (step = epoch,
//! iteration or level; timestamps from the fit's own clock), its final scores and measurements,
//! and its files as artifacts (through the server's artifact proxy, `mlflow server`'s default).
//! A study is a parent run holding the report folder, its runs nested under it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::results::{RunRecord, RunStatus};

/// MLflow's limits per `log-batch` request.
const MAX_METRICS_PER_BATCH: usize = 1000;
const MAX_PARAMS_PER_BATCH: usize = 100;
/// MLflow's longest parameter value and tag value.
const MAX_PARAM_VALUE: usize = 6000;
const MAX_TAG_VALUE: usize = 8000;

/// A connection to a tracking server and the experiment runs go to.
pub struct Tracker {
    agent: ureq::Agent,
    /// `http://host:port`, without a trailing slash.
    base: String,
    experiment_id: String,
}

/// An MLflow run that is open.
pub struct MlflowRun {
    /// MLflow's run id.
    pub id: String,
    artifact_uri: String,
}

/// Milliseconds since the Unix epoch, MLflow's timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Tracker {
    /// Connects to the tracking server at `uri` and finds `experiment` there, creating it when
    /// missing; an error now, before any training, when the server cannot be used.
    pub fn open(uri: &str, experiment: &str) -> Result<Self> {
        let base = uri.trim().trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!(
                "MLflow tracking URI '{uri}': trainbench logs to a tracking server's REST API, so it must be \
                 http://HOST:PORT or https://... (start one with `mlflow server`)"
            );
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build();
        let mut tracker = Tracker { agent: config.into(), base, experiment_id: String::new() };
        let found = tracker.call("GET", "experiments/get-by-name", &[("experiment_name", experiment)], None);
        tracker.experiment_id = match found {
            Ok(v) => text(&v["experiment"]["experiment_id"]),
            Err(e) if e.to_string().contains("RESOURCE_DOES_NOT_EXIST") => {
                let created = tracker.call("POST", "experiments/create", &[], Some(json!({ "name": experiment })))?;
                text(&created["experiment_id"])
            }
            Err(e) => return Err(e.context(format!("cannot use the MLflow tracking server at {uri}"))),
        };
        if tracker.experiment_id.is_empty() {
            bail!("the MLflow server at {uri} gave no id for experiment '{experiment}'");
        }
        Ok(tracker)
    }

    /// One REST call to `/api/2.0/mlflow/{endpoint}`; MLflow's own error message on failure.
    fn call(&self, method: &str, endpoint: &str, query: &[(&str, &str)], body: Option<Value>) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let sent = match method {
            "GET" => {
                let mut request = self.agent.get(&url);
                for (k, v) in query {
                    request = request.query(*k, *v);
                }
                request.call()
            }
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(serde_json::to_string(&body.unwrap_or_else(|| json!({})))?),
        };
        let mut response = sent.with_context(|| format!("cannot reach the MLflow tracking server at {}", self.base))?;
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .map(|v| format!("{}: {}", text_of(&v["error_code"]), text_of(&v["message"])))
                .unwrap_or_else(|| text.chars().take(300).collect());
            bail!("MLflow {endpoint} answered {status}: {message}");
        }
        serde_json::from_str(&text).with_context(|| format!("MLflow {endpoint} answered with no JSON"))
    }

    /// Starts a run named `name` at `start_ms`, nested under `parent` when given.
    pub fn start_run(&self, name: &str, start_ms: i64, parent: Option<&MlflowRun>) -> Result<MlflowRun> {
        let mut tags = vec![
            json!({"key": "mlflow.runName", "value": name}),
            json!({"key": "mlflow.source.name", "value": "trainbench"}),
            json!({"key": "mlflow.source.type", "value": "LOCAL"}),
            json!({"key": "trainbench.version", "value": env!("CARGO_PKG_VERSION")}),
        ];
        if let Some(p) = parent {
            tags.push(json!({"key": "mlflow.parentRunId", "value": p.id}));
        }
        let body = json!({
            "experiment_id": self.experiment_id,
            "run_name": name,
            "start_time": start_ms,
            "tags": tags,
        });
        let created = self.call("POST", "runs/create", &[], Some(body))?;
        let info = &created["run"]["info"];
        Ok(MlflowRun { id: text(&info["run_id"]), artifact_uri: text(&info["artifact_uri"]) })
    }

    /// Logs `params` and `metrics` (key, value, timestamp ms, step) in batches of MLflow's size.
    pub fn log(
        &self,
        run: &MlflowRun,
        params: &BTreeMap<String, String>,
        metrics: &[(String, f64, i64, u64)],
    ) -> Result<()> {
        let params: Vec<Value> = params
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v.chars().take(MAX_PARAM_VALUE).collect::<String>()}))
            .collect();
        for chunk in params.chunks(MAX_PARAMS_PER_BATCH) {
            self.call("POST", "runs/log-batch", &[], Some(json!({"run_id": run.id, "params": chunk})))?;
        }
        // MLflow takes finite values only; a missing score is simply not logged.
        let metrics: Vec<Value> = metrics
            .iter()
            .filter(|m| m.1.is_finite())
            .map(|(k, v, t, s)| json!({"key": k, "value": v, "timestamp": t, "step": s}))
            .collect();
        for chunk in metrics.chunks(MAX_METRICS_PER_BATCH) {
            self.call("POST", "runs/log-batch", &[], Some(json!({"run_id": run.id, "metrics": chunk})))?;
        }
        Ok(())
    }

    /// Sets tag `key` of `run`.
    pub fn tag(&self, run: &MlflowRun, key: &str, value: &str) -> Result<()> {
        let value: String = value.chars().take(MAX_TAG_VALUE).collect();
        self.call("POST", "runs/set-tag", &[], Some(json!({"run_id": run.id, "key": key, "value": value})))?;
        Ok(())
    }

    /// Uploads `file` as artifact `name` (a relative path) of `run`, through the server's
    /// artifact proxy (`mlflow-artifacts:` URIs, `mlflow server`'s default) or into a local
    /// artifact folder (`file:` URIs).
    pub fn upload(&self, run: &MlflowRun, file: &Path, name: &str) -> Result<()> {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        self.upload_bytes(run, &bytes, name)
    }

    /// Uploads `bytes` as artifact `name` of `run` (see [`Tracker::upload`]).
    pub fn upload_bytes(&self, run: &MlflowRun, bytes: &[u8], name: &str) -> Result<()> {
        let uri = &run.artifact_uri;
        if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
            // mlflow-artifacts:/0/<run>/artifacts, or with the server's address: //host:port/0/...
            let path = match rest.strip_prefix("//") {
                Some(with_host) => with_host.find('/').map_or("", |i| &with_host[i..]),
                None => rest,
            };
            let url = format!("{}/api/2.0/mlflow-artifacts/artifacts{}/{name}", self.base, path.trim_end_matches('/'));
            let mut response = self
                .agent
                .put(&url)
                .header("Content-Type", "application/octet-stream")
                .send(bytes)
                .with_context(|| format!("cannot reach the MLflow tracking server at {}", self.base))?;
            if !response.status().is_success() {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                bail!(
                    "MLflow refused artifact {name}: {} {}",
                    response.status(),
                    body.chars().take(300).collect::<String>()
                );
            }
            return Ok(());
        }
        if let Some(dir) = uri
            .strip_prefix("file://")
            .or_else(|| uri.strip_prefix("file:"))
            .or_else(|| uri.starts_with('/').then_some(uri.as_str()))
        {
            let to = Path::new(dir).join(name);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&to, bytes).with_context(|| format!("cannot write {}", to.display()))?;
            return Ok(());
        }
        bail!(
            "the MLflow run's artifacts go to {uri}, which trainbench cannot write; start the server with \
             --serve-artifacts (mlflow server's default) or a local --default-artifact-root"
        )
    }

    /// Uploads every file under `dir` as artifacts under `prefix`.
    pub fn upload_dir(&self, run: &MlflowRun, dir: &Path, prefix: &str) -> Result<()> {
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
            for entry in entries {
                let path = entry.with_context(|| format!("cannot read {}", d.display()))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(dir) {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    let name = if prefix.is_empty() { rel } else { format!("{prefix}/{rel}") };
                    self.upload(run, &path, &name)?;
                }
            }
        }
        Ok(())
    }

    /// Ends `run` as FINISHED or FAILED at `end_ms`.
    pub fn end_run(&self, run: &MlflowRun, ok: bool, end_ms: i64) -> Result<()> {
        let status = if ok { "FINISHED" } else { "FAILED" };
        self.call("POST", "runs/update", &[], Some(json!({"run_id": run.id, "status": status, "end_time": end_ms})))?;
        Ok(())
    }

    /// Logs a finished trainbench run as its own MLflow run (nested under `parent` in a study),
    /// started at `start_ms`; returns it, still open, for artifacts.
    pub fn log_record(&self, record: &RunRecord, start_ms: i64, parent: Option<&MlflowRun>) -> Result<MlflowRun> {
        let run = self.start_run(&record.id, start_ms, parent)?;
        self.log(&run, &record_params(record), &record_metrics(record, start_ms))?;
        if let Some(error) = &record.error {
            self.tag(&run, "trainbench.error", error)?;
        }
        if !record.stop_reason.is_empty() {
            self.tag(&run, "trainbench.stop_reason", &record.stop_reason)?;
        }
        Ok(run)
    }
}

/// The run's settings and its model's parameters, as `mlflow.log_params` gets them.
pub fn record_params(r: &RunRecord) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = r.params.clone();
    let mut set = |k: &str, v: String| {
        params.entry(k.to_owned()).or_insert(v);
    };
    set("engine", r.engine.clone());
    set("model", r.model.clone());
    set("seed", r.seed.to_string());
    set("workers", r.workers.to_string());
    set("processes", r.processes.to_string());
    set("precision", r.precision.clone());
    set("train_rows", r.train_rows.to_string());
    if let Some(p) = r.partitions {
        set("partitions", p.to_string());
    }
    if let Some(p) = r.replicas {
        set("replicas", p.to_string());
    }
    if let Some(s) = r.sweep {
        set("sweep_fraction", s.fraction.to_string());
    }
    params
}

/// Every log entry's numbers with its step (loss, val_loss, val_accuracy and the engine's own:
/// accuracy, gradient_norm, nodes, ...), then the run's final scores (`test_*`) and
/// measurements at the last step.
pub fn record_metrics(r: &RunRecord, start_ms: i64) -> Vec<(String, f64, i64, u64)> {
    let mut metrics = Vec::new();
    let at = |seconds: f64| start_ms + (seconds * 1000.0) as i64;
    for e in &r.log {
        let (t, step) = (at(e.elapsed_seconds), e.step as u64);
        metrics.push(("loss".to_owned(), e.loss, t, step));
        if let Some(v) = e.valid_loss {
            metrics.push(("val_loss".to_owned(), v, t, step));
        }
        if let Some(v) = e.valid_accuracy {
            metrics.push(("val_accuracy".to_owned(), v, t, step));
        }
        for (k, v) in &e.extra {
            metrics.push((k.clone(), *v, t, step));
        }
    }
    let (t, step) = (at(r.fit_seconds + r.predict_seconds), r.log.last().map_or(0, |e| e.step as u64));
    let mut last = |k: &str, v: f64| metrics.push((k.to_owned(), v, t, step));
    if r.status == RunStatus::Ok {
        if let Some(s) = &r.scores {
            last("test_accuracy", s.accuracy);
            last("test_precision_macro", s.precision_macro);
            last("test_recall_macro", s.recall_macro);
            last("test_f1_macro", s.f1_macro);
            last("test_f1_weighted", s.f1_weighted);
            if let Some(v) = s.roc_auc {
                last("test_roc_auc", v);
            }
            if let Some(v) = s.log_loss {
                last("test_log_loss", v);
            }
        }
        last("fit_seconds", r.fit_seconds);
        last("predict_seconds", r.predict_seconds);
        last("iterations", r.iterations as f64);
        last("cpu_seconds", r.cpu_seconds);
        last("fit_peak_memory_bytes", r.peak_rss_bytes as f64);
        last("process_peak_memory_bytes", r.process_peak_rss_bytes as f64);
        last("fit_rows_per_second", r.rows_per_second);
        if let Some(v) = r.time_to_target_seconds {
            last("time_to_target_seconds", v);
        }
        if let Some(v) = r.communication_seconds {
            last("communication_seconds", v);
        }
    }
    metrics
}

/// A JSON string or number as text ("" for anything else).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn text_of(v: &Value) -> String {
    let t = text(v);
    if t.is_empty() { v.to_string() } else { t }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_tracking_server_is_accepted() {
        let err = super::Tracker::open("file:./mlruns", "x").err().unwrap().to_string();
        assert!(err.contains("must be http://HOST:PORT"), "{err}");
        let err = super::Tracker::open("http://127.0.0.1:9", "x").err().unwrap();
        assert!(
            format!("{err:#}").contains("cannot reach the MLflow tracking server at http://127.0.0.1:9"),
            "{err:#}"
        );
    }
}
