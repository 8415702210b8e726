//! Tenant references to shared tables without fan-in (issue 15; docs/functions/share_table.md,
//! docs/functions/reference_shared.md, docs/choices.md "Shared references").
//!
//! A native foreign key from each tenant to `public.plans` puts two RI triggers per tenant on
//! `public.plans`: provisioning, every backend's next query on it (its relcache entry is rebuilt
//! with every trigger) and deleting one of its rows grow with the number of tenants. Instead:
//!
//! - `share_table(tbl)`, run once by the shared table's owner, installs ONE row trigger
//!   (`AFTER DELETE OR UPDATE OF <key>`) and one `BEFORE TRUNCATE` guard on it;
//! - `reference_shared(...)`, in a tenant migration, installs a row trigger on the tenant table
//!   (`AFTER INSERT OR UPDATE OF <columns>`) that locks the shared row `FOR KEY SHARE` as native
//!   RI does (missing: 23503) and notes the key in `tenancy.shared_presence` (one row per key and
//!   referencing table, written once: no counters, no hot rows);
//! - the shared table's trigger looks the key up there (latest snapshot) and probes only the
//!   tenant tables noted, with a fresh snapshot, locking what it finds `FOR KEY SHARE` as native
//!   RI's `noaction` check does; found: 23503 (40001 where the row is invisible to a REPEATABLE
//!   READ / SERIALIZABLE transaction's snapshot). Notes found stale are removed there.
//!
//! Identities: the lock on the shared row is taken as the shared table's owner and the probes as
//! each tenant table's owner, row security not forced, in a security-restricted operation
//! (`identity::as_table_owner`: PostgreSQL's RI identity, plus the restriction); the registry and
//! the notes are read and written as pg_tenancy's owner. Every query is fixed text built from
//! the catalog and the registry, quoted; nothing a tenant wrote is run.

use std::ffi::CString;

use pgrx::prelude::*;

use crate::api::args::required;
use crate::db::catalog;
use crate::db::identity;
use crate::db::report::{raise, OrRaise};
use crate::db::shared::{self, Param, Snap};
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::{quote_ident, quote_literal, truncate_name};

/// The shared table's row trigger and TRUNCATE guard.
const GUARD: &str = "tenancy_shared_guard";
const TRUNCATE_GUARD: &str = "tenancy_shared_truncate";

/// PostgreSQL's own `quote_identifier`: quotes only where needed, as `regclass` output and
/// PostgreSQL's messages do (safe in SQL text as well).
fn ident(name: &str) -> String {
    let c = CString::new(name).unwrap_or_default();
    // SAFETY: quote_identifier reads a NUL-terminated string and returns it or a palloc'd copy.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())) }
        .to_string_lossy()
        .into_owned()
}

fn list(cols: &[String]) -> String {
    cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
}

fn columns_arg(v: Vec<Option<String>>, function: &str, arg: &str, example: &str) -> Vec<String> {
    if v.is_empty() || v.iter().any(Option::is_none) {
        raise(
            TenancyError::new(
                SqlState::InvalidParameterValue,
                format!("tenancy.{function}: {arg} must list one or more columns"),
            )
            .hint(format!("Pass column names, e.g. {example}.")),
        );
    }
    let cols: Vec<String> = v.into_iter().flatten().collect();
    for (i, c) in cols.iter().enumerate() {
        if cols[..i].contains(c) {
            raise(
                TenancyError::new(
                    SqlState::InvalidParameterValue,
                    format!("tenancy.{function}: {arg} lists column {} twice", ident(c)),
                )
                .hint(format!("List each column once, e.g. {example}.")),
            );
        }
    }
    cols
}

/// `(owner, relkind, namespace name)` of a relation.
fn relation_facts(tbl: pg_sys::Oid) -> (pg_sys::Oid, String, String) {
    Spi::connect(|c| {
        let t = c
            .select(
                "SELECT c.relowner, c.relkind::pg_catalog.text, n.nspname::pg_catalog.text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                 WHERE c.oid OPERATOR(pg_catalog.=) $1",
                Some(1),
                &[tbl.into()],
            )
            .or_raise();
        let r = t.first();
        (
            r.get::<pg_sys::Oid>(1)
                .or_raise()
                .unwrap_or(pg_sys::InvalidOid),
            r.get::<String>(2).or_raise().unwrap_or_default(),
            r.get::<String>(3).or_raise().unwrap_or_default(),
        )
    })
}

fn role_name(oid: pg_sys::Oid) -> String {
    spi::get_one::<String>(
        "SELECT pg_catalog.quote_ident(r.rolname) FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) $1",
        &[oid.into()],
    )
    .unwrap_or_else(|| oid.to_u32().to_string())
}

fn require_columns(tbl: pg_sys::Oid, table: &str, cols: &[String]) {
    let columns = catalog::table_columns(tbl);
    for c in cols {
        if !columns.iter().any(|x| x == c) {
            raise(
                TenancyError::new(
                    SqlState::UndefinedColumn,
                    format!("table {table} has no column {}", ident(c)),
                )
                .hint(catalog::columns_hint(table, &columns)),
            );
        }
    }
}

fn type_oid(tbl: pg_sys::Oid, col: &str) -> pg_sys::Oid {
    spi::get_one::<pg_sys::Oid>(
        "SELECT a.atttypid FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name AND NOT a.attisdropped",
        &[tbl.into(), col.into()],
    )
    .unwrap_or(pg_sys::InvalidOid)
}

// ---------------------------------------------------------------------------------------------
// share_table

