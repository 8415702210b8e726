//! The SQL functions that manage the migration set: `add_migration`, `repair`, and the helpers
//! behind the `tenancy.migrations` view and the benchmarks.

use std::cmp::Ordering;

use pgrx::prelude::*;

use crate::api::args::required;
use crate::db::known_set::{embedded, known_versions};
use crate::db::registry;
use crate::db::report::{raise, OrRaise};
use crate::rules::migration_set::{self, clash, cmp_versions, find, Migration};
use crate::rules::sqltext;

/// The embedded set without its text, for the `tenancy.migrations` view (PUBLIC may read it).
#[pg_extern(stable, parallel_safe, name = "_embedded_checksums")]
#[search_path(pg_catalog, pg_temp)]
fn embedded_checksums() -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(name, String),
        name!(checksum, String),
    ),
> {
    TableIterator::new(
        embedded()
            .into_iter()
            .map(|m| (m.version, m.name, m.checksum)),
    )
}

/// The embedded set with its text (for authoring roles, not PUBLIC).
#[pg_extern(stable, parallel_safe, name = "_embedded_migrations")]
#[search_path(pg_catalog, pg_temp)]
fn embedded_migrations() -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(name, String),
        name!(checksum, String),
        name!(sql, String),
    ),
> {
    TableIterator::new(
        embedded()
            .into_iter()
            .map(|m| (m.version, m.name, m.checksum, m.sql)),
    )
}

/// Stores a migration in the database. Same version and same text again: a no-op.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn add_migration(version: Option<&str>, name: Option<&str>, sql: Option<&str>) -> String {
    let example = "tenancy.add_migration('0006', 'add_invoices', 'CREATE TABLE invoices (id bigint PRIMARY KEY)')";
    let version = required(version, "add_migration", "version", example);
    let name = required(name, "add_migration", "name", example);
    let sql = required(sql, "add_migration", "sql", example);
    migration_set::check_new_version(version).or_raise();
    migration_set::check_name(version, name).or_raise();
    // The author is the role whose rights are in effect now: its text will only ever run as a
    // tenant owner whose privileges it has (see apply::check_authors).
    let new = Migration {
        author: Some(crate::db::catalog::current_user_name()),
        ..Migration::new(version, name, sql)
    };
    sqltext::check_migration(&new.label(), sql).or_raise();
    let known = known_versions();
    if let Some(existing) = known
        .iter()
        .find(|m| cmp_versions(&m.version, version) == Ordering::Equal)
    {
        if existing.checksum == new.checksum && existing.name == new.name {
            return existing.label();
        }
        let source = if embedded().iter().any(|e| e.version == existing.version) {
            "embedded"
        } else {
            "registered"
        };
        raise(clash(existing, source, &new));
    }
    registry::insert_registered(&new);
    new.label()
}

/// Accepts the current text of `version` as applied: ledger rows with another checksum take the
/// current one. Returns how many ledger rows changed. Nothing is re-run.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn repair(version: Option<&str>) -> i64 {
    let version = required(version, "repair", "version", "tenancy.repair('0003')");
    let known = known_versions();
    let m = find(&known, version).or_raise();
    registry::repair(&m.version, &m.checksum)
}

/// The statements pg_tenancy would run for a migration text, with `@tenant@` substituted for
/// `schema`: what the benchmarks send raw, so both sides run the very same statements.
#[pg_extern(immutable, parallel_safe, name = "_split_statements")]
#[search_path(pg_catalog, pg_temp)]
fn split_statements(sql: Option<&str>, schema: Option<&str>) -> SetOfIterator<'static, String> {
    let example = "tenancy._split_statements('CREATE TABLE t (id int)', 'org_1')";
    let sql = required(sql, "_split_statements", "sql", example);
    let schema = required(schema, "_split_statements", "schema", example);
    let stmts = sqltext::split_statements(sql).or_raise();
    SetOfIterator::new(
        stmts
            .into_iter()
            .map(|s| sqltext::substitute_tenant(&s.text, schema).or_raise())
            .collect::<Vec<_>>(),
    )
}
