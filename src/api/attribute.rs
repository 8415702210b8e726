//! Attribute (column) multitenancy (docs/attribute-tenancy.md): tables shared by all tenants, a tenant column, and
//! row-level security that limits every role (the owner too: FORCE) to the rows of
//! `current_setting('tenancy.tenant')`. Foreign keys between such tables include the tenant
//! column, so a row can never reference another tenant's row.

use pgrx::prelude::*;

use crate::api::args::required;
use crate::db::catalog;
use crate::db::registry;
use crate::db::report::{raise, OrRaise};
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::{quote_ident, quote_literal, truncate_name};

/// The RLS policy pg_tenancy installs.
pub const POLICY: &str = "tenancy_isolation";

fn require_column(table: &str, columns: &[String], col: &str) {
    if !columns.iter().any(|c| c == col) {
        raise(
            TenancyError::new(
                SqlState::UndefinedColumn,
                format!("table {table} has no column {}", quote_ident(col)),
            )
            .hint(catalog::columns_hint(table, columns)),
        );
    }
}

#[pg_extern(volatile, name = "_enable_attribute_tenancy")]
#[search_path(pg_catalog, pg_temp)]
fn enable_attribute_tenancy(tbl: Option<pg_sys::Oid>, tenant_column: Option<&str>) {
    let example = "tenancy.enable_attribute_tenancy('invoices', 'tenant_id')";
    let tbl = required(tbl, "enable_attribute_tenancy", "tbl", example);
    let col = required(
        tenant_column,
        "enable_attribute_tenancy",
        "tenant_column",
        example,
    );
    let table = catalog::table_info(tbl);
    let columns = catalog::table_columns(tbl);
    require_column(&table, &columns, col);
    let col_type = catalog::column_type(tbl, col);
    spi::run(&format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY"
    ));
    // Replaced when it is there; never a "does not exist, skipping" NOTICE on first use.
    if catalog::has_policy(tbl, POLICY) {
        spi::run(&format!("DROP POLICY {} ON {table}", quote_ident(POLICY)));
    }
    // NULL when no tenant is set, so no row matches: never all rows.
    let current =
        format!("(NULLIF(pg_catalog.current_setting('tenancy.tenant', true), ''))::{col_type}");
    spi::run(&format!(
        "CREATE POLICY {} ON {table} USING ({c} OPERATOR(pg_catalog.=) {current}) WITH CHECK ({c} OPERATOR(pg_catalog.=) {current})",
        quote_ident(POLICY),
        c = quote_ident(col),
    ));
    registry::save_attribute_table(tbl, col);
}

