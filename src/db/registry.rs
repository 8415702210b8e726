//! pg_tenancy's own tables through SPI: the tenant registry, the per-tenant ledger, registered
//! migrations, managed-table and attribute-table settings, and the per-tenant locks.
//!
//! Every query here runs as the owner of pg_tenancy's tables ([`as_extension_owner`]): nobody else
//! reads or writes them directly, so roles get grants on pg_tenancy's functions, not its tables.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::db::identity::as_extension_owner;
use crate::db::locks::{own_key, own_lock, own_try_lock, Own};
use crate::db::report::OrRaise;
use crate::db::spi::{get_one, kept_rows, kept_write, write_one};

const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
const OID: PgOid = PgOid::BuiltIn(PgBuiltInOids::OIDOID);
const INT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8OID);
const FLOAT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::FLOAT8OID);
const BOOL: PgOid = PgOid::BuiltIn(PgBuiltInOids::BOOLOID);
const TEXT_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
use crate::rules::migration_set::Migration;

/// A registered tenant. `oid` is the OID of its schema in this cluster, `InvalidOid` when it has
/// none (dropped behind pg_tenancy's back, or missing when the registry was re-linked).
#[derive(Clone, Debug)]
pub struct Tenant {
    pub name: String,
    pub oid: pg_sys::Oid,
}

/// Whether the catalog has what issue 13 added (`tenancy._tenant_schemas`, the cluster the OIDs
/// belong to). A 0.1.x catalog does not, while the new library runs before `ALTER EXTENSION
/// UPDATE` (see `api::compat`): its OIDs are then used as they are, as 0.1.x did.
fn has_relink_catalog() -> bool {
    // SAFETY: syscache lookups by name; missing_ok.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"tenancy".as_ptr(), true);
        nsp != pg_sys::InvalidOid
            && pg_sys::get_relname_relid(c"_tenant_schemas".as_ptr(), nsp) != pg_sys::InvalidOid
    }
}

/// Whether the catalog has what issue 13's managed-table work added (`tenancy.tenants.managed_by`,
/// `tenancy.detached_tenants`): not while the new library runs on a 0.1.x catalog before
/// `ALTER EXTENSION UPDATE` (see `api::compat`); what needs them is then skipped, as 0.1.x did.
pub fn has_managed_ddl_catalog() -> bool {
    // SAFETY: syscache lookups by name; missing_ok.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"tenancy".as_ptr(), true);
        nsp != pg_sys::InvalidOid
            && pg_sys::get_relname_relid(c"detached_tenants".as_ptr(), nsp) != pg_sys::InvalidOid
    }
}

/// The system identifier of this cluster (`pg_control_system()`), which `pg_upgrade` and a new
/// `initdb` change and physical replicas share.
pub fn system_identifier() -> i64 {
    // SAFETY: reads the control file's copy in shared memory.
    unsafe { pg_sys::GetSystemIdentifier() as i64 }
}

fn tenant_where(cond: &str, arg: DatumWithOid) -> Option<Tenant> {
    as_extension_owner(|| {
        // Read paths resolve through tenancy._tenant_schemas: the registered OID where it was
        // written in this cluster, else the schema of the tenant's name. Nothing is written.
        let from = if has_relink_catalog() {
            "tenancy._tenant_schemas"
        } else {
            "tenancy.tenants"
        };
        let q = format!("SELECT schema_name::pg_catalog.text, schema_oid FROM {from} WHERE {cond}");
        Spi::connect(|c| {
            let t = c.select(q.as_str(), Some(1), &[arg]).or_raise();
            if t.is_empty() {
                return None;
            }
            let (name, oid) = t.first().get_two::<String, pg_sys::Oid>().or_raise();
            Some(Tenant {
                name: name?,
                oid: oid.unwrap_or(pg_sys::InvalidOid),
            })
        })
    })
}

/// Whether the registered OIDs were written in this cluster (always, on a 0.1.x catalog).
pub fn oids_are_home() -> bool {
    if !has_relink_catalog() {
        return true;
    }
    as_extension_owner(|| {
        kept_rows(
            "SELECT (SELECT c.system_identifier FROM tenancy.registry_cluster c) \
                    IS NOT DISTINCT FROM $1::pg_catalog.int8",
            &[INT8],
            &[system_identifier().into()],
            |r| r.get::<bool>(1).or_raise(),
        )
        .into_iter()
        .next()
        .flatten()
        .unwrap_or(false)
    })
}

/// Write paths call this first: when the registered OIDs were written in another cluster (the
/// registry came across a `pg_upgrade`), re-link every tenant to the schema of its name (or of
/// the name it was renamed to by hand), leave the tenants whose schema was dropped behind
/// pg_tenancy's back unlinked, and record this cluster. Once, under a lock, as the extension's
/// owner; a no-op (one read of a one-row table) otherwise.
pub fn relink_if_moved() {
    if oids_are_home() {
        return;
    }
    own_lock(Own::Relink, 0, true);
    // A fresh snapshot: another session may have re-linked while this one waited.
    if oids_are_home() {
        return;
    }
    as_extension_owner(|| {
        // Two steps: an old OID may be a new schema's OID, and schema_oid is unique.
        // A tenant without a schema (NULL: dropped behind pg_tenancy's back) stays without one.
        let linked: Vec<String> = Spi::connect_mut(|c| {
            c.update(
                "UPDATE tenancy.tenants SET schema_oid = NULL WHERE schema_oid IS NOT NULL \
                 RETURNING schema_name::pg_catalog.text",
                None,
                &[],
            )
            .or_raise()
            .map(|r| r.get::<String>(1).or_raise().unwrap_or_default())
            .collect()
        });
        crate::db::spi::run_with_args(
            "UPDATE tenancy.tenants t SET schema_oid = n.oid FROM pg_catalog.pg_namespace n \
             WHERE t.schema_name OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]) \
               AND n.nspname OPERATOR(pg_catalog.=) coalesce(t.schema_renamed_to, t.schema_name)",
            &[linked.into()],
        )
        .or_raise();
        if has_managed_ddl_catalog() {
            crate::db::detached::relink_by_name();
        }
        crate::db::spi::run_with_args(
            "INSERT INTO tenancy.registry_cluster (system_identifier) VALUES ($1) \
             ON CONFLICT (one_row) DO UPDATE SET system_identifier = excluded.system_identifier",
            &[system_identifier().into()],
        )
        .or_raise();
    })
}

