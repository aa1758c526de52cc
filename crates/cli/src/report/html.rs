//! `report.html`: one self-contained page (tables and inline SVG charts, no script, no network).

use std::fmt::Write;

use trainbench_metrics::ResourceSample;

use crate::report::svg::{Bar, Series, bar_chart, esc, line_chart, small_multiples, smooth};
use crate::report::{Estimate, Group, answers, groups, mib};
use crate::results::{Results, RunRecord};

/// The page: the answers first, then the evidence.
pub fn html(results: &Results) -> String {
    let all = groups(&results.runs);
    let mut body = String::new();
    meta_and_answers(&mut body, results);
    like_for_like(&mut body, results);
    summary(&mut body, results, &all);
    bar_charts(&mut body, &all);
    let firsts = first_runs(results);
    curves(&mut body, &firsts);
    if results.runs.iter().any(|r| r.sweep.is_some()) {
        scaling(&mut body, results, &all);
    }
    confusion_matrices(&mut body, results, &firsts);
    format!(
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>trainbench report</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )
}

/// The title line (data, machine, version) and the four answers with how they were measured.
fn meta_and_answers(body: &mut String, results: &Results) {
    let _ = write!(
        body,
        "<h1>trainbench {}: Spark MLlib's paradigm vs TensorFlow/Keras's</h1><p class=meta>{} runs on {} ({} train / {} valid / {} test rows, {} features, {} classes) · {} · {} cores · {:.1} GiB · trainbench {} ({})</p>",
        esc(&results.command),
        results.runs.len(),
        esc(&results.data.source),
        results.data.train_rows,
        results.data.valid_rows,
        results.data.test_rows,
        results.data.features,
        results.data.classes.len(),
        esc(&results.machine.cpu_model),
        results.machine.cores,
        results.machine.memory_bytes as f64 / (1u64 << 30) as f64,
        esc(&results.trainbench_version),
        esc(&results.git_commit),
    );
    body.push_str("<h2>The answers</h2><dl>");
    for (q, a) in answers(results) {
        let _ = write!(body, "<dt>{}</dt><dd>{}</dd>", esc(&q), esc(&a));
    }
    body.push_str("</dl><p class=caveat>How it is measured: both engines train on the same prepared rows with the same cores (--workers: the threads of each fit's pool); training times leave out loading (prepared once for all runs) and the scoring of validation rows; time to target is MLPerf's rule, the training time until a run's validation accuracy first reaches the target; memory is the process's peak during the fit (the prepared data included) and, beside it, the whole process's peak as a lone run would reach it. The spark engine is trainbench's embedded Spark-MLlib engine (MLlib's algorithms, Breeze's L-BFGS and stopping rule, threads over partitions, no JVM); the tensor engine runs Burn's CPU (flex) backend.</p>");
}

/// The paradigms side by side on each model family both ran.
fn like_for_like(body: &mut String, results: &Results) {
    if !results.comparisons.is_empty() {
        body.push_str("<h2>Like for like</h2><table><tr><th>model</th><th>engine</th><th>runs</th><th>time to target s</th><th>reached</th><th>training s</th><th>iterations / epochs</th><th>best valid accuracy</th><th>test accuracy</th><th>F1</th><th>CPU s</th><th>cores busy</th><th>peak MiB (fit)</th><th>peak MiB (process)</th></tr>");
        for c in &results.comparisons {
            for side in &c.sides {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.0}</td><td>{:.0}</td></tr>",
                    esc(&c.model),
                    esc(&side.engine),
                    side.runs,
                    side.time_to_target_seconds.map_or("-".into(), |e| e.show(2)),
                    side.reached,
                    side.train_seconds.show(2),
                    side.iterations.show(0),
                    side.best_valid_accuracy.map_or("-".into(), |e| e.show(4)),
                    side.accuracy.show(4),
                    side.f1.show(4),
                    side.cpu_seconds.show(1),
                    side.cores_used.mean,
                    mib(side.peak_rss_bytes.mean),
                    mib(side.process_peak_rss_bytes.mean),
                );
            }
            let _ = write!(
                body,
                "<tr><td colspan=14 class=note>{} target: {} — {}</td></tr>",
                esc(&c.model),
                c.target_accuracy.map_or("none".into(), |t| format!("{t:.4}")),
                esc(&c.target_rule)
            );
        }
        body.push_str("</table>");
    }
}

