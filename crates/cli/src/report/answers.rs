//! The like-for-like comparison of the paradigms and the four answers, in words.

use crate::report::{Estimate, Group, groups, mib, power_law_exponent};
use crate::results::{FamilyComparison, Results, RunRecord, Side};

/// How far below the lower paradigm's best validation accuracy the default target sits.
pub(crate) const TARGET_MARGIN: f64 = 0.005;

/// The best validation accuracy a run's log reached.
fn best_valid_accuracy(r: &RunRecord) -> Option<f64> {
    r.log.iter().filter_map(|e| e.valid_accuracy).fold(None, |b, a| Some(b.map_or(a, |b: f64| b.max(a))))
}

/// Training seconds until the validation accuracy first reached `target` (MLPerf's rule).
fn time_to(r: &RunRecord, target: f64) -> Option<f64> {
    r.log.iter().find(|e| e.valid_accuracy.is_some_and(|a| a >= target)).map(|e| e.elapsed_seconds)
}

/// Compares the paradigms on every model family both ran (outside sweeps), and records each of
/// those runs' time to the family's target: `target` if given, else the lower of the two
/// paradigms' best validation accuracy (mean over seeds of each run's best) minus 0.5 pp.
pub fn compare_families(runs: &mut [RunRecord], target: Option<f64>) -> Vec<FamilyComparison> {
    let ok = |r: &RunRecord, engine: &str, model: &str| {
        r.sweep.is_none() && r.scores.is_some() && r.engine == engine && r.model == model
    };
    let mut models: Vec<String> = Vec::new();
    for r in runs.iter().filter(|r| r.sweep.is_none() && r.scores.is_some()) {
        if !models.contains(&r.model) {
            models.push(r.model.clone());
        }
    }
    let shared: Vec<String> =
        models.into_iter().filter(|m| ["spark", "tensor"].iter().all(|e| runs.iter().any(|r| ok(r, e, m)))).collect();
    let mut out = Vec::new();
    for model in shared {
        let best = |engine: &str| {
            let bests: Vec<f64> =
                runs.iter().filter(|r| ok(r, engine, &model)).filter_map(best_valid_accuracy).collect();
            (!bests.is_empty()).then(|| Estimate::of(&bests))
        };
        let (spark_best, tensor_best) = (best("spark"), best("tensor"));
        let (target_accuracy, target_rule) = match (target, spark_best, tensor_best) {
            (Some(t), _, _) => (Some(t), "given (--target-accuracy)".to_owned()),
            (None, Some(s), Some(t)) => (
                Some(s.mean.min(t.mean) - TARGET_MARGIN),
                format!(
                    "the lower of the paradigms' best validation accuracy (spark {:.4}, tensor {:.4}, means over seeds) \
                     minus 0.5 pp",
                    s.mean, t.mean
                ),
            ),
            _ => (None, "none: the runs scored no validation rows (--valid-fraction 0)".to_owned()),
        };
        for r in runs.iter_mut().filter(|r| r.sweep.is_none() && r.scores.is_some() && r.model == model) {
            r.time_to_target_seconds = target_accuracy.and_then(|t| time_to(r, t));
        }
        let sides = ["spark", "tensor"]
            .iter()
            .map(|&engine| {
                let mine: Vec<&RunRecord> = runs.iter().filter(|r| ok(r, engine, &model)).collect();
                let of = |f: &dyn Fn(&RunRecord) -> f64| Estimate::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
                let times: Vec<f64> = mine.iter().filter_map(|r| r.time_to_target_seconds).collect();
                let bests: Vec<f64> = mine.iter().filter_map(|r| best_valid_accuracy(r)).collect();
                Side {
                    engine: engine.to_owned(),
                    runs: mine.len(),
                    reached: times.len(),
                    time_to_target_seconds: (!times.is_empty()).then(|| Estimate::of(&times)),
                    train_seconds: of(&|r| r.fit_seconds - r.eval_seconds),
                    iterations: of(&|r| r.iterations as f64),
                    best_valid_accuracy: (!bests.is_empty()).then(|| Estimate::of(&bests)),
                    accuracy: of(&|r| r.scores.as_ref().map_or(f64::NAN, |s| s.accuracy)),
                    f1: of(&|r| r.scores.as_ref().map_or(f64::NAN, |s| s.f1_macro)),
                    cpu_seconds: of(&|r| r.cpu_seconds),
                    cores_used: of(&|r| r.mean_cpu_percent / 100.0),
                    peak_rss_bytes: of(&|r| r.peak_rss_bytes as f64),
                    process_peak_rss_bytes: of(&|r| r.process_peak_rss_bytes as f64),
                }
            })
            .collect();
        out.push(FamilyComparison { model, target_accuracy, target_rule, sides });
    }
    out
}