const SHARE: &str = "share_table";
const SHARE_EXAMPLE: &str = "tenancy.share_table('public.plans')";

#[pg_extern(volatile, name = "_share_table")]
#[search_path(pg_catalog, pg_temp)]
fn share_table(tbl: Option<pg_sys::Oid>, key: Option<Vec<Option<String>>>) {
    let tbl = required(tbl, SHARE, "tbl", SHARE_EXAMPLE);
    let table = catalog::table_info(tbl);
    let (owner, relkind, schema) = relation_facts(tbl);
    if crate::db::citus::present() {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("tenancy.share_table: {table} cannot be prepared on Citus"),
            )
            .detail("Citus refuses triggers on reference tables; on Citus, tenant references to shared tables stay native foreign keys to reference tables.")
            .hint("Nothing to prepare: tenancy.reference_shared creates a native foreign key there."),
        );
    }
    if relkind == "p" {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("tenancy.share_table: {table} is partitioned, which shared references do not support yet"),
            )
            .hint("Use a plain table as the shared table, or keep native foreign keys to it."),
        );
    }
    if schema == "tenancy" || catalog::extension_of(tbl).is_some() || catalog::is_temporary(tbl) {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("tenancy.share_table: {table} is an extension's or a temporary table and cannot be shared"),
            )
            .hint("Share one of your application's permanent tables, e.g. public.plans."),
        );
    }
    if crate::db::registry::tenant_by_name(&schema).is_some() {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("tenancy.share_table: {table} belongs to tenant {} and cannot be shared", quote_ident(&schema)),
            )
            .hint("Shared tables are the application's tables outside tenant schemas, e.g. public.plans."),
        );
    }
    if !catalog::has_privileges_of(identity::current_user(), owner) {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "tenancy.share_table: must be the owner of {table} (owned by {})",
                    role_name(owner)
                ),
            )
            .detail(
                "Preparing a shared table installs triggers on it, which needs its owner's rights.",
            )
            .hint(format!(
                "Run it as {}: SET ROLE {}; SELECT tenancy.share_table({});",
                role_name(owner),
                role_name(owner),
                quote_literal(&table)
            )),
        );
    }
    let key = match key {
        Some(k) => columns_arg(k, SHARE, "key", "ARRAY['id']"),
        None => {
            let pk = catalog::primary_key_columns(tbl);
            if pk.is_empty() {
                raise(
                    TenancyError::new(
                        SqlState::InvalidForeignKey,
                        format!("tenancy.share_table: {table} has no primary key"),
                    )
                    .hint("Pass key, columns of a unique constraint, e.g. tenancy.share_table('public.plans', ARRAY['code'])."),
                );
            }
            pk
        }
    };
    require_columns(tbl, &table, &key);
    let ops = equality_operators(tbl, &key).unwrap_or_else(|| {
        raise(
            TenancyError::new(
                SqlState::InvalidForeignKey,
                format!(
                    "tenancy.share_table: no unique constraint of {table} matches the key ({})",
                    list(&key)
                ),
            )
            .hint(format!(
                "Reference a primary key or unique constraint (not partial, no expressions), or add one: ALTER TABLE {table} ADD UNIQUE ({}).",
                list(&key)
            )),
        )
    });
    // Again with the same key: the triggers are put back (dropped by hand, say), nothing else.
    // (A key renamed since keeps its identity: the guard trigger names its columns as they are.)
    if let Some(old) = shared::shared_settings(tbl)
        .map(|old| shared::Shared {
            key: shared::guard_key(tbl).unwrap_or(old.key),
            ops: old.ops,
        })
        .filter(|old| old.key != key)
    {
        let (n, first) = shared::referencing_tables(tbl);
        if n > 0 {
            raise(
                TenancyError::new(
                    SqlState::ObjectNotInPrerequisiteState,
                    format!(
                        "tenancy.share_table: {table} is shared with key ({}) and {n} tenant tables reference it (first: {})",
                        list(&old.key),
                        first.unwrap_or_default()
                    ),
                )
                .hint("Its key cannot change while tenant tables reference it."),
            );
        }
    }
    for t in [GUARD, TRUNCATE_GUARD] {
        if catalog::has_trigger(&table, t) {
            spi::run(&format!("DROP TRIGGER {} ON {table}", ident(t)));
        }
    }
    spi::run(&format!(
        "CREATE TRIGGER {GUARD} AFTER DELETE OR UPDATE OF {} ON {table} FOR EACH ROW EXECUTE FUNCTION tenancy._shared_guard()",
        list(&key)
    ));
    spi::run(&format!(
        "CREATE TRIGGER {TRUNCATE_GUARD} BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION tenancy._shared_truncate()"
    ));
    shared::save_shared(tbl, &key, &ops);
}

