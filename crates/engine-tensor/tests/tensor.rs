//! The tensor engine: learning, gradients against finite differences, replicas, resume,
//! save/load, TensorBoard files read by TensorBoard itself, and bad input.

use std::process::Command;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainbench_data::Prepared;
use trainbench_engine::{Engine, ModelKind, ModelSpec, ParamMap, Params, RunContext, TrainedModel};
use trainbench_engine_tensor::model::Net;
use trainbench_engine_tensor::params::parse;
use trainbench_engine_tensor::{Precision, TensorEngine, TrainOptions};

/// Two classes from a nonlinear rule of `d` features (no noise): a learnable problem.
fn learnable(rows: usize, d: usize, seed: u64) -> Prepared {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(rows * d);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let x: Vec<f32> = (0..d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        let score = x[0] * x[1] + 0.6 * x[2] - 0.4 * x[d - 1] * x[d - 1] + 0.2;
        labels.push(u32::from(score > 0.0));
        features.extend(x);
    }
    Prepared {
        features: features.into(),
        n_features: d,
        labels: labels.into(),
        feature_names: (0..d).map(|i| format!("f{i}")).collect(),
        class_names: vec!["no".into(), "yes".into()],
        categorical_features: Vec::new(),
    }
}

/// 8×8 images: a bright horizontal bar (class 0) or vertical bar (class 1) on noise.
fn bars(rows: usize, seed: u64) -> Prepared {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(rows * 64);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let class = rng.random_range(0..2u32);
        let at = rng.random_range(1..7usize);
        for r in 0..8 {
            for c in 0..8 {
                let on = if class == 0 { r == at } else { c == at };
                features.push(if on { 1.0 } else { 0.0 } + 0.3 * (rng.random::<f32>() - 0.5));
            }
        }
        labels.push(class);
    }
    Prepared {
        features: features.into(),
        n_features: 64,
        labels: labels.into(),
        feature_names: (0..64).map(|i| format!("px{i}")).collect(),
        class_names: vec!["horizontal".into(), "vertical".into()],
        categorical_features: Vec::new(),
    }
}

