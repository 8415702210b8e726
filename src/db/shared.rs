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

/// The settings that change how a value prints, fixed while pg_tenancy turns a shared key into
/// the text it notes and looks up (`tenancy.shared_presence.key`): the same key gives the same text
/// whichever session computes it (a `timestamptz` under another `TimeZone`, a `bytea` under
/// another `bytea_output`, `money` under another `lc_monetary` would otherwise not be found).
const CANONICAL: [(&str, &str); 6] = [
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
];

/// Runs `f` with [`CANONICAL`]'s settings, restored afterwards (on error, by the (sub)transaction's
/// abort, as PostgreSQL restores a function's `SET` clauses).
pub fn canonical<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: PostgreSQL's GUC nesting, as fmgr_security_definer uses it for a function's SET.
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        for (name, value) in CANONICAL {
            let n = CString::new(name).expect("setting name");
            let v = CString::new(value).expect("setting value");
            pg_sys::set_config_option(
                n.as_ptr(),
                v.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                pgrx::PgLogLevel::ERROR as i32,
                false,
            );
        }
        let out = f();
        pg_sys::AtEOXact_GUC(true, level);
        out
    }
}

/// Runs fixed, fully qualified `sql` with `params` under `snap`, at most `limit` rows (0: all);
/// returns each row's columns as text (`None` for NULL), printed with [`CANONICAL`]'s settings.
/// Its own SPI connection; no triggers fire (the caller's statements are pg_tenancy's own
/// bookkeeping or reads).
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
            if !table.is_null() && pg_sys::SPI_processed > 0 {
                canonical(|| {
                    let desc = (*table).tupdesc;
                    let natts = (*desc).natts;
                    for i in 0..pg_sys::SPI_processed as usize {
                        let tuple = *(*table).vals.add(i);
                        let row = (1..=natts)
                            .map(|n| {
                                let v = pg_sys::SPI_getvalue(tuple, desc, n);
                                (!v.is_null())
                                    .then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
                            })
                            .collect();
                        rows.push(row);
                    }
                });
            }
            rows
        }
    })
}

