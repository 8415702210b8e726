//! Detached tenants of managed tables (`tenancy.detached_tenants`): a tenant that a managed
//! table's row created keeps its ledger when it is detached with its schema in place, so that
//! inserting the row again re-adopts the schema with exactly what was applied to it (issue 13).
//!
//! A record names the schema by name and OID: it is used only for that very schema. OIDs are kept
//! in step as the registry's are: re-linked by name after a `pg_upgrade` (with the registry, see
//! [`registry::relink_if_moved`]) and on restore (a trigger on the table), forgotten when the
//! schema is dropped (the `DROP SCHEMA` event trigger) or its table is dropped.
//!
//! Every query runs as the owner of pg_tenancy's tables, as in [`registry`].
//!
//! [`registry`]: crate::db::registry
//! [`registry::relink_if_moved`]: crate::db::registry::relink_if_moved

use pgrx::prelude::*;

use crate::db::identity::as_extension_owner;
use crate::db::report::OrRaise;
use crate::db::spi::get_one;

/// Keeps the ledger of tenant `name` before it is detached, when a managed table's row created it
/// (and that table still exists) and its schema is still there. Otherwise nothing is kept.
pub fn save(name: &str) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "INSERT INTO tenancy.detached_tenants (schema_name, schema_oid, managed_by, ledger) \
             SELECT t.schema_name, t.schema_oid, t.managed_by, \
                    COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object( \
                               'version', l.version, 'name', l.name, 'checksum', l.checksum, \
                               'applied_at', l.applied_at, \
                               'seconds', pg_catalog.date_part('epoch', l.duration), \
                               'baselined', l.baselined, \
                               'from_snapshot', pg_catalog.to_jsonb(l) OPERATOR(pg_catalog.->) 'from_snapshot') ORDER BY l.version) \
                     FROM tenancy.ledger l WHERE l.schema_name OPERATOR(pg_catalog.=) t.schema_name), '[]'::pg_catalog.jsonb) \
             FROM tenancy.tenants t \
             WHERE t.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text AND t.managed_by IS NOT NULL \
               AND EXISTS (SELECT FROM pg_catalog.pg_namespace n \
                           WHERE n.oid OPERATOR(pg_catalog.=) t.schema_oid AND n.nspname OPERATOR(pg_catalog.=) t.schema_name) \
               AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) t.managed_by::pg_catalog.oid) \
             ON CONFLICT (schema_name) DO UPDATE SET schema_oid = excluded.schema_oid, \
               managed_by = excluded.managed_by, ledger = excluded.ledger, detached_at = excluded.detached_at",
            &[name.into()],
        )
        .or_raise()
    })
}

/// Whether schema `oid`, named `name`, was detached from managed table `tbl` (and kept its ledger).
pub fn is_detached_from(name: &str, oid: pg_sys::Oid, tbl: pg_sys::Oid) -> bool {
    as_extension_owner(|| {
        get_one::<bool>(
            "SELECT EXISTS (SELECT FROM tenancy.detached_tenants d \
               WHERE d.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text \
                 AND d.schema_oid OPERATOR(pg_catalog.=) $2 \
                 AND d.managed_by::pg_catalog.oid OPERATOR(pg_catalog.=) $3)",
            &[name.into(), oid.into(), tbl.into()],
        )
        .unwrap_or(false)
    })
}

/// Moves the kept ledger of `name` back into `tenancy.ledger` (the tenant is registered again
/// first) and forgets the record.
pub fn restore(name: &str) {
    // Without the snapshot catalog (the old one, before ALTER EXTENSION UPDATE) the ledger has no
    // from_snapshot column.
    let sql = if crate::db::snapshot::has_catalog() {
        "WITH d AS (DELETE FROM tenancy.detached_tenants \
                    WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text RETURNING ledger) \
         INSERT INTO tenancy.ledger (schema_name, version, name, checksum, applied_at, duration, baselined, from_snapshot) \
         SELECT $1::pg_catalog.text, r.version, r.name, r.checksum, r.applied_at, \
                pg_catalog.make_interval(secs => r.seconds), r.baselined, COALESCE(r.from_snapshot, false) \
         FROM d CROSS JOIN LATERAL pg_catalog.jsonb_to_recordset(d.ledger) \
              AS r(version text, name text, checksum text, applied_at timestamptz, seconds float8, baselined boolean, from_snapshot boolean)"
    } else {
        "WITH d AS (DELETE FROM tenancy.detached_tenants \
                    WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text RETURNING ledger) \
         INSERT INTO tenancy.ledger (schema_name, version, name, checksum, applied_at, duration, baselined) \
         SELECT $1::pg_catalog.text, r.version, r.name, r.checksum, r.applied_at, \
                pg_catalog.make_interval(secs => r.seconds), r.baselined \
         FROM d CROSS JOIN LATERAL pg_catalog.jsonb_to_recordset(d.ledger) \
              AS r(version text, name text, checksum text, applied_at timestamptz, seconds float8, baselined boolean)"
    };
    as_extension_owner(|| crate::db::spi::run_with_args(sql, &[name.into()]).or_raise())
}

/// Forgets what was kept for `name` (it is registered some other way now).
pub fn forget(name: &str) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "DELETE FROM tenancy.detached_tenants WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[name.into()],
        )
        .or_raise()
    })
}

/// Forgets the records of schemas among `oids` that the catalog no longer has (dropped).
pub fn forget_dropped_schemas(oids: &[pg_sys::Oid]) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "DELETE FROM tenancy.detached_tenants d WHERE d.schema_oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) d.schema_oid)",
            &[oids.to_vec().into()],
        )
        .or_raise()
    })
}

/// After a `pg_upgrade` (schema OIDs not kept): each record follows the schema of its name;
/// records without one are forgotten.
pub fn relink_by_name() {
    crate::db::spi::writable();
    as_extension_owner(|| {
        Spi::run(
            "UPDATE tenancy.detached_tenants d SET schema_oid = n.oid FROM pg_catalog.pg_namespace n \
             WHERE n.nspname OPERATOR(pg_catalog.=) d.schema_name AND n.oid OPERATOR(pg_catalog.<>) d.schema_oid",
        )
        .or_raise();
        Spi::run(
            "DELETE FROM tenancy.detached_tenants d WHERE NOT EXISTS \
               (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) d.schema_name)",
        )
        .or_raise();
    })
}

/// The detached tenants whose kept ledger has migration `version`: how many, and the first
/// `limit` names in order.
pub fn with_version(version: &str, limit: i64) -> (i64, Vec<String>) {
    as_extension_owner(|| {
        let count = get_one::<i64>(
            "SELECT pg_catalog.count(*) FROM tenancy.detached_tenants d \
             WHERE d.ledger OPERATOR(pg_catalog.@>) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('version', $1::pg_catalog.text))",
            &[version.into()],
        )
        .unwrap_or(0);
        let names = get_one::<Vec<String>>(
            "SELECT pg_catalog.array_agg(n::pg_catalog.text ORDER BY n) FROM (SELECT d.schema_name AS n FROM tenancy.detached_tenants d \
             WHERE d.ledger OPERATOR(pg_catalog.@>) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('version', $1::pg_catalog.text)) \
             ORDER BY d.schema_name LIMIT $2) s",
            &[version.into(), limit.into()],
        )
        .unwrap_or_default();
        (count, names)
    })
}
