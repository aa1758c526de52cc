//! Two test hosts (network namespaces on a bridge, `scripts/test-hosts.sh`), one MPI rank on
//! each, talking over TCP only: the directory they prepare, each reading its share of the file,
//! and the models they train are those of one process. Built with the `mpi` feature; needs root
//! (`ip netns`). Under `CI=true` a machine where the hosts cannot be made fails the test.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{json, loss_bits, required, saved, stderr, trainbench};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-hosts.sh")
}

/// The test hosts, removed when dropped.
struct Hosts;

impl Hosts {
    fn up() -> Result<Self, String> {
        let o = Command::new(script()).args(["up", "2"]).output().map_err(|e| e.to_string())?;
        if o.status.success() { Ok(Hosts) } else { Err(String::from_utf8_lossy(&o.stderr).into_owned()) }
    }

    /// `mpirun` started on host 1, one rank on each host, TCP on the hosts' subnet only.
    fn mpirun(&self, args: &[&str], dir: &Path) -> Output {
        let agent = String::from_utf8(Command::new(script()).arg("rsh-agent").output().unwrap().stdout).unwrap();
        let mut cmd = Command::new(script());
        cmd.args(["exec", "tbhost1", "mpirun", "--allow-run-as-root", "--host", "10.231.0.1:1,10.231.0.2:1"]);
        cmd.args(["-np", "2", "--mca", "plm_rsh_agent", agent.trim(), "--mca", "btl", "tcp,self"]);
        cmd.args(["--mca", "btl_tcp_if_include", "10.231.0.0/24", "--mca", "oob_tcp_if_include", "10.231.0.0/24"]);
        // The test hosts share this machine's cores: a rank that busy-polls while it waits takes
        // the core the other host's rank computes on (Open MPI yields by itself only when it
        // knows a host is oversubscribed).
        cmd.args(["--mca", "mpi_yield_when_idle", "1"]);
        cmd.args(["-x", "PATH", "--wdir"]).arg(dir).args(args);
        cmd.current_dir(dir).output().expect("mpirun runs")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("down").status();
    }
}

#[test]
fn two_hosts_prepare_their_shares_and_train_what_one_process_trains() {
    let Some(hosts) = required(
        Hosts::up(),
        "CI must run on two test hosts, but they could not be made",
        "two_hosts_prepare_their_shares",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One rank in each host's namespace, each with its own address.
    let o = hosts.mpirun(&["sh", "-c", "ip -o -4 addr show eth0"], d);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("10.231.0.1/24") && out.contains("10.231.0.2/24"), "{out}{}", stderr(&o));

    json(&trainbench(&["gen", "mixed", "--rows", "3000", "--seed", "6", "--out", "m.csv", "--json"], d));
    json(&trainbench(&["prepare", "--data", "m.csv", "--label", "label", "--out", "one", "--json"], d));
    let bin = env!("CARGO_BIN_EXE_trainbench");
    let o = hosts.mpirun(&[bin, "prepare", "--data", "m.csv", "--label", "label", "--out", "two", "--json"], d);
    json(&o);
    assert!(stderr(&o).contains("rank 1 of 2 reads bytes "), "{}", stderr(&o));
    for name in ["manifest.json", "train.features.f32", "train.labels.u32", "test.features.f32", "test.labels.u32"] {
        assert!(
            std::fs::read(d.join("one").join(name)).unwrap() == std::fs::read(d.join("two").join(name)).unwrap(),
            "{name}"
        );
    }

    for (engine, model) in [("spark", "lr"), ("spark", "mlp"), ("tensor", "mlp")] {
        let args = |data: &'static str, workers: &'static str, out: &'static str| {
            let mut a = vec!["train", "--engine", engine, "--model", model, "--data", data, "--workers", workers];
            a.extend(["--save", out, "--json"]);
            match engine {
                "tensor" => a.extend(["--epochs", "2", "--batch-size", "256"]),
                _ if model == "mlp" => a.extend(["--max-iter", "15"]),
                _ => {}
            }
            a
        };
        let one = json(&trainbench(&args("one", "2", "one.json"), d));
        let mut two_args = vec![bin];
        two_args.extend(args("two", "1", "two.json"));
        let two = json(&hosts.mpirun(&two_args, d));
        assert_eq!(two["processes"], 2, "{engine} {model}");
        assert!(two["communication_seconds"].as_f64().unwrap() > 0.0);
        let (a, b) = (saved(d, "one.json"), saved(d, "two.json"));
        assert_eq!(loss_bits(&a), loss_bits(&b), "{engine} {model}: the losses differ");
        assert_eq!(one["scores"], two["scores"], "{engine} {model}");
        if engine == "spark" {
            assert_eq!(a["state"], b["state"], "{engine} {model}: the fitted parameters differ");
        }
    }
}