/// Whether two estimates differ beyond the noise of the seeds, in words.
fn noise(a: &Estimate, b: &Estimate) -> &'static str {
    if a.n < 2 || b.n < 2 {
        "with a single value on a side there is no interval: rerun with --seeds 3 or more to know whether this is noise"
    } else if a.low <= b.high && b.low <= a.high {
        "inside the noise: the 95 % intervals overlap, so these seeds do not tell the two apart"
    } else {
        "beyond the noise: the 95 % intervals do not overlap"
    }
}

/// "spark 1.23 ± 0.05 s" style: the faster (lower) side first, with the ratio.
fn faster(model: &str, what: &str, a: (&str, &Estimate), b: (&str, &Estimate)) -> String {
    let (fast, slow) = if a.1.mean <= b.1.mean { (a, b) } else { (b, a) };
    format!(
        "{what}: {} {model} {} s, {} {model} {} s; {} is {:.2}× faster, {}.",
        fast.0,
        fast.1.show(2),
        slow.0,
        slow.1.show(2),
        fast.0,
        slow.1.mean / fast.1.mean.max(1e-12),
        noise(a.1, b.1)
    )
}

/// The models of `engine` outside the like-for-like comparisons.
fn unpaired(main: &[&Group], comparisons: &[FamilyComparison], engine: &str) -> Vec<String> {
    main.iter()
        .filter(|g| g.engine == engine && !comparisons.iter().any(|c| c.model == g.model))
        .map(|g| g.model.clone())
        .collect()
}

