//! The SQL-facing API: each module holds the `#[pg_extern]` functions of one feature; the SQL
//! wrappers, views and the COMMIT-ing procedure are in `sql/*.sql`.

pub mod args;
pub mod attribute;
pub mod citus;
pub mod compat;
pub mod fleet;
pub mod generator;
pub mod lifecycle;
pub mod managed;
pub mod migrations;
pub mod relink;
pub mod shared;
pub mod snapshot;