/// What DDL did to tenant schemas, as the catalog shows it now (the event triggers of
/// `sql/fleet.sql` pass the OIDs of the schemas a `DROP SCHEMA`, `DROP OWNED` or `ALTER SCHEMA`
/// touched). For each registered OID: gone → the tenant is marked dropped and unlinked; renamed →
/// the new name is noted; back under its registered name → the note is cleared. Only what the
/// catalog confirms is written, so any caller may pass any OIDs.
pub fn note_schema_changes(oids: &[pg_sys::Oid]) {
    relink_if_moved();
    if oids.is_empty() {
        return;
    }
    if has_managed_ddl_catalog() {
        crate::db::detached::forget_dropped_schemas(oids);
    }
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "UPDATE tenancy.tenants t SET schema_oid = NULL, schema_renamed_to = NULL, \
                    schema_dropped_at = pg_catalog.now() \
             WHERE t.schema_oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) t.schema_oid)",
            &[oids.to_vec().into()],
        )
        .or_raise();
        crate::db::spi::run_with_args(
            "UPDATE tenancy.tenants t \
                SET schema_renamed_to = CASE WHEN n.nspname OPERATOR(pg_catalog.=) t.schema_name THEN NULL ELSE n.nspname END \
             FROM pg_catalog.pg_namespace n \
             WHERE n.oid OPERATOR(pg_catalog.=) t.schema_oid AND t.schema_oid OPERATOR(pg_catalog.=) ANY ($1) \
               AND t.schema_renamed_to IS DISTINCT FROM \
                   CASE WHEN n.nspname OPERATOR(pg_catalog.=) t.schema_name THEN NULL ELSE n.nspname END",
            &[oids.to_vec().into()],
        )
        .or_raise();
    })
}

/// Tenants whose registered schema is gone while a schema that is no other tenant's has the
/// tenant's name: (name, registered OID or NULL, OID of the schema of that name, when the
/// registered one was seen dropped). What `tenancy.relink` reports and, when asked, links.
pub fn relink_candidates() -> Vec<(String, Option<pg_sys::Oid>, pg_sys::Oid, Option<String>)> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT t.schema_name::pg_catalog.text, t.schema_oid, n.oid, t.schema_dropped_at::pg_catalog.text \
                 FROM tenancy._tenant_schemas t JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) t.schema_name \
                 WHERE t.schema_oid IS DISTINCT FROM n.oid \
                   AND NOT EXISTS (SELECT FROM pg_catalog.pg_namespace m WHERE m.oid OPERATOR(pg_catalog.=) t.schema_oid) \
                   AND NOT EXISTS (SELECT FROM tenancy._tenant_schemas o WHERE o.schema_oid OPERATOR(pg_catalog.=) n.oid) \
                 ORDER BY 1",
                None,
                &[],
            )
            .or_raise()
            .map(|r| {
                (
                    r.get::<String>(1).or_raise().unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2).or_raise(),
                    r.get::<pg_sys::Oid>(3).or_raise().unwrap_or(pg_sys::InvalidOid),
                    r.get::<String>(4).or_raise(),
                )
            })
            .collect()
        })
    })
}

/// Links a tenant to `oid` (the schema that has its name, no other tenant's), clearing what was
/// noted about its schema.
pub fn link(name: &str, oid: pg_sys::Oid) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "UPDATE tenancy.tenants SET schema_oid = $2, schema_dropped_at = NULL, schema_renamed_to = NULL \
             WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[name.into(), oid.into()],
        )
        .or_raise();
    })
}

/// A tenant as seen once its lock is held: its registry row, the current name of the schema with
/// its OID (None when gone), and whether a fleet failure is recorded.
pub struct Locked {
    pub tenant: Tenant,
    pub schema_name: Option<String>,
    pub has_error: bool,
}

/// The name a tenant's schema was renamed to behind pg_tenancy's back, if it was: as the event
/// trigger noted it, or (in the cluster that wrote the registry) the name its registered OID has
/// now.
pub fn renamed_to(name: &str) -> Option<String> {
    if !has_relink_catalog() {
        return None;
    }
    let home = oids_are_home();
    as_extension_owner(|| {
        get_one::<String>(
            "SELECT coalesce(t.schema_renamed_to::pg_catalog.text, \
                             CASE WHEN $2 THEN n.nspname::pg_catalog.text END) \
             FROM tenancy.tenants t LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.schema_oid \
             WHERE t.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text \
               AND t.schema_dropped_at IS NULL \
               AND coalesce(t.schema_renamed_to, CASE WHEN $2 THEN n.nspname END) OPERATOR(pg_catalog.<>) t.schema_name",
            &[name.into(), home.into()],
        )
    })
}

/// What a migration run needs once its tenant's lock is held, in one kept query (so one fresh
/// snapshot, after the lock): the tenant as [`locked_tenant`] reads it, the OID of its schema's
/// owner, its ledger (version, checksum of each applied migration), and the registered migrations as
/// [`registered_versions`] reads them.
pub struct RunState {
    pub locked: Locked,
    pub owner: Option<pg_sys::Oid>,
    pub ledger: Vec<(String, String)>,
    pub registered: Vec<Migration>,
    pub tampered: Vec<String>,
}

