//! Background workers.

pub mod fleet;
