//! End-to-end tests of the `trainbench` binary on small files.

mod common;

use std::path::{Path, PathBuf};

use common::{json, stderr, stdout, trainbench};

/// Runs a command that must fail on user input: exit code 2, one line on stderr that starts with
/// "error: " and contains every `needle`, and no panic.
fn assert_user_error(args: &[&str], dir: &Path, needles: &[&str]) {
    assert_error(args, dir, 2, needles);
}

/// Runs a command whose training must start and fail (exit code 1), with the same one line.
fn assert_run_failure(args: &[&str], dir: &Path, needles: &[&str]) {
    assert_error(args, dir, 1, needles);
}

fn assert_error(args: &[&str], dir: &Path, code: i32, needles: &[&str]) {
    let o = trainbench(args, dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "args {args:?}: stderr {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn gen_inspect_prepare_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = json(&trainbench(&["gen", "higgs-like", "--rows", "3000", "--seed", "9", "--out", "h.csv", "--json"], d));
    assert_eq!(g["rows"], 3000);
    let ceiling = g["ceiling_accuracy"].as_f64().unwrap();
    assert!(ceiling > 0.8 && ceiling < 1.0, "{ceiling}");
    // Same seed, same bytes.
    json(&trainbench(&["gen", "higgs-like", "--rows", "3000", "--seed", "9", "--out", "h2.csv", "--json"], d));
    assert_eq!(std::fs::read(d.join("h.csv")).unwrap(), std::fs::read(d.join("h2.csv")).unwrap());

    let i = json(&trainbench(&["inspect", "h.csv", "--json"], d));
    assert_eq!(i["rows"], 3000);
    assert_eq!(i["columns"].as_array().unwrap().len(), 29);
    assert_eq!(i["label"], "label");
    let balance: u64 = i["class_balance"].as_array().unwrap().iter().map(|c| c[1].as_u64().unwrap()).sum();
    assert_eq!(balance, 3000);

    let p = json(&trainbench(&["prepare", "--data", "h.csv", "--valid-fraction", "0.1", "--json"], d));
    let split = &p["summary"]["split"];
    assert_eq!(
        split["train"].as_u64().unwrap() + split["valid"].as_u64().unwrap() + split["test"].as_u64().unwrap(),
        3000
    );
    assert_eq!(split["test"], 600);
    assert_eq!(p["summary"]["features"], 28);
    assert!(p["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(p["phase_seconds"]["load"].as_f64().is_some());

    // The text form prints the summary table.
    let text = trainbench(&["prepare", "--data", "h.csv"], d);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(stdout(&text).contains("duplicates (dropped)"), "{}", stdout(&text));
}

#[test]
fn mixed_data_with_missing_values_strings_and_a_saved_preprocessor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "mixed", "--rows", "2000", "--out", "m.parquet", "--json"], d));
    let i = json(&trainbench(&["inspect", "m.parquet", "--json"], d));
    assert!(i["missing_total"].as_u64().unwrap() > 0);
    let kinds: Vec<&str> = i["columns"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "categorical").count(), 3, "{kinds:?}");
    let p = json(&trainbench(
        &["prepare", "--data", "m.parquet", "--missing", "median", "--save-preprocessor", "pre.json", "--json"],
        d,
    ));
    assert!(p["summary"]["imputed_cells"].as_u64().unwrap() > 0);
    // 6 numeric + 6 cities + 3 devices.
    assert_eq!(p["summary"]["features"], 15);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("pre.json")).unwrap()).unwrap();
    assert_eq!(saved["feature_names"], p["feature_names"]);
    // With --missing drop the rows with gaps go to the quarantine file, each with its reason.
    let p = json(&trainbench(
        &["prepare", "--data", "m.parquet", "--missing", "drop", "--quarantine", "q.csv", "--json"],
        d,
    ));
    let dropped = p["summary"]["source"]["clean"]["missing_value_rows_dropped"].as_u64().unwrap();
    assert!(dropped > 0);
    let q = std::fs::read_to_string(d.join("q.csv")).unwrap();
    assert_eq!(q.lines().count() as u64, dropped + 1);
    assert!(q.lines().nth(1).unwrap().contains("(policy: drop)"), "{q}");
}

