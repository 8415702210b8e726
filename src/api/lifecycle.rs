//! Tenant lifecycle: create, register, rename, detach, drop, set_tenant, migrate_tenant (one page
//! each under docs/functions/).
//!
//! The functions that return a tenant name are `tenancy._create_tenant` etc. returning text; the
//! SQL wrappers in `sql/api.sql` give them the `name` result type while their parameters stay
//! `text`, so an over-long name is refused instead of silently truncated.

use std::cell::Cell;

use pgrx::datum::Interval;
use pgrx::prelude::*;

use crate::api::args::required;
use crate::apply;
use crate::db::catalog;
use crate::db::citus;
use crate::db::identity;
use crate::db::known_set;
use crate::db::locks;
use crate::db::registry;
use crate::db::report::{raise, OrRaise};
use crate::db::settings;
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::lock_wait;
use crate::rules::migration_set;
use crate::rules::names::{self, quote_ident, quote_literal};

/// A tenant name argument, which must not be NULL.
fn tenant_arg<'a>(value: Option<&'a str>, function: &str, param: &str) -> &'a str {
    required(
        value,
        function,
        param,
        &format!("tenancy.{function}('org_1')"),
    )
}

fn require_create_privilege(function: &str) {
    if !catalog::can_create_schemas() {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "permission denied for tenancy.{function}: the current role cannot create schemas in database {}",
                    quote_ident(&catalog::current_database())
                ),
            )
            .hint(format!(
                "A superuser can run GRANT CREATE ON DATABASE {} TO <role> and SELECT tenancy.grant_admin('<role>').",
                quote_ident(&catalog::current_database())
            )),
        );
    }
}

/// Tenant schemas must never become members of an extension: refuse to create or adopt one while
/// a `CREATE EXTENSION` / `ALTER EXTENSION UPDATE` script runs (every object it creates would be).
fn refuse_inside_extension_script(function: &str) {
    // SAFETY: reads a backend-local flag.
    if unsafe { pg_sys::creating_extension } {
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!("tenancy.{function} cannot run inside an extension script: the tenant schema would become a member of that extension"),
            )
            .hint("Create tenants after CREATE EXTENSION / ALTER EXTENSION UPDATE, from your application's own migration."),
        );
    }
}

/// The case-insensitive collision with another tenant (docs/choices.md); callers validate the name first.
fn check_new_name(name: &str, except: Option<pg_sys::Oid>) {
    if let Some(other) = registry::tenant_by_key(&names::fold(name)) {
        if other.name == name && except.is_none() {
            raise(schema_exists_error(name));
        }
        if Some(other.oid) != except {
            raise(names::collision(name, &other.name));
        }
    }
}

fn schema_exists_error(name: &str) -> TenancyError {
    let msg = match registry::tenant_by_name(name) {
        Some(_) => format!("tenant {} already exists", quote_ident(name)),
        None => format!("schema {} already exists", quote_ident(name)),
    };
    TenancyError::new(SqlState::DuplicateSchema, msg).hint(
        "To adopt an existing schema as a tenant use tenancy.register_tenant(schema, baseline); otherwise choose another name.",
    )
}

/// The owner a new tenant gets: `owner` when one is named (by `create_tenant` or a managed
/// table's setting), else the calling role. Naming a role the caller does not have the privileges
/// of would be an escalation (its migrations run as that role): 42501.
///
/// `what` names what gets the owner in messages, e.g. `tenant "org_1"`.
pub fn choose_owner(what: &str, owner: Option<pg_sys::Oid>) -> catalog::Role {
    let me = identity::current_user();
    let Some(owner) = owner else {
        return catalog::role_by_oid(me).expect("the current user exists");
    };
    let Some(role) = catalog::role_by_oid(owner) else {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("owner of {what} does not exist (role OID {})", owner.to_u32()),
            )
            .hint("Name an existing role as the owner, or leave it out: the calling role owns the tenant."),
        )
    };
    if !catalog::has_privileges_of(me, owner) {
        let caller = catalog::role_by_oid(me).map(|r| r.name).unwrap_or_default();
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "permission denied to make {} the owner of {what}: role {} does not have the privileges of {}",
                    quote_ident(&role.name),
                    quote_ident(&caller),
                    quote_ident(&role.name)
                ),
            )
            .hint(format!(
                "The tenant's migrations run as its owner. Create it as {} (or a member of it), or GRANT {} TO {} first.",
                quote_ident(&role.name),
                quote_ident(&role.name),
                quote_ident(&caller)
            )),
        );
    }
    role
}

