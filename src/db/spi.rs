//! The few SPI calls everything else is built on. Every query text passed here is fully
//! qualified, with its operators qualified too, so it means the same thing whatever the caller's
//! `search_path` is.
//!
//! Reads and writes go different ways. A read (`get_one`, the `rows_*`, and every `select` in
//! `db/`) runs in SPI's read-only mode while the transaction has no transaction ID, as PL/pgSQL
//! runs a STABLE function: it then needs none, so the read-only functions work on a hot standby
//! and a call such as `set_tenant` costs no transaction ID and no commit record. Once the
//! transaction has one (after any write, and after every lock taken with `Spi::run_with_args`,
//! which goes through pgrx's `update` and so asks for one), reads run read-write and take a fresh
//! snapshot each: a read after a lock wait sees what committed meanwhile. A statement that writes
//! goes through `write_one` / `run` (pgrx's `update`), never through a read.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::db::report::{raise, OrRaise};
use crate::rules::error::{SqlState, TenancyError};

/// The first column of the first row, or `None` when there is no row (or it is NULL). A read
/// (see the module's documentation).
pub fn get_one<T: FromDatum + IntoDatum>(query: &str, args: &[DatumWithOid]) -> Option<T> {
    Spi::connect(|c| {
        let t = c.select(query, Some(1), args).or_raise();
        if t.is_empty() {
            None
        } else {
            t.first().get_one::<T>().or_raise()
        }
    })
}

/// Refuses to go on when the server is a hot standby: pgrx asks for a transaction ID before every
/// statement that writes, which fails there with a bare XX000; this says what and where instead.
/// Every write path passes here first (its lock or its first write).
pub fn writable() {
    // SAFETY: reads shared memory state; callable in any backend.
    if unsafe { pg_sys::RecoveryInProgress() } {
        raise(
            TenancyError::new(
                SqlState::ReadOnlySqlTransaction,
                "pg_tenancy cannot change anything on a hot standby: the server is in recovery",
            )
            .hint("Run it on the primary. all_tenants, current_tenant, set_tenant, verify() (not deep), relink(dry_run => true) and the views work on a standby."),
        )
    }
}

/// `Spi::run_with_args` for a statement that writes or locks (see [`writable`]).
pub fn run_with_args(sql: &str, args: &[DatumWithOid]) -> Result<(), pgrx::spi::SpiError> {
    writable();
    Spi::run_with_args(sql, args)
}

/// [`get_one`] for a statement that writes (`WITH gone AS (DELETE … RETURNING …) SELECT …`).
pub fn write_one<T: FromDatum + IntoDatum>(query: &str, args: &[DatumWithOid]) -> Option<T> {
    writable();
    Spi::connect_mut(|c| {
        let t = c.update(query, Some(1), args).or_raise();
        if t.is_empty() {
            None
        } else {
            t.first().get_one::<T>().or_raise()
        }
    })
}

pub fn run(sql: &str) {
    writable();
    Spi::run(sql).or_raise()
}

/// `set_config(name, value, is_local)`.
/// A read in SPI's terms (it writes no table), so `set_tenant` works on a hot standby.
pub fn set_config(name: &str, value: &str, is_local: bool) {
    let _: Option<String> = get_one(
        "SELECT pg_catalog.set_config($1, $2, $3)",
        &[name.into(), value.into(), is_local.into()],
    );
}

pub fn current_setting(name: &str) -> Option<String> {
    get_one::<String>(
        "SELECT pg_catalog.current_setting($1, true)",
        &[name.into()],
    )
}

/// Runs a query returning (text, bool) rows.
pub fn rows_text_bool(query: &str) -> Vec<(String, bool)> {
    Spi::connect(|c| {
        c.select(query, None, &[])
            .or_raise()
            .map(|r| {
                (
                    r.get::<String>(1).or_raise().unwrap_or_default(),
                    r.get::<bool>(2).or_raise().unwrap_or(false),
                )
            })
            .collect()
    })
}

/// Runs a query returning (text, text) rows.
pub fn rows_text_text(query: &str) -> Vec<(String, String)> {
    Spi::connect(|c| {
        c.select(query, None, &[])
            .or_raise()
            .map(|r| {
                (
                    r.get::<String>(1).or_raise().unwrap_or_default(),
                    r.get::<String>(2).or_raise().unwrap_or_default(),
                )
            })
            .collect()
    })
}

/// Runs a query with arguments returning one text column (a read).
pub fn rows_text_with(query: &str, args: &[DatumWithOid]) -> Vec<String> {
    Spi::connect(|c| {
        c.select(query, None, args)
            .or_raise()
            .filter_map(|r| r.get::<String>(1).or_raise())
            .collect()
    })
}

// Statements prepared once per backend and kept (`SPI_keepplan`), for the queries a fleet step
// runs for every tenant: parsing and planning them again each time cost more than running them
// (docs/fleet.md, "What a tenant costs"). A kept plan is PostgreSQL's plan cache entry, as a
// PL/pgSQL function's are: DDL on the tables it reads (an `ALTER EXTENSION UPDATE`, a dropped and
// re-created extension) invalidates it and it is parsed again from its text at its next use, and
// privileges are checked at each execution, as the role running it then.
thread_local! {
    static KEPT: std::cell::RefCell<std::collections::HashMap<(&'static str, bool), std::rc::Rc<pgrx::spi::OwnedPreparedStatement>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The kept plan of `query` (with parameters of `types`), prepared at its first use in this
/// backend. `mutating`: it writes or must see what committed after an earlier lock wait (a fresh
/// snapshot), as `update` does; otherwise it reads as [`get_one`] does.
fn kept(
    query: &'static str,
    types: &[pg_sys::PgOid],
    mutating: bool,
) -> std::rc::Rc<pgrx::spi::OwnedPreparedStatement> {
    if let Some(p) = KEPT.with(|k| k.borrow().get(&(query, mutating)).cloned()) {
        return p;
    }
    let plan = std::rc::Rc::new(Spi::connect(|c| {
        let p = if mutating {
            c.prepare_mut(query, types)
        } else {
            c.prepare(query, types)
        };
        p.or_raise().keep()
    }));
    KEPT.with(|k| k.borrow_mut().insert((query, mutating), plan.clone()));
    plan
}

/// Runs a kept read (see [`kept`]) and maps each row.
pub fn kept_rows<R>(
    query: &'static str,
    types: &[pg_sys::PgOid],
    args: &[DatumWithOid],
    f: impl FnMut(pgrx::spi::SpiHeapTupleData) -> R,
) -> Vec<R> {
    let plan = kept(query, types, false);
    Spi::connect(|c| c.select(&*plan, None, args).or_raise().map(f).collect())
}

/// Runs a kept statement that writes or locks, or a read that must take a fresh snapshot after
/// an earlier lock wait (see [`kept`]); maps each row it returns.
pub fn kept_write<R>(
    query: &'static str,
    types: &[pg_sys::PgOid],
    args: &[DatumWithOid],
    f: impl FnMut(pgrx::spi::SpiHeapTupleData) -> R,
) -> Vec<R> {
    writable();
    let plan = kept(query, types, true);
    Spi::connect_mut(|c| c.update(&*plan, None, args).or_raise().map(f).collect())
}
