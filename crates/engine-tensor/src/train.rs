//! The training loop, as Keras's `model.fit` runs it with a `MirroredStrategy`: each global batch
//! is cut into one slice per replica, every replica computes its gradients on its own thread, the
//! gradients are summed (all-reduce), and one optimizer step updates the shared weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, MultiGradientsParams, OptimizerRecord, SgdConfig,
    momentum::MomentumConfig,
};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, DType, Device, Int, Tensor, TensorData, activation};
use serde::{Deserialize, Serialize};
use trainbench_data::Prepared;
use trainbench_engine::{Error, LogEntry, Result, RunContext, TrainLog};

use crate::model::{DropoutMasks, Net};
use crate::params::{Architecture, OptimizerKind, Schedule, TrainParams};
use crate::pipeline::{self, Batch};
use crate::tensorboard::EventWriter;

/// Numeric precision of the forward and backward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// float32 throughout.
    #[default]
    F32,
    /// Mixed bfloat16: weights kept in float32, layers computed in bfloat16, loss in float32
    /// (Keras's `mixed_bfloat16` policy).
    Bf16,
    /// Mixed float16 (Keras's `mixed_float16`).
    F16,
}

impl Precision {
    /// Parses `f32`, `bf16` or `f16`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            other => Err(Error::InvalidParam {
                name: "precision".into(),
                value: other.into(),
                expected: "f32, bf16 or f16".into(),
            }),
        }
    }

    fn dtype(self) -> Option<DType> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(DType::BF16),
            Self::F16 => Some(DType::F16),
        }
    }
}

/// Where the engine computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Burn's `flex` CPU backend.
    #[default]
    Flex,
    /// Burn's Vulkan (wgpu) backend on a GPU (cargo feature `gpu`).
    Vulkan,
}

impl Backend {
    /// Parses `cpu` / `flex` or `vulkan` / `gpu`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "cpu" | "flex" => Ok(Self::Flex),
            "gpu" | "vulkan" => Ok(Self::Vulkan),
            other => {
                Err(Error::InvalidParam { name: "device".into(), value: other.into(), expected: "cpu or gpu".into() })
            }
        }
    }

    /// The Burn device (without autodiff).
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "gpu")]
            Self::Vulkan => Ok(Device::vulkan(Default::default())),
            #[cfg(not(feature = "gpu"))]
            Self::Vulkan => Err(Error::Data(
                "the gpu device needs trainbench built with `--features gpu` (Burn's Vulkan backend)".into(),
            )),
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex (CPU)",
            Self::Vulkan => "vulkan (wgpu)",
        }
    }
}

/// Run options that are not model parameters.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Forward/backward precision.
    pub precision: Precision,
    /// Where to compute.
    pub backend: Backend,
    /// TensorBoard log folder (gets `train/` and `validation/` event files).
    pub tensorboard: Option<PathBuf>,
    /// Folder for the per-epoch checkpoint.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir`.
    pub resume: bool,
}

/// Encodes a network's weights (Burn's burnpack record) for a JSON model file or checkpoint.
pub fn encode_weights(net: &Net) -> Result<String> {
    let bytes = net.clone().into_record().into_bytes().map_err(|e| Error::Data(format!("saving weights: {e}")))?;
    Ok(BASE64.encode(&*bytes))
}

/// Loads weights written by [`encode_weights`] into a network of the same architecture.
pub fn decode_weights(net: Net, text: &str) -> Result<Net> {
    let bad = |e: String| Error::Data(format!("model weights are unreadable: {e}"));
    let bytes = BASE64.decode(text).map_err(|e| bad(e.to_string()))?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| bad(e.to_string()))?;
    net.try_load_record(record).map_err(|e| bad(e.to_string()))
}

fn optimizer(p: &TrainParams) -> ModuleOptimizer {
    match p.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_epsilon(1e-7).init(),
        OptimizerKind::Adamw => AdamWConfig::new().with_epsilon(1e-7).with_weight_decay(p.weight_decay as f32).init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(
                (p.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(p.momentum).with_dampening(0.0)),
            )
            .init(),
    }
}