/// Creates, registers and migrates a tenant owned by `owner` (see [`choose_owner`]): the one
/// path for `create_tenant`, the managed table trigger and `reconcile`.
pub fn create(name: &str, owner: Option<pg_sys::Oid>) {
    create_for(name, owner, None)
}

/// [`create`], for the row of managed table `managed_by` when there is one (noted on the tenant:
/// `verify` then reports it if no row names it any more).
pub fn create_for(name: &str, owner: Option<pg_sys::Oid>, managed_by: Option<pg_sys::Oid>) {
    refuse_inside_extension_script("create_tenant");
    citus::refuse_on_worker("create_tenant");
    require_create_privilege("create_tenant");
    names::validate(name).or_raise();
    let owner = choose_owner(&format!("tenant {}", quote_ident(name)), owner);
    // Two sessions creating the same (or a case-variant) name queue here; the second then sees
    // the first's tenant and fails with 42P06 instead of a unique-index error from the catalog.
    registry::lock_name(&names::fold(name));
    check_new_name(name, None);
    if catalog::schema_oid(name).is_some() {
        raise(schema_exists_error(name));
    }
    // Created by the caller (its CREATE on the database), owned by the chosen owner; on Citus a
    // plain schema, distributed with its first table (db/citus.rs).
    citus::creating_plain_schema(|| {
        if owner.oid == identity::current_user() {
            spi::run(&format!("CREATE SCHEMA {}", quote_ident(name)));
        } else {
            spi::run(&format!(
                "CREATE SCHEMA {} AUTHORIZATION {}",
                quote_ident(name),
                quote_ident(&owner.name)
            ));
        }
    });
    let oid = catalog::schema_oid(name).expect("schema just created");
    registry::insert_managed(name, &names::fold(name), oid, managed_by);
    let t = registry::Tenant {
        name: name.to_string(),
        oid,
    };
    apply::migrate(&t, None);
}

/// Re-adopts the schema of a tenant that managed table `tbl` detached, when a row of that table
/// names it again (issue 13): registered again with the ledger it had when it was detached (kept
/// in `tenancy.detached_tenants`), then migrated like any tenant. False, doing nothing, when
/// `name` is not such a schema (the caller then creates the tenant, which refuses a schema that
/// exists). Only the very schema that was detached (by OID), only when its owner is the owner the
/// table gives its tenants (`owner`, when the table names one), and only for an inserting role with
/// the privileges of the schema's owner: its migrations run as that owner, and re-adopting must
/// not let a role put its tenant under another's name, nor take over a schema it cannot act as.
pub fn readopt(name: &str, tbl: pg_sys::Oid, owner: Option<pg_sys::Oid>) -> bool {
    if !registry::has_managed_ddl_catalog() {
        return false;
    }
    let Some(oid) = catalog::schema_oid(name) else {
        return false;
    };
    registry::relink_if_moved();
    if registry::tenant_by_name(name).is_some()
        || !crate::db::detached::is_detached_from(name, oid, tbl)
    {
        return false;
    }
    refuse_inside_extension_script("create_tenant");
    names::validate(name).or_raise();
    let wanted = choose_owner(&format!("tenant {}", quote_ident(name)), owner);
    let actual = catalog::schema_owner(oid);
    if owner.is_some() && actual.oid != wanted.oid {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "permission denied to re-adopt detached tenant {}: its schema is owned by {}, not by {}, the owner of this table's tenants",
                    quote_ident(name),
                    quote_ident(&actual.name),
                    quote_ident(&wanted.name)
                ),
            )
            .hint(format!(
                "Nothing was re-adopted. Give the schema back to its tenant owner (ALTER SCHEMA {} OWNER TO {}) and insert the row again, or adopt it by hand with tenancy.register_tenant.",
                quote_ident(name),
                quote_ident(&wanted.name)
            )),
        );
    }
    let me = identity::current_user();
    if !catalog::has_privileges_of(me, actual.oid) {
        let caller = catalog::role_by_oid(me).map(|r| r.name).unwrap_or_default();
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!(
                    "permission denied to re-adopt detached tenant {}: role {} does not have the privileges of its owner {}",
                    quote_ident(name),
                    quote_ident(&caller),
                    quote_ident(&actual.name)
                ),
            )
            .hint(format!(
                "Nothing was re-adopted. The tenant's migrations run as its owner: insert the row as {} (or a member of it), or GRANT {} TO {} first.",
                quote_ident(&actual.name),
                quote_ident(&actual.name),
                quote_ident(&caller)
            )),
        );
    }
    registry::lock_name(&names::fold(name));
    check_new_name(name, None);
    registry::insert_managed(name, &names::fold(name), oid, Some(tbl));
    crate::db::detached::restore(name);
    let t = registry::Tenant {
        name: name.to_string(),
        oid,
    };
    apply::migrate(&t, None);
    true
}

