//! Decision tree classifier as MLlib's DecisionTreeClassifier: features binned once, the tree
//! grown level by level, each level one pass over the partitions that aggregates per-node,
//! per-feature, per-bin class counts; the driver then picks each node's best split.

mod binning;
mod bins;
mod split;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use trainbench_data::{Partitioned, Prepared};
use trainbench_engine::{Error, LogEntry, Progress, Result, StepUnit, TrainLog, TrainedModel};

pub use binning::{FeatureSplits, continuous_thresholds};
use binning::{RowBinner, find_splits};
use bins::Bins;
pub use split::Rule;
use split::{SplitLimits, best_split, impurity};

use crate::executor::Executor;
use crate::params::TreeParams;

/// Histograms are built for at most this many nodes at once (MLlib's `maxMemoryInMB` groups).
const MAX_HISTOGRAM_VALUES: usize = 32 << 20;

/// A node of a fitted tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Training rows per class that reached this node.
    pub counts: Vec<f64>,
    /// Depth (root = 0).
    pub depth: usize,
    /// The split, with the indices of the two children; `None` for a leaf.
    pub split: Option<(usize, Rule, usize, usize)>,
}

/// A fitted tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeModel {
    /// Nodes in creation order (level by level).
    pub nodes: Vec<Node>,
    /// Number of input features.
    pub n_features: usize,
}

impl TreeModel {
    /// The leaf a row reaches.
    pub fn leaf(&self, x: &[f32]) -> &Node {
        let mut node = &self.nodes[0];
        while let Some((feature, rule, left, right)) = &node.split {
            node = &self.nodes[if rule.goes_left(x[*feature]) { *left } else { *right }];
        }
        node
    }

    /// Depth of the deepest leaf.
    pub fn depth(&self) -> usize {
        self.nodes.iter().map(|n| n.depth).max().unwrap_or(0)
    }
}

impl TrainedModel for TreeModel {
    fn classes(&self) -> usize {
        self.nodes[0].counts.len()
    }

    fn n_features(&self) -> usize {
        self.n_features
    }