/// The learning rate of `epoch` (from 0).
pub fn learning_rate(p: &TrainParams, epoch: usize) -> f64 {
    match p.schedule {
        Schedule::Constant => p.learning_rate,
        Schedule::Step => p.learning_rate * p.lr_gamma.powi((epoch / p.lr_step_epochs) as i32),
        Schedule::Cosine => {
            0.5 * p.learning_rate * (1.0 + (std::f64::consts::PI * epoch as f64 / p.epochs as f64).cos())
        }
    }
}

/// Keras's "balanced" class weights: rows / (classes × rows of the class).
fn balanced_weights(labels: &[u32], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &y in labels {
        counts[y as usize] += 1;
    }
    counts.iter().map(|&c| if c == 0 { 0.0 } else { labels.len() as f32 / (classes * c) as f32 }).collect()
}

/// Casts every weight to a lower precision inside the autodiff graph, so gradients flow back to
/// the float32 master weights.
struct CastWeights(DType);

impl ModuleMapper for CastWeights {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// Gives a replica its own leaf tensors for the weights (same ids, same values, no copy of the
/// data), so the replicas' autodiff graphs share no node. Burn's autodiff merges graphs that
/// share nodes under a lock that a concurrent backward pass takes in the other order: replicas
/// sharing the weights' leaves deadlock. A single replica takes fresh leaves too: computing on
/// the optimizer's output tensors directly gave LSTM / GRU results that differed from the
/// replicas' (which match each other and the summed-gradient arithmetic), so every step now
/// starts from clean leaves whatever the replica count.
struct OwnLeaves;

impl ModuleMapper for OwnLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.detach().require_grad())
    }
}

/// What one replica sends back from one step.
struct ReplicaStep {
    grads: GradientsParams,
    loss: f64,
    correct: usize,
}

struct StepInput<'a> {
    features: &'a [f32],
    labels: &'a [u32],
    n_features: usize,
    /// Rows of the whole global batch: each replica's loss is its sum over this count, so the
    /// summed gradients equal the global batch's mean gradient.
    global_rows: usize,
    class_weights: Option<&'a [f32]>,
    precision: Precision,
}

fn replica_step(net: &Net, input: &StepInput<'_>, device: &Device, masks: &mut DropoutMasks) -> Result<ReplicaStep> {
    let rows = input.labels.len();
    let x = Tensor::<2>::from_data(TensorData::new(input.features.to_vec(), [rows, input.n_features]), device);
    let logits = match input.precision.dtype() {
        None => net.forward(x, Some(masks)),
        Some(dtype) => {
            let low = net.clone().map(&mut CastWeights(dtype));
            low.forward(x.cast(dtype), Some(masks)).cast(DType::F32)
        }
    };
    let targets: Vec<i64> = input.labels.iter().map(|&y| y as i64).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [rows, 1]), device);
    let correct = logits.clone().argmax(1).equal(targets.clone()).int().sum().into_scalar::<i64>() as usize;
    let mut picked = activation::log_softmax(logits, 1).gather(1, targets);
    if let Some(weights) = input.class_weights {
        let w: Vec<f32> = input.labels.iter().map(|&y| weights[y as usize]).collect();
        picked = picked * Tensor::<2>::from_data(TensorData::new(w, [rows, 1]), device);
    }
    let loss = picked.sum().mul_scalar(-1.0 / input.global_rows as f64);
    let loss_value = loss.clone().into_scalar::<f64>();
    let grads = GradientsParams::from_grads(loss.backward(), net);
    Ok(ReplicaStep { grads, loss: loss_value, correct })
}

/// Mean cross-entropy and accuracy of `net` (without autodiff) on `data`, scored as the spark
/// engine scores its validation rows.
pub fn evaluate(net: &Net, data: &Prepared, device: &Device) -> (f64, f64) {
    let probs = predict_proba(net, &data.features, data.n_features, device);
    trainbench_engine::score_probabilities(&probs, &data.labels, net.architecture().classes)
}