#[test]
fn invalid_rows_are_quarantined_by_default_and_fatal_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut text = String::from("a,b,y\n");
    for i in 0..30 {
        text.push_str(&format!("{i},{},{}\n", i * 2, i % 2));
    }
    text.push_str("1,2\n"); // line 32: ragged
    text.push_str("x,2,1\n"); // line 33: not a number
    write(d, "bad.csv", text.as_bytes());
    let p = json(&trainbench(&["prepare", "--data", "bad.csv", "--json"], d));
    assert_eq!(p["summary"]["source"]["invalid_rows"], 2);
    let q = std::fs::read_to_string(d.join("trainbench-quarantine.csv")).unwrap();
    assert!(q.contains("bad.csv,32,,\"expected 3 fields, found 2\",\"1,2\""), "{q}");
    assert!(q.contains("bad.csv,33,a,column 'a' is numeric but 'x' is not a number"), "{q}");
    let i = trainbench(&["inspect", "bad.csv"], d);
    assert!(stdout(&i).contains("line 32: expected 3 fields, found 2"), "{}", stdout(&i));

    assert_user_error(
        &["prepare", "--data", "bad.csv", "--invalid-rows", "fail"],
        d,
        &["bad.csv:32: expected 3 fields, found 2"],
    );
    let mut numeric_only = text.clone();
    numeric_only = numeric_only.replace("1,2\n", "");
    write(d, "nan.csv", numeric_only.as_bytes());
    assert_user_error(
        &["inspect", "nan.csv", "--invalid-rows", "fail"],
        d,
        &["nan.csv:32:", "column 'a' is numeric but 'x' is not a number"],
    );
}

#[test]
fn bad_input_gives_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_user_error(&["inspect", "nope.csv"], d, &["nope.csv", "No such file"]);
    write(d, "empty.csv", b"");
    assert_user_error(&["inspect", "empty.csv"], d, &["empty.csv: file is empty"]);
    write(d, "header.csv", b"a,b,label\n");
    assert_user_error(&["prepare", "--data", "header.csv"], d, &["header.csv: no data rows after the header (line 1)"]);
    write(d, "ok.csv", b"a,b,label\n1,2,x\n3,4,y\n");
    assert_user_error(
        &["prepare", "--data", "ok.csv", "--label", "target"],
        d,
        &["label column 'target' not found", "a, b, label"],
    );
    write(d, "allmissing.csv", b"a,b,label\n1,,x\n3,,y\n");
    assert_user_error(
        &["prepare", "--data", "allmissing.csv"],
        d,
        &["allmissing.csv: column 'b' has only missing values"],
    );
    write(d, "oneclass.csv", b"a,label\n1,x\n2,x\n3,x\n");
    assert_user_error(
        &["prepare", "--data", "oneclass.csv"],
        d,
        &["oneclass.csv: label column 'label' has one class ('x')"],
    );
    write(d, "ragged.csv", b"a,b,label\n1,2,x\n3,y\n");
    assert_user_error(
        &["prepare", "--data", "ragged.csv", "--invalid-rows", "fail"],
        d,
        &["ragged.csv:3: expected 3 fields, found 2"],
    );
    write(d, "text.csv", b"a,b,label\n1,2,x\n3,4,y\n5,five,x\n");
    assert_user_error(
        &["prepare", "--data", "text.csv", "--invalid-rows", "fail", "--numeric", "b"],
        d,
        &["text.csv:4: column 'b' is numeric but 'five' is not a number"],
    );
    write(d, "latin1.csv", b"name,label\nJos\xe9,x\nAna,y\n");
    assert_user_error(
        &["inspect", "latin1.csv", "--invalid-rows", "fail"],
        d,
        &["latin1.csv:2: column 'name'", "not valid UTF-8"],
    );
    write(d, "zero.parquet", b"");
    assert_user_error(&["inspect", "zero.parquet"], d, &["zero.parquet: not a readable Parquet file", "0 bytes"]);
    write(d, "junk.parquet", b"this is not parquet at all");
    assert_user_error(&["inspect", "junk.parquet"], d, &["junk.parquet: not a readable Parquet file"]);
    assert_user_error(
        &["prepare", "--data", "ok.csv", "--missing", "sometimes"],
        d,
        &["invalid value 'sometimes' for '--missing", "not one of drop, mean"],
    );
    assert_user_error(&["prepare", "--data", "ok.csv", "--test-fraction", "1.5"], d, &["test fraction 1.5"]);
    // A NaN literal is refused with its line, not taken as data.
    write(d, "nanlit.csv", b"a,label\n1,x\nNaN,y\n");
    assert_user_error(
        &["inspect", "nanlit.csv", "--invalid-rows", "fail"],
        d,
        &["nanlit.csv:3: NaN is not allowed in numeric column 'a'"],
    );
}

