//! Storage of the snapshot (`tenancy.snapshot`, one row, written only as the extension's owner),
//! the subtransaction a build runs in, and the catalog and statistics reads that tell a scratch
//! replay's effects outside its schema (docs/snapshots.md, "The proof").

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;

use crate::db::identity::as_extension_owner;
use crate::db::locks;
use crate::db::report::raise;
use crate::db::report::OrRaise;
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::lock_wait;

/// The stored snapshot.
pub struct Stored {
    pub fingerprint: String,
    pub owner: String,
    pub versions: Vec<String>,
    /// Whether it was proven (it has steps).
    pub proven: bool,
    /// The row version (`xmin` and `built_at`: several rebuilds in one transaction share the
    /// `xmin`, never the clock time), the key of a backend's cache of the parsed steps.
    pub row_version: String,
}

/// Whether the snapshot catalog is there: between a package upgrade and `ALTER EXTENSION
/// UPDATE` the new library runs with the old catalog, which has no snapshot (nor the ledger's
/// `from_snapshot`), and every path works as before.
pub fn has_catalog() -> bool {
    relation().is_some()
}

/// The stored snapshot, if one was built.
pub fn load() -> Option<Stored> {
    if !has_catalog() {
        return None;
    }
    as_extension_owner(|| {
        Spi::connect(|c| {
            let t = c
                .select(
                    "SELECT fingerprint, owner::pg_catalog.text, versions, steps IS NOT NULL, \
                            xmin::pg_catalog.text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) built_at::pg_catalog.text \
                     FROM tenancy.snapshot",
                    Some(1),
                    &[],
                )
                .or_raise();
            if t.is_empty() {
                return None;
            }
            let r = t.first();
            Some(Stored {
                fingerprint: r.get::<String>(1).or_raise().unwrap_or_default(),
                owner: r.get::<String>(2).or_raise().unwrap_or_default(),
                versions: r.get::<Vec<String>>(3).or_raise().unwrap_or_default(),
                proven: r.get::<bool>(4).or_raise().unwrap_or(false),
                row_version: r.get::<String>(5).or_raise().unwrap_or_default(),
            })
        })
    })
}

/// The stored steps (JSON text) of the row version `row_version` ([`Stored::row_version`]), if
/// the snapshot was proven and is still that version: a rebuild committed since the caller
/// checked its fingerprint gives nothing (the caller replays) rather than newer steps.
pub fn steps(row_version: &str) -> Option<String> {
    as_extension_owner(|| {
        spi::get_one::<String>(
            "SELECT steps::pg_catalog.text FROM tenancy.snapshot \
             WHERE (xmin::pg_catalog.text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) built_at::pg_catalog.text) OPERATOR(pg_catalog.=) $1",
            &[row_version.into()],
        )
    })
}

/// Locks `tenancy.snapshot` itself: a sign-up built from the snapshot in ROW SHARE mode,
/// `remove_migration` in EXCLUSIVE mode (a migration is never removed while a snapshot tenant
/// being built records it, without locking every registered migration's row). A table lock,
/// not an advisory one: nobody without privileges on the table (none are granted) can take a
/// conflicting lock on it and stall sign-ups.
pub fn lock_use(exclusive: bool) {
    lock_table(if exclusive {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::RowShareLock
    } as pg_sys::LOCKMODE);
}

