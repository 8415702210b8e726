//! Managed tables (docs/managed-tables.md): a table whose rows name tenants through a template. Triggers create
//! the tenant when a row is inserted, rename it when the computed name changes, and detach or
//! drop it when the row is deleted — all through the same lifecycle functions as the SQL API, in
//! the row's transaction.

use std::ffi::{CStr, CString};

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;

use crate::api::args::required;
use crate::api::lifecycle;
use crate::db::catalog;
use crate::db::registry;
use crate::db::report::{self, raise, Caught, OrRaise};
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::{quote_ident, quote_literal};
use crate::rules::template::Template;

/// Trigger names pg_tenancy installs on a managed table.
const TRIGGERS: [&str; 4] = [
    "tenancy_provision",
    "tenancy_rename",
    "tenancy_retire",
    "tenancy_truncate",
];

/// The lock-table ceiling, measured with the shipped migration set at default settings
/// (`max_locks_per_transaction = 64`, `max_connections = 100`): see docs/managed-tables.md.
const MEASURED_CEILING: &str = "about 280";

fn check_on_delete(on_delete: &str) {
    if !["keep", "detach", "drop"].contains(&on_delete) {
        raise(
            TenancyError::new(
                SqlState::InvalidParameterValue,
                format!("on_delete must be 'keep', 'detach' or 'drop', not {}", quote_literal(on_delete)),
            )
            .hint("'keep' leaves the tenant, 'detach' unregisters it and keeps the schema, 'drop' drops the schema."),
        );
    }
}

const MANAGE: &str = "manage_tenant";
const MANAGE_EXAMPLE: &str = "tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])";

#[pg_extern(volatile, name = "_manage_tenant")]
#[search_path(pg_catalog, pg_temp)]
pub fn manage_tenant_owned(
    tbl: Option<pg_sys::Oid>,
    template: Option<Vec<Option<String>>>,
    on_create: Option<bool>,
    on_update: Option<bool>,
    on_delete: Option<&str>,
    owner: Option<pg_sys::Oid>,
) {
    let tbl = required(tbl, MANAGE, "tbl", MANAGE_EXAMPLE);
    let raw = required(template, MANAGE, "template", MANAGE_EXAMPLE);
    let on_create = required(on_create, MANAGE, "on_create", MANAGE_EXAMPLE);
    let on_update = required(on_update, MANAGE, "on_update", MANAGE_EXAMPLE);
    let on_delete = required(on_delete, MANAGE, "on_delete", MANAGE_EXAMPLE);
    check_on_delete(on_delete);
    let template = Template::parse(&raw).or_raise();
    let table = catalog::table_info(tbl);
    refuse_extension_table(tbl, &table);
    refuse_temporary_table(tbl, &table);
    crate::db::citus::refuse_managed_citus_table(tbl, &table);
    let columns = catalog::table_columns(tbl);
    for c in template.columns() {
        if !columns.iter().any(|x| x == c) {
            raise(
                TenancyError::new(
                    SqlState::UndefinedColumn,
                    format!(
                        "tenant template {} names column {} which {} does not have",
                        template.display(),
                        quote_ident(c),
                        table
                    ),
                )
                .hint(catalog::columns_hint(&table, &columns)),
            );
        }
    }
    refuse_template_change(tbl, &table, &template, &columns);
    drop_triggers(&table);
    let args = std::iter::once(quote_literal(on_delete))
        .chain(raw.iter().flatten().map(|e| quote_literal(e)))
        .collect::<Vec<_>>()
        .join(", ");
    let row_trigger = |name: &str, event: &str| {
        spi::run(&format!(
            "CREATE TRIGGER {} AFTER {event} ON {table} FOR EACH ROW EXECUTE FUNCTION tenancy._managed_row({args})",
            quote_ident(name)
        ))
    };
    if on_create {
        row_trigger("tenancy_provision", "INSERT");
    }
    if on_update {
        let cols: Vec<String> = template.columns().iter().map(|c| quote_ident(c)).collect();
        row_trigger("tenancy_rename", &format!("UPDATE OF {}", cols.join(", ")));
    }
    if on_delete != "keep" {
        row_trigger("tenancy_retire", "DELETE");
    }
    if on_delete == "drop" {
        spi::run(&format!(
            "CREATE TRIGGER tenancy_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION tenancy._managed_truncate()"
        ));
    }
    if let Some(owner) = owner {
        // The caller may only name an owner whose privileges it has (checked as for create_tenant);
        // each role that later inserts a row is checked again when its tenant is created.
        lifecycle::choose_owner(&format!("the tenants of {table}"), Some(owner));
    }
    registry::save_managed(tbl, &raw, on_create, on_update, on_delete, owner);
    // Statement triggers are not inherited: each partition gets its own TRUNCATE guard (and one
    // created or attached later gets it from the DDL event trigger, see _managed_ddl).
    guard_partitions(&[tbl]);
}

