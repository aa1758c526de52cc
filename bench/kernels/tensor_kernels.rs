//! Criterion benchmark of the tensor engine's unit of work: one batch of the MLP forward, its
//! cross-entropy and backward on Burn's flex CPU backend, as a training step computes it (the
//! 28-128-128 network and batch of 1024 of `bench/tensor.sh`). `bench/kernels.sh` runs it with
//! the spark engine's kernels (one thread: RAYON_NUM_THREADS=1) and sets its GFLOP/s beside
//! the measured GEMM rate.

use std::hint::black_box;
use std::time::Duration;

use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainbench_engine::{ModelKind, Params};
use trainbench_engine_tensor::model::Net;
use trainbench_engine_tensor::params::parse;

const BATCH: usize = 1024;
const FEATURES: usize = 28;

fn mlp_batch(c: &mut Criterion) {
    let device = Device::flex().autodiff();
    device.seed(1);
    let (arch, _) = parse(ModelKind::Mlp, &Params::new().with("hidden", [128, 128]), FEATURES, 2).expect("an MLP");
    let net = Net::new(&arch, &device).expect("the network");
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x: Vec<f32> = (0..BATCH * FEATURES).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let y: Vec<i64> = (0..BATCH).map(|_| rng.random_range(0..2i64)).collect();

    let mut g = c.benchmark_group("kernel");
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::ElementsAndBytes { elements: BATCH as u64, bytes: (BATCH * (FEATURES * 4 + 8)) as u64 });
    // The parameter names the layers; the table derives the FLOPs from them.
    g.bench_function(BenchmarkId::new("tensor_mlp_batch", "28-128-128-2"), |b| {
        b.iter(|| {
            let input = Tensor::<2>::from_data(TensorData::new(x.clone(), [BATCH, FEATURES]), &device);
            let targets = Tensor::<2, Int>::from_data(TensorData::new(y.clone(), [BATCH, 1]), &device);
            let logits = net.forward(input, None);
            let loss = activation::log_softmax(logits, 1).gather(1, targets).sum().mul_scalar(-1.0 / BATCH as f64);
            black_box(loss.backward())
        })
    });
    g.finish();
}

criterion_group!(benches, mlp_batch);
criterion_main!(benches);
