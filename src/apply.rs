//! Applying migrations to one tenant: the single path every caller goes through
//! (`create_tenant`, `migrate_tenant`, the managed-table trigger, `migrate_all` and its workers,
//! `reconcile`, and the generator's and `verify(deep)`'s scratch builds).
//!
//! Order of work: lock the tenant (advisory lock on its schema OID), re-read the registry and the
//! ledger *after* the lock (a fresh snapshot, so a concurrent run's commits are seen), refuse drift,
//! then run each pending migration statement by statement with
//! `search_path = <tenant>, <shared schemas>`, writing its ledger row in the same transaction.
//!
//! Who runs it (SECURITY.md): each migration runs as the owner of the tenant schema inside a
//! security-restricted operation ([`identity::as_tenant_owner`]), and only when its author (the
//! role that registered it; the extension's owner for embedded ones) has the owner's privileges.
//! The ledger row is written afterwards, outside that operation, as pg_tenancy's own owner.

use std::cmp::Ordering;
use std::time::Instant;

use pgrx::pg_sys;

use crate::db::catalog;
use crate::db::citus::Distribution;
use crate::db::identity;
use crate::db::known_set;
use crate::db::registry::{self, Tenant};
use crate::db::report::{self, raise, Caught, OrRaise};
use crate::db::settings;
use crate::db::spi;
use crate::rules::enum_values::{self, Step};
use crate::rules::error::{Result, SqlState, TenancyError};
use crate::rules::migration_set::{self, cmp_versions, Migration};
use crate::rules::names::{quote_ident, quote_literal};
use crate::rules::sqltext;

/// Looks a tenant up by name, or fails with 42704.
pub fn require_tenant(name: &str) -> Tenant {
    registry::tenant_by_name(name).unwrap_or_else(|| {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("{} is not a registered tenant", quote_ident(name)),
            )
            .hint("SELECT * FROM tenancy.all_tenants() lists the tenants; tenancy.create_tenant or tenancy.register_tenant adds one."),
        )
    })
}

/// Locks the tenant and returns its registry row as it is once the lock is held, after checking
/// that its schema is still there under its registered name.
pub fn lock(t: &Tenant) -> Tenant {
    lock_and_check(t).0
}

/// [`lock`], also telling whether the tenant has a recorded fleet failure to clear.
fn lock_and_check(t: &Tenant) -> (Tenant, bool) {
    if t.oid == pg_sys::InvalidOid {
        raise(no_schema_error(&t.name))
    }
    registry::lock_tenant(t.oid);
    recheck(t)
}

/// The tenant's registry row read again once its lock is held (a fresh snapshot: what another
/// session committed while this one waited), checking that its schema is still there under its
/// registered name; with whether it has a recorded fleet failure to clear.
pub fn recheck(t: &Tenant) -> (Tenant, bool) {
    checked(t, registry::locked_tenant(t.oid))
}

/// [`recheck`] of what was read once the lock was held (`None`: no longer registered).
fn checked(t: &Tenant, locked: Option<registry::Locked>) -> (Tenant, bool) {
    let Some(locked) = locked else {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("tenant {} was removed by another session", quote_ident(&t.name)),
            )
            .hint("Check tenancy.all_tenants(); the tenant was detached or dropped while this call waited."),
        )
    };
    match locked.schema_name {
        Some(actual) if actual == locked.tenant.name => (locked.tenant, locked.has_error),
        Some(actual) => raise(renamed_error(&locked.tenant.name, &actual)),
        None => raise(no_schema_error(&locked.tenant.name)),
    }
}

/// A tenant whose registered schema is gone (dropped behind pg_tenancy's back, or not found when
/// the registry was re-linked after a `pg_upgrade`). Never a bare pointer to `detach_tenant`,
/// which deletes the tenant's ledger.
pub fn no_schema_error(name: &str) -> TenancyError {
    if let Some(now) = registry::renamed_to(name) {
        return renamed_error(name, &now);
    }
    let replaced = crate::db::catalog::schema_oid(name).is_some();
    TenancyError::new(
        SqlState::InvalidSchemaName,
        if replaced {
            format!(
                "schema of tenant {} was dropped behind pg_tenancy's back; the schema now named {} is another one",
                quote_ident(name),
                quote_ident(name)
            )
        } else {
            format!("schema of tenant {} no longer exists", quote_ident(name))
        },
    )
    .hint(if replaced {
        "If that schema is the tenant's (restored by hand, say), SELECT * FROM tenancy.relink(dry_run => false) links it. tenancy.detach_tenant removes the registration and deletes the tenant's ledger."
    } else {
        "It was dropped behind pg_tenancy's back: restore the schema and run SELECT * FROM tenancy.relink(dry_run => false), or remove the registration with tenancy.detach_tenant (it deletes the tenant's ledger)."
    })
}