#[pg_extern(volatile, name = "_create_tenant")]
#[search_path(pg_catalog, pg_temp)]
fn create_tenant_owned(schema: Option<&str>, owner: Option<pg_sys::Oid>) -> String {
    let name = tenant_arg(schema, "create_tenant", "schema");
    create(name, owner);
    name.to_string()
}

#[pg_extern(volatile, name = "_register_tenant")]
#[search_path(pg_catalog, pg_temp)]
fn register_tenant(schema: Option<&str>, baseline: Option<&str>) -> String {
    let name = tenant_arg(schema, "register_tenant", "schema");
    refuse_inside_extension_script("register_tenant");
    citus::refuse_on_worker("register_tenant");
    names::validate(name).or_raise();
    let Some(oid) = catalog::schema_oid(name) else {
        raise(
            TenancyError::new(SqlState::InvalidSchemaName, format!("schema {} does not exist", quote_ident(name)))
                .hint("tenancy.register_tenant adopts an existing schema; tenancy.create_tenant creates a new one."),
        )
    };
    if registry::tenant_by_oid(oid).is_some() || registry::tenant_by_name(name).is_some() {
        raise(
            TenancyError::new(
                SqlState::DuplicateObject,
                format!(
                    "schema {} is already a registered tenant",
                    quote_ident(name)
                ),
            )
            .hint("SELECT * FROM tenancy.ledger shows what has been applied to it."),
        );
    }
    registry::lock_name(&names::fold(name));
    check_new_name(name, None);
    if !catalog::owns_schema(oid) {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!("permission denied to register schema {}: the current role does not own it", quote_ident(name)),
            )
            .hint("Register it as the schema's owner, or ALTER SCHEMA … OWNER TO the provisioning role first."),
        );
    }
    let known = known_set::known_versions();
    let upto = baseline.map(|b| migration_set::find(&known, b).or_raise().version.clone());
    registry::insert(name, &names::fold(name), oid);
    if registry::has_managed_ddl_catalog() {
        // Adopted by hand with a baseline: what a managed table kept for it no longer applies.
        crate::db::detached::forget(name);
    }
    if let Some(upto) = upto {
        let t = registry::Tenant {
            name: name.to_string(),
            oid,
        };
        registry::lock_tenant(t.oid);
        for m in known.iter().filter(|m| {
            crate::rules::migration_set::cmp_versions(&m.version, &upto)
                != std::cmp::Ordering::Greater
        }) {
            registry::record(name, m, 0.0, true);
        }
    }
    name.to_string()
}

/// How many objects a refused rename lists; the count in the message is always complete.
const LISTED_REFERENCES: usize = 20;

