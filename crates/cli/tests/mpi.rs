//! Training across two real MPI processes (`mpirun -np 2`, Open MPI), against the same fits in
//! one process. Built with the `mpi` feature only (`cargo test --workspace --features
//! trainbench/mpi`); CI installs Open MPI and runs them.
#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{json, loss_bits, saved, stderr, stdout, trainbench};

/// `mpirun -np 2 trainbench ARGS` in `dir`, on loopback (oversubscribed: CI has two cores; as
/// root in CI's container).
fn mpirun(ranks: &[&[&str]], dir: &Path) -> Output {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader,tcp"]);
    for (i, args) in ranks.iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.args(["-np", "1", env!("CARGO_BIN_EXE_trainbench")]).args(*args);
    }
    cmd.current_dir(dir).output().expect("mpirun runs (Open MPI: apt-get install openmpi-bin)")
}

/// The same arguments on both ranks.
fn mpirun2(args: &[&str], dir: &Path) -> Output {
    mpirun(&[args, args], dir)
}

#[test]
fn spark_models_on_two_processes_are_bit_identical_to_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // String categories and missing values: the tree splits categorical features too.
    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "4", "--out", "m.csv", "--json"], d));
    for (model, extra) in [("lr", &[][..]), ("tree", &[][..]), ("mlp", &["--max-iter", "15"][..])] {
        let args = |workers: &'static str, out: &'static str| {
            let mut a = vec!["train", "--engine", "spark", "--model", model, "--data", "m.csv", "--label", "label"];
            a.extend(["--workers", workers, "--save", out, "--json"]);
            a.extend(extra);
            a
        };
        // 1 process × 2 workers and 2 processes × 1 worker: four partitions either way.
        let one = json(&trainbench(&args("2", "one.json"), d));
        let two = mpirun2(&args("1", "two.json"), d);
        let two_json = json(&two);
        assert_eq!(one["partitions"], 4);
        assert_eq!(two_json["partitions"], 4, "{model}");
        assert_eq!(two_json["processes"], 2);
        assert!(two_json["communication_seconds"].as_f64().unwrap() > 0.0);
        // Rank 1 prints nothing: the one JSON object above is rank 0's.
        assert_eq!(stdout(&two).lines().count(), 1);
        let (a, b) = (saved(d, "one.json"), saved(d, "two.json"));
        assert_eq!(a["state"], b["state"], "{model}: the fitted parameters differ");
        assert_eq!(loss_bits(&a), loss_bits(&b), "{model}: the losses differ");
        assert!(!loss_bits(&a).is_empty());
        assert_eq!(one["scores"], two_json["scores"], "{model}");
    }
}

#[test]
fn ranks_on_one_host_share_a_prepared_directory_and_fit_what_one_process_fits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "6", "--out", "m.csv", "--json"], d));
    // Prepared once; both ranks map the same files (on one host, the same page-cache pages).
    json(&trainbench(&["prepare", "--data", "m.csv", "--label", "label", "--out", "p", "--json"], d));
    for (engine, model) in [("spark", "lr"), ("spark", "tree"), ("tensor", "mlp")] {
        let args = |workers: &'static str, out: &'static str| {
            let mut a = vec!["train", "--engine", engine, "--model", model, "--data", "p", "--workers", workers];
            a.extend(["--save", out, "--json"]);
            if engine == "tensor" {
                a.extend(["--epochs", "2", "--batch-size", "256"]);
            }
            a
        };
        let one = json(&trainbench(&args("2", "one.json"), d));
        let two = json(&mpirun2(&args("1", "two.json"), d));
        assert_eq!(two["processes"], 2, "{engine} {model}");
        let (a, b) = (saved(d, "one.json"), saved(d, "two.json"));
        assert_eq!(loss_bits(&a), loss_bits(&b), "{engine} {model}: the losses differ");
        assert_eq!(one["scores"], two["scores"], "{engine} {model}");
        if engine == "spark" {
            assert_eq!(a["state"], b["state"], "{engine} {model}: the fitted parameters differ");
        }
    }
}

