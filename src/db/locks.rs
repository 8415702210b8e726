//! Heavyweight locks taken through PostgreSQL's lock manager, and attempts that give back every
//! lock they took: the storage side of [`crate::rules::lock_wait`] (`drop_tenant`).
//!
//! Relations are locked by OID with `LockRelationOid` / `ConditionalLockRelationOid`, as
//! `DROP SCHEMA … CASCADE` itself does: no privilege check (the caller's right to drop the schema
//! is checked first), no user code (nothing of the tenant runs), no name lookup.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;

use crate::db::settings;
use crate::db::spi;
use crate::rules::lock_wait;

enum Outcome<T> {
    Returned(T),
    LockTimedOut,
    Failed(Box<CaughtError>),
}

/// Runs `f` in a subtransaction of its own (as a PL/pgSQL block with an `EXCEPTION` clause does).
///
/// - `f` returns `Ok`: the subtransaction is committed into the caller's transaction, so every
///   lock it took is held until that transaction ends.
/// - `f` returns `Err`, or a lock wait inside it ran out of `lock_timeout` (55P03): the
///   subtransaction is rolled back, which releases every lock taken in it and undoes its writes;
///   the `Err` (for a timeout: `timed_out()`) is returned.
/// - Any other error rolls the subtransaction back and is raised again.
pub fn attempt<T, E>(
    f: impl FnOnce() -> Result<T, E>,
    timed_out: impl FnOnce() -> E,
) -> Result<T, E> {
    // SAFETY: the sequence of PostgreSQL's own callers (pl_exec.c, exec_stmt_block): begin an
    // internal subtransaction, run in the caller's memory context, and on the way out release or
    // roll it back and restore the caller's memory context and resource owner.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let outcome = PgTryBuilder::new(AssertUnwindSafe(|| Outcome::Returned(f())))
            .catch_others(|e| match &e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r)
                    if r.sql_error_code() == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE =>
                {
                    Outcome::LockTimedOut
                }
                _ => Outcome::Failed(Box::new(e)),
            })
            .execute();
        pg_sys::MemoryContextSwitchTo(context);
        let keep = matches!(outcome, Outcome::Returned(Ok(_)));
        if keep {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        match outcome {
            Outcome::Returned(r) => r,
            Outcome::LockTimedOut => Err(timed_out()),
            Outcome::Failed(e) => e.rethrow(),
        }
    }
}

/// Runs `once` in [`attempt`]s (each a subtransaction: a failed one gives back every lock it
/// took) until one succeeds or `limit_ms` (0: no limit) has run out, pausing between attempts
/// (doubling, with jitter so that sessions starting together do not retry in step; never past
/// what is left). `once` gets what is left of the limit and why the previous attempt stopped;
/// `timed_out` is that reason when a lock wait inside ran out of `lock_timeout`. `Err` carries
/// the last attempt's reason. The retry loop of `drop_tenant` and `remove_migration`: a session
/// that only ever waits while holding nothing of its lock set cannot hold others back for
/// longer than one wait.
pub fn in_attempts<E: Copy>(
    limit_ms: u32,
    mut once: impl FnMut(lock_wait::Left, Option<E>) -> Result<(), E>,
    timed_out: impl Fn() -> E,
) -> Result<(), E> {
    let started = Instant::now();
    let left = || lock_wait::left(limit_ms, started.elapsed().as_millis() as u64);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // SAFETY: reads this backend's PID.
    let jitter = (unsafe { pg_sys::MyProcPid } as u32) ^ nanos;
    let mut previous: Option<E> = None;
    let mut n = 0u32;
    loop {
        let stopped = match attempt(|| once(left(), previous), &timed_out) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let rest = left();
        if rest == lock_wait::Left::Nothing {
            return Err(stopped);
        }
        sleep_ms(lock_wait::pause_ms(n, jitter.rotate_left(n), rest));
        previous = Some(stopped);
        n += 1;
    }
}

/// Takes `ACCESS EXCLUSIVE` on relation `oid` if no other session holds a conflicting lock;
/// `false` (and nothing taken) otherwise. Never waits.
pub fn try_lock_relation(oid: pg_sys::Oid) -> bool {
    // SAFETY: a lock request by OID; a relation dropped meanwhile only makes the lock useless.
    unsafe {
        pg_sys::ConditionalLockRelationOid(oid, pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE)
    }
}

/// Takes `ACCESS EXCLUSIVE` on relation `oid`, waiting at most `lock_timeout_ms` (0: without a
/// limit); a wait that runs out raises 55P03 (catch it with [`attempt`]).
pub fn lock_relation_within(oid: pg_sys::Oid, lock_timeout_ms: u32) {
    with_lock_timeout(lock_timeout_ms, || {
        // SAFETY: as in try_lock_relation; waits, and raises on timeout or cancel.
        unsafe { pg_sys::LockRelationOid(oid, pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE) }
    })
}

/// Runs `f` with `lock_timeout` set to `ms` milliseconds (0: no limit), then restores it.
pub fn with_lock_timeout<R>(ms: u32, f: impl FnOnce() -> R) -> R {
    settings::with_local(&[("lock_timeout", &format!("{ms}ms"))], f)
}

/// Sleeps `ms` milliseconds; a cancel or terminate request ends it with PostgreSQL's error.
pub fn sleep_ms(ms: u32) {
    if ms > 0 {
        crate::db::spi::run_with_args(
            "SELECT pg_catalog.pg_sleep($1)",
            &[(ms as f64 / 1000.0).into()],
        )
        .unwrap_or_else(|e| panic!("pg_tenancy: SPI failure: {e}"));
    }
}

