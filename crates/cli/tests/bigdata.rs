//! Data larger than memory: a prepared directory trains the same models as the file it came
//! from, and `prepare` and `train` finish inside a memory cgroup whose limit is a third of the
//! prepared data, with the same models as without a limit.

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{json, loss_bits, required, saved, stderr, trainbench};

fn assert_same_model(dir: &Path, a: &str, b: &str, what: &str) {
    let (a, b) = (saved(dir, a), saved(dir, b));
    // The tensor engine's weights file carries per-run parameter ids: its losses and scores
    // (to the bit) stand for its weights.
    if a["engine"] != "tensor" {
        assert_eq!(a["state"], b["state"], "{what}: the fitted parameters differ");
    }
    assert_eq!(a["preprocessor"], b["preprocessor"], "{what}: the preprocessors differ");
    assert_eq!(loss_bits(&a), loss_bits(&b), "{what}: the losses differ");
    assert!(!loss_bits(&a).is_empty(), "{what}");
}

/// The runs both tests train: each engine's models, small enough for CI.
const RUNS: [(&str, &str, &[&str]); 4] = [
    ("spark", "lr", &["--max-iter", "12"]),
    ("spark", "tree", &["--max-depth", "4"]),
    ("spark", "mlp", &["--max-iter", "8", "--hidden", "16"]),
    ("tensor", "mlp", &["--epochs", "1", "--batch-size", "512", "--hidden", "32", "--shuffle-buffer", "20000"]),
];

fn train_args<'a>(engine: &'a str, model: &'a str, extra: &[&'a str], data: &'a str, save: &'a str) -> Vec<&'a str> {
    let mut a = vec!["train", "--engine", engine, "--model", model, "--data", data, "--label", "label"];
    a.extend(["--workers", "1", "--save", save, "--json"]);
    a.extend(extra);
    a
}

#[test]
fn a_prepared_directory_trains_the_models_its_file_trains() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // String categories and missing values.
    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "4", "--out", "m.csv", "--json"], d));
    let p = json(&trainbench(&["prepare", "--data", "m.csv", "--label", "label", "--out", "prepared", "--json"], d));
    assert_eq!(p["out"], "prepared");
    assert!(d.join("prepared/manifest.json").is_file());
    for (engine, model, extra) in RUNS {
        let what = format!("{engine} {model}");
        let file = json(&trainbench(&train_args(engine, model, extra, "m.csv", "file.json"), d));
        let prepared = json(&trainbench(&train_args(engine, model, extra, "prepared", "dir.json"), d));
        assert_same_model(d, "file.json", "dir.json", &what);
        assert_eq!(file["scores"], prepared["scores"], "{what}");
    }
    // predict on the directory scores its test rows, as train did.
    let trained = json(&trainbench(&train_args("spark", "lr", &[], "prepared", "lr.json"), d));
    let predicted =
        json(&trainbench(&["predict", "--model", "lr.json", "--data", "prepared", "--out", "p.csv", "--json"], d));
    assert_eq!(predicted["rows"], trained["test_rows"]);
    assert_eq!(predicted["accuracy"], trained["scores"]["accuracy"]);
    let other = json(&trainbench(
        &["prepare", "--data", "m.csv", "--label", "label", "--seed", "9", "--out", "other", "--json"],
        d,
    ));
    assert_eq!(other["out"], "other");
    let o = trainbench(&["predict", "--model", "lr.json", "--data", "other", "--out", "q.csv"], d);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("another preprocessor"), "{}", stderr(&o));
    // A command that reads data files says what a directory is.
    let o = trainbench(&["inspect", "prepared"], d);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("prepared is a prepared directory"), "{}", stderr(&o));
    // A damaged file is named, not trained on.
    std::fs::write(d.join("prepared/test.labels.u32"), b"xx").unwrap();
    let o = trainbench(&train_args("spark", "lr", &[], "prepared", "x.json"), d);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("test.labels.u32: prepared data is damaged"), "{}", stderr(&o));
}