fn accuracy(model: &dyn TrainedModel, data: &Prepared) -> f64 {
    let p = model.predict_proba(&data.features).unwrap();
    let k = model.classes();
    let hits = data
        .labels
        .iter()
        .enumerate()
        .filter(|(i, y)| {
            let row = &p[i * k..(i + 1) * k];
            (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() == **y as usize
        })
        .count();
    hits as f64 / data.labels.len() as f64
}

/// `kind` with parameters written as text, as `--param` gives them.
fn spec(kind: ModelKind, params: &[(&str, &str)]) -> ModelSpec {
    let text = ParamMap(params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    ModelSpec { kind, params: text.to_params() }
}

fn empty_like(d: &Prepared) -> Prepared {
    Prepared { features: Vec::new().into(), labels: Vec::new().into(), ..d.clone() }
}

#[test]
fn every_model_learns_a_learnable_problem() {
    let (train, test) = (learnable(3000, 8, 1), learnable(1000, 8, 2));
    type Case<'a> = (ModelKind, &'a [(&'a str, &'a str)], f64);
    let cases: &[Case] = &[
        (ModelKind::Mlp, &[("epochs", "20"), ("batch_size", "32"), ("hidden", "32,32")], 0.95),
        (ModelKind::Cnn, &[("epochs", "20"), ("batch_size", "32"), ("filters", "16"), ("dense", "32")], 0.90),
        (ModelKind::Lstm, &[("epochs", "15"), ("batch_size", "32"), ("units", "24"), ("learning_rate", "0.005")], 0.90),
        (ModelKind::Gru, &[("epochs", "15"), ("batch_size", "32"), ("units", "24"), ("learning_rate", "0.005")], 0.90),
    ];
    let engine = TensorEngine::default();
    for (kind, params, bar) in cases {
        let (model, log) =
            engine.fit(&spec(*kind, params), &train, &empty_like(&train), &RunContext::default()).unwrap();
        let acc = accuracy(model.as_ref(), &test);
        assert!(acc >= *bar, "{} reached only {acc:.3} (bar {bar})", kind.name());
        assert!(log.entries.last().unwrap().loss < log.entries[0].loss, "{}: loss did not fall", kind.name());
    }
    let (train, test) = (bars(600, 3), bars(300, 4));
    let (model, _) = engine
        .fit(
            &spec(ModelKind::Cnn2d, &[("epochs", "5"), ("filters", "8"), ("dense", "16"), ("image_shape", "8x8")]),
            &train,
            &empty_like(&train),
            &RunContext::default(),
        )
        .unwrap();
    let acc = accuracy(model.as_ref(), &test);
    assert!(acc >= 0.98, "cnn2d reached only {acc:.3}");
}

/// Sequences of 10 steps × 2 channels; class 1 when channel a's last value is below channel b's
/// first, so the label depends on a value at each end of the sequence and on which column of a
/// step it sits in: read as 20 single-value steps, the two would be just positions.
fn two_channel_sequences(rows: usize, seed: u64) -> Prepared {
    let (steps, channels) = (10, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(rows * steps * channels);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let x: Vec<f32> = (0..steps * channels).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        let (a_last, b_first) = (x[(steps - 1) * channels], x[1]);
        labels.push(u32::from(a_last < b_first));
        features.extend(x);
    }
    Prepared {
        features: features.into(),
        n_features: steps * channels,
        labels: labels.into(),
        feature_names: (0..steps).flat_map(|t| [format!("a_t{t}"), format!("b_t{t}")]).collect(),
        class_names: vec!["no".into(), "yes".into()],
        categorical_features: Vec::new(),
    }
}

#[test]
fn recurrent_models_read_steps_of_several_values() {
    let (train, test) = (two_channel_sequences(3000, 5), two_channel_sequences(1000, 6));
    let engine = TensorEngine::default();
    for kind in [ModelKind::Lstm, ModelKind::Gru] {
        let params = [("epochs", "15"), ("batch_size", "32"), ("units", "16"), ("learning_rate", "0.005")];
        let mut with_steps = params.to_vec();
        with_steps.push(("step_features", "2"));
        let (model, _) =
            engine.fit(&spec(kind, &with_steps), &train, &empty_like(&train), &RunContext::default()).unwrap();
        let acc = accuracy(model.as_ref(), &test);
        assert!(acc >= 0.93, "{} over 10 steps of 2 reached only {acc:.3}", kind.name());
    }
    // The steps are part of the architecture: 2 values per step is a wider input transform.
    let (one, _) = parse(ModelKind::Lstm, &Params::new().with("units", 4), 20, 2).unwrap();
    let (two, _) = parse(ModelKind::Lstm, &Params::new().with("units", 4).with("step_features", 2), 20, 2).unwrap();
    assert_eq!(two.weight_count().unwrap() - one.weight_count().unwrap(), 4 * 4);
    let err = parse(ModelKind::Gru, &Params::new().with("step_features", 3), 20, 2).unwrap_err();
    assert!(err.to_string().contains("a divisor of the 20 features"), "{err}");
}

/// Collects every float parameter's id, values and the gradient `grads` holds for it.
struct Collect<'a> {
    grads: &'a GradientsParams,
    found: Vec<(ParamId, Vec<f64>, Vec<f64>)>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().convert::<f64>().try_into_vec::<f64>().unwrap();
        let grad = self.grads.get::<D>(param.id).expect("every weight has a gradient");
        let grad = grad.into_data().convert::<f64>().try_into_vec::<f64>().unwrap();
        self.found.push((param.id, values, grad));
    }
}

/// Casts to f64 and, for one parameter, adds `delta` to one element.
struct Perturb {
    target: Option<(ParamId, usize, f64)>,
}

impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let target = self.target;
        let id = param.id;
        param.map(|t| {
            let device = t.device();
            let shape = t.shape();
            let mut values = t.into_data().convert::<f64>().try_into_vec::<f64>().unwrap();
            if let Some((tid, i, delta)) = target
                && tid == id
            {
                values[i] += delta;
            }
            Tensor::from_data(TensorData::new(values, shape), (&device, DType::F64)).require_grad()
        })
    }
}