/// The other sessions holding a lock on relation `oid` in this database, as `PIDs 12, 34` (empty
/// when none does any more).
pub fn relation_holders(oid: pg_sys::Oid) -> String {
    holders(
        "l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.relation OPERATOR(pg_catalog.=) $1",
        vec![oid.into()],
    )
}

/// [`relation_holders`] without the sessions that only read it (`ACCESS SHARE`, which conflicts
/// with nothing but `ACCESS EXCLUSIVE`).
pub fn relation_writers(oid: pg_sys::Oid) -> String {
    holders(
        "l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.relation OPERATOR(pg_catalog.=) $1 \
         AND l.mode OPERATOR(pg_catalog.<>) 'AccessShareLock'",
        vec![oid.into()],
    )
}

fn holders(which: &str, args: Vec<pgrx::datum::DatumWithOid>) -> String {
    let pids = spi::get_one::<String>(
        &format!(
            "SELECT pg_catalog.string_agg(DISTINCT l.pid::pg_catalog.text, ', ') FROM pg_catalog.pg_locks l \
             WHERE {which} AND l.granted AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() \
             AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d \
                 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
        ),
        &args,
    );
    match pids {
        Some(p) if p.contains(',') => format!("PIDs {p}"),
        Some(p) => format!("PID {p}"),
        None => String::new(),
    }
}

/// pg_tenancy's own locks (a tenant, a tenant name, a registered migration, the re-link after a
/// `pg_upgrade`): heavyweight object locks of class `pg_class` with a non-zero sub-ID (the
/// kind). PostgreSQL locks relations with relation locks, and objects with object locks of
/// sub-ID 0; no SQL function takes object locks at all, so nobody but pg_tenancy can hold these.
/// Advisory locks (their earlier form) can be taken by any role with `pg_advisory_lock` on the
/// same keys, which stalled every migration of a tenant or every sign-up of a name for as long
/// as that role liked. The class is a catalog's so that `pg_describe_object` over `pg_locks`
/// (monitoring queries) describes them (NULL, or a column of whatever relation has the key's
/// OID) instead of failing, as it did for the first form's class (`tenancy.tenants`' OID).
/// Transaction-level: released when the transaction (or the subtransaction that took them)
/// ends. Shown in `pg_locks` as `locktype = 'object'`, `classid = 'pg_class'::regclass`, `objid`
/// = the key, `objsubid` = the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Own {
    /// Everything done to one tenant (migrate, rename, drop), keyed by its schema's OID.
    Tenant = 1,
    /// Creating or renaming *to* a tenant name, keyed by a hash of its case-folded key.
    Name = 2,
    /// Applying a registered migration (shared) against removing it (exclusive), keyed by a hash
    /// of its version.
    Registered = 3,
    /// Re-linking the registry after a `pg_upgrade` (key 0).
    Relink = 4,
}

fn own_tag(kind: Own, key: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: this backend's database.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: pg_sys::RelationRelationId.to_u32(),
        locktag_field3: key,
        locktag_field4: kind as u16,
        locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    }
}

fn own_mode(exclusive: bool) -> pg_sys::LOCKMODE {
    (if exclusive {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::ShareLock
    }) as pg_sys::LOCKMODE
}

/// Takes `kind`/`key` until the transaction ends, waiting (lock_timeout and deadlock detection
/// apply). Every caller is a write path: on a hot standby it refuses first ([`spi::writable`]).
pub fn own_lock(kind: Own, key: u32, exclusive: bool) {
    spi::writable();
    let tag = own_tag(kind, key);
    // SAFETY: a transaction-level lock through the lock manager, as LockDatabaseObject takes.
    unsafe {
        pg_sys::LockAcquire(&tag, own_mode(exclusive), false, false);
    }
    after_lock();
}

/// What comes after a lock must see what committed while it waited: pgrx runs SPI reads with the
/// statement's snapshot (`read_only`) until the transaction has an ID, so take it now, as the
/// SPI statement the advisory lock used to be did (the isolation spec concurrent_migrate: a
/// second `migrate_tenant` that waited finds nothing left to do).
fn after_lock() {
    // SAFETY: assigns this transaction's ID if it has none (never on a standby: writable).
    unsafe {
        pg_sys::GetCurrentTransactionId();
    }
}

/// [`own_lock`] without waiting: whether it was taken.
pub fn own_try_lock(kind: Own, key: u32, exclusive: bool) -> bool {
    spi::writable();
    let tag = own_tag(kind, key);
    // SAFETY: as own_lock, not waiting.
    let taken = unsafe {
        pg_sys::LockAcquire(&tag, own_mode(exclusive), false, true)
            != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
    };
    after_lock();
    taken
}

/// The key of a text (a name, a version): FNV-1a. Collisions only make unrelated keys wait for
/// each other.
pub fn own_key(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The other sessions holding `kind`/`key`, as for [`relation_holders`].
pub fn own_holders(kind: Own, key: u32) -> String {
    holders(
        "l.locktype OPERATOR(pg_catalog.=) 'object' \
         AND l.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid \
         AND l.objid::pg_catalog.int8 OPERATOR(pg_catalog.=) $1 AND l.objsubid OPERATOR(pg_catalog.=) $2",
        vec![i64::from(key).into(), (kind as i32).into()],
    )
}
