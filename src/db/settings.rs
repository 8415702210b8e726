//! pg_tenancy's configuration parameters (GUCs).

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::pg_sys;

use crate::db::spi;

/// `tenancy.shared_schemas`: the schemas that follow the tenant in `search_path` while its
/// migrations run and after `set_tenant`.
pub static SHARED_SCHEMAS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"public"));

/// `tenancy.drop_lock_timeout`: how long `drop_tenant` (and a managed table's `drop` policy) may
/// try to take the tenant's locks before failing with 55P03, in milliseconds; 0 waits without a
/// limit. `drop_tenant(…, lock_timeout => …)` overrides it for one call.
pub static DROP_LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(5000);

/// `tenancy.tenant`: the tenant chosen by `tenancy.set_tenant` (read by `current_tenant`).
pub static TENANT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `tenancy.tenant_oid`: the OID of the schema `set_tenant` chose, set with `tenancy.tenant`, so
/// that `current_tenant()` notices when that schema was dropped or renamed since (and another
/// schema took its name); empty for an attribute tenant.
pub static TENANT_OID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `tenancy.use_snapshot`: whether new tenants are built from the proven snapshot when there is
/// one (docs/snapshots.md; on by default: a snapshot exists only once someone built one); off
/// replays every migration, as without a snapshot.
pub static USE_SNAPSHOT: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `tenancy.convert_shared_foreign_keys`: whether a native foreign key to a shared table that a
/// tenant migration declares becomes a shared reference (src/db/shared_fk.rs). Off by default:
/// the converted key has no constraint name and its trigger depends on its columns, so later
/// migrations written against the native key behave differently on converted tenants
/// (docs/functions/reference_shared.md). Superuser-set (ALTER DATABASE … SET), so every session
/// and fleet worker of a database converts alike.
pub static CONVERT_SHARED_FKS: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `tenancy.distribute`: whether tenants become Citus distributed schemas (docs/citus.md).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Distribute {
    /// When Citus is installed, on its coordinator, while `citus.enable_schema_based_sharding` is on.
    #[name = c"auto"]
    Auto,
    /// On a Citus coordinator, always.
    #[name = c"on"]
    On,
    /// Never: tenants stay local schemas of the coordinator.
    #[name = c"off"]
    Off,
}

pub static DISTRIBUTE: GucSetting<Distribute> = GucSetting::<Distribute>::new(Distribute::Auto);

pub fn init() {
    GucRegistry::define_enum_guc(
        c"tenancy.distribute",
        c"Whether tenants become Citus distributed schemas: auto, on or off.",
        c"auto (default): on a Citus coordinator while citus.enable_schema_based_sharding is on. on: on a Citus coordinator, always. off: never. Without Citus it has no effect.",
        &DISTRIBUTE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenancy.shared_schemas",
        c"Schemas that follow the tenant schema in search_path (comma-separated).",
        c"Used while tenant migrations run and by tenancy.set_tenant. Default: public.",
        &SHARED_SCHEMAS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.drop_lock_timeout",
        c"How long tenancy.drop_tenant may try to lock a tenant before it fails (0: no limit).",
        c"Also the limit of a managed table's 'drop' policy. It never waits while holding part of the tenant's locks, so an application using the tenant is never deadlocked; a call's lock_timeout argument overrides it. Default: 5s.",
        &DROP_LOCK_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"tenancy.convert_shared_foreign_keys",
        c"Whether tenant migrations' native foreign keys to shared tables become shared references.",
        c"Off by default: see docs/functions/reference_shared.md. Set it for the database (ALTER DATABASE ... SET), not per session, so that every tenant is built alike.",
        &CONVERT_SHARED_FKS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"tenancy.use_snapshot",
        c"Whether new tenants are built from the proven snapshot (tenancy.build_snapshot) when there is one.",
        c"off: new tenants replay every migration, as without a snapshot. tenancy.snapshot_status says which path new tenants take. Default: on (a snapshot exists only after tenancy.build_snapshot).",
        &USE_SNAPSHOT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenancy.tenant",
        c"The current tenant, as set by tenancy.set_tenant.",
        c"Use tenancy.set_tenant to change it: that also sets search_path and checks the tenant exists.",
        &TENANT,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenancy.tenant_oid",
        c"The OID of the schema of the current tenant, as set by tenancy.set_tenant.",
        c"tenancy.current_tenant() compares it with the schema now named tenancy.tenant, to report a tenant dropped or renamed since.",
        &TENANT_OID,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn shared_schemas() -> String {
    SHARED_SCHEMAS
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "public".to_string())
}

pub fn distribute() -> Distribute {
    DISTRIBUTE.get()
}

/// `tenancy.drop_lock_timeout` in milliseconds (0: no limit).
pub fn drop_lock_timeout_ms() -> u32 {
    DROP_LOCK_TIMEOUT.get().max(0) as u32
}

/// Runs `f` with each `(name, value)` setting in effect (as `SET LOCAL` would), at a GUC nest
/// level of its own: afterwards every setting made since is back to what it was, whether or not
/// `f` changed it. (On an error the (sub)transaction abort restores them as for any `SET LOCAL`.)
pub fn with_local<R>(settings: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    // SAFETY: NewGUCNestLevel / AtEOXact_GUC(false, level) is PostgreSQL's own pattern for
    // function-local settings (fmgr_security_definer, RI triggers).
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    for (name, value) in settings {
        spi::set_config(name, value, true);
    }
    let r = f();
    unsafe { pg_sys::AtEOXact_GUC(false, level) };
    r
}