#[pg_extern(volatile, name = "_add_foreign_key")]
#[search_path(pg_catalog, pg_temp)]
fn add_foreign_key(
    from_tbl: Option<pg_sys::Oid>,
    from_cols: Option<Vec<Option<String>>>,
    to_tbl: Option<pg_sys::Oid>,
    to_cols: Option<Vec<Option<String>>>,
) -> String {
    let example = "tenancy.add_foreign_key('invoice_lines', ARRAY['invoice_id'], 'invoices')";
    let from_tbl = required(from_tbl, "add_foreign_key", "from_tbl", example);
    let to_tbl = required(to_tbl, "add_foreign_key", "to_tbl", example);
    let flatten = |v: Vec<Option<String>>, arg: &str| -> Vec<String> {
        if v.is_empty() || v.iter().any(Option::is_none) {
            raise(
                TenancyError::new(
                    SqlState::InvalidParameterValue,
                    format!("tenancy.add_foreign_key: {arg} must list one or more columns"),
                )
                .hint("Pass column names, e.g. ARRAY['project_id']."),
            );
        }
        v.into_iter().flatten().collect()
    };
    let from_cols = flatten(
        required(from_cols, "add_foreign_key", "from_cols", example),
        "from_cols",
    );
    let from_table = catalog::table_info(from_tbl);
    let to_table = catalog::table_info(to_tbl);
    let to_cols = match to_cols {
        Some(c) => flatten(c, "to_cols"),
        None => {
            let pk = catalog::primary_key_columns(to_tbl);
            if pk.is_empty() {
                raise(
                    TenancyError::new(
                        SqlState::InvalidParameterValue,
                        format!("table {to_table} has no primary key to reference"),
                    )
                    .hint("Pass to_cols, the referenced columns."),
                );
            }
            pk
        }
    };
    let from_columns = catalog::table_columns(from_tbl);
    let to_columns = catalog::table_columns(to_tbl);
    for c in &from_cols {
        require_column(&from_table, &from_columns, c);
    }
    for c in &to_cols {
        require_column(&to_table, &to_columns, c);
    }
    let from_tenant = registry::attribute_column(from_tbl);
    let to_tenant = registry::attribute_column(to_tbl);
    // Both attribute tables: the tenant column leads both sides (unless already listed).
    let (from_key, to_key) = match (&from_tenant, &to_tenant) {
        (Some(ft), Some(tt)) => {
            let with = |t: &String, cols: &[String]| -> Vec<String> {
                std::iter::once(t.clone())
                    .chain(cols.iter().filter(|c| *c != t).cloned())
                    .collect()
            };
            (with(ft, &from_cols), with(tt, &to_cols))
        }
        _ => (from_cols.clone(), to_cols.clone()),
    };
    if from_key.len() != to_key.len() {
        raise(
            TenancyError::new(
                SqlState::InvalidParameterValue,
                format!("foreign key from {from_table} has {} columns but references {} columns of {to_table}", from_key.len(), to_key.len()),
            )
            .hint("List as many referenced columns as referencing ones."),
        );
    }
    let list = |cols: &[String]| {
        cols.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if from_tenant.is_some() && to_tenant.is_some() && !catalog::has_unique_on(to_tbl, &to_key) {
        let name = truncate_name(&format!(
            "{}_{}_tenancy_key",
            catalog::relname(to_tbl),
            to_key.join("_")
        ));
        spi::run(&format!(
            "ALTER TABLE {to_table} ADD CONSTRAINT {} UNIQUE ({})",
            quote_ident(&name),
            list(&to_key)
        ));
    }
    let name = truncate_name(&format!(
        "{}_{}_fkey",
        catalog::relname(from_tbl),
        from_cols.join("_")
    ));
    spi::run(&format!(
        "ALTER TABLE {from_table} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {to_table} ({})",
        quote_ident(&name),
        list(&from_key),
        list(&to_key)
    ));
    name
}

/// Used by `set_tenant`: whether `tenant` is a registered attribute tenant.
pub fn is_attribute_tenant(tenant: &str) -> bool {
    registry::attribute_tenant_exists(tenant)
}

#[pg_extern(volatile, name = "add_attribute_tenant")]
#[search_path(pg_catalog, pg_temp)]
fn add_attribute_tenant(tenant: Option<&str>) -> String {
    let tenant = required(
        tenant,
        "add_attribute_tenant",
        "tenant",
        "tenancy.add_attribute_tenant('acme')",
    );
    crate::rules::names::validate_attribute_tenant(tenant).or_raise();
    registry::insert_attribute_tenant(tenant);
    tenant.to_string()
}

#[pg_extern(volatile, name = "remove_attribute_tenant")]
#[search_path(pg_catalog, pg_temp)]
fn remove_attribute_tenant(tenant: Option<&str>) {
    let tenant = required(
        tenant,
        "remove_attribute_tenant",
        "tenant",
        "tenancy.remove_attribute_tenant('acme')",
    );
    if !registry::delete_attribute_tenant(tenant) {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!(
                    "{} is not a registered attribute tenant",
                    quote_literal(tenant)
                ),
            )
            .hint("SELECT * FROM tenancy.attribute_tenants lists them."),
        );
    }
}