/// Every file of prepared directory `a` and of `b`, byte for byte.
fn assert_same_directory(a: &Path, b: &Path) {
    let names = |d: &Path| {
        let mut n: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    };
    assert_eq!(names(a), names(b), "{} and {} hold other files", a.display(), b.display());
    for name in names(a) {
        let (x, y) = (std::fs::read(a.join(&name)).unwrap(), std::fs::read(b.join(&name)).unwrap());
        assert!(x == y, "{name} differs between {} and {}", a.display(), b.display());
    }
}

/// The byte ranges the ranks say they read (`rank r of P reads bytes A..B of ...`), by rank.
fn shares_read(o: &Output) -> Vec<(u64, u64)> {
    let text = stderr(o);
    let mut shares: Vec<(usize, u64, u64)> = text
        .split("rank ")
        .skip(1)
        .filter_map(|rest| {
            let (rank, rest) = rest.split_once(" of ")?;
            let range = rest.split_once("reads bytes ")?.1.split_whitespace().next()?;
            let (from, to) = range.split_once("..")?;
            Some((rank.parse().ok()?, from.parse().ok()?, to.parse().ok()?))
        })
        .collect();
    shares.sort();
    shares.into_iter().map(|(_, a, b)| (a, b)).collect()
}

#[test]
fn each_rank_prepares_its_share_and_the_directory_is_the_one_process_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "mixed", "--rows", "4000", "--seed", "8", "--out", "m.csv", "--json"], d));
    // What cleaning meets, spread over the file so that every share has some: duplicates of rows
    // in other shares, a row without its label, unreadable rows, and a quoted category with a
    // line end inside it (a share must not start inside the quotes).
    let text = std::fs::read_to_string(d.join("m.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let width = lines[0].split(',').count();
    let quoted = {
        let mut fields: Vec<String> = lines[2000].split(',').map(str::to_owned).collect();
        let category = fields.iter().position(|f| f.parse::<f64>().is_err() && !f.is_empty()).unwrap();
        fields[category] = "\"two\nlines\"".into();
        fields.join(",")
    };
    for at in [3900, 2500, 1500, 700] {
        let copy = lines[at - 600].clone();
        lines.insert(at, copy);
    }
    let unlabelled = {
        let mut fields: Vec<&str> = lines[10].split(',').collect();
        *fields.last_mut().unwrap() = "";
        fields.join(",")
    };
    lines.insert(3000, unlabelled);
    lines.insert(1000, "1,2".into());
    lines.insert(2001, quoted);
    lines.insert(3500, vec!["oops"; width].join(","));
    std::fs::write(d.join("messy.csv"), lines.join("\n") + "\n").unwrap();

    let prepare = |out: &str| -> Vec<String> {
        [
            "prepare",
            "--data",
            "messy.csv",
            "--label",
            "label",
            "--out",
            out,
            "--quarantine",
            &format!("{out}.q.csv"),
            "--json",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let one = prepare("one");
    json(&trainbench(&one.iter().map(String::as_str).collect::<Vec<_>>(), d));
    let quarantined = std::fs::read_to_string(d.join("one.q.csv")).unwrap();
    assert!(quarantined.contains("exact duplicate of line"), "{quarantined}");
    assert!(quarantined.contains("is missing"), "{quarantined}");
    for ranks in [2usize, 3] {
        let out = format!("p{ranks}");
        let args = prepare(&out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = mpirun(&vec![&args[..]; ranks], d);
        json(&o);
        // The shares cover the rows once, in order, and none is all of them.
        let shares = shares_read(&o);
        assert_eq!(shares.len(), ranks, "{}", stderr(&o));
        let size = std::fs::metadata(d.join("messy.csv")).unwrap().len();
        assert_eq!(shares.last().unwrap().1, size);
        assert!(shares.windows(2).all(|w| w[0].1 == w[1].0), "{shares:?}");
        assert!(shares.iter().all(|&(a, b)| b - a < size / 2 + 4096), "{shares:?}");
        assert_same_directory(&d.join("one"), &d.join(&out));
        assert_eq!(std::fs::read_to_string(d.join(format!("{out}.q.csv"))).unwrap(), quarantined, "{ranks} ranks");
    }

    // Trained across two processes from the directory they prepared, as one process from its own.
    let train = |data: &'static str, workers: &'static str, save: &'static str| {
        let mut a = vec!["train", "--engine", "spark", "--model", "tree", "--data", data, "--workers", workers];
        a.extend(["--save", save, "--json"]);
        a
    };
    json(&trainbench(&train("one", "2", "one.json"), d));
    json(&mpirun2(&train("p2", "1", "two.json"), d));
    assert_eq!(saved(d, "one.json")["state"], saved(d, "two.json")["state"]);

    // Parquet: each rank reads a run of the row groups.
    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "3", "--out", "m.parquet", "--json"], d));
    let pq = ["prepare", "--data", "m.parquet", "--label", "label", "--out", "pq1", "--json"];
    json(&trainbench(&pq, d));
    let pq2 = ["prepare", "--data", "m.parquet", "--label", "label", "--out", "pq2", "--json"];
    json(&mpirun2(&pq2, d));
    assert_same_directory(&d.join("pq1"), &d.join("pq2"));

    // Without --out each rank would prepare every row: refused.
    let o = mpirun2(&["prepare", "--data", "messy.csv", "--label", "label"], d);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("under mpirun, prepare writes a prepared directory"), "{}", stderr(&o));
}

