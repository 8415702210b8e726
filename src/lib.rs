//! pg_tenancy: schema-per-tenant multitenancy inside PostgreSQL.
//!
//! Layers, from the bottom up (a module uses only what stands below it):
//! - `rules/`: pure rules, no pgrx (names, templates, the migration set, SQL text, schema diff);
//! - `db/`: storage through SPI (registry and ledger, catalog queries, settings, error reports);
//! - `apply`: one tenant: lock, pending set, run each migration, ledger;
//! - `api/`: the SQL-facing functions (lifecycle, migrations, managed tables, fleet, attribute
//!   tenancy, generator), with `sql/*.sql` for wrappers, views and the COMMIT-ing procedure;
//! - `workers/`: background workers of the fleet.

use pgrx::prelude::*;

pub mod rules;

mod api;
mod apply;
mod db;
mod snapshot;
mod workers;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/api.sql",
    name = "api",
    requires = [
        "schema",
        api::lifecycle::create_tenant_owned,
        api::lifecycle::register_tenant,
        api::lifecycle::rename_tenant,
        api::lifecycle::set_tenant,
        api::managed::manage_tenant_owned,
        api::managed::unmanage_tenant,
        api::managed::_managed_row,
        api::migrations::embedded_migrations,
        api::migrations::embedded_checksums,
        api::attribute::enable_attribute_tenancy,
        api::attribute::add_foreign_key
    ]
);
extension_sql_file!(
    "../sql/fleet.sql",
    name = "fleet",
    requires = [
        "api",
        api::lifecycle::migrate_tenant,
        workers::fleet::fleet_launch,
        workers::fleet::backend_alive,
        workers::fleet::backend_start,
        api::fleet::refuse_transaction_block,
        api::fleet::verify_managed,
        api::fleet::record_failure,
        api::generator::verify_deep,
        api::relink::system_identifier,
        api::relink::schema_ddl,
        api::citus::tenant_nodes,
        api::citus::verify_citus
    ]
);
extension_sql_file!(
    "../sql/shared.sql",
    name = "shared",
    requires = [
        "fleet",
        api::shared::share_table,
        api::shared::reference_shared,
        api::shared::_shared_ref_check,
        api::shared::_shared_guard,
        api::shared::_shared_truncate,
        api::shared::shared_ddl
    ]
);
extension_sql_file!(
    "../sql/generator.sql",
    name = "generator",
    requires = ["schema", api::generator::describe_as_owner]
);
extension_sql_file!(
    "../sql/snapshot.sql",
    name = "snapshot",
    requires = [
        "generator",
        "shared",
        api::snapshot::snapshot_mine,
        api::snapshot::snapshot_fingerprint,
        api::snapshot::build_snapshot
    ]
);
extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    db::settings::init();
    db::shared_fk::init();
}

/// The in-database test suite (`cargo pgrx test`), one file per feature in `pgrx-tests/`.
#[cfg(any(test, feature = "pg_test"))]
#[path = "../pgrx-tests/mod.rs"]
mod in_db;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