/// d loss / d weight from autodiff and from central differences, in f64, for a sample of the
/// weights of every layer of `kind`'s network on a tiny input.
fn check_gradients(kind: ModelKind, params: &[(&str, &str)], d: usize) {
    let device = Device::flex().autodiff();
    device.seed(7);
    let (arch, _) = parse(kind, &spec(kind, params).params, d, 3).unwrap();
    let net = Net::new(&arch, &device).unwrap().map(&mut Perturb { target: None });
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let rows = 3;
    let x: Vec<f64> = (0..rows * d).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    let w: Vec<f64> = (0..rows * 3).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    let loss_of = |net: &Net| {
        let input = Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, d]), (&device, DType::F64));
        let weights = Tensor::<2>::from_data(TensorData::new(w.clone(), [rows, 3]), (&device, DType::F64));
        (net.forward(input, None) * weights).sum()
    };
    let grads = GradientsParams::from_grads(loss_of(&net).backward(), &net);
    let mut collected = Collect { grads: &grads, found: Vec::new() };
    net.visit(&mut collected);
    assert!(collected.found.len() >= 4, "{}: too few parameters found", kind.name());
    let eps = 1e-6;
    for (id, values, grad) in &collected.found {
        assert_eq!(grad.len(), values.len());
        for i in (0..values.len()).step_by((values.len() / 4).max(1)) {
            let at = |delta: f64| {
                let n = net.clone().map(&mut Perturb { target: Some((*id, i, delta)) });
                loss_of(&n).into_scalar::<f64>()
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            let tol = 1e-6 + 1e-5 * numeric.abs().max(grad[i].abs());
            assert!(
                (numeric - grad[i]).abs() <= tol,
                "{}: weight {i} of parameter {id}: autodiff {} vs finite difference {numeric}",
                kind.name(),
                grad[i]
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_in_f64() {
    check_gradients(ModelKind::Mlp, &[("hidden", "4,3"), ("activation", "tanh")], 5);
    check_gradients(ModelKind::Cnn, &[("filters", "2,3"), ("dense", "4"), ("activation", "tanh")], 9);
    // ReLU and linear CNNs run the fused convolution block on flex (tanh takes Burn's layers).
    check_gradients(ModelKind::Cnn, &[("filters", "2,3"), ("dense", "4"), ("activation", "relu")], 9);
    check_gradients(ModelKind::Cnn, &[("filters", "2,3"), ("dense", "4"), ("activation", "linear")], 9);
    check_gradients(ModelKind::Lstm, &[("units", "3")], 4);
    check_gradients(ModelKind::Gru, &[("units", "3")], 4);
    // Real sequences: 3 steps of 2 values.
    check_gradients(ModelKind::Lstm, &[("units", "3"), ("step_features", "2")], 6);
    check_gradients(ModelKind::Gru, &[("units", "3"), ("step_features", "2")], 6);
    check_gradients(
        ModelKind::Cnn2d,
        &[("filters", "2"), ("dense", "3"), ("activation", "tanh"), ("image_shape", "5x5")],
        25,
    );
}

#[test]
fn replicas_give_the_single_replica_result() {
    let train = learnable(512, 6, 5);
    let engine = TensorEngine::default();
    for s in [
        spec(ModelKind::Mlp, &[("epochs", "2"), ("batch_size", "64"), ("hidden", "16")]),
        spec(ModelKind::Lstm, &[("epochs", "1"), ("batch_size", "64"), ("units", "8")]),
        spec(ModelKind::Gru, &[("epochs", "1"), ("batch_size", "64"), ("units", "8")]),
    ] {
        let fit = |workers| {
            let ctx = RunContext::new(workers, 9);
            engine.fit(&s, &train, &empty_like(&train), &ctx).unwrap().0.predict_proba(&train.features).unwrap()
        };
        let (one, two, four) = (fit(1), fit(2), fit(4));
        for (a, (b, c)) in one.iter().zip(two.iter().zip(&four)) {
            assert!((a - b).abs() < 1e-4 && (a - c).abs() < 1e-4, "{}: {a} vs {b} vs {c}", s.kind.name());
        }
    }
}

#[test]
fn resume_reaches_the_uninterrupted_weights_and_save_load_predicts_the_same() {
    let train = learnable(600, 6, 6);
    let valid = learnable(200, 6, 7);
    let dir = tempfile::tempdir().unwrap();
    let ctx = RunContext::new(1, 3);
    let params = |epochs: &str| spec(ModelKind::Mlp, &[("epochs", epochs), ("hidden", "16"), ("dropout", "0.2")]);
    let with_dir = |resume| {
        TensorEngine::new(TrainOptions { checkpoint_dir: Some(dir.path().to_owned()), resume, ..Default::default() })
    };
    let (full, full_log) = TensorEngine::default().fit(&params("3"), &train, &valid, &ctx).unwrap();
    let (_, first_log) = with_dir(false).fit(&params("1"), &train, &valid, &ctx).unwrap();
    let (resumed, log) = with_dir(true).fit(&params("3"), &train, &valid, &ctx).unwrap();
    assert_eq!(log.entries.len(), 3);
    assert_eq!(full_log.entries.len(), 3);
    assert_eq!(first_log.resumed_epochs, None);
    // The finished epoch was taken from the checkpoint, not trained again: the resumed run says
    // so, and its first log entry is the first run's, timings to the bit (a retrained epoch
    // never takes the same nanoseconds).
    assert_eq!(log.resumed_epochs, Some(1));
    assert_eq!(log.entries[0], first_log.entries[0]);
    assert_ne!(log.entries[1].extra["epoch_seconds"], first_log.entries[0].extra["epoch_seconds"]);
    let (a, b) = (full.predict_proba(&valid.features).unwrap(), resumed.predict_proba(&valid.features).unwrap());
    assert_eq!(a, b, "resumed run differs from the uninterrupted one");

    let engine = TensorEngine::default();
    let loaded = engine.load_model(ModelKind::Mlp, &resumed.to_json().unwrap()).unwrap();
    assert_eq!(loaded.predict_proba(&valid.features).unwrap(), b);
    assert!(engine.load_model(ModelKind::Lstm, &resumed.to_json().unwrap()).is_err());
}

#[test]
fn tensorboard_files_are_read_by_tensorboard() {
    let train = learnable(400, 6, 8);
    let valid = learnable(100, 6, 9);
    let dir = tempfile::tempdir().unwrap();
    let engine = TensorEngine::new(TrainOptions { tensorboard: Some(dir.path().to_owned()), ..Default::default() });
    let s = spec(ModelKind::Mlp, &[("epochs", "3"), ("hidden", "8"), ("log_every_steps", "5")]);
    let (_, log) = engine.fit(&s, &train, &valid, &RunContext::default()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/read_tensorboard.py");
    let out = Command::new("python3").arg(script).arg(dir.path()).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "TensorBoard's reader failed (is the `tensorboard` package installed? .ci/run installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let losses = read["train"]["epoch_loss"].as_array().unwrap();
    assert_eq!(losses.len(), 3);
    for (entry, pair) in log.entries.iter().zip(losses) {
        assert_eq!(pair[0].as_u64().unwrap() as usize, entry.step);
        assert!((pair[1].as_f64().unwrap() - entry.loss).abs() < 1e-5 * entry.loss.abs().max(1.0));
    }
    let val = read["validation"]["epoch_loss"].as_array().unwrap();
    assert!((val[2][1].as_f64().unwrap() - log.entries[2].valid_loss.unwrap()).abs() < 1e-5);
    for tag in ["epoch_accuracy", "epoch_learning_rate", "epoch_rows_per_second", "batch_loss"] {
        assert!(read["train"][tag].as_array().is_some_and(|a| !a.is_empty()), "no {tag} in {read}");
    }
    let lr = read["train"]["epoch_learning_rate"][0][1].as_f64().unwrap();
    assert!((lr - 0.001).abs() < 1e-9);
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let train = learnable(300, 6, 10);
    let valid = learnable(100, 6, 11);
    // A large learning rate makes the validation loss bounce, so patience 1 stops early.
    let s = spec(ModelKind::Mlp, &[("epochs", "40"), ("hidden", "32"), ("patience", "2"), ("learning_rate", "0.05")]);
    let (model, log) = TensorEngine::default().fit(&s, &train, &valid, &RunContext::default()).unwrap();
    assert!(log.stop_reason.starts_with("early stopping"), "{}", log.stop_reason);
    let best = log.entries.iter().map(|e| e.valid_loss.unwrap()).fold(f64::INFINITY, f64::min);
    let p = model.predict_proba(&valid.features).unwrap();
    let loss: f64 = valid.labels.iter().enumerate().map(|(i, &y)| -(p[i * 2 + y as usize] as f64).ln()).sum::<f64>()
        / valid.labels.len() as f64;
    assert!((loss - best).abs() < 1e-4, "restored model's loss {loss} is not the best {best}");
}

#[test]
fn schedules_and_optimizers_train() {
    let train = learnable(400, 6, 12);
    for params in [
        &[("optimizer", "sgd"), ("momentum", "0.9"), ("lr_schedule", "step"), ("lr_step_epochs", "2")][..],
        &[("optimizer", "adamw"), ("lr_schedule", "cosine")][..],
        &[("balanced_class_weights", "true")][..],
    ] {
        let mut all = vec![("epochs", "4"), ("hidden", "8")];
        all.extend_from_slice(params);
        let (_, log) = TensorEngine::default()
            .fit(&spec(ModelKind::Mlp, &all), &train, &empty_like(&train), &RunContext::default())
            .unwrap();
        assert!(log.entries[3].loss < log.entries[0].loss, "{params:?}: loss did not fall");
        let lrs: Vec<f64> = log.entries.iter().map(|e| e.extra["learning_rate"]).collect();
        match params[0].1 {
            "sgd" => assert_eq!(lrs, vec![0.01, 0.01, 0.001, 0.001]),
            "adamw" => assert!((lrs[1] - 0.0005 * (1.0 + (std::f64::consts::PI / 4.0).cos())).abs() < 1e-12),
            _ => assert!(lrs.iter().all(|&l| l == 0.001)),
        }
    }
}

#[test]
fn mixed_precision_trains_on_flex() {
    let train = learnable(800, 6, 13);
    let s = spec(ModelKind::Mlp, &[("epochs", "8"), ("hidden", "16")]);
    let fit = |precision| {
        TensorEngine::new(TrainOptions { precision, ..Default::default() }).fit(
            &s,
            &train,
            &empty_like(&train),
            &RunContext::default(),
        )
    };
    let f32_model = fit(Precision::F32).unwrap().0;
    let f32_accuracy = accuracy(f32_model.as_ref(), &train);
    let f32_proba = f32_model.predict_proba(&train.features).unwrap();
    // flex, the CPU backend, computes in both: a refusal here is a failure.
    for precision in [Precision::Bf16, Precision::F16] {
        let (model, _) = fit(precision).unwrap_or_else(|e| panic!("{precision:?} on flex: {e}"));
        let acc = accuracy(model.as_ref(), &train);
        // Lower precision really ran: the weights it learned differ from float32's.
        let proba = model.predict_proba(&train.features).unwrap();
        let diff = proba.iter().zip(&f32_proba).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff > 1e-4, "{precision:?} gave the float32 result (max difference {diff})");
        eprintln!("{precision:?}: accuracy {acc:.4}, f32 {f32_accuracy:.4}");
        assert!(acc > f32_accuracy - 0.03, "{precision:?}: accuracy {acc}, f32 {f32_accuracy}");
    }
}

fn fit_err(engine: &TensorEngine, s: &ModelSpec, train: &Prepared, valid: &Prepared, ctx: &RunContext) -> String {
    match engine.fit(s, train, valid, ctx) {
        Ok(_) => panic!("{:?} trained, but should have been refused", s.params),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let engine = TensorEngine::default();
    let ctx = RunContext::default();
    let mut train = learnable(200, 4, 14);
    train.features.to_mut()[4 * 77 + 2] = f32::NAN;
    let err = fit_err(&engine, &spec(ModelKind::Mlp, &[("epochs", "1")]), &train, &empty_like(&train), &ctx);
    let msg = err.to_string();
    assert!(msg.contains("epoch 1, step") && msg.contains("feature 'f2'") && msg.contains("NaN"), "{msg}");

    let train = learnable(200, 4, 15);
    let err = fit_err(
        &engine,
        &spec(ModelKind::Mlp, &[("epochs", "3"), ("optimizer", "sgd"), ("learning_rate", "1e30")]),
        &train,
        &empty_like(&train),
        &ctx,
    );
    assert!(err.to_string().contains("training diverged at epoch 1, step"), "{err}");

    let err = fit_err(&engine, &spec(ModelKind::Mlp, &[("hidden", "10000000")]), &train, &empty_like(&train), &ctx);
    assert!(err.to_string().contains("at most 50000000 weights"), "{err}");
    let err = fit_err(
        &engine,
        &spec(ModelKind::Lstm, &[("units", "512"), ("batch_size", "2000000000")]),
        &train,
        &empty_like(&train),
        &ctx,
    );
    assert!(err.to_string().contains("the model needs about") && err.to_string().contains("GiB"), "{err}");

    let err = fit_err(&engine, &spec(ModelKind::Cnn, &[("filters", "8,8,8,8")]), &train, &empty_like(&train), &ctx);
    assert!(err.to_string().contains("4 features are too few"), "{err}");
    let five = learnable(50, 5, 17);
    let err = fit_err(&engine, &spec(ModelKind::Cnn2d, &[]), &five, &empty_like(&five), &ctx);
    assert!(err.contains("image_shape") && err.contains("5 features are not a square image"), "{err}");
    let err = fit_err(&engine, &spec(ModelKind::Mlp, &[("max_depth", "3")]), &train, &empty_like(&train), &ctx);
    assert!(err.to_string().contains("no such parameter for model 'mlp'"), "{err}");
    let err = fit_err(&engine, &spec(ModelKind::Lr, &[]), &train, &empty_like(&train), &ctx);
    assert!(err.to_string().contains("for the tensor engine"), "{err}");
    let mut one = learnable(50, 4, 16);
    one.class_names.truncate(1);
    one.labels.to_mut().iter_mut().for_each(|y| *y = 0);
    assert!(
        fit_err(&engine, &spec(ModelKind::Mlp, &[]), &one, &empty_like(&one), &ctx).to_string().contains("at least 2")
    );
}
