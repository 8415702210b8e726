//! The fleet (docs/fleet.md): `CALL tenancy.migrate_all` hands tenants out from a queue
//! (`tenancy.fleet_items`) to itself and, with `jobs > 1`, to dynamic background workers. Every
//! worker runs the same step (`tenancy._fleet_step`: claim one tenant, migrate it through
//! `_migrate_step`, record the outcome) and commits after each step, so a failure, a killed
//! backend or a crash leaves each tenant wholly at a version it had or was migrating to. A step
//! is a tenant's pending migrations up to and including the first that adds enum values: the
//! values are committed before a later migration uses them, and the tenant stays queued for the
//! next step.

use pgrx::prelude::*;

use crate::api::args::required;
use crate::apply;
use crate::db::registry;
use crate::db::report::raise;
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::{quote_ident, quote_literal};
use crate::rules::template::Template;

/// Whether we run inside an explicit transaction block (`BEGIN … COMMIT`).
#[pg_extern(volatile, name = "_in_transaction_block")]
#[search_path(pg_catalog, pg_temp)]
fn in_transaction_block() -> bool {
    // SAFETY: reads the transaction state of this backend.
    unsafe { pg_sys::IsTransactionBlock() }
}

/// A managed row whose tenant is not registered (tables with `on_create`).
struct RowWithoutTenant {
    table: String,
    tbl: pg_sys::Oid,
    name: String,
    /// whether a schema of that name exists
    exists: bool,
    /// who would own the tenant reconcile creates
    owner: Option<pg_sys::Oid>,
}

fn managed_rows_without_tenant() -> Vec<RowWithoutTenant> {
    let mut out = Vec::new();
    for registry::ProvisioningTable {
        table: tbl,
        oid,
        template: raw,
        owner,
    } in registry::managed_for_verify()
    {
        let Ok(template) = Template::parse(&raw) else {
            continue;
        };
        let present: Vec<String> = template
            .columns()
            .iter()
            .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
            .collect();
        let query = format!(
            "SELECT DISTINCT r.n, EXISTS (SELECT FROM pg_catalog.pg_namespace s WHERE s.nspname OPERATOR(pg_catalog.=) r.n) \
             FROM (SELECT {} AS n FROM {tbl} WHERE {}) AS r \
             WHERE NOT EXISTS (SELECT FROM tenancy.tenants t WHERE t.schema_name OPERATOR(pg_catalog.=) r.n) ORDER BY 1",
            template.sql_expr(),
            present.join(" AND ")
        );
        // Read as the table's owner in a security-restricted operation: the table (its policies,
        // its columns' types) is the owner's, and nothing of it may run with the caller's rights.
        let table_owner = crate::db::catalog::table_owner(&tbl);
        let rows = crate::db::identity::as_tenant_owner(table_owner, "pg_catalog, pg_temp", || {
            spi::rows_text_bool(&query)
        });
        for (name, exists) in rows {
            // A tenant reconcile creates belongs to the table's configured owner, or else to the
            // table's owner (the role that inserted the row is not known any more).
            out.push(RowWithoutTenant {
                table: tbl.clone(),
                tbl: oid,
                name,
                exists,
                owner: Some(owner.unwrap_or(table_owner)),
            });
        }
    }
    out
}

/// Registered tenants of managed tables with `on_delete` `detach` or `drop` that no row of the
/// table names any more (rows removed by TRUNCATE, or deleted while the triggers were bypassed):
/// (table, policy, tenant). Under `keep` a tenant without a row is what the policy says.
fn tenants_without_row() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for t in registry::retiring_tables() {
        let Ok(template) = Template::parse(&t.template) else {
            continue;
        };
        // One anti-join per table, read as its owner (as above); tenants' names come as an array.
        let query = format!(
            "SELECT u.n FROM pg_catalog.unnest($1::pg_catalog.text[]) AS u(n) \
             WHERE NOT EXISTS (SELECT FROM {} AS r WHERE {} OPERATOR(pg_catalog.=) u.n) ORDER BY 1",
            t.table,
            template.sql_expr()
        );
        let owner = crate::db::catalog::table_owner(&t.table);
        let names = crate::db::identity::as_tenant_owner(owner, "pg_catalog, pg_temp", || {
            spi::rows_text_with(&query, &[t.tenants.clone().into()])
        });
        out.extend(
            names
                .into_iter()
                .map(|n| (t.table.clone(), t.on_delete.clone(), n)),
        );
    }
    out
}

fn dangling_problem(oid: u32) -> String {
    format!(
        "managed table with OID {oid} no longer exists (dropped while pg_tenancy's event triggers did not fire), but is still registered; SELECT tenancy.unmanage_tenant({oid}) removes the registration (its tenants stay)"
    )
}

#[pg_extern(stable, name = "_verify_managed")]
#[search_path(pg_catalog, pg_temp)]
fn verify_managed(
) -> TableIterator<'static, (name!(schema_name, Option<String>), name!(problem, String))> {
    let mut out: Vec<(Option<String>, String)> = registry::dangling_managed()
        .into_iter()
        .map(|oid| (None, dangling_problem(oid)))
        .collect();
    out.extend(managed_rows_without_tenant().into_iter().map(|r| {
        let problem = if r.exists {
            format!("a row of managed table {} names this tenant; the schema exists but is not registered (tenancy.register_tenant adopts it)", r.table)
        } else {
            format!("a row of managed table {} names this tenant, but there is no such schema (tenancy.reconcile() creates it)", r.table)
        };
        (Some(r.name), problem)
    }));
    out.extend(tenants_without_row().into_iter().map(|(table, policy, name)| {
        let fix = if policy == "drop" {
            format!(
                "SELECT tenancy.drop_tenant({}) does what deleting its row would have done (it drops the schema and its data), tenancy.detach_tenant keeps the schema",
                quote_literal(&name)
            )
        } else {
            format!(
                "SELECT tenancy.detach_tenant({}) does what deleting its row would have done (the schema stays, and inserting its row again re-adopts it)",
                quote_literal(&name)
            )
        };
        let problem = format!(
            "a tenant of managed table {table} (on_delete => {}), but no row of it names this tenant (removed by TRUNCATE, or deleted while the table's triggers were bypassed); {fix}",
            quote_literal(&policy)
        );
        (Some(name), problem)
    }));
    TableIterator::new(out)
}

