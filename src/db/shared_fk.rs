//! Native foreign keys to shared tables in tenant migrations, declared as shared references
//! (issue 15; which ones: [`crate::rules::shared_fk`]).
//!
//! A native foreign key from a tenant table to a shared table puts two triggers *on the shared
//! table* per tenant, takes SHARE ROW EXCLUSIVE on it, and invalidates its relation cache entry
//! in every backend; replacing it afterwards (`tenancy.reference_shared` dropping it) takes
//! ACCESS EXCLUSIVE on the shared table until the sign-up commits, which blocks every application
//! query on it meanwhile. So where a superuser set `tenancy.convert_shared_foreign_keys` for the
//! database (off by default: docs/functions/reference_shared.md says what it changes for later
//! migrations), while pg_tenancy runs a tenant's migrations ([`Converting`]), a
//! `ProcessUtility` hook takes such a foreign key out of its `ALTER TABLE` (CREATE TABLE's
//! foreign keys reach PostgreSQL as one too; `ADD COLUMN … REFERENCES` does not: PostgreSQL adds
//! that key inside the ALTER TABLE, so it stays native) and declares it with
//! `tenancy.reference_shared` once the rest of the statement has run: the shared table is never
//! touched.
//!
//! Only where the table's owner shared it (`tenancy.share_table`), never on Citus, and only for
//! declarations a shared reference enforces alike; the rest run as written. Migration texts are
//! not changed (their checksums stay); a native foreign key that exists already is never
//! converted here (tenancy.reference_shared in a migration does that, explicitly).

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::db::report::OrRaise;
use crate::db::{catalog, citus, settings, shared, spi};
use crate::rules::shared_fk::{keep_native, Declared};

thread_local! {
    /// How many tenant-migration runs are under way in this backend (nested calls count).
    static ACTIVE: Cell<u32> = const { Cell::new(0) };
}

static mut PREV: pg_sys::ProcessUtility_hook_type = None;

/// Installs the hook (from `_PG_init`), chained to whatever was there before.
pub fn init() {
    // SAFETY: _PG_init runs once per backend, before any statement of ours.
    unsafe {
        PREV = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(hook);
    }
}

/// While alive, foreign keys to shared tables in the statements run are declared as shared
/// references. Ends with its scope, also when an error unwinds it.
pub struct Converting(());

impl Converting {
    pub fn start() -> Converting {
        ACTIVE.with(|a| a.set(a.get() + 1));
        Converting(())
    }
}

impl Drop for Converting {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(a.get().saturating_sub(1)));
    }
}

/// One foreign key taken out of a statement, to declare as a shared reference after it.
struct Pending {
    rel: pgrx::PgBox<pg_sys::RangeVar>,
    /// The name `tenancy.reference_shared` gives it.
    name: String,
    columns: Vec<String>,
    shared: pg_sys::Oid,
    key: Vec<String>,
}

/// PostgreSQL's `ProcessUtility_hook` signature.
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn hook(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    let mut pstmt = pstmt;
    let mut read_only_tree = read_only_tree;
    let mut pending = Vec::new();
    let mut skip = false;
    if ACTIVE.with(|a| a.get()) > 0
        && settings::CONVERT_SHARED_FKS.get()
        && !pstmt.is_null()
        && is_a((*pstmt).utilityStmt, pg_sys::NodeTag::T_AlterTableStmt)
    {
        if let Some((copy, taken, empty)) = take_shared_fks(pstmt) {
            pstmt = copy;
            read_only_tree = false;
            pending = taken;
            skip = empty;
        }
    }
    if !skip {
        match PREV {
            // Another extension's hook (C): an ERROR there must unwind through pgrx, not
            // longjmp past this frame's Rust values.
            Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                prev(pstmt, query, read_only_tree, context, params, env, dest, qc)
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query,
                read_only_tree,
                context,
                params,
                env,
                dest,
                qc,
            ),
        }
    }
    for p in pending {
        let tbl = pg_sys::RangeVarGetRelidExtended(
            p.rel.as_ptr(),
            pg_sys::NoLock as _,
            0,
            None,
            std::ptr::null_mut(),
        );
        spi::run_with_args(
            "SELECT tenancy.reference_shared($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.name[], \
             $3::pg_catalog.oid::pg_catalog.regclass, $4::pg_catalog.name[])",
            &[
                tbl.into(),
                p.columns.clone().into(),
                p.shared.into(),
                p.key.clone().into(),
            ],
        )
        .or_raise();
    }
}

