//! End-to-end tests of the tensor engine from the command line (train, predict, resume after a
//! kill) and of `compare` / `scale` and their report folder.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{json, trainbench};

fn generate(dir: &Path, rows: &str) {
    json(&trainbench(&["gen", "higgs-like", "--rows", rows, "--seed", "5", "--out", "h.csv", "--json"], dir));
}

#[test]
fn windows_of_a_time_series_train_an_lstm_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    // Two channels of a slow wave; the label of step t says whether channel a rose into it.
    let mut text = String::from("a,b,moved\n");
    let a = |t: usize| (t as f64 * 0.3).sin();
    for t in 0..700 {
        let moved = if t > 0 && a(t) <= a(t - 1) { "down" } else { "up" };
        text.push_str(&format!("{:.5},{:.5},{moved}\n", a(t), (t as f64 * 0.3).cos()));
    }
    std::fs::write(dir.path().join("series.csv"), text).unwrap();
    let w = json(&trainbench(
        &[
            "windows",
            "--data",
            "series.csv",
            "--label",
            "moved",
            "--window",
            "6",
            "--horizon",
            "1",
            "--out",
            "w.csv",
            "--json",
        ],
        dir.path(),
    ));
    assert_eq!(w["windows"], 700 - 6 - 1 + 1);
    assert_eq!(w["step_features"], 2);
    let header = std::fs::read_to_string(dir.path().join("w.csv")).unwrap();
    assert!(header.starts_with("a_t-5,b_t-5,a_t-4,"), "{}", &header[..60]);

    let run = json(&trainbench(
        &[
            "train",
            "--engine",
            "tensor",
            "--model",
            "lstm",
            "--data",
            "w.csv",
            "--label",
            "moved",
            "--step-features",
            "2",
            "--units",
            "16",
            "--epochs",
            "20",
            "--batch-size",
            "16",
            "--learning-rate",
            "0.01",
            "--chronological",
            "--json",
        ],
        dir.path(),
    ));
    // The last fifth of the windows, in time order, is the test.
    assert_eq!(run["test_rows"], 139);
    let acc = run["scores"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "LSTM over windows reached only {acc}");

    // A string column cannot be cut into a numeric series: one line, exit code 2.
    std::fs::write(dir.path().join("bad.csv"), "a,city,y\n1,Oslo,p\n2,Rome,q\n3,Oslo,p\n").unwrap();
    let o =
        trainbench(&["windows", "--data", "bad.csv", "--label", "y", "--window", "2", "--out", "x.csv"], dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("column 'city'") && err.contains("numeric"), "{err}");
}

#[test]
fn tensor_train_save_predict_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, "4000");
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
            "--batch-size",
            "64",
            "--save",
            "m.json",
            "--json",
        ],
        d,
    ));
    for key in ["accuracy", "precision_macro", "recall_macro", "f1_macro"] {
        assert!(t["scores"][key].as_f64().is_some(), "no {key} in {t}");
    }
    for key in ["fit_seconds", "peak_rss_bytes"] {
        assert!(t[key].as_f64().is_some(), "no {key} in {t}");
    }
    assert_eq!(t["epoch_seconds"].as_array().unwrap().len(), 3);
    assert!(t["scores"]["accuracy"].as_f64().unwrap() > 0.6, "{t}");
    let p = json(&trainbench(&["predict", "--model", "m.json", "--data", "h.csv", "--out", "p.csv", "--json"], d));
    assert_eq!(p["rows"], 4000);
    let first = std::fs::read_to_string(d.join("p.csv")).unwrap();
    assert!(first.lines().next().unwrap().contains("prediction"), "{first}");
}