/// The equality operator of each key column, as `OPERATOR(schema.=)`, from a unique index on
/// exactly these columns (not partial, no expressions); `None` when there is none.
fn equality_operators(tbl: pg_sys::Oid, key: &[String]) -> Option<Vec<String>> {
    let rows: Vec<(String, String)> = Spi::connect(|c| {
        c.select(
            "WITH idx AS ( \
               SELECT i.indexrelid FROM pg_catalog.pg_index i \
               WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL \
                 AND i.indnkeyatts OPERATOR(pg_catalog.=) pg_catalog.cardinality($2::pg_catalog.text[]) \
                 AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname::pg_catalog.text) \
                      FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 \
                        AND a.attnum OPERATOR(pg_catalog.=) ANY ((i.indkey::pg_catalog.int2[])[0:i.indnkeyatts - 1])) \
                     OPERATOR(pg_catalog.=) (SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.unnest($2::pg_catalog.text[]) AS x) \
               ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1) \
             SELECT a.attname::pg_catalog.text, pg_catalog.format('OPERATOR(%I.%s)', n.nspname, o.oprname) \
             FROM idx JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) idx.indexrelid \
             CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest((i.indkey::pg_catalog.int2[])[0:i.indnkeyatts - 1]), \
                                                  pg_catalog.unnest((i.indclass::pg_catalog.oid[])[0:i.indnkeyatts - 1])) AS u(attnum, opclass) \
             JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) u.attnum \
             JOIN pg_catalog.pg_opclass oc ON oc.oid OPERATOR(pg_catalog.=) u.opclass \
             JOIN pg_catalog.pg_amop am ON am.amopfamily OPERATOR(pg_catalog.=) oc.opcfamily \
                  AND am.amoplefttype OPERATOR(pg_catalog.=) oc.opcintype AND am.amoprighttype OPERATOR(pg_catalog.=) oc.opcintype \
                  AND am.amopstrategy OPERATOR(pg_catalog.=) 3 AND am.amopmethod OPERATOR(pg_catalog.=) oc.opcmethod \
             JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) am.amopopr \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) o.oprnamespace",
            None,
            &[tbl.into(), key.to_vec().into()],
        )
        .or_raise()
        .map(|r| {
            (
                r.get::<String>(1).or_raise().unwrap_or_default(),
                r.get::<String>(2).or_raise().unwrap_or_default(),
            )
        })
        .collect()
    });
    key.iter()
        .map(|k| rows.iter().find(|(c, _)| c == k).map(|(_, op)| op.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// reference_shared

const REFERENCE: &str = "reference_shared";
const REFERENCE_EXAMPLE: &str =
    "tenancy.reference_shared('subscription', ARRAY['plan_id'], 'public.plans')";

#[pg_extern(volatile, name = "_reference_shared")]
#[search_path(pg_catalog, pg_temp)]
fn reference_shared(
    tbl: Option<pg_sys::Oid>,
    columns: Option<Vec<Option<String>>>,
    shared_tbl: Option<pg_sys::Oid>,
    key: Option<Vec<Option<String>>>,
    on_delete: Option<&str>,
) -> String {
    let tbl = required(tbl, REFERENCE, "tbl", REFERENCE_EXAMPLE);
    let columns = columns_arg(
        required(columns, REFERENCE, "columns", REFERENCE_EXAMPLE),
        REFERENCE,
        "columns",
        "ARRAY['plan_id']",
    );
    let shared_tbl = required(shared_tbl, REFERENCE, "shared", REFERENCE_EXAMPLE);
    let on_delete = required(on_delete, REFERENCE, "on_delete", REFERENCE_EXAMPLE);
    if !on_delete.eq_ignore_ascii_case("no action") {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("tenancy.reference_shared: on_delete {} is not supported", quote_literal(on_delete)),
            )
            .detail("A shared row that tenant rows reference cannot be deleted or re-keyed (NO ACTION); cascading into every tenant would touch each tenant's tables from one statement.")
            .hint("Leave on_delete as 'no action'; to retire a shared row, first change the tenant rows that reference it (e.g. with a tenant migration), then delete it."),
        );
    }
    let table = catalog::table_info(tbl);
    let shared_table = catalog::table_info(shared_tbl);
    let (owner, relkind, schema) = relation_facts(tbl);
    let (shared_owner, _, _) = relation_facts(shared_tbl);
    let tenant = owner_word(&schema);
    if !catalog::has_privileges_of(identity::current_user(), owner) {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "tenancy.reference_shared: must be the owner of {table} (owned by {})",
                    role_name(owner)
                ),
            )
            .hint("Declare the reference in a tenant migration (it runs as the tenant's owner)."),
        );
    }
    require_columns(tbl, &table, &columns);
    if catalog::is_temporary(tbl) {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("tenancy.reference_shared: {table} is a temporary table"),
            )
            .hint("Declare references on tenant tables, in tenant migrations."),
        );
    }
    if crate::db::citus::present() {
        return native_foreign_key(tbl, &table, &columns, shared_tbl, &shared_table, key);
    }
    let Some(settings) = shared::shared_settings(shared_tbl) else {
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!("{tenant}: {table} cannot reference {shared_table} through pg_tenancy: {shared_table} is not prepared as a shared table"),
            )
            .detail("A shared table gets one trigger for all tenants, installed once by its owner.")
            .hint(format!(
                "As {}, the owner of {shared_table}, run SELECT tenancy.share_table({}); then declare the reference again (run the tenant migration again). Or keep a native foreign key (REFERENCES {shared_table}), which adds two triggers per tenant to {shared_table}.",
                role_name(shared_owner),
                quote_literal(&shared_table)
            )),
        )
    };
    let key = match key {
        Some(k) => columns_arg(k, REFERENCE, "key", "ARRAY['id']"),
        None => settings.key.clone(),
    };
    if key.len() != columns.len() {
        raise(
            TenancyError::new(
                SqlState::InvalidForeignKey,
                format!(
                    "{tenant}: {table} ({}) has {} columns but the key ({}) of {shared_table} has {}",
                    list(&columns),
                    columns.len(),
                    list(&key),
                    key.len()
                ),
            )
            .hint("List as many referencing columns as key columns."),
        );
    }
    let mut sorted_key = key.clone();
    sorted_key.sort();
    let mut shared_sorted = settings.key.clone();
    shared_sorted.sort();
    if sorted_key != shared_sorted {
        raise(
            TenancyError::new(
                SqlState::InvalidForeignKey,
                format!(
                    "{tenant}: ({}) is not the shared key of {shared_table}, which is ({})",
                    list(&key),
                    list(&settings.key)
                ),
            )
            .hint(format!(
                "Reference ({}), or have the owner of {shared_table} share it with that key: SELECT tenancy.share_table({}, ARRAY[{}]).",
                list(&settings.key),
                quote_literal(&shared_table),
                key.iter().map(|k| quote_literal(k)).collect::<Vec<_>>().join(", ")
            )),
        );
    }
    // The referencing columns in the shared key's order.
    let columns: Vec<String> = settings
        .key
        .iter()
        .map(|k| columns[key.iter().position(|x| x == k).unwrap_or(0)].clone())
        .collect();
    for (c, k) in columns.iter().zip(&settings.key) {
        if type_oid(tbl, c) != type_oid(shared_tbl, k) {
            raise(
                TenancyError::new(
                    SqlState::DatatypeMismatch,
                    format!(
                        "{tenant}: {table}.{} is {} but {shared_table}.{} is {}",
                        ident(c),
                        catalog::column_type(tbl, c),
                        ident(k),
                        catalog::column_type(shared_tbl, k)
                    ),
                )
                .hint(format!(
                    "Give the referencing column the key's type: ALTER TABLE {table} ALTER COLUMN {} TYPE {}.",
                    ident(c),
                    catalog::column_type(shared_tbl, k)
                )),
            );
        }
        if catalog::collations_differ(tbl, c, shared_tbl, k) {
            raise(
                TenancyError::new(
                    SqlState::CollationMismatch,
                    format!(
                        "{tenant}: {table}.{} and {shared_table}.{} have different collations, one of them nondeterministic: keys equal under one could differ under the other",
                        ident(c),
                        ident(k)
                    ),
                )
                .hint(format!(
                    "Give the referencing column the key's collation: ALTER TABLE {table} ALTER COLUMN {} TYPE {} COLLATE {}.",
                    ident(c),
                    catalog::column_type(shared_tbl, k),
                    catalog::column_collation(shared_tbl, k)
                )),
            );
        }
        let may = spi::get_one::<bool>(
            "SELECT pg_catalog.has_column_privilege($1, $2, $3::pg_catalog.text, 'REFERENCES')",
            &[
                identity::current_user().into(),
                shared_tbl.into(),
                k.as_str().into(),
            ],
        )
        .unwrap_or(false);
        if !may {
            let me = role_name(identity::current_user());
            raise(
                TenancyError::new(
                    SqlState::InsufficientPrivilege,
                    format!("{tenant}: {me} may not reference {shared_table} ({})", ident(k)),
                )
                .detail("As for a native foreign key, referencing a table needs the REFERENCES privilege on it.")
                .hint(format!("As the owner of {shared_table}: GRANT REFERENCES ON {shared_table} TO {me};")),
            );
        }
    }
    if relkind == "p" {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!("{tenant}: {table} is partitioned, which shared references do not support yet"),
            )
            .hint(format!("Keep a native foreign key on it: ALTER TABLE {table} ADD FOREIGN KEY ({}) REFERENCES {shared_table} ({}).", list(&columns), list(&settings.key))),
        );
    }
    let name = shared::reference_name(tbl, &columns);
    // What a dropped column, trigger or shared table left behind is cleared first: a registry row
    // whose trigger is gone enforces nothing, and a trigger of ours whose registry row is gone
    // (its shared table was dropped) only refuses writes.
    let registered = shared::has_reference(tbl, &name);
    let triggered = catalog::has_trigger(&table, &name);
    if registered && !triggered {
        shared::forget_reference(tbl, &name);
    } else if triggered && !registered && shared::is_reference_trigger(tbl, &name) {
        spi::run(&format!("DROP TRIGGER {} ON {table}", ident(&name)));
    }
    if shared::has_same_reference(tbl, &name, &columns, shared_tbl)
        && shared::is_enabled_reference_trigger(tbl, &name)
    {
        // Declared already, with pg_tenancy's own trigger, enabled (a trigger of that name that
        // is not ours, or disabled, is the 42710 below): nothing to do but what a first call
        // would also do to a native key on the same columns.
        drop_native_foreign_keys(tbl, &table, &columns, shared_tbl, &settings.key);
        return name;
    }
    if shared::has_reference(tbl, &name) || catalog::has_trigger(&table, &name) {
        raise(
            TenancyError::new(
                SqlState::DuplicateObject,
                format!("{tenant}: {table} already has a reference or trigger named {}", ident(&name)),
            )
            .hint("Each set of columns references a shared table once; SELECT * FROM tenancy.shared_references lists them."),
        );
    }
    drop_native_foreign_keys(tbl, &table, &columns, shared_tbl, &settings.key);
    ensure_index(tbl, &table, &columns);
    shared::save_reference(tbl, &name, &columns, shared_tbl, &settings.key);
    spi::run(&format!(
        "CREATE TRIGGER {} AFTER INSERT OR UPDATE OF {} ON {table} FOR EACH ROW EXECUTE FUNCTION tenancy._shared_ref_check()",
        ident(&name),
        list(&columns)
    ));
    validate_existing(tbl, &table, &schema, &columns, &name);
    name
}

