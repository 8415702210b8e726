//! The migration set as the database sees it: the embedded set (compiled from
//! `tenant_migrations/`) plus the registered set (`tenancy.add_migration`), and the SQL functions
//! that manage it.

use std::cmp::Ordering;

use pgrx::prelude::*;

use crate::error::{Result, SqlState, TenancyError};
use crate::migration_set::{self, cmp_versions, Migration};
use crate::registry;
use crate::report::{raise, OrRaise};
use crate::sqltext;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));
}

pub fn embedded() -> Vec<Migration> {
    embedded::EMBEDDED
        .iter()
        .map(|(version, name, checksum, sql)| Migration {
            version: version.to_string(),
            name: name.to_string(),
            checksum: checksum.to_string(),
            sql: sql.to_string(),
        })
        .collect()
}

fn clash(existing: &Migration, source: &str, new: &Migration) -> TenancyError {
    TenancyError::new(
        SqlState::DuplicateObject,
        format!(
            "migration version {} is already taken by {} migration {} with different content (checksum {}, new checksum {})",
            new.version,
            source,
            existing.label(),
            existing.checksum,
            new.checksum
        ),
    )
    .hint("Give the new migration a version number of its own; tenancy.migrations lists the versions in use.")
}

/// Embedded ∪ registered, in apply order. The same version with the same text in both counts once;
/// with different text it is refused.
pub fn merge(embedded: Vec<Migration>, registered: Vec<Migration>) -> Result<Vec<Migration>> {
    let mut all = embedded;
    for r in registered {
        match all
            .iter()
            .find(|m| cmp_versions(&m.version, &r.version) == Ordering::Equal)
        {
            Some(m) if m.checksum == r.checksum => {}
            Some(m) => return Err(clash(m, "embedded", &r)),
            None => all.push(r),
        }
    }
    migration_set::order(all)
}

pub fn known_set() -> Vec<Migration> {
    merge(embedded(), registry::registered_migrations(true)).or_raise()
}

/// The known set without the text of registered migrations: enough to compute what is pending
/// (versions and checksums). [`load_text`] then reads the text of just the pending ones.
pub fn known_versions() -> Vec<Migration> {
    merge(embedded(), registry::registered_migrations(false)).or_raise()
}

/// Fills in the text of registered migrations read by [`known_versions`].
pub fn load_text(todo: &mut [Migration]) {
    let missing: Vec<String> = todo
        .iter()
        .filter(|m| m.sql.is_empty())
        .map(|m| m.version.clone())
        .collect();
    if missing.is_empty() {
        return;
    }
    for (version, sql) in registry::registered_sql(&missing) {
        if let Some(m) = todo.iter_mut().find(|m| m.version == version) {
            m.sql = sql;
        }
    }
}

/// The known migration with this version (numerically: `3` finds `0003`).
pub fn find<'a>(known: &'a [Migration], version: &str) -> Result<&'a Migration> {
    migration_set::check_version(version)?;
    known
        .iter()
        .find(|m| cmp_versions(&m.version, version) == Ordering::Equal)
        .ok_or_else(|| {
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("migration version {version} is not a known tenant migration"),
            )
            .hint("SELECT * FROM tenancy.migrations lists the known versions.")
        })
}

/// The embedded set, for the `tenancy.migrations` view.
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
    let (Some(version), Some(name), Some(sql)) = (version, name, sql) else {
        raise(
            TenancyError::new(SqlState::NullValueNotAllowed, "tenancy.add_migration: version, name and sql must not be NULL")
                .hint("Call tenancy.add_migration('0006', 'add_invoices', 'CREATE TABLE invoices (...)')."),
        )
    };
    migration_set::check_version(version).or_raise();
    migration_set::check_name(version, name).or_raise();
    let new = Migration::new(version, name, sql);
    sqltext::check_migration(&new.label(), sql).or_raise();
    let known = known_set();
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
    let Some(version) = version else {
        raise(
            TenancyError::new(
                SqlState::NullValueNotAllowed,
                "tenancy.repair: version must not be NULL",
            )
            .hint(
                "Pass the version named in the checksum error, e.g. SELECT tenancy.repair('0003').",
            ),
        )
    };
    let known = known_set();
    let m = find(&known, version).or_raise();
    registry::repair(&m.version, &m.checksum)
}

/// The statements pg_tenancy would run for a migration text, with `@tenant@` substituted for
/// `schema`: what the benchmarks send raw, so both sides run the very same statements.
#[pg_extern(immutable, parallel_safe, name = "_split_statements")]
#[search_path(pg_catalog, pg_temp)]
fn split_statements(sql: &str, schema: &str) -> SetOfIterator<'static, String> {
    let stmts = sqltext::split_statements(sql).or_raise();
    SetOfIterator::new(
        stmts
            .into_iter()
            .map(|s| sqltext::substitute_tenant(&s.text, schema).or_raise())
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in set is the folder named by TENANCY_MIGRATIONS_DIR (default
    /// tenant_migrations/), read again here with the same loader.
    #[test]
    fn embedded_set_is_the_configured_folder() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = match std::env::var("TENANCY_MIGRATIONS_DIR") {
            Ok(d) if !d.is_empty() => root.join(d),
            _ => root.join("tenant_migrations"),
        };
        let folder = migration_set::load_dir(&dir).unwrap();
        assert_eq!(
            embedded(),
            folder,
            "embedded set differs from {}",
            dir.display()
        );
    }

    #[test]
    fn merge_dedupes_identical_and_refuses_clashes() {
        let e = vec![Migration::new("0001", "a", "select 1")];
        let same = vec![Migration::new("1", "a", "select 1")];
        assert_eq!(merge(e.clone(), same).unwrap().len(), 1);
        let other = vec![Migration::new("0001", "a", "select 2")];
        let err = merge(e.clone(), other).unwrap_err();
        assert_eq!(err.state, SqlState::DuplicateObject);
        assert!(err.message.contains("0001_a"));
        let later = vec![Migration::new("0002", "b", "select 2")];
        let all = merge(e, later).unwrap();
        assert_eq!(
            all.iter().map(|m| m.version.as_str()).collect::<Vec<_>>(),
            vec!["0001", "0002"]
        );
    }
}