/// A tenant whose schema was renamed by hand: it is still there, under another name.
fn renamed_error(name: &str, now: &str) -> TenancyError {
    TenancyError::new(
        SqlState::ObjectNotInPrerequisiteState,
        format!(
            "schema of tenant {} was renamed to {} behind pg_tenancy's back",
            quote_ident(name),
            quote_ident(now)
        ),
    )
    .hint(format!(
        "Rename it back (ALTER SCHEMA {} RENAME TO {}), then use tenancy.rename_tenant for renames.",
        quote_ident(now),
        quote_ident(name)
    ))
}

/// `search_path` for running a tenant's migrations or for `set_tenant`: the tenant, then the
/// shared schemas (each quoted; an unquoted element is folded to lower case as PostgreSQL would).
pub fn tenant_search_path(tenant: &str) -> String {
    let mut path = quote_ident(tenant);
    for s in settings::shared_schemas().split(',') {
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        path.push_str(", ");
        if s.starts_with('"') {
            path.push_str(s);
        } else {
            path.push_str(&quote_ident(&s.to_lowercase()));
        }
    }
    path
}

/// The migrations not yet in the tenant's ledger, up to `target`, and whether its ledger is empty
/// (a new tenant); refuses drift.
fn pending(
    tenant: &str,
    applied: Vec<(String, String)>,
    known: Vec<Migration>,
    target: Option<&str>,
) -> Result<(Vec<Migration>, bool)> {
    for (version, checksum) in &applied {
        if let Some(m) = known.iter().find(|m| &m.version == version) {
            if &m.checksum != checksum {
                return Err(TenancyError::new(
                    SqlState::ObjectNotInPrerequisiteState,
                    format!(
                        "migration {} has changed since it was applied to tenant {}: applied checksum {}, current checksum {}",
                        m.label(),
                        quote_ident(tenant),
                        checksum,
                        m.checksum
                    ),
                )
                .hint(format!(
                    "Restore the original text, or accept the new text with SELECT tenancy.repair('{}') (it does not re-run the migration).",
                    m.version
                )));
            }
        }
    }
    let todo = known
        .into_iter()
        .filter(|m| !applied.iter().any(|(v, _)| v == &m.version))
        .filter(|m| target.is_none_or(|t| cmp_versions(&m.version, t) != Ordering::Greater))
        .collect();
    Ok((todo, applied.is_empty()))
}

/// What an error inside a run says about the run: the migrations of this transaction, up to and
/// including the failing one, that add enum values, and how to get past PostgreSQL's refusal to
/// use such a value before it commits (`55P04`) where this run is.
struct RunInfo {
    adders: Vec<String>,
    enum_hint: String,
}

/// Where a run happens, for [`RunInfo`]'s hint.
enum Where<'a> {
    /// An existing tenant's pending migrations (`migrate_tenant`, a step of `migrate_all`).
    Tenant {
        name: &'a str,
        adders: Vec<&'a Migration>,
    },
    /// A new tenant's first migrations (`create_tenant`, a managed row, `reconcile`).
    NewTenant,
    /// A scratch build (`create_template`, `generate_migration`, `verify(deep => true)`).
    Scratch,
}

const FOLD_RULES: &str = "pg_tenancy writes the values that plain ALTER TYPE … ADD VALUE statements add into the CREATE TYPE … AS ENUM of an earlier migration of the same transaction, but not here: the type was not created by such a statement in this transaction, or a statement in between lists or changes its values (enum_range, pg_enum, another ALTER TYPE, a DO block naming it), or a migration changes search_path";

