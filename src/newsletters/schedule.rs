//! Newsletter schedules: parsed with the configuration (see `config::schedule`), so
//! `herald check` and `herald run` read the same validated value.

pub use crate::config::schedule::*;
