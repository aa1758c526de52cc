//! The spark engine against independent references: scikit-learn's numbers on the same files
//! (see `reference/make_reference.py`), Spark MLlib's own (iterations, objective history and
//! model of its LogisticRegression, `reference/make_spark_reference.py`), and a plain float64
//! decision tree written here.

mod common;

use std::path::Path;

use common::sklearn_values::*;
use common::spark_values as mllib;
use trainbench_data::{LoadOptions, Prepared, PreprocessOptions, Preprocessor, Scaling, load};
use trainbench_engine::{Engine, Error, ModelKind, ModelSpec, Params, RunContext, TrainedModel};
use trainbench_engine_spark::{LogisticModel, SparkEngine};

/// A CSV from tests/data as features on their own scale (no preprocessing beyond reading).
fn prepared(name: &str) -> Prepared {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let table = load(&path, &LoadOptions::default()).unwrap().table;
    let rows: Vec<usize> = (0..table.rows()).collect();
    let options = PreprocessOptions { scaling: Scaling::None, ..PreprocessOptions::default() };
    let fitted = Preprocessor::new(options).fit(&table, &rows, &table.class_names()).unwrap();
    fitted.transform(&table, None).unwrap().0
}

fn fit(kind: ModelKind, params: Params, data: &Prepared, workers: usize, partitions: usize) -> Box<dyn TrainedModel> {
    let spec = ModelSpec { kind, params };
    let ctx = RunContext { partitions, ..RunContext::new(workers, 3) };
    SparkEngine.fit(&spec, data, &data.take(&[]), &ctx).unwrap().0
}

fn lr_state(model: &dyn TrainedModel) -> LogisticModel {
    serde_json::from_value(model.to_json().unwrap()).unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * w.abs().max(0.1), "{what}[{i}]: got {g}, scikit-learn {w}");
    }
}

#[test]
fn binary_lr_coefficients_match_scikit_learn() {
    let data = prepared("lr_binary.csv");
    let tight = Params::new().with("tol", 1e-12).with("max_iter", 1000);
    let m = lr_state(fit(ModelKind::Lr, tight, &data, 2, 4).as_ref());
    assert_close("coefficients", &m.coefficients[0], LR_BINARY_COEF, 1e-3);
    assert_close("intercept", &m.intercepts, &[LR_BINARY_INTERCEPT], 1e-3);
    // MLlib's defaults (100 iterations, tol 1e-6) land close too.
    let m = lr_state(fit(ModelKind::Lr, Params::new(), &data, 2, 4).as_ref());
    assert_close("default coefficients", &m.coefficients[0], LR_BINARY_COEF, 1e-2);
}

#[test]
fn multinomial_lr_coefficients_match_scikit_learn() {
    let data = prepared("lr_multi.csv");
    let tight = Params::new().with("tol", 1e-12).with("max_iter", 1000);
    let m = lr_state(fit(ModelKind::Lr, tight, &data, 2, 4).as_ref());
    let flat: Vec<f64> = m.coefficients.concat();
    assert_close("coefficients", &flat, LR_MULTI_COEF, 1e-3);
    assert_close("intercepts", &m.intercepts, LR_MULTI_INTERCEPT, 1e-3);
}

