//! The SQL functions that manage the migration set: `add_migration`, `remove_migration`,
//! `repair`, and the helpers behind the `tenancy.migrations` view and the benchmarks.

use std::cmp::Ordering;

use pgrx::prelude::*;

use crate::api::args::required;
use crate::db::known_set::{embedded, known_versions};
use crate::db::report::{raise, OrRaise};
use crate::db::{catalog, detached, identity, registry};
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::migration_set::{self, clash, cmp_versions, find, Migration};
use crate::rules::names::quote_ident;
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
    crate::snapshot::rebuild_after_change();
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

/// How many tenants' names a refusal lists.
const LISTED: i64 = 5;

/// Withdraws a registered migration that no tenant has applied: its row is deleted, and recorded
/// fleet failures that name it are cleared. Refused for embedded migrations, for migrations some
/// tenant has applied (listing them), and for callers without the privileges of its author.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn remove_migration(version: Option<&str>) -> String {
    let version = required(
        version,
        "remove_migration",
        "version",
        "tenancy.remove_migration('0006')",
    );
    migration_set::check_version(version).or_raise();
    refuse_transaction_snapshot(version);
    // Not through the merged set: a registered migration that clashes with an embedded one (which
    // refuses every migration call) is what this function is for, too.
    let same = |m: &&Migration| cmp_versions(&m.version, version) == Ordering::Equal;
    let built_in = embedded();
    let built_in = built_in.iter().find(same);
    let registered = registry::registered_migrations(false);
    let Some(m) = registered.iter().find(same) else {
        match built_in {
            Some(e) => raise(embedded_refusal(e)),
            None => raise(
                TenancyError::new(
                    SqlState::UndefinedObject,
                    format!("migration version {version} is not a registered tenant migration"),
                )
                .hint("SELECT * FROM tenancy.migrations lists the known versions; only those with source 'registered' can be removed."),
            ),
        }
    };
    if let Some(e) = built_in.filter(|e| e.checksum == m.checksum) {
        raise(embedded_refusal(e));
    }
    require_author_rights(m);
    // Locking and deleting first waits for runs applying it (they hold its lock or its row, see
    // registry::registered_sql) and for sign-ups built from the snapshot, which record every
    // migration without reading (so locking) it; the ledger is read afterwards, so their commits
    // are seen. A refusal rolls the delete back.
    crate::db::snapshot::lock_for_removal(&m.label(), &m.version);
    registry::delete_registered(&m.version);
    let (count, first) =
        registry::tenants_with(&m.version, built_in.map(|e| e.checksum.as_str()), LISTED);
    if count > 0 {
        let names: Vec<String> = first.iter().map(|n| quote_ident(n)).collect();
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!(
                    "migration {} cannot be removed: {count} tenant{} applied it ({}{})",
                    m.label(),
                    if count == 1 { " has" } else { "s have" },
                    names.join(", "),
                    if count > LISTED { ", …" } else { "" }
                ),
            )
            .detail(format!(
                "SELECT schema_name FROM tenancy.ledger WHERE version = '{}' lists them all.",
                m.version
            ))
            .hint("A migration a tenant has applied stays: supersede it with a corrective migration of a later version instead (docs/migrations.md, \"Withdrawing or superseding a migration\")."),
        );
    }
    refuse_kept_ledgers(m);
    registry::clear_errors_naming(&m.label());
    crate::snapshot::rebuild_after_change();
    m.label()
}

/// Refuses (0A000) to remove a migration at REPEATABLE READ or SERIALIZABLE: the ledger would be
/// read with the transaction's snapshot, so a tenant that applied the migration after it began
/// (or while it waited for that run's locks) would not be seen, and a migration a tenant has
/// applied would be removed (the third hostile review's F1).
fn refuse_transaction_snapshot(version: &str) {
    // SAFETY: reads the transaction's isolation level.
    if unsafe { pgrx::pg_sys::XactIsoLevel } >= pgrx::pg_sys::XACT_REPEATABLE_READ as i32 {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("migration {version} cannot be removed at REPEATABLE READ or SERIALIZABLE: it must see every tenant that applied it, including ones that committed after this transaction began"),
            )
            .hint(format!(
                "Run it in a transaction at READ COMMITTED (the default): SELECT tenancy.remove_migration({});",
                crate::rules::names::quote_literal(version)
            )),
        )
    }
}

/// A detached tenant of a managed table keeps its ledger (`tenancy.detached_tenants`) until its
/// row is inserted again; while a kept ledger has the migration, removing it (and perhaps adding
/// other text under its version) would make that re-insert fail with drift.
fn refuse_kept_ledgers(m: &Migration) {
    let (count, first) = detached::with_version(&m.version, LISTED);
    if count == 0 {
        return;
    }
    let names: Vec<String> = first.iter().map(|n| quote_ident(n)).collect();
    raise(
        TenancyError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!(
                "migration {} cannot be removed: {count} detached tenant{} of managed tables applied it ({}{})",
                m.label(),
                if count == 1 { "" } else { "s" },
                names.join(", "),
                if count > LISTED { ", …" } else { "" }
            ),
        )
        .detail(format!(
            "Their ledgers are kept in tenancy.detached_tenants until their rows are inserted again: SELECT schema_name, managed_by FROM tenancy.detached_tenants WHERE ledger @> '[{{\"version\": \"{}\"}}]' lists them all.",
            m.version
        ))
        .hint("Inserting a detached tenant's row again re-adopts its schema and ledger (then it is a tenant that has applied it, and the migration stays: supersede it with a later one); DROP SCHEMA of a detached tenant's schema forgets its kept ledger. Once no kept ledger has it, the migration can be removed."),
    );
}

fn embedded_refusal(e: &Migration) -> TenancyError {
    TenancyError::new(
        SqlState::ObjectNotInPrerequisiteState,
        format!(
            "migration {} is embedded in the extension (tenant_migrations/) and cannot be removed from the database",
            e.label()
        ),
    )
    .hint(format!(
        "It would come back with the extension's library. While no tenant has applied it, delete tenant_migrations/{}.sql and rebuild the extension; once tenants have it, supersede it with a corrective migration of a later version (docs/migrations.md, \"Withdrawing or superseding a migration\").",
        e.label()
    ))
}

/// Removing a migration takes the privileges of the role that registered it (or, when that role
/// no longer exists, of the extension's owner): another author may not swap it for text of its
/// own under the same version.
fn require_author_rights(m: &Migration) {
    let me = identity::current_user();
    let author = m.author.as_deref().and_then(catalog::role_by_name);
    let allowed = match &author {
        Some(a) => catalog::has_privileges_of(me, a.oid),
        None => catalog::has_privileges_of(me, identity::extension_owner()),
    };
    if allowed {
        return;
    }
    let who = match &author {
        Some(a) => format!("its author {}", quote_ident(&a.name)),
        None => format!(
            "the extension's owner (its author {} no longer exists)",
            quote_ident(m.author.as_deref().unwrap_or("?"))
        ),
    };
    raise(
        TenancyError::new(
            SqlState::InsufficientPrivilege,
            format!(
                "permission denied to remove migration {}: role {} does not have the privileges of {who}",
                m.label(),
                quote_ident(&catalog::current_user_name())
            ),
        )
        .hint("Remove it as its author (or a member of that role, or a superuser)."),
    )
}