#[test]
fn tensor_models_on_two_processes_equal_two_replicas_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "2000", "--seed", "5", "--out", "h.csv", "--json"], d));
    for (model, extra) in [("mlp", &["--epochs", "2", "--dropout", "0.2"][..]), ("gru", &["--epochs", "1"][..])] {
        let args = |workers: &'static str, out: &'static str| {
            let mut a = vec!["train", "--engine", "tensor", "--model", model, "--data", "h.csv", "--label", "label"];
            a.extend(["--workers", workers, "--batch-size", "64", "--save", out, "--json"]);
            a.extend(extra);
            a
        };
        let one = json(&trainbench(&args("2", "one.json"), d));
        let two = json(&mpirun2(&args("1", "two.json"), d));
        assert_eq!(
            (one["replicas"].as_u64(), two["replicas"].as_u64(), two["processes"].as_u64()),
            (Some(2), Some(1), Some(2))
        );
        let (a, b) = (saved(d, "one.json"), saved(d, "two.json"));
        assert_eq!(loss_bits(&a), loss_bits(&b), "{model}: the epochs' losses differ");
        // Probabilities of every row, printed to the last bit (shortest round-trip f32).
        let predict = |file: &str, out: &str| {
            json(&trainbench(&["predict", "--model", file, "--data", "h.csv", "--out", out, "--json"], d));
            std::fs::read_to_string(d.join(out)).unwrap()
        };
        let (pa, pb) = (predict("one.json", "one.csv"), predict("two.json", "two.csv"));
        assert_eq!(pa.lines().count(), 2001);
        assert!(pa == pb, "{model}: the two-process model predicts other probabilities");
    }
}

#[test]
fn resume_under_mpirun_reaches_the_uninterrupted_weights_and_rank_0_alone_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "1500", "--seed", "6", "--out", "h.csv", "--json"], d));
    let base = ["train", "--engine", "tensor", "--model", "mlp", "--data", "h.csv", "--label", "label", "--json"];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    json(&mpirun2(&with(&["--workers", "1", "--epochs", "1", "--checkpoint-dir", "ck", "--tensorboard", "tb"]), d));
    // One writer: one event file per TensorBoard folder, not one per rank.
    for sub in ["train", "validation"] {
        assert_eq!(std::fs::read_dir(d.join("tb").join(sub)).unwrap().count(), 1, "{sub}");
    }
    let resumed = json(&mpirun2(
        &with(&["--workers", "1", "--epochs", "3", "--checkpoint-dir", "ck", "--resume", "--save", "r.json"]),
        d,
    ));
    assert_eq!(resumed["resumed_epochs"], 1);
    json(&trainbench(&with(&["--workers", "2", "--epochs", "3", "--save", "u.json"]), d));
    assert_eq!(loss_bits(&saved(d, "r.json")), loss_bits(&saved(d, "u.json")));
}