impl RunInfo {
    fn new(place: Where, m: &Migration, adders: Vec<String>) -> RunInfo {
        let own = adders.len() == 1 && adders[0] == m.label();
        let enum_hint = if adders.is_empty() {
            "The value was added in this transaction by something pg_tenancy does not see as adding enum values (a function a migration calls, or the calling transaction itself). Add enum values with ALTER TYPE … ADD VALUE as a statement of a migration of its own, so that CALL tenancy.migrate_all() commits after it.".to_string()
        } else if own {
            format!(
                "Migration {} adds the value and uses it: PostgreSQL needs a commit in between. Move the statements that use the new value into a later migration (CALL tenancy.migrate_all() commits after each migration that adds enum values).",
                m.label()
            )
        } else {
            match place {
                Where::Tenant { name, adders } => {
                    let last = adders.last().map(|a| a.version.as_str()).unwrap_or("");
                    format!(
                        "Run CALL tenancy.migrate_all(tenants => ARRAY[{}]), which commits after each migration that adds enum values; or SELECT * FROM tenancy.migrate_tenant({}, target => '{last}'), COMMIT, and migrate again.",
                        quote_literal(name),
                        quote_literal(name)
                    )
                }
                Where::NewTenant => format!(
                    "A new tenant is provisioned in one transaction. {FOLD_RULES}. Create the type with all its values in one CREATE TYPE … AS ENUM, or keep each ALTER TYPE … ADD VALUE a plain statement with nothing in between that lists or changes the type's values (docs/migrations.md, \"Enum values\")."
                ),
                Where::Scratch => format!(
                    "pg_tenancy builds this schema in one transaction. {FOLD_RULES}. Create the type with all its values in one CREATE TYPE … AS ENUM, or keep each ALTER TYPE … ADD VALUE a plain statement with nothing in between that lists or changes the type's values (docs/migrations.md, \"Enum values\")."
                ),
            }
        };
        RunInfo { adders, enum_hint }
    }
}

/// Runs one statement of a migration; on error, re-raises with the tenant, the migration and the
/// statement named, keeping the original SQLSTATE.
fn run_statement(
    tenant: &str,
    owner: &str,
    m: &Migration,
    number: usize,
    sql: &str,
    info: &RunInfo,
    on_citus: bool,
) {
    use pgrx::pg_sys::errcodes::PgSqlErrorCode::{
        ERRCODE_ACTIVE_SQL_TRANSACTION, ERRCODE_FEATURE_NOT_SUPPORTED,
        ERRCODE_INSUFFICIENT_PRIVILEGE, ERRCODE_INTERNAL_ERROR,
        ERRCODE_INVALID_TRANSACTION_TERMINATION, ERRCODE_LOCK_NOT_AVAILABLE,
        ERRCODE_T_R_DEADLOCK_DETECTED, ERRCODE_UNSAFE_NEW_ENUM_VALUE_USAGE,
    };
    report::with_context(
        || spi::run(sql),
        |c| {
            let mut detail = match c.detail {
                Some(d) => format!("{d}\nstatement {number}: {}", sqltext::excerpt(sql)),
                None => format!("statement {number}: {}", sqltext::excerpt(sql)),
            };
            let mut hint = c.hint;
            let mut code = c.code;
            let mut message = c.message.clone();
            if on_citus && c.code == ERRCODE_INTERNAL_ERROR {
                if let Some(table) = sqltext::created_table(sql) {
                    message = format!(
                        "Citus cannot create table {table} in the distributed tenant: {message}"
                    );
                }
                // Citus refuses what it cannot distribute with the internal-error code.
                code = ERRCODE_FEATURE_NOT_SUPPORTED;
                hint = Some(format!(
                    "The tenant is a Citus distributed schema, and Citus refused this statement. Change migration {} so that Citus can run it (docs/citus.md, \"Limits\": no inheritance, no foreign tables, foreign keys only to tables of the tenant or to reference tables); tenant {} stays at its previous version.{}",
                    m.label(),
                    quote_ident(tenant),
                    hint.map(|h| format!(" Citus: {h}")).unwrap_or_default()
                ));
            } else if crate::db::citus::is_connection_error(c.code) {
                // Citus could not reach a worker, or log in there as the tenant's owner.
                hint = Some(
                    crate::db::citus::citus_error(
                        c.code,
                        &format!(
                            "Tenant {} stays at its previous version.",
                            quote_ident(tenant)
                        ),
                    )
                    .1,
                );
            } else if c.code == ERRCODE_UNSAFE_NEW_ENUM_VALUE_USAGE {
                if !info.adders.is_empty() {
                    detail.push_str(&format!(
                        "\nmigrations that add enum values earlier in this same transaction: {}; PostgreSQL lets a new enum value be used only once the transaction that added it has committed",
                        info.adders.join(", ")
                    ));
                }
                hint = Some(info.enum_hint.clone());
            } else if c.code == ERRCODE_ACTIVE_SQL_TRANSACTION
                || c.code == ERRCODE_INVALID_TRANSACTION_TERMINATION
            {
                hint = Some(format!(
                    "pg_tenancy runs a tenant's migrations inside a transaction (migrate_tenant, create_tenant and each step of CALL tenancy.migrate_all), and a migration cannot commit or roll back it: migration {} cannot run there as written. Use the transactional form (CREATE INDEX without CONCURRENTLY; no COMMIT or ROLLBACK in DO blocks or procedures), or run the statement outside tenant migrations.",
                    m.label()
                ));
            } else if c.code == ERRCODE_T_R_DEADLOCK_DETECTED {
                // PostgreSQL's own hint only points at the server log: say the likely cause.
                hint = Some(format!(
                    "This transaction and another waited for each other's locks. A tenant's foreign key to a shared table takes SHARE ROW EXCLUSIVE on that table, which conflicts with writing it: two sign-up transactions that each write a shared table (INSERT INTO plans …) before creating their tenant wait for each other. Create the tenant first and write shared tables after, or begin with LOCK TABLE <shared table> IN SHARE ROW EXCLUSIVE MODE (docs/concurrency.md). The transaction can be retried.{}",
                    hint.map(|h| format!(" {h}")).unwrap_or_default()
                ));
            } else if c.code == ERRCODE_LOCK_NOT_AVAILABLE && hint.is_none() {
                hint = Some(format!(
                    "Another transaction held a lock migration {} needs for longer than lock_timeout (pg_locks shows who). Retry when it has finished, or allow more time (migrate_all's lock_timeout, or SET lock_timeout); docs/concurrency.md.",
                    m.label()
                ));
            }
            Caught {
            message: format!("tenant {}: migration {} failed: {}", quote_ident(tenant), m.label(), message),
            detail: Some(detail),
            hint: hint.or_else(|| {
                Some(if c.code == ERRCODE_INSUFFICIENT_PRIVILEGE
                    && c.message.contains("deferred trigger")
                {
                    format!(
                        "Migrations run in a security-restricted operation, where PostgreSQL cannot queue deferred constraint checks. Add SET CONSTRAINTS <constraint> IMMEDIATE to migration {} before this statement (naming the tenant's constraint: SET CONSTRAINTS ALL would also change the caller's), or fill the table before making the constraint deferrable.",
                        m.label()
                    )
                } else if c.code == ERRCODE_INSUFFICIENT_PRIVILEGE {
                    format!(
                        "Migrations run as the tenant's owner {}: grant that role the privilege this statement needs (for a foreign key to a shared table, GRANT REFERENCES ON <table> TO {}), then migrate again. tenancy.verify() lists missing privileges on shared tables.",
                        quote_ident(owner),
                        quote_ident(owner)
                    )
                } else {
                    format!(
                        "Fix migration {}; tenant {} stays at its previous version because the whole call is rolled back.",
                        m.label(),
                        quote_ident(tenant)
                    )
                })
            }),
            code,
        }
        },
    )
}