/// Kills a training process after its first checkpoint, resumes it, and checks the final model
/// predicts exactly as an uninterrupted run's.
#[test]
fn resume_after_kill_gives_the_uninterrupted_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, "20000");
    let common = [
        "train",
        "--engine",
        "tensor",
        "--model",
        "mlp",
        "--data",
        "h.csv",
        "--epochs",
        "4",
        "--hidden",
        "64,64",
        "--batch-size",
        "32",
        "--dropout",
        "0.1",
    ];
    fn with<'a>(common: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [common, extra].concat()
    }
    json(&trainbench(&with(&common, &["--save", "full.json", "--json"]), d));

    let mut child = Command::new(env!("CARGO_BIN_EXE_trainbench"))
        .args(with(&common, &["--checkpoint-dir", "ck", "--save", "resumed.json", "--json"]))
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = d.join("ck/checkpoint.json");
    let started = Instant::now();
    while !checkpoint.exists() {
        assert!(started.elapsed() < Duration::from_secs(300), "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "training ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let ck: serde_json::Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    let done = ck["epoch"].as_u64().unwrap();
    assert!(done < 4, "killed too late to test anything (epoch {done})");
    assert!(!d.join("resumed.json").exists());

    let resumed = json(&trainbench(
        &with(&common, &["--checkpoint-dir", "ck", "--resume", "--save", "resumed.json", "--json"]),
        d,
    ));
    // The finished epochs were not trained again: the run says it resumed after them, and their
    // log entries are the checkpoint's, timings to the bit.
    assert_eq!(resumed["resumed_epochs"].as_u64(), Some(done), "{resumed}");
    let log = resumed["log"].as_array().unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[..done as usize], ck["entries"].as_array().unwrap()[..]);
    for name in ["full", "resumed"] {
        json(&trainbench(
            &[
                "predict",
                "--model",
                &format!("{name}.json"),
                "--data",
                "h.csv",
                "--out",
                &format!("{name}.csv"),
                "--json",
            ],
            d,
        ));
    }
    let (a, b) =
        (std::fs::read_to_string(d.join("full.csv")).unwrap(), std::fs::read_to_string(d.join("resumed.csv")).unwrap());
    assert!(a == b, "the resumed model predicts differently from the uninterrupted one");
}

/// `--workers 1` is one core for either engine: the fit's CPU time is about its wall time,
/// though both engines would spread this work over every core (flex's GEMM and reductions, the
/// MLP's partitions) if the pool were not sized by --workers.
#[test]
fn one_worker_uses_one_core_in_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, "20000");
    for args in [
        &["--engine", "tensor", "--model", "mlp", "--hidden", "256,256", "--batch-size", "2048", "--epochs", "3"][..],
        &["--engine", "spark", "--model", "mlp", "--hidden", "64,64", "--max-iter", "15"][..],
    ] {
        let mut all = vec!["train", "--data", "h.csv", "--workers", "1", "--json"];
        all.extend_from_slice(args);
        let r = json(&trainbench(&all, d));
        let (cpu, wall) = (r["cpu_seconds"].as_f64().unwrap(), r["fit_seconds"].as_f64().unwrap());
        assert!(wall > 0.3, "{args:?}: too short to measure ({wall} s)");
        assert!(cpu <= 1.15 * wall + 0.05, "{args:?}: {cpu} CPU seconds in {wall} s on one worker");
        assert_eq!(r["workers"], 1);
        assert!((r["mean_cpu_percent"].as_f64().unwrap() / 100.0 - cpu / wall).abs() < 1e-9);
    }
}

