//! The C symbols of 0.1.x functions whose signature changed in 0.2.0, with their old arguments.
//!
//! Installing a new package replaces the library at once, while each database keeps running the
//! SQL definitions of its installed version until `ALTER EXTENSION pg_tenancy UPDATE`. Those old
//! definitions name these symbols (`create_tenant_wrapper` with one argument, …): without them
//! the old functions would fail ("unboxing argument failed") between the two steps. Each one
//! behaves as its 0.2.0 successor with the new argument left out. No SQL is generated for them
//! (`sql = false`): the 0.2.0 definitions use the new symbols.

use pgrx::prelude::*;

use crate::api::args::required;

/// 0.1.x `tenancy._create_tenant(text)`: the tenant is owned by the caller.
#[pg_extern(volatile, sql = false)]
fn create_tenant(schema: Option<&str>) -> String {
    let name = required(
        schema,
        "create_tenant",
        "schema",
        "tenancy.create_tenant('org_1')",
    );
    crate::api::lifecycle::create(name, None);
    name.to_string()
}

/// 0.1.x `tenancy._manage_tenant(oid, text[], boolean, boolean, text)`: no owner is named.
#[pg_extern(volatile, sql = false)]
fn manage_tenant(
    tbl: Option<pg_sys::Oid>,
    template: Option<Vec<Option<String>>>,
    on_create: Option<bool>,
    on_update: Option<bool>,
    on_delete: Option<&str>,
) {
    crate::api::managed::manage_tenant_owned(tbl, template, on_create, on_update, on_delete, None)
}

/// 0.1.x `tenancy.reconcile(boolean)`: objects' owners are left alone.
#[pg_extern(volatile, sql = false)]
fn reconcile(
    dry_run: Option<bool>,
) -> TableIterator<'static, (name!(schema_name, Option<String>), name!(action, String))> {
    crate::api::fleet::reconcile_owners(dry_run, Some(false))
}

/// 0.1.x `tenancy.drop_tenant(text)`: the lock timeout is `tenancy.drop_lock_timeout`.
#[pg_extern(volatile, sql = false)]
fn drop_tenant(schema: Option<&str>) {
    let name = required(
        schema,
        "drop_tenant",
        "schema",
        "tenancy.drop_tenant('org_1')",
    );
    crate::api::lifecycle::drop(name, crate::db::settings::drop_lock_timeout_ms());
}