#[test]
fn train_save_and_predict_with_the_spark_engine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "1", "--out", "train.csv", "--json"], d));
    json(&trainbench(&["gen", "mixed", "--rows", "800", "--seed", "2", "--out", "test.csv", "--json"], d));
    for model in ["lr", "tree", "mlp"] {
        let saved = format!("{model}.model");
        let mut args =
            vec!["train", "--engine", "spark", "--model", model, "--data", "train.csv", "--test-data", "test.csv"];
        args.extend(["--workers", "2", "--save", &saved, "--json"]);
        if model == "mlp" {
            args.extend(["--hidden", "16", "--max-iter", "30", "--precision", "f32"]);
        }
        let t = json(&trainbench(&args, d));
        // The same record a study keeps of a run (results.json's), plus what a lone run shows.
        for field in ["accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted"] {
            assert!(t["scores"][field].as_f64().is_some(), "{model}: {field} missing in {t}");
        }
        for field in ["fit_seconds", "peak_rss_bytes", "process_peak_rss_bytes", "cpu_seconds", "rows_per_second"] {
            assert!(t[field].as_f64().is_some(), "{model}: {field} missing in {t}");
        }
        assert_eq!(
            (t["status"].as_str(), t["engine"].as_str(), t["workers"].as_u64()),
            (Some("ok"), Some("spark"), Some(2))
        );
        // The mixed data's rule is learnable: well above the 50% of guessing.
        let accuracy = t["scores"]["accuracy"].as_f64().unwrap();
        assert!(accuracy > 0.6, "{model}: accuracy {accuracy}");
        assert_eq!(t["test_rows"], 800);
        // Both counts of the work done: L-BFGS iterations (MLlib's totalIterations) and passes
        // over the data, or tree levels.
        let iterations = t["iterations"].as_u64().unwrap();
        assert!(iterations >= 1 && (model != "mlp" || iterations <= 30), "{model}: {iterations} iterations");
        if model != "tree" {
            assert!(t["evaluations"].as_u64().unwrap() > iterations, "{model}: {t}");
        }
        // The saved model, applied to the raw test file, scores exactly the same (the f32 MLP
        // predicts in f32, as it trained).
        let p = json(&trainbench(&["predict", "--model", &saved, "--data", "test.csv", "--out", "p.csv", "--json"], d));
        assert_eq!(p["rows"], 800);
        assert_eq!(p["accuracy"], t["scores"]["accuracy"], "{model}");
        let out = std::fs::read_to_string(d.join("p.csv")).unwrap();
        assert_eq!(out.lines().next().unwrap(), "line,p_no,p_yes,prediction");
        assert_eq!(out.lines().count(), 801);
    }
}