/// Every (engine, model, sweep point) group, and the failed runs with their reasons.
fn summary(body: &mut String, results: &Results, all: &[Group]) {
    body.push_str("<h2>Summary</h2><table><tr><th>engine</th><th>model</th><th>runs</th><th>fit s</th><th>iterations / epochs</th><th>s/epoch</th><th>rows/s</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>AUC</th><th>CPU s</th><th>cores busy</th><th>peak MiB (fit)</th><th>peak MiB (process)</th></tr>");
    for g in all {
        let sweep = g.sweep.map_or(String::new(), |s| match s.processes {
            1 => format!(" (×{} rows, {} workers)", s.fraction, s.workers),
            p => format!(" (×{} rows, {p} processes × {} workers)", s.fraction, s.workers),
        });
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.0}</td><td>{:.0}</td></tr>",
            esc(&g.engine),
            esc(&g.model),
            sweep,
            g.ok,
            if g.failed > 0 { format!(" ({} failed)", g.failed) } else { String::new() },
            g.fit_seconds.show(2),
            g.iterations.show(0),
            g.epoch_seconds.map_or("-".into(), |e| e.show(2)),
            g.rows_per_second.mean,
            g.accuracy.show(4),
            g.precision.show(4),
            g.recall.show(4),
            g.f1.show(4),
            g.auc.map_or("-".into(), |e| e.show(4)),
            g.cpu_seconds.mean,
            g.cores_used.mean,
            mib(g.peak_rss_bytes.mean),
            mib(g.process_peak_rss_bytes.mean),
        );
    }
    body.push_str("</table>");
    let failed: Vec<&RunRecord> = results.runs.iter().filter(|r| r.scores.is_none()).collect();
    if !failed.is_empty() {
        body.push_str("<h3>Failed runs</h3><ul>");
        for r in failed {
            let _ = write!(body, "<li>{}: {}</li>", esc(&r.id), esc(r.error.as_deref().unwrap_or("unknown")));
        }
        body.push_str("</ul>");
    }
}

/// Accuracy, F1 and fit-time bars with intervals over seeds.
fn bar_charts(body: &mut String, all: &[Group]) {
    let main: Vec<&Group> = all.iter().filter(|g| g.sweep.is_none()).collect();
    let series_of = |g: &Group| usize::from(g.engine == "tensor");
    let bars = |f: &dyn Fn(&Group) -> Estimate| -> Vec<Bar> {
        main.iter()
            .filter(|g| g.ok > 0)
            .map(|g| {
                let e = f(g);
                Bar {
                    label: g.name(),
                    value: e.mean,
                    interval: (e.n > 1).then_some((e.low, e.high)),
                    series: series_of(g),
                }
            })
            .collect()
    };
    body.push_str("<h2>Accuracy and F1</h2><p>Test rows; bars show the mean over seeds and, with several seeds, the 95 % interval. Blue: spark, orange: tensor.</p>");
    body.push_str(&bar_chart("chart-accuracy", "Test accuracy", "accuracy", &bars(&|g| g.accuracy), false));
    body.push_str(&bar_chart("chart-f1", "Test macro F1", "F1", &bars(&|g| g.f1), false));
    body.push_str("<h2>Training time</h2>");
    body.push_str(&bar_chart("chart-fit-time", "Fit time", "seconds", &bars(&|g| g.fit_seconds), true));
}

/// One run per (engine, model), outside sweeps: the first seed's, for the curves.
fn first_runs(results: &Results) -> Vec<&RunRecord> {
    let mut firsts: Vec<&RunRecord> = Vec::new();
    for r in results.runs.iter().filter(|r| r.sweep.is_none() && r.scores.is_some()) {
        if !firsts.iter().any(|f| f.engine == r.engine && f.model == r.model) {
            firsts.push(r);
        }
    }
    firsts
}

/// "engine model", the legend of a run's curves and the caption of its confusion matrix.
fn name(r: &RunRecord) -> String {
    format!("{} {}", r.engine, r.model)
}

/// Loss, validation accuracy, CPU and memory against time.
fn curves(body: &mut String, firsts: &[&RunRecord]) {
    let loss: Vec<Series> = firsts
        .iter()
        .map(|r| Series { name: name(r), points: r.log.iter().map(|e| (e.elapsed_seconds, e.loss)).collect() })
        .collect();
    body.push_str("<h2>Loss curves</h2><p>Training loss after each iteration (spark) or epoch (tensor), against wall time (log scale); for trees, the weighted impurity of the leaves after each level.</p>");
    body.push_str(&line_chart("chart-loss", "Training loss", ("seconds", "loss"), &loss, (true, false), false));
    let tta: Vec<Series> = firsts
        .iter()
        .map(|r| {
            let pts: Vec<(f64, f64)> =
                r.log.iter().filter_map(|e| e.valid_accuracy.map(|a| (e.elapsed_seconds, a))).collect();
            Series { name: name(r), points: pts }
        })
        .collect();
    body.push_str("<h2>Time to accuracy</h2><p>Validation accuracy after each iteration or level (spark) and epoch (tensor) against training seconds (validation scoring left out), first seed of each model; the like-for-like table gives the time to target over seeds.</p>");
    body.push_str(&line_chart(
        "chart-time-to-accuracy",
        "Accuracy against time",
        ("seconds", "accuracy"),
        &tta,
        (true, false),
        false,
    ));
    let res = |f: fn(&ResourceSample) -> f64| -> Vec<Series> {
        firsts
            .iter()
            .map(|r| Series { name: name(r), points: r.resources.iter().map(|s| (s.t_seconds, f(s))).collect() })
            .collect()
    };
    body.push_str("<h2>CPU and memory during the fit</h2><p>CPU use of each run's first seed, one panel each on the same scale (100 % = one core busy), as a moving average over 0.5 s of the 50 ms samples.</p>");
    let cpu: Vec<Series> =
        res(|s| s.cpu_percent).into_iter().map(|s| Series { points: smooth(&s.points, 0.5), ..s }).collect();
    body.push_str(&small_multiples("chart-cpu", "CPU use", ("seconds", "% of one core"), &cpu));
    body.push_str(&line_chart(
        "chart-rss",
        "Resident memory",
        ("seconds", "MiB"),
        &res(|s| mib(s.rss_bytes as f64)),
        (false, false),
        false,
    ));
}