/// pg_tenancy's own tables and any extension's tables cannot be managed: their rows are not the
/// application's, and triggers on them would break the extension (managing `tenancy.tenants`
/// made every `create_tenant` fire a trigger on the row it writes).
fn refuse_extension_table(tbl: pg_sys::Oid, table: &str) {
    if let Some(ext) = catalog::extension_of(tbl) {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!(
                    "table {table} belongs to extension {} and cannot be a managed table",
                    quote_ident(&ext)
                ),
            )
            .hint("A managed table is one of your application's tables whose rows are your tenants, e.g. CREATE TABLE organizations (id bigint PRIMARY KEY, name text) and tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])."),
        );
    }
}

/// A temporary table goes away with its session, leaving its registration (and the tenants'
/// `managed_by`) dangling: refused.
fn refuse_temporary_table(tbl: pg_sys::Oid, table: &str) {
    if catalog::is_temporary(tbl) {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("table {table} is a temporary table and cannot be a managed table"),
            )
            .hint("A temporary table ends with its session, and its registration would dangle: manage a permanent (or UNLOGGED) table instead."),
        );
    }
}

/// Refuses a new template for a managed table while rows name tenants under the current one that
/// the new one would not find (issue 13, case 5): those rows would then name tenants that do not
/// exist (the next UPDATE fails, reconcile would create a second, empty tenant per row). Renaming
/// every tenant here could cross the lock ceiling of one transaction; the hint gives the statement
/// that does it, after which the change is accepted.
fn refuse_template_change(tbl: pg_sys::Oid, table: &str, new: &Template, columns: &[String]) {
    let Some(old_raw) = registry::managed_template(tbl) else {
        return;
    };
    let Ok(old) = Template::parse(&old_raw) else {
        return;
    };
    if old == *new {
        return;
    }
    let tenant_exists = |expr: &str| {
        format!("EXISTS (SELECT FROM tenancy.tenants t WHERE t.schema_name OPERATOR(pg_catalog.=) {expr})")
    };
    let not_null = |t: &Template| {
        t.columns()
            .iter()
            .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let old_readable = old.columns().iter().all(|c| columns.iter().any(|x| x == c));
    // Rows whose tenant (under the current template) would be lost; when a column of the
    // current template is gone, every row the new template names no tenant for.
    let query = if old_readable {
        format!(
            "SELECT pg_catalog.count(*) FROM {table} WHERE {} AND {} AND {} OPERATOR(pg_catalog.<>) {} AND {} AND NOT {}",
            not_null(&old),
            not_null(new),
            old.sql_expr(),
            new.sql_expr(),
            tenant_exists(&old.sql_expr()),
            tenant_exists(&new.sql_expr())
        )
    } else {
        format!(
            "SELECT pg_catalog.count(*) FROM {table} WHERE {} AND NOT {}",
            not_null(new),
            tenant_exists(&new.sql_expr())
        )
    };
    // Read as the table's owner in a security-restricted operation, as verify reads it.
    let rows = crate::db::identity::as_tenant_owner(
        catalog::table_owner(table),
        "pg_catalog, pg_temp",
        || spi::get_one::<i64>(&query, &[]).unwrap_or(0),
    );
    if rows == 0 {
        return;
    }
    let fix = if old_readable {
        format!(
            "Rename the tenants first, in the same transaction: SELECT tenancy.rename_tenant({}, {}) FROM {table}; then run tenancy.manage_tenant again. ",
            old.sql_expr(),
            new.sql_expr()
        )
    } else {
        "Rename each row's tenant to the name the new template gives it with tenancy.rename_tenant, then run tenancy.manage_tenant again. ".to_string()
    };
    raise(
        TenancyError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!(
                "{table}: changing its tenant template from {} to {} would leave {rows} {} naming tenants that do not exist",
                old.display(),
                new.display(),
                if rows == 1 { "row" } else { "rows" }
            ),
        )
        .detail("Each row's tenant has the name the current template gives it; the triggers would look for the name the new one gives.")
        .hint(format!(
            "{fix}If the rows should no longer name tenants, tenancy.unmanage_tenant({}) stops managing the table (its tenants stay).",
            quote_literal(table)
        )),
    );
}

