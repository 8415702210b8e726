//! Storage of tenant references to shared tables (docs/functions/reference_shared.md): which
//! shared tables are prepared (`tenancy.shared_table_settings`), which tenant tables reference
//! them (`tenancy.shared_references`), and which keys each tenant table has referenced
//! (`tenancy.shared_presence`, one row per shared key and referencing table, never a counter).
//!
//! Also the one SPI call the triggers need that pgrx does not offer: a query under a chosen
//! snapshot (`SPI_execute_snapshot`), as PostgreSQL's own RI checks run theirs.

use std::ffi::{c_char, CStr, CString};

use pgrx::prelude::*;

use crate::db::identity::as_extension_owner;
use crate::db::report::OrRaise;
use crate::db::spi;

/// Which snapshot a query runs under.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Snap {
    /// The statement's snapshot as SPI takes it for a read-write query (a new one at READ
    /// COMMITTED, the transaction's at REPEATABLE READ and SERIALIZABLE).
    Current,
    /// The latest committed state (`GetLatestSnapshot`), whatever the isolation level: what a
    /// check that must see concurrent commits uses.
    Latest,
    /// The transaction's snapshot (`GetTransactionSnapshot`).
    Transaction,
}

/// A typed parameter: its type, its datum, whether it is NULL.
pub type Param = (pg_sys::Oid, pg_sys::Datum, bool);

/// Runs fixed, fully qualified `sql` with `params` under `snap`, at most `limit` rows (0: all);
/// returns each row's columns as text (`None` for NULL). Its own SPI connection; no triggers fire
/// (the caller's statements are pg_tenancy's own bookkeeping or reads).
pub fn query(sql: &str, params: &[Param], snap: Snap, limit: i64) -> Vec<Vec<Option<String>>> {
    spi::writable();
    Spi::connect(|_| {
        let text = CString::new(sql).expect("pg_tenancy: query text without NUL");
        let mut types: Vec<pg_sys::Oid> = params.iter().map(|p| p.0).collect();
        let mut values: Vec<pg_sys::Datum> = params.iter().map(|p| p.1).collect();
        let nulls: Vec<c_char> = params
            .iter()
            .map(|p| if p.2 { b'n' as c_char } else { b' ' as c_char })
            .collect();
        // SAFETY: an SPI connection is open (Spi::connect); the arrays outlive the calls; the
        // plan is freed before the connection ends; the result is copied out before that.
        unsafe {
            let plan = cached_plan(sql, &text, &mut types);
            let snapshot = match snap {
                Snap::Current => std::ptr::null_mut(),
                Snap::Latest => {
                    pg_sys::CommandCounterIncrement();
                    pg_sys::GetLatestSnapshot()
                }
                Snap::Transaction => pg_sys::GetTransactionSnapshot(),
            };
            let rc = pg_sys::SPI_execute_snapshot(
                plan,
                values.as_mut_ptr(),
                nulls.as_ptr(),
                snapshot,
                std::ptr::null_mut(),
                false,
                false,
                limit as _,
            );
            if rc < 0 {
                panic!("pg_tenancy: SPI_execute_snapshot returned {rc} for {sql}");
            }
            let mut rows = Vec::new();
            let table = pg_sys::SPI_tuptable;
            if !table.is_null() {
                let desc = (*table).tupdesc;
                let natts = (*desc).natts;
                for i in 0..pg_sys::SPI_processed as usize {
                    let tuple = *(*table).vals.add(i);
                    let row = (1..=natts)
                        .map(|n| {
                            let v = pg_sys::SPI_getvalue(tuple, desc, n);
                            (!v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
                        })
                        .collect();
                    rows.push(row);
                }
            }
            rows
        }
    })
}

thread_local! {
    /// Plans of the triggers' queries, kept across transactions (`SPI_keepplan`: PostgreSQL
    /// re-plans them after DDL on what they read, and checks privileges at every execution).
    /// Keyed by the query text, which names its tables, columns, operators and parameter count;
    /// the parameter types follow from the columns.
    static PLANS: std::cell::RefCell<std::collections::HashMap<String, usize>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// At most this many plans are kept; past it the cache starts over.
const MAX_PLANS: usize = 512;

/// The kept plan of `sql`, prepared on first use.
///
/// # Safety
/// Inside an SPI connection.
unsafe fn cached_plan(sql: &str, text: &CString, types: &mut [pg_sys::Oid]) -> pg_sys::SPIPlanPtr {
    if let Some(p) = PLANS.with(|c| c.borrow().get(sql).copied()) {
        return p as pg_sys::SPIPlanPtr;
    }
    let plan = pg_sys::SPI_prepare(text.as_ptr(), types.len() as i32, types.as_mut_ptr());
    if plan.is_null() {
        panic!("pg_tenancy: SPI_prepare failed for {sql}");
    }
    if pg_sys::SPI_keepplan(plan) != 0 {
        panic!("pg_tenancy: SPI_keepplan failed for {sql}");
    }
    PLANS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_PLANS {
            for (_, p) in c.drain() {
                pg_sys::SPI_freeplan(p as pg_sys::SPIPlanPtr);
            }
        }
        c.insert(sql.to_string(), plan as usize);
    });
    plan
}