/// Time against rows and speedup against workers.
fn scaling(body: &mut String, results: &Results, all: &[Group]) {
    // Within one process count (the fewest swept); the answers compare process counts.
    let fewest = all.iter().filter_map(|g| g.sweep).map(|s| s.processes).min().unwrap_or(1);
    let sweeps: Vec<&Group> =
        all.iter().filter(|g| g.sweep.is_some_and(|s| s.processes == fewest) && g.ok > 0).collect();
    let models = answers::unique_models(&sweeps);
    let rows_series: Vec<Series> = models
        .iter()
        .map(|(e, m)| {
            let mine: Vec<&&Group> = sweeps.iter().filter(|g| &g.engine == e && &g.model == m).collect();
            let max_w = mine.iter().filter_map(|g| g.sweep).map(|s| s.workers).max().unwrap_or(1);
            let mut pts: Vec<(f64, f64)> = mine
                .iter()
                .filter(|g| g.sweep.is_some_and(|s| s.workers == max_w))
                .map(|g| (g.sweep.map_or(1.0, |s| s.fraction) * results.data.train_rows as f64, g.fit_seconds.mean))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name: format!("{e} {m}"), points: pts }
        })
        .collect();
    let worker_series: Vec<Series> = models
        .iter()
        .map(|(e, m)| {
            let mine: Vec<&&Group> = sweeps
                .iter()
                .filter(|g| &g.engine == e && &g.model == m && g.sweep.is_some_and(|s| s.fraction == 1.0))
                .collect();
            let base = mine.iter().find(|g| g.sweep.is_some_and(|s| s.workers == 1)).map(|g| g.fit_seconds.mean);
            let mut pts: Vec<(f64, f64)> = mine
                .iter()
                .filter_map(|g| base.map(|b| (g.sweep.map_or(1, |s| s.workers) as f64, b / g.fit_seconds.mean)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name: format!("{e} {m}"), points: pts }
        })
        .collect();
    body.push_str("<h2>Scaling</h2>");
    body.push_str(&line_chart(
        "chart-scale-rows",
        "Fit time against training rows",
        ("training rows", "seconds"),
        &rows_series,
        (true, true),
        false,
    ));
    // Rows trained per second: flat while each size fits the same way, falling where the rows
    // leave memory (a sweep over a prepared directory crosses that boundary).
    let throughput: Vec<Series> = rows_series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s.points.iter().filter(|&&(_, t)| t > 0.0).map(|&(rows, t)| (rows, rows / t)).collect(),
        })
        .collect();
    body.push_str(&line_chart(
        "chart-scale-throughput",
        "Throughput against training rows",
        ("training rows", "rows per second of fit"),
        &throughput,
        (true, false),
        false,
    ));
    body.push_str(&line_chart(
        "chart-scale-workers",
        "Speedup against workers",
        ("workers / replicas", "speedup over 1"),
        &worker_series,
        (false, false),
        false,
    ));
}

/// A confusion matrix per (engine, model).
fn confusion_matrices(body: &mut String, results: &Results, firsts: &[&RunRecord]) {
    body.push_str("<h2>Confusion matrices</h2><div class=grid>");
    for r in firsts {
        let Some(s) = &r.scores else { continue };
        let _ =
            write!(body, "<table class=confusion><caption>{}</caption><tr><th>true \\ predicted</th>", esc(&name(r)));
        for c in &results.data.classes {
            let _ = write!(body, "<th>{}</th>", esc(c));
        }
        body.push_str("</tr>");
        for (c, row) in results.data.classes.iter().zip(&s.confusion) {
            let _ = write!(body, "<tr><th>{}</th>", esc(c));
            for v in row {
                let _ = write!(body, "<td>{v}</td>");
            }
            body.push_str("</tr>");
        }
        body.push_str("</table>");
    }
    body.push_str("</div>");
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f4f4f4}td:first-child,td:nth-child(2){text-align:left}.meta,.caveat{color:#555}\
dt{font-weight:bold;margin-top:.6em}svg.chart{display:block;margin:1em 0;background:#fff}\
svg .title{font-size:15px;font-weight:bold}svg .tick,svg .legend,svg .value{font-size:11px}svg .label{font-size:12px}\
.grid{display:flex;flex-wrap:wrap;gap:1em}table.confusion caption{font-weight:bold}td.note{text-align:left;color:#555}";