pub fn run_state(oid: pg_sys::Oid) -> Option<RunState> {
    type Texts = Option<Vec<Option<String>>>;
    fn texts(a: Texts) -> Vec<String> {
        a.unwrap_or_default()
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }
    as_extension_owner(|| {
        // Each side's arrays come from one aggregation over the same rows, so their elements
        // correspond; no ORDER BY (each would sort on its own): the known set is ordered after
        // merging, and the tampered labels below.
        let row = kept_rows(
            "SELECT t.schema_name::pg_catalog.text, n.nspname::pg_catalog.text, t.last_error IS NOT NULL, n.nspowner, \
                    l.versions, l.checksums, r.versions, r.names, r.checksums, r.authors, r.tampered \
             FROM tenancy.tenants t \
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.schema_oid \
             CROSS JOIN LATERAL ( \
                 SELECT pg_catalog.array_agg(l.version::pg_catalog.text), pg_catalog.array_agg(l.checksum::pg_catalog.text) \
                 FROM tenancy.ledger l WHERE l.schema_name OPERATOR(pg_catalog.=) t.schema_name) AS l (versions, checksums) \
             CROSS JOIN ( \
                 SELECT pg_catalog.array_agg(m.version::pg_catalog.text), \
                        pg_catalog.array_agg(m.name::pg_catalog.text), \
                        pg_catalog.array_agg(m.checksum::pg_catalog.text), \
                        pg_catalog.array_agg(m.added_by::pg_catalog.text), \
                        pg_catalog.array_agg(pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(m.sql, 'UTF8')), 'hex') \
                                             OPERATOR(pg_catalog.<>) m.checksum) \
                 FROM tenancy.registered_migrations m) AS r (versions, names, checksums, authors, tampered) \
             WHERE t.schema_oid OPERATOR(pg_catalog.=) $1",
            &[OID],
            &[oid.into()],
            |r| {
                (
                    (
                        r.get::<String>(1).or_raise(),
                        r.get::<String>(2).or_raise(),
                        r.get::<bool>(3).or_raise(),
                        r.get::<pg_sys::Oid>(4).or_raise(),
                    ),
                    (
                        texts(r.get::<Vec<Option<String>>>(5).or_raise()),
                        texts(r.get::<Vec<Option<String>>>(6).or_raise()),
                    ),
                    (
                        texts(r.get::<Vec<Option<String>>>(7).or_raise()),
                        texts(r.get::<Vec<Option<String>>>(8).or_raise()),
                        texts(r.get::<Vec<Option<String>>>(9).or_raise()),
                        r.get::<Vec<Option<String>>>(10).or_raise().unwrap_or_default(),
                        r.get::<Vec<Option<bool>>>(11).or_raise().unwrap_or_default(),
                    ),
                )
            },
        )
        .into_iter()
        .next()?;
        let ((name, nsp, err, owner), (lv, lc), (rv, rn, rc, ra, rt)) = row;
        let mut tampered = Vec::new();
        let mut registered = Vec::with_capacity(rv.len());
        for (i, version) in rv.into_iter().enumerate() {
            let m = Migration {
                version,
                name: rn.get(i).cloned().unwrap_or_default(),
                checksum: rc.get(i).cloned().unwrap_or_default(),
                sql: String::new(),
                author: ra.get(i).cloned().flatten(),
            };
            if rt.get(i).copied().flatten().unwrap_or(false) {
                tampered.push(format!("{}_{}", m.version, m.name));
            }
            registered.push(m);
        }
        tampered.sort();
        Some(RunState {
            locked: Locked {
                tenant: Tenant { name: name?, oid },
                schema_name: nsp,
                has_error: err.unwrap_or(false),
            },
            owner,
            ledger: lv.into_iter().zip(lc).collect(),
            registered,
            tampered,
        })
    })
}

pub fn locked_tenant(oid: pg_sys::Oid) -> Option<Locked> {
    as_extension_owner(|| {
        // A kept plan; after the lock (which gave this transaction an ID) a read takes a fresh
        // snapshot, so what committed while this waited is seen (db/spi.rs).
        kept_rows(
            "SELECT t.schema_name::pg_catalog.text, n.nspname::pg_catalog.text, t.last_error IS NOT NULL \
             FROM tenancy.tenants t LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.schema_oid \
             WHERE t.schema_oid OPERATOR(pg_catalog.=) $1",
            &[OID],
            &[oid.into()],
            |r| {
                (
                    r.get::<String>(1).or_raise(),
                    r.get::<String>(2).or_raise(),
                    r.get::<bool>(3).or_raise(),
                )
            },
        )
        .into_iter()
        .next()
        .and_then(|(name, nsp, err)| {
            Some(Locked {
                tenant: Tenant { name: name?, oid },
                schema_name: nsp,
                has_error: err.unwrap_or(false),
            })
        })
    })
}

pub fn tenant_by_name(name: &str) -> Option<Tenant> {
    if !has_relink_catalog() {
        return as_extension_owner(|| {
            tenant_where(
                "schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text",
                name.into(),
            )
        });
    }
    // The common case as a kept plan (every fleet step starts here); tenant_where's query.
    as_extension_owner(|| {
        kept_rows(
            "SELECT schema_name::pg_catalog.text, schema_oid FROM tenancy._tenant_schemas \
             WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[TEXT],
            &[name.into()],
            |r| {
                (
                    r.get::<String>(1).or_raise(),
                    r.get::<pg_sys::Oid>(2).or_raise(),
                )
            },
        )
        .into_iter()
        .next()
        .and_then(|(name, oid)| {
            Some(Tenant {
                name: name?,
                oid: oid.unwrap_or(pg_sys::InvalidOid),
            })
        })
    })
}