/// A prepared shared table: its key columns and their equality operators (as
/// `OPERATOR(schema.=)`, from the key's unique index).
pub struct Shared {
    pub key: Vec<String>,
    pub ops: Vec<String>,
}

pub fn shared_settings(tbl: pg_sys::Oid) -> Option<Shared> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            let t = c
                .select(
                    "SELECT s.key, s.eq_ops FROM tenancy.shared_table_settings s \
                     WHERE s.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
                    Some(1),
                    &[tbl.into()],
                )
                .or_raise();
            if t.is_empty() {
                return None;
            }
            let r = t.first();
            Some(Shared {
                key: r.get::<Vec<String>>(1).or_raise().unwrap_or_default(),
                ops: r.get::<Vec<String>>(2).or_raise().unwrap_or_default(),
            })
        })
    })
}

pub fn save_shared(tbl: pg_sys::Oid, key: &[String], ops: &[String]) {
    as_extension_owner(|| {
        spi::run_with_args(
            "INSERT INTO tenancy.shared_table_settings (tbl, key, eq_ops) \
             VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3) \
             ON CONFLICT (tbl) DO UPDATE SET key = excluded.key, eq_ops = excluded.eq_ops",
            &[tbl.into(), key.to_vec().into(), ops.to_vec().into()],
        )
        .or_raise()
    })
}

/// The number of tenant tables referencing `tbl` through pg_tenancy, and the first of them.
pub fn referencing_tables(tbl: pg_sys::Oid) -> (i64, Option<String>) {
    as_extension_owner(|| {
        Spi::connect(|c| {
            let t = c
                .select(
                    "SELECT pg_catalog.count(*), pg_catalog.min(r.referencing::pg_catalog.text) \
                     FROM tenancy.shared_references r \
                     WHERE r.shared::pg_catalog.oid OPERATOR(pg_catalog.=) $1 \
                       AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) r.referencing::pg_catalog.oid)",
                    Some(1),
                    &[tbl.into()],
                )
                .or_raise();
            let r = t.first();
            (
                r.get::<i64>(1).or_raise().unwrap_or(0),
                r.get::<String>(2).or_raise(),
            )
        })
    })
}

/// One reference, as its tenant-side trigger needs it.
pub struct Reference {
    pub shared: pg_sys::Oid,
    pub shared_sql: String,
    pub shared_owner: pg_sys::Oid,
    pub shared_partitioned: bool,
    pub columns: Vec<String>,
    pub key: Vec<String>,
    pub ops: Vec<String>,
}