/// Refuses a rename while anything in the tenant names its schema by text (docs/migrations.md#renames):
/// PostgreSQL resolves such a name again each time the object runs, so after the rename it would
/// use whatever schema is called `old` next (a new tenant of that name, issue 13). Rewriting it
/// is not sound in general (re-substituting `@tenant@` into old migration text would undo later
/// migrations), so nothing is rewritten: the objects are listed and the tenant keeps its name.
fn refuse_text_references(old: &str, new: &str, oid: pg_sys::Oid) {
    let found = catalog::objects_naming_schema(oid, old);
    if found.is_empty() {
        return;
    }
    let mut detail = format!(
        "Naming {} by text, not by OID:\n{}",
        quote_ident(old),
        found
            .iter()
            .take(LISTED_REFERENCES)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    if found.len() > LISTED_REFERENCES {
        detail.push_str(&format!("\n… and {} more", found.len() - LISTED_REFERENCES));
    }
    raise(
        TenancyError::new(
            SqlState::ObjectNotInPrerequisiteState,
            format!(
                "tenant {}: {} {} in its schema {} {} by text; after a rename to {} {} would use whatever schema is called {} next",
                quote_ident(old),
                found.len(),
                if found.len() == 1 { "object" } else { "objects" },
                if found.len() == 1 { "names" } else { "name" },
                quote_ident(old),
                quote_ident(new),
                if found.len() == 1 { "it" } else { "they" },
                quote_ident(old),
            ),
        )
        .detail(detail)
        .hint("Nothing was renamed. Replace these objects in a migration first, without the schema's name: a SQL function with a BEGIN ATOMIC body (bound to the tables themselves when created), unqualified names resolved through the caller's search_path (tenancy.set_tenant), TG_TABLE_SCHEMA in trigger functions, no tenant schema in a function's SET search_path (docs/migrations.md, \"Renames\")."),
    );
}

/// Renames a tenant's schema; registry and ledger follow. Refused while anything in the tenant
/// names the schema by text ([`refuse_text_references`]).
pub fn rename(old: &str, new: &str) {
    citus::refuse_on_worker("rename_tenant");
    require_create_privilege("rename_tenant");
    let t = apply::require_tenant(old);
    names::validate(new).or_raise();
    registry::lock_name(&names::fold(new));
    check_new_name(new, Some(t.oid));
    if old == new {
        return;
    }
    if catalog::schema_oid(new).is_some() {
        raise(schema_exists_error(new));
    }
    let t = apply::lock(&t);
    refuse_text_references(&t.name, new, t.oid);
    // The registry first: the ALTER SCHEMA event trigger then finds the schema under its
    // registered name and notes nothing (it notes only renames made behind pg_tenancy's back).
    registry::rename(&t.name, new, &names::fold(new));
    spi::run(&format!(
        "ALTER SCHEMA {} RENAME TO {}",
        quote_ident(&t.name),
        quote_ident(new)
    ));
}

#[pg_extern(volatile, name = "_rename_tenant")]
#[search_path(pg_catalog, pg_temp)]
fn rename_tenant(old: Option<&str>, new: Option<&str>) -> String {
    let example = "tenancy.rename_tenant('org_1', 'org_100')";
    let old = required(old, "rename_tenant", "old", example);
    let new = required(new, "rename_tenant", "new", example);
    rename(old, new);
    new.to_string()
}

/// Unregisters a tenant; its schema stays.
pub fn detach(name: &str) {
    citus::refuse_on_worker("detach_tenant");
    let t = apply::require_tenant(name);
    // Detaching deletes the tenant's ledger: as for DROP and ALTER SCHEMA, only a role with the
    // privileges of the schema's owner may do it.
    if let Some(oid) = catalog::schema_oid(&t.name).filter(|o| *o == t.oid) {
        let owner = catalog::schema_owner(oid);
        if !catalog::has_privileges_of(identity::current_user(), owner.oid) {
            raise(
                TenancyError::new(
                    SqlState::InsufficientPrivilege,
                    format!("permission denied to detach tenant {}: the current role does not have the privileges of its owner {}", quote_ident(&t.name), quote_ident(&owner.name)),
                )
                .hint("Detach it as its owner (or a member of it, or a superuser). Detaching deletes its ledger; the schema stays."),
            );
        }
    }
    registry::lock_tenant(t.oid);
    if registry::has_managed_ddl_catalog() {
        // A managed table's tenant keeps its ledger aside: its row, inserted again, re-adopts it.
        crate::db::detached::save(&t.name);
    }
    registry::delete(&t.name);
}

#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn detach_tenant(schema: Option<&str>) {
    detach(tenant_arg(schema, "detach_tenant", "schema"));
}