pub fn tenant_by_oid(oid: pg_sys::Oid) -> Option<Tenant> {
    as_extension_owner(|| tenant_where("schema_oid OPERATOR(pg_catalog.=) $1", oid.into()))
}

/// The tenant whose name equals `key` ignoring case (see [`crate::rules::names::fold`]).
pub fn tenant_by_key(key: &str) -> Option<Tenant> {
    as_extension_owner(|| tenant_where("name_key OPERATOR(pg_catalog.=) $1", key.into()))
}

pub fn insert(name: &str, key: &str, oid: pg_sys::Oid) {
    insert_managed(name, key, oid, None)
}

/// Registers a tenant that the row of managed table `managed_by` created or re-adopted (`None`:
/// any other way).
pub fn insert_managed(name: &str, key: &str, oid: pg_sys::Oid, managed_by: Option<pg_sys::Oid>) {
    relink_if_moved();
    let managed_by = managed_by.filter(|_| has_managed_ddl_catalog());
    as_extension_owner(|| match managed_by {
        None => crate::db::spi::run_with_args(
            "INSERT INTO tenancy.tenants (schema_name, name_key, schema_oid) VALUES ($1, $2, $3)",
            &[name.into(), key.into(), oid.into()],
        )
        .or_raise(),
        Some(tbl) => crate::db::spi::run_with_args(
            "INSERT INTO tenancy.tenants (schema_name, name_key, schema_oid, managed_by) \
             VALUES ($1, $2, $3, $4::pg_catalog.oid::pg_catalog.regclass)",
            &[name.into(), key.into(), oid.into(), tbl.into()],
        )
        .or_raise(),
    })
}

/// Renames in the registry; the ledger follows through its `ON UPDATE CASCADE` key.
pub fn rename(old_name: &str, new_name: &str, new_key: &str) {
    relink_if_moved();
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "UPDATE tenancy.tenants SET schema_name = $2, name_key = $3 WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[old_name.into(), new_name.into(), new_key.into()],
        )
        .or_raise()
    })
}

/// Unregisters (by name: a tenant without a schema has no OID); the ledger rows go with it
/// (`ON DELETE CASCADE`).
pub fn delete(name: &str) {
    relink_if_moved();
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "DELETE FROM tenancy.tenants WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[name.into()],
        )
        .or_raise()
    })
}

/// Writes one ledger row, in the same transaction as the migration's DDL.
pub fn record(tenant: &str, m: &Migration, seconds: f64, baselined: bool) {
    as_extension_owner(|| {
        kept_write(
            "INSERT INTO tenancy.ledger (schema_name, version, name, checksum, duration, baselined) \
             VALUES ($1, $2, $3, $4, pg_catalog.make_interval(secs => $5), $6)",
            &[TEXT, TEXT, TEXT, TEXT, FLOAT8, BOOL],
            &[
                tenant.into(),
                m.version.as_str().into(),
                m.name.as_str().into(),
                m.checksum.as_str().into(),
                seconds.into(),
                baselined.into(),
            ],
            |_| (),
        );
    })
}

/// Writes the ledger rows of a tenant built from the snapshot (src/snapshot.rs): every migration
/// of `todo`, marked `from_snapshot`, in one statement; `seconds` is the whole build's.
pub fn record_snapshot(tenant: &str, todo: &[Migration], seconds: f64) {
    let versions: Vec<String> = todo.iter().map(|m| m.version.clone()).collect();
    let names: Vec<String> = todo.iter().map(|m| m.name.clone()).collect();
    let checksums: Vec<String> = todo.iter().map(|m| m.checksum.clone()).collect();
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "INSERT INTO tenancy.ledger (schema_name, version, name, checksum, duration, from_snapshot) \
             SELECT $1, m.v, m.n, m.c, pg_catalog.make_interval(secs => $5), true \
             FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]), pg_catalog.unnest($3::pg_catalog.text[]), pg_catalog.unnest($4::pg_catalog.text[])) AS m(v, n, c)",
            &[
                tenant.into(),
                versions.into(),
                names.into(),
                checksums.into(),
                seconds.into(),
            ],
        )
        .or_raise()
    })
}

/// Accepts new text for `version`: every ledger row of that version takes `checksum`.
pub fn repair(version: &str, checksum: &str) -> i64 {
    as_extension_owner(|| {
        write_one::<i64>(
            "WITH fixed AS (UPDATE tenancy.ledger SET checksum = $2 \
               WHERE version OPERATOR(pg_catalog.=) $1 AND checksum OPERATOR(pg_catalog.<>) $2 RETURNING 1) \
             SELECT pg_catalog.count(*) FROM fixed",
            &[version.into(), checksum.into()],
        )
        .unwrap_or(0)
    })
}

/// The migrations stored with `tenancy.add_migration`; with `with_sql` false their text is left
/// empty (what deciding the pending set needs), see [`registered_sql`].
pub fn registered_migrations(with_sql: bool) -> Vec<Migration> {
    if !with_sql {
        return registered_versions();
    }
    as_extension_owner(|| {
        let query = "SELECT version, name, checksum, sql, added_by::pg_catalog.text FROM tenancy.registered_migrations";
        Spi::connect(|c| {
            let t = c.select(query, None, &[]).or_raise();
            t.map(|row| {
                let m = Migration {
                    version: row.get::<String>(1).or_raise().unwrap_or_default(),
                    name: row.get::<String>(2).or_raise().unwrap_or_default(),
                    checksum: row.get::<String>(3).or_raise().unwrap_or_default(),
                    sql: row.get::<String>(4).or_raise().unwrap_or_default(),
                    author: row.get::<String>(5).or_raise(),
                };
                check_stored_text(&m.version, &m.name, &m.sql, &m.checksum);
                m
            })
            .collect()
        })
    })
}