/// The reference a tenant table's trigger of this name enforces.
pub fn reference(referencing: pg_sys::Oid, name: &str) -> Option<Reference> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            let t = c
                .select(
                    "SELECT r.shared::pg_catalog.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relowner, \
                            c.relkind OPERATOR(pg_catalog.=) 'p', r.columns, r.key, s.eq_ops \
                     FROM tenancy.shared_references r \
                     JOIN tenancy.shared_table_settings s ON s.tbl OPERATOR(pg_catalog.=) r.shared \
                     JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.shared::pg_catalog.oid \
                     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                     WHERE r.referencing::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND r.name OPERATOR(pg_catalog.=) $2::pg_catalog.name",
                    Some(1),
                    &[referencing.into(), name.into()],
                )
                .or_raise();
            if t.is_empty() {
                return None;
            }
            let r = t.first();
            let shared_key: Vec<String> = r.get::<Vec<String>>(6).or_raise().unwrap_or_default();
            let all_ops: Vec<String> = r.get::<Vec<String>>(7).or_raise().unwrap_or_default();
            // The reference's key in its own column order; the operators follow the table's key.
            let key: Vec<String> = shared_key.clone();
            Some(Reference {
                shared: r
                    .get::<pg_sys::Oid>(1)
                    .or_raise()
                    .unwrap_or(pg_sys::InvalidOid),
                shared_sql: r.get::<String>(2).or_raise().unwrap_or_default(),
                shared_owner: r
                    .get::<pg_sys::Oid>(3)
                    .or_raise()
                    .unwrap_or(pg_sys::InvalidOid),
                shared_partitioned: r.get::<bool>(4).or_raise().unwrap_or(false),
                columns: r.get::<Vec<String>>(5).or_raise().unwrap_or_default(),
                key,
                ops: all_ops,
            })
        })
    })
}

pub fn save_reference(
    referencing: pg_sys::Oid,
    name: &str,
    columns: &[String],
    shared: pg_sys::Oid,
    key: &[String],
) {
    as_extension_owner(|| {
        spi::run_with_args(
            "INSERT INTO tenancy.shared_references (referencing, name, columns, shared, key) \
             VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.name, $3, $4::pg_catalog.oid::pg_catalog.regclass, $5)",
            &[
                referencing.into(),
                name.into(),
                columns.to_vec().into(),
                shared.into(),
                key.to_vec().into(),
            ],
        )
        .or_raise()
    })
}

pub fn has_reference(referencing: pg_sys::Oid, name: &str) -> bool {
    as_extension_owner(|| {
        spi::get_one::<bool>(
            "SELECT EXISTS (SELECT FROM tenancy.shared_references r \
             WHERE r.referencing::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND r.name OPERATOR(pg_catalog.=) $2::pg_catalog.name)",
            &[referencing.into(), name.into()],
        )
        .unwrap_or(false)
    })
}

/// Records that `referencing` holds rows with this key of `shared` (nothing if it is noted
/// already). Under the latest snapshot: a row another transaction committed after this
/// transaction's snapshot is a conflict that needs nothing, not a serialization failure.
pub fn note_presence(shared: pg_sys::Oid, key: &[String], referencing: pg_sys::Oid) {
    let key = key.to_vec();
    let key_datum = key.into_datum().expect("a text[] datum");
    as_extension_owner(|| {
        query(
            "INSERT INTO tenancy.shared_presence (shared, key, referencing) \
             VALUES ($1::pg_catalog.regclass, $2, $3::pg_catalog.regclass) ON CONFLICT DO NOTHING",
            &[
                (pg_sys::OIDOID, shared.into_datum().expect("oid"), false),
                (pg_sys::TEXTARRAYOID, key_datum, false),
                (
                    pg_sys::OIDOID,
                    referencing.into_datum().expect("oid"),
                    false,
                ),
            ],
            Snap::Latest,
            0,
        );
    });
}

/// A tenant table noted as referencing a key of a shared table, in the latest committed state.
pub struct Holder {
    pub referencing: pg_sys::Oid,
    /// None when the table, or its registration, is gone (a stale note).
    pub table: Option<HolderTable>,
}

pub struct HolderTable {
    /// Quoted and qualified.
    pub sql: String,
    pub schema: String,
    pub owner: pg_sys::Oid,
    pub partitioned: bool,
    /// For each of its references to the shared table, the condition that finds its rows
    /// holding the key: `x."col" OPERATOR(pg_catalog.=) $1 AND …` (built here from the catalog
    /// and the registry, quoted, never from the caller's text).
    pub conditions: Vec<String>,
}