unsafe fn is_a(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    !node.is_null() && (*node).type_ == tag
}

unsafe fn str_value(node: *mut pg_sys::Node) -> String {
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    let p = (*(node as *mut pg_sys::Value)).val.str_;
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    let p = (*(node as *mut pg_sys::String)).sval;
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

unsafe fn names(list: *mut pg_sys::List) -> Vec<String> {
    PgList::<pg_sys::Node>::from_pg(list)
        .iter_ptr()
        .map(|n| str_value(n))
        .collect()
}

/// The column's type, or InvalidOid when there is no such column.
unsafe fn column_type(rel: pg_sys::Oid, column: &str) -> pg_sys::Oid {
    let c = std::ffi::CString::new(column).unwrap_or_default();
    let n = pg_sys::get_attnum(rel, c.as_ptr());
    if n <= 0 {
        return pg_sys::InvalidOid;
    }
    pg_sys::get_atttype(rel, n)
}

/// `PERIOD` and `NOT ENFORCED` foreign keys exist from PostgreSQL 18 on.
#[cfg(feature = "pg18")]
unsafe fn period_or_not_enforced(c: &pg_sys::Constraint) -> bool {
    c.fk_with_period || c.pk_with_period || !c.is_enforced
}

#[cfg(not(feature = "pg18"))]
unsafe fn period_or_not_enforced(_c: &pg_sys::Constraint) -> bool {
    false
}

/// A copy of `pstmt` without its foreign keys to shared tables, those foreign keys, and whether
/// nothing else is left to run; `None` when the statement has none.
unsafe fn take_shared_fks(
    pstmt: *mut pg_sys::PlannedStmt,
) -> Option<(*mut pg_sys::PlannedStmt, Vec<Pending>, bool)> {
    let stmt = (*pstmt).utilityStmt as *mut pg_sys::AlterTableStmt;
    let cmds = PgList::<pg_sys::AlterTableCmd>::from_pg((*stmt).cmds);
    let mut take = Vec::new();
    for (i, cmd) in cmds.iter_ptr().enumerate() {
        if (*cmd).subtype != pg_sys::AlterTableType::AT_AddConstraint
            || !is_a((*cmd).def, pg_sys::NodeTag::T_Constraint)
        {
            continue;
        }
        let con = &*((*cmd).def as *mut pg_sys::Constraint);
        if con.contype != pg_sys::ConstrType::CONSTR_FOREIGN || con.pktable.is_null() {
            continue;
        }
        if let Some(p) = shared_fk((*stmt).relation, con) {
            take.push((i, p));
        }
    }
    // Anything the reference could not mirror exactly stays native: another subcommand of the
    // statement that changes the type of, or drops, one of the key's columns (the reference is
    // declared after the statement, with the types of then); two keys of the statement on the
    // same columns or with the same generated name (the second would collide).
    let touched: Vec<String> = cmds
        .iter_ptr()
        .filter(|c| {
            matches!(
                (**c).subtype,
                pg_sys::AlterTableType::AT_AlterColumnType | pg_sys::AlterTableType::AT_DropColumn
            )
        })
        .filter(|c| !(**c).name.is_null())
        .map(|c| CStr::from_ptr((*c).name).to_string_lossy().into_owned())
        .collect();
    let names: Vec<String> = take.iter().map(|(_, p)| p.name.clone()).collect();
    take.retain(|(_, p)| {
        !p.columns.iter().any(|c| touched.contains(c))
            && names.iter().filter(|n| **n == p.name).count() == 1
    });
    if take.is_empty() {
        return None;
    }
    let copy = pg_sys::copyObjectImpl(pstmt as *const _) as *mut pg_sys::PlannedStmt;
    let copy_stmt = (*copy).utilityStmt as *mut pg_sys::AlterTableStmt;
    let mut kept = PgList::<pg_sys::AlterTableCmd>::new();
    for (i, cmd) in PgList::<pg_sys::AlterTableCmd>::from_pg((*copy_stmt).cmds)
        .iter_ptr()
        .enumerate()
    {
        if !take.iter().any(|(j, _)| *j == i) {
            kept.push(cmd);
        }
    }
    let empty = kept.is_empty();
    (*copy_stmt).cmds = kept.into_pg();
    Some((copy, take.into_iter().map(|(_, p)| p).collect(), empty))
}

/// Whether this installation's catalog has `tenancy.shared_table_settings` (0.2.0 on).
unsafe fn registry_has_shared_tables() -> bool {
    let nsp = pg_sys::get_namespace_oid(c"tenancy".as_ptr(), true);
    nsp != pg_sys::InvalidOid
        && pg_sys::get_relname_relid(c"shared_table_settings".as_ptr(), nsp) != pg_sys::InvalidOid
}

/// The foreign key `con` of the table `rel` as a shared reference, when it is one.
unsafe fn shared_fk(rel: *mut pg_sys::RangeVar, con: &pg_sys::Constraint) -> Option<Pending> {
    let shared_tbl = pg_sys::RangeVarGetRelidExtended(
        con.pktable,
        pg_sys::NoLock as _,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    );
    let tbl = pg_sys::RangeVarGetRelidExtended(
        rel,
        pg_sys::NoLock as _,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    );
    if shared_tbl == pg_sys::InvalidOid
        || tbl == pg_sys::InvalidOid
        || pg_sys::get_rel_namespace(shared_tbl) == pg_sys::get_rel_namespace(tbl)
    {
        return None; // a key within the tenant (a shared table is never in a tenant's schema)
    }
    if !registry_has_shared_tables() {
        return None; // a package upgraded before ALTER EXTENSION pg_tenancy UPDATE
    }
    let settings = shared::shared_settings(shared_tbl)?;
    if citus::present() {
        return None;
    }
    let columns = names(con.fk_attrs);
    let mut key = names(con.pk_attrs);
    if key.is_empty() {
        key = catalog::primary_key_columns(shared_tbl);
    }
    // Same types, and collations that compare keys alike (the reference's lookups use each
    // side's own collation; native RI uses the key's).
    let same_types = columns.len() == key.len()
        && columns.iter().zip(&key).all(|(c, k)| {
            let t = column_type(tbl, c);
            t != pg_sys::InvalidOid
                && t == column_type(shared_tbl, k)
                && !catalog::collations_differ(tbl, c, shared_tbl, k)
        });
    let declared = Declared {
        relkind: pg_sys::get_rel_relkind(tbl) as u8 as char,
        match_type: con.fk_matchtype as u8 as char,
        on_update: con.fk_upd_action as u8 as char,
        on_delete: con.fk_del_action as u8 as char,
        deferrable: con.deferrable || con.initdeferred,
        // CREATE TABLE's foreign keys skip validation (the table is empty) but are valid.
        not_valid: !con.initially_valid,
        period_or_not_enforced: period_or_not_enforced(con),
        columns: &columns,
        referenced: &key,
        same_types,
    };
    if keep_native(&declared, &settings.key).is_some() {
        return None;
    }
    // A native key of the table on these columns to this shared table (a later migration adding
    // a second one), or a trigger of the name the reference would take: keep native rather than
    // drop the existing key (ACCESS EXCLUSIVE on the shared table) or collide with the trigger.
    let in_key_order: Vec<String> = settings
        .key
        .iter()
        .filter_map(|k| key.iter().position(|x| x == k).map(|i| columns[i].clone()))
        .collect();
    let name = shared::reference_name(tbl, &in_key_order);
    if catalog::has_native_fk(tbl, shared_tbl, &columns) || catalog::rel_has_trigger(tbl, &name) {
        return None;
    }
    Some(Pending {
        rel: pgrx::PgBox::from_pg(pg_sys::copyObjectImpl(rel as *const _) as *mut pg_sys::RangeVar),
        name,
        columns,
        shared: shared_tbl,
        key,
    })
}