/// MLlib's LogisticRegression on the same rows, with its defaults (maxIter 100, tol 1e-6) and
/// with L2 and L1 penalties: the embedded engine makes the same number of iterations (Breeze's
/// L-BFGS, line search and stopping rule), passes through the same objective values, and ends
/// on the same model. The values agree to about 1e-9 (the features reach the engine as f32, Spark
/// reads them as f64; and it sums in another order), so 1e-8 is the tolerance.
#[test]
fn logistic_regression_stops_where_mllib_stops() {
    type Case<'a> = (&'a str, Params, usize, &'a [f64], &'a [f64], &'a [f64]);
    let cases: [Case; 4] = [
        (
            "lr_binary.csv",
            Params::new(),
            mllib::LR_BINARY_ITERATIONS,
            mllib::LR_BINARY_HISTORY,
            mllib::LR_BINARY_COEF,
            mllib::LR_BINARY_INTERCEPT,
        ),
        (
            "lr_binary.csv",
            Params::new().with("reg_param", 0.1),
            mllib::LR_BINARY_L2_ITERATIONS,
            mllib::LR_BINARY_L2_HISTORY,
            mllib::LR_BINARY_L2_COEF,
            mllib::LR_BINARY_L2_INTERCEPT,
        ),
        (
            "lr_binary.csv",
            Params::new().with("reg_param", 0.05).with("elastic_net_param", 1.0),
            mllib::LR_BINARY_L1_ITERATIONS,
            mllib::LR_BINARY_L1_HISTORY,
            mllib::LR_BINARY_L1_COEF,
            mllib::LR_BINARY_L1_INTERCEPT,
        ),
        (
            "lr_multi.csv",
            Params::new(),
            mllib::LR_MULTI_ITERATIONS,
            mllib::LR_MULTI_HISTORY,
            mllib::LR_MULTI_COEF,
            mllib::LR_MULTI_INTERCEPT,
        ),
    ];
    for (file, params, iterations, history, coef, intercept) in cases {
        let what = format!("{file} {:?}", params.0);
        let data = prepared(file);
        let spec = ModelSpec { kind: ModelKind::Lr, params };
        let (model, log) = SparkEngine.fit(&spec, &data, &data.take(&[]), &RunContext::new(1, 3)).unwrap();
        let losses: Vec<f64> = log.entries.iter().map(|e| e.loss).collect();
        assert_eq!(log.entries.len(), iterations, "{what}: iterations; losses {losses:?} vs MLlib's {history:?}");
        // MLlib's history starts with the objective at the starting point.
        for (k, (ours, spark)) in losses.iter().zip(&history[1..]).enumerate() {
            assert!((ours - spark).abs() <= 1e-8 * spark.abs(), "{what}: iteration {}: {ours} vs {spark}", k + 1);
        }
        let m = lr_state(model.as_ref());
        assert_close(&format!("{what}: coefficients"), &m.coefficients.concat(), coef, 1e-5);
        assert_close(&format!("{what}: intercepts"), &m.intercepts, intercept, 1e-5);
        let zeros = |c: &[f64]| c.iter().map(|v| *v == 0.0).collect::<Vec<_>>();
        assert_eq!(zeros(&m.coefficients.concat()), zeros(coef), "{what}: the same coefficients are exactly 0");
    }
}

#[test]
fn regularization_shrinks_and_l1_zeroes_coefficients() {
    let data = prepared("lr_binary.csv");
    let plain = lr_state(fit(ModelKind::Lr, Params::new(), &data, 1, 2).as_ref());
    let ridge = lr_state(fit(ModelKind::Lr, Params::new().with("reg_param", 0.1), &data, 1, 2).as_ref());
    let norm = |m: &LogisticModel| m.coefficients[0].iter().map(|c| c * c).sum::<f64>();
    assert!(norm(&ridge) < 0.8 * norm(&plain), "{} vs {}", norm(&ridge), norm(&plain));
    let lasso = lr_state(
        fit(ModelKind::Lr, Params::new().with("reg_param", 0.3).with("elastic_net_param", 1.0), &data, 1, 2).as_ref(),
    );
    let zeros = lasso.coefficients[0].iter().filter(|c| **c == 0.0).count();
    assert!(zeros >= 1, "strong L1 should zero some coefficient: {:?}", lasso.coefficients);
}

/// A straightforward CART in float64: every midpoint between distinct values of every feature,
/// gini gain, the first best split in (feature, threshold) order, children with at least
/// `min_rows` rows.
struct RefTree {
    split: Option<(usize, f64, Box<RefTree>, Box<RefTree>)>,
    counts: Vec<f64>,
}

fn gini(counts: &[f64]) -> f64 {
    let n: f64 = counts.iter().sum();
    1.0 - counts.iter().map(|c| (c / n).powi(2)).sum::<f64>()
}