/// Citus refuses triggers on reference tables (unless `citus.enable_unsafe_triggers`): there,
/// a reference is a native foreign key, kept with its fan-in (docs/choices.md).
fn native_foreign_key(
    tbl: pg_sys::Oid,
    table: &str,
    columns: &[String],
    shared_tbl: pg_sys::Oid,
    shared_table: &str,
    key: Option<Vec<Option<String>>>,
) -> String {
    let key = match key {
        Some(k) => columns_arg(k, REFERENCE, "key", "ARRAY['id']"),
        None => catalog::primary_key_columns(shared_tbl),
    };
    let name = truncate_name(&format!(
        "{}_{}_fkey",
        catalog::relname(tbl),
        columns.join("_")
    ));
    let exists = spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid OPERATOR(pg_catalog.=) $1 \
         AND k.conname OPERATOR(pg_catalog.=) $2::pg_catalog.name)",
        &[tbl.into(), name.as_str().into()],
    )
    .unwrap_or(false);
    if !exists {
        spi::run(&format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {shared_table} ({})",
            ident(&name),
            list(columns),
            list(&key)
        ));
    }
    name
}

/// A native foreign key on the same columns to the same key is what the declaration replaces
/// (the explicit conversion of an existing tenant: docs/functions/reference_shared.md).
fn drop_native_foreign_keys(
    tbl: pg_sys::Oid,
    table: &str,
    columns: &[String],
    shared_tbl: pg_sys::Oid,
    key: &[String],
) {
    let names = spi::rows_text_with(
        "SELECT k.conname::pg_catalog.text FROM pg_catalog.pg_constraint k \
         WHERE k.contype OPERATOR(pg_catalog.=) 'f' AND k.conrelid OPERATOR(pg_catalog.=) $1 AND k.confrelid OPERATOR(pg_catalog.=) $2 \
           AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY u.n) FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u(attnum, n) \
                JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) k.conrelid AND a.attnum OPERATOR(pg_catalog.=) u.attnum) \
               OPERATOR(pg_catalog.=) $3::pg_catalog.text[] \
           AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY u.n) FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY u(attnum, n) \
                JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) k.confrelid AND a.attnum OPERATOR(pg_catalog.=) u.attnum) \
               OPERATOR(pg_catalog.=) $4::pg_catalog.text[]",
        &[
            tbl.into(),
            shared_tbl.into(),
            columns.to_vec().into(),
            key.to_vec().into(),
        ],
    );
    for n in names {
        spi::run(&format!(
            "ALTER TABLE {table} DROP CONSTRAINT {}",
            ident(&n)
        ));
    }
}

