//! Model parameters. Each `Default` is MLlib's default; each field names its MLlib param.

use serde::{Deserialize, Serialize};
use trainbench_engine::{Error, ModelKind, ParamMap, Result};

/// Largest number of weights an MLP may have: L-BFGS keeps about 25 vectors of the weights'
/// size (history of 10 pairs, gradient, direction, line search), so 10⁷ weights already take
/// about 2 GB.
pub const MAX_MLP_WEIGHTS: usize = 10_000_000;

/// Bytes the optimizer holds per weight (about 25 f64 vectors of the weights' size).
pub const BYTES_PER_WEIGHT: usize = 25 * 8;

fn invalid(name: &str, value: impl ToString, expected: &str) -> Error {
    Error::InvalidParam { name: name.to_owned(), value: value.to_string(), expected: expected.to_owned() }
}

/// LogisticRegression's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrParams {
    /// `maxIter`: at most this many L-BFGS iterations. Default 100.
    pub max_iter: usize,
    /// `tol`: relative tolerance of Breeze's tests (the objective's change over 20 iterations
    /// against |f₀|, the gradient's norm against |f|). Default 1e-6.
    pub tol: f64,
    /// `regParam`: regularization strength λ. Default 0.
    pub reg_param: f64,
    /// `elasticNetParam`: α in λ(α‖β‖₁ + (1−α)/2 ‖β‖²); > 0 uses OWL-QN. Default 0.
    pub elastic_net_param: f64,
    /// `fitIntercept`. Default true.
    pub fit_intercept: bool,
    /// `standardization`: fit on features scaled to unit variance (the penalty then applies to
    /// the scaled coefficients); coefficients are returned on the original scale. Default true.
    pub standardization: bool,
}

impl Default for LrParams {
    fn default() -> Self {
        Self {
            max_iter: 100,
            tol: 1e-6,
            reg_param: 0.0,
            elastic_net_param: 0.0,
            fit_intercept: true,
            standardization: true,
        }
    }
}

impl LrParams {
    /// Reads and validates the parameters.
    pub fn from_map(mut p: ParamMap) -> Result<Self> {
        let d = Self::default();
        let out = Self {
            max_iter: p.take_usize("max_iter", d.max_iter)?,
            tol: p.take_f64("tol", d.tol)?,
            reg_param: p.take_f64("reg_param", d.reg_param)?,
            elastic_net_param: p.take_f64("elastic_net_param", d.elastic_net_param)?,
            fit_intercept: p.take_bool("fit_intercept", d.fit_intercept)?,
            standardization: p.take_bool("standardization", d.standardization)?,
        };
        p.finish(ModelKind::Lr)?;
        if out.max_iter == 0 {
            return Err(invalid("max_iter", out.max_iter, "at least 1"));
        }
        if out.tol.is_nan() || out.tol < 0.0 {
            return Err(invalid("tol", out.tol, ">= 0"));
        }
        if !(out.reg_param >= 0.0 && out.reg_param.is_finite()) {
            return Err(invalid("reg_param", out.reg_param, ">= 0"));
        }
        if !(0.0..=1.0).contains(&out.elastic_net_param) {
            return Err(invalid("elastic_net_param", out.elastic_net_param, "between 0 and 1"));
        }
        Ok(out)
    }
}

/// How a tree measures node purity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impurity {
    /// 1 − Σ p².
    Gini,
    /// −Σ p log₂ p.
    Entropy,
}

/// DecisionTreeClassifier's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeParams {
    /// `maxDepth`: depth 0 is a single leaf. Default 5; at most 30, as MLlib.
    pub max_depth: usize,
    /// `maxBins`: split candidates per continuous feature + 1. Default 32.
    pub max_bins: usize,
    /// `minInstancesPerNode`: each child must keep at least this many rows. Default 1.
    pub min_instances_per_node: usize,
    /// `minInfoGain`: a split must gain at least this much. Default 0.
    pub min_info_gain: f64,
    /// `impurity`. Default gini.
    pub impurity: Impurity,
    /// `seed` of the sample that chooses split candidates.
    pub seed: u64,
}