/// The text of the registered migrations with these versions: (version, sql), each checked
/// against its stored checksum, and held until the transaction ends so that
/// `tenancy.remove_migration` waits for this run and then sees it in the ledger (see
/// [`crate::db::known_set::load_text`]); a row deleted meanwhile is left out.
///
/// How they are held: at READ COMMITTED and for up to [`FEW_REGISTERED`] versions (a fleet step,
/// `migrate_tenant` after a release), by a shared advisory lock per version
/// ([`lock_registered_shared`]), which writes no WAL, then read with a fresh snapshot, so a
/// removal that committed while this waited is seen. Otherwise by `FOR KEY SHARE` row locks: one
/// WAL record per row and transaction, and a multixact when two transactions hold one, but no
/// entry in the shared lock table per version (a new tenant applying hundreds of registered
/// migrations), and under REPEATABLE READ a concurrent removal fails with a serialization error
/// instead of going unseen by the transaction's snapshot. `remove_migration` takes both.
pub fn registered_sql(versions: &[String]) -> Vec<(String, String)> {
    // Row locks write: not on a standby.
    crate::db::spi::writable();
    // SAFETY: reads this transaction's isolation level.
    let snapshot_per_statement =
        unsafe { pg_sys::XactIsoLevel } < pg_sys::XACT_REPEATABLE_READ as i32;
    let advisory = snapshot_per_statement && versions.len() <= FEW_REGISTERED;
    if advisory {
        for v in versions {
            lock_registered_shared(v);
        }
    }
    let query = if advisory {
        "SELECT version, sql, name, checksum FROM tenancy.registered_migrations WHERE version OPERATOR(pg_catalog.=) ANY ($1)"
    } else {
        "SELECT version, sql, name, checksum FROM tenancy.registered_migrations WHERE version OPERATOR(pg_catalog.=) ANY ($1) FOR KEY SHARE"
    };
    as_extension_owner(|| {
        // A kept plan run as a write: a fresh snapshot for this statement, taken after the locks
        // above.
        kept_write(query, &[TEXT_ARRAY], &[versions.to_vec().into()], |r| {
            let version = r.get::<String>(1).or_raise().unwrap_or_default();
            let sql = r.get::<String>(2).or_raise().unwrap_or_default();
            let name = r.get::<String>(3).or_raise().unwrap_or_default();
            let checksum = r.get::<String>(4).or_raise().unwrap_or_default();
            check_stored_text(&version, &name, &sql, &checksum);
            (version, sql)
        })
    })
}

/// Up to how many registered migrations [`registered_sql`] holds by advisory locks (each takes
/// an entry of the shared lock table until the transaction ends) rather than by row locks.
pub const FEW_REGISTERED: usize = 8;

/// A shared advisory lock on a registered migration's version until the transaction ends: held
/// by every transaction applying it ([`registered_sql`]); `remove_migration` takes it exclusively.
fn lock_registered_shared(version: &str) {
    own_lock(Own::Registered, own_key(version), false);
}

/// Waits for every transaction applying registered migration `version` (they hold its lock
/// shared, see [`registered_sql`]) and keeps new ones waiting until this transaction ends
/// (`remove_migration`, through `db::snapshot::lock_for_removal`'s bounded attempts).
pub fn lock_registered_exclusive(version: &str) {
    own_lock(Own::Registered, own_key(version), true);
}

/// The registered migrations without their text (what deciding the pending set needs): one kept
/// plan. Text edited behind `tenancy.add_migration` is found where text is read or a tenant's run
/// starts ([`run_state`], [`registered_sql`]), not here: hashing every migration's text on each
/// sign-up's fingerprint check cost more than the rest of the read.
pub fn registered_versions() -> Vec<Migration> {
    as_extension_owner(|| {
        kept_rows(
            "SELECT version, name, checksum, added_by::pg_catalog.text \
             FROM tenancy.registered_migrations ORDER BY version",
            &[],
            &[],
            |row| Migration {
                version: row.get::<String>(1).or_raise().unwrap_or_default(),
                name: row.get::<String>(2).or_raise().unwrap_or_default(),
                checksum: row.get::<String>(3).or_raise().unwrap_or_default(),
                sql: String::new(),
                author: row.get::<String>(4).or_raise(),
            },
        )
    })
}

/// The checksum is recomputed from the stored text whenever the text is read to be applied or
/// built: text changed behind `tenancy.add_migration` (which only a superuser or the extension's
/// owner can do) is drift, never silently applied.
fn check_stored_text(version: &str, name: &str, sql: &str, stored: &str) {
    let actual = crate::rules::migration_set::checksum(sql);
    if actual != stored {
        crate::db::report::raise(
            crate::rules::error::TenancyError::new(
                crate::rules::error::SqlState::ObjectNotInPrerequisiteState,
                format!(
                    "registered migration {version}_{name}: its text was changed outside tenancy.add_migration (stored checksum {stored}, text checksum {actual})"
                ),
            )
            .hint("Restore the original text in tenancy.registered_migrations; to change a migration, register a new version with tenancy.add_migration."),
        )
    }
}

/// Locks registered migration `version`'s row FOR UPDATE (as the DELETE that follows would),
/// waiting under the caller's `lock_timeout`: runs applying it hold it `FOR KEY SHARE`
/// ([`registered_sql`]). `remove_migration` takes it inside its bounded attempts so that its
/// DELETE never waits while holding its other locks.
pub fn lock_registered_row(version: &str) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "SELECT FROM tenancy.registered_migrations WHERE version OPERATOR(pg_catalog.=) $1 FOR UPDATE",
            &[version.into()],
        )
        .or_raise()
    })
}

/// Deletes a registered migration (waiting for runs that are applying it, see
/// [`registered_sql`]); returns the role recorded as its author, `None` when there was no row.
pub fn delete_registered(version: &str) -> Option<String> {
    as_extension_owner(|| {
        write_one::<String>(
            "DELETE FROM tenancy.registered_migrations WHERE version OPERATOR(pg_catalog.=) $1 \
             RETURNING added_by::pg_catalog.text",
            &[version.into()],
        )
    })
}