pub fn holders(shared: pg_sys::Oid, key: &[String]) -> Vec<Holder> {
    let key_datum = key.to_vec().into_datum().expect("a text[] datum");
    let rows = as_extension_owner(|| {
        query(
            "SELECT p.referencing::pg_catalog.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), n.nspname::pg_catalog.text, \
                    c.relowner, c.relkind OPERATOR(pg_catalog.=) 'p', \
                    (SELECT pg_catalog.string_agg(pg_catalog.format('x.%I %s $%s', u.col, u.op, u.n), ' AND ' ORDER BY u.n) \
                     FROM ROWS FROM (pg_catalog.unnest(r.columns), pg_catalog.unnest(s.eq_ops)) WITH ORDINALITY AS u(col, op, n)) \
             FROM tenancy.shared_presence p \
             JOIN tenancy.shared_table_settings s ON s.tbl OPERATOR(pg_catalog.=) p.shared \
             LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.referencing::pg_catalog.oid \
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
             LEFT JOIN tenancy.shared_references r ON r.referencing OPERATOR(pg_catalog.=) p.referencing \
                  AND r.shared OPERATOR(pg_catalog.=) p.shared AND c.oid IS NOT NULL \
             WHERE p.shared OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND p.key OPERATOR(pg_catalog.=) $2 \
             ORDER BY 1, r.name",
            &[
                (pg_sys::OIDOID, shared.into_datum().expect("oid"), false),
                (pg_sys::TEXTARRAYOID, key_datum, false),
            ],
            Snap::Latest,
            0,
        )
    });
    let mut out: Vec<Holder> = Vec::new();
    for r in rows {
        let referencing = pg_sys::Oid::from(
            r[0].as_deref()
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(0),
        );
        let table = match (&r[1], &r[2], &r[3], &r[5]) {
            (Some(sql), Some(schema), Some(owner), Some(cond)) => Some(HolderTable {
                sql: sql.clone(),
                schema: schema.clone(),
                owner: pg_sys::Oid::from(owner.parse::<u32>().unwrap_or(0)),
                partitioned: r[4].as_deref() == Some("t"),
                conditions: vec![cond.clone()],
            }),
            _ => None,
        };
        match (out.last_mut(), table) {
            (Some(last), Some(t)) if last.referencing == referencing => match &mut last.table {
                Some(lt) => lt.conditions.extend(t.conditions),
                None => last.table = Some(t),
            },
            (_, table) => out.push(Holder { referencing, table }),
        }
    }
    out
}

/// Removes a note whose table no longer holds the key (or is gone).
pub fn forget_presence(shared: pg_sys::Oid, key: &[String], referencing: pg_sys::Oid) {
    as_extension_owner(|| {
        spi::run_with_args(
            "DELETE FROM tenancy.shared_presence p \
             WHERE p.shared OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass AND p.key OPERATOR(pg_catalog.=) $2 \
               AND p.referencing OPERATOR(pg_catalog.=) $3::pg_catalog.oid::pg_catalog.regclass",
            &[shared.into(), key.to_vec().into(), referencing.into()],
        )
        .or_raise()
    })
}

/// Called by the DDL event trigger with the OIDs of dropped relations: their references and
/// notes go (a dropped shared table's settings too). Only OIDs the catalog no longer has.
pub fn forget_dropped(oids: &[pg_sys::Oid]) {
    as_extension_owner(|| {
        for sql in [
            "DELETE FROM tenancy.shared_presence p WHERE p.referencing::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.referencing::pg_catalog.oid)",
            "DELETE FROM tenancy.shared_presence p WHERE p.shared::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) p.shared::pg_catalog.oid)",
            "DELETE FROM tenancy.shared_references r WHERE r.referencing::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) r.referencing::pg_catalog.oid)",
            "DELETE FROM tenancy.shared_table_settings s WHERE s.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) s.tbl::pg_catalog.oid)",
        ] {
            spi::run_with_args(sql, &[oids.to_vec().into()]).or_raise();
        }
    })
}
