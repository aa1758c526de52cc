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
use trainbench_engine::{Error, LogEntry, Precision, Progress, Result, RunContext, StepUnit, TrainLog, collective};

use crate::exchange;
use crate::model::{DropoutMasks, Net};
use crate::params::{Architecture, OptimizerKind, Schedule, TrainParams};
use crate::pipeline::{self, Batch};
use crate::tensorboard::EventWriter;

/// The dtype the forward and backward passes run in under `precision`: none for f32 (no casts),
/// bf16 / f16 for mixed precision (weights stay f32). f64 is the spark engine's.
fn low_dtype(precision: Precision) -> Result<Option<DType>> {
    match precision {
        Precision::F32 => Ok(None),
        Precision::Bf16 => Ok(Some(DType::BF16)),
        Precision::F16 => Ok(Some(DType::F16)),
        Precision::F64 => Err(Error::InvalidParam {
            name: "precision".into(),
            value: "f64".into(),
            expected: "f32, bf16 or f16 for the tensor engine (f64 is the spark engine's MLP's)".into(),
        }),
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
    /// The names, as the command line writes them (`flex` and `vulkan` are accepted too).
    pub const NAMES: &'static [&'static str] = &["cpu", "gpu"];

    /// The Burn device (without autodiff).
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "gpu")]
            Self::Vulkan => Ok(Device::vulkan(Default::default())),
            #[cfg(not(feature = "gpu"))]
            Self::Vulkan => Err(Error::Backend(
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

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" | "flex" => Ok(Self::Flex),
            "gpu" | "vulkan" => Ok(Self::Vulkan),
            other => {
                Err(Error::InvalidParam { name: "device".into(), value: other.into(), expected: "cpu or gpu".into() })
            }
        }
    }
}

/// Run options that are not model parameters.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Forward/backward precision: f32, or bf16 / f16 mixed.
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

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            precision: Precision::F32,
            backend: Backend::Flex,
            tensorboard: None,
            checkpoint_dir: None,
            resume: false,
        }
    }
}

/// Encodes a network's weights (Burn's burnpack record) for a JSON model file or checkpoint.
pub fn encode_weights(net: &Net) -> Result<String> {
    let bytes =
        net.clone().into_record().into_bytes().map_err(|e| Error::ModelState(format!("saving weights: {e}")))?;
    Ok(BASE64.encode(&*bytes))
}

/// Loads weights written by [`encode_weights`] into a network of the same architecture.
pub fn decode_weights(net: Net, text: &str) -> Result<Net> {
    let bad = |e: String| Error::ModelState(format!("model weights are unreadable: {e}"));
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

/// How every step of an epoch runs: the split over replicas, the arithmetic, the class weights.
struct StepSetup<'a> {
    n_features: usize,
    /// Replicas of every process together (a process runs its block of them).
    replicas: usize,
    class_weights: Option<&'a [f32]>,
    /// The low-precision dtype of mixed precision; none for f32.
    dtype: Option<DType>,
    device: &'a Device,
    /// The device without autodiff, where gradients from other processes are put.
    plain: &'a Device,
    seed: u64,
    epoch: usize,
}

