//! The in-database test suite (`cargo pgrx test`), one file per feature. Each test runs inside one
//! transaction that is rolled back. Errors are caught in a PL/pgSQL sub-transaction
//! (`pg_temp.try_sql`, see `support`) so a test can assert the SQLSTATE, message and hint, and then
//! check that nothing was left behind.
//!
//! Run one feature's tests alone by its name prefix, e.g.
//! `cargo pgrx test pg15 in_db::managed` (see docs/development.md).

mod support;
mod trust_support;

mod adversarial;
mod attribute;
mod citus;
mod fleet;
mod generator;
mod hardening;
mod hygiene;
mod inputs;
mod lifecycle;
mod locks;
mod managed;
mod managed_ddl;
mod migrations;
mod names;
mod relink;
mod renames;
mod shared;
mod shared_fk;
mod snapshot;
mod transactions;
mod trust;
mod withdraw;
