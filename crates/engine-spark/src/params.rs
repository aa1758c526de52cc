//! Model parameters: one struct per model, its `Default` MLlib's defaults, each field named after
//! its MLlib param (in snake case); read from [`Params`] with unknown names refused, then
//! checked. The seed is not a parameter: it comes with the run ([`trainbench_engine::RunContext`]).

use serde::{Deserialize, Serialize};
use trainbench_engine::params::usize_list;
use trainbench_engine::{Error, ModelKind, Params, Precision, Result};

/// Largest number of weights an MLP may have: L-BFGS keeps about 25 vectors of the weights'
/// size (history of 10 pairs, gradient, direction, line search), so 10⁷ weights already take
/// about 2 GB.
pub const MAX_MLP_WEIGHTS: usize = 10_000_000;

/// Bytes the optimizer holds per weight (about 25 f64 vectors of the weights' size).
pub const BYTES_PER_WEIGHT: usize = 25 * 8;

fn invalid(name: &str, value: impl std::fmt::Display, expected: &str) -> Error {
    Error::InvalidParam { name: name.to_owned(), value: value.to_string(), expected: expected.to_owned() }
}

/// LogisticRegression's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// Reads and checks the parameters.
    pub fn from_params(p: &Params) -> Result<Self> {
        let out: Self = p.read(ModelKind::Lr)?;
        out.check()?;
        Ok(out)
    }

    /// Refuses values MLlib refuses.
    pub fn check(&self) -> Result<()> {
        if self.max_iter == 0 {
            return Err(invalid("max_iter", self.max_iter, "at least 1"));
        }
        if self.tol.is_nan() || self.tol < 0.0 {
            return Err(invalid("tol", self.tol, ">= 0"));
        }
        if !(self.reg_param >= 0.0 && self.reg_param.is_finite()) {
            return Err(invalid("reg_param", self.reg_param, ">= 0"));
        }
        if !(0.0..=1.0).contains(&self.elastic_net_param) {
            return Err(invalid("elastic_net_param", self.elastic_net_param, "between 0 and 1"));
        }
        Ok(())
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

impl Impurity {
    /// The names, as the command line writes them.
    pub const NAMES: &'static [&'static str] = &["gini", "entropy"];
}

impl std::str::FromStr for Impurity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gini" => Ok(Self::Gini),
            "entropy" => Ok(Self::Entropy),
            other => Err(invalid("impurity", other, "gini or entropy")),
        }
    }
}

/// DecisionTreeClassifier's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
}

impl Default for TreeParams {
    fn default() -> Self {
        Self { max_depth: 5, max_bins: 32, min_instances_per_node: 1, min_info_gain: 0.0, impurity: Impurity::Gini }
    }
}

impl TreeParams {
    /// Reads and checks the parameters.
    pub fn from_params(p: &Params) -> Result<Self> {
        let out: Self = p.read(ModelKind::Tree)?;
        out.check()?;
        Ok(out)
    }

    /// Refuses values MLlib refuses.
    pub fn check(&self) -> Result<()> {
        if self.max_depth > 30 {
            return Err(invalid("max_depth", self.max_depth, "at most 30 (as MLlib)"));
        }
        if !(2..=256).contains(&self.max_bins) {
            return Err(invalid("max_bins", self.max_bins, "between 2 and 256"));
        }
        if self.min_instances_per_node == 0 {
            return Err(invalid("min_instances_per_node", 0, "at least 1"));
        }
        if self.min_info_gain.is_nan() || self.min_info_gain < 0.0 {
            return Err(invalid("min_info_gain", self.min_info_gain, ">= 0"));
        }
        Ok(())
    }
}

/// The MLP's optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MlpSolver {
    /// L-BFGS over the full data each iteration.
    #[serde(rename = "l-bfgs", alias = "lbfgs")]
    LBfgs,
    /// Full-batch gradient descent with step `step_size / √iteration`.
    #[serde(rename = "gd")]
    Gd,
}

impl MlpSolver {
    /// The names, as the command line writes them.
    pub const NAMES: &'static [&'static str] = &["l-bfgs", "gd"];
}