/// How many tenants have `version` in their ledger (compared as numbers), other than with
/// checksum `except` (another migration's text of the same version), and the first `limit` of
/// them by name.
pub fn tenants_with(version: &str, except: Option<&str>, limit: i64) -> (i64, Vec<String>) {
    as_extension_owner(|| {
        Spi::connect(|c| {
            let rows: Vec<(i64, String)> = c
                .select(
                    "SELECT pg_catalog.count(*) OVER (), l.schema_name::pg_catalog.text FROM tenancy.ledger l \
                     WHERE l.version::pg_catalog.numeric OPERATOR(pg_catalog.=) $1::pg_catalog.numeric \
                       AND l.checksum IS DISTINCT FROM $3 \
                     ORDER BY l.schema_name LIMIT $2",
                    None,
                    &[version.into(), limit.into(), except.into()],
                )
                .or_raise()
                .map(|r| {
                    (
                        r.get::<i64>(1).or_raise().unwrap_or(0),
                        r.get::<String>(2).or_raise().unwrap_or_default(),
                    )
                })
                .collect();
            (
                rows.first().map_or(0, |r| r.0),
                rows.into_iter().map(|r| r.1).collect(),
            )
        })
    })
}

/// Clears the recorded fleet failures that name migration `label` (`… migration <label> failed:
/// …`, `… migration <label> was registered by …`): once it is withdrawn they are about nothing.
/// Returns how many.
pub fn clear_errors_naming(label: &str) -> i64 {
    as_extension_owner(|| {
        write_one::<i64>(
            "WITH cleared AS (UPDATE tenancy.tenants SET last_error = NULL, failed_at = NULL \
               WHERE pg_catalog.strpos(last_error, 'migration ' OPERATOR(pg_catalog.||) $1 OPERATOR(pg_catalog.||) ' ') \
                     OPERATOR(pg_catalog.>) 0 RETURNING 1) \
             SELECT pg_catalog.count(*) FROM cleared",
            &[label.into()],
        )
        .unwrap_or(0)
    })
}

pub fn insert_registered(m: &Migration) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "INSERT INTO tenancy.registered_migrations (version, name, sql, checksum, added_by) \
             VALUES ($1, $2, $3, $4, $5::pg_catalog.text::pg_catalog.name)",
            &[
                m.version.as_str().into(),
                m.name.as_str().into(),
                m.sql.as_str().into(),
                m.checksum.as_str().into(),
                m.author.as_deref().unwrap_or_default().into(),
            ],
        )
        .or_raise()
    })
}

/// Serialises everything done to one tenant (migrate, rename, drop) until the transaction ends.
/// Keyed by the schema's OID, which a rename does not change.
///
/// Every write path locks a tenant (or inserts one) first, so this is where a registry that came
/// across a `pg_upgrade` is re-linked ([`relink_if_moved`]), before any tenant lock is held.
pub fn lock_tenant(oid: pg_sys::Oid) {
    relink_if_moved();
    own_lock(Own::Tenant, oid.to_u32(), true);
}

/// [`lock_tenant`] without waiting: `false` (and no lock) when another session holds it.
pub fn try_lock_tenant(oid: pg_sys::Oid) -> bool {
    relink_if_moved();
    own_try_lock(Own::Tenant, oid.to_u32(), true)
}

/// Serialises creating or renaming *to* a tenant name (by its case-folded key) until the
/// transaction ends. Hash collisions only make unrelated names wait for each other.
pub fn lock_name(key: &str) {
    own_lock(Own::Name, own_key(key), true);
}

/// Whether `tenancy.managed_table_settings` has the `owner` column of 0.2.0.
fn has_owner_column() -> bool {
    get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a \
           WHERE a.attrelid OPERATOR(pg_catalog.=) 'tenancy.managed_table_settings'::pg_catalog.regclass \
             AND a.attname OPERATOR(pg_catalog.=) 'owner' AND NOT a.attisdropped)",
        &[],
    )
    .unwrap_or(false)
}

pub fn save_managed(
    oid: pg_sys::Oid,
    template: &[Option<String>],
    on_create: bool,
    on_update: bool,
    on_delete: &str,
    owner: Option<pg_sys::Oid>,
) {
    as_extension_owner(|| {
        if !has_owner_column() {
            // A 0.1.x catalog (see api::compat), which cannot name an owner.
            return crate::db::spi::run_with_args(
                "INSERT INTO tenancy.managed_table_settings (tbl, template, on_create, on_update, on_delete) \
                 VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4, $5) \
                 ON CONFLICT (tbl) DO UPDATE SET template = excluded.template, on_create = excluded.on_create, \
                   on_update = excluded.on_update, on_delete = excluded.on_delete, managed_at = pg_catalog.now()",
                &[oid.into(), template.to_vec().into(), on_create.into(), on_update.into(), on_delete.into()],
            )
            .or_raise();
        }
        crate::db::spi::run_with_args(
            "INSERT INTO tenancy.managed_table_settings (tbl, template, on_create, on_update, on_delete, owner) \
             VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4, $5, $6::pg_catalog.oid::pg_catalog.regrole) \
             ON CONFLICT (tbl) DO UPDATE SET template = excluded.template, on_create = excluded.on_create, \
               on_update = excluded.on_update, on_delete = excluded.on_delete, owner = excluded.owner, \
               managed_at = pg_catalog.now()",
            &[
                oid.into(),
                template.to_vec().into(),
                on_create.into(),
                on_update.into(),
                on_delete.into(),
                owner.into(),
            ],
        )
        .or_raise()
    })
}