#[allow(clippy::needless_range_loop)] // features are columns of row vectors: indexing reads clearest
fn ref_tree(x: &[Vec<f64>], y: &[usize], rows: &[usize], k: usize, depth: usize, min_rows: usize) -> RefTree {
    let mut counts = vec![0.0; k];
    rows.iter().for_each(|&r| counts[y[r]] += 1.0);
    let mut node = RefTree { split: None, counts: counts.clone() };
    if depth == 0 || gini(&counts) == 0.0 {
        return node;
    }
    let n = rows.len() as f64;
    let mut best: Option<(f64, usize, f64)> = None;
    for f in 0..x[0].len() {
        let mut values: Vec<f64> = rows.iter().map(|&r| x[r][f]).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        for w in values.windows(2) {
            let t = (w[0] + w[1]) / 2.0;
            let (mut l, mut rr) = (vec![0.0; k], vec![0.0; k]);
            for &r in rows {
                if x[r][f] <= t { l[y[r]] += 1.0 } else { rr[y[r]] += 1.0 }
            }
            let (nl, nr) = (l.iter().sum::<f64>(), rr.iter().sum::<f64>());
            if nl < min_rows as f64 || nr < min_rows as f64 {
                continue;
            }
            let gain = gini(&counts) - nl / n * gini(&l) - nr / n * gini(&rr);
            if best.is_none_or(|b| gain > b.0) {
                best = Some((gain, f, t));
            }
        }
    }
    if let Some((_, f, t)) = best {
        let (l, r): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&r| x[r][f] <= t);
        node.split = Some((
            f,
            t,
            Box::new(ref_tree(x, y, &l, k, depth - 1, min_rows)),
            Box::new(ref_tree(x, y, &r, k, depth - 1, min_rows)),
        ));
    }
    node
}

fn ref_proba(t: &RefTree, x: &[f64]) -> Vec<f64> {
    match &t.split {
        Some((f, th, l, r)) => ref_proba(if x[*f] <= *th { l } else { r }, x),
        None => {
            let n: f64 = t.counts.iter().sum();
            t.counts.iter().map(|c| c / n).collect()
        }
    }
}

