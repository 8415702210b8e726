//! Snapshots, SQL-facing (docs/snapshots.md, docs/functions/build_snapshot.md): build the
//! proven squashed form new tenants are built from, drop it, and the helpers of the
//! `tenancy.snapshot_status` view and of the proof (sql/snapshot.sql).

use pgrx::prelude::*;

use crate::db::catalog;
use crate::db::identity;
use crate::db::known_set;
use crate::db::report::raise;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::names::quote_ident;

/// `tenancy.build_snapshot(owner)`: builds and proves the snapshot for tenants owned by `owner`
/// (the caller when NULL). Its scratch schemas run the migrations as `owner`, as a tenant's
/// replay would, so the caller must have the privileges of `owner`.
#[pg_extern(volatile, name = "_build_snapshot")]
#[search_path(pg_catalog, pg_temp)]
fn build_snapshot(
    owner: Option<pg_sys::Oid>,
) -> TableIterator<'static, (name!(path, String), name!(reason, String))> {
    crate::db::citus::refuse_on_worker("build_snapshot");
    let me = identity::current_user();
    let owner = owner.unwrap_or(me);
    let Some(role) = catalog::role_by_oid(owner) else {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("role with OID {} does not exist", owner.to_u32()),
            )
            .hint("Pass the role that owns new tenants, e.g. SELECT * FROM tenancy.build_snapshot('app')."),
        )
    };
    if !catalog::has_privileges_of(me, role.oid) {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "permission denied to build a snapshot for tenants owned by {}: the current role does not have its privileges",
                    quote_ident(&role.name)
                ),
            )
            .detail("Building a snapshot runs every migration in a scratch schema as that role, as creating a tenant owned by it would.")
            .hint(format!(
                "Run it as {} or a member of it (or a superuser).",
                quote_ident(&role.name)
            )),
        )
    }
    let out = match crate::snapshot::build_and_store(&role) {
        None => (
            "snapshot".to_string(),
            format!(
                "proven equal to a replay of the {} migrations: new tenants owned by {} are built from it",
                known_set::known_versions().len(),
                quote_ident(&role.name)
            ),
        ),
        Some(reason) => ("replay".to_string(), reason),
    };
    TableIterator::new(vec![out])
}

/// `tenancy.drop_snapshot()`: new tenants replay again until the next build; whether there was
/// a snapshot.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn drop_snapshot() -> bool {
    crate::db::snapshot::delete()
}

/// The current fingerprint for tenants owned by the role named `owner` (the view compares it
/// with the stored one); NULL when there is no such role.
#[pg_extern(stable, name = "_snapshot_fingerprint")]
#[search_path(pg_catalog, pg_temp)]
fn snapshot_fingerprint(owner: Option<&str>) -> Option<String> {
    let role = catalog::role_by_name(owner?)?;
    Some(crate::snapshot::fingerprint(
        role.oid,
        &known_set::known_versions(),
    ))
}

/// Whether a row version's XID (`xmin`) is this transaction's or one of its subtransactions'.
#[pg_extern(stable, parallel_safe, name = "_snapshot_mine")]
#[search_path(pg_catalog, pg_temp)]
fn snapshot_mine(xid: i64) -> bool {
    // SAFETY: a lookup in this backend's transaction state.
    unsafe {
        pg_sys::TransactionIdIsCurrentTransactionId(pg_sys::TransactionId::from_inner(xid as u32))
    }
}