/// Removes a managed table's settings; false when it was not managed.
pub fn forget_managed(oid: pg_sys::Oid) -> bool {
    as_extension_owner(|| {
        write_one::<i64>(
            "WITH gone AS (DELETE FROM tenancy.managed_table_settings \
               WHERE tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass RETURNING 1) \
             SELECT pg_catalog.count(*) FROM gone",
            &[oid.into()],
        )
        .unwrap_or(0)
            > 0
    })
}

/// A managed table with `on_create`, as verify and reconcile read it.
pub struct ProvisioningTable {
    /// the table as SQL text
    pub table: String,
    pub oid: pg_sys::Oid,
    pub template: Vec<Option<String>>,
    /// the owner named for its tenants
    pub owner: Option<pg_sys::Oid>,
}

/// Managed tables with `on_create` that exist. A registration whose table is gone is
/// [`dangling_managed`].
pub fn managed_for_verify() -> Vec<ProvisioningTable> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT s.tbl::pg_catalog.text, s.template, \
                   (pg_catalog.to_jsonb(s) OPERATOR(pg_catalog.->>) 'owner')::pg_catalog.regrole::pg_catalog.oid, \
                   s.tbl::pg_catalog.oid \
                 FROM tenancy.managed_table_settings s WHERE s.on_create \
                   AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) s.tbl::pg_catalog.oid) \
                 ORDER BY 1",
                None,
                &[],
            )
            .or_raise()
            .map(|r| ProvisioningTable {
                table: r.get::<String>(1).or_raise().unwrap_or_default(),
                template: r.get::<Vec<Option<String>>>(2).or_raise().unwrap_or_default(),
                owner: r.get::<pg_sys::Oid>(3).or_raise(),
                oid: r.get::<pg_sys::Oid>(4).or_raise().unwrap_or(pg_sys::InvalidOid),
            })
            .collect()
        })
    })
}

/// The owner named for the tenants of a managed table (`None`: the role inserting the row).
/// Read through `to_jsonb` so that it also works on a 0.1.x catalog (no `owner` column) while the
/// new library runs before `ALTER EXTENSION UPDATE` (see `api::compat`).
pub fn managed_owner(tbl: pg_sys::Oid) -> Option<pg_sys::Oid> {
    as_extension_owner(|| {
        get_one::<pg_sys::Oid>(
            "SELECT (pg_catalog.to_jsonb(s) OPERATOR(pg_catalog.->>) 'owner')::pg_catalog.regrole::pg_catalog.oid \
             FROM tenancy.managed_table_settings s \
             WHERE s.tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass",
            &[tbl.into()],
        )
    })
}

/// The stored template of a managed table, `None` when it is not managed.
pub fn managed_template(tbl: pg_sys::Oid) -> Option<Vec<Option<String>>> {
    as_extension_owner(|| {
        get_one::<Vec<Option<String>>>(
            "SELECT s.template FROM tenancy.managed_table_settings s \
             WHERE s.tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass",
            &[tbl.into()],
        )
    })
}

/// Managed-table registrations whose table no longer exists (dropped while the event triggers
/// did not fire): their OIDs.
pub fn dangling_managed() -> Vec<u32> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT s.tbl::pg_catalog.oid FROM tenancy.managed_table_settings s \
                 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) s.tbl::pg_catalog.oid) \
                 ORDER BY 1",
                None,
                &[],
            )
            .or_raise()
            .map(|r| r.get::<pg_sys::Oid>(1).or_raise().map(|o| o.to_u32()).unwrap_or(0))
            .collect()
        })
    })
}

/// A managed table whose rows retire their tenants (`on_delete` `detach` or `drop`), with the
/// registered tenants its rows created: what verify checks for tenants that no row names.
pub struct RetiringTable {
    pub table: String,
    pub template: Vec<Option<String>>,
    pub on_delete: String,
    pub tenants: Vec<String>,
}

pub fn retiring_tables() -> Vec<RetiringTable> {
    if !has_managed_ddl_catalog() {
        return Vec::new();
    }
    as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT s.tbl::pg_catalog.text, s.template, s.on_delete, \
                        pg_catalog.array_agg(t.schema_name::pg_catalog.text ORDER BY t.schema_name) \
                 FROM tenancy.managed_table_settings s \
                 JOIN tenancy.tenants t ON t.managed_by OPERATOR(pg_catalog.=) s.tbl \
                 WHERE s.on_delete OPERATOR(pg_catalog.<>) 'keep' \
                   AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) s.tbl::pg_catalog.oid) \
                 GROUP BY s.tbl, s.template, s.on_delete ORDER BY 1",
                None,
                &[],
            )
            .or_raise()
            .map(|r| RetiringTable {
                table: r.get::<String>(1).or_raise().unwrap_or_default(),
                template: r.get::<Vec<Option<String>>>(2).or_raise().unwrap_or_default(),
                on_delete: r.get::<String>(3).or_raise().unwrap_or_default(),
                tenants: r.get::<Vec<String>>(4).or_raise().unwrap_or_default(),
            })
            .collect()
        })
    })
}

/// After DDL dropped relations (`oids`, from the `sql_drop` event trigger or anyone): the
/// registrations of managed tables among them that the catalog no longer has are removed, their
/// tenants stay (no longer noted as the table's), and their detached tenants are forgotten. Only
/// what the catalog confirms is written, so any caller may pass any OIDs. Whether any was removed.
pub fn forget_dropped_tables(oids: &[pg_sys::Oid]) -> bool {
    as_extension_owner(|| {
        let gone: Vec<pg_sys::Oid> = Spi::connect_mut(|c| {
            c.update(
                "DELETE FROM tenancy.managed_table_settings s \
                 WHERE s.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) \
                   AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) s.tbl::pg_catalog.oid) \
                 RETURNING s.tbl::pg_catalog.oid",
                None,
                &[oids.to_vec().into()],
            )
            .or_raise()
            .filter_map(|r| r.get::<pg_sys::Oid>(1).or_raise())
            .collect()
        });
        if gone.is_empty() || !has_managed_ddl_catalog() {
            return !gone.is_empty();
        }
        crate::db::spi::run_with_args(
            "UPDATE tenancy.tenants SET managed_by = NULL WHERE managed_by::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)",
            &[gone.clone().into()],
        )
        .or_raise();
        crate::db::spi::run_with_args(
            "DELETE FROM tenancy.detached_tenants WHERE managed_by::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)",
            &[gone.into()],
        )
        .or_raise();
        true
    })
}