/// Softmax probabilities, `rows × classes`, computed in chunks to bound memory.
pub fn predict_proba(net: &Net, features: &[f32], n_features: usize, device: &Device) -> Vec<f32> {
    const CHUNK_ROWS: usize = 8192;
    let mut out = Vec::with_capacity(features.len() / n_features.max(1) * net.architecture().classes);
    for chunk in features.chunks(CHUNK_ROWS * n_features.max(1)) {
        let rows = chunk.len() / n_features.max(1);
        let x = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [rows, n_features]), device);
        let probs = activation::softmax(net.forward(x, None), 1);
        out.extend(probs.into_data().try_into_vec::<f32>().unwrap_or_default());
    }
    out
}

/// The state saved after each epoch; enough to continue to the same final weights.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    format: u32,
    /// Epochs completed.
    epoch: usize,
    arch: Architecture,
    params: TrainParams,
    seed: u64,
    replicas: usize,
    precision: Precision,
    weights: String,
    optimizer: String,
    best: Option<(f64, String)>,
    bad_epochs: usize,
    entries: Vec<LogEntry>,
    /// Training seconds so far (validation scoring left out).
    elapsed_seconds: f64,
    /// Seconds spent scoring validation rows so far.
    #[serde(default)]
    eval_seconds: f64,
}

const CHECKPOINT_FILE: &str = "checkpoint.json";

impl Checkpoint {
    fn save(&self, dir: &Path) -> Result<()> {
        let io = |source| Error::Io { path: dir.join(CHECKPOINT_FILE), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        // Written beside and renamed over the old one, so a kill mid-write keeps the last epoch's.
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE)).map_err(io)
    }

    fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CHECKPOINT_FILE);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Data(format!("{}: not a checkpoint: {e}", path.display())))
    }
}