/// A memory cgroup of its own, removed when dropped.
struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    /// Creates one limited to `limit` bytes (cgroup v1's memory controller, or v2's), or says
    /// why it cannot.
    fn new(limit: u64) -> Result<Self, String> {
        let name = format!("trainbench-test-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (dir, file) = if v1.join("memory.limit_in_bytes").exists() || v1.join("cgroup.procs").exists() {
            (v1.join(&name), "memory.limit_in_bytes")
        } else {
            let v2 = Path::new("/sys/fs/cgroup");
            let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).map_err(|e| e.to_string())?;
            if !controllers.split_whitespace().any(|c| c == "memory") {
                return Err("no memory controller".into());
            }
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+memory");
            (v2.join(&name), "memory.max")
        };
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cgroup = MemoryCgroup { dir };
        std::fs::write(cgroup.dir.join(file), limit.to_string()).map_err(|e| format!("{file}: {e}"))?;
        Ok(cgroup)
    }

    /// `trainbench ARGS` in `dir`, inside the cgroup.
    fn trainbench(&self, args: &[&str], dir: &Path) -> Output {
        let procs = self.dir.join("cgroup.procs");
        Command::new("sh")
            .arg("-c")
            .arg(format!("echo $$ > '{}' && exec \"$0\" \"$@\"", procs.display()))
            .arg(env!("CARGO_BIN_EXE_trainbench"))
            .args(args)
            .current_dir(dir)
            .output()
            .expect("sh runs")
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `rows` rows of 4 numeric and 3 categorical columns of 40 levels each (124 features once
/// one-hot encoded, so the prepared rows are about 10 times the CSV), a label from a rule.
fn write_wide_csv(path: &Path, rows: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "a,b,c,d,city,shop,brand,label").unwrap();
    let mut line = String::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..rows {
        line.clear();
        let x: Vec<f64> = (0..4).map(|_| (next() % 10_000) as f64 / 1000.0 - 5.0).collect();
        let cats: Vec<u64> = (0..3).map(|_| next() % 40).collect();
        let score = x[0] - 0.5 * x[1] + if cats[0] < 15 { 1.5 } else { -1.0 } + (next() % 100) as f64 / 40.0 - 1.25;
        for v in &x {
            write!(line, "{v},").unwrap();
        }
        write!(line, "c{},s{},b{},{}", cats[0], cats[1], cats[2], if score > 0.0 { "yes" } else { "no" }).unwrap();
        writeln!(out, "{line}").unwrap();
    }
}

fn prepared_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

#[test]
fn prepare_and_train_inside_a_memory_limit_a_third_of_the_prepared_data() {
    const LIMIT: u64 = 48 << 20;
    let Some(cgroup) = required(
        MemoryCgroup::new(LIMIT),
        "CI must prove the memory limit, but no memory cgroup could be made",
        "prepare_and_train_inside_a_memory_limit",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_wide_csv(&d.join("wide.csv"), 330_000);

    // Without a limit, then inside it: the same prepared files, the same models.
    json(&trainbench(&["prepare", "--data", "wide.csv", "--label", "label", "--out", "free", "--json"], d));
    let size = prepared_bytes(&d.join("free"));
    assert!(size >= 3 * LIMIT, "prepared data {size} bytes is under three times the limit {LIMIT}");
    let o = cgroup.trainbench(&["prepare", "--data", "wide.csv", "--label", "label", "--out", "limited", "--json"], d);
    assert!(o.status.success(), "prepare in {LIMIT} bytes: {:?} {}", o.status, stderr(&o));
    for part in ["train", "valid", "test"] {
        for file in ["features.f32", "labels.u32"] {
            let name = format!("{part}.{file}");
            assert!(
                std::fs::read(d.join("free").join(&name)).unwrap()
                    == std::fs::read(d.join("limited").join(&name)).unwrap(),
                "{name} differs"
            );
        }
    }
    for (engine, model, extra) in RUNS {
        if (engine, model) == ("spark", "mlp") {
            continue; // the MLP's partitions are those of the other spark models; CI time is kept for the rest
        }
        let what = format!("{engine} {model}");
        json(&trainbench(&train_args(engine, model, extra, "free", "free.json"), d));
        let o = cgroup.trainbench(&train_args(engine, model, extra, "limited", "limited.json"), d);
        assert!(o.status.success(), "{what} in {LIMIT} bytes: {:?} {}", o.status, stderr(&o));
        assert_same_model(d, "free.json", "limited.json", &what);
    }

    // The CSV itself: preparing it in memory would not fit, which is said before the rows are
    // made, and it goes through a prepared directory instead of being killed.
    let (engine, model, extra) = RUNS[0];
    json(&trainbench(&train_args(engine, model, extra, "wide.csv", "file.json"), d));
    let o = cgroup.trainbench(&train_args(engine, model, extra, "wide.csv", "file-limited.json"), d);
    assert!(o.status.success(), "train on the CSV in {LIMIT} bytes: {:?} {}", o.status, stderr(&o));
    assert!(stderr(&o).contains("preparing it through a temporary prepared directory"), "{}", stderr(&o));
    assert_same_model(d, "file.json", "file-limited.json", "spark lr from the CSV");
}