impl StepSetup<'_> {
    /// One global batch: every replica's gradients on its contiguous slice of it, each loss
    /// summed over the slice and divided by the global batch's rows, so the gradients summed
    /// over the replicas are exactly the global batch's mean gradient.
    /// Under mpirun a process computes its block of the replicas and receives the others'.
    fn run(&self, net: &Net, batch: &Batch) -> Result<Vec<ReplicaStep>> {
        let replicas = self.replicas.min(batch.rows).max(1);
        let world = collective::world();
        let own = collective::owned(replicas, world.rank(), world.size());
        let local = self.run_replicas(net, batch, own, replicas)?;
        if world.size() == 1 {
            return Ok(local);
        }
        let packed =
            local.into_iter().map(|s| exchange::pack(net, &s.grads, s.loss, s.correct)).collect::<Result<Vec<_>>>()?;
        exchange::all_replicas(packed)?
            .into_iter()
            .map(|t| {
                let (loss, correct) = (t.loss, t.correct);
                Ok(ReplicaStep { grads: exchange::unpack(net, t, self.plain)?, loss, correct })
            })
            .collect()
    }

    /// Replicas `own` of `replicas`, in parallel on the fit's pool.
    fn run_replicas(
        &self,
        net: &Net,
        batch: &Batch,
        own: std::ops::Range<usize>,
        replicas: usize,
    ) -> Result<Vec<ReplicaStep>> {
        if own.len() == 1 {
            return Ok(vec![self.replica(net, batch, own.start, replicas)?]);
        }
        // The replicas run as tasks of the fit's pool, the one flex's parallel operations use:
        // on threads of their own, both replicas' operations queued their parallel parts on that
        // pool and waited for them, with more runnable threads than cores.
        let mut results: Vec<Option<Result<ReplicaStep>>> = own.clone().map(|_| None).collect();
        rayon::scope(|scope| {
            for (r, slot) in own.zip(results.iter_mut()) {
                scope.spawn(move |_| {
                    // A panic stays in its replica and becomes an error, as a thread's join did.
                    let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.replica(net, batch, r, replicas)
                    }));
                    *slot = Some(step.unwrap_or_else(|_| Err(Error::Backend("a replica panicked".into()))));
                });
            }
        });
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Backend("a replica did not finish".into()))))
            .collect()
    }

    /// Replica `r` of `replicas`: forward, weighted cross-entropy, backward on its slice.
    fn replica(&self, net: &Net, batch: &Batch, r: usize, replicas: usize) -> Result<ReplicaStep> {
        let rows = (r + 1) * batch.rows / replicas - r * batch.rows / replicas;
        // This process holds its replicas' rows only, from `batch.first`.
        let first = r * batch.rows / replicas - batch.first;
        let d = self.n_features;
        let labels = &batch.labels[first..first + rows];
        let net = net.clone().map(&mut OwnLeaves);
        let mut masks = DropoutMasks::new(self.seed, self.epoch, batch.step, r);
        let features = batch.features[first * d..(first + rows) * d].to_vec();
        let x = Tensor::<2>::from_data(TensorData::new(features, [rows, d]), self.device);
        let logits = match self.dtype {
            None => net.forward(x, Some(&mut masks)),
            Some(dtype) => {
                let low = net.clone().map(&mut CastWeights(dtype));
                low.forward(x.cast(dtype), Some(&mut masks)).cast(DType::F32)
            }
        };
        let targets: Vec<i64> = labels.iter().map(|&y| y as i64).collect();
        let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [rows, 1]), self.device);
        let correct = logits.clone().argmax(1).equal(targets.clone()).int().sum().into_scalar::<i64>() as usize;
        let mut picked = activation::log_softmax(logits, 1).gather(1, targets);
        if let Some(weights) = self.class_weights {
            let w: Vec<f32> = labels.iter().map(|&y| weights[y as usize]).collect();
            picked = picked * Tensor::<2>::from_data(TensorData::new(w, [rows, 1]), self.device);
        }
        let loss = picked.sum().mul_scalar(-1.0 / batch.rows as f64);
        let loss_value = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        Ok(ReplicaStep { grads, loss: loss_value, correct })
    }
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
        // Written whole, so a kill mid-write keeps the last epoch's.
        let bytes = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        trainbench_engine::write_whole(&dir.join(CHECKPOINT_FILE), &bytes).map_err(io)
    }

    /// Reads the checkpoint in `dir`; under mpirun rank 0 reads it and sends it to the others
    /// (only rank 0 writes checkpoints, so the others' disks may not have it).
    fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CHECKPOINT_FILE);
        let world = collective::world();
        let bytes = if world.size() == 1 {
            std::fs::read(&path).map_err(|source| Error::Io { path: path.clone(), source })?
        } else {
            // One status byte: 1 and the file, or 0 and rank 0's error.
            let message = match (world.rank(), std::fs::read(&path)) {
                (0, Ok(bytes)) => [vec![1], bytes].concat(),
                (0, Err(e)) => [vec![0], format!("{}: {e}", path.display()).into_bytes()].concat(),
                _ => Vec::new(),
            };
            match world.broadcast(0, message).split_first() {
                Some((1, bytes)) => bytes.to_vec(),
                Some((_, error)) => {
                    return Err(Error::ModelState(format!("on rank 0: {}", String::from_utf8_lossy(error))));
                }
                None => return Err(Error::ModelState("rank 0 sent no checkpoint".into())),
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::ModelState(format!("{}: not a checkpoint: {e}", path.display())))
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
    if let Some((available, _)) = trainbench_metrics::memory_budget()
        && bytes as u64 > available
    {
        return Err(Error::Resources(format!(
            "the model needs about {:.1} GiB to train ({weights} weights, batch {}), but only {:.1} GiB \
             is available; use smaller layers or a smaller batch_size",
            bytes as f64 / (1u64 << 30) as f64,
            p.batch_size,
            available as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
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
                batch.first + i / d,
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
    progress: &dyn Progress,
) -> Result<(Net, TrainLog)> {
    let pool = ctx.thread_pool("tensor-worker")?;
    pool.install(|| fit_on_pool(arch, p, (train, valid), ctx, opts, progress))
}

fn fit_on_pool(
    arch: &Architecture,
    p: &TrainParams,
    (train, valid): (&Prepared, &Prepared),
    ctx: &RunContext,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<(Net, TrainLog)> {
    // Under mpirun every rank prepared its own copy of the rows: they must be the same.
    collective::check_same_data(train)?;
    let local_replicas = ctx.replicas_or_workers();
    check_memory(arch, p, local_replicas)?;
    let replicas = local_replicas * collective::world().size();
    let mark = collective::communication_mark();
    let plain = opts.backend.device()?;
    let device = plain.clone().autodiff();
    let dtype = low_dtype(opts.precision)?;
    if let Some(dtype) = dtype {
        check_precision(&device, dtype, opts.backend)?;
    }
    plain.seed(ctx.seed);
    let mut state = State::new(arch, p, &device)?;
    if opts.resume {
        let dir = opts
            .checkpoint_dir
            .as_deref()
            .ok_or_else(|| Error::ModelState("--resume needs --checkpoint-dir".into()))?;
        let settings = Settings { arch, params: p, seed: ctx.seed, replicas, precision: opts.precision };
        state.resume(dir, &settings, &device)?;
    }
    // Rank 0 alone writes the run's files (TensorBoard, checkpoints), as with Horovod.
    let primary = collective::is_primary();
    let mut board = opts.tensorboard.as_deref().filter(|_| primary).map(Board::create).transpose()?;
    let class_weights = p.balanced_class_weights.then(|| balanced_weights(&train.labels, arch.classes));
    let started = Instant::now();
    let mut stop_reason = "max_epochs".to_owned();
    progress.begin(StepUnit::Epoch, p.epochs);
    for epoch in state.epochs_done..p.epochs {
        let setup = StepSetup {
            n_features: train.n_features,
            replicas,
            class_weights: class_weights.as_deref(),
            dtype,
            device: &device,
            plain: &plain,
            seed: ctx.seed,
            epoch,
        };
        let lr = learning_rate(p, epoch);
        let done =
            state.train_epoch(&setup, train, p, lr, (board.as_mut(), progress), opts.checkpoint_dir.is_some())?;
        let training_seconds = state.elapsed_before + started.elapsed().as_secs_f64() - state.eval_seconds;
        let (valid_loss, valid_accuracy) = state.validate(valid, &plain);
        let entry = LogEntry {
            step: epoch + 1,
            loss: done.loss,
            valid_loss,
            valid_accuracy,
            elapsed_seconds: training_seconds,
            extra: BTreeMap::from([
                ("accuracy".to_owned(), done.accuracy),
                ("learning_rate".to_owned(), lr),
                ("epoch_seconds".to_owned(), done.seconds),
                ("rows_per_second".to_owned(), done.rows as f64 / done.seconds.max(1e-9)),
            ]),
        };
        if let Some(board) = board.as_mut() {
            board.epoch(&entry)?;
        }
        progress.entry(&entry);
        state.entries.push(entry);
        state.epochs_done = epoch + 1;
        let stop = state.stopping.update(valid_loss.filter(|_| p.patience > 0), &state.net, p.patience);
        if let Some(dir) = opts.checkpoint_dir.as_ref().filter(|_| primary) {
            let settings = Settings { arch, params: p, seed: ctx.seed, replicas, precision: opts.precision };
            state.checkpoint(&settings, started)?.save(dir)?;
        }
        if stop {
            stop_reason = format!("early stopping after epoch {}", epoch + 1);
            break;
        }
    }
    let (net, mut log) = state.finish(started, stop_reason);
    log.communication_seconds = collective::communication_since(mark);
    Ok((net, log))
}

/// What a checkpoint must match to be resumed.
struct Settings<'a> {
    arch: &'a Architecture,
    params: &'a TrainParams,
    seed: u64,
    replicas: usize,
    precision: Precision,
}

/// Keras's EarlyStopping on the validation loss with `restore_best_weights=True`.
#[derive(Default)]
struct EarlyStopping {
    best: Option<(f64, Net)>,
    bad_epochs: usize,
}

impl EarlyStopping {
    /// Takes an epoch's validation loss (none when early stopping is off); true when training
    /// should stop.
    fn update(&mut self, valid_loss: Option<f64>, net: &Net, patience: usize) -> bool {
        let Some(loss) = valid_loss else { return false };
        if self.best.as_ref().is_none_or(|(b, _)| loss < *b) {
            self.best = Some((loss, net.clone()));
            self.bad_epochs = 0;
            false
        } else {
            self.bad_epochs += 1;
            self.bad_epochs >= patience
        }
    }
}

/// TensorBoard's event files of a run: `train/` and `validation/`, as Keras's callback writes.
struct Board {
    train: EventWriter,
    valid: EventWriter,
    dir: PathBuf,
}

impl Board {
    fn create(dir: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: dir.to_owned(), source };
        Ok(Self {
            train: EventWriter::create(&dir.join("train")).map_err(io)?,
            valid: EventWriter::create(&dir.join("validation")).map_err(io)?,
            dir: dir.to_owned(),
        })
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io { path: self.dir.clone(), source }
    }

    fn batch_loss(&mut self, global_step: u64, loss: f64) -> Result<()> {
        self.train.scalar("batch_loss", global_step, loss).map_err(|e| self.io(e))
    }

    /// The epoch's scalars under Keras's tags.
    fn epoch(&mut self, entry: &LogEntry) -> Result<()> {
        let e = entry.step as u64;
        let write = |tb: &mut EventWriter, tag: &str, v: f64| tb.scalar(tag, e, v);
        let res = (|| {
            write(&mut self.train, "epoch_loss", entry.loss)?;
            for (tag, key) in [
                ("epoch_accuracy", "accuracy"),
                ("epoch_learning_rate", "learning_rate"),
                ("epoch_rows_per_second", "rows_per_second"),
            ] {
                write(&mut self.train, tag, entry.extra[key])?;
            }
            if let (Some(l), Some(a)) = (entry.valid_loss, entry.valid_accuracy) {
                write(&mut self.valid, "epoch_loss", l)?;
                write(&mut self.valid, "epoch_accuracy", a)?;
            }
            self.train.flush()?;
            self.valid.flush()
        })();
        res.map_err(|e| self.io(e))
    }
}

/// What one epoch of training did.
struct EpochDone {
    loss: f64,
    accuracy: f64,
    seconds: f64,
    rows: usize,
}

/// The fit's state between epochs: what a checkpoint holds.
struct State {
    net: Net,
    optim: ModuleOptimizer,
    stopping: EarlyStopping,
    entries: Vec<LogEntry>,
    epochs_done: usize,
    /// Training seconds and validation seconds of earlier fits this one resumes.
    elapsed_before: f64,
    eval_before: f64,
    /// Validation seconds of this fit.
    eval_seconds: f64,
    resumed_epochs: Option<usize>,
}

impl State {
    fn new(arch: &Architecture, p: &TrainParams, device: &Device) -> Result<Self> {
        Ok(Self {
            net: Net::new(arch, device)?,
            optim: optimizer(p),
            stopping: EarlyStopping::default(),
            entries: Vec::new(),
            epochs_done: 0,
            elapsed_before: 0.0,
            eval_before: 0.0,
            eval_seconds: 0.0,
            resumed_epochs: None,
        })
    }

    /// Continues from the checkpoint in `dir`, which must have been made with the same settings
    /// (only `epochs` may grow, as with Keras's `initial_epoch`).
    fn resume(&mut self, dir: &Path, s: &Settings, device: &Device) -> Result<()> {
        let ck = Checkpoint::load(dir)?;
        let same_params = TrainParams { epochs: s.params.epochs, ..ck.params.clone() } == *s.params;
        if ck.arch != *s.arch
            || !same_params
            || ck.seed != s.seed
            || ck.replicas != s.replicas
            || ck.precision != s.precision
        {
            return Err(Error::ModelState(format!(
                "the checkpoint in {} was made with other settings (model, parameters, seed, replicas or \
                 precision); resume with the same ones (only epochs may change)",
                dir.display()
            )));
        }
        self.net = decode_weights(self.net.clone(), &ck.weights)?;
        let unreadable = |e: String| Error::ModelState(format!("checkpoint optimizer: {e}"));
        let opt_bytes = BASE64.decode(&ck.optimizer).map_err(|e| unreadable(e.to_string()))?;
        let record =
            OptimizerRecord::from_bytes(Bytes::from_bytes_vec(opt_bytes)).map_err(|e| unreadable(e.to_string()))?;
        self.optim = std::mem::replace(&mut self.optim, optimizer(s.params)).load_record(record);
        if let Some((loss, w)) = &ck.best {
            self.stopping.best = Some((*loss, decode_weights(Net::new(s.arch, device)?, w)?));
        }
        self.stopping.bad_epochs = ck.bad_epochs;
        self.epochs_done = ck.epoch;
        self.entries = ck.entries;
        self.elapsed_before = ck.elapsed_seconds;
        self.eval_before = ck.eval_seconds;
        self.resumed_epochs = Some(ck.epoch);
        Ok(())
    }

    /// One pass over the training rows, batches prefetched on a background thread.
    fn train_epoch(
        &mut self,
        setup: &StepSetup,
        train: &Prepared,
        p: &TrainParams,
        lr: f64,
        (mut board, progress): (Option<&mut Board>, &dyn Progress),
        checkpointing: bool,
    ) -> Result<EpochDone> {
        let started = Instant::now();
        let epoch = setup.epoch;
        let steps_per_epoch = train.labels.len().div_ceil(p.batch_size) as u64;
        let (mut loss_sum, mut correct, mut rows_seen) = (0.0f64, 0usize, 0usize);
        std::thread::scope(|scope| -> Result<()> {
            let batches =
                pipeline::prefetch(scope, train, p.batch_size, (setup.seed, epoch), p.shuffle_buffer, setup.replicas);
            for batch in batches {
                check_batch(&batch, train, epoch + 1)?;
                let steps = setup.run(&self.net, &batch)?;
                let loss: f64 = steps.iter().map(|s| s.loss).sum();
                if !loss.is_finite() {
                    return Err(Error::Diverged {
                        at: format!("epoch {}, step {}", epoch + 1, batch.step),
                        loss,
                        checkpoint_kept: checkpointing && epoch > 0,
                    });
                }
                loss_sum += loss * batch.rows as f64;
                correct += steps.iter().map(|s| s.correct).sum::<usize>();
                rows_seen += batch.rows;
                let device = setup.device;
                let multi =
                    MultiGradientsParams { grads: steps.into_iter().map(|s| (s.grads, device.clone())).collect() };
                self.net = self.optim.step_multi(lr, self.net.clone(), multi);
                if let Some(board) = board.as_deref_mut()
                    && p.log_every_steps > 0
                    && batch.step % p.log_every_steps == 0
                {
                    board.batch_loss(epoch as u64 * steps_per_epoch + batch.step as u64, loss)?;
                }
                progress.step(epoch + 1, batch.step, steps_per_epoch as usize);
            }
            Ok(())
        })?;
        let n = rows_seen.max(1) as f64;
        Ok(EpochDone {
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
            seconds: started.elapsed().as_secs_f64(),
            rows: rows_seen,
        })
    }

    /// Validation loss and accuracy (none without validation rows), timed apart from training.
    fn validate(&mut self, valid: &Prepared, device: &Device) -> (Option<f64>, Option<f64>) {
        if valid.labels.is_empty() {
            return (None, None);
        }
        let clock = Instant::now();
        let (loss, accuracy) = evaluate(&self.net.valid(), valid, device);
        self.eval_seconds += clock.elapsed().as_secs_f64();
        (Some(loss), Some(accuracy))
    }

    /// The checkpoint of the epochs done so far.
    fn checkpoint(&self, s: &Settings, started: Instant) -> Result<Checkpoint> {
        let optimizer = self.optim.to_record().into_bytes().map_err(|e| Error::ModelState(e.to_string()))?;
        Ok(Checkpoint {
            format: 1,
            epoch: self.epochs_done,
            arch: s.arch.clone(),
            params: s.params.clone(),
            seed: s.seed,
            replicas: s.replicas,
            precision: s.precision,
            weights: encode_weights(&self.net)?,
            optimizer: BASE64.encode(&*optimizer),
            best: match &self.stopping.best {
                Some((l, b)) => Some((*l, encode_weights(b)?)),
                None => None,
            },
            bad_epochs: self.stopping.bad_epochs,
            entries: self.entries.clone(),
            elapsed_seconds: self.elapsed_before + started.elapsed().as_secs_f64() - self.eval_seconds,
            eval_seconds: self.eval_before + self.eval_seconds,
        })
    }

    /// The trained network (the best one when early stopping kept it) and the log.
    fn finish(self, started: Instant, stop_reason: String) -> (Net, TrainLog) {
        let net = self.stopping.best.map_or(self.net, |(_, b)| b);
        let log = TrainLog {
            entries: self.entries,
            fit_seconds: self.elapsed_before + self.eval_before + started.elapsed().as_secs_f64(),
            stop_reason,
            eval_seconds: self.eval_before + self.eval_seconds,
            resumed_epochs: self.resumed_epochs,
            communication_seconds: None,
        };
        (net.valid(), log)
    }
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
        _ => Err(Error::Backend(format!("the {} backend cannot train in {dtype:?} precision", backend.name()))),
    }
}
