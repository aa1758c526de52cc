pub mod sklearn_values;
pub mod spark_values;
