//! pg_tenancy: schema-per-tenant multitenancy inside PostgreSQL.
//!
//! Layers (a module uses only what stands below it):
//! - rules, pure (no pgrx): `error`, `names`, `sqltext`, `migration_set`
//! - storage: `registry` (SPI), `settings` (GUCs), `report` (errors → ereport)
//! - one tenant: `apply`
//! - SQL-facing: `lifecycle`, `migrations`; plus `sql/*.sql`

use pgrx::prelude::*;

pub mod error;
pub mod migration_set;
pub mod names;
pub mod schema_diff;
pub mod sqltext;
pub mod template;

mod apply;
mod attribute;
mod fleet;
mod generator;
mod lifecycle;
mod managed;
mod migrations;
mod registry;
mod report;
mod settings;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/api.sql",
    name = "api",
    requires = [
        "schema",
        lifecycle::create_tenant,
        lifecycle::register_tenant,
        lifecycle::rename_tenant,
        lifecycle::set_tenant,
        managed::manage_tenant,
        managed::unmanage_tenant,
        managed::_managed_row,
        migrations::embedded_migrations,
        attribute::enable_attribute_tenancy,
        attribute::add_foreign_key
    ]
);
extension_sql_file!(
    "../sql/fleet.sql",
    name = "fleet",
    requires = [
        "api",
        lifecycle::migrate_tenant,
        fleet::fleet_launch,
        fleet::refuse_transaction_block,
        fleet::verify_managed,
        generator::verify_deep
    ]
);
extension_sql_file!(
    "../sql/generator.sql",
    name = "generator",
    requires = ["schema"]
);
extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

#[cfg(test)]
mod fuzz;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