/// Refuses a model whose training would not fit in the memory available, with the estimate.
fn check_memory(arch: &Architecture, p: &TrainParams, replicas: usize) -> Result<()> {
    let weights = arch.weight_count()?;
    if weights > crate::params::MAX_WEIGHTS {
        return Err(Error::InvalidParam {
            name: "layers".into(),
            value: format!("{weights} weights"),
            expected: format!("at most {} weights", crate::params::MAX_WEIGHTS),
        });
    }
    // Weights, gradients and two optimizer moments in f32, a gradient copy per replica, and the
    // activations of one batch kept for the backward pass (about three copies each).
    let bytes = 4 * weights * (4 + replicas) + 4 * 3 * p.batch_size * arch.activations_per_row()?;
    if let Some(available) = available_memory()
        && bytes as u64 > available
    {
        return Err(Error::Data(format!(
            "the model needs about {:.1} GiB to train ({weights} weights, batch {}), but only {:.1} GiB \
             is available; use smaller layers or a smaller batch_size",
            bytes as f64 / (1u64 << 30) as f64,
            p.batch_size,
            available as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn check_batch(batch: &Batch, data: &Prepared, epoch: usize) -> Result<()> {
    match batch.features.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => {
            let d = data.n_features.max(1);
            Err(Error::Data(format!(
                "epoch {epoch}, step {}: feature '{}' of batch row {} is {}; features must be finite",
                batch.step,
                data.feature_names.get(i % d).map_or("?", String::as_str),
                i / d,
                batch.features[i]
            )))
        }
    }
}

/// Trains a network of `arch` on `train`; returns it (on the plain device) and the log.
///
/// Everything runs on a pool of `ctx.workers` threads: the replicas are tasks of that pool and
/// flex's parallel tensor operations (rayon, and the GEMM's threads) go to the pool they are
/// called from, so the fit uses `workers` cores, whatever the machine has.
pub fn fit(
    arch: &Architecture,
    p: &TrainParams,
    train: &Prepared,
    valid: &Prepared,
    ctx: &RunContext,
    opts: &TrainOptions,
) -> Result<(Net, TrainLog)> {
    let pool = ctx.thread_pool("tensor-worker")?;
    pool.install(|| fit_on_pool(arch, p, train, valid, ctx, opts))
}

fn fit_on_pool(
    arch: &Architecture,
    p: &TrainParams,
    train: &Prepared,
    valid: &Prepared,
    ctx: &RunContext,
    opts: &TrainOptions,
) -> Result<(Net, TrainLog)> {
    let replicas = ctx.replicas_or_workers();
    check_memory(arch, p, replicas)?;
    let plain = opts.backend.device()?;
    let device = plain.clone().autodiff();
    if let Some(dtype) = opts.precision.dtype() {
        check_precision(&device, dtype, opts.backend)?;
    }
    plain.seed(ctx.seed);
    let mut net = Net::new(arch, &device)?;
    let mut optim = optimizer(p);
    let class_weights = p.balanced_class_weights.then(|| balanced_weights(&train.labels, arch.classes));

    let mut start_epoch = 0;
    let mut entries = Vec::new();
    let mut best: Option<(f64, Net)> = None;
    let mut bad_epochs = 0;
    let (mut elapsed_before, mut eval_before) = (0.0, 0.0);
    let mut resumed_epochs = None;
    if opts.resume {
        let dir =
            opts.checkpoint_dir.as_deref().ok_or_else(|| Error::Data("--resume needs --checkpoint-dir".into()))?;
        let ck = Checkpoint::load(dir)?;
        // Only `epochs` may change: a finished run can be extended, as with Keras's initial_epoch.
        let same_params = TrainParams { epochs: p.epochs, ..ck.params.clone() } == *p;
        if ck.arch != *arch
            || !same_params
            || ck.seed != ctx.seed
            || ck.replicas != replicas
            || ck.precision != opts.precision
        {
            return Err(Error::Data(format!(
                "the checkpoint in {} was made with other settings (model, parameters, seed, replicas or \
                 precision); resume with the same ones (only epochs may change)",
                dir.display()
            )));
        }
        net = decode_weights(net, &ck.weights)?;
        let opt_bytes = BASE64.decode(&ck.optimizer).map_err(|e| Error::Data(format!("checkpoint optimizer: {e}")))?;
        let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(opt_bytes))
            .map_err(|e| Error::Data(format!("checkpoint optimizer: {e}")))?;
        optim = optim.load_record(record);
        if let Some((loss, w)) = &ck.best {
            best = Some((*loss, decode_weights(Net::new(arch, &device)?, w)?));
        }
        start_epoch = ck.epoch;
        bad_epochs = ck.bad_epochs;
        entries = ck.entries;
        elapsed_before = ck.elapsed_seconds;
        eval_before = ck.eval_seconds;
        resumed_epochs = Some(ck.epoch);
    }

    let mut boards = match &opts.tensorboard {
        Some(dir) => {
            let io = |source| Error::Io { path: dir.clone(), source };
            Some((
                EventWriter::create(&dir.join("train")).map_err(io)?,
                EventWriter::create(&dir.join("validation")).map_err(io)?,
            ))
        }
        None => None,
    };

    let started = Instant::now();
    // Validation scoring in this fit: left out of the log's training times.
    let mut eval_seconds = 0.0;
    let mut stop_reason = "max_epochs".to_owned();
    let steps_per_epoch = train.labels.len().div_ceil(p.batch_size) as u64;
    for epoch in start_epoch..p.epochs {
        let epoch_started = Instant::now();
        let lr = learning_rate(p, epoch);
        let (mut loss_sum, mut correct, mut rows_seen) = (0.0f64, 0usize, 0usize);
        let result: Result<()> = std::thread::scope(|scope| {
            let batches = pipeline::prefetch(scope, train, p.batch_size, ctx.seed, epoch);
            for batch in batches {
                check_batch(&batch, train, epoch + 1)?;
                let steps = run_step(
                    &net,
                    &batch,
                    train.n_features,
                    replicas,
                    &class_weights,
                    opts.precision,
                    &device,
                    ctx.seed,
                    epoch,
                )?;
                let loss: f64 = steps.iter().map(|s| s.loss).sum();
                if !loss.is_finite() {
                    return Err(Error::Data(format!(
                        "training diverged at epoch {}, step {}: loss is {loss}{}",
                        epoch + 1,
                        batch.step,
                        if opts.checkpoint_dir.is_some() { "; the last good checkpoint is kept" } else { "" }
                    )));
                }
                loss_sum += loss * batch.rows as f64;
                correct += steps.iter().map(|s| s.correct).sum::<usize>();
                rows_seen += batch.rows;
                let multi =
                    MultiGradientsParams { grads: steps.into_iter().map(|s| (s.grads, device.clone())).collect() };
                net = optim.step_multi(lr, net.clone(), multi);
                if let Some((tb, _)) = boards.as_mut()
                    && p.log_every_steps > 0
                    && batch.step % p.log_every_steps == 0
                {
                    let global_step = epoch as u64 * steps_per_epoch + batch.step as u64;
                    tb.scalar("batch_loss", global_step, loss).map_err(|e| Error::Data(format!("tensorboard: {e}")))?;
                }
            }
            Ok(())
        });
        result?;
        let epoch_seconds = epoch_started.elapsed().as_secs_f64();
        let train_loss = loss_sum / rows_seen.max(1) as f64;
        let train_acc = correct as f64 / rows_seen.max(1) as f64;
        let training_seconds = elapsed_before + started.elapsed().as_secs_f64() - eval_seconds;
        let (valid_loss, valid_acc) = if valid.labels.is_empty() {
            (None, None)
        } else {
            let clock = Instant::now();
            let (l, a) = evaluate(&net.valid(), valid, &plain);
            eval_seconds += clock.elapsed().as_secs_f64();
            (Some(l), Some(a))
        };
        let mut extra = BTreeMap::new();
        extra.insert("accuracy".to_owned(), train_acc);
        extra.insert("learning_rate".to_owned(), lr);
        extra.insert("epoch_seconds".to_owned(), epoch_seconds);
        extra.insert("rows_per_second".to_owned(), rows_seen as f64 / epoch_seconds.max(1e-9));
        entries.push(LogEntry {
            step: epoch + 1,
            loss: train_loss,
            valid_loss,
            valid_accuracy: valid_acc,
            elapsed_seconds: training_seconds,
            extra: extra.clone(),
        });
        if let Some((tb_train, tb_valid)) = boards.as_mut() {
            let e = (epoch + 1) as u64;
            let write = |tb: &mut EventWriter, tag: &str, v: f64| tb.scalar(tag, e, v);
            let res = (|| {
                write(tb_train, "epoch_loss", train_loss)?;
                write(tb_train, "epoch_accuracy", train_acc)?;
                write(tb_train, "epoch_learning_rate", lr)?;
                write(tb_train, "epoch_rows_per_second", extra["rows_per_second"])?;
                if let (Some(l), Some(a)) = (valid_loss, valid_acc) {
                    write(tb_valid, "epoch_loss", l)?;
                    write(tb_valid, "epoch_accuracy", a)?;
                }
                tb_train.flush()?;
                tb_valid.flush()
            })();
            res.map_err(|e| Error::Data(format!("tensorboard: {e}")))?;
        }

        // Early stopping on the validation loss (Keras's EarlyStopping with
        // restore_best_weights=True).
        let mut stop = false;
        if let Some(l) = valid_loss.filter(|_| p.patience > 0) {
            if best.as_ref().is_none_or(|(b, _)| l < *b) {
                best = Some((l, net.clone()));
                bad_epochs = 0;
            } else {
                bad_epochs += 1;
                stop = bad_epochs >= p.patience;
            }
        }
        if let Some(dir) = &opts.checkpoint_dir {
            Checkpoint {
                format: 1,
                epoch: epoch + 1,
                arch: arch.clone(),
                params: p.clone(),
                seed: ctx.seed,
                replicas,
                precision: opts.precision,
                weights: encode_weights(&net)?,
                optimizer: BASE64.encode(&*optim.to_record().into_bytes().map_err(|e| Error::Data(e.to_string()))?),
                best: match &best {
                    Some((l, b)) => Some((*l, encode_weights(b)?)),
                    None => None,
                },
                bad_epochs,
                entries: entries.clone(),
                elapsed_seconds: elapsed_before + started.elapsed().as_secs_f64() - eval_seconds,
                eval_seconds: eval_before + eval_seconds,
            }
            .save(dir)?;
        }
        if stop {
            stop_reason = format!("early stopping after epoch {}", epoch + 1);
            break;
        }
    }
    if let Some((_, b)) = best {
        net = b;
    }
    let log = TrainLog {
        entries,
        fit_seconds: elapsed_before + eval_before + started.elapsed().as_secs_f64(),
        stop_reason,
        eval_seconds: eval_before + eval_seconds,
        resumed_epochs,
    };
    Ok((net.valid(), log))
}

#[allow(clippy::too_many_arguments)]
fn run_step(
    net: &Net,
    batch: &Batch,
    n_features: usize,
    replicas: usize,
    class_weights: &Option<Vec<f32>>,
    precision: Precision,
    device: &Device,
    seed: u64,
    epoch: usize,
) -> Result<Vec<ReplicaStep>> {
    let rows = batch.rows;
    let replicas = replicas.min(rows);
    let slice = |r: usize| (r * rows / replicas)..((r + 1) * rows / replicas);
    let input = |r: usize| {
        let range = slice(r);
        StepInput {
            features: &batch.features[range.start * n_features..range.end * n_features],
            labels: &batch.labels[range],
            n_features,
            global_rows: rows,
            class_weights: class_weights.as_deref(),
            precision,
        }
    };
    if replicas == 1 {
        let mut masks = DropoutMasks::new(seed, epoch, batch.step, 0);
        let replica = net.clone().map(&mut OwnLeaves);
        return Ok(vec![replica_step(&replica, &input(0), device, &mut masks)?]);
    }
    // The replicas run as tasks of rayon's pool, the one flex's parallel operations use: on
    // threads of their own, both replicas' operations queued their parallel parts on that pool
    // and waited for them, with more runnable threads than cores.
    let mut results: Vec<Option<Result<ReplicaStep>>> = (0..replicas).map(|_| None).collect();
    rayon::scope(|scope| {
        for (r, slot) in results.iter_mut().enumerate() {
            let replica = net.clone().map(&mut OwnLeaves);
            let step_input = input(r);
            scope.spawn(move |_| {
                let mut masks = DropoutMasks::new(seed, epoch, batch.step, r);
                // A panic stays in its replica and becomes an error, as a thread's join did.
                let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    replica_step(&replica, &step_input, device, &mut masks)
                }));
                *slot = Some(step.unwrap_or_else(|_| Err(Error::Data("a replica panicked".into()))));
            });
        }
    });
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::Data("a replica did not finish".into())))).collect()
}

/// Checks that the backend can compute in `dtype` (a matmul and its backward), so an unsupported
/// precision is a clear error, never a silent fallback to float32.
fn check_precision(device: &Device, dtype: DType, backend: Backend) -> Result<()> {
    let probe = std::panic::catch_unwind(|| {
        let a = Tensor::<2>::ones([2, 2], device).require_grad();
        let b = a.clone().cast(dtype).matmul(Tensor::<2>::ones([2, 2], device).cast(dtype));
        let grads = b.cast(DType::F32).sum().backward();
        a.grad(&grads).is_some()
    });
    match probe {
        Ok(true) => Ok(()),
        _ => Err(Error::Data(format!("the {} backend cannot train in {dtype:?} precision", backend.name()))),
    }
}
