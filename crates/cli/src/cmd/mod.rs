//! One module per subcommand.

pub mod cluster;
pub mod compare;
pub mod generate;
pub mod inspect;
pub mod predict;
pub mod prepare;
pub mod runner;
pub mod study;
pub mod train;
pub mod tune;
pub mod windows;
