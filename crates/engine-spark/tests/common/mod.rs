pub mod sklearn_values;
