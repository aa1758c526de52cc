//! Model parameters on their way to an engine.
//!
//! Each engine's models have one parameter struct each (serde `default` with the upstream
//! library's defaults, `deny_unknown_fields`, and a `check` that validates values, as linfa's
//! `ParamGuard` does). What travels from the command line, a study file or a tuning grid to the
//! engine is [`Params`]: names and typed values (numbers, booleans, text, lists), which
//! [`Params::read`] turns into the model's struct, naming the parameter in every error. Typed
//! flags serialize straight into it; [`ParamMap`] is the adapter for parameters written as text
//! (`--param NAME=VALUE`, `--grid`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, ModelKind, Result};

/// Model parameters by name, with typed values (JSON's: numbers, booleans, strings, lists).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// No parameters: every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &str, value: impl Serialize) {
        self.0.insert(name.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Every parameter of `other` set here too (`other` wins).
    pub fn merge(&mut self, other: &Params) {
        self.0.extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// Names and values as text, for tables and the report (`hidden` → `64,64`).
    pub fn as_text(&self) -> BTreeMap<String, String> {
        self.0.iter().map(|(k, v)| (k.clone(), show(v))).collect()
    }

    /// Reads the parameters into `model`'s struct `T`. A name `T` does not have is an error that
    /// names it and the model; a value of the wrong type names the parameter and what it takes.
    pub fn read<T: DeserializeOwned + Serialize + Default>(&self, model: ModelKind) -> Result<T> {
        let known = match serde_json::to_value(T::default()) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        for (name, value) in &self.0 {
            if !known.contains_key(name) {
                return Err(Error::InvalidParam {
                    name: name.clone(),
                    value: show(value),
                    expected: format!("no such parameter for model '{}'", model.name()),
                });
            }
            // One at a time, so serde's complaint is about this parameter.
            let one = Map::from_iter([(name.clone(), value.clone())]);
            serde_json::from_value::<T>(Value::Object(one)).map_err(|e| Error::InvalidParam {
                name: name.clone(),
                value: show(value),
                expected: e.to_string(),
            })?;
        }
        serde_json::from_value(Value::Object(self.0.clone())).map_err(|e| Error::InvalidParam {
            name: "parameters".into(),
            value: show(&Value::Object(self.0.clone())),
            expected: e.to_string(),
        })
    }
}

/// A value as a user would write it: strings bare, lists comma-separated.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Parameters written as text, `NAME=VALUE`, like Spark's ParamMap: the adapter for `--param`
/// and tuning grids. [`ParamMap::to_params`] reads each value as what it looks like: `true` /
/// `false`, a whole number, a number, or else the text itself (so `64,64` stays text, which a
/// list parameter reads as a list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamMap(pub BTreeMap<String, String>);

impl ParamMap {
    /// The typed parameters.
    pub fn to_params(&self) -> Params {
        Params(self.0.iter().map(|(k, v)| (k.clone(), text_value(v.trim()))).collect())
    }
}

/// What a parameter written as text stands for.
pub fn text_value(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => text
            .parse::<u64>()
            .map(Value::from)
            .or_else(|_| text.parse::<i64>().map(Value::from))
            .ok()
            .or_else(|| text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::from))
            .unwrap_or_else(|| Value::String(text.to_owned())),
    }
}

/// Deserializes a list of sizes from a list (`[64, 64]`), one number (`64`) or text (`"64,64"`),
/// the ways a command line, a study file and a grid write it.
pub fn usize_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<usize>, D::Error> {
    struct Sizes;
    impl<'de> Visitor<'de> for Sizes {
        type Value = Vec<usize>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("comma-separated whole numbers, e.g. 64,64")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
            Ok(vec![v as usize])
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
            v.split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<usize>()? {
                out.push(v);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Sizes)
}

/// Like [`usize_list`], for an optional list.
pub fn usize_list_opt<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Vec<usize>>, D::Error> {
    usize_list(d).map(Some)
}

/// The arithmetic of a fit's forward and backward passes; each engine takes the ones it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f64, as MLlib computes (the spark engine's MLP by default).
    F64,
    /// f32 (the tensor engine's default; the spark MLP's faster option).
    F32,
    /// Mixed bfloat16: weights kept in f32, layers computed in bfloat16 (Keras's
    /// `mixed_bfloat16`).
    Bf16,
    /// Mixed float16 (Keras's `mixed_float16`).
    F16,
}