/// The statements of each migration of a run, checked as when they were loaded.
fn statements(run: &[Migration]) -> Vec<Vec<sqltext::Statement>> {
    run.iter()
        .map(|m| sqltext::check_migration(&m.label(), &m.sql).or_raise())
        .collect()
}

/// The steps of a run in one transaction: each statement with its number, `ADD VALUE`s folded
/// into the `CREATE TYPE` of the same run where that is the same ([`enum_values::fold`]).
fn plan(stmts: &[Vec<sqltext::Statement>]) -> Vec<Vec<(usize, Step)>> {
    enum_values::fold(stmts)
        .into_iter()
        .zip(stmts)
        .map(|(steps, stmts)| stmts.iter().map(|s| s.number).zip(steps).collect())
        .collect()
}

/// Whether each migration of a run adds enum values.
fn adding(stmts: &[Vec<sqltext::Statement>]) -> Vec<bool> {
    stmts
        .iter()
        .map(|s| enum_values::adds_enum_values(s))
        .collect()
}

/// The labels of the migrations of `run[..=i]` that add enum values.
fn adders_up_to(run: &[Migration], adds: &[bool], i: usize) -> Vec<String> {
    run[..=i]
        .iter()
        .zip(adds)
        .filter(|(_, a)| **a)
        .map(|(m, _)| m.label())
        .collect()
}