    fn predict_proba(&self, features: &[f32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(features.len() / self.n_features.max(1) * self.classes());
        for x in features.chunks_exact(self.n_features) {
            let counts = &self.leaf(x).counts;
            let total: f64 = counts.iter().sum();
            out.extend(counts.iter().map(|c| (c / total) as f32));
        }
        Ok(out)
    }

    fn to_json(&self) -> Result<serde_json::Value> {
        crate::encode(self)
    }
}

/// Marks a row whose node is a finished leaf.
const DONE: u32 = u32::MAX;

/// Fits on partitioned training rows, with split candidates sampled by `seed`; `valid` rows,
/// where given, are scored after every level (by the tree grown so far).
pub fn fit(
    exec: &Executor,
    data: &Partitioned,
    params: &TreeParams,
    seed: u64,
    valid: Option<&Prepared>,
    progress: &dyn Progress,
) -> Result<(TreeModel, TrainLog)> {
    let start = Instant::now();
    let (classes, categorical) = (data.data.classes(), &data.data.categorical_features[..]);
    progress.begin(StepUnit::Level, params.max_depth);
    let d = data.data.n_features;
    let splits = find_splits(exec, data, categorical, params.max_bins, seed)?;
    // Bin every row once (TreePoint): one byte per feature.
    let binner = RowBinner::new(&splits);
    // Under mpirun a process bins, counts and moves the rows of its own partitions only. Rows
    // mapped from a prepared directory are binned into files too (Spark's TreePoint RDD
    // persisted MEMORY_AND_DISK), so the binned copy does not have to fit in memory either.
    let own = exec.owned(data.len());
    let on_disk = data.data.features.is_mapped();
    let binned: Vec<std::result::Result<Bins, String>> = exec.map_partitions(data.len(), |p| {
        if !own.contains(&p) {
            return Ok(Bins::default());
        }
        let part = data.partition(p);
        let mut out = Bins::zeroed(part.features.len(), on_disk)?;
        binner.bin_rows(part.features, &mut out)?;
        Ok(out)
    });
    let binned: Vec<Bins> = binned.into_iter().collect::<std::result::Result<_, _>>().map_err(Error::Data)?;

    let mut offsets = Vec::with_capacity(d + 1);
    offsets.push(0);
    for s in &splits {
        offsets.push(offsets.last().copied().unwrap_or(0) + s.bins() * classes);
    }
    let node_stride = offsets[d];

    let mut root_counts = vec![0.0; classes];
    for &l in data.data.labels.iter() {
        root_counts[l as usize] += 1.0;
    }
    let mut nodes = vec![Node { counts: root_counts, depth: 0, split: None }];
    let mut node_of_row: Vec<Vec<u32>> = (0..data.len()).map(|p| vec![0; data.partition(p).rows()]).collect();
    let limits = SplitLimits {
        impurity: params.impurity,
        min_instances: params.min_instances_per_node as f64,
        min_info_gain: params.min_info_gain,
        multiclass: classes > 2,
        max_unordered_arity: SplitLimits::unordered_arity(params.max_bins),
    };
    let mut entries = Vec::new();
    let mut eval_seconds = 0.0;
    let mut frontier: Vec<usize> = vec![0];
    let mut parent_of: Vec<usize> = vec![usize::MAX];
    // Histograms of the nodes split at the previous level, by node.
    let mut parent_hists: HashMap<usize, Vec<u32>> = HashMap::new();
    for depth in 0..params.max_depth {
        // A node splits only if it is impure and big enough to give two children.
        let open: Vec<usize> = frontier
            .iter()
            .copied()
            .filter(|&n| {
                let c = &nodes[n].counts;
                impurity(params.impurity, c) > 0.0 && c.iter().sum::<f64>() >= 2.0 * limits.min_instances
            })
            .collect();
        if open.is_empty() {
            break;
        }
        let mut next_frontier = Vec::new();
        let mut is_open = vec![false; nodes.len()];
        open.iter().for_each(|&n| is_open[n] = true);
        // Sibling subtraction: of two children of a split node, count only the smaller one and
        // take the other as parent − sibling (exact: these are integer counts). Histograms are
        // kept between levels only while they fit the memory bound.
        let store = 2 * open.len() * node_stride <= MAX_HISTOGRAM_VALUES;
        let subtract = store && !parent_hists.is_empty();
        let mut direct: Vec<usize> = Vec::new();
        let mut derived: Vec<(usize, usize, usize)> = Vec::new();
        if subtract {
            let mut done_parent = vec![false; nodes.len()];
            for &n in &open {
                let p = parent_of[n];
                if std::mem::replace(&mut done_parent[p], true) {
                    continue;
                }
                let Some((_, _, l, r)) = &nodes[p].split else { continue };
                let total = |c: usize| nodes[c].counts.iter().sum::<f64>();
                let (small, large) = if total(*l) <= total(*r) { (*l, *r) } else { (*r, *l) };
                direct.push(small);
                if is_open[large] {
                    derived.push((large, p, small));
                }
            }
        } else {
            direct = open.clone();
        }
        let mut level_hists: HashMap<usize, Vec<u32>> = HashMap::new();
        let mut chosen: Vec<(usize, Option<split::BestSplit>)> = Vec::new();
        let group_size = (MAX_HISTOGRAM_VALUES / node_stride.max(1)).max(1);
        for group in direct.chunks(group_size) {
            let mut slot = vec![u32::MAX; nodes.len()];
            for (s, &n) in group.iter().enumerate() {
                slot[n] = s as u32;
            }
            let hist = exec
                .tree_aggregate(
                    data.len(),
                    |p| {
                        // Counts as u32: half the size of f64, so more of the histogram
                        // stays in cache during the random-access updates.
                        let mut h = vec![0u32; group.len() * node_stride];
                        let labels = data.partition(p).labels;
                        add_bin_counts(&binned[p], labels, &node_of_row[p], &slot, &offsets, classes, &mut h);
                        h
                    },
                    |mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                        a
                    },
                )
                .unwrap_or_default();
            if store {
                for (h, &n) in hist.chunks_exact(node_stride).zip(group) {
                    level_hists.insert(n, h.to_vec());
                }
            } else {
                let best = exec.map_partitions(group.len(), |s| {
                    choose(
                        &hist[s * node_stride..(s + 1) * node_stride],
                        &offsets,
                        &splits,
                        &nodes[group[s]].counts,
                        &limits,
                    )
                });
                chosen.extend(group.iter().copied().zip(best));
            }
        }
        for (node, parent, sibling) in derived {
            let h: Vec<u32> = parent_hists[&parent].iter().zip(&level_hists[&sibling]).map(|(p, s)| p - s).collect();
            level_hists.insert(node, h);
        }
        if store {
            // Nodes are independent: choose their splits on the workers too.
            let best = exec.map_partitions(open.len(), |i| {
                choose(&level_hists[&open[i]], &offsets, &splits, &nodes[open[i]].counts, &limits)
            });
            chosen.extend(open.iter().copied().zip(best));
        }
        for (n, best) in chosen {
            if let Some(best) = best {
                let left = nodes.len();
                nodes.push(Node { counts: best.left, depth: depth + 1, split: None });
                nodes.push(Node { counts: best.right, depth: depth + 1, split: None });
                parent_of.extend([n, n]);
                nodes[n].split = Some((best.feature, best.rule, left, left + 1));
                next_frontier.extend([left, left + 1]);
            }
        }
        level_hists.retain(|&n, _| nodes[n].split.is_some());
        parent_hists = level_hists;
        // Move each row of a split node to its child; rows of leaves are done.
        let nodes_ref = &nodes;
        let binned_ref = &binned;
        let moved: Vec<Vec<u32>> = exec.map_owned_partitions(data.len(), |p| {
            let bins = &binned_ref[p];
            node_of_row[p]
                .iter()
                .enumerate()
                .map(|(i, &node)| {
                    if node == DONE {
                        return DONE;
                    }
                    match &nodes_ref[node as usize].split {
                        Some((f, rule, l, r)) => (if rule.goes_left_bin(bins[i * d + f]) { *l } else { *r }) as u32,
                        None => DONE,
                    }
                })
                .collect()
        });
        node_of_row = moved;
        let (valid_loss, valid_accuracy) = match valid {
            Some(v) => {
                let clock = Instant::now();
                let (l, a) = crate::validation_scores(&TreeModel { nodes: nodes.clone(), n_features: d }, v);
                eval_seconds += clock.elapsed().as_secs_f64();
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        entries.push(LogEntry {
            step: depth + 1,
            loss: leaf_impurity(&nodes, params),
            valid_loss,
            valid_accuracy,
            elapsed_seconds: start.elapsed().as_secs_f64() - eval_seconds,
            extra: BTreeMap::from([("depth".into(), (depth + 1) as f64), ("nodes".into(), nodes.len() as f64)]),
        });
        progress.entry(&entries[entries.len() - 1]);
        if next_frontier.is_empty() {
            break;
        }
        frontier = next_frontier;
    }
    let stop_reason = if entries.len() == params.max_depth { "max_depth" } else { "no useful split left" };
    let model = TreeModel { nodes, n_features: d };
    let log = TrainLog {
        entries,
        fit_seconds: start.elapsed().as_secs_f64(),
        stop_reason: stop_reason.into(),
        eval_seconds,
        resumed_epochs: None,
        communication_seconds: None,
    };
    Ok((model, log))
}

/// One partition's part of a level's histograms, the pass every tree level makes over the
/// data: for each row whose node has a histogram slot (`slot[node]`, `u32::MAX` for none), adds
/// 1 to (slot, feature j, bin of j, label) for every feature. `bins` holds one byte per feature
/// per row; feature j's counts start at `offsets[j]` within a slot, and a slot is
/// `offsets[d]` counts long. Public so `bench/kernels/spark_kernels.rs` times the code the engine runs.
pub fn add_bin_counts(
    bins: &[u8],
    labels: &[u32],
    node_of_row: &[u32],
    slot: &[u32],
    offsets: &[usize],
    classes: usize,
    hist: &mut [u32],
) {
    let d = offsets.len() - 1;
    let node_stride = offsets[d];
    for (i, &node) in node_of_row.iter().enumerate() {
        if node == DONE || slot[node as usize] == u32::MAX {
            continue;
        }
        let base = slot[node as usize] as usize * node_stride;
        let y = labels[i] as usize;
        let row = &bins[i * d..(i + 1) * d];
        for (j, &b) in row.iter().enumerate() {
            hist[base + offsets[j] + b as usize * classes + y] += 1;
        }
    }
}

/// The best split of a node from its u32 histogram.
fn choose(
    hist: &[u32],
    offsets: &[usize],
    splits: &[FeatureSplits],
    counts: &[f64],
    limits: &SplitLimits,
) -> Option<split::BestSplit> {
    let h: Vec<f64> = hist.iter().map(|&c| f64::from(c)).collect();
    best_split(&h, offsets, splits, counts, limits)
}

/// Row-weighted impurity of the current leaves: what the splits have reduced so far.
fn leaf_impurity(nodes: &[Node], params: &TreeParams) -> f64 {
    let total: f64 = nodes[0].counts.iter().sum();
    nodes
        .iter()
        .filter(|n| n.split.is_none())
        .map(|n| n.counts.iter().sum::<f64>() / total * impurity(params.impurity, &n.counts))
        .sum()
}