/// The four answers, in words: speed, accuracy and resources on the model families both
/// paradigms ran (same model, same rows, same cores), scaling from the sweeps.
pub fn answers(results: &Results) -> Vec<(String, String)> {
    let all = groups(&results.runs);
    let main: Vec<&Group> = all.iter().filter(|g| g.sweep.is_none() && g.ok > 0).collect();
    let comparisons = &results.comparisons;
    let mut out = Vec::new();
    let is_sweep = main.is_empty() && all.iter().any(|g| g.sweep.is_some());
    let none = || {
        if is_sweep {
            return "This study is a sweep (`trainbench scale`): its runs differ in rows and workers, so it is not \
                    a like-for-like comparison of the paradigms; `trainbench compare` gives that. Scaling is \
                    answered below."
                .to_owned();
        }
        let list = |e: &str| {
            let m = unpaired(&main, comparisons, e);
            if m.is_empty() { "none".to_owned() } else { m.join(", ") }
        };
        format!(
            "No model family finished in both paradigms (spark: {}; tensor: {}), so there is no like-for-like answer; \
             different models are not compared here (see the table). Run the same model on both, e.g. \
             --runs spark:mlp,tensor:mlp.",
            list("spark"),
            list("tensor")
        )
    };
    let others = || {
        let (s, t) = (unpaired(&main, comparisons, "spark"), unpaired(&main, comparisons, "tensor"));
        if s.is_empty() && t.is_empty() {
            String::new()
        } else {
            format!(
                " Models only one paradigm has ({}) are in the table, not in this answer.",
                s.iter()
                    .map(|m| format!("spark {m}"))
                    .chain(t.iter().map(|m| format!("tensor {m}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let side = |c: &FamilyComparison, e: &str| c.sides.iter().find(|s| s.engine == e).cloned();

    let mut speed = Vec::new();
    for c in comparisons {
        let (Some(s), Some(t)) = (side(c, "spark"), side(c, "tensor")) else { continue };
        let mut parts = Vec::new();
        match (c.target_accuracy, &s.time_to_target_seconds, &t.time_to_target_seconds) {
            (Some(target), Some(a), Some(b)) => parts.push(format!(
                "{} Target: validation accuracy {target:.4} ({}); reached by {} of {} spark and {} of {} tensor runs.",
                faster(&c.model, "Time to target", ("spark", a), ("tensor", b)),
                c.target_rule,
                s.reached,
                s.runs,
                t.reached,
                t.runs
            )),
            (Some(target), a, b) => parts.push(format!(
                "Time to target (validation accuracy {target:.4}): {}.",
                [("spark", a, &s), ("tensor", b, &t)]
                    .iter()
                    .map(|(e, x, side)| match x {
                        Some(x) => format!("{e} {} s ({} of {} runs)", x.show(2), side.reached, side.runs),
                        None => format!("{e} never reached it"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (None, _, _) => parts.push(format!("No time to target: {}.", c.target_rule)),
        }
        parts.push(format!(
            "{} (spark {} iterations, tensor {} epochs; same training rows, same cores.)",
            faster(&c.model, "Whole fits", ("spark", &s.train_seconds), ("tensor", &t.train_seconds)),
            s.iterations.show(0),
            t.iterations.show(0)
        ));
        speed.push(format!("{}: {}", c.model.to_uppercase(), parts.join(" ")));
    }
    out.push((
        "Which trains faster?".into(),
        if speed.is_empty() { none() } else { format!("{}{}", speed.join(" "), others()) },
    ));

    let mut accuracy = Vec::new();
    for c in comparisons {
        let (Some(s), Some(t)) = (side(c, "spark"), side(c, "tensor")) else { continue };
        let (hi, lo) = if s.accuracy.mean >= t.accuracy.mean { (&s, &t) } else { (&t, &s) };
        accuracy.push(format!(
            "{}: test accuracy spark {} (F1 {}), tensor {} (F1 {}); {} is {:.2} percentage points higher, {}.",
            c.model.to_uppercase(),
            s.accuracy.show(4),
            s.f1.show(4),
            t.accuracy.show(4),
            t.f1.show(4),
            hi.engine,
            100.0 * (hi.accuracy.mean - lo.accuracy.mean),
            noise(&s.accuracy, &t.accuracy)
        ));
    }
    let best_any = ["spark", "tensor"]
        .iter()
        .filter_map(|e| {
            main.iter()
                .filter(|g| g.engine == *e)
                .max_by(|a, b| a.accuracy.mean.total_cmp(&b.accuracy.mean))
                .map(|g| format!("{e} {} {}", g.model, g.accuracy.show(4)))
        })
        .collect::<Vec<_>>();
    if !accuracy.is_empty() && best_any.len() == 2 {
        accuracy.push(format!("Best of each paradigm, any model: {}.", best_any.join("; ")));
    }
    out.push(("Which is more accurate?".into(), if accuracy.is_empty() { none() } else { accuracy.join(" ") }));

    let mut lean = Vec::new();
    for c in comparisons {
        let (Some(s), Some(t)) = (side(c, "spark"), side(c, "tensor")) else { continue };
        let less = |a: &Estimate, b: &Estimate| if a.mean <= b.mean { "spark" } else { "tensor" };
        lean.push(format!(
            "{}: peak memory during the fit spark {:.0} MiB, tensor {:.0} MiB ({} less; whole process {:.0} vs {:.0} MiB, \
             data loading included); CPU time per fit spark {} s, tensor {} s ({} less, {}), on {:.2} and {:.2} busy cores.",
            c.model.to_uppercase(),
            mib(s.peak_rss_bytes.mean),
            mib(t.peak_rss_bytes.mean),
            less(&s.peak_rss_bytes, &t.peak_rss_bytes),
            mib(s.process_peak_rss_bytes.mean),
            mib(t.process_peak_rss_bytes.mean),
            s.cpu_seconds.show(1),
            t.cpu_seconds.show(1),
            less(&s.cpu_seconds, &t.cpu_seconds),
            noise(&s.cpu_seconds, &t.cpu_seconds),
            s.cores_used.mean,
            t.cores_used.mean
        ));
    }
    out.push((
        "Which uses fewer resources?".into(),
        if lean.is_empty() {
            none()
        } else {
            format!(
                "{} Both engines run in one process on the same prepared rows, so the fit's peak (the data included) is \
                 what tells them apart.",
                lean.join(" ")
            )
        },
    ));
    out.push(("Which scales better?".into(), scaling_answer(&all)));
    out
}

fn scaling_answer(all: &[Group]) -> String {
    let sweeps: Vec<&Group> = all.iter().filter(|g| g.sweep.is_some() && g.ok > 0).collect();
    if sweeps.is_empty() {
        return "This study has no sweep; `trainbench scale` measures time against rows and speedup against workers."
            .into();
    }
    let mut parts = Vec::new();
    for (engine, model) in unique_models(&sweeps) {
        let all_mine: Vec<&&Group> = sweeps.iter().filter(|g| g.engine == engine && g.model == model).collect();
        // Time against rows and speedup against workers within one process, of the process
        // count with the most cores per process (1 unless only several were swept).
        let one = all_mine.iter().filter_map(|g| g.sweep).map(|s| s.processes).min().unwrap_or(1);
        let mine: Vec<&&Group> =
            all_mine.iter().copied().filter(|g| g.sweep.is_some_and(|s| s.processes == one)).collect();
        let max_w = mine.iter().filter_map(|g| g.sweep).map(|s| s.workers).max().unwrap_or(1);
        let by_rows: Vec<(f64, f64)> = mine
            .iter()
            .filter(|g| g.sweep.is_some_and(|s| s.workers == max_w))
            .map(|g| (g.sweep.map_or(1.0, |s| s.fraction), g.fit_seconds.mean))
            .collect();
        // With one data size there is no exponent to fit.
        let exp = power_law_exponent(&by_rows).map(|e| format!("time ∝ rows^{e:.2}"));
        let t = |w: usize| {
            mine.iter()
                .find(|g| g.sweep.is_some_and(|s| s.workers == w && s.fraction == 1.0))
                .map(|g| g.fit_seconds.mean)
        };
        let speed = match (t(1), t(max_w)) {
            (Some(a), Some(b)) if max_w > 1 => Some(format!(
                "{max_w} workers {:.2}× faster than 1 (efficiency {:.0} %)",
                a / b,
                100.0 * a / b / max_w as f64
            )),
            _ => None,
        };
        // How many cores each worker count kept busy: the check that a run had what it was given.
        let mut busy: Vec<(usize, f64)> = mine
            .iter()
            .filter_map(|g| g.sweep.filter(|s| s.fraction == 1.0).map(|s| (s.workers, g.cores_used.mean)))
            .collect();
        busy.sort_by_key(|b| b.0);
        let busy = if busy.is_empty() {
            String::new()
        } else {
            format!(
                " (cores busy: {})",
                busy.iter().map(|(w, c)| format!("{c:.2} of {w}")).collect::<Vec<_>>().join(", ")
            )
        };
        let processes = processes_clause(&all_mine);
        let clauses: Vec<String> = exp.into_iter().chain(speed).chain(processes).collect();
        parts.push(format!("{engine} {model}: {}{busy}", clauses.join(", ")));
    }
    format!(
        "{}. An exponent near 1 is linear; below 1, fixed costs dominate at these sizes. A run with W workers has W \
         cores for either engine.",
        parts.join("; ")
    )
}

/// All rows across the most processes against the fewest, with the same cores in all: the
/// fit seconds, their ratio and the time spent exchanging.
fn processes_clause(mine: &[&&Group]) -> Option<String> {
    let at_all_rows: Vec<(usize, usize, f64, Option<f64>)> = mine
        .iter()
        .filter_map(|g| {
            g.sweep
                .filter(|s| s.fraction == 1.0)
                .map(|s| (s.processes, s.workers, g.fit_seconds.mean, g.communication_seconds))
        })
        .collect();
    let few = at_all_rows.iter().min_by_key(|p| p.0)?;
    let many = at_all_rows.iter().max_by_key(|p| p.0)?;
    if few.0 == many.0 {
        return None;
    }
    let exchange = many.3.map_or(String::new(), |c| format!(", {c:.2} s of it exchanging"));
    let workers = |w: usize| if w == 1 { "1 worker".to_owned() } else { format!("{w} workers") };
    Some(format!(
        "{} processes × {} {:.2} s against {} × {} {:.2} s at all rows ({:.2}× the time{exchange})",
        many.0,
        workers(many.1),
        many.2,
        few.0,
        workers(few.1),
        few.2,
        many.2 / few.2
    ))
}

pub(crate) fn unique_models(groups: &[&Group]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for g in groups {
        let k = (g.engine.clone(), g.model.clone());
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}