/// Runs one migration's planned statements in `schema` (with `@tenant@` = `schema`) as the
/// schema's owner, in a security-restricted operation of its own: its settings end with it. On a
/// Citus coordinator (`dist`), the tables each statement creates are distributed before the next.
fn run_migration(
    schema: &str,
    owner: &catalog::Role,
    m: &Migration,
    steps: &[(usize, Step)],
    info: &RunInfo,
    dist: Option<&Distribution>,
) {
    let path = tenant_search_path(schema);
    identity::as_tenant_owner(owner.oid, &path, || {
        // Foreign keys to shared tables become shared references (db::shared_fk).
        let _converting = crate::db::shared_fk::Converting::start();
        for (number, step) in steps {
            let Step::Run(text) = step else {
                continue; // an ADD VALUE folded into its CREATE TYPE
            };
            let sql = sqltext::substitute_tenant(text, schema)
                .map_err(|e| TenancyError {
                    message: format!("migration {}: {}", m.label(), e.message),
                    ..e
                })
                .or_raise();
            run_statement(schema, &owner.name, m, *number, &sql, info, dist.is_some());
            if let Some(d) = dist {
                d.after_statement(schema, &m.label(), *number);
            }
        }
    })
}

/// Whether `m`'s author (the role that registered it; the extension's owner for embedded ones)
/// has the privileges of `owner`; `Err` carries the 42501 error naming both.
///
/// `what` names the schema in the message: `tenant "org_1"`, or `schema "tenant_template"` for a
/// scratch build.
fn author_check(what: &str, owner: &catalog::Role, m: &Migration) -> Result<()> {
    let (name, allowed) = catalog::author_may_act_as(m.author.as_deref(), owner.oid);
    if allowed {
        return Ok(());
    }
    let who = match &name {
        Some(n) => format!("{}, which does not have the privileges of", quote_ident(n)),
        None => format!(
            "{}, a role that no longer exists, so it cannot act as",
            quote_ident(m.author.as_deref().unwrap_or("?"))
        ),
    };
    Err(TenancyError::new(
        SqlState::InsufficientPrivilege,
        format!(
            "{what}: migration {} was registered by {who} the schema's owner {}",
            m.label(),
            quote_ident(&owner.name)
        ),
    )
    .detail("A migration runs with the rights of the tenant's owner, so only a role with those rights (or a superuser) may author it.")
    .hint(format!(
        "Register the migration as a role that has the privileges of {} (a member of it, or a superuser), or have the schema owned by a role the author belongs to (for tenants: tenancy.create_tenant(name, owner => …)).",
        quote_ident(&owner.name)
    )))
}

/// Refuses (42501) to run a migration whose author lacks the privileges of the tenant's owner:
/// running it would give the author's text rights the author does not have.
fn check_authors(schema: &str, owner: &catalog::Role, todo: &[Migration]) {
    let mut checked: Vec<Option<&str>> = Vec::new();
    for m in todo {
        if checked.contains(&m.author.as_deref()) {
            continue;
        }
        author_check(&format!("tenant {}", quote_ident(schema)), owner, m).or_raise();
        checked.push(m.author.as_deref());
    }
}

/// Builds `schema` (which must exist and be empty) from the known migrations that `include`
/// selects, without registering it or writing a ledger: for templates and the generator's and
/// verify's scratch schemas. The same rules as for a tenant: each migration runs as the schema's
/// owner, and only if its author has that owner's privileges. Migrations whose author has not are
/// left out; their errors are returned for the caller to report.
pub fn build_schema(schema: &str, include: impl Fn(&Migration) -> bool) -> Vec<TenancyError> {
    let owner = catalog::schema_owner_by_name(schema);
    let mut left_out = Vec::new();
    let mut run = Vec::new();
    for m in known_set::known_set().into_iter().filter(|m| include(m)) {
        match author_check(&format!("schema {}", quote_ident(schema)), &owner, &m) {
            Ok(()) => run.push(m),
            Err(e) => left_out.push(e),
        }
    }
    let stmts = statements(&run);
    let (steps, adds) = (plan(&stmts), adding(&stmts));
    for (i, m) in run.iter().enumerate() {
        let info = RunInfo::new(Where::Scratch, m, adders_up_to(&run, &adds, i));
        run_migration(schema, &owner, m, &steps[i], &info, None);
    }
    left_out
}

