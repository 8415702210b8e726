//! pg_tenancy's configuration parameters (GUCs).

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `tenancy.shared_schemas`: the schemas that follow the tenant in `search_path` while its
/// migrations run and after `set_tenant`.
pub static SHARED_SCHEMAS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"public"));

/// `tenancy.tenant`: the tenant chosen by `tenancy.set_tenant` (read by `current_tenant`).
pub static TENANT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `tenancy.tenant_oid`: the OID of the schema `set_tenant` chose, set with `tenancy.tenant`, so
/// that `current_tenant()` notices when that schema was dropped or renamed since (and another
/// schema took its name); empty for an attribute tenant.
pub static TENANT_OID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn init() {
    GucRegistry::define_string_guc(
        c"tenancy.shared_schemas",
        c"Schemas that follow the tenant schema in search_path (comma-separated).",
        c"Used while tenant migrations run and by tenancy.set_tenant. Default: public.",
        &SHARED_SCHEMAS,
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