#[test]
fn training_errors_are_clear_and_leave_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "2000", "--out", "h.csv", "--json"], d));
    assert_user_error(
        &["train", "--model", "lr", "--data", "h.csv", "--max-depth", "3"],
        d,
        &["invalid parameter max_depth = 3: no such parameter for model 'lr'"],
    );
    assert_user_error(
        &["train", "--model", "lr", "--data", "h.csv", "--precision", "f32"],
        d,
        &["--precision f32: the spark engine's lr computes in f64, as MLlib"],
    );
    assert_user_error(
        &["train", "--model", "mlp", "--data", "h.csv", "--precision", "bf16"],
        d,
        &["invalid parameter precision = bf16: f64 (MLlib's arithmetic) or f32"],
    );
    // --help lists the values an option takes, and a wrong one is refused before any work.
    let help = trainbench(&["train", "--help"], d);
    for listed in [
        "[possible values: f64, f32, bf16, f16]",
        "[possible values: cpu, gpu]",
        "[possible values: l-bfgs, gd]",
        "[possible values: gini, entropy]",
        "[possible values: adam, adamw, sgd]",
    ] {
        assert!(stdout(&help).contains(listed), "train --help lacks {listed}");
    }
    let o = trainbench(&["train", "--model", "tree", "--data", "h.csv", "--impurity", "variance"], d);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid value 'variance'") && stderr(&o).contains("gini, entropy"), "{}", stderr(&o));
    assert_user_error(
        &["train", "--model", "mlp", "--data", "h.csv", "--hidden", "10000000", "--save", "m.model"],
        d,
        &["at most 10000000 weights"],
    );
    assert_run_failure(
        // f32: weights of 1e300 overflow to infinity and the loss to NaN (in f64 they only saturate).
        // -q: the iterations before the divergence would print their progress lines.
        &[
            "train",
            "--model",
            "mlp",
            "--data",
            "h.csv",
            "--solver",
            "gd",
            "--step-size",
            "1e300",
            "--precision",
            "f32",
            "-q",
        ],
        d,
        &["training diverged at iteration"],
    );
    assert_run_failure(
        &[
            "train",
            "--model",
            "mlp",
            "--data",
            "h.csv",
            "--solver",
            "gd",
            "--step-size",
            "1e300",
            "--precision",
            "f32",
            "--save",
            "m.model",
            "-q",
        ],
        d,
        &["training diverged at iteration"],
    );
    assert!(!d.join("m.model").exists(), "a failed run must not write a model");
    write(d, "junk.model", b"{\"format\": 1}");
    assert_user_error(
        &["predict", "--model", "junk.model", "--data", "h.csv", "--out", "p.csv"],
        d,
        &["junk.model", "not a trainbench model file"],
    );
}

/// The progress lines `train` prints on stderr (not a terminal here), one per epoch or level and
/// every tenth iteration, each showing the same numbers the saved model's log keeps.
#[test]
fn train_prints_live_progress_that_matches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "3000", "--seed", "4", "--out", "h.csv", "--json"], d));
    let common = ["--data", "h.csv", "--valid-fraction", "0.1", "--save", "m.json"];
    // The progress lines of a run, and the log its saved model keeps.
    let train = |args: &[&str]| {
        let o = trainbench(&[&["train"], args, &common[..]].concat(), d);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("accuracy"), "the results still print: {}", stdout(&o));
        let model: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("m.json")).unwrap()).unwrap();
        (stderr(&o).lines().map(str::to_owned).collect::<Vec<_>>(), model["log"].clone())
    };
    let entries = |log: &serde_json::Value| log["entries"].as_array().unwrap().clone();

    let (lines, log) = train(&["--engine", "tensor", "--model", "mlp", "--epochs", "3", "--batch-size", "64"]);
    let log_entries = entries(&log);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (k, (line, e)) in lines.iter().zip(&log_entries).enumerate() {
        let want = format!(
            "Epoch {}/3 – {} – loss {:.4} – accuracy {:.4} – val_loss {:.4} – val_accuracy {:.4}",
            k + 1,
            line.split(" – ").nth(1).unwrap(),
            e["loss"].as_f64().unwrap(),
            e["extra"]["accuracy"].as_f64().unwrap(),
            e["valid_loss"].as_f64().unwrap(),
            e["valid_accuracy"].as_f64().unwrap()
        );
        assert_eq!(line, &want);
        assert!(line.split(" – ").nth(1).unwrap().ends_with(" s"), "{line}");
    }
    assert_eq!(lines[3], "stopped: max_epochs");

    let (lines, log) = train(&["--engine", "spark", "--model", "lr", "--max-iter", "25", "--tol", "1e-12"]);
    let n = entries(&log).len();
    assert!(n > 10, "{n} iterations");
    let mut want: Vec<usize> = (1..=n).filter(|&i| i == 1 || i % 10 == 0 || i == n).collect();
    want.dedup();
    let shown: Vec<usize> =
        lines.iter().filter_map(|l| l.strip_prefix("Iteration ")?.split('/').next()?.parse().ok()).collect();
    assert_eq!(shown, want, "{lines:?}");
    assert!(lines[0].starts_with("Iteration 1/25 – ") && lines[0].contains(" – gradient norm "), "{lines:?}");
    assert_eq!(lines.last().unwrap(), &format!("stopped: {}", log["stop_reason"].as_str().unwrap()));

    let (lines, log) = train(&["--engine", "spark", "--model", "tree", "--max-depth", "3"]);
    let levels: Vec<&String> = lines.iter().filter(|l| l.starts_with("Level ")).collect();
    assert_eq!(levels.len(), entries(&log).len(), "{lines:?}");
    assert!(levels[0].starts_with("Level 1/3 – ") && levels[0].contains(" – nodes "), "{lines:?}");

    // --json and --quiet print no progress.
    for flag in ["--json", "--quiet"] {
        let o = trainbench(
            &[&["train", "--engine", "tensor", "--model", "mlp", "--epochs", "2", flag], &common[..]].concat(),
            d,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stderr(&o), "", "{flag}");
    }
}

