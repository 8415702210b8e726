//! Who runs what: the two identities pg_tenancy switches to (SECURITY.md, "The model").
//!
//! - [`as_tenant_owner`]: a tenant's migration statements run as the owner of the tenant schema,
//!   inside a *security-restricted operation* with their own GUC nest level — PostgreSQL's own
//!   pattern for running user code as a table owner (index builds, VACUUM, REFRESH MATERIALIZED
//!   VIEW: the CVE-2022-1552 fix). The statements cannot `SET ROLE` back, create temporary objects,
//!   or leave a setting changed: every `SET`, plain ones included, is undone when the migration
//!   ends (`AtEOXact_GUC(false, level)`).
//! - [`as_extension_owner`]: pg_tenancy's own bookkeeping (registry, ledger, registered
//!   migrations) runs as the owner of pg_tenancy's tables, which nobody else may write. Only fixed,
//!   fully qualified SQL with bound parameters runs this way, never user text.
//!
//! On an error inside either, the (sub)transaction abort that follows restores the user and the
//! settings, as it does for PostgreSQL's own callers; the guard below also puts the user back
//! while the error unwinds through Rust, so a caller that catches it continues as itself.

use pgrx::prelude::*;

use crate::db::report::OrRaise;
use crate::db::spi;

/// Puts back the saved user and security context when dropped (also while unwinding).
struct Restore {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: restores the values read by GetUserIdAndSecContext in this backend.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) }
    }
}

fn current() -> Restore {
    let mut user = pg_sys::InvalidOid;
    let mut context = 0i32;
    // SAFETY: plain reads of backend-local state.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    Restore { user, context }
}

/// The role whose rights are in effect now (`current_user`).
pub fn current_user() -> pg_sys::Oid {
    // SAFETY: reads backend-local state.
    unsafe { pg_sys::GetUserId() }
}

/// Runs `f` as `owner` inside a security-restricted operation, with `search_path` set to
/// `search_path` at a new GUC nest level that is discarded when `f` returns.
pub fn as_tenant_owner<R>(owner: pg_sys::Oid, search_path: &str, f: impl FnOnce() -> R) -> R {
    let saved = current();
    // SAFETY: the documented sequence of PostgreSQL's own callers (e.g. ExecRefreshMatView).
    let level = unsafe { pg_sys::NewGUCNestLevel() };
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved.context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        )
    };
    set_local_search_path(search_path);
    let r = f();
    // SAFETY: `level` came from NewGUCNestLevel above; false: every setting made since is undone.
    unsafe { pg_sys::AtEOXact_GUC(false, level) };
    drop(saved);
    r
}

/// `SET LOCAL search_path` at the current GUC nest level, as `set_config('search_path', path,
/// true)` does, without a query (a fleet step runs this for every tenant).
fn set_local_search_path(path: &str) {
    let value = std::ffi::CString::new(path).unwrap_or_default();
    // SAFETY: what set_config_by_name does with is_local = true; an invalid value raises an ERROR.
    unsafe {
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            0,
            false,
        );
    }
}

thread_local! {
    /// The extension owner looked up in the transaction that started at this time.
    static OWNER: std::cell::Cell<(pg_sys::TimestampTz, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// The owner of pg_tenancy's tables (the role that created or was given the extension), looked
/// up once per transaction (every registry query needs it).
pub fn extension_owner() -> pg_sys::Oid {
    // SAFETY: reads this backend's transaction state.
    let started = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let (at, oid) = OWNER.with(|c| c.get());
    if at == started && oid != 0 {
        return pg_sys::Oid::from(oid);
    }
    // A kept plan (to_regclass at each execution: the extension may be re-created meanwhile).
    let owner = spi::kept_rows(
        "SELECT c.relowner FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('tenancy.tenants')",
        &[],
        &[],
        |r| r.get::<pg_sys::Oid>(1).or_raise(),
    )
    .into_iter()
    .next()
    .flatten()
    .or_raise_missing();
    OWNER.with(|c| c.set((started, owner.to_u32())));
    owner
}

/// Runs `f` (pg_tenancy's own fixed SQL) as the owner of pg_tenancy's tables.
pub fn as_extension_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    let saved = current();
    if saved.user == owner {
        drop(saved);
        return f();
    }
    // SAFETY: as in as_tenant_owner; no restricted-operation flag is added (or removed).
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved.context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        )
    };
    let r = f();
    drop(saved);
    r
}

trait OrRaiseMissing {
    fn or_raise_missing(self) -> pg_sys::Oid;
}

impl OrRaiseMissing for Option<pg_sys::Oid> {
    fn or_raise_missing(self) -> pg_sys::Oid {
        self.ok_or_else(|| {
            crate::rules::error::TenancyError::new(
                crate::rules::error::SqlState::ObjectNotInPrerequisiteState,
                "pg_tenancy's table tenancy.tenants is missing",
            )
            .hint(
                "Reinstall the extension: DROP EXTENSION pg_tenancy; CREATE EXTENSION pg_tenancy.",
            )
        })
        .or_raise()
    }
}

/// Runs `f` (pg_tenancy's own fixed, fully qualified SQL) as `owner`, the owner of the table it
/// reads, the way PostgreSQL's own referential-integrity checks do (`ri_PerformCheck`: the
/// table's owner, row-level security not forced), inside a security-restricted operation as well:
/// whatever of the owner's code such a query could reach runs as the owner and cannot change the
/// session. Used by the shared-reference triggers (src/api/shared.rs), which fire as whoever
/// writes a row and must read tables that role may not read.
pub fn as_table_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let saved = current();
    // SAFETY: as in as_tenant_owner; the flags are PostgreSQL's own (miscadmin.h).
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved.context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32
                | pg_sys::SECURITY_NOFORCE_RLS as i32,
        )
    };
    let r = f();
    drop(saved);
    r
}