/// Installs the TRUNCATE guard of `tenancy._managed_truncate` on every partition of a managed
/// table with `on_delete => 'drop'` that lacks it, among `oids` and their partitions. As the
/// caller: `manage_tenant`'s, or whoever created or attached the partition (its owner).
fn guard_partitions(oids: &[pg_sys::Oid]) {
    for partition in registry::partitions_without_guard(oids) {
        spi::run(&format!(
            "CREATE TRIGGER tenancy_truncate BEFORE TRUNCATE ON {partition} FOR EACH STATEMENT EXECUTE FUNCTION tenancy._managed_truncate()"
        ));
    }
}

fn drop_triggers(table: &str) {
    // Only those present: DROP TRIGGER IF EXISTS would send a NOTICE for each missing one.
    for t in TRIGGERS.iter().filter(|t| catalog::has_trigger(table, t)) {
        spi::run(&format!(
            "DROP TRIGGER IF EXISTS {} ON {table}",
            quote_ident(t)
        ));
    }
    // The TRUNCATE guards of its partitions (row triggers are dropped with the parent's).
    let guarded = spi::rows_text_text(&format!(
        "SELECT p.relid::pg_catalog.text, '' FROM pg_catalog.pg_partition_tree({}::pg_catalog.regclass) p \
         WHERE p.relid OPERATOR(pg_catalog.<>) {}::pg_catalog.regclass \
           AND EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) p.relid \
                       AND g.tgname OPERATOR(pg_catalog.=) 'tenancy_truncate')",
        quote_literal(table),
        quote_literal(table)
    ));
    for (partition, _) in guarded {
        spi::run(&format!("DROP TRIGGER tenancy_truncate ON {partition}"));
    }
}

/// Called by the DDL event triggers (`sql/fleet.sql`, as the role running the DDL) with the OIDs
/// of the relations a `DROP TABLE` / `DROP SCHEMA` / `DROP OWNED` dropped, or a `CREATE TABLE` /
/// `ALTER TABLE` touched. A dropped managed table is unregistered (its tenants stay); a partition
/// of a managed table with `on_delete => 'drop'` gets its TRUNCATE guard. Anyone may call it: it
/// removes only registrations of tables the catalog no longer has, and adds only guards.
#[pg_extern(volatile, name = "_managed_ddl")]
#[search_path(pg_catalog, pg_temp)]
fn managed_ddl(oids: Option<Vec<Option<pg_sys::Oid>>>) {
    let oids: Vec<pg_sys::Oid> = oids.unwrap_or_default().into_iter().flatten().collect();
    if oids.is_empty() {
        return;
    }
    registry::forget_dropped_tables(&oids);
    guard_partitions(&oids);
}

