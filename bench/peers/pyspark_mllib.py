#!/usr/bin/env python3
"""Trains one model with PySpark MLlib (classic session, local[N]) the way trainbench's spark
engine does, and prints one JSON line: read/fit/predict seconds, accuracy, macro F1, CPU
seconds, the iterations MLlib made (summary.totalIterations, with the objective history; the
tree's depth) and two memory peaks of the whole process tree (Python + JVM): over the whole
run (peak_rss_bytes) and during the fit only (fit_peak_rss_bytes), sampled every 50 ms.

Same steps as `trainbench train`: read the CSV, assemble, standard-scale (mean and std of the
training rows), split 80/20 with the seed, fit with MLlib's defaults unless given, score.
Spark's split is random, not stratified; both sides test on 20 % of the same file.

Usage: pyspark_mllib.py --data FILE --model lr|tree|mlp [--workers 2] [--max-iter 100]
       [--tol 1e-6] [--max-depth 5] [--hidden 64,64] [--label label] [--seed 42]
"""
import argparse
import json
import os
import sys
import threading
import time

import psutil


def tree_usage(proc):
    procs = [proc] + proc.children(recursive=True)
    rss, cpu = 0, 0.0
    for p in procs:
        try:
            rss += p.memory_info().rss
            t = p.cpu_times()
            cpu += t.user + t.system + getattr(t, "children_user", 0) + getattr(t, "children_system", 0)
        except psutil.Error:
            pass
    return rss, cpu


class Sampler(threading.Thread):
    """The process tree's resident memory every 50 ms: the peak over the whole run, and the
    peak since the last start_fit() until end_fit()."""

    def __init__(self):
        super().__init__(daemon=True)
        self.proc = psutil.Process(os.getpid())
        self.peak = 0
        self.fit_peak = 0
        self.in_fit = False
        self.stop = False

    def sample(self):
        rss, _ = tree_usage(self.proc)
        self.peak = max(self.peak, rss)
        if self.in_fit:
            self.fit_peak = max(self.fit_peak, rss)

    def start_fit(self):
        self.in_fit = True
        self.sample()

    def end_fit(self):
        self.sample()
        self.in_fit = False

    def run(self):
        while not self.stop:
            self.sample()
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True, choices=["lr", "tree", "mlp"])
    ap.add_argument("--label", default="label")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--max-depth", type=int, default=5)
    ap.add_argument("--hidden", default="64,64")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--driver-memory", default="4g")
    args = ap.parse_args()

    sampler = Sampler()
    sampler.start()
    t0 = time.time()
    from pyspark.ml.classification import DecisionTreeClassifier, LogisticRegression, MultilayerPerceptronClassifier
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.sql import SparkSession
    from pyspark.sql.types import DoubleType, StructField, StructType

    spark = (SparkSession.builder.master(f"local[{args.workers}]").appName("trainbench-peer")
             .config("spark.driver.memory", args.driver_memory).config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    start_seconds = time.time() - t0

    t0 = time.time()
    with open(args.data) as f:
        columns = f.readline().strip().split(",")
    schema = StructType([StructField(c, DoubleType()) for c in columns])
    df = spark.read.csv(args.data, header=True, schema=schema)
    features = [c for c in columns if c != args.label]
    df = VectorAssembler(inputCols=features, outputCol="raw").transform(df).select("raw", args.label)
    train, test = df.randomSplit([0.8, 0.2], seed=args.seed)
    scaler = StandardScaler(inputCol="raw", outputCol="features", withMean=True, withStd=True).fit(train)
    train = scaler.transform(train).select("features", args.label).cache()
    test = scaler.transform(test).select("features", args.label).cache()
    n_train, n_test = train.count(), test.count()
    prepare_seconds = time.time() - t0

    if args.model == "lr":
        est = LogisticRegression(labelCol=args.label, maxIter=args.max_iter, tol=args.tol)
    elif args.model == "tree":
        est = DecisionTreeClassifier(labelCol=args.label, maxDepth=args.max_depth, seed=args.seed)
    else:
        layers = [len(features)] + [int(h) for h in args.hidden.split(",")] + [2]
        est = MultilayerPerceptronClassifier(labelCol=args.label, layers=layers, maxIter=args.max_iter,
                                             tol=args.tol, seed=args.seed)
    _, cpu_before = tree_usage(psutil.Process(os.getpid()))
    sampler.start_fit()
    t0 = time.time()
    model = est.fit(train)
    fit_seconds = time.time() - t0
    sampler.end_fit()
    _, cpu_after = tree_usage(psutil.Process(os.getpid()))
    if args.model == "tree":
        iterations, history = model.depth, []
    else:
        # LogisticRegressionModel.summary is a property; MultilayerPerceptronClassificationModel's
        # a method.
        summary = model.summary() if callable(model.summary) else model.summary
        iterations, history = summary.totalIterations, list(summary.objectiveHistory)

    t0 = time.time()
    pred = model.transform(test).cache()
    pred.count()
    predict_seconds = time.time() - t0
    acc = MulticlassClassificationEvaluator(labelCol=args.label, metricName="accuracy").evaluate(pred)
    f1 = MulticlassClassificationEvaluator(labelCol=args.label, metricName="f1").evaluate(pred)
    sampler.stop = True
    sampler.join()
    print(json.dumps({
        "system": "pyspark", "version": spark.version, "model": args.model, "workers": args.workers,
        "train_rows": n_train, "test_rows": n_test, "start_seconds": start_seconds,
        "prepare_seconds": prepare_seconds, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
        "fit_cpu_seconds": cpu_after - cpu_before, "accuracy": acc, "f1_weighted": f1,
        "iterations": iterations, "objective_history": history,
        "peak_rss_bytes": sampler.peak, "fit_peak_rss_bytes": sampler.fit_peak,
    }))
    spark.stop()


if __name__ == "__main__":
    sys.exit(main())