impl Default for TreeParams {
    fn default() -> Self {
        Self {
            max_depth: 5,
            max_bins: 32,
            min_instances_per_node: 1,
            min_info_gain: 0.0,
            impurity: Impurity::Gini,
            seed: 42,
        }
    }
}

impl TreeParams {
    /// Reads and validates the parameters.
    pub fn from_map(mut p: ParamMap, seed: u64) -> Result<Self> {
        let d = Self::default();
        let impurity = match p.take_string("impurity", "gini").as_str() {
            "gini" => Impurity::Gini,
            "entropy" => Impurity::Entropy,
            other => return Err(invalid("impurity", other, "gini or entropy")),
        };
        let out = Self {
            max_depth: p.take_usize("max_depth", d.max_depth)?,
            max_bins: p.take_usize("max_bins", d.max_bins)?,
            min_instances_per_node: p.take_usize("min_instances_per_node", d.min_instances_per_node)?,
            min_info_gain: p.take_f64("min_info_gain", d.min_info_gain)?,
            impurity,
            seed,
        };
        p.finish(ModelKind::Tree)?;
        if out.max_depth > 30 {
            return Err(invalid("max_depth", out.max_depth, "at most 30 (as MLlib)"));
        }
        if !(2..=256).contains(&out.max_bins) {
            return Err(invalid("max_bins", out.max_bins, "between 2 and 256"));
        }
        if out.min_instances_per_node == 0 {
            return Err(invalid("min_instances_per_node", 0, "at least 1"));
        }
        if out.min_info_gain.is_nan() || out.min_info_gain < 0.0 {
            return Err(invalid("min_info_gain", out.min_info_gain, ">= 0"));
        }
        Ok(out)
    }
}

/// The MLP's optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MlpSolver {
    /// L-BFGS over the full data each iteration.
    LBfgs,
    /// Full-batch gradient descent with step `step_size / √iteration`.
    Gd,
}

/// The arithmetic of the MLP's forward and backward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MlpPrecision {
    /// f64, as MLlib computes.
    #[default]
    F64,
    /// f32 passes (twice the GEMM rate), gradients summed in f64: not MLlib's arithmetic.
    F32,
}

impl MlpPrecision {
    /// f32 (what model files without the field hold).
    pub fn f32() -> Self {
        Self::F32
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "f64",
            Self::F32 => "f32",
        }
    }
}

/// MultilayerPerceptronClassifier's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpParams {
    /// `layers` between input and output (the input and output sizes come from the data).
    /// MLlib requires the full list; trainbench's default hidden layers are [64, 64].
    pub hidden: Vec<usize>,
    /// `maxIter`. Default 100.
    pub max_iter: usize,
    /// `tol`. Default 1e-6.
    pub tol: f64,
    /// `solver`: l-bfgs (default) or gd.
    pub solver: MlpSolver,
    /// `stepSize` for gd. Default 0.03.
    pub step_size: f64,
    /// `blockSize`: rows stacked into one matrix. Default 128.
    pub block_size: usize,
    /// Arithmetic (not an MLlib param: MLlib computes in f64). Default f64.
    pub precision: MlpPrecision,
    /// `seed` of the initial weights.
    pub seed: u64,
}

impl Default for MlpParams {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            max_iter: 100,
            tol: 1e-6,
            solver: MlpSolver::LBfgs,
            step_size: 0.03,
            block_size: 128,
            precision: MlpPrecision::F64,
            seed: 42,
        }
    }
}