/// The probe of a shared-row delete looks the key up in the tenant table: an index whose leading
/// columns are the referencing columns, created when there is none.
fn ensure_index(tbl: pg_sys::Oid, table: &str, columns: &[String]) {
    let has = spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indpred IS NULL \
           AND i.indnkeyatts OPERATOR(pg_catalog.>=) pg_catalog.cardinality($2::pg_catalog.text[]) \
           AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname::pg_catalog.text) \
                FROM pg_catalog.unnest((i.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality($2::pg_catalog.text[]) - 1]) AS u(attnum) \
                JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.=) u.attnum) \
               OPERATOR(pg_catalog.=) (SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.unnest($2::pg_catalog.text[]) AS x))",
        &[tbl.into(), columns.to_vec().into()],
    )
    .unwrap_or(false);
    if !has {
        let name = truncate_name(&format!(
            "{}_{}_idx",
            catalog::relname(tbl),
            columns.join("_")
        ));
        spi::run(&format!(
            "CREATE INDEX {} ON {table} ({})",
            ident(&name),
            list(columns)
        ));
    }
}

/// Rows already in the tenant table are checked (and noted) as the trigger checks new ones.
fn validate_existing(tbl: pg_sys::Oid, table: &str, schema: &str, columns: &[String], name: &str) {
    let Some(r) = shared::reference(tbl, name) else {
        return;
    };
    let not_null = columns
        .iter()
        .map(|c| format!("x.{} IS NOT NULL", ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let cols = columns
        .iter()
        .map(|c| format!("x.{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = shared::query(
        &format!("SELECT DISTINCT {cols} FROM ONLY {table} x WHERE {not_null}"),
        &[],
        Snap::Current,
        0,
    );
    let types: Vec<pg_sys::Oid> = columns.iter().map(|c| type_oid(tbl, c)).collect();
    for row in rows {
        let values: Vec<String> = row.into_iter().map(Option::unwrap_or_default).collect();
        // Printed with fixed settings by shared::query, read back with the same.
        let params: Vec<Param> = shared::canonical(|| {
            values
                .iter()
                .zip(&types)
                .map(|(v, t)| (*t, input_datum(*t, v), false))
                .collect()
        });
        check_key(
            &r,
            &Site {
                tbl,
                table,
                schema,
                columns,
                name,
            },
            &params,
            &values,
        );
    }
}

/// A datum of type `typ` from its text (the type's input function).
fn input_datum(typ: pg_sys::Oid, text: &str) -> pg_sys::Datum {
    let c = CString::new(text).unwrap_or_default();
    let mut input = pg_sys::InvalidOid;
    let mut ioparam = pg_sys::InvalidOid;
    // SAFETY: catalog lookups and a call of the type's own input function on a C string.
    unsafe {
        pg_sys::getTypeInputInfo(typ, &mut input, &mut ioparam);
        pg_sys::OidInputFunctionCall(input, c.as_ptr() as *mut _, ioparam, -1)
    }
}

fn key_display(cols: &[String], values: &[String]) -> String {
    format!(
        "({})=({})",
        cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", "),
        values.join(", ")
    )
}

/// Locks the shared row with this key `FOR KEY SHARE` (as the shared table's owner, under the
/// statement's snapshot, as native RI does: at READ COMMITTED a concurrent delete that commits
/// first makes it find nothing; at REPEATABLE READ and SERIALIZABLE it is a serialization
/// failure), 23503 when there is none; then notes the key for the referencing table.
/// The referencing side of a check: the tenant table, its schema, the reference's columns (as
/// named now) and trigger name.
struct Site<'a> {
    tbl: pg_sys::Oid,
    table: &'a str,
    schema: &'a str,
    columns: &'a [String],
    name: &'a str,
}

fn check_key(r: &shared::Reference, at: &Site<'_>, params: &[Param], shown: &[String]) {
    let Site {
        tbl,
        table,
        schema,
        columns,
        name,
    } = *at;
    let cond = r
        .key
        .iter()
        .zip(&r.ops)
        .enumerate()
        .map(|(i, (k, op))| format!("x.{} {op} ${}", ident(k), i + 1))
        .collect::<Vec<_>>()
        .join(" AND ");
    // The key as the shared row prints it (shared::query prints with fixed settings): the text
    // the note is kept under, the same the shared table's guard computes from that row.
    let texts = r
        .key
        .iter()
        .map(|k| format!("x.{}", ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let only = if r.shared_partitioned { "" } else { "ONLY " };
    let sql = format!(
        "SELECT {texts} FROM {only}{} x WHERE {cond} FOR KEY SHARE OF x",
        r.shared_sql
    );
    let found = identity::as_table_owner(r.shared_owner, || {
        shared::query(&sql, params, Snap::Current, 1)
    });
    let Some(row) = found.into_iter().next() else {
        let tenant = owner_word(schema);
        raise(
            TenancyError::new(
                SqlState::ForeignKeyViolation,
                format!(
                    "{tenant}: {table} {} references no row of {}",
                    key_display(columns, shown),
                    r.shared_sql
                ),
            )
            .detail(format!(
                "Key {} is not present in table {}.",
                key_display(&r.key, shown),
                r.shared_sql
            ))
            .hint(format!(
                "Insert that row into {} first, or use a key it has (reference {} of {tenant}, declared with tenancy.reference_shared).",
                r.shared_sql,
                ident(name)
            )),
        )
    };
    let key: Vec<String> = row.into_iter().map(Option::unwrap_or_default).collect();
    shared::note_presence(r.shared, &key, tbl);
}

/// The datum, type and text (printed with fixed settings, `shared::canonical`) of each column
/// `attnums` names in a trigger tuple; `None` when one is NULL.
///
/// # Safety
/// `tuple` and `desc` must be the trigger's valid tuple and descriptor, `attnums` its columns.
unsafe fn key_of(
    tuple: *mut pg_sys::HeapTupleData,
    desc: pg_sys::TupleDesc,
    attnums: &[i16],
) -> Option<(Vec<Param>, Vec<String>)> {
    let mut params = Vec::with_capacity(attnums.len());
    let mut texts = Vec::with_capacity(attnums.len());
    for &fnum in attnums {
        let mut isnull = false;
        let datum = pg_sys::SPI_getbinval(tuple, desc, fnum as i32, &mut isnull);
        if isnull {
            return None;
        }
        let typ = pg_sys::SPI_gettypeid(desc, fnum as i32);
        let v = shared::canonical(|| pg_sys::SPI_getvalue(tuple, desc, fnum as i32));
        texts.push(std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned());
        params.push((typ, datum, false));
    }
    Some((params, texts))
}

/// The columns of the firing trigger's `UPDATE OF` list, by number, in order (a rename keeps
/// them).
fn trigger_columns(trigger: &PgTrigger<'_>) -> Vec<i16> {
    let t = trigger.trigger();
    if t.tgattr.is_null() || t.tgnattr <= 0 {
        return Vec::new();
    }
    // SAFETY: PostgreSQL's trigger descriptor: tgnattr column numbers at tgattr.
    unsafe { std::slice::from_raw_parts(t.tgattr, t.tgnattr as usize) }.to_vec()
}

/// The name of column `attnum` in `desc`.
fn column_name(desc: pg_sys::TupleDesc, attnum: i16) -> String {
    // SAFETY: a valid descriptor; SPI_fname returns a palloc'd copy or NULL.
    unsafe {
        let p = pg_sys::SPI_fname(desc, attnum as i32);
        if p.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// pg_tenancy's triggers do their work only where `share_table` / `reference_shared` put them:
/// anything else (a trigger created by hand with another timing, level or event) is refused
/// before a tuple is read.
fn require_protocol(
    trigger: &PgTrigger<'_>,
    function: &str,
    row_events: &str,
    ok: bool,
    ncols: usize,
    want: usize,
) {
    let event = trigger.event();
    if !event.fired_for_row() || !event.fired_after() || !ok || ncols != want || want == 0 {
        let (table, _) = qualified(trigger);
        raise(
            TenancyError::new(
                SqlState::TriggerProtocolViolated,
                format!(
                    "trigger {} on {table} calls tenancy.{function}() but was not created by pg_tenancy",
                    ident(trigger.name().unwrap_or_default())
                ),
            )
            .detail(format!("tenancy.{function}() runs only as an AFTER {row_events} FOR EACH ROW trigger on the columns of the reference."))
            .hint("Drop that trigger; declare references with tenancy.reference_shared and prepare shared tables with tenancy.share_table."),
        );
    }
}

fn qualified(trigger: &PgTrigger<'_>) -> (String, String) {
    let schema = trigger.table_schema().unwrap_or_default();
    let name = trigger.table_name().unwrap_or_default();
    (format!("{}.{}", ident(&schema), ident(&name)), schema)
}

/// The tenant table's trigger (`AFTER INSERT OR UPDATE OF <columns>`), one per reference. Its
/// columns are its own `UPDATE OF` list (by number: renames follow), the shared key's those of the
/// shared table's guard.
#[pg_trigger]
fn _shared_ref_check<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, TenancyError> {
    let event = trigger.event();
    let data = trigger.trigger_data();
    let (table, schema) = qualified(trigger);
    let attnums = trigger_columns(trigger);
    let name = trigger.name().unwrap_or_default().to_string();
    // SAFETY: PostgreSQL hands a trigger its relation while it fires.
    let (relid, desc) = unsafe { ((*data.tg_relation).rd_id, (*data.tg_relation).rd_att) };
    let Some(r) = shared::reference(relid, &name) else {
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!(
                    "{}: trigger {} on {table} enforces no registered shared reference (or its shared table is gone)",
                    owner_word(&schema),
                    ident(&name)
                ),
            )
            .hint("Declare references with tenancy.reference_shared; SELECT * FROM tenancy.shared_references lists them. A trigger created by hand, or left after its shared table was dropped, can be dropped."),
        )
    };
    if r.key.is_empty() {
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!(
                    "{}: {table} references {} through pg_tenancy, but {} is no longer prepared (its guard trigger is gone)",
                    owner_word(&schema),
                    r.shared_sql,
                    r.shared_sql
                ),
            )
            .detail("Without the guard, deleting a referenced row would not be checked; new references are refused until it is back.")
            .hint(format!(
                "The owner of {} runs SELECT tenancy.share_table({}) again.",
                r.shared_sql,
                quote_literal(&r.shared_sql)
            )),
        );
    }
    require_protocol(
        trigger,
        "_shared_ref_check",
        "INSERT OR UPDATE",
        event.fired_by_insert() || event.fired_by_update(),
        attnums.len(),
        r.key.len(),
    );
    let columns: Vec<String> = attnums.iter().map(|&a| column_name(desc, a)).collect();
    for (i, &a) in attnums.iter().enumerate() {
        // SAFETY: the trigger's own descriptor.
        let typ = unsafe { pg_sys::SPI_gettypeid(desc, a as i32) };
        if Some(&typ) != r.key_types.get(i) {
            raise(
                TenancyError::new(
                    SqlState::DatatypeMismatch,
                    format!(
                        "{}: {table}.{} is {} but the key {}.{} it references is {}",
                        owner_word(&schema),
                        ident(&columns[i]),
                        catalog::column_type(relid, &columns[i]),
                        r.shared_sql,
                        ident(&r.key[i]),
                        catalog::column_type(r.shared, &r.key[i])
                    ),
                )
                .hint(format!(
                    "Give the referencing column the key's type again: ALTER TABLE {table} ALTER COLUMN {} TYPE {}.",
                    ident(&columns[i]),
                    catalog::column_type(r.shared, &r.key[i])
                )),
            );
        }
    }
    let tuple = if event.fired_by_update() {
        data.tg_newtuple
    } else {
        data.tg_trigtuple
    };
    // SAFETY: the trigger's own tuples, descriptor and columns.
    let Some((params, shown)) = (unsafe { key_of(tuple, desc, &attnums) }) else {
        return Ok(None); // MATCH SIMPLE: a NULL in the key references nothing
    };
    if event.fired_by_update() {
        // SAFETY: as above.
        let old = unsafe { key_of(data.tg_trigtuple, desc, &attnums) };
        if old.map(|(_, t)| t) == Some(shown.clone()) {
            return Ok(None); // key unchanged: checked when it was set
        }
    }
    check_key(
        &r,
        &Site {
            tbl: relid,
            table: &table,
            schema: &schema,
            columns: &columns,
            name: &name,
        },
        &params,
        &shown,
    );
    Ok(None)
}

/// "tenant x" when the schema is a tenant's, "table's schema x" otherwise (a reference from a
/// table outside tenants works the same).
fn owner_word(schema: &str) -> String {
    if crate::db::registry::tenant_by_name(schema).is_some() {
        format!("tenant {}", quote_ident(schema))
    } else {
        format!("schema {}", quote_ident(schema))
    }
}

/// The shared table's row trigger (`AFTER DELETE OR UPDATE OF <key>`), one for all tenants.
#[pg_trigger]
fn _shared_guard<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, TenancyError> {
    let data = trigger.trigger_data();
    // SAFETY: PostgreSQL hands a trigger its relation while it fires.
    let (relid, desc, partitioned) = unsafe {
        (
            (*data.tg_relation).rd_id,
            (*data.tg_relation).rd_att,
            (*(*data.tg_relation).rd_rel).relkind as u8 == b'p',
        )
    };
    let Some(settings) = shared::shared_settings(relid) else {
        return Ok(None);
    };
    let event = trigger.event();
    let attnums = trigger_columns(trigger);
    require_protocol(
        trigger,
        "_shared_guard",
        "DELETE OR UPDATE",
        event.fired_by_delete() || event.fired_by_update(),
        attnums.len(),
        settings.key.len(),
    );
    let (table, _) = qualified(trigger);
    // The key's columns as named now (the guard's UPDATE OF list follows renames).
    let key_names: Vec<String> = attnums.iter().map(|&a| column_name(desc, a)).collect();
    // SAFETY: the trigger's own tuples, descriptor and columns.
    let Some((params, key)) = (unsafe { key_of(data.tg_trigtuple, desc, &attnums) }) else {
        return Ok(None);
    };
    if event.fired_by_update() {
        // SAFETY: as above.
        let new = unsafe { key_of(data.tg_newtuple, desc, &attnums) };
        if new.map(|(_, t)| t) == Some(key.clone()) {
            return Ok(None);
        }
    }
    let holders = shared::holders(relid, &key);
    if holders.is_empty() {
        return Ok(None); // nothing references the key: one index probe, whatever the tenants
    }
    let cond = key_names
        .iter()
        .zip(&settings.ops)
        .enumerate()
        .map(|(i, (k, op))| format!("x.{} {op} ${}", ident(k), i + 1))
        .collect::<Vec<_>>()
        .join(" AND ");
    let cols = key_names
        .iter()
        .map(|k| format!("x.{}", ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let only = if partitioned { "" } else { "ONLY " };
    // NO ACTION: another row with the same key now (a key swapped within the statement) keeps
    // the references valid, as native RI's ri_Check_Pk_Match.
    // SAFETY: reads the relation's owner from the trigger's relation.
    let owner = unsafe { (*(*data.tg_relation).rd_rel).relowner };
    let still = identity::as_table_owner(owner, || {
        shared::query(
            &format!("SELECT {cols} FROM {only}{table} x WHERE {cond} FOR KEY SHARE OF x"),
            &params,
            Snap::Current,
            1,
        )
    });
    if let Some(row) = still.into_iter().next() {
        // The row holding the key now may print it differently (an equal value: 1.0 and 1.00,
        // 'ABC' and 'abc' under a case-insensitive collation): the notes follow it.
        let now: Vec<String> = row.into_iter().map(Option::unwrap_or_default).collect();
        if now != key {
            shared::move_presence(relid, &key, &now);
        }
        return Ok(None);
    }
    let action = if event.fired_by_update() {
        "change the key of"
    } else {
        "delete"
    };
    // SAFETY: reads this backend's transaction isolation level.
    let snapshot_level = unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32;
    for h in holders {
        let Some(t) = h.table else {
            shared::forget_presence(relid, &key, h.referencing);
            continue;
        };
        let only = if t.partitioned { "" } else { "ONLY " };
        let conds = t
            .conditions
            .iter()
            .map(|c| format!("({c})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let probe = |snap: Snap, lock: &str| {
            identity::as_table_owner(t.owner, || {
                !shared::query(
                    &format!("SELECT 1 FROM {only}{} x WHERE {conds}{lock}", t.sql),
                    &params,
                    snap,
                    1,
                )
                .is_empty()
            })
        };
        if !probe(Snap::Latest, " FOR KEY SHARE OF x") {
            shared::forget_presence(relid, &key, h.referencing);
            continue;
        }
        let tenant = quote_ident(&t.schema);
        let shown = key_display(&key_names, &key);
        if snapshot_level && !probe(Snap::Transaction, "") {
            raise(
                TenancyError::new(
                    SqlState::SerializationFailure,
                    format!(
                        "could not serialize access: {table}: cannot {action} the row {shown}: tenant {tenant} made {} reference it in a transaction that committed after this one started",
                        t.sql
                    ),
                )
                .hint("Retry the transaction: it then sees the reference (and refuses) or, if it is gone by then, succeeds."),
            );
        }
        raise(
            TenancyError::new(
                SqlState::ForeignKeyViolation,
                format!("{table}: cannot {action} the row {shown}: tenant {tenant} references it from {}", t.sql),
            )
            .detail(format!("Key {shown} is still referenced from table {}.", t.sql))
            .hint(format!(
                "First change or delete the rows of {} that reference it (tenant {tenant}), e.g. in a tenant migration, then {action} it.",
                t.sql
            )),
        );
    }
    Ok(None)
}

/// The shared table's `BEFORE TRUNCATE` guard: TRUNCATE skips row triggers, so it is refused
/// while tenant tables reference the table, as PostgreSQL refuses it for a native foreign key.
#[pg_trigger]
fn _shared_truncate<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, TenancyError> {
    let relid = trigger.relid().unwrap_or(pg_sys::InvalidOid);
    let (table, _) = qualified(trigger);
    let (n, first) = shared::referencing_tables(relid);
    if n > 0 {
        raise(
            TenancyError::new(
                SqlState::FeatureNotSupported,
                format!(
                    "TRUNCATE of {table} is refused: {n} tenant {} reference it through pg_tenancy (first: {})",
                    if n == 1 { "table" } else { "tables" },
                    first.unwrap_or_default()
                ),
            )
            .hint("DELETE the rows instead: each delete is checked against the tenants' references."),
        );
    }
    Ok(None)
}

/// Called by the DDL event trigger `pg_tenancy_shared_dropped` (sql/shared.sql, as the role
/// running the DDL) with the OIDs of the tables a `DROP TABLE` / `DROP SCHEMA` / `DROP OWNED`
/// dropped: their references and notes go, and a dropped shared table's settings. Anyone may call
/// it: it removes only rows of tables the catalog no longer has.
#[pg_extern(volatile, name = "_shared_ddl")]
#[search_path(pg_catalog, pg_temp)]
fn shared_ddl(oids: Option<Vec<Option<pg_sys::Oid>>>) {
    let oids: Vec<pg_sys::Oid> = oids.unwrap_or_default().into_iter().flatten().collect();
    if !oids.is_empty() {
        shared::forget_dropped(&oids);
    }
}
