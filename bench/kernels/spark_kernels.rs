//! Criterion benchmarks of the passes that take most of the training time, beside two
//! measurements of the hardware made the same way: read bandwidth from memory, and the f32 and
//! f64 matrix-multiply rates of `matrixmultiply` (the GEMM the MLP uses) on large square matrices.
//! Everything runs on one thread, so each kernel compares with what one core can do; the
//! engine runs one such pass per worker thread.
//!
//! `bench/kernels.sh` runs this and prints each kernel's rows/s, GB/s and GFLOP/s as a share
//! of those two limits. Sizes: one partition of the 1M-row benchmark (800k training rows in 4
//! partitions = 200k rows × 28 features).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainbench_data::{GenOptions, Generator, LoadOptions, PartitionView, generate, load};
use trainbench_engine::kernels::{Float, gemm};
use trainbench_engine_spark::kernels::{MlpNetwork, MlpWorkspace, lr_loss_gradient_sums, tree_bin_counts};

const ROWS: usize = 200_000;
const FEATURES: usize = 28;
/// Rows per block stacked into one matrix by the MLP (MLlib's blockSize).
const BLOCK: usize = 128;
/// Nodes of the level whose histograms the tree pass fills (depth 5 of a full tree).
const NODES: usize = 32;
const BINS: usize = 32;

fn rows_and_labels(seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..ROWS * FEATURES).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let y = (0..ROWS).map(|_| rng.random_range(0..2u32)).collect();
    (x, y)
}

/// Bytes of the row-major f32 features and u32 labels a pass reads.
fn row_bytes(features: usize) -> u64 {
    (ROWS * (features * 4 + 4)) as u64
}

fn hardware(c: &mut Criterion) {
    let mut g = c.benchmark_group("hardware");
    // Read bandwidth: a sum over 256 MiB, far beyond any cache, with 16 independent partial
    // sums so the additions keep up with memory.
    let big: Vec<f32> = vec![1.0; 64 << 20];
    g.throughput(Throughput::Bytes((big.len() * 4) as u64));
    g.bench_function("memory_read", |b| {
        b.iter(|| {
            let mut acc = [0.0f32; 16];
            for chunk in black_box(&big).chunks_exact(16) {
                for k in 0..16 {
                    acc[k] += chunk[k];
                }
            }
            acc.iter().sum::<f32>()
        })
    });
    drop(big);
    // The GEMM's rate where it is best: large square matrices, f32 and f64 (the MLP runs in
    // either).
    let n = 512;
    let (a32, b32, mut c32) = (vec![0.5f32; n * n], vec![0.25f32; n * n], vec![0.0f32; n * n]);
    let (a64, b64, mut c64) = (vec![0.5f64; n * n], vec![0.25f64; n * n], vec![0.0f64; n * n]);
    g.throughput(Throughput::Elements((2 * n * n * n) as u64));
    g.bench_function(BenchmarkId::new("sgemm_flop", n), |b| {
        b.iter(|| {
            gemm([n, n, n], (&a32, [n, 1]), (&b32, [n, 1]), &mut c32);
            black_box(c32[0])
        })
    });
    g.bench_function(BenchmarkId::new("dgemm_flop", n), |b| {
        b.iter(|| {
            gemm([n, n, n], (&a64, [n, 1]), (&b64, [n, 1]), &mut c64);
            black_box(c64[0])
        })
    });
    g.finish();
}