impl Precision {
    /// The names, as the command line writes them.
    pub const NAMES: &'static [&'static str] = &["f64", "f32", "bf16", "f16"];

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "f64",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::NAMES.iter().position(|n| *n == s).map(|i| [Self::F64, Self::F32, Self::Bf16, Self::F16][i]).ok_or_else(
            || Error::InvalidParam { name: "precision".into(), value: s.into(), expected: Self::NAMES.join(", ") },
        )
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Example {
        max_iter: usize,
        tol: f64,
        fit_intercept: bool,
        #[serde(deserialize_with = "usize_list")]
        hidden: Vec<usize>,
        solver: String,
    }

    impl Default for Example {
        fn default() -> Self {
            Self { max_iter: 100, tol: 1e-6, fit_intercept: true, hidden: vec![64, 64], solver: "l-bfgs".into() }
        }
    }

    #[test]
    fn typed_and_text_parameters_read_into_the_struct() {
        let typed = Params::new().with("max_iter", 50).with("hidden", [8, 4]).read::<Example>(ModelKind::Mlp).unwrap();
        assert_eq!((typed.max_iter, typed.hidden.as_slice(), typed.tol), (50, &[8, 4][..], 1e-6));
        let text = ParamMap(BTreeMap::from([
            ("tol".to_owned(), "1e-4".to_owned()),
            ("hidden".to_owned(), "32,16".to_owned()),
            ("fit_intercept".to_owned(), "false".to_owned()),
            ("solver".to_owned(), "gd".to_owned()),
        ]));
        let from_text = text.to_params().read::<Example>(ModelKind::Mlp).unwrap();
        assert_eq!(
            from_text,
            Example { max_iter: 100, tol: 1e-4, fit_intercept: false, hidden: vec![32, 16], solver: "gd".into() }
        );
        // A single size is a list of one; whole numbers are read as numbers where one is wanted.
        let one = ParamMap(BTreeMap::from([("hidden".to_owned(), "12".to_owned())])).to_params();
        assert_eq!(one.read::<Example>(ModelKind::Mlp).unwrap().hidden, [12]);
        let tol = Params::new().with("tol", 1).read::<Example>(ModelKind::Mlp).unwrap();
        assert_eq!(tol.tol, 1.0);
    }

    #[test]
    fn errors_name_the_parameter_and_the_model() {
        let err = Params::new().with("max_depth", 3).read::<Example>(ModelKind::Lr).unwrap_err().to_string();
        assert_eq!(err, "invalid parameter max_depth = 3: no such parameter for model 'lr'");
        let err = Params::new().with("hidden", "64,x").read::<Example>(ModelKind::Mlp).unwrap_err().to_string();
        assert!(err.starts_with("invalid parameter hidden = 64,x: ") && err.contains("comma-separated"), "{err}");
        let err = Params::new().with("fit_intercept", "yes").read::<Example>(ModelKind::Lr).unwrap_err().to_string();
        assert!(err.starts_with("invalid parameter fit_intercept = yes: ") && err.contains("boolean"), "{err}");
        let err = Params::new().with("max_iter", -3).read::<Example>(ModelKind::Lr).unwrap_err().to_string();
        assert!(err.starts_with("invalid parameter max_iter = -3: "), "{err}");
    }

    #[test]
    fn precision_names_round_trip() {
        for name in Precision::NAMES {
            assert_eq!(name.parse::<Precision>().unwrap().name(), *name);
        }
        assert!("f8".parse::<Precision>().unwrap_err().to_string().contains("f64, f32, bf16, f16"));
    }
}