#[pg_extern(volatile, name = "_unmanage_tenant")]
#[search_path(pg_catalog, pg_temp)]
fn unmanage_tenant(tbl: Option<pg_sys::Oid>) {
    let tbl = required(
        tbl,
        "unmanage_tenant",
        "tbl",
        "tenancy.unmanage_tenant('organizations')",
    );
    if !catalog::relation_exists(tbl) && registry::forget_dropped_tables(&[tbl]) {
        // Its table was dropped while the event triggers did not fire (verify reports it): what
        // the DROP would have done (its tenants stay).
        return;
    }
    let table = catalog::table_info(tbl);
    if !registry::forget_managed(tbl) {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("table {table} is not a managed table"),
            )
            .hint("SELECT * FROM tenancy.managed_tables lists the managed tables."),
        );
    }
    drop_triggers(&table);
}

/// The text of `col` in `tuple` (its output function, as `col::text` gives), `None` for NULL.
///
/// # Safety
/// `tuple` and `tupdesc` must be the trigger's valid tuple and descriptor.
unsafe fn column_text(
    tuple: *mut pg_sys::HeapTupleData,
    tupdesc: pg_sys::TupleDesc,
    table: &str,
    col: &str,
) -> Option<String> {
    let c = CString::new(col).unwrap_or_default();
    let fnum = pg_sys::SPI_fnumber(tupdesc, c.as_ptr());
    if fnum <= 0 {
        raise(
            TenancyError::new(
                SqlState::UndefinedColumn,
                format!("managed table {table} has no column {} used by its tenant template", quote_ident(col)),
            )
            .hint("The column was renamed or dropped; run tenancy.manage_tenant again with the new template."),
        );
    }
    let v = pg_sys::SPI_getvalue(tuple, tupdesc, fnum);
    if v.is_null() {
        None
    } else {
        Some(CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

/// PostgreSQL's own `quote_identifier`: quotes only where needed, as `regclass` output does.
fn pg_quote_identifier(ident: &str) -> String {
    let c = CString::new(ident).unwrap_or_default();
    // SAFETY: quote_identifier reads a NUL-terminated string and returns it or a palloc'd copy.
    unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())) }
        .to_string_lossy()
        .into_owned()
}

/// Runs a lifecycle step for a row, naming the table and the row's tenant in any error.
fn for_row(table: &str, action: &str, tenant: &str, f: impl FnOnce() + std::panic::UnwindSafe) {
    report::with_context(f, |c| {
        let lock_table_full =
            c.code == PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY && c.message.contains("shared memory");
        Caught {
            message: {
                // Errors from apply already start with the tenant; say it once.
                let prefix = format!("tenant {}: ", quote_ident(tenant));
                let cause = c.message.strip_prefix(&prefix).unwrap_or(&c.message);
                format!(
                    "{table}: cannot {action} tenant {}: {cause}",
                    quote_ident(tenant)
                )
            },
            hint: if lock_table_full {
                Some(format!(
                    "Each new tenant holds a lock on every object its migrations create until the transaction ends, and the lock table is full. Insert the rows in smaller batches (with the shipped migrations and default settings, {MEASURED_CEILING} tenants fit in one transaction) or raise max_locks_per_transaction."
                ))
            } else {
                c.hint
            },
            ..c
        }
    })
}