/// Drops a tenant's schema (matched by OID) and unregisters it, taking every lock the drop needs
/// up front within `lock_timeout_ms` (0: no limit; see [`drop_locked`]).
pub fn drop(name: &str, lock_timeout_ms: u32) {
    citus::refuse_on_worker("drop_tenant");
    let Some(oid) = catalog::schema_oid(name) else {
        if registry::renamed_to(name).is_some() {
            raise(apply::no_schema_error(name));
        }
        let hint = if registry::tenant_by_name(name).is_some() {
            "The tenant is registered but its schema is gone; tenancy.detach_tenant removes the registration and deletes the tenant's ledger."
        } else {
            "SELECT * FROM tenancy.all_tenants() lists the tenants."
        };
        raise(
            TenancyError::new(
                SqlState::InvalidSchemaName,
                format!("schema {} does not exist", quote_ident(name)),
            )
            .hint(hint),
        )
    };
    // Matched by OID: a schema that merely carries a tenant's name is never dropped.
    let Some(t) = registry::tenant_by_oid(oid) else {
        let e = match registry::tenant_by_name(name) {
            Some(_) => TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!("schema {} is not the schema registered for tenant {}: it was replaced behind pg_tenancy's back", quote_ident(name), quote_ident(name)),
            )
            .hint("Nothing was dropped. If that schema is the tenant's (restored by hand, say), SELECT * FROM tenancy.relink(dry_run => false) links it; otherwise inspect it and use DROP SCHEMA yourself. tenancy.detach_tenant removes the stale registration and deletes the tenant's ledger."),
            None => TenancyError::new(
                SqlState::UndefinedObject,
                format!("schema {} is not a registered tenant; tenancy.drop_tenant only drops tenants", quote_ident(name)),
            )
            .hint("Nothing was dropped. Use DROP SCHEMA for schemas that are not tenants."),
        };
        raise(e)
    };
    // DROP SCHEMA would refuse a caller without the owner's privileges too, but only after the
    // locks below, which anyone could otherwise take on someone else's tenant.
    let owner = catalog::schema_owner(oid);
    if !catalog::has_privileges_of(identity::current_user(), owner.oid) {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!("permission denied to drop tenant {}: the current role does not have the privileges of its owner {}", quote_ident(&t.name), quote_ident(&owner.name)),
            )
            .hint("Drop it as its owner (or a member of it, or a superuser). Nothing was dropped."),
        );
    }
    drop_locked(&t, lock_timeout_ms);
}

/// What stopped an attempt of [`drop_locked`]: the lock it waits for in the next attempt.
#[derive(Clone, Copy)]
enum Busy {
    /// The tenant's lock (a migration, rename or drop of the tenant is under way).
    Tenant,
    /// A relation the drop locks; `in_tenant`: it lies in the tenant's schema.
    Relation { oid: pg_sys::Oid, in_tenant: bool },
    /// A lock the `DROP SCHEMA` statement needed that was not foreseen.
    Unforeseen,
}

/// Drops the tenant without ever waiting for a lock while holding part of what the drop locks,
/// so an application using the tenant cannot deadlock with it (docs/concurrency.md): in attempts,
/// each in a subtransaction that first waits for whatever stopped the previous one (holding
/// nothing of the set), then takes the tenant's lock and `ACCESS EXCLUSIVE` on every relation the
/// cascade locks ([`catalog::drop_lock_set`], in OID order) without waiting, and then runs the
/// `DROP SCHEMA` with a 1 ms `lock_timeout` for anything not foreseen. A busy lock rolls the attempt
/// back (releasing all it took); past `lock_timeout_ms` the drop fails with 55P03.
fn drop_locked(t: &registry::Tenant, lock_timeout_ms: u32) {
    let waiting = Cell::new(Busy::Unforeseen);
    let outcome = locks::in_attempts(
        lock_timeout_ms,
        |left, busy| {
            waiting.set(Busy::Unforeseen);
            drop_attempt(t, busy, left, &waiting)
        },
        || waiting.get(),
    );
    if let Err(stopped) = outcome {
        raise(in_use(t, stopped, lock_timeout_ms));
    }
}

