//! The names options are written with on a command line and in a study file (`minmax`,
//! `one-hot`, `most-frequent`, ...): `NAMES` lists them (for `--help`) and `FromStr` reads them.

use std::str::FromStr;

use crate::{Encoding, InvalidRowPolicy, MissingPolicy, Scaling, UnseenPolicy};

macro_rules! named {
    ($ty:ty { $($name:literal => $value:expr),+ $(,)? }) => {
        impl $ty {
            /// The names, as a command line writes them.
            pub const NAMES: &'static [&'static str] = &[$($name),+];
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($value),)+
                    other => Err(format!("'{other}' is not one of {}", Self::NAMES.join(", "))),
                }
            }
        }
    };
}

named!(Scaling { "standard" => Scaling::Standard, "minmax" => Scaling::MinMax, "none" => Scaling::None });
named!(Encoding { "one-hot" => Encoding::OneHot, "index" => Encoding::Index });
named!(UnseenPolicy { "error" => UnseenPolicy::Error, "ignore" => UnseenPolicy::Ignore });
named!(InvalidRowPolicy { "quarantine" => InvalidRowPolicy::Quarantine, "fail" => InvalidRowPolicy::Fail });

impl MissingPolicy {
    /// The names, as a command line writes them (`constant:VALUE` with a value).
    pub const NAMES: &'static [&'static str] = &["drop", "mean", "median", "most-frequent", "constant:VALUE"];
}

impl FromStr for MissingPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drop" => Ok(MissingPolicy::Drop),
            "mean" => Ok(MissingPolicy::Mean),
            "median" => Ok(MissingPolicy::Median),
            "most-frequent" => Ok(MissingPolicy::MostFrequent),
            other => match other.strip_prefix("constant:") {
                Some(v) => Ok(MissingPolicy::Constant(v.to_owned())),
                None => Err(format!("'{other}' is not one of drop, mean, median, most-frequent or constant:VALUE")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_their_command_line_names() {
        assert_eq!("minmax".parse::<Scaling>().unwrap(), Scaling::MinMax);
        assert_eq!("one-hot".parse::<Encoding>().unwrap(), Encoding::OneHot);
        assert_eq!("constant:0".parse::<MissingPolicy>().unwrap(), MissingPolicy::Constant("0".into()));
        assert_eq!("most-frequent".parse::<MissingPolicy>().unwrap(), MissingPolicy::MostFrequent);
        assert_eq!("min_max".parse::<Scaling>().unwrap_err(), "'min_max' is not one of standard, minmax, none");
        for name in InvalidRowPolicy::NAMES.iter().chain(UnseenPolicy::NAMES) {
            assert!(name.parse::<InvalidRowPolicy>().is_ok() || name.parse::<UnseenPolicy>().is_ok());
        }
    }
}