#[test]
fn a_rank_that_fails_ends_the_job_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "1200", "--seed", "7", "--out", "a.csv", "--json"], d));
    json(&trainbench(&["gen", "higgs-like", "--rows", "1200", "--seed", "8", "--out", "b.csv", "--json"], d));
    // Rank 1 reads another file: a per-host copy that is not the same data.
    let args = |file| vec!["train", "--engine", "spark", "--model", "lr", "--data", file, "--label", "label"];
    let o = mpirun(&[&args("a.csv"), &args("b.csv")], d);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("rank 1 prepared other training rows than rank 0"), "{err}");
    assert!(err.contains("error: rank "), "{err}");

    // A command that runs in one process says so instead of running twice.
    let o = mpirun2(&["gen", "higgs-like", "--rows", "10", "--out", "g.csv"], d);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("`gen` runs in one process; start it without mpirun"), "{}", stderr(&o));
    assert!(!d.join("g.csv").exists());
}

#[test]
fn scale_sweeps_processes_through_mpirun_with_the_cores_split() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json(&trainbench(&["gen", "higgs-like", "--rows", "3000", "--seed", "9", "--out", "h.csv", "--json"], d));
    let o = trainbench(
        &[
            "scale",
            "--data",
            "h.csv",
            "--runs",
            "spark:lr,tensor:mlp",
            "--processes",
            "1,2",
            "--fractions",
            "0.5,1",
            "--seeds",
            "1",
            "--param",
            "tensor.epochs=2",
            "--out",
            "rep",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("rep/results.json")).unwrap()).unwrap();
    let runs = results["runs"].as_array().unwrap();
    // 2 models × 2 process counts × 2 fractions, each finished.
    assert_eq!(runs.len(), 8);
    assert!(runs.iter().all(|r| r["status"] == "ok"), "{runs:?}");
    let point = |r: &serde_json::Value| (r["sweep"]["processes"].as_u64(), r["processes"].as_u64());
    assert_eq!(runs.iter().filter(|r| point(r) == (Some(2), Some(2))).count(), 4);
    assert_eq!(runs.iter().filter(|r| point(r) == (Some(1), Some(1))).count(), 4);
    assert!(runs.iter().filter(|r| r["processes"] == 2).all(|r| r["communication_seconds"].as_f64() > Some(0.0)));
    // The machine's cores are split between the processes; where they split evenly (2 cores: 1 × 2
    // and 2 × 1), the work is cut the same way and every run fits the same model as its twin.
    for r in runs.iter().filter(|r| r["processes"] == 2) {
        let twin = runs
            .iter()
            .find(|o| {
                o["processes"] == 1 && o["model"] == r["model"] && o["sweep"]["fraction"] == r["sweep"]["fraction"]
            })
            .unwrap();
        let (w1, w2) = (twin["sweep"]["workers"].as_u64().unwrap(), r["sweep"]["workers"].as_u64().unwrap());
        assert_eq!(w2, (w1 / 2).max(1), "{}", r["id"]);
        if w1 == 2 * w2 {
            assert_eq!(r["scores"], twin["scores"], "{}", r["id"]);
        }
    }
    let out = stdout(&o);
    let scales = out.lines().skip_while(|l| !l.starts_with("Which scales better?")).nth(1).unwrap();
    assert!(scales.contains("spark lr: ") && scales.contains("2 processes × "), "{scales}");

    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/results.schema.json");
    let check = Command::new("python3")
        .args(["-c", "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))"])
        .arg(d.join("rep/results.json"))
        .arg(schema)
        .output()
        .expect("python3 runs");
    assert!(check.status.success(), "results.json does not validate: {}", String::from_utf8_lossy(&check.stderr));
}