/// One attempt of [`drop_locked`], inside its subtransaction.
fn drop_attempt(
    t: &registry::Tenant,
    busy: Option<Busy>,
    left: lock_wait::Left,
    waiting: &Cell<Busy>,
) -> Result<(), Busy> {
    // Wait for what stopped the last attempt, holding nothing of the set yet.
    if let Some(b) = busy {
        waiting.set(b);
        match b {
            Busy::Tenant => {
                if let Some(ms) = lock_wait::wait_ms(left, true) {
                    locks::with_lock_timeout(ms, || registry::lock_tenant(t.oid));
                }
            }
            Busy::Relation { oid, in_tenant } => {
                if let Some(ms) = lock_wait::wait_ms(left, in_tenant) {
                    locks::lock_relation_within(oid, ms);
                }
            }
            Busy::Unforeseen => {}
        }
        waiting.set(Busy::Unforeseen);
    }
    // Everything else without waiting.
    if !registry::try_lock_tenant(t.oid) {
        return Err(Busy::Tenant);
    }
    let (t, _) = apply::recheck(t);
    for (oid, in_tenant) in catalog::drop_lock_set(t.oid) {
        if !locks::try_lock_relation(oid) {
            return Err(Busy::Relation { oid, in_tenant });
        }
    }
    // Checked with the locks held, so no new dependent can appear before the DROP.
    refuse_outside_dependents(&t);
    // Unregistered first: the DROP SCHEMA event trigger then finds no tenant to mark dropped.
    registry::delete(&t.name);
    // The cascade lists every object of the tenant as a NOTICE; that is noise here.
    let ms = lock_wait::STATEMENT_WAIT_MS.to_string() + "ms";
    settings::with_local(
        &[("client_min_messages", "warning"), ("lock_timeout", &ms)],
        || {
            citus::with_remote_lock_timeout(t.oid, &ms, || {
                spi::run(&format!("DROP SCHEMA {} CASCADE", quote_ident(&t.name)))
            })
        },
    );
    Ok(())
}

/// `DROP SCHEMA … CASCADE` would also drop what other schemas built on the tenant (a view in
/// `public` over its tables, another tenant's foreign key to it): refused (2BP01) with each named.
fn refuse_outside_dependents(t: &registry::Tenant) {
    let found = catalog::outside_dependents(t.oid);
    if found.is_empty() {
        return;
    }
    let mut detail = found
        .iter()
        .take(20)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if found.len() > 20 {
        detail.push_str(&format!("\nand {} more", found.len() - 20));
    }
    raise(
        TenancyError::new(
            SqlState::DependentObjectsStillExist,
            format!(
                "tenant {}: {} object{} outside its schema depend{} on it and would be dropped with it",
                quote_ident(&t.name),
                found.len(),
                if found.len() == 1 { "" } else { "s" },
                if found.len() == 1 { "s" } else { "" }
            ),
        )
        .detail(detail)
        .hint("Nothing was dropped. Drop or change those objects first (they belong to other schemas: a view over the tenant's tables, another table's foreign key to it, a default using its sequence), then drop the tenant."),
    )
}

/// 55P03 for a drop that could not take its locks within its lock timeout.
fn in_use(t: &registry::Tenant, stopped: Busy, lock_timeout_ms: u32) -> TenancyError {
    let (what, holders) = match stopped {
        Busy::Tenant => (
            "another pg_tenancy operation on it (a migration, rename or drop) holds its lock"
                .to_string(),
            locks::own_holders(locks::Own::Tenant, t.oid.to_u32()),
        ),
        Busy::Relation { oid, .. } => (
            format!(
                "{} is locked by another transaction",
                catalog::relation_name(oid)
            ),
            locks::relation_holders(oid),
        ),
        Busy::Unforeseen => (
            "an object it contains is locked by another transaction".to_string(),
            String::new(),
        ),
    };
    let mut e = TenancyError::new(
        SqlState::LockNotAvailable,
        format!(
            "tenant {}: still in use after {} (lock timeout): {what}; nothing was dropped",
            quote_ident(&t.name),
            lock_wait::describe_ms(lock_timeout_ms)
        ),
    )
    .hint(format!(
        "Retry once the transactions using the tenant have ended (pg_stat_activity shows them), or give the drop more time: tenancy.drop_tenant({}, lock_timeout => '30s'), or SET tenancy.drop_lock_timeout (which the managed tables' 'drop' policy uses too). The drop never waits while holding part of the tenant's locks, so it cannot deadlock with them.",
        quote_literal(&t.name)
    ));
    if !holders.is_empty() {
        e = e.detail(format!("Held by {holders}."));
    }
    e
}

