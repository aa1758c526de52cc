//! The pip wheel (`pyproject.toml`, maturin's `bindings = "bin"`), installed into a fresh venv:
//! `trainbench` is then on the venv's PATH and trains. The wheel's path is in
//! `TRAINBENCH_WHEEL` (`.ci/run` builds it with maturin); without it the test prints that it was
//! skipped, on the terminal, and passes.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::stderr;

#[test]
fn the_wheel_installs_trainbench_into_a_fresh_venv() {
    let wheel = match std::env::var("TRAINBENCH_WHEEL") {
        // A relative path is taken from the workspace root, where `maturin build` writes.
        Ok(w) if !w.trim().is_empty() => Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(w.trim()),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the_wheel_installs_trainbench_into_a_fresh_venv: TRAINBENCH_WHEEL is not set"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).output().unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    // Offline: the wheel carries everything.
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--no-index", "--disable-pip-version-check", "--quiet"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(pip.status.success(), "pip install {}: {}", wheel.display(), stderr(&pip));
    let exe = venv.join("bin/trainbench");
    assert!(exe.is_file(), "the wheel put no trainbench in {}", venv.join("bin").display());

    // On the venv's PATH, as an activated venv has it.
    let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let run = |args: &[&str]| {
        Command::new("trainbench").args(args).env("PATH", &path).current_dir(dir.path()).output().unwrap()
    };
    let version = run(&["--version"]);
    assert!(version.status.success(), "{}", stderr(&version));
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("trainbench {}", env!("CARGO_PKG_VERSION")));
    let generated = run(&["gen", "higgs-like", "--rows", "2000", "--out", "h.csv", "--json"]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    let trained = run(&["train", "--engine", "spark", "--model", "lr", "--data", "h.csv", "--json"]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let record: serde_json::Value = serde_json::from_slice(&trained.stdout).unwrap();
    assert_eq!(record["status"], "ok");
    assert!(record["scores"]["accuracy"].as_f64().unwrap() > 0.6, "{record}");
}