/// `predict` streams a Parquet input, writes Parquet for a .parquet name and CSV to stdout for
/// `-` (its summary then on stderr), the same predictions every way.
#[test]
fn predict_reads_and_writes_parquet_and_writes_csv_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "1", "--out", "train.csv", "--json"], d));
    json(&trainbench(&["gen", "mixed", "--rows", "2500", "--seed", "2", "--out", "new.parquet", "--json"], d));
    let t = trainbench(
        &["train", "--engine", "spark", "--model", "lr", "--data", "train.csv", "--save", "m.json", "-q"],
        d,
    );
    assert!(t.status.success(), "{}", stderr(&t));
    let predict = |out: &str| trainbench(&["predict", "--model", "m.json", "--data", "new.parquet", "--out", out], d);

    let to_file = predict("p.csv");
    assert!(to_file.status.success(), "{}", stderr(&to_file));
    assert!(stdout(&to_file).starts_with("2500 rows predicted into p.csv"), "{}", stdout(&to_file));
    let csv = std::fs::read_to_string(d.join("p.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2501);
    assert_eq!(csv.lines().next().unwrap(), "line,p_no,p_yes,prediction");
    // Parquet rows are numbered from 1.
    assert!(csv.lines().nth(1).unwrap().starts_with("1,"), "{csv}");

    let to_stdout = predict("-");
    assert!(to_stdout.status.success(), "{}", stderr(&to_stdout));
    assert_eq!(stdout(&to_stdout), csv);
    assert!(stderr(&to_stdout).starts_with("2500 rows predicted into -"), "{}", stderr(&to_stdout));
    assert!(stderr(&to_stdout).contains("on the 2500 labelled rows: accuracy "), "{}", stderr(&to_stdout));

    let to_parquet = predict("p.parquet");
    assert!(to_parquet.status.success(), "{}", stderr(&to_parquet));
    let i = json(&trainbench(&["inspect", "p.parquet", "--label", "prediction", "--json"], d));
    assert_eq!(i["rows"], 2500);
    let names: Vec<&str> = i["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["line", "p_no", "p_yes", "prediction"]);
    // The predicted classes count the same as in the CSV.
    let yes_in_csv = csv.lines().skip(1).filter(|l| l.ends_with(",yes")).count() as u64;
    let balance = i["class_balance"].as_array().unwrap();
    let yes_in_parquet = balance.iter().find(|c| c[0] == "yes").map_or(0, |c| c[1].as_u64().unwrap());
    assert_eq!(yes_in_parquet, yes_in_csv);
}