/// Refuses (55000) to migrate while a registered migration's text does not match its checksum:
/// the text was edited behind `tenancy.add_migration`, so what the ledger says was applied is not
/// what would be applied now (drift, even for tenants that applied it long ago).
fn refuse_tampered(tenant: &str, tampered: &[String]) {
    if let Some(label) = tampered.first() {
        raise(
            TenancyError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!(
                    "tenant {}: registered migration {label} was changed outside tenancy.add_migration (its text no longer matches its checksum)",
                    quote_ident(tenant)
                ),
            )
            .hint("Restore its original text in tenancy.registered_migrations (only a superuser or the extension's owner can write it); to change a migration, register a new version."),
        )
    }
}

/// Selects the migrations up to `upto` (all when `None`).
pub fn up_to(upto: Option<&str>) -> impl Fn(&Migration) -> bool + '_ {
    move |m| upto.is_none_or(|u| cmp_versions(&m.version, u) != Ordering::Greater)
}

/// Migrates a tenant (locking it first) up to `target`, in the caller's transaction; returns what
/// was applied now.
pub fn migrate(t: &Tenant, target: Option<&str>) -> Vec<Migration> {
    migrate_run(t, target, false).0
}

/// One step of `CALL tenancy.migrate_all` for a tenant: its pending migrations up to and including
/// the first that adds enum values (whose values a later migration can only use once it has
/// committed; the fleet commits after each step). Returns what was applied now and whether more
/// is pending.
pub fn migrate_step(t: &Tenant) -> (Vec<Migration>, bool) {
    migrate_run(t, None, true)
}

fn migrate_run(t: &Tenant, target: Option<&str>, stop_after_enum: bool) -> (Vec<Migration>, bool) {
    crate::db::citus::refuse_on_worker("migrate_tenant");
    if t.oid == pg_sys::InvalidOid {
        raise(no_schema_error(&t.name))
    }
    registry::lock_tenant(t.oid);
    // Everything below is read in one query after the lock (a fresh snapshot): the tenant, its
    // schema's owner, its ledger and the registered migrations; a migration added while we
    // waited is part of this run.
    let state = registry::run_state(t.oid);
    let (owner_oid, applied, registered, tampered) = match &state {
        Some(s) => (
            s.owner,
            s.ledger.clone(),
            s.registered.clone(),
            s.tampered.clone(),
        ),
        None => Default::default(),
    };
    let (t, has_error) = checked(t, state.map(|s| s.locked));
    let known = known_set::with_embedded(registered);
    refuse_tampered(&t.name, &tampered);
    if let Some(target) = target {
        migration_set::find(&known, target).or_raise();
    }
    let (mut todo, new_tenant) = pending(&t.name, applied, known, target).or_raise();
    // A new tenant needing the whole set: built from the proven snapshot when there is one,
    // without reading the migrations' text (src/snapshot.rs locks against remove_migration).
    if new_tenant && target.is_none() && !todo.is_empty() {
        let owner = catalog::schema_owner(t.oid);
        check_authors(&t.name, &owner, &todo);
        if crate::snapshot::provision(&t, &owner, &todo) {
            return (todo, false);
        }
    }
    known_set::load_text(&mut todo);
    if has_error {
        registry::clear_error(t.oid);
    }
    if todo.is_empty() {
        return (todo, false);
    }
    let owner = catalog::role_of(owner_oid, t.oid);
    check_authors(&t.name, &owner, &todo);
    let dist = Distribution::for_run(t.oid);
    if dist.is_some() {
        // The statements' shard commands run on the tenant's worker over Citus's connections,
        // which a local lock_timeout (migrate_all's, say) does not reach.
        crate::db::citus::send_lock_timeout();
    }
    let mut stmts = statements(&todo);
    let mut adds = adding(&stmts);
    let mut more = false;
    if stop_after_enum {
        if let Some(first) = adds.iter().position(|a| *a) {
            more = first + 1 < todo.len();
            todo.truncate(first + 1);
            stmts.truncate(first + 1);
            adds.truncate(first + 1);
        }
    }
    let steps = plan(&stmts);
    for (i, m) in todo.iter().enumerate() {
        let adders = adders_up_to(&todo, &adds, i);
        let place = if new_tenant {
            Where::NewTenant
        } else {
            Where::Tenant {
                name: &t.name,
                adders: todo[..i]
                    .iter()
                    .zip(&adds)
                    .filter(|(_, a)| **a)
                    .map(|(m, _)| m)
                    .collect(),
            }
        };
        let info = RunInfo::new(place, m, adders);
        let started = Instant::now();
        run_migration(&t.name, &owner, m, &steps[i], &info, dist.as_ref());
        registry::record(&t.name, m, started.elapsed().as_secs_f64(), false);
    }
    (todo, more)
}
