//! Impurity and the choice of the best split of a node from its bin statistics, as MLlib's
//! `binsToBestSplit`.

use serde::{Deserialize, Serialize};

use super::binning::FeatureSplits;
use crate::params::Impurity;

/// Impurity of class counts.
pub fn impurity(kind: Impurity, counts: &[f64]) -> f64 {
    let total: f64 = counts.iter().sum();
    if total == 0.0 {
        return 0.0;
    }
    match kind {
        Impurity::Gini => 1.0 - counts.iter().map(|c| (c / total) * (c / total)).sum::<f64>(),
        Impurity::Entropy => counts
            .iter()
            .filter(|&&c| c > 0.0)
            .map(|&c| {
                let p = c / total;
                -p * p.log2()
            })
            .sum(),
    }
}

/// Which rows of a node go left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    /// Continuous: `x <= threshold`; `bin` is the last bin that goes left.
    Threshold {
        /// The threshold.
        threshold: f64,
        /// Last left bin.
        bin: u8,
    },
    /// Categorical: the category is one of these.
    Categories(Vec<u8>),
}

impl Rule {
    /// Whether a row in `bin` goes left.
    pub fn goes_left_bin(&self, b: u8) -> bool {
        match self {
            Rule::Threshold { bin, .. } => b <= *bin,
            Rule::Categories(left) => left.contains(&b),
        }
    }

    /// Whether a raw value goes left.
    pub fn goes_left(&self, x: f32) -> bool {
        match self {
            Rule::Threshold { threshold, .. } => f64::from(x) <= *threshold,
            Rule::Categories(left) => x >= 0.0 && x.fract() == 0.0 && left.contains(&(x as u8)),
        }
    }
}

/// The chosen split of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct BestSplit {
    /// Feature index.
    pub feature: usize,
    /// Which rows go left.
    pub rule: Rule,
    /// Impurity decrease.
    pub gain: f64,
    /// Class counts going left and right.
    pub left: Vec<f64>,
    /// Class counts going right.
    pub right: Vec<f64>,
}

/// Constraints on a split.
pub struct SplitLimits {
    /// Impurity measure.
    pub impurity: Impurity,
    /// Each child keeps at least this many rows.
    pub min_instances: f64,
    /// Gain must reach this.
    pub min_info_gain: f64,
    /// Whether the label has more than two classes (changes how categories are ordered).
    pub multiclass: bool,
    /// Features with at most this many categories are split by subsets (multiclass only).
    pub max_unordered_arity: usize,
}

impl SplitLimits {
    /// MLlib: a multiclass categorical feature is unordered when `2^(arity−1) − 1` subsets fit in
    /// the bins, i.e. arity ≤ floor(log2(maxBins / 2 + 1)) + 1.
    pub fn unordered_arity(max_bins: usize) -> usize {
        ((max_bins as f64 / 2.0 + 1.0).log2() + 1.0).floor() as usize
    }
}

/// Picks the best valid split of a node from `hist` (bins × classes per feature, concatenated
/// in feature order). Features and candidates are scanned in order and the first of equal
/// gains wins, as MLlib's `maxBy`.
pub fn best_split(
    hist: &[f64],
    offsets: &[usize],
    splits: &[FeatureSplits],
    parent: &[f64],
    limits: &SplitLimits,
) -> Option<BestSplit> {
    let k = parent.len();
    let parent_impurity = impurity(limits.impurity, parent);
    let total: f64 = parent.iter().sum();
    let mut best: Option<BestSplit> = None;
    // Candidates are many (nodes × features × bins) and mostly rejected: score them without
    // allocating, and build the rule and the child counts only for a new best.
    let mut right = vec![0.0; k];
    let mut consider = |feature: usize, rule: &dyn Fn() -> Rule, left: &[f64]| {
        for ((r, p), l) in right.iter_mut().zip(parent).zip(left) {
            *r = p - l;
        }
        let (nl, nr): (f64, f64) = (left.iter().sum(), right.iter().sum());
        if nl < limits.min_instances || nr < limits.min_instances {
            return;
        }
        let gain = parent_impurity
            - nl / total * impurity(limits.impurity, left)
            - nr / total * impurity(limits.impurity, &right);
        if gain < limits.min_info_gain {
            return;
        }
        if best.as_ref().is_none_or(|b| gain > b.gain) {
            best = Some(BestSplit { feature, rule: rule(), gain, left: left.to_vec(), right: right.clone() });
        }
    };
    for (j, s) in splits.iter().enumerate() {
        let bins = s.bins();
        let h = &hist[offsets[j]..offsets[j] + bins * k];
        let bin_counts = |b: usize| &h[b * k..(b + 1) * k];
        match s {
            FeatureSplits::Continuous(thresholds) => {
                let mut left = vec![0.0; k];
                for (b, &threshold) in thresholds.iter().enumerate() {
                    for (l, c) in left.iter_mut().zip(bin_counts(b)) {
                        *l += c;
                    }
                    consider(j, &|| Rule::Threshold { threshold, bin: b as u8 }, &left);
                }
            }
            FeatureSplits::Categorical(arity) if limits.multiclass && *arity <= limits.max_unordered_arity => {
                // Every non-trivial subset, as MLlib's unordered features: subset i+1's bits.
                for subset in 1..(1usize << (arity - 1)) {
                    let cats: Vec<u8> = (0..*arity).filter(|c| subset >> c & 1 == 1).map(|c| c as u8).collect();
                    let mut left = vec![0.0; k];
                    for &c in &cats {
                        for (l, v) in left.iter_mut().zip(bin_counts(c as usize)) {
                            *l += v;
                        }
                    }
                    consider(j, &|| Rule::Categories(cats.clone()), &left);
                }
            }
            FeatureSplits::Categorical(arity) => {
                // Ordered by centroid: binary by the count of class 1, multiclass by impurity;
                // empty categories last. Then every prefix of that order is a candidate.
                let mut order: Vec<(usize, f64)> = (0..*arity)
                    .map(|c| {
                        let counts = bin_counts(c);
                        let n: f64 = counts.iter().sum();
                        let centroid = if n == 0.0 {
                            f64::MAX
                        } else if limits.multiclass {
                            impurity(limits.impurity, counts)
                        } else {
                            counts[1]
                        };
                        (c, centroid)
                    })
                    .collect();
                order.sort_by(|a, b| a.1.total_cmp(&b.1));
                let mut left = vec![0.0; k];
                let mut cats = Vec::new();
                for &(c, _) in order.iter().take(arity.saturating_sub(1)) {
                    cats.push(c as u8);
                    for (l, v) in left.iter_mut().zip(bin_counts(c)) {
                        *l += v;
                    }
                    let sorted = || {
                        let mut sorted = cats.clone();
                        sorted.sort_unstable();
                        Rule::Categories(sorted)
                    };
                    consider(j, &sorted, &left);
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impurities() {
        assert_eq!(impurity(Impurity::Gini, &[5.0, 5.0]), 0.5);
        assert_eq!(impurity(Impurity::Entropy, &[5.0, 5.0]), 1.0);
        assert_eq!(impurity(Impurity::Gini, &[3.0, 0.0]), 0.0);
    }

    #[test]
    fn unordered_arity_matches_mllib() {
        assert_eq!(SplitLimits::unordered_arity(32), 5);
        assert_eq!(SplitLimits::unordered_arity(2), 2);
    }
}