/// Partitions (at any depth) of managed tables with `on_delete => 'drop'` that lack the TRUNCATE
/// guard, among `oids` and their partitions (a partition created, or a table attached, by DDL on
/// those relations). As SQL text, to run `CREATE TRIGGER` on.
pub fn partitions_without_guard(oids: &[pg_sys::Oid]) -> Vec<String> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT DISTINCT p.relid::pg_catalog.text FROM tenancy.managed_table_settings s \
                 CROSS JOIN LATERAL pg_catalog.pg_partition_tree(s.tbl) p \
                 WHERE s.on_delete OPERATOR(pg_catalog.=) 'drop' AND p.relid OPERATOR(pg_catalog.<>) s.tbl \
                   AND EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(p.relid) a \
                               WHERE a.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1)) \
                   AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g \
                                   WHERE g.tgrelid OPERATOR(pg_catalog.=) p.relid AND g.tgname OPERATOR(pg_catalog.=) 'tenancy_truncate') \
                 ORDER BY 1",
                None,
                &[oids.to_vec().into()],
            )
            .or_raise()
            .filter_map(|r| r.get::<String>(1).or_raise())
            .collect()
        })
    })
}

/// Clears a tenant's recorded fleet failure once it migrates successfully.
pub fn clear_error(oid: pg_sys::Oid) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "UPDATE tenancy.tenants SET last_error = NULL, failed_at = NULL \
             WHERE schema_oid OPERATOR(pg_catalog.=) $1 AND last_error IS NOT NULL",
            &[oid.into()],
        )
        .or_raise()
    })
}

/// Records a tenant's fleet failure (shown by `tenancy.status` until it next migrates).
pub fn record_error(name: &str, error: &str) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "UPDATE tenancy.tenants SET last_error = $2, failed_at = pg_catalog.clock_timestamp() \
             WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[name.into(), error.into()],
        )
        .or_raise()
    })
}

pub fn save_attribute_table(tbl: pg_sys::Oid, col: &str) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "INSERT INTO tenancy.attribute_tables (tbl, tenant_column) VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2) \
             ON CONFLICT (tbl) DO UPDATE SET tenant_column = excluded.tenant_column",
            &[tbl.into(), col.into()],
        )
        .or_raise()
    })
}

/// The tenant column of an attribute table, or `None`.
pub fn attribute_column(tbl: pg_sys::Oid) -> Option<String> {
    as_extension_owner(|| {
        get_one::<String>(
            "SELECT tenant_column::pg_catalog.text FROM tenancy.attribute_tables \
             WHERE tbl OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass",
            &[tbl.into()],
        )
    })
}

pub fn attribute_tenant_exists(tenant: &str) -> bool {
    as_extension_owner(|| {
        get_one::<bool>(
            "SELECT EXISTS (SELECT FROM tenancy.attribute_tenants WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text)",
            &[tenant.into()],
        )
        .unwrap_or(false)
    })
}

pub fn insert_attribute_tenant(tenant: &str) {
    as_extension_owner(|| {
        crate::db::spi::run_with_args(
            "INSERT INTO tenancy.attribute_tenants (tenant) VALUES ($1) ON CONFLICT DO NOTHING",
            &[tenant.into()],
        )
        .or_raise()
    })
}

pub fn delete_attribute_tenant(tenant: &str) -> bool {
    as_extension_owner(|| {
        write_one::<i64>(
            "WITH gone AS (DELETE FROM tenancy.attribute_tenants WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text RETURNING 1) \
             SELECT pg_catalog.count(*) FROM gone",
            &[tenant.into()],
        )
        .unwrap_or(0)
            > 0
    })
}

/// Attribute tables in `schema`: (table name, tenant column).
pub fn attribute_columns_in(schema: &str) -> Vec<(String, String)> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT k.relname::pg_catalog.text, a.tenant_column::pg_catalog.text \
                 FROM tenancy.attribute_tables a JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) a.tbl::pg_catalog.oid \
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace \
                 WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text",
                None,
                &[schema.into()],
            )
            .or_raise()
            .map(|r| {
                (
                    r.get::<String>(1).or_raise().unwrap_or_default(),
                    r.get::<String>(2).or_raise().unwrap_or_default(),
                )
            })
            .collect()
        })
    })
}

/// Registered tenants grouped by the exact set of migration versions in their ledgers.
pub fn tenants_by_applied_set() -> Vec<(Vec<String>, Vec<String>)> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT coalesce(l.versions, '{}'), pg_catalog.array_agg(t.schema_name::pg_catalog.text ORDER BY t.schema_name) \
                 FROM tenancy.tenants t \
                 LEFT JOIN (SELECT schema_name, pg_catalog.array_agg(version ORDER BY version) AS versions \
                            FROM tenancy.ledger GROUP BY schema_name) l ON l.schema_name OPERATOR(pg_catalog.=) t.schema_name \
                 GROUP BY 1",
                None,
                &[],
            )
            .or_raise()
            .map(|r| {
                (
                    r.get::<Vec<String>>(1).or_raise().unwrap_or_default(),
                    r.get::<Vec<String>>(2).or_raise().unwrap_or_default(),
                )
            })
            .collect()
        })
    })
}