#[pg_extern(volatile, name = "drop_tenant")]
#[search_path(pg_catalog, pg_temp)]
fn drop_tenant_within(schema: Option<&str>, lock_timeout: default!(Option<Interval>, "NULL")) {
    let name = tenant_arg(schema, "drop_tenant", "schema");
    let ms = match lock_timeout {
        None => settings::drop_lock_timeout_ms(),
        Some(i) => lock_wait::timeout_ms(
            "drop_tenant",
            "lock_timeout",
            i.months(),
            i.days(),
            i.micros(),
        )
        .or_raise(),
    };
    drop(name, ms);
}

/// Sets `search_path` to the tenant then the shared schemas, and `tenancy.tenant`. An attribute
/// tenant (no schema) only sets `tenancy.tenant`, which its tables' row-level security reads.
/// No `SET search_path` clause here on purpose: that clause would undo the `SET LOCAL` at function
/// exit. Every name below is therefore schema-qualified.
#[pg_extern(volatile)]
fn set_tenant(schema: Option<&str>, is_local: default!(Option<bool>, true)) {
    let name = tenant_arg(schema, "set_tenant", "schema");
    let is_local = required(
        is_local,
        "set_tenant",
        "is_local",
        "tenancy.set_tenant('org_1', true)",
    );
    let Some(t) = registry::tenant_by_name(name) else {
        if crate::api::attribute::is_attribute_tenant(name) {
            spi::set_config("tenancy.tenant", name, is_local);
            spi::set_config("tenancy.tenant_oid", "", is_local);
            return;
        }
        apply::require_tenant(name); // raises the "not a registered tenant" error
        return;
    };
    // search_path finds the schema by name: it must be the tenant's own, not gone (the privilege
    // check below would then blame USAGE) and not another schema that took the name.
    if t.oid == pg_sys::InvalidOid || catalog::schema_oid(&t.name) != Some(t.oid) {
        raise(apply::no_schema_error(&t.name));
    }
    // PostgreSQL silently skips a search_path schema the role cannot use: queries would then read
    // the shared schemas' tables of the same names. Refuse instead.
    let usage = catalog::schema_usage(t.oid).unwrap_or_else(|| {
        // Dropped by another session since the check above.
        raise(apply::no_schema_error(&t.name))
    });
    if !usage {
        raise(
            TenancyError::new(
                SqlState::InsufficientPrivilege,
                format!("permission denied for tenant {}: the current role has no USAGE on its schema", quote_ident(&t.name)),
            )
            .hint(format!(
                "The tenant's owner (or a superuser) can run GRANT USAGE ON SCHEMA {} TO <role>, plus the table privileges the role needs.",
                quote_ident(&t.name)
            )),
        );
    }
    spi::set_config("search_path", &apply::tenant_search_path(&t.name), is_local);
    spi::set_config("tenancy.tenant", &t.name, is_local);
    // Read by current_tenant() to notice a drop or rename since (docs/functions/current_tenant.md).
    spi::set_config("tenancy.tenant_oid", &t.oid.to_u32().to_string(), is_local);
}

#[pg_extern(volatile, name = "migrate_tenant")]
#[search_path(pg_catalog, pg_temp)]
fn migrate_tenant(
    schema: Option<&str>,
    target: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(version, String), name!(name, String))> {
    let name = tenant_arg(schema, "migrate_tenant", "schema");
    let t = apply::require_tenant(name);
    let applied = apply::migrate(&t, target);
    TableIterator::new(applied.into_iter().map(|m| (m.version, m.name)))
}