thread_local! {
    /// Plans of the triggers' queries, kept across transactions (`SPI_keepplan`: PostgreSQL
    /// re-plans them after DDL on what they read, and checks privileges at every execution).
    /// Keyed by the query text and the parameter types: a plan prepared for one type must never
    /// be handed a datum of another (a column whose type changed since, say).
    static PLANS: std::cell::RefCell<std::collections::HashMap<(String, Vec<u32>), usize>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// At most this many plans are kept; past it the cache starts over.
const MAX_PLANS: usize = 512;

/// The kept plan of `sql`, prepared on first use.
///
/// # Safety
/// Inside an SPI connection.
unsafe fn cached_plan(sql: &str, text: &CString, types: &mut [pg_sys::Oid]) -> pg_sys::SPIPlanPtr {
    let cache_key = (
        sql.to_string(),
        types.iter().map(|t| t.to_u32()).collect::<Vec<_>>(),
    );
    if let Some(p) = PLANS.with(|c| c.borrow().get(&cache_key).copied()) {
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
        c.insert(cache_key, plan as usize);
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
    /// The shared key's columns as they are named now, in the key's order, read from the shared
    /// table's guard trigger (`UPDATE OF <key>`, which follows renames); empty when the guard is
    /// gone (the table is no longer prepared).
    pub key: Vec<String>,
    /// Their types, in the same order.
    pub key_types: Vec<pg_sys::Oid>,
    pub ops: Vec<String>,
}

/// The guard trigger's key columns, named as they are now, and their types (`tgattr` keeps the
/// order `share_table` gave, by column number: a rename does not change it).
const GUARD_KEY: &str = "SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY u.n),         pg_catalog.array_agg(a.atttypid ORDER BY u.n)      FROM pg_catalog.pg_trigger g      CROSS JOIN LATERAL pg_catalog.unnest(g.tgattr::pg_catalog.int2[]) WITH ORDINALITY AS u(attnum, n)      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) g.tgrelid AND a.attnum OPERATOR(pg_catalog.=) u.attnum      WHERE g.tgrelid OPERATOR(pg_catalog.=) r.shared::pg_catalog.oid AND g.tgname OPERATOR(pg_catalog.=) 'tenancy_shared_guard'";

/// The reference a tenant table's trigger of this name enforces.
pub fn reference(referencing: pg_sys::Oid, name: &str) -> Option<Reference> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            let t = c
                .select(
                    &format!(
                        "SELECT r.shared::pg_catalog.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relowner, \
                                c.relkind OPERATOR(pg_catalog.=) 'p', k.names, k.types, s.eq_ops \
                         FROM tenancy.shared_references r \
                         JOIN tenancy.shared_table_settings s ON s.tbl OPERATOR(pg_catalog.=) r.shared \
                         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.shared::pg_catalog.oid \
                         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                         CROSS JOIN LATERAL ({GUARD_KEY}) AS k(names, types) \
                         WHERE r.referencing::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND r.name OPERATOR(pg_catalog.=) $2::pg_catalog.name"
                    ),
                    Some(1),
                    &[referencing.into(), name.into()],
                )
                .or_raise();
            if t.is_empty() {
                return None;
            }
            let r = t.first();
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
                key: r.get::<Vec<String>>(5).or_raise().unwrap_or_default(),
                key_types: r.get::<Vec<pg_sys::Oid>>(6).or_raise().unwrap_or_default(),
                ops: r.get::<Vec<String>>(7).or_raise().unwrap_or_default(),
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

/// Whether `referencing` has the reference `name` on exactly `columns` to `shared`.
pub fn has_same_reference(
    referencing: pg_sys::Oid,
    name: &str,
    columns: &[String],
    shared: pg_sys::Oid,
) -> bool {
    as_extension_owner(|| {
        spi::get_one::<bool>(
            "SELECT EXISTS (SELECT FROM tenancy.shared_references r \
             WHERE r.referencing::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND r.name OPERATOR(pg_catalog.=) $2::pg_catalog.name \
               AND r.columns::pg_catalog.text[] OPERATOR(pg_catalog.=) $3 AND r.shared::pg_catalog.oid OPERATOR(pg_catalog.=) $4)",
            &[referencing.into(), name.into(), columns.to_vec().into(), shared.into()],
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
    /// and the registry, quoted, never from the caller's text; the columns are those of the
    /// reference's trigger, `UPDATE OF <columns>`, named as they are now: a reference whose
    /// trigger is gone, dropped with its column or by hand, holds nothing, as a dropped foreign
    /// key).
    pub conditions: Vec<String>,
}

pub fn holders(shared: pg_sys::Oid, key: &[String]) -> Vec<Holder> {
    let key_datum = key.to_vec().into_datum().expect("a text[] datum");
    let rows = as_extension_owner(|| {
        query(
            "SELECT p.referencing::pg_catalog.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), n.nspname::pg_catalog.text, \
                    c.relowner, c.relkind OPERATOR(pg_catalog.=) 'p', \
                    (SELECT pg_catalog.string_agg(pg_catalog.format('x.%I %s $%s', a.attname, u.op, u.n), ' AND ' ORDER BY u.n) \
                     FROM pg_catalog.pg_trigger g \
                     CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(g.tgattr::pg_catalog.int2[]), pg_catalog.unnest(s.eq_ops)) WITH ORDINALITY AS u(attnum, op, n) \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) g.tgrelid AND a.attnum OPERATOR(pg_catalog.=) u.attnum \
                     WHERE g.tgrelid OPERATOR(pg_catalog.=) p.referencing::pg_catalog.oid AND g.tgname OPERATOR(pg_catalog.=) r.name) \
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
    // One holder per referencing table (rows come ordered by it): the conditions of its live
    // references; none (a stale note) when the table, or every trigger of its references, is gone.
    let mut out: Vec<Holder> = Vec::new();
    for r in rows {
        let referencing = pg_sys::Oid::from(
            r[0].as_deref()
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(0),
        );
        if out.last().map(|h| h.referencing) != Some(referencing) {
            out.push(Holder {
                referencing,
                table: None,
            });
        }
        let last = out.last_mut().expect("just pushed");
        if let (Some(sql), Some(schema), Some(owner), Some(cond)) = (&r[1], &r[2], &r[3], &r[5]) {
            match &mut last.table {
                Some(t) => t.conditions.push(cond.clone()),
                None => {
                    last.table = Some(HolderTable {
                        sql: sql.clone(),
                        schema: schema.clone(),
                        owner: pg_sys::Oid::from(owner.parse::<u32>().unwrap_or(0)),
                        partitioned: r[4].as_deref() == Some("t"),
                        conditions: vec![cond.clone()],
                    })
                }
            }
        }
    }
    out
}

/// Moves the notes of key `from` to key `to`: the shared row holding the key now prints it
/// differently (re-keyed to an equal value, `1.0` to `1.00` or `'ABC'` to `'abc'` under a
/// case-insensitive collation), and notes follow the text the row prints.
pub fn move_presence(shared: pg_sys::Oid, from: &[String], to: &[String]) {
    let from = from.to_vec().into_datum().expect("a text[] datum");
    let to = to.to_vec().into_datum().expect("a text[] datum");
    let shared = shared.into_datum().expect("oid");
    as_extension_owner(|| {
        for sql in [
            "INSERT INTO tenancy.shared_presence (shared, key, referencing) \
             SELECT p.shared, $3, p.referencing FROM tenancy.shared_presence p \
             WHERE p.shared OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND p.key OPERATOR(pg_catalog.=) $2 \
             ON CONFLICT DO NOTHING",
            "DELETE FROM tenancy.shared_presence p \
             WHERE p.shared OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND p.key OPERATOR(pg_catalog.=) $2 \
               AND $2 OPERATOR(pg_catalog.<>) $3",
        ] {
            query(
                sql,
                &[
                    (pg_sys::OIDOID, shared, false),
                    (pg_sys::TEXTARRAYOID, from, false),
                    (pg_sys::TEXTARRAYOID, to, false),
                ],
                Snap::Latest,
                0,
            );
        }
    });
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
            "DELETE FROM tenancy.shared_references r WHERE r.shared::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) r.shared::pg_catalog.oid)",
            "DELETE FROM tenancy.shared_table_settings s WHERE s.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) s.tbl::pg_catalog.oid)",
        ] {
            spi::run_with_args(sql, &[oids.to_vec().into()]).or_raise();
        }
    })
}

/// Removes a reference's registry row (its trigger is gone: it enforces nothing).
pub fn forget_reference(referencing: pg_sys::Oid, name: &str) {
    as_extension_owner(|| {
        spi::run_with_args(
            "DELETE FROM tenancy.shared_references r \
             WHERE r.referencing::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND r.name OPERATOR(pg_catalog.=) $2::pg_catalog.name",
            &[referencing.into(), name.into()],
        )
        .or_raise()
    })
}

/// Whether trigger `name` on `tbl` calls pg_tenancy's tenant-side check.
pub fn is_reference_trigger(tbl: pg_sys::Oid, name: &str) -> bool {
    is_reference_trigger_where(tbl, name, "")
}

/// [`is_reference_trigger`], and enabled (fires in normal sessions: `tgenabled` O or A).
pub fn is_enabled_reference_trigger(tbl: pg_sys::Oid, name: &str) -> bool {
    is_reference_trigger_where(
        tbl,
        name,
        " AND g.tgenabled OPERATOR(pg_catalog.=) ANY ('{O,A}'::pg_catalog.\"char\"[])",
    )
}

fn is_reference_trigger_where(tbl: pg_sys::Oid, name: &str, more: &str) -> bool {
    spi::get_one::<bool>(
        &format!(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) $1 \
               AND g.tgname OPERATOR(pg_catalog.=) $2::pg_catalog.name \
               AND g.tgfoid OPERATOR(pg_catalog.=) 'tenancy._shared_ref_check()'::pg_catalog.regprocedure{more})"
        ),
        &[tbl.into(), name.into()],
    )
    .unwrap_or(false)
}

/// The key of shared table `tbl` as its guard trigger names it now (renames follow), `None`
/// without the guard.
pub fn guard_key(tbl: pg_sys::Oid) -> Option<Vec<String>> {
    spi::get_one::<Vec<String>>(
        &GUARD_KEY.replace("r.shared::pg_catalog.oid", "$1"),
        &[tbl.into()],
    )
}

/// The name of the trigger (and registration) `tenancy.reference_shared` gives a reference of
/// `tbl` on `columns` (in the shared key's order): `<table>_<columns>_shared_ref`, cut to 63
/// bytes on a character boundary.
pub fn reference_name(tbl: pg_sys::Oid, columns: &[String]) -> String {
    crate::rules::names::truncate_name(&format!(
        "{}_{}_shared_ref",
        crate::db::catalog::relname(tbl),
        columns.join("_")
    ))
}