#[test]
fn compare_writes_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = trainbench(
        &[
            "compare",
            "--rows",
            "3000",
            "--out",
            "rep",
            "--seeds",
            "2",
            "--runs",
            "spark:lr,spark:tree,spark:mlp,tensor:mlp,tensor:cnn,tensor:lstm",
            "--param",
            "tensor.epochs=2",
            "--param",
            "spark.mlp.max_iter=20",
            "--param",
            "lstm.units=8",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    for q in ["Which trains faster?", "Which is more accurate?", "Which uses fewer resources?", "Which scales better?"]
    {
        assert!(out.contains(q), "{out}");
    }
    let rep = d.join("rep");
    for f in ["results.json", "metrics.csv", "report.html"] {
        assert!(rep.join(f).exists(), "no {f}");
    }
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(rep.join("results.json")).unwrap()).unwrap();
    let runs = results["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 12);
    assert!(runs.iter().all(|r| r["status"] == "ok"), "a run failed: {results}");
    assert_eq!(results["data"]["generated"], true);
    assert_eq!(
        results["data"]["train_rows"].as_u64().unwrap()
            + results["data"]["valid_rows"].as_u64().unwrap()
            + results["data"]["test_rows"].as_u64().unwrap(),
        3000
    );
    // Numbers agree across files: metrics.csv has every run's accuracy as in results.json, and
    // each confusion matrix sums to the test rows and matches the accuracy.
    let csv = std::fs::read_to_string(rep.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    let test_rows = results["data"]["test_rows"].as_u64().unwrap();
    for r in runs {
        let s = &r["scores"];
        let line = csv.lines().find(|l| l.starts_with(&format!("{},", r["id"].as_str().unwrap()))).unwrap();
        assert!(line.contains(&s["accuracy"].as_f64().unwrap().to_string()), "{line}");
        let m = s["confusion"].as_array().unwrap();
        let total: u64 = m.iter().flat_map(|row| row.as_array().unwrap()).map(|v| v.as_u64().unwrap()).sum();
        let diag: u64 = (0..m.len()).map(|i| m[i][i].as_u64().unwrap()).sum();
        assert_eq!(total, test_rows);
        assert!((diag as f64 / total as f64 - s["accuracy"].as_f64().unwrap()).abs() < 1e-12);
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0 && !r["resources"].as_array().unwrap().is_empty());
        if r["engine"] == "tensor" {
            assert_eq!(r["epoch_seconds"].as_array().unwrap().len(), 2);
            let tb = rep.join("tensorboard").join(r["id"].as_str().unwrap().replace('/', "_")).join("train");
            assert!(
                std::fs::read_dir(&tb).map(|mut e| e.next().is_some()).unwrap_or(false),
                "no TensorBoard file in {}",
                tb.display()
            );
        }
    }
    // The seeds differ, so the two runs of a tensor model differ.
    assert_ne!(runs[6]["log"][0]["loss"], runs[7]["log"][0]["loss"]);
    // Like for like: the MLP is the family both paradigms ran; its runs carry a time to the
    // target, and the answers speak of it, with intervals over the two seeds.
    let comparisons = results["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 1, "{comparisons:?}");
    let mlp = &comparisons[0];
    assert_eq!(mlp["model"], "mlp");
    let target = mlp["target_accuracy"].as_f64().unwrap();
    let sides = mlp["sides"].as_array().unwrap();
    assert_eq!(sides.len(), 2);
    for side in sides {
        assert_eq!(side["runs"], 2);
        let best = side["best_valid_accuracy"]["mean"].as_f64().unwrap();
        assert!(best >= target + 0.005 - 1e-12, "target {target} above the lower best minus 0.5 pp ({best})");
    }
    for r in runs.iter().filter(|r| r["model"] == "mlp") {
        // MLPerf's rule, checked on the run's own log: the first entry at or above the target.
        let first = r["log"].as_array().unwrap().iter().find(|e| e["valid_accuracy"].as_f64().unwrap() >= target);
        assert_eq!(
            r["time_to_target_seconds"].as_f64(),
            first.map(|e| e["elapsed_seconds"].as_f64().unwrap()),
            "{}",
            r["id"]
        );
        assert!(
            r["iterations"].as_u64().unwrap() >= 1
                && r["process_peak_rss_bytes"].as_u64() >= r["peak_rss_bytes"].as_u64()
        );
    }
    assert!(runs.iter().filter(|r| r["model"] != "mlp").all(|r| r["time_to_target_seconds"].is_null()));
    let faster = out.lines().skip_while(|l| !l.starts_with("Which trains faster?")).nth(1).unwrap();
    assert!(faster.contains("MLP: Time to target") && faster.contains(" ± "), "{faster}");
    assert!(faster.contains("Models only one paradigm has"), "{faster}");

    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/results.schema.json");
    let check = Command::new("python3")
        .args(["-c", "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')"])
        .arg(rep.join("results.json"))
        .arg(schema)
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "results.json does not validate (is the `jsonschema` package installed? .ci/run installs it): {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let html = std::fs::read_to_string(rep.join("report.html")).unwrap();
    for id in [
        "chart-accuracy",
        "chart-f1",
        "chart-fit-time",
        "chart-loss",
        "chart-time-to-accuracy",
        "chart-cpu",
        "chart-rss",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no {id} in the report");
    }
    assert!(html.contains("<table class=confusion>") && html.contains("Which is more accurate?"));
    // Self-contained: the only address in it is the SVG namespace (no script, font or image
    // fetched from the network).
    let svg_namespaces = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(html.matches("http://").count(), svg_namespaces, "the report links outside itself");
    assert!(!html.contains("https://") && !html.contains("//cdn"), "the report links outside itself");
    open_in_chromium(&rep);
}

/// Opens the report in headless Chromium: it must load without console errors, and a
/// screenshot is taken.
fn open_in_chromium(rep: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/open_report.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(rep.join("report.html"))
        .arg(rep.join("report.png"))
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "headless Chromium check failed (.ci/run installs Debian's chromium): {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let png = std::fs::read(rep.join("report.png")).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot too small: {} bytes", png.len());
}

#[test]
fn scale_sweeps_rows_and_workers_and_a_failed_run_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, "3000");
    let o = trainbench(
        &[
            "scale",
            "--data",
            "h.csv",
            "--out",
            "rep",
            "--runs",
            "spark:lr,tensor:cnn",
            "--fractions",
            "0.25,0.5,1,2",
            "--workers-list",
            "1,2",
            "--seeds",
            "1",
            "--param",
            "tensor.epochs=1",
            "--param",
            "cnn.filters=8,8,8,8,8",
        ],
        d,
    );
    // Some runs failed: the report is written, and the exit code says so.
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("5 of 10 runs failed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("rep/results.json")).unwrap()).unwrap();
    let runs = results["runs"].as_array().unwrap();
    let lr: Vec<&serde_json::Value> = runs.iter().filter(|r| r["engine"] == "spark").collect();
    assert_eq!(lr.len(), 5, "4 fractions at 2 workers + 1 worker on all rows");
    let rows: Vec<u64> = lr.iter().map(|r| r["train_rows"].as_u64().unwrap()).collect();
    assert_eq!(rows[3], 2 * rows[2]);
    assert!(rows[0] < rows[1] && rows[1] < rows[2]);
    // Five convolutions do not fit 28 features: every cnn run fails, is recorded, and the study goes on.
    let cnn: Vec<&serde_json::Value> = runs.iter().filter(|r| r["engine"] == "tensor").collect();
    assert!(cnn.iter().all(|r| r["status"] == "failed" && r["error"].as_str().unwrap().contains("too few")), "{cnn:?}");
    let html = std::fs::read_to_string(d.join("rep/report.html")).unwrap();
    assert!(html.contains("id=\"chart-scale-rows\"") && html.contains("id=\"chart-scale-workers\""));
    assert!(html.contains("id=\"chart-scale-throughput\""));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("spark lr: time ∝ rows^"), "{out}");
    // A sweep is not a like-for-like comparison, and says so rather than "no model family".
    let faster = out.lines().skip_while(|l| !l.starts_with("Which trains faster?")).nth(1).unwrap();
    assert!(faster.contains("This study is a sweep"), "{faster}");
}