impl std::str::FromStr for MlpSolver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "l-bfgs" | "lbfgs" => Ok(Self::LBfgs),
            "gd" => Ok(Self::Gd),
            other => Err(invalid("solver", other, "l-bfgs or gd")),
        }
    }
}

/// MultilayerPerceptronClassifier's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpParams {
    /// `layers` between input and output (the input and output sizes come from the data).
    /// MLlib requires the full list; trainbench's default hidden layers are [64, 64].
    #[serde(deserialize_with = "usize_list")]
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
    /// Arithmetic, f64 or f32 (not an MLlib param: MLlib computes in f64). Default f64.
    pub precision: Precision,
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
            precision: Precision::F64,
        }
    }
}

impl MlpParams {
    /// Reads and checks the parameters.
    pub fn from_params(p: &Params) -> Result<Self> {
        let out: Self = p.read(ModelKind::Mlp)?;
        out.check()?;
        Ok(out)
    }

    /// Refuses values MLlib refuses, and arithmetic the MLP does not have.
    pub fn check(&self) -> Result<()> {
        if self.hidden.contains(&0) {
            return Err(invalid("hidden", format!("{:?}", self.hidden), "layer sizes of at least 1"));
        }
        if self.max_iter == 0 {
            return Err(invalid("max_iter", 0, "at least 1"));
        }
        if !(self.step_size > 0.0 && self.step_size.is_finite()) {
            return Err(invalid("step_size", self.step_size, "> 0"));
        }
        if self.block_size == 0 {
            return Err(invalid("block_size", 0, "at least 1"));
        }
        if self.tol.is_nan() || self.tol < 0.0 {
            return Err(invalid("tol", self.tol, ">= 0"));
        }
        if !matches!(self.precision, Precision::F64 | Precision::F32) {
            return Err(invalid("precision", self.precision, "f64 (MLlib's arithmetic) or f32"));
        }
        Ok(())
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
        let lr = LrParams::from_params(&Params::new()).unwrap();
        assert_eq!((lr.max_iter, lr.tol, lr.reg_param, lr.elastic_net_param), (100, 1e-6, 0.0, 0.0));
        assert!(lr.fit_intercept && lr.standardization);
        let tree = TreeParams::from_params(&Params::new()).unwrap();
        assert_eq!((tree.max_depth, tree.max_bins, tree.min_instances_per_node), (5, 32, 1));
        let mlp = MlpParams::from_params(&Params::new()).unwrap();
        assert_eq!((mlp.max_iter, mlp.block_size, mlp.step_size, mlp.solver), (100, 128, 0.03, MlpSolver::LBfgs));
        assert_eq!(mlp.precision, Precision::F64);
        let f32 = MlpParams::from_params(&Params::new().with("precision", "f32")).unwrap();
        assert_eq!(f32.precision, Precision::F32);
        let err = MlpParams::from_params(&Params::new().with("precision", "bf16")).unwrap_err().to_string();
        assert_eq!(err, "invalid parameter precision = bf16: f64 (MLlib's arithmetic) or f32");
        assert!(MlpParams::from_params(&Params::new().with("solver", "lbfgs")).is_ok());
        assert!(LrParams::from_params(&Params::new().with("elastic_net_param", 2)).is_err());
        let err = TreeParams::from_params(&Params::new().with("impurity", "variance")).unwrap_err().to_string();
        assert!(err.contains("impurity = variance") && err.contains("gini") && err.contains("entropy"), "{err}");
        assert!(TreeParams::from_params(&Params::new().with("max_depth", 31)).is_err());
        let err = LrParams::from_params(&Params::new().with("max_depth", 3)).unwrap_err().to_string();
        assert!(err.contains("no such parameter for model 'lr'"), "{err}");
    }

    #[test]
    fn absurd_networks_are_refused_before_allocation() {
        let huge = MlpParams::from_params(&Params::new().with("hidden", "10000000")).unwrap();
        let err = huge.check_size(28, 2).unwrap_err().to_string();
        assert!(err.contains("at most 10000000 weights"), "{err}");
        assert_eq!(MlpParams::default().check_size(28, 2).unwrap(), 28 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2);
    }
}
