//! One module per subcommand. They share the flag groups of `args`, build engines through
//! `engines`, run fits through `runner` and record them as `results`; they do not import each
//! other, except `run` (a declared study), which runs `compare` or `scale`.

pub mod compare;
pub mod export;
pub mod generate;
pub mod inspect;
pub mod predict;
pub mod prepare;
pub mod study;
pub mod train;
pub mod tune;
pub mod windows;