/// `remove_migration`'s locks, taken without holding anyone back for longer than one short wait:
/// its version's lock (exclusive, against runs applying the migration, which hold it shared),
/// EXCLUSIVE on `tenancy.snapshot` when the catalog has it (see [`lock_use`]: sign-ups built from
/// the snapshot record every migration without reading it) and its row (which runs at
/// REPEATABLE READ, or applying more than a few registered migrations, hold FOR KEY SHARE). A
/// waiting request would make every later sign-up or run queue behind it for as long as it
/// waits; so all three are taken in [`locks::in_attempts`] whose waits last at most
/// [`lock_wait::SHARED_WAIT_MS`], until the session's `lock_timeout` (0: no limit) runs out:
/// 55P03 naming the sessions. `label` names the migration in the error.
pub fn lock_for_removal(label: &str, version: &str) {
    let rel = relation();
    // SAFETY: reads the lock_timeout setting (milliseconds).
    let limit = unsafe { pg_sys::LockTimeout }.max(0) as u32;
    let taken = locks::in_attempts(
        limit,
        |left, _| {
            let Some(wait) = lock_wait::wait_ms(left, false) else {
                return Err(());
            };
            locks::with_lock_timeout(wait, || {
                crate::db::registry::lock_registered_exclusive(version);
                if let Some(rel) = rel {
                    // SAFETY: a heavyweight lock by OID, held until the transaction ends.
                    unsafe {
                        pg_sys::LockRelationOid(rel, pg_sys::ExclusiveLock as pg_sys::LOCKMODE)
                    }
                }
                // Its DELETE's row lock, waited for here: nothing is waited for while the locks
                // above are held.
                crate::db::registry::lock_registered_row(version);
            });
            Ok(())
        },
        || (),
    );
    if taken.is_ok() {
        return;
    }
    let key = locks::own_key(version);
    let holders: Vec<String> = [
        (
            locks::own_holders(locks::Own::Registered, key),
            "applying it",
        ),
        (
            rel.map(locks::relation_writers).unwrap_or_default(),
            "signing up from or building the snapshot",
        ),
    ]
    .into_iter()
    .filter(|(h, _)| !h.is_empty())
    .map(|(h, what)| format!("{h} ({what})"))
    .collect();
    let mut e = TenancyError::new(
        SqlState::LockNotAvailable,
        format!(
            "migration {label} cannot be removed yet: runs applying it or sign-ups built from the snapshot are still in progress (lock timeout {})",
            lock_wait::describe_ms(limit)
        ),
    )
    .hint("Retry once they have committed, or give it more time: SET lock_timeout = '30s' before tenancy.remove_migration. While it waits it holds sign-ups and runs back for at most about 100 ms at a time.");
    if !holders.is_empty() {
        e = e.detail(format!("Held by {}.", holders.join(" and ")));
    }
    raise(e)
}

/// `tenancy.snapshot`'s OID (None before the catalog has it).
fn relation() -> Option<pg_sys::Oid> {
    // SAFETY: syscache lookups by name.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"tenancy".as_ptr(), true);
        let rel = pg_sys::get_relname_relid(c"snapshot".as_ptr(), nsp);
        (rel != pg_sys::InvalidOid).then_some(rel)
    }
}

fn lock_table(mode: pg_sys::LOCKMODE) {
    if let Some(rel) = relation() {
        // SAFETY: a heavyweight lock by OID, held until the transaction ends.
        unsafe { pg_sys::LockRelationOid(rel, mode) }
    }
}

/// Replaces the stored snapshot (`steps` JSON, or the `reason` it cannot be used).
pub fn save(
    fingerprint: &str,
    owner: &str,
    versions: &[String],
    steps: Option<&str>,
    reason: Option<&str>,
    ms: f64,
) {
    as_extension_owner(|| {
        spi::run_with_args(
            "INSERT INTO tenancy.snapshot AS s (fingerprint, owner, versions, steps, reason, build_ms, built_by) \
             VALUES ($1, $2, $3, $4::pg_catalog.jsonb, $5, $6, SESSION_USER) \
             ON CONFLICT (one_row) DO UPDATE SET fingerprint = excluded.fingerprint, owner = excluded.owner, \
               versions = excluded.versions, steps = excluded.steps, reason = excluded.reason, \
               build_ms = excluded.build_ms, built_by = excluded.built_by, built_at = pg_catalog.clock_timestamp()",
            &[
                fingerprint.into(),
                owner.into(),
                versions.to_vec().into(),
                steps.into(),
                reason.into(),
                ms.into(),
            ],
        )
        .or_raise()
    })
}

/// Deletes the stored snapshot; whether there was one.
pub fn delete() -> bool {
    as_extension_owner(|| {
        spi::write_one::<bool>(
            "WITH gone AS (DELETE FROM tenancy.snapshot RETURNING 1) SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM gone",
            &[],
        )
        .unwrap_or(false)
    })
}

/// Serialises snapshot builds: SHARE UPDATE EXCLUSIVE on `tenancy.snapshot` (conflicts with
/// itself and `remove_migration`'s lock, not with sign-ups' ROW SHARE; see [`lock_use`]).
pub fn lock_builds() {
    lock_table(pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE);
}

/// The shared tables prepared with `tenancy.share_table`, with their keys (part of the
/// fingerprint: whether a migration's `reference_shared` applies depends on them).
pub fn shared_tables() -> Vec<String> {
    as_extension_owner(|| {
        spi::rows_text_with(
            "SELECT s.tbl::pg_catalog.oid::pg_catalog.text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) s.key::pg_catalog.text \
             FROM tenancy.shared_table_settings s ORDER BY 1",
            &[],
        )
    })
}