#[test]
fn study_input_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, needle) in [
        (&["compare", "--rows", "500", "--runs", "spark:svm"][..], "unknown model 'svm'"),
        (&["compare", "--rows", "500", "--param", "epochs"][..], "is not KEY=VALUE"),
        (&["compare", "--rows", "500", "--seeds", "0"][..], "--seeds must be at least 1"),
        (&["scale", "--rows", "500", "--fractions", "0"][..], "--fractions must be positive"),
    ] {
        let o = trainbench(args, d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn tune_searches_a_grid_on_validation_rows_or_folds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, "4000");
    let t = json(&trainbench(
        &[
            "tune",
            "--model",
            "tree",
            "--data",
            "h.csv",
            "--grid",
            "max_depth=1,6",
            "--grid",
            "impurity=gini,entropy",
            "--json",
        ],
        d,
    ));
    let trials = t["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4);
    let score = |i: usize| trials[i]["score"].as_f64().unwrap();
    // The HIGGS-like rule is nonlinear: a stump loses to depth 6, and the best is a depth-6 trial.
    assert!(score(2) > score(0) + 0.02, "{t}");
    assert_eq!(t["best"]["params"]["max_depth"], "6");
    let best = t["best"]["score"].as_f64().unwrap();
    assert!(trials.iter().all(|tr| tr["score"].as_f64().unwrap() <= best));

    let k = json(&trainbench(
        &[
            "tune",
            "--engine",
            "tensor",
            "--model",
            "mlp",
            "--data",
            "h.csv",
            "--grid",
            "hidden=8|16,16",
            "--grid",
            "learning_rate=0.001,0.01,0.003",
            "--random",
            "2",
            "--folds",
            "3",
            "--param",
            "epochs=1",
            "--metric",
            "log_loss",
            "--json",
        ],
        d,
    ));
    let trials = k["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    for tr in trials {
        let folds: Vec<f64> = tr["fold_scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(folds.len(), 3);
        assert!((folds.iter().sum::<f64>() / 3.0 - tr["score"].as_f64().unwrap()).abs() < 1e-12);
    }
    // log-loss: lower is better.
    let best = k["best"]["score"].as_f64().unwrap();
    assert!(trials.iter().all(|tr| tr["score"].as_f64().unwrap() >= best));

    let o =
        trainbench(&["tune", "--model", "tree", "--data", "h.csv", "--grid", "max_depth=2", "--metric", "speed"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid value 'speed' for '--metric"));
    let o = trainbench(&["tune", "--model", "tree", "--data", "h.csv", "--grid", "max_dept=2"], d);
    assert_eq!(o.status.code(), Some(2), "every trial fails on an unknown parameter");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such parameter"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn run_a_study_file_and_its_errors_name_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("s.toml"),
        "out = \"rep\"\nseeds = 2\n[data]\nrows = 2000\n[prepare]\nvalid_fraction = 0.2\n\
         [[run]]\nengine = \"spark\"\nmodel = \"tree\"\nparams = { max_depth = 3 }\n\
         [[run]]\nengine = \"tensor\"\nmodel = \"mlp\"\nparams = { hidden = [8, 8], epochs = 1 }\n",
    )
    .unwrap();
    let r = json(&trainbench(&["run", "s.toml", "--json"], d));
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0]["params"]["max_depth"], "3");
    assert_eq!(runs[2]["params"]["hidden"], "8,8");
    assert_eq!(r["data"]["valid_rows"], 400);
    assert!(d.join("rep/report.html").exists());

    for (text, needles) in [
        (
            "out = \"r\"\n[[run]]\nengine = \"spark\"\nmodel = \"lr\"\nparamz = { max_iter = 5 }\n",
            &["line 5", "unknown field `paramz`"][..],
        ),
        ("out = \"r\"\nseeds = \"two\"\n", &["line 2", "invalid type: string \"two\""][..]),
        ("out = \"r\"\n[data]\nrows = 100\n", &["no [[run]]"][..]),
        (
            "[[run]]\nengine = \"spark\"\nmodel = \"lr\"\n[[run]]\nengine = \"spark\"\nmodel = \"lr\"\n",
            &["appears twice"][..],
        ),
    ] {
        std::fs::write(d.join("bad.toml"), text).unwrap();
        let o = trainbench(&["run", "bad.toml"], d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "{err:?} lacks {n:?}");
        }
    }
}

#[test]
fn the_example_studies_parse() {
    // Each example must be a valid study: run it up to argument parsing by pointing its data at
    // a missing file, which fails after the study is read and turned into a command line.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let dir = tempfile::tempdir().unwrap();
    for name in ["higgs-compare.toml", "mixed-scale.toml", "cluster-compare.toml"] {
        let text = std::fs::read_to_string(Path::new(examples).join(name)).unwrap();
        let text = text
            .replace("rows = 100000", "rows = 0")
            .replace("path = \"mixed.csv\"", "path = \"absent.csv\"")
            .replace("path = \"higgs.csv\"", "path = \"absent.csv\"");
        std::fs::write(dir.path().join(name), text).unwrap();
        let o = trainbench(&["run", name], dir.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("unknown field") && !err.contains("invalid type"), "{name}: {err}");
        assert!(
            err.contains("absent.csv")
                || err.contains("rows")
                || err.contains("no training rows")
                || err.contains("empty"),
            "{name}: {err}"
        );
    }
}