impl MlpParams {
    /// Reads and validates the parameters.
    pub fn from_map(mut p: ParamMap, seed: u64) -> Result<Self> {
        let d = Self::default();
        let solver = match p.take_string("solver", "l-bfgs").as_str() {
            "l-bfgs" | "lbfgs" => MlpSolver::LBfgs,
            "gd" => MlpSolver::Gd,
            other => return Err(invalid("solver", other, "l-bfgs or gd")),
        };
        let precision = match p.take_string("precision", "f64").as_str() {
            "f64" => MlpPrecision::F64,
            "f32" => MlpPrecision::F32,
            other => return Err(invalid("precision", other, "f64 (MLlib's arithmetic) or f32")),
        };
        let out = Self {
            hidden: p.take_usize_list("hidden")?.unwrap_or(d.hidden),
            max_iter: p.take_usize("max_iter", d.max_iter)?,
            tol: p.take_f64("tol", d.tol)?,
            solver,
            step_size: p.take_f64("step_size", d.step_size)?,
            block_size: p.take_usize("block_size", d.block_size)?,
            precision,
            seed,
        };
        p.finish(ModelKind::Mlp)?;
        if out.hidden.contains(&0) {
            return Err(invalid("hidden", format!("{:?}", out.hidden), "layer sizes of at least 1"));
        }
        if out.max_iter == 0 {
            return Err(invalid("max_iter", 0, "at least 1"));
        }
        if !(out.step_size > 0.0 && out.step_size.is_finite()) {
            return Err(invalid("step_size", out.step_size, "> 0"));
        }
        if out.block_size == 0 {
            return Err(invalid("block_size", 0, "at least 1"));
        }
        if out.tol.is_nan() || out.tol < 0.0 {
            return Err(invalid("tol", out.tol, ">= 0"));
        }
        Ok(out)
    }

    /// Layer sizes, input to output.
    pub fn layers(&self, inputs: usize, classes: usize) -> Vec<usize> {
        let mut l = vec![inputs];
        l.extend(&self.hidden);
        l.push(classes);
        l
    }

    /// Refuses networks beyond [`MAX_MLP_WEIGHTS`] before any memory is taken.
    pub fn check_size(&self, inputs: usize, classes: usize) -> Result<usize> {
        let layers = self.layers(inputs, classes);
        let mut weights: usize = 0;
        for w in layers.windows(2) {
            let layer = w[0].checked_mul(w[1]).and_then(|x| x.checked_add(w[1]));
            weights = layer.and_then(|l| weights.checked_add(l)).unwrap_or(usize::MAX);
        }
        if weights > MAX_MLP_WEIGHTS {
            return Err(invalid(
                "hidden",
                format!("{:?}", self.hidden),
                &format!(
                    "a network of at most {MAX_MLP_WEIGHTS} weights; layers {layers:?} need {weights} (about {:.1} GB for L-BFGS)",
                    weights as f64 * BYTES_PER_WEIGHT as f64 / 1e9
                ),
            ));
        }
        Ok(weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_mllibs_and_bad_values_are_refused() {
        let lr = LrParams::from_map(ParamMap::new()).unwrap();
        assert_eq!((lr.max_iter, lr.tol, lr.reg_param, lr.elastic_net_param), (100, 1e-6, 0.0, 0.0));
        assert!(lr.fit_intercept && lr.standardization);
        let tree = TreeParams::from_map(ParamMap::new(), 1).unwrap();
        assert_eq!((tree.max_depth, tree.max_bins, tree.min_instances_per_node), (5, 32, 1));
        let mlp = MlpParams::from_map(ParamMap::new(), 1).unwrap();
        assert_eq!((mlp.max_iter, mlp.block_size, mlp.step_size, mlp.solver), (100, 128, 0.03, MlpSolver::LBfgs));
        assert_eq!(mlp.precision, MlpPrecision::F64);
        let f32 = MlpParams::from_map(ParamMap::new().with("precision", "f32"), 1).unwrap();
        assert_eq!(f32.precision, MlpPrecision::F32);
        assert!(MlpParams::from_map(ParamMap::new().with("precision", "bf16"), 1).is_err());
        assert!(LrParams::from_map(ParamMap::new().with("elastic_net_param", 2)).is_err());
        assert!(TreeParams::from_map(ParamMap::new().with("impurity", "variance"), 1).is_err());
        assert!(TreeParams::from_map(ParamMap::new().with("max_depth", 31), 1).is_err());
        let err = LrParams::from_map(ParamMap::new().with("max_depth", 3)).unwrap_err().to_string();
        assert!(err.contains("no such parameter for model 'lr'"), "{err}");
    }

    #[test]
    fn absurd_networks_are_refused_before_allocation() {
        let huge = MlpParams::from_map(ParamMap::new().with("hidden", "10000000"), 1).unwrap();
        let err = huge.check_size(28, 2).unwrap_err().to_string();
        assert!(err.contains("at most 10000000 weights"), "{err}");
        assert_eq!(MlpParams::default().check_size(28, 2).unwrap(), 28 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2);
    }
}
