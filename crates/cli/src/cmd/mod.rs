//! One module per subcommand.

pub mod generate;
pub mod inspect;
pub mod predict;
pub mod prepare;
pub mod train;