#[pg_trigger]
fn _managed_row<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, TenancyError> {
    let args = trigger.extra_args().unwrap_or_default();
    let (on_delete, raw) = args.split_first().unwrap_or_else(|| {
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                "tenancy._managed_row was installed without arguments",
            )
            .hint("Install managed-table triggers with tenancy.manage_tenant."),
        )
    });
    let raw: Vec<Option<String>> = raw.iter().cloned().map(Some).collect();
    let template = Template::parse(&raw).or_raise();
    let data = trigger.trigger_data();
    // SAFETY: PostgreSQL hands a trigger its relation and the tuples of the firing event.
    let tupdesc = unsafe { (*data.tg_relation).rd_att };
    // SAFETY: the trigger's relation is valid while it fires.
    let (relid, is_partition) = unsafe {
        (
            (*data.tg_relation).rd_id,
            (*(*data.tg_relation).rd_rel).relispartition,
        )
    };
    // Row triggers of a partitioned table fire on the leaf partition: the managed table is the
    // ancestor registered in tenancy.managed_table_settings (its OID goes into managed_by, its
    // name into messages, its settings apply). Otherwise, from the relation cache, not a query
    // (this runs for every row), quoted as regclass prints it.
    let (tbl, table) = match is_partition
        .then(|| catalog::managed_ancestor(relid))
        .flatten()
    {
        Some(managed) => managed,
        None => (
            relid,
            format!(
                "{}.{}",
                pg_quote_identifier(&trigger.table_schema().unwrap_or_default()),
                pg_quote_identifier(&trigger.table_name().unwrap_or_default())
            ),
        ),
    };
    let name_of = |tuple: *mut pg_sys::HeapTupleData| {
        template
            .render(&table, |col| unsafe {
                column_text(tuple, tupdesc, &table, col)
            })
            .or_raise()
    };
    let event = trigger.event();
    if event.fired_by_insert() {
        let name = name_of(data.tg_trigtuple);
        let owner = registry::managed_owner(tbl);
        for_row(&table, "provision", &name, || {
            // The row of a tenant this table detached re-adopts its schema; otherwise a new one.
            if !lifecycle::readopt(&name, tbl, owner) {
                lifecycle::create_for(&name, owner, Some(tbl))
            }
        });
    } else if event.fired_by_update() {
        let old = name_of(data.tg_trigtuple);
        let new = name_of(data.tg_newtuple);
        if old != new {
            for_row(&table, "rename", &old, || lifecycle::rename(&old, &new));
        }
    } else if event.fired_by_delete() {
        let name = name_of(data.tg_trigtuple);
        match on_delete.as_str() {
            "detach" => for_row(&table, "detach", &name, || {
                refuse_gone_tenant(&table, "detach", &name);
                lifecycle::detach(&name)
            }),
            "drop" => for_row(&table, "drop", &name, || {
                refuse_gone_tenant(&table, "drop", &name);
                lifecycle::drop(&name, crate::db::settings::drop_lock_timeout_ms())
            }),
            _ => {}
        }
    }
    Ok(None)
}

/// A DELETE under `detach` / `drop` whose tenant is gone fails rather than skipping it
/// (docs/choices.md): `42704`, with the way to delete the row anyway. Gone: not registered, or
/// (to drop) registered without a schema of its name.
fn refuse_gone_tenant(table: &str, action: &str, name: &str) {
    let registered = registry::tenant_by_name(name).is_some();
    let has_schema = catalog::schema_oid(name).is_some();
    let why = match (registered, has_schema) {
        (false, true) => {
            "it is not a registered tenant (a schema of that name exists, unregistered)"
        }
        (false, false) => "it is not a registered tenant and there is no such schema",
        (true, false) if action == "drop" => {
            "its schema is gone (dropped or renamed behind pg_tenancy's back)"
        }
        _ => return,
    };
    let unregister = if registered {
        format!(
            "First SELECT tenancy.detach_tenant({}) removes the stale registration (it deletes the tenant's ledger); then, in",
            quote_literal(name)
        )
    } else {
        "In".to_string()
    };
    raise(
        TenancyError::new(SqlState::UndefinedObject, format!("tenant {}: {why}", quote_ident(name)))
            .hint(format!(
                "Nothing was deleted. If the schema was renamed by hand, tenancy.verify() gives the statement that renames it back. To delete the row without its tenant: {unregister} one transaction, ALTER TABLE {table} DISABLE TRIGGER tenancy_retire; DELETE the row; ALTER TABLE {table} ENABLE TRIGGER tenancy_retire."
            )),
    );
}