/// A cancel or `statement_timeout`: [`catching`] always raises it again (PL/pgSQL's `WHEN
/// OTHERS` never catches it either).
pub const CANCEL: &[PgSqlErrorCode] = &[PgSqlErrorCode::ERRCODE_QUERY_CANCELED];

/// Errors that say nothing about the snapshot but about this moment: a cancel, a lock timeout, a
/// deadlock, a serialization failure. A sign-up raises them again: a replay after them would wait
/// or fail the same way, and its WARNING would blame a snapshot that is fine. (A build stores
/// them as its reason instead, so that adding a migration never fails because a shared table is
/// busy: only [`CANCEL`] is raised there.)
pub const MOMENTARY: &[PgSqlErrorCode] = &[
    PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
    PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
    PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED,
    PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
];

/// Runs `f` in a subtransaction of its own; an error inside rolls it back (undoing everything
/// `f` did) and comes back as its message (with its detail), for the snapshot's `reason`. The
/// errors of `raised` ([`CANCEL`] or [`MOMENTARY`]) are raised again once the subtransaction is
/// rolled back.
pub fn catching<T>(
    raised: &[PgSqlErrorCode],
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    // SAFETY: the sequence of db::locks::attempt (PL/pgSQL's exec_stmt_block).
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let outcome = PgTryBuilder::new(AssertUnwindSafe(|| Ok(f())))
            .catch_others(|e| match &e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r)
                    if raised.contains(&r.sql_error_code()) =>
                {
                    Err(Box::new(e))
                }
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                    Ok(Err(match r.detail() {
                        Some(d) => format!("{} ({d})", r.message()),
                        None => r.message().to_string(),
                    }))
                }
                CaughtError::RustPanic { ereport, .. } => Ok(Err(ereport.message().to_string())),
            })
            .execute();
        pg_sys::MemoryContextSwitchTo(context);
        if matches!(outcome, Ok(Ok(_))) {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        match outcome {
            Ok(result) => result,
            Err(cancel) => cancel.rethrow(),
        }
    }
}

/// Catalog rows this transaction has inserted or updated outside the schemas `inside`
/// (`tenancy._snapshot_touched`), as `catalog key xmin` strings.
pub fn touched(inside: &[pg_sys::Oid]) -> Vec<String> {
    as_extension_owner(|| {
        spi::rows_text_with(
            "SELECT t FROM tenancy._snapshot_touched($1) AS t",
            &[inside.to_vec().into()],
        )
    })
}

/// Rows this transaction wrote in tables outside pg_tenancy's schema and the schemas `inside`,
/// per table (`pg_stat_xact_user_tables`), as `table count` strings.
pub fn table_writes(inside: &[pg_sys::Oid]) -> Vec<String> {
    spi::rows_text_with(
        "SELECT s.relid::pg_catalog.regclass::pg_catalog.text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) \
                (s.n_tup_ins OPERATOR(pg_catalog.+) s.n_tup_upd OPERATOR(pg_catalog.+) s.n_tup_del)::pg_catalog.text \
         FROM pg_catalog.pg_stat_xact_user_tables s JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) s.relid \
         WHERE c.relnamespace OPERATOR(pg_catalog.<>) ALL ($1) \
           AND c.relnamespace OPERATOR(pg_catalog.<>) 'tenancy'::pg_catalog.regnamespace \
           AND (s.n_tup_ins OPERATOR(pg_catalog.+) s.n_tup_upd OPERATOR(pg_catalog.+) s.n_tup_del) OPERATOR(pg_catalog.>) 0",
        &[inside.to_vec().into()],
    )
}

/// What `tenancy._snapshot_unprovable` finds in a schema.
pub fn unprovable(schema: &str) -> Vec<String> {
    as_extension_owner(|| {
        spi::rows_text_with(
            "SELECT u FROM tenancy._snapshot_unprovable($1::pg_catalog.text::pg_catalog.name) AS u",
            &[schema.into()],
        )
    })
}

/// Whether the schema holds no object yet: nothing depends on it. Every object that lives in a
/// schema records a dependency on it (indexes, constraints, triggers, policies and row types
/// hang off their table instead), so this is one probe of `pg_depend`'s index whatever the size
/// of the catalog (scanning `pg_class` by namespace read every relation of every tenant).
pub fn schema_is_empty(oid: pg_sys::Oid) -> bool {
    spi::get_one::<bool>(
        "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_depend \
            WHERE refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass \
              AND refobjid OPERATOR(pg_catalog.=) $1)",
        &[oid.into()],
    )
    .unwrap_or(false)
}
