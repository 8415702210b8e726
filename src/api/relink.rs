//! Tenants across `pg_upgrade` and DDL made behind pg_tenancy's back (issue 13, case 1).
//!
//! The registry keys a tenant by its schema's OID, which `pg_upgrade` does not keep. The OIDs are
//! therefore trusted only in the cluster that wrote them (`tenancy.registry_cluster` holds its
//! system identifier; `pg_upgrade` copies the row, a dump does not carry it): elsewhere, read
//! paths resolve each tenant by name (`tenancy._tenant_schemas`) and the first write re-links
//! the registry ([`registry::relink_if_moved`]). What the OID was for — noticing a tenant schema
//! dropped, replaced or renamed by hand — is kept by event triggers (`sql/fleet.sql`) that note it
//! on the tenant's row, which `pg_upgrade` keeps. `tenancy.relink` covers what they cannot see.

use pgrx::prelude::*;

use crate::api::args::required;
use crate::db::registry;
use crate::rules::names::quote_ident;

/// This cluster's system identifier (what `tenancy.registry_cluster` is compared with).
#[pg_extern(stable, parallel_safe, name = "_system_identifier")]
#[search_path(pg_catalog, pg_temp)]
fn system_identifier() -> i64 {
    registry::system_identifier()
}

/// Called by the schema event triggers (as the role running the DDL) with the OIDs of the schemas
/// a `DROP SCHEMA`, `DROP OWNED` or `ALTER SCHEMA` touched (none at `ddl_command_start`). It
/// re-links a registry that came across a `pg_upgrade`, then notes on each tenant's row only what
/// the catalog confirms (gone, renamed, back under its name), as the extension's owner: anyone
/// may call it, and can make it record nothing but the truth.
#[pg_extern(volatile, name = "_schema_ddl")]
#[search_path(pg_catalog, pg_temp)]
fn schema_ddl(oids: Option<Vec<Option<pg_sys::Oid>>>) {
    let oids: Vec<pg_sys::Oid> = oids.unwrap_or_default().into_iter().flatten().collect();
    registry::note_schema_changes(&oids);
}

/// Tenants whose registered schema is not the schema that now has the tenant's name (dropped and
/// re-created or restored by hand, or changed while the event triggers were off): reported, and
/// linked to that schema only with `dry_run => false`. Never deletes a ledger.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn relink(
    dry_run: default!(Option<bool>, true),
) -> TableIterator<'static, (name!(schema_name, String), name!(action, String))> {
    let dry_run = required(
        dry_run,
        "relink",
        "dry_run",
        "SELECT * FROM tenancy.relink(dry_run => false)",
    );
    if !dry_run {
        registry::relink_if_moved();
    }
    let mut out = Vec::new();
    for (name, registered, found, dropped_at) in registry::relink_candidates() {
        if !dry_run {
            registry::lock_tenant(found);
            registry::link(&name, found);
        }
        let was = match (registered, dropped_at) {
            (_, Some(at)) => format!("its schema was dropped behind pg_tenancy's back at {at}"),
            (Some(oid), None) => format!("its registered schema (OID {}) is gone", oid.to_u32()),
            (None, None) => "it had no schema".to_string(),
        };
        let verb = if dry_run { "would link" } else { "linked" };
        out.push((
            name.clone(),
            format!(
                "{was}; {verb} it to the schema now named {} (OID {}), keeping its ledger",
                quote_ident(&name),
                found.to_u32()
            ),
        ));
    }
    TableIterator::new(out)
}
