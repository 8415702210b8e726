//! Fleet background workers: `CALL tenancy.migrate_all(jobs => N)` starts N - 1 of them. Each
//! connects as the calling role to the calling database, joins the run (`tenancy._fleet_join`
//! records its PID and backend start time in `tenancy.fleet_jobs`), and runs the same step as the
//! coordinator (`tenancy._fleet_step`), one transaction per tenant.
//!
//! SIGTERM (`pg_terminate_backend`, a server shutdown) runs PostgreSQL's own `die`, as pg_cron's
//! workers do: the worker stops at the next CHECK_FOR_INTERRUPTS, in the middle of a tenant's
//! migration too (a lock wait, `pg_sleep`, a long statement), with FATAL. Its transaction rolls
//! back, so the tenant it had claimed is unlocked and still queued, and the run's other jobs
//! migrate it.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder};
use pgrx::prelude::*;

use crate::api::args::required;
use crate::db::report::raise;
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::worker_extra;

/// Starts up to `wanted` background workers for run `run_id` (the calling session is the
/// other job). Returns how many started; fewer when the server has no free worker slots.
#[pg_extern(volatile, name = "_fleet_launch")]
#[search_path(pg_catalog, pg_temp)]
fn fleet_launch(run_id: Option<i64>, wanted: Option<i32>) -> i32 {
    const EXAMPLE: &str = "CALL tenancy.migrate_all(jobs => 2), which calls it";
    let run_id = required(run_id, "_fleet_launch", "run_id", EXAMPLE);
    let wanted = required(wanted, "_fleet_launch", "wanted", EXAMPLE);
    if wanted < 0 {
        raise(
            TenancyError::new(
                SqlState::InvalidParameterValue,
                format!("tenancy._fleet_launch: wanted must not be negative, not {wanted}"),
            )
            .hint("Pass how many background workers to start, e.g. 1; CALL tenancy.migrate_all(jobs => N) starts N - 1."),
        );
    }
    let exists = spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM tenancy.fleet_runs r WHERE r.run_id OPERATOR(pg_catalog.=) $1)",
        &[run_id.into()],
    );
    if exists != Some(true) {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("tenancy._fleet_launch: there is no fleet run {run_id}"),
            )
            .hint("SELECT run_id FROM tenancy.progress lists the runs; CALL tenancy.migrate_all(jobs => N) starts a run with its workers."),
        );
    }
    // SAFETY: plain reads of this backend's identity.
    let (db, user, pid) = unsafe { (pg_sys::MyDatabaseId, pg_sys::GetUserId(), pg_sys::MyProcPid) };
    let extra = worker_extra::encode(db.to_u32(), user.to_u32());
    let mut started = 0;
    for i in 0..wanted {
        let worker = BackgroundWorkerBuilder::new(&format!(
            "pg_tenancy fleet worker {} (run {run_id})",
            i + 1
        ))
        .set_type("pg_tenancy fleet worker")
        .set_library("pg_tenancy")
        .set_function("tenancy_fleet_worker_main")
        .set_argument(run_id.into_datum())
        .set_extra(&extra)
        .enable_spi_access()
        .set_notify_pid(pid)
        .load_dynamic();
        if worker.is_err() {
            break;
        }
        started += 1;
    }
    started
}

/// Whether the process with this PID that started at this time is still alive. A PID alone may
/// belong to a later process by now (after the first one ended, or after a crash and restart);
/// the pair may not. Reads PostgreSQL's backend status array itself: `pg_stat_activity` hides
/// other roles' `backend_start` from roles without `pg_read_all_stats`, and the answer must not
/// depend on who asks. Like `pg_stat_activity`, it sees one snapshot per transaction.
#[pg_extern(volatile, name = "_backend_alive")]
#[search_path(pg_catalog, pg_temp)]
fn backend_alive(pid: Option<i32>, backend_start: Option<TimestampWithTimeZone>) -> bool {
    const EXAMPLE: &str =
        "SELECT tenancy._backend_alive(a.pid, a.backend_start) FROM pg_stat_activity a";
    let pid = required(pid, "_backend_alive", "pid", EXAMPLE);
    let started = pg_sys::TimestampTz::from(required(
        backend_start,
        "_backend_alive",
        "backend_start",
        EXAMPLE,
    ));
    // SAFETY: the entries are this transaction's local copy of the status array (PostgreSQL
    // takes it on first use); each is non-NULL for 1..=numbackends, checked anyway.
    unsafe {
        (1..=pg_sys::pgstat_fetch_stat_numbackends()).any(|i| {
            let entry = local_backend_status(i);
            !entry.is_null()
                && (*entry).backendStatus.st_procpid == pid
                && (*entry).backendStatus.st_proc_start_timestamp == started
        })
    }
}

