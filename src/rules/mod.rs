//! Pure rules: no pgrx here (plain `cargo test`, and `build.rs` compiles this folder too). Every
//! rule that can be wrong in a subtle way lives here: the one error type, tenant names, templates,
//! the migration set and its SQL text, enum values across transactions, the schema diff, the
//! timing of lock waits (`lock_wait`), which native foreign keys of a tenant migration become shared
//! references (`shared_fk`), and the fleet worker's start-up argument.

pub mod enum_values;
pub mod error;
pub mod lock_wait;
pub mod migration_set;
pub mod names;
pub mod schema_diff;
pub mod shared_fk;
pub mod snapshot;
pub mod sqltext;
pub mod template;
pub mod worker_extra;

/// Build-only: `build.rs` loads `tenant_migrations/` with it; the extension never reads files.
#[cfg(test)]
pub mod migration_dir;

#[cfg(test)]
mod fuzz;