fn kernels(c: &mut Criterion) {
    let (x, y) = rows_and_labels(1);
    let part = PartitionView { features: &x, labels: &y, n_features: FEATURES };
    let mut g = c.benchmark_group("kernel");
    g.sample_size(20).measurement_time(Duration::from_secs(8));

    // Logistic regression: one partition's loss and gradient (binomial).
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let w: Vec<f64> = (0..FEATURES).map(|_| rng.random::<f64>() - 0.5).collect();
    let bias = [0.1];
    g.throughput(Throughput::ElementsAndBytes { elements: ROWS as u64, bytes: row_bytes(FEATURES) });
    g.bench_function("lr_loss_gradient", |b| {
        b.iter(|| {
            let mut sums = vec![0.0; 1 + FEATURES + 1];
            lr_loss_gradient_sums(part, &w, &bias, &mut sums);
            sums
        })
    });

    // Decision tree: one level's histograms, rows spread over the level's nodes.
    let bins: Vec<u8> = (0..ROWS * FEATURES).map(|_| rng.random_range(0..BINS as u8)).collect();
    let node_of_row: Vec<u32> = (0..ROWS).map(|_| rng.random_range(0..NODES as u32)).collect();
    let slot: Vec<u32> = (0..NODES as u32).collect();
    let offsets: Vec<usize> = (0..=FEATURES).map(|j| j * BINS * 2).collect();
    let mut hist = vec![0u32; NODES * offsets[FEATURES]];
    // Bytes: the binned rows (one byte per feature), the labels and the node of each row.
    g.throughput(Throughput::ElementsAndBytes { elements: ROWS as u64, bytes: (ROWS * (FEATURES + 8)) as u64 });
    g.bench_function(BenchmarkId::new("tree_bin_counts", format!("{NODES}_nodes")), |b| {
        b.iter(|| {
            hist.fill(0);
            tree_bin_counts(&bins, &y, &node_of_row, &slot, &offsets, 2, &mut hist);
            black_box(hist[0])
        })
    });

    // MLP: every block of the partition forward and back, as one L-BFGS evaluation does, in
    // f64 (MLlib's arithmetic, the default) and in f32. The parameter names the layers and the
    // arithmetic; the table derives the FLOPs from the layers.
    let layers = vec![FEATURES, 64, 64, 2];
    let n_weights: usize = layers.windows(2).map(|p| p[0] * p[1] + p[1]).sum();
    let weights: Vec<f64> = (0..n_weights).map(|_| rng.random::<f64>() * 0.2 - 0.1).collect();
    fn mlp_bench<T: Float>(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        name: &str,
        net: MlpNetwork<T>,
        x: &[f32],
        y: &[u32],
    ) {
        let mut work = MlpWorkspace::<T>::default();
        let n_weights = net.weight_count();
        g.bench_function(BenchmarkId::new("mlp_loss_gradient", name), |b| {
            b.iter(|| {
                let mut loss = 0.0;
                let mut grad = vec![0.0; n_weights];
                for (block, labels) in x.chunks(BLOCK * FEATURES).zip(y.chunks(BLOCK)) {
                    let weight = 1.0 / labels.len() as f64;
                    net.add_block_loss_gradient(block, labels, weight, &mut work, &mut loss, &mut grad);
                }
                (loss, grad)
            })
        });
    }
    g.throughput(Throughput::ElementsAndBytes { elements: ROWS as u64, bytes: row_bytes(FEATURES) });
    mlp_bench(&mut g, "28-64-64-2/f64", MlpNetwork::<f64>::new(&layers, &weights), &x, &y);
    mlp_bench(&mut g, "28-64-64-2/f32", MlpNetwork::<f32>::new(&layers, &weights), &x, &y);

    // CSV load: parse a generated HIGGS-like file (already in the page cache) into columns.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("higgs.csv");
    let options = GenOptions { generator: Generator::HiggsLike, rows: ROWS as u64, seed: 1 };
    generate(&path, &options, &mut |_| {}).expect("generate the CSV");
    let size = std::fs::metadata(&path).expect("the CSV's size").len();
    let mut load_options = LoadOptions::default().with_label("label");
    load_options.threads = 1;
    g.throughput(Throughput::ElementsAndBytes { elements: ROWS as u64, bytes: size });
    g.bench_function("csv_load", |b| b.iter(|| load(&path, &load_options).expect("load the CSV").table.rows()));
    g.finish();
}

criterion_group!(benches, hardware, kernels);
criterion_main!(benches);
