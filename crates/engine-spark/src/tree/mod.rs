//! Decision tree classifier as MLlib's DecisionTreeClassifier: features binned once, the tree
//! grown level by level, each level one pass over the partitions that aggregates per-node,
//! per-feature, per-bin class counts; the driver then picks each node's best split.

mod binning;
mod split;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use trainbench_data::Partitioned;
use trainbench_engine::{Error, LogEntry, Result, TrainLog, TrainedModel};

pub use binning::{FeatureSplits, continuous_thresholds};
use binning::{bin_of, find_splits};
pub use split::Rule;
use split::{SplitLimits, best_split, impurity};

use crate::executor::{Executor, add_into};
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

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Marks a row whose node is a finished leaf.
const DONE: u32 = u32::MAX;

/// Fits on partitioned training rows.
pub fn fit(
    exec: &Executor,
    data: &Partitioned,
    classes: usize,
    categorical: &[(usize, usize)],
    params: &TreeParams,
) -> Result<(TreeModel, TrainLog)> {
    let start = Instant::now();
    let d = data.data.n_features;
    let splits = find_splits(exec, data, categorical, params.max_bins, params.seed)?;
    // Bin every row once (TreePoint): one byte per feature.
    let binned: Vec<std::result::Result<Vec<u8>, String>> = exec.map_partitions(data.len(), |p| {
        let part = data.partition(p);
        let mut out = Vec::with_capacity(part.features.len());
        for (i, &x) in part.features.iter().enumerate() {
            out.push(bin_of(&splits[i % d], x).map_err(|e| format!("feature {}: {e}", i % d))?);
        }
        Ok(out)
    });
    let binned: Vec<Vec<u8>> = binned.into_iter().collect::<std::result::Result<_, _>>().map_err(Error::Data)?;

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
    let mut frontier: Vec<usize> = vec![0];
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
        let group_size = (MAX_HISTOGRAM_VALUES / node_stride.max(1)).max(1);
        for group in open.chunks(group_size) {
            let mut slot = vec![u32::MAX; nodes.len()];
            for (s, &n) in group.iter().enumerate() {
                slot[n] = s as u32;
            }
            let hist = exec
                .tree_aggregate(
                    data.len(),
                    |p| {
                        let part = data.partition(p);
                        let bins = &binned[p];
                        let mut h = vec![0.0; group.len() * node_stride];
                        for (i, &node) in node_of_row[p].iter().enumerate() {
                            if node == DONE || slot[node as usize] == u32::MAX {
                                continue;
                            }
                            let base = slot[node as usize] as usize * node_stride;
                            let y = part.labels[i] as usize;
                            let row = &bins[i * d..(i + 1) * d];
                            for (j, &b) in row.iter().enumerate() {
                                h[base + offsets[j] + b as usize * classes + y] += 1.0;
                            }
                        }
                        h
                    },
                    add_into,
                )
                .unwrap_or_default();
            for (s, &n) in group.iter().enumerate() {
                let h = &hist[s * node_stride..(s + 1) * node_stride];
                if let Some(best) = best_split(h, &offsets, &splits, &nodes[n].counts, &limits) {
                    let left = nodes.len();
                    nodes.push(Node { counts: best.left, depth: depth + 1, split: None });
                    nodes.push(Node { counts: best.right, depth: depth + 1, split: None });
                    nodes[n].split = Some((best.feature, best.rule, left, left + 1));
                    next_frontier.extend([left, left + 1]);
                }
            }
        }
        // Move each row of a split node to its child; rows of leaves are done.
        let nodes_ref = &nodes;
        let binned_ref = &binned;
        let moved: Vec<Vec<u32>> = exec.map_partitions(data.len(), |p| {
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
        entries.push(LogEntry {
            step: depth + 1,
            loss: leaf_impurity(&nodes, params),
            valid_loss: None,
            elapsed_seconds: start.elapsed().as_secs_f64(),
            extra: BTreeMap::from([("depth".into(), (depth + 1) as f64), ("nodes".into(), nodes.len() as f64)]),
        });
        if next_frontier.is_empty() {
            break;
        }
        frontier = next_frontier;
    }
    let stop_reason = if entries.len() == params.max_depth { "max_depth" } else { "no useful split left" };
    let model = TreeModel { nodes, n_features: d };
    let log = TrainLog { entries, fit_seconds: start.elapsed().as_secs_f64(), stop_reason: stop_reason.into() };
    Ok((model, log))
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