/// Repairs what bypassed triggers (`session_replication_role = replica`, disabled triggers) left
/// behind: a managed row whose tenant does not exist at all gets it created and migrated. What
/// needs a decision (an unregistered schema of that name, a registration whose table is gone) is
/// only reported. `dry_run` (default) only says what it would do.
#[pg_extern(volatile, name = "reconcile")]
#[search_path(pg_catalog, pg_temp)]
pub fn reconcile_owners(
    dry_run: default!(Option<bool>, true),
    fix_owners: default!(Option<bool>, false),
) -> TableIterator<'static, (name!(schema_name, Option<String>), name!(action, String))> {
    let example = "tenancy.reconcile(dry_run => false)";
    let dry_run = required(dry_run, "reconcile", "dry_run", example);
    let fix_owners = required(fix_owners, "reconcile", "fix_owners", example);
    let mut out: Vec<(Option<String>, String)> = registry::dangling_managed()
        .into_iter()
        .map(|oid| (None, format!("left alone: {}", dangling_problem(oid))))
        .collect();
    for r in managed_rows_without_tenant() {
        let action = if r.exists {
            format!("left alone: schema exists but is not registered; adopt it with tenancy.register_tenant({}, <baseline>) (row of {})", quote_literal(&r.name), r.table)
        } else if dry_run {
            format!(
                "would create and migrate the tenant of a row of {}",
                r.table
            )
        } else {
            crate::api::lifecycle::create_for(&r.name, r.owner, Some(r.tbl));
            format!("created and migrated the tenant of a row of {}", r.table)
        };
        out.push((Some(r.name), action));
    }
    out.extend(crate::db::citus::reconcile(dry_run));
    if fix_owners {
        out.extend(
            give_objects_to_owners(dry_run)
                .into_iter()
                .map(|(t, a)| (Some(t), a)),
        );
    }
    TableIterator::new(out)
}

/// Hands every object of a tenant schema to the schema's owner (`ALTER … OWNER TO`, run with the
/// caller's rights: PostgreSQL requires it to own the object and have the owner's privileges, as
/// a superuser has). One row per tenant with such objects.
fn give_objects_to_owners(dry_run: bool) -> Vec<(String, String)> {
    let rows = spi::rows_text_text(
        "SELECT t.schema_name::pg_catalog.text, x.fix FROM tenancy._tenant_schemas t \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.schema_oid \
         CROSS JOIN LATERAL tenancy._foreign_owned(n.oid, n.nspowner) AS x ORDER BY 1",
    );
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let tenant = rows[i].0.clone();
        let fixes: Vec<&String> = rows[i..]
            .iter()
            .take_while(|(t, _)| *t == tenant)
            .map(|(_, f)| f)
            .collect();
        i += fixes.len();
        if let Some(t) = registry::tenant_by_name(&tenant) {
            registry::lock_tenant(t.oid);
        }
        if !dry_run {
            for f in &fixes {
                spi::run(f);
            }
        }
        let verb = if dry_run { "would give" } else { "gave" };
        out.push((
            tenant,
            format!(
                "{verb} {} objects to the tenant's owner: {}",
                fixes.len(),
                fixes
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    out
}

/// Records why a tenant failed in a fleet run (`_fleet_step`): `tenancy.tenants` is written only
/// through pg_tenancy's functions.
#[pg_extern(volatile, name = "_record_failure")]
#[search_path(pg_catalog, pg_temp)]
fn record_failure(schema: Option<&str>, error: Option<&str>) {
    let example = "tenancy._record_failure('org_1', '42P01: relation does not exist')";
    let schema = required(schema, "_record_failure", "schema", example);
    let error = required(error, "_record_failure", "error", example);
    registry::record_error(schema, error);
}

/// One step of a fleet run for one tenant (`tenancy._fleet_step`): its pending migrations up to
/// and including the first that adds enum values, so that `migrate_all` commits before a later
/// migration uses them ([`apply::migrate_step`]). How many it applied, and whether more is pending
/// (the tenant then stays queued for the next step, after the commit).
#[pg_extern(volatile, name = "_migrate_step")]
#[search_path(pg_catalog, pg_temp)]
fn migrate_step(
    schema: Option<&str>,
) -> TableIterator<'static, (name!(applied, i32), name!(more, bool))> {
    let schema = required(
        schema,
        "_migrate_step",
        "schema",
        "CALL tenancy.migrate_all(), which calls it",
    );
    let t = apply::require_tenant(schema);
    let (applied, more) = apply::migrate_step(&t);
    TableIterator::once((applied.len() as i32, more))
}

/// Raised by `migrate_all` inside a transaction block.
#[pg_extern(volatile, name = "_refuse_transaction_block")]
#[search_path(pg_catalog, pg_temp)]
fn refuse_transaction_block() {
    if in_transaction_block() {
        raise(
            TenancyError::new(
                SqlState::ActiveSqlTransaction,
                "tenancy.migrate_all cannot run inside a transaction block",
            )
            .hint("It commits after each tenant: run CALL tenancy.migrate_all() on its own, outside BEGIN … COMMIT. To migrate one tenant inside a transaction use tenancy.migrate_tenant."),
        );
    }
}