/// This session's backend start time, as `pg_stat_activity.backend_start` shows it (PostgreSQL
/// records this very value there). `pg_stat_activity` itself hides it from a session that did
/// `SET ROLE` to a role its login role is not a member of, which must not stop that session from
/// joining a fleet run.
#[pg_extern(stable, name = "_backend_start")]
#[search_path(pg_catalog, pg_temp)]
fn backend_start() -> Option<TimestampWithTimeZone> {
    // SAFETY: a plain read of this backend's start time, set once when the process started.
    TimestampWithTimeZone::try_from(unsafe { pg_sys::MyStartTimestamp }).ok()
}

/// The `i`-th (1-based) entry of this transaction's copy of the backend status array.
#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
unsafe fn local_backend_status(i: i32) -> *mut pg_sys::LocalPgBackendStatus {
    // SAFETY: the caller passes 1..=pgstat_fetch_stat_numbackends().
    unsafe { pg_sys::pgstat_fetch_stat_local_beentry(i) }
}

/// The `i`-th (1-based) entry of this transaction's copy of the backend status array.
#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
unsafe fn local_backend_status(i: i32) -> *mut pg_sys::LocalPgBackendStatus {
    // SAFETY: the caller passes 1..=pgstat_fetch_stat_numbackends().
    unsafe { pg_sys::pgstat_get_local_beentry_by_index(i) }
}

// PostgreSQL's own signal handlers, by their C symbols: pgrx's bindings of C functions are Rust
// wrappers that catch ERRORs, which a signal handler must not be.
unsafe extern "C-unwind" {
    /// SIGTERM in PostgreSQL's backends: sets ProcDiePending and the latch.
    fn die(postgres_signal_arg: std::ffi::c_int);
    /// SIGHUP in PostgreSQL's auxiliary processes: sets ConfigReloadPending and the latch.
    #[link_name = "SignalHandlerForConfigReload"]
    fn signal_handler_for_config_reload(postgres_signal_arg: std::ffi::c_int);
}

/// Installs `handler` for `signal` in this process.
unsafe fn set_signal_handler(signal: u32, handler: unsafe extern "C-unwind" fn(i32)) {
    #[cfg(not(feature = "pg18"))]
    // SAFETY: installs a signal handler of PostgreSQL's in this process.
    unsafe {
        pg_sys::pqsignal(signal as i32, Some(handler));
    }
    #[cfg(feature = "pg18")]
    // SAFETY: installs a signal handler of PostgreSQL's in this process.
    unsafe {
        pg_sys::pqsignal_be(signal as i32, Some(handler));
    }
}

/// Re-reads the configuration files after a SIGHUP (`pg_reload_conf()`), between transactions as
/// PostgreSQL's own backends do.
fn reload_config_if_asked() {
    // SAFETY: ConfigReloadPending is this process's flag, set by its SIGHUP handler.
    unsafe {
        if (&raw const pg_sys::ConfigReloadPending).read_volatile() != 0 {
            (&raw mut pg_sys::ConfigReloadPending).write_volatile(0);
            pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
        }
    }
}

/// A fleet worker: connects as the calling role to the calling database, joins the run, then
/// runs `tenancy._fleet_step(run)` one transaction at a time until the queue is empty.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tenancy_fleet_worker_main(arg: pg_sys::Datum) {
    let run_id = arg.value() as i64;
    // SAFETY: PostgreSQL's own handlers, as in its backends (and pg_cron's workers): SIGTERM
    // makes the next CHECK_FOR_INTERRUPTS end the process with FATAL, aborting its transaction.
    // A background worker starts with signals blocked; unblocking delivers one sent meanwhile.
    unsafe {
        set_signal_handler(pg_sys::SIGTERM, die);
        set_signal_handler(pg_sys::SIGHUP, signal_handler_for_config_reload);
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let (db, user) =
        worker_extra::decode(BackgroundWorker::get_extra()).unwrap_or_else(|e| raise(e));
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db.into()), Some(user.into()));
    // Joining records this process's (pid, backend_start): while it lives, the coordinator waits
    // for it and progress shows the run alive. It comes before the first step, so a worker that
    // has not joined has claimed nothing. application_name is for people reading
    // pg_stat_activity only: any session can set it, so nothing depends on it.
    let joined = BackgroundWorker::transaction(|| {
        Spi::run_with_args(
            "SELECT pg_catalog.set_config('application_name', 'pg_tenancy fleet run ' || $1, false)",
            &[run_id.into()],
        )
        .ok();
        Spi::get_one_with_args::<bool>("SELECT tenancy._fleet_join($1, true)", &[run_id.into()])
            .ok()
            .flatten()
            .unwrap_or(false)
    });
    if !joined {
        return; // the run has ended (or never existed): nothing to do
    }
    loop {
        pgrx::check_for_interrupts!();
        reload_config_if_asked();
        let more = BackgroundWorker::transaction(|| {
            Spi::get_one_with_args::<bool>("SELECT tenancy._fleet_step($1)", &[run_id.into()])
                .ok()
                .flatten()
                .unwrap_or(false)
        });
        if !more {
            break;
        }
    }
}