#[test]
fn tree_matches_a_float64_reference() {
    // 3 features of at most 16 distinct values (so every midpoint is a candidate, as MLlib
    // does when there are fewer distinct values than bins), 3 classes, a noisy rule.
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let n = 400;
    let x: Vec<Vec<f64>> = (0..n).map(|_| (0..3).map(|_| (next() * 16.0).floor() - 4.0).collect()).collect();
    let y: Vec<usize> = x
        .iter()
        .map(|r| {
            let base = if r[0] > 5.0 {
                2
            } else if r[1] + r[2] > 6.0 {
                1
            } else {
                0
            };
            if next() < 0.15 { (base + 1) % 3 } else { base }
        })
        .collect();
    let data = Prepared {
        features: x.iter().flatten().map(|&v| v as f32).collect(),
        n_features: 3,
        labels: y.iter().map(|&l| l as u32).collect(),
        feature_names: vec!["a".into(), "b".into(), "c".into()],
        class_names: vec!["p".into(), "q".into(), "r".into()],
        categorical_features: vec![],
    };
    let rows: Vec<usize> = (0..n).collect();
    for (depth, min_rows) in [(4, 1), (6, 10)] {
        let params = Params::new().with("max_depth", depth).with("min_instances_per_node", min_rows);
        let model = fit(ModelKind::Tree, params, &data, 2, 3);
        let reference = ref_tree(&x, &y, &rows, 3, depth, min_rows);
        // Every training row and points between and beyond the grid.
        let mut probes: Vec<Vec<f64>> = x.clone();
        probes.extend((0..200).map(|i| vec![(i % 20) as f64 - 4.5, (i / 20) as f64 - 4.5, 13.5 - (i % 7) as f64]));
        for p in &probes {
            let want = ref_proba(&reference, p);
            let got = model.predict_proba(&p.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap();
            for c in 0..3 {
                assert!((f64::from(got[c]) - want[c]).abs() < 1e-6, "depth {depth}, x {p:?}: {got:?} vs {want:?}");
            }
        }
    }
}

#[test]
fn mlp_reaches_scikit_learns_accuracy() {
    let data = prepared("moons.csv");
    let train = data.take(&(0..MOONS_TRAIN_ROWS).collect::<Vec<_>>());
    let test = data.take(&(MOONS_TRAIN_ROWS..data.rows()).collect::<Vec<_>>());
    let model = fit(ModelKind::Mlp, Params::new().with("hidden", "16,16"), &train, 2, 4);
    let proba = model.predict_proba(&test.features).unwrap();
    let report = trainbench_metrics::ClassificationReport::from_proba(&test.labels, &proba, 2).unwrap();
    assert!(
        report.accuracy >= MOONS_MLP_ACCURACY - 0.01,
        "accuracy {} vs scikit-learn {}",
        report.accuracy,
        MOONS_MLP_ACCURACY
    );
}

#[test]
fn one_and_many_workers_give_identical_models() {
    let data = prepared("lr_multi.csv");
    for (kind, params) in [
        (ModelKind::Lr, Params::new()),
        (ModelKind::Tree, Params::new().with("max_depth", 6)),
        (ModelKind::Mlp, Params::new().with("hidden", "8").with("max_iter", 20)),
    ] {
        let one = fit(kind, params.clone(), &data, 1, 5);
        let many = fit(kind, params, &data, 3, 5);
        let (a, b) = (one.predict_proba(&data.features).unwrap(), many.predict_proba(&data.features).unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{kind:?} differs between 1 and 3 workers");
        assert_eq!(one.to_json().unwrap(), many.to_json().unwrap());
    }
}

#[test]
fn saved_models_predict_the_same_probabilities() {
    let data = prepared("lr_multi.csv");
    for kind in [ModelKind::Lr, ModelKind::Tree, ModelKind::Mlp] {
        let params = if kind == ModelKind::Tree { Params::new() } else { Params::new().with("max_iter", 10) };
        let model = fit(kind, params, &data, 2, 2);
        let text = serde_json::to_string(&model.to_json().unwrap()).unwrap();
        let loaded = SparkEngine.load_model(kind, &serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(
            model.predict_proba(&data.features).unwrap(),
            loaded.predict_proba(&data.features).unwrap(),
            "{kind:?}"
        );
    }
}

#[test]
fn bad_input_is_refused_clearly() {
    let mut data = prepared("lr_binary.csv");
    let spec = |kind, params| ModelSpec { kind, params };
    let ctx = RunContext { partitions: 2, ..RunContext::new(1, 1) };
    let err = |spec: ModelSpec, data: &Prepared| {
        SparkEngine.fit(&spec, data, &data.take(&[]), &ctx).err().expect("must fail").to_string()
    };

    let one_class = data.take(&(0..data.rows()).filter(|&r| data.labels[r] == 0).collect::<Vec<_>>());
    assert!(err(spec(ModelKind::Lr, Params::new()), &one_class).contains("at least 2 classes"));
    assert!(err(spec(ModelKind::Mlp, Params::new()), &one_class).contains("at least 2 classes"));

    let huge = err(spec(ModelKind::Mlp, Params::new().with("hidden", "10000000")), &data);
    assert!(huge.contains("at most 10000000 weights"), "{huge}");

    let diverged = SparkEngine.fit(
        &spec(
            ModelKind::Mlp,
            Params::new().with("solver", "gd").with("step_size", 1e300).with("hidden", "4").with("precision", "f32"),
        ),
        &data,
        &data.take(&[]),
        &ctx,
    );
    assert!(matches!(diverged, Err(Error::Diverged { .. })), "{:?}", diverged.err());

    data.features.to_mut()[7] = f32::INFINITY;
    let nan = err(spec(ModelKind::Tree, Params::new()), &data);
    assert!(nan.contains("feature 'x2' of row 1 is inf"), "{nan}");
    assert!(err(spec(ModelKind::Cnn, Params::new()), &one_class).contains("tensor engine"));
}
